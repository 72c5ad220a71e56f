"""`nlic solve`: induce a program for each task by test-time search, write them as text, and predict.

Tasks come from a data file or directory, or from a split of the spec's task family; the last line reports
exact-match accuracy when the query outputs are known.
"""

from __future__ import annotations

import argparse
import sys

from nlic.runtime.solve import solve_to_files

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a trained run directory (the --out of nlic train)")
    parser.add_argument(
        "tasks", metavar="TASKS",
        help="a task file or directory (ARC-style JSON, JSONL), or a split of the spec's task family (id, ood...)",
    )
    parser.add_argument("--search", metavar="METHOD", help="search method (default: the spec's search.method)")
    parser.add_argument("--starts", type=int, metavar="N", help="parallel starts / sampled programs")
    parser.add_argument("--steps", type=int, metavar="N", help="gradient steps per start")
    parser.add_argument("-n", type=int, metavar="N", dest="n", help="solve only the first N tasks (or sample N)")
    parser.add_argument("--seed", type=int, help="seed of the sampled split and of the search (default: spec.seed)")
    parser.add_argument(
        "--out", metavar="FILE",
        help="program file to write (default: RUN_DIR/programs/<TASKS name>.nlp)",
    )
    parser.add_argument(
        "--predictions", metavar="FILE",
        help="JSONL of predicted query outputs (default: next to the program file, .predictions.jsonl)",
    )


def run(args: argparse.Namespace) -> int:
    result = solve_to_files(args.run_dir, args.tasks, method=args.search, starts=args.starts, steps=args.steps,
                            n=args.n, seed=args.seed, out=args.out, predictions=args.predictions,
                            log=lambda line: print(line, file=sys.stderr, flush=True))
    r = result.result
    known = int(r.has_target.sum())
    if known:
        hits = int(r.correct[r.has_target].sum())
        print(f"accuracy: {hits / known:.2f} ({hits}/{known})")
    else:
        print("no query outputs are known: accuracy not measured", file=sys.stderr)
    return 0
