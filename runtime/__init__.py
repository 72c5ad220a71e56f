"""The runtime: task data, training, search, program execution, serialisation and the CLI."""
