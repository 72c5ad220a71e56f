"""Subcommands of the `nlic` CLI, one module each (`add_arguments(parser)`, `run(args) -> int`), listed in
`COMMANDS`, which the CLI and its help read. Each is a thin caller of the public API in `nlic.runtime`.
"""

from types import ModuleType

from nlic.runtime.commands import compile, data, eval, fmt, inspect, run, solve, train, validate

__all__ = ["COMMANDS"]

COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "validate": (validate, "check a spec and report every error at once"),
    "fmt": (fmt, "print a spec as canonical text (YAML or native .nls)"),
    "compile": (compile, "validate, lower and XLA-compile a spec; write a build directory"),
    "train": (train, "train the inductor and executor end to end"),
    "solve": (solve, "induce a program for each task and write them as text"),
    "run": (run, "replay a program file on new inputs"),
    "inspect": (inspect, "describe what each learned token means, by probing; mine macros"),
    "data": (data, "show or export the tasks of a spec"),
    "eval": (eval, "train and evaluate several specs side by side"),
}
"""Command name -> (its module, one-line help)."""
