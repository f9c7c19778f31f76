"""sggwctl: the operator's command line over sggw's REST API (``sggwctl --help``)."""
