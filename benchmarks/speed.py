"""Throughput of the NLI executor and of each search method on a spec's model (untrained weights: the cost of a
forward pass does not depend on the values of the weights); with --compile, cold and warm `nlic compile` times.

Usage: python benchmarks/speed.py [specs/shift_l.yaml] [--tasks 32] [--repeats 3]
       python benchmarks/speed.py --compile [SPEC ...]    (default: every specs/*.yaml)

--compile runs `nlic compile SPEC --no-write` in fresh processes, cold (an empty compile cache folder) then warm (the
folder the cold run filled), and prints per spec: the process's wall seconds, its CPU seconds (user + system, a
measure that a busy machine inflates less) and the compile phase (`compiled in` of its log, tracing excluded).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import resource
import subprocess
import sys
import tempfile
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


def _compile_once(spec: Path, cache: Path) -> dict[str, float]:
    """One `nlic compile` in a fresh process with the compile cache in `cache`: wall, CPU and compile-phase seconds,
    and the entries it loaded."""
    cmd = [sys.executable, "-m", "nlic.runtime.cli", "--compile-cache", str(cache), "compile", str(spec), "--no-write"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(r.returncode)
    phase = re.search(r"compiled in ([\d.]+) s", r.stderr)
    loaded = re.search(r"compile cache: .* \((\d+) loaded, (\d+) written\)", r.stdout)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "compile_s": float(phase.group(1)) if phase else float("nan"),
        "loaded": int(loaded.group(1)) if loaded else -1,
        "written": int(loaded.group(2)) if loaded else -1,
    }


def compile_times(specs: list[Path]) -> list[dict]:
    """Cold then warm `nlic compile` of each spec (see the module docstring); prints one line per run."""
    rows = []
    for spec in specs:
        load_spec(spec)  # a bad spec is a located error here, not a failed subprocess
        with tempfile.TemporaryDirectory(prefix="nlic-speed-cache-") as cache:
            for state in ("cold", "warm"):
                row = {"spec": str(spec), "cache": state, **_compile_once(spec, Path(cache))}
                rows.append(row)
                print(f"{spec.name:22s} {state}: {row['wall_s']:7.1f} s wall, {row['cpu_s']:7.1f} s CPU, compile phase "
                      f"{row['compile_s']:5.1f} s ({row['loaded']} loaded, {row['written']} written)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", nargs="*", help="spec files (default: specs/shift_l.yaml; with --compile, specs/*.yaml)")
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="cold and warm `nlic compile` seconds instead")
    args = p.parse_args(argv)

    if args.compile:
        compile_times([Path(s) for s in args.spec] or sorted((ROOT / "specs").glob("*.yaml")))
        return 0
    if len(args.spec) > 1:
        p.error("throughput takes one spec")
    args.spec = args.spec[0] if args.spec else str(ROOT / "specs" / "shift_l.yaml")

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
