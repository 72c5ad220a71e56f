"""LPN on its own Pattern task: the training step's speed at the LPN paper's configuration, and what test-time
gradient search on the latent adds over no search on a trained run.

The speed part builds the model of the spec (untrained weights: the cost of a step does not depend on them),
compiles one training step at `--batch` tasks (the paper's 128 by default) and times it: seconds per step, steps/s,
tasks/s, the step's FLOPs from XLA's cost analysis, and how long the paper's 20k steps would take here.

The search part (`--run`) solves `--tasks` tasks of a split with no search and with gradient search of each
`--search-steps` budget on the run's latent, and reports exact accuracy (the whole query grid right), cell
accuracy (the fraction of query cells right: informative where a short training gets few grids exactly right) and
the mean spec NLL of the chosen latent (what the search minimises; never above no search's).

Usage: python benchmarks/lpn_pattern.py [--spec specs/baselines/pattern_lpn.yaml] [--batch 128] [--repeats 2]
       python benchmarks/lpn_pattern.py --run runs/pattern_lpn-seed0 [--split id] [--tasks 100] [--search-steps 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from nlic.compiler import init_state, kind_of, load_spec, make_optimizer, make_train_step, sample_split, shapes_of
from nlic.runtime import load_run, solve
from nlic.runtime.solve import warm_up
from nlic.runtime.cli import guarded

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
PAPER_STEPS = 20_000


def speed(spec_path: str, batch: int, repeats: int) -> None:
    """Print the training step's time at `batch` tasks for the spec's model and training sections."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    spec = load_spec(spec_path)
    spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, batch=batch))
    kind = kind_of(spec)
    optim = make_optimizer(spec.training)
    model, opt_state, key = init_state(spec, kind, shapes_of(spec), optim)
    tasks = sample_split(spec, "train", batch, seed=0).batch()
    step = make_train_step(kind, optim)
    args = (model, opt_state, tasks, jnp.float32(0.0), jnp.int32(0), key)
    t0 = time.perf_counter()
    compiled = step.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.compiled.cost_analysis()  # the jax.stages.Compiled inside equinox's wrapper
    cost = cost[0] if isinstance(cost, list) else cost
    gflop = (cost or {}).get("flops", float("nan")) / 1e9
    jax.block_until_ready(compiled(*args)[2])  # first call (dispatch, allocation) outside the timing
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(model, opt_state, tasks, jnp.float32(0.0), jnp.int32(i + 1), key)[2])
        best = min(best, time.perf_counter() - t0)
    lat = spec.model.latent
    params = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
    print(f"# {spec.name}: training step at batch {batch}, {lat.inner_steps} inner step(s), {params:,} parameters, "
          f"{os.cpu_count()} CPUs, {jax.devices()[0].platform}")
    print(f"compile {compile_s:.1f} s; step {best:.2f} s (best of {repeats}): {1 / best:.4f} steps/s, "
          f"{batch / best:.1f} tasks/s, {gflop:.1f} GFLOP/step ({gflop / best:.1f} GFLOP/s)")
    print(f"the paper's {PAPER_STEPS:,} steps at this batch: {PAPER_STEPS * best / 3600:.1f} h here")


def search(run: str, split: str, n: int, budgets: list[int], seed: int) -> None:
    """Print no search against gradient search of each budget on `n` tasks of `split` of a trained run."""
    import numpy as np

    spec, model = load_run(run)
    tasks = sample_split(spec, split, n, seed=seed)
    target = tasks.has_target
    print(f"# {spec.name} ({run}): {n} {split} tasks (seed {seed}), {os.cpu_count()} CPUs")
    print("| search | exact accuracy | cell accuracy | spec NLL | s/task |")
    print("|---|---|---|---|---|")
    configs = [("none", dataclasses.replace(spec.search, method="none"))]
    configs += [(f"gradient {b} steps", dataclasses.replace(spec.search, method="gradient", steps=b)) for b in budgets]
    for label, s in configs:
        warm_up(spec, model, tasks, search=s)  # compile outside the timing
        r = solve(spec, model, tasks, search=s, seed=spec.seed)
        cells = (r.outputs == tasks.query_outputs)[target].mean() if target.any() else float("nan")
        print(f"| {label} | {r.accuracy:.2f} | {cells:.3f} | {-np.mean(r.spec_loglik):.4f} | "
              f"{r.seconds / len(tasks):.3f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "specs" / "baselines" / "pattern_lpn.yaml"))
    p.add_argument("--batch", type=int, default=128, help="tasks per training step (the LPN paper: 128)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--run", help="a trained run directory: compare no search with gradient search on it")
    p.add_argument("--split", default="id")
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--seed", type=int, default=12345, help="seed of the sampled tasks")
    p.add_argument("--search-steps", default="100", help="gradient search budgets, e.g. 10,100")
    args = p.parse_args(argv)
    for name in ("batch", "repeats", "tasks"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    try:
        budgets = [int(b) for b in args.search_steps.split(",") if b.strip()]
    except ValueError:
        p.error(f"--search-steps takes integers separated by commas, not {args.search_steps!r}")
    if args.run:
        search(args.run, args.split, args.tasks, budgets, args.seed)
    else:
        speed(args.spec, args.batch, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))  # bad input: the located message and exit code 2, not a traceback
