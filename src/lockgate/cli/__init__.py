"""The `lockgate` command line, split into command groups."""
