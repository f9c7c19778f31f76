"""The REST-made capture rules and mirror sessions, kept across restarts: in the state file,
or for a cluster in sggw's clustered OVSDB store (its schemas, client and link diagnosis)."""
