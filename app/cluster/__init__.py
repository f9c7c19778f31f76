"""Several sggw instances, one set of switches: which one is master (the election, by the
clustered store's lock) and the OpenFlow roles the switches are told."""
