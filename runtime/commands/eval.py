"""`nlic eval SPEC... [--splits id,ood] [--seeds 0,1,2] [--budgets 0,10,100] [--steps N] [--out DIR]`: train or
reuse each spec's runs, score them on identical tasks with every search mode and budget, write CSV, table, plot.

Results files already in --out are refused unless --force (runs are reused by design: that replaces nothing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlic.compiler import load_spec
from nlic.grammar.errors import Loc, NlicError, SpecError
from nlic.runtime.evaluate import check_results_free, evaluate, write_results
from nlic.runtime.flags import check_flag

__all__ = ["add_arguments", "run", "parse_list"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (.yaml, .yml or .nls); names must differ")
    parser.add_argument("--splits", metavar="LIST",
                        help="evaluation splits, e.g. id,ood (default: each spec's eval.splits)")
    parser.add_argument("--seeds", default="0", metavar="LIST", help="training seeds, e.g. 0,1,2 (default: 0)")
    parser.add_argument(
        "--budgets", metavar="LIST",
        help="search budgets, e.g. 0,10,100: 0 = no search; gradient steps, programs sampled for prior, or "
        "programs enumerated for enumerate (default: 0 and each spec's own search.steps / search.starts / "
        "search.programs)",
    )
    parser.add_argument("--methods", metavar="LIST",
                        help="search modes, e.g. none,gradient (default: none,prior,gradient,cascade where the kind "
                        "has them); KIND:METHOD for one kind's specs only, e.g. none,nli:enumerate,lpn:gradient")
    parser.add_argument("--steps", type=int, metavar="N", help="override training.steps of every spec")
    parser.add_argument("--tasks", type=int, metavar="N",
                        help="the first N tasks of each split's evaluation sample (default: each spec's eval.tasks; "
                        "N above eval.tasks draws a larger sample, whose tasks differ)")
    parser.add_argument("--out", default="results/eval", metavar="DIR",
                        help="where results.csv, results.md and budget.png go (default: results/eval)")
    parser.add_argument("--runs", default="runs", metavar="DIR",
                        help="parent of the run directories <name>-seed<k> (default: runs)")
    parser.add_argument(
        "--data-seed", type=int, metavar="N",
        help="the seed the evaluation tasks derive from, shared by all specs and seeds (default: each training seed, "
        "so that the tasks of seed k are those nlic solve solves for the run <name>-seed<k>)",
    )
    parser.add_argument("--retrain", action="store_true", help="train again even where a matching run exists")
    parser.add_argument("--force", action="store_true", help="overwrite results files that exist in --out")
    parser.add_argument("--no-flops", action="store_true", help="skip measuring test-time FLOPs (saves compiles)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines (notes are still printed)")


def parse_list(text: str | None, flag: str, *, integer: bool, minimum: int = 0) -> list | None:
    """A comma-separated option value as a list; a `SpecError` located at the flag when an item is malformed."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise SpecError(f"{flag} is empty", loc=Loc(flag), hint="give a comma-separated list, e.g. 0,1,2")
    if not integer:
        return list(dict.fromkeys(items))
    out = []
    for item in items:
        try:
            value = int(item)
        except ValueError:
            raise SpecError(f"'{item}' is not an integer", loc=Loc(flag),
                            hint="give comma-separated integers, e.g. 0,10,100") from None
        if value < minimum:
            raise SpecError(f"{value} is below {minimum}", loc=Loc(flag), hint=f"use values >= {minimum}")
        out.append(value)
    return list(dict.fromkeys(out))


def run(args: argparse.Namespace) -> int:
    seeds = parse_list(args.seeds, "--seeds", integer=True)
    budgets = parse_list(args.budgets, "--budgets", integer=True)
    splits = parse_list(args.splits, "--splits", integer=False)
    methods = parse_list(args.methods, "--methods", integer=False)
    check_flag(args.steps, "--steps", "training.steps")
    check_flag(args.tasks, "--tasks", "eval.tasks")
    check_flag(args.data_seed, "--data-seed", "seed")
    for seed in seeds or ():
        check_flag(seed, "--seeds", "seed")
    # Every spec's errors at once before any training starts.
    specs, errors = [], []
    for path in args.specs:
        try:
            specs.append(load_spec(path))
        except NlicError as e:
            errors.extend(e.diagnostics)
    if errors:
        raise SpecError(diagnostics=errors)
    check_results_free(args.out, force=args.force)  # before any training
    rows = evaluate(
        specs, splits=splits, seeds=seeds, budgets=budgets, steps=args.steps, tasks=args.tasks, methods=methods,
        runs=Path(args.runs), data_seed=args.data_seed,
        retrain=args.retrain, flops=not args.no_flops, log=_notes if args.quiet else _progress,
    )
    files = write_results(rows, args.out, force=args.force)
    print(files["markdown"].read_text(), end="")
    print(f"nlic eval: {len(rows)} results in {files['csv']}, {files['markdown']}, {files['plot']}", flush=True)
    return 0


def _progress(message: str) -> None:
    print(f"nlic eval: {message}", file=sys.stderr, flush=True)


def _notes(message: str) -> None:
    """--quiet: the notes alone (what the results do not show), not the progress lines."""
    if message.startswith("note:"):
        _progress(message)
