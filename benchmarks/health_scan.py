"""The health checks of this version, run again over finished or stopped runs: which warnings each run raises now.

A run's `health.json` holds the warnings of the version that trained it; a check added or changed since (for example
`training-unstable`) is seen only by running the checks again on the run's `metrics.jsonl`, which is what this does,
for each run directory given and each of its abandoned attempts (`attempts/<k>/`). The run's locked spec, where it
has one, gives the steps and the fixes' current values.

Usage:
    python benchmarks/health_scan.py RUN [RUN ...] [--only ID]

Prints one line per run or attempt: its ID evaluations (step:accuracy) and the warnings (id@step), then the summary
of each warning named by `--only` (default training-unstable). Writes nothing.

Measured (benchmarks/README.md, "Late falls with a loss spike"): 91 runs and attempts of sessions 14-18,
`training-unstable` on the 14 whose ID accuracy fell after a loss spike.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlic.compiler import load_spec
from nlic.compiler.kinds import kind_of
from nlic.grammar.errors import CheckpointError, Loc, NlicError
from nlic.runtime import health
from nlic.runtime.cli import guarded
from nlic.runtime.run_dir import ATTEMPTS_DIR, METRICS_FILE, SPEC_FILE, read_metrics

__all__ = ["main"]


def _runs(paths: list[str]) -> list[Path]:
    out = []
    for p in paths:
        run = Path(p)
        if run.is_file():
            run = run.parent
        if not (run / METRICS_FILE).is_file():
            raise CheckpointError("not a run directory (no metrics.jsonl)", loc=Loc(str(p)),
                                  hint="give a directory `nlic train` wrote, or its metrics.jsonl")
        out.append(run)
        attempts = run / ATTEMPTS_DIR
        if attempts.is_dir():
            out += sorted((a for a in attempts.iterdir() if a.is_dir() and a.name.isdigit()), key=lambda a: int(a.name))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or their metrics.jsonl)")
    ap.add_argument("--only", default="training-unstable", help="print the summaries of this warning id")
    args = ap.parse_args(argv)
    for run in _runs(args.runs):
        rows = read_metrics(run)
        if not rows:
            print(f"{run}: no metrics rows")
            continue
        spec_path = run / SPEC_FILE
        if not spec_path.exists() and run.parent.name == ATTEMPTS_DIR:
            spec_path = run.parent.parent / SPEC_FILE
        spec, note = None, ""
        if spec_path.exists():
            try:
                spec = load_spec(str(spec_path))
            except NlicError as e:  # a spec of another version: the checks run without it (no fix values)
                note = f"  (spec not read: {e.diagnostics[0].message if e.diagnostics else e})"
        steps = spec.training.steps if spec is not None else max(int(r.get("step", 0)) for r in rows)
        discrete = spec is None or kind_of(spec).discrete_programs
        found = health.check_health(rows, total_steps=steps, discrete=discrete, spec=spec, final=True)
        evals = " ".join(f"{r['step']}:{r['accuracy']:.2f}" for r in rows
                         if r.get("split") == health.ID_SPLIT and isinstance(r.get("accuracy"), (int, float)))
        warned = ", ".join(f"{w.id}@{w.step}" for w in found) or "none"
        print(f"{run}  id {evals or '-'}  warnings: {warned}{note}")
        for w in found:
            if w.id == args.only:
                print(f"    {w.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
