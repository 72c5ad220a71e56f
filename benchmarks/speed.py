"""Throughput of the NLI executor and of each search method on a spec's model (untrained weights: the cost of a
forward pass does not depend on the values of the weights).

Usage: python benchmarks/speed.py [specs/shift_l.yaml] [--tasks 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from nlic.compiler import load_spec
from nlic.compiler.families import sample_split, shapes_of
from nlic.compiler.models.nli import build, execute
from nlic.compiler.models.nli.search import search_cost
from nlic.runtime.solve import solve
from nlic.runtime.cli import guarded

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]


def _best(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls (after one warm-up call that compiles)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "shift_l.yaml"))
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import jax
    import numpy as np

    spec = load_spec(args.spec)
    model = build(spec, shapes_of(spec), key=jax.random.key(spec.seed))
    tasks = sample_split(spec, "ood", args.tasks, seed=1)
    lang = spec.language
    n_prog = 1024
    progs = np.random.default_rng(0).integers(0, lang.vocab, (n_prog, lang.max_length)).astype(np.int32)
    xs = np.resize(tasks.query_inputs, (n_prog, tasks.query_inputs.shape[1]))
    sec = _best(lambda: np.asarray(execute(model, progs, xs)), args.repeats)
    print(f"executor: {n_prog / sec:,.0f} program executions/s ({lang.max_length} steps each, hard tokens)")
    for method in ("none", "prior", "enumerate", "gradient", "cascade"):
        search = dataclasses.replace(spec.search, method=method)
        solve(spec, model, tasks.take(slice(0, 1)), search=search)  # compile
        r = solve(spec, model, tasks, search=search)
        cost = search_cost(model, search) * spec.task.pairs
        print(f"search {method:9s}: {r.seconds / len(tasks):.3f} s/task, {cost:,} executions/task (upper bound), "
              f"{cost * len(tasks) / r.seconds:,.0f} executions/s")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))  # bad input: the located message and exit code 2, not a traceback
