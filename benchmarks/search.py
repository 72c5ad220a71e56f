"""Accuracy against cost of every NLI search method on a trained run: OOD accuracy per CPU-second of search.

Each configuration is compiled once on a one-task batch outside the timing, then timed on the whole split
(wall-clock seconds on this machine; `execs/task` is the method's budget in program executions on one spec pair).

Each --config starts from a base search section, the run's saved one or, with `--spec FILE`, that spec file's
(a run directory keeps the search section it was trained with; the spec file may have moved on since).

Usage: python benchmarks/search.py RUN_DIR [--spec SPEC] [--split ood] [--tasks 100]
           [--config "enumerate depth=6 branch=3" --config "gradient starts=8 steps=30" ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from nlic.compiler import load_spec
from nlic.compiler.families import sample_split
from nlic.compiler.models.nli.search import search_cost
from nlic.runtime.run_dir import load_run
from nlic.runtime.solve import solve, warm_up
from nlic.runtime.cli import guarded

__all__ = ["main", "DEFAULT_CONFIGS"]

DEFAULT_CONFIGS = (
    "none",
    "prior starts=64",
    "enumerate depth=2",
    "enumerate depth=6 branch=3",
    "gradient starts=1 steps=10",
    "gradient starts=4 steps=25",
    "gradient starts=8 steps=30",
    "gradient starts=16 steps=50",
    "cascade depth=6 branch=3 starts=8 steps=30",
)


def parse_config(text: str, base):
    """`"METHOD key=value ..."` -> the base SearchSpec with those fields replaced (ints, floats, true/false)."""
    method, *pairs = text.split()
    fields = {"method": method}
    for pair in pairs:
        k, v = pair.split("=", 1)
        if v.lower() in ("true", "false"):
            fields[k] = v.lower() == "true"
        else:
            fields[k] = float(v) if "." in v or "e" in v else int(v)
    return dataclasses.replace(base, **fields)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--split", default="ood")
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--seed", type=int, default=12345, help="seed of the sampled tasks")
    p.add_argument("--config", action="append", help="search configuration (repeatable); default: a fixed sweep")
    p.add_argument("--spec", help="take the base search section from this spec file instead of the run's")
    args = p.parse_args(argv)


    spec, model = load_run(args.run_dir)
    if args.spec:

        spec = dataclasses.replace(spec, search=load_spec(args.spec).search)
    tasks = sample_split(spec, args.split, args.tasks, seed=args.seed)
    print(f"# {spec.name}: {args.tasks} {args.split} tasks, {os.cpu_count()} CPUs")
    print("| search | accuracy | s/task | tasks solved per s | execs/task |")
    print("|---|---|---|---|---|")
    for text in args.config or DEFAULT_CONFIGS:
        search = parse_config(text, spec.search)
        warm_up(spec, model, tasks, search=search)  # compile outside the timing
        r = solve(spec, model, tasks, search=search, seed=spec.seed)
        per = r.seconds / len(tasks)
        print(f"| {text} | {r.accuracy:.2f} | {per:.3f} | {r.correct.sum() / max(r.seconds, 1e-9):.1f} | "
              f"{search_cost(model, search):,} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))  # bad input: the located message and exit code 2, not a traceback
