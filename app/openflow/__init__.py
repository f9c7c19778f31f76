"""One switch over OpenFlow: blocking requests and bundles, liveness, the programming of a
bridge, and Ryu's OpenFlow listener made fit for TLS and many switches."""
