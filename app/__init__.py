"""sggw: the Ryu application (event handling, REST, config, controller state)."""
