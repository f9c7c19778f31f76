"""sggw's controller. At the top, the entries: ``sggw_app.py`` (what ``ryu-manager`` runs: the
Ryu shell), ``main.py`` (the ``sggw`` command) and ``eventlet_compat.py`` (loaded before
Ryu). Below them, one package per concern, each importing only those under it: ``api``,
``cluster``, ``openflow``, ``store``, ``ovs``, ``config`` (docs/design.md has the map)."""
