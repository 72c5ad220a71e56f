"""`nlic solve`: induce a program for each task by test-time search, write them as text, and predict.

Tasks come from a data file or directory, or from a split of the spec's task family (its evaluation sample: the
tasks `nlic train` evaluated and `nlic data show|export` print under the same ids); the last line reports
exact-match accuracy when the query outputs are known. Existing output files are refused unless --force.
`--processes N` splits the tasks over N local processes (`nlic.runtime.distributed`); process 0 writes the files.
"""

from __future__ import annotations

import argparse
import sys

from nlic.compiler.kinds import search_method_names
from nlic.runtime import distributed
from nlic.runtime.solve import solve_to_files

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a trained run directory (the --out of nlic train)")
    parser.add_argument(
        "tasks", metavar="TASKS",
        help="a task file or directory (ARC-style JSON, JSONL), or a split of the spec's task family (id, ood...)",
    )
    methods = search_method_names()
    parser.add_argument("--search", metavar="METHOD",
                        help=f"search method, one of the run's kind's: {', '.join(methods)} (default: the spec's)")
    parser.add_argument("--starts", type=int, metavar="N", help="parallel starts / sampled programs")
    parser.add_argument("--steps", type=int, metavar="N", help="gradient steps per start")
    parser.add_argument(
        "-n", type=int, metavar="N", dest="n",
        help="solve only the first N tasks of a file, or of the split's evaluation sample of eval.tasks tasks "
        "(N above eval.tasks draws a larger sample, whose tasks differ)",
    )
    parser.add_argument("--seed", type=int,
                        help="seed of the search and of the split's evaluation sample (default: spec.seed)")
    parser.add_argument(
        "--out", metavar="FILE",
        help="program file to write (default: RUN_DIR/programs/<TASKS name>.nlp for the spec's own search, "
        "<TASKS name>.<method>[-s<starts>][-k<steps>][.seed<k>].nlp when --search/--starts/--steps/--seed change it)",
    )
    parser.add_argument(
        "--predictions", metavar="FILE",
        help="JSONL of predicted query outputs (default: next to the program file, .predictions.jsonl)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite output files that exist")
    distributed.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    launched = distributed.join_or_launch(args, args.argv)
    if launched is not None:
        return launched
    result = solve_to_files(args.run_dir, args.tasks, method=args.search, starts=args.starts, steps=args.steps,
                            n=args.n, seed=args.seed, out=args.out, predictions=args.predictions, force=args.force,
                            log=lambda line: print(line, file=sys.stderr, flush=True))
    if not distributed.is_main():
        return 0
    r = result.result
    known = int(r.has_target.sum())
    if known:
        hits = int(r.correct[r.has_target].sum())
        print(f"accuracy: {hits / known:.2f} ({hits}/{known})")
    else:
        print("no query outputs are known: accuracy not measured", file=sys.stderr)
    return 0
