"""The NLI paper's Table 1 on nlic's shift suite: train each split's spec with its fixed seed, then measure ID and
OOD exact-match accuracy and search cost for every NLI search method, and OOD accuracy against search budget.

Usage: python benchmarks/shift_suite.py [--specs specs/shift_l.yaml ...] [--tasks 100] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from nlic.compiler import load_spec
from nlic.compiler.families import sample_split
from nlic.compiler.models.nli.search import search_cost
from nlic.runtime.solve import solve, warm_up
from nlic.runtime.train import train
from nlic.runtime.cli import guarded

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPECS = ("specs/shift_l.yaml", "specs/shift_p.yaml", "specs/comp_i.yaml")
METHODS = ("none", "prior", "enumerate", "gradient", "cascade")


def _row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--specs", nargs="+", default=[str(ROOT / s) for s in DEFAULT_SPECS])
    p.add_argument("--tasks", type=int, default=None, help="tasks per split (default: the spec's eval.tasks)")
    p.add_argument("--steps", type=int, default=None, help="override training.steps (default: the spec's)")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--budget", default="1x10,4x25", help="OOD gradient budgets as STARTSxSTEPS, comma separated")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench"), help="parent of the run directories")
    args = p.parse_args(argv)


    table = []
    budgets = []
    for path in args.specs:
        spec = load_spec(path)
        t0 = time.perf_counter()
        res = train(spec, out=Path(args.out) / spec.name, steps=args.steps, progress=False, force=True)
        train_s = time.perf_counter() - t0
        model = res.model
        n = args.tasks or spec.eval.tasks
        data = {s: sample_split(spec, s, n, seed=10_000 + spec.seed) for s in ("id", "ood")}
        print(f"# {spec.name}: trained {res.step} steps in {train_s:.0f}s, last metrics {res.metrics}", flush=True)
        for method in args.methods:
            search = dataclasses.replace(spec.search, method=method)
            accs, per_task = {}, {}
            for split, tasks in data.items():
                warm_up(spec, model, tasks, search=search)  # compile outside the timing
                r = solve(spec, model, tasks, search=search, seed=spec.seed)
                accs[split], per_task[split] = r.accuracy, r.seconds / len(tasks)
            cost = search_cost(model, search)
            table.append([spec.name, method, f"{accs['id']:.2f}", f"{accs['ood']:.2f}", f"{train_s:.0f}",
                          f"{per_task['ood']:.3f}", str(cost)])
            print(_row(table[-1], [8, 9, 4, 4, 5, 6, 7]), flush=True)
        for b in args.budget.split(","):
            starts, steps = (int(v) for v in b.lower().split("x"))
            search = dataclasses.replace(spec.search, method="gradient", starts=starts, steps=steps)
            warm_up(spec, model, data["ood"], search=search)
            r = solve(spec, model, data["ood"], search=search, seed=spec.seed)
            budgets.append([spec.name, f"{starts}x{steps}", f"{r.accuracy:.2f}", f"{r.seconds / len(data['ood']):.3f}"])
            print(_row(budgets[-1], [8, 7, 4, 6]), flush=True)

    head = ["split", "search", "ID", "OOD", "train s", "OOD s/task", "execs/task"]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(head)]
    print("\nTable 1 (exact-match accuracy; seconds on this machine, compilation excluded)")
    print(_row(head, widths))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table:
        print(_row(r, widths))
    head = ["split", "starts x steps", "OOD", "s/task"]
    widths = [max(len(h), *(len(r[i]) for r in budgets)) for i, h in enumerate(head)] if budgets else []
    if budgets:
        print("\nOOD accuracy against gradient-search budget")
        print(_row(head, widths))
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in budgets:
            print(_row(r, widths))
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))  # bad input: the located message and exit code 2, not a traceback
