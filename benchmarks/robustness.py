"""Does learning hold on every seed? Train each spec at each seed and score it with the spec's own search.

One row per (spec, seed), printed as soon as it is measured: ID and OOD exact-match accuracy (each split's evaluation
sample, the tasks `nlic solve RUN SPLIT` solves), training seconds, search seconds per task and the run's health
verdict. Then a summary per spec: every seed's OOD, the minimum and how many seeds reach `--target`. Nothing is
averaged away: a claim holds per seed.

Usage:
    python benchmarks/robustness.py specs/minimal/*.yaml --seeds 0-4 [--steps N] [--tasks N]
        [--runs runs/robustness] [--json results/robustness.json] [--target shift_l=0.95 ...] [--retrain]

Runs are kept in `<runs>/<name>-seed<k>` (as `nlic eval` keeps them), so a second invocation reuses finished runs
and only scores them again; `--retrain` trains them afresh.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from nlic.compiler import load_spec
from nlic.compiler.families import evaluation_tasks
from nlic.grammar.errors import CheckpointError, Loc, SpecError
from nlic.grammar.reading import MAX_HEADER_BYTES, loads_json, read_text
from nlic.runtime import run_dir as rd
from nlic.runtime.cli import guarded
from nlic.runtime.evaluate import trained_model
from nlic.runtime.files import atomic_write
from nlic.runtime.outputs import refuse_existing
from nlic.runtime.solve import solve, warm_up

__all__ = ["main", "parse_seeds"]

MAX_SEEDS = 1000


def parse_seeds(text: str) -> list[int]:
    """`0-4`, `0,2,5` or a mix (`0-2,7`) as a sorted list of distinct seeds.

    Raises:
        SpecError: not of that form, a range running backwards, or more than `MAX_SEEDS` seeds.
    """
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise SpecError(f"cannot read seeds {text!r}", loc=Loc("--seeds"),
                            hint="write seeds as 0-4, 0,1,2 or 0-2,7") from None
        if a < 0 or b < a:
            raise SpecError(f"bad seed range {part!r}", loc=Loc("--seeds"), hint="write LOW-HIGH with 0 <= LOW <= HIGH")
        if b - a + 1 + len(seeds) > MAX_SEEDS:
            raise SpecError(f"more than {MAX_SEEDS} seeds", loc=Loc("--seeds"), hint="ask for fewer seeds")
        seeds.update(range(a, b + 1))
    return sorted(seeds)


def _targets(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise SpecError(f"cannot read target {item!r}", loc=Loc("--target"),
                            hint="write NAME=OOD, e.g. --target shift_l=0.95 (NAME is the spec's name)")
    return out


def _verdict(run: Path) -> str:
    """The run's health verdict (`health.json`: "healthy", with the warnings it recovered from, or the first failed
    check), or "?" when it has none."""
    path = run / rd.HEALTH_FILE
    try:
        record = loads_json(read_text(path, limit=MAX_HEADER_BYTES, what="health record", error=CheckpointError),
                            path=str(path), error=CheckpointError)
    except (OSError, CheckpointError):  # a missing or damaged record must not lose the measured row
        return "?"
    verdict = record.get("verdict") if isinstance(record, dict) else None
    if not isinstance(verdict, str):
        return "?"
    notes = []
    for key, what in (("recovered", "recovered from"), ("after_kept", "after the kept weights:")):
        ids = record.get(key)
        if verdict == "healthy" and isinstance(ids, list) and ids:
            notes.append(f"{what} {', '.join(str(r) for r in ids)}")
    return f"{verdict} ({'; '.join(notes)})" if notes else verdict


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument("--seeds", default="0-4", help="training seeds: 0-4, 0,1,2 or 0-2,7 (default 0-4)")
    p.add_argument("--steps", type=int, default=None, help="override training.steps")
    p.add_argument("--tasks", type=int, default=None, help="tasks per split (default: the spec's eval.tasks)")
    p.add_argument("--runs", default="runs/robustness", help="parent of the run directories")
    p.add_argument("--json", default=None, help="write the rows here (default: <runs>/robustness.json)")
    p.add_argument("--target", action="append", default=[], metavar="NAME=OOD",
                   help="OOD accuracy each seed of spec NAME must reach (repeatable)")
    p.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    p.add_argument("--force", action="store_true", help="overwrite the JSON file if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (training, search), only the rows")
    args = p.parse_args(argv)

    def note(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    seeds = parse_seeds(args.seeds)
    targets = _targets(args.target)
    specs = [load_spec(path) for path in args.specs]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SpecError("two specs share a name", loc=Loc(args.specs[0]), hint="give each spec its own `name`")
    runs = Path(args.runs)
    out = Path(args.json) if args.json else runs / "robustness.json"
    refuse_existing([out], force=args.force, hint="pass --force to overwrite it, or --json PATH")

    head = ["spec", "seed", "ID", "OOD", "train s", "search s/task", "verdict"]
    rows: list[dict[str, Any]] = []
    printed: list[list[str]] = []
    print("| " + " | ".join(head) + " |", flush=True)
    for spec in specs:
        for seed in seeds:
            run_spec = dataclasses.replace(spec, seed=int(seed))
            if args.steps is not None:
                run_spec = dataclasses.replace(run_spec, training=dataclasses.replace(spec.training,
                                                                                     steps=int(args.steps)))
            t0 = time.perf_counter()
            note(f"{spec.name} seed {seed}: training (or reusing) {runs / f'{run_spec.name}-seed{seed}'}")
            model, how = trained_model(run_spec, runs=runs, retrain=args.retrain,
                                       progress=False if args.quiet else None,
                                       fix="pass --retrain to overwrite it, or --runs DIR to train somewhere else")
            train_s = time.perf_counter() - t0 if how == "trained" else None
            run = runs / f"{run_spec.name}-seed{seed}"
            row: dict[str, Any] = {"spec": spec.name, "seed": int(seed), "steps": run_spec.training.steps,
                                   "search": run_spec.search.method, "train_seconds": train_s, "model": how,
                                   "verdict": _verdict(run)}
            seconds, n_tasks = 0.0, 0
            for split in run_spec.eval.splits:
                tasks = evaluation_tasks(run_spec, split, args.tasks)
                note(f"{spec.name} seed {seed}: solving {len(tasks)} {split} tasks ({run_spec.search.method} search)")
                warm_up(run_spec, model, tasks)  # compilation is not search time
                result = solve(run_spec, model, tasks, seed=int(seed))
                note(f"{spec.name} seed {seed}: {split} accuracy {_fmt(result.accuracy)} in {result.seconds:.0f} s")
                row[split] = None if result.accuracy is None else float(result.accuracy)
                seconds, n_tasks = seconds + result.seconds, n_tasks + len(tasks)
            row["search_seconds_per_task"] = seconds / max(n_tasks, 1)
            rows.append(row)
            cells = [spec.name, str(seed), _fmt(row.get("id")), _fmt(row.get("ood")),
                     "reused" if train_s is None else f"{train_s:.0f}", f"{row['search_seconds_per_task']:.3f}",
                     row["verdict"]]
            printed.append(cells)
            print("| " + " | ".join(cells) + " |", flush=True)
            # Written after every row: a long sweep that is stopped keeps what it measured.
            atomic_write(out, json.dumps({"rows": rows}, indent=1) + "\n")

    print("\nPer (spec, seed); run directories in", runs)
    print(_table(head, printed))
    summary = []
    for spec in specs:
        ood = [r.get("ood") for r in rows if r["spec"] == spec.name]
        ood = [x for x in ood if x is not None]
        target = targets.get(spec.name)
        met = "n/a" if target is None else f"{sum(x >= target for x in ood)}/{len(ood)} >= {target:.2f}"
        summary.append([spec.name, " ".join(f"{x:.2f}" for x in ood) or "n/a",
                        _fmt(min(ood) if ood else None), _fmt(float(np.mean(ood)) if ood else None), met])
    print()
    print(_table(["spec", "OOD per seed", "min", "mean", "target"], summary))
    print(f"\nrows written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))  # bad input: the located message and exit code 2, not a traceback
