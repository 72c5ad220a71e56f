"""`nlic inspect RUN [--tasks SPLIT ...] [--out DIR] [--probes N] [--mine] [--force]`: what the learned tokens mean.

Reads the programs `nlic solve` wrote (or solves the tasks), probes every token and pair of tokens, names them by
the task family's primitives, and writes `report.md`, `inspect.json` and plots to RUN/inspect/ (an existing report
is refused unless --force); prints one line per used token. `--mine` also proposes macros and writes shorter
program files. A program file in RUN/programs of another language is reported and its tasks are solved again.
"""

from __future__ import annotations

import argparse
import sys

from nlic.grammar.errors import escape
from nlic.runtime.report import inspect_run, summary_lines

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a trained run directory (the --out of nlic train)")
    parser.add_argument("--tasks", nargs="+", metavar="SPLIT",
                        help="splits whose programs are inspected (default: the spec's eval.splits, e.g. id ood)")
    parser.add_argument("--out", metavar="DIR", help="report folder (default: RUN_DIR/inspect)")
    parser.add_argument("--probes", type=int, default=128, metavar="N",
                        help="probe inputs drawn from the training split (default 128)")
    parser.add_argument("--mine", action="store_true",
                        help="also mine frequent token n-grams as macros and write <split>.mined.nlp")
    parser.add_argument("--force", action="store_true", help="overwrite a report that exists in the report folder")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    log = None if args.quiet else (lambda line: print(escape(line), file=sys.stderr, flush=True))
    report = inspect_run(args.run_dir, tasks=args.tasks, out=args.out, probes=args.probes, mine=args.mine,
                         force=args.force, log=log)
    for line in summary_lines(report):
        print(line)
    if log is not None:
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in report.seconds.items())
        log(f"inspect: {phases}")
    return 0
