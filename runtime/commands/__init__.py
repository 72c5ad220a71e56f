"""Subcommands of the `nlic` CLI, one module each (`add_arguments(parser)`, `run(args) -> int`)."""
