"""Throughput of the NLI executor and of each search method on a spec's model (untrained weights: the cost of a
forward pass does not depend on the values of the weights); with --compile, cold and warm `nlic compile` times;
with --train, the training step of each spec against the CPU's peak; with --attention, attention alone.

Usage: python benchmarks/speed.py [specs/shift_l.yaml] [--tasks 32] [--repeats 3]
       python benchmarks/speed.py --compile [SPEC ...] [--baseline OTHER_VENV/bin/python] [--rounds 2]
                                                         (default: every specs/*.yaml)
       python benchmarks/speed.py --train [SPEC ...] [--peak 157] [--with-compile]   (default: every shipped spec)
       python benchmarks/speed.py --attention [SPEC ...] [--peak 157]

--train prints per spec: the training step's median seconds (the step `nlic train` runs, at `training.batch`,
compiled with XLA's defaults as training does; `--repeats` timed calls after one that compiles), its FLOPs from
XLA's cost analysis, GFLOP/s and % of `--peak` (GFLOP/s of fp32 FMA; 157 is two Zen3 cores at AVX2), and the
spec's own search in seconds per task (`--tasks` tasks of the last eval split, compile excluded); with
--with-compile also the cold and warm `nlic compile` seconds of --compile.

--attention prints one line per attention shape of the specs (sequence length N, width D, heads H, as the models
call `Attention`, over `training.batch` x pairs sequences): forward + backward seconds, GFLOP/s by XLA's cost
analysis, a plain matmul of the same FLOPs as the ceiling reference, and the ceiling of the shapes themselves:
attention's two products (q k^T and the weights times v) alone, forward, each one batched matmul at the head width.

--compile runs `nlic compile SPEC --no-write` in fresh processes, cold (an empty compile cache folder) then warm (the
folder the cold run filled), and prints per spec: the process's wall seconds, its CPU seconds (user + system, a
measure that a busy machine inflates less), the command's `total` (tracing and compiling: the process less Python's
start and imports), the compile phase (`compiled in` of its log: XLA's seconds, tracing excluded) and the entries
and traces it loaded from the cache. With --baseline, another installation (an older checkout's venv) compiles each spec in turn with this
one, --rounds times, and the sums of both sides' wall seconds end the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nlic.compiler import load_spec
from nlic.compiler.families import sample_split, shapes_of
from nlic.compiler.kinds import kind_of
from nlic.compiler.models.layers import Attention
from nlic.compiler.optim import init_state, make_optimizer, train_step_fn
from nlic.compiler.models.nli import build, execute
from nlic.compiler.models.nli.search import search_cost
from nlic.runtime.solve import solve
from nlic.runtime.cli import guarded

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
PEAK_GFLOPS = 157.0  # fp32, two Zen3 cores with AVX2 FMA (2 x 2 FMA units x 8 lanes x 2 flops x ~2.45 GHz)


def shipped_specs() -> list[Path]:
    """Every spec in `specs/` and `specs/baselines/` (YAML)."""
    return sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "specs" / "baselines").glob("*.yaml"))


def _median(fn, repeats: int, *, cpu: bool = False) -> float | tuple[float, float]:
    """Median wall seconds of `repeats` timed calls (after one warm-up call that compiles); with `cpu`, also the
    median CPU seconds of this process (user + system, all threads), which a busy machine inflates less."""
    fn()
    walls, cpus = [], []
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    wall, cpu_s = sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]
    return (wall, cpu_s) if cpu else wall


def _flops(compiled) -> float:
    """FLOPs of a compiled function by XLA's cost analysis (NaN where the backend gives none)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", math.nan))


def train_step_speed(spec, *, repeats: int) -> dict[str, float]:
    """Median seconds and XLA FLOPs of the spec's training step at `training.batch` (random data of its shapes)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    kind, shapes = kind_of(spec), shapes_of(spec)
    optim = make_optimizer(spec.training)
    model, opt_state, key = init_state(spec, kind, shapes, optim)
    batch = sample_split(spec, spec.task.train_split, spec.training.batch, seed=0).batch()
    args = (model, opt_state, batch, jnp.float32(0.5), jnp.int32(1), key)
    compiled = eqx.filter_jit(train_step_fn(kind, optim)).lower(*args).compile()
    seconds, cpu_s = _median(lambda: jax.block_until_ready(compiled(*args)), repeats, cpu=True)
    return {"step_s": seconds, "step_cpu_s": cpu_s, "flops": _flops(compiled.compiled)}


def search_speed(spec, *, tasks: int) -> float:
    """Seconds per task of the spec's own search (untrained weights; compile excluded by a first call)."""
    import jax

    kind = kind_of(spec)
    model = kind.build(spec, shapes_of(spec), key=jax.random.key(spec.seed))
    split = [s for s in spec.eval.splits if s != spec.task.train_split][-1]
    sample = sample_split(spec, split, tasks, seed=1)
    solve(spec, model, sample)  # compile (the same batch shape as the timed call)
    r = solve(spec, model, sample)
    return r.seconds / len(sample)


def train_table(specs: list[Path], *, repeats: int, tasks: int, peak: float, with_compile: bool) -> list[dict]:
    """Training step, GFLOP/s, % of peak and search s/task per spec (and cold/warm compile); one line per spec."""
    rows = []
    for path in specs:
        spec = load_spec(path)
        row = {"spec": str(path), **train_step_speed(spec, repeats=repeats)}
        row["gflops"] = row["flops"] / row["step_s"] / 1e9
        row["peak_pct"] = 100 * row["gflops"] / peak
        row["search_s_per_task"] = search_speed(spec, tasks=tasks)
        line = (f"{path.stem:22s} step {row['step_s']:8.3f} s ({row['step_cpu_s']:7.3f} s CPU)  {row['flops'] / 1e9:8.2f} GFLOP  "
                f"{row['gflops']:6.1f} GFLOP/s  {row['peak_pct']:5.1f}% of peak  search {row['search_s_per_task']:.3f} s/task")
        if with_compile:
            with tempfile.TemporaryDirectory(prefix="nlic-speed-cache-") as cache:
                for state in ("cold", "warm"):
                    row[f"compile_{state}_s"] = _compile_once(path, Path(cache))["wall_s"]
            line += f"  compile cold {row['compile_cold_s']:.1f} s warm {row['compile_warm_s']:.1f} s"
        rows.append(row)
        print(line, flush=True)
    return rows


def attention_shapes(spec) -> list[tuple[int, int, int, bool]]:
    """(N, D, H, routed) of every distinct `Attention` call in the spec's training loss (traced abstractly)."""
    import jax
    import jax.numpy as jnp

    kind, shapes = kind_of(spec), shapes_of(spec)
    model = kind.build(spec, shapes, key=jax.random.key(0))
    batch = sample_split(spec, spec.task.train_split, 1, seed=0).batch()
    seen: list[tuple[int, int, int, bool]] = []
    original = Attention.__call__

    def record(self, x, positions=None, offset_bias=None, mirror_bias=None):
        key = (int(x.shape[0]), int(x.shape[1]), self.heads, offset_bias is not None)
        if key not in seen:
            seen.append(key)
        return original(self, x, positions, offset_bias, mirror_bias)

    Attention.__call__ = record
    try:
        jax.eval_shape(lambda m, b: kind.loss(m, b, jnp.float32(0.5), key=jax.random.key(0))[0], model, batch)
    finally:
        Attention.__call__ = original
    return seen


def attention_speed(n: int, d: int, heads: int, routed: bool, batch: int, *, repeats: int) -> dict[str, float]:
    """Forward + backward of `Attention` vmapped over `batch` sequences of n tokens, and a matmul of equal FLOPs."""
    import jax
    import jax.numpy as jnp

    attn = Attention(d, heads, span=n if routed else 256, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (batch, n, d))
    route = 0.1 * jax.random.normal(jax.random.key(2), (batch, heads, 2 * attn.span - 1)) if routed else None

    def loss(a, x, route):
        y = jax.vmap(lambda xi, ri: a(xi, None, ri), in_axes=(0, 0 if routed else None))(x, route)
        return jnp.sum(y * y)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(attn, x, route).compile()
    seconds = _median(lambda: jax.block_until_ready(grad(attn, x, route)), repeats)
    flops = _flops(grad)
    # The ceiling: one [M, K] @ [K, K] matmul with M * K^2 * 2 = the same FLOPs (K = 256).
    k = 256
    m = max(1, int(flops / (2 * k * k)))
    a, b = jnp.ones((m, k), jnp.float32), jnp.ones((k, k), jnp.float32)
    mm = jax.jit(jnp.matmul).lower(a, b).compile()
    mm_seconds = _median(lambda: jax.block_until_ready(mm(a, b)), repeats)
    # The shapes' own ceiling: attention's two products alone (scores q k^T and their weighting of v), forward only,
    # as one batched matmul each over batch x heads, at the head width d / heads: no softmax, no projections.
    dh = d // heads
    q = jnp.ones((batch * heads, n, dh), jnp.float32)
    pv = jnp.ones((batch * heads, n, n), jnp.float32)
    products = jax.jit(lambda q, p: (q @ jnp.swapaxes(q, 1, 2), p @ q)).lower(q, pv).compile()
    products_seconds = _median(lambda: jax.block_until_ready(products(q, pv)), max(repeats, 20))
    return {"seconds": seconds, "flops": flops, "matmul_gflops": 2 * m * k * k / mm_seconds / 1e9,
            "products_gflops": 4 * batch * heads * n * n * dh / products_seconds / 1e9}


def attention_table(specs: list[Path], *, repeats: int, peak: float) -> list[dict]:
    """One line per distinct attention shape of `specs` (see the module docstring)."""
    rows, done = [], set()
    for path in specs:
        spec = load_spec(path)
        batch = spec.training.batch * (spec.task.pairs + 1)
        for n, d, heads, routed in attention_shapes(spec):
            if (batch, n, d, heads, routed) in done:
                continue
            done.add((batch, n, d, heads, routed))
            r = attention_speed(n, d, heads, routed, batch, repeats=repeats)
            gflops = r["flops"] / r["seconds"] / 1e9
            rows.append({"spec": str(path), "batch": batch, "n": n, "d": d, "heads": heads, "routed": routed, **r})
            print(f"attention {path.stem:20s} {batch:4d} x N={n:<4d} D={d:<3d} H={heads}{' routed' if routed else ''}: "
                  f"fwd+bwd {r['seconds'] * 1e3:8.1f} ms  {gflops:6.1f} GFLOP/s ({100 * gflops / peak:4.1f}% of peak), "
                  f"matmul of equal FLOPs {r['matmul_gflops']:6.1f} GFLOP/s, its two products alone "
                  f"{r['products_gflops']:6.1f} GFLOP/s", flush=True)
    return rows


def _best(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls (after one warm-up call that compiles)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _compile_once(spec: Path, cache: Path, python: str | None = None) -> dict[str, float]:
    """One `nlic compile` in a fresh process with the compile cache in `cache`: wall, CPU and compile-phase seconds,
    and the entries it loaded. `python`: another installation's interpreter (default: this one's)."""
    cmd = [python or sys.executable, "-m", "nlic.runtime.cli", "--compile-cache", str(cache), "compile", str(spec),
           "--no-write"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(r.returncode)
    phase = re.search(r"compiled in ([\d.]+) s", r.stderr)
    loaded = re.search(r"compile cache: .* \((\d+) loaded, (\d+) written[;)]", r.stdout)
    traces = re.search(r"traces: (\d+) loaded", r.stdout)
    total = re.search(r"^total ([\d.]+) s", r.stdout, re.M)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "compile_s": float(phase.group(1)) if phase else float("nan"),
        "loaded": int(loaded.group(1)) if loaded else -1,
        "written": int(loaded.group(2)) if loaded else -1,
        "traces_loaded": int(traces.group(1)) if traces else 0,
        "total_s": float(total.group(1)) if total else float("nan"),  # the command less Python's start and imports
    }


def compile_times(specs: list[Path], *, baseline: str | None = None, rounds: int = 1) -> list[dict]:
    """Cold then warm `nlic compile` of each spec (see the module docstring); prints one line per run.

    With `baseline` (another installation's Python, e.g. an older checkout's venv), each spec is compiled by it and
    by this installation in turn, `rounds` times, and the sums of the cold and warm wall seconds end the output:
    on a noisy machine only runs interleaved like this compare.
    """
    rows = []
    sides = [("baseline", baseline), ("this", None)] if baseline else [("this", None)]
    for _ in range(max(1, rounds)):
        for spec in specs:
            load_spec(spec)  # a bad spec is a located error here, not a failed subprocess
            for side, python in sides:
                with tempfile.TemporaryDirectory(prefix="nlic-speed-cache-") as cache:
                    for state in ("cold", "warm"):
                        row = {"spec": str(spec), "cache": state, "side": side,
                               **_compile_once(spec, Path(cache), python)}
                        rows.append(row)
                        label = f"{side:8s} " if baseline else ""
                        print(f"{spec.name:22s} {label}{state}: {row['wall_s']:7.1f} s wall, "
                              f"{row['cpu_s']:7.1f} s CPU, total {row.get('total_s', math.nan):5.1f} s, compile phase "
                              f"{row['compile_s']:5.1f} s ({row['loaded']} loaded, {row['written']} written, "
                              f"{row.get('traces_loaded', 0)} traces loaded)", flush=True)
    if baseline:
        for state in ("cold", "warm"):
            total = {side: sum(r["wall_s"] for r in rows if r["side"] == side and r["cache"] == state)
                     for side, _ in sides}
            print(f"sum of {state} wall seconds: baseline {total['baseline']:.1f}, this {total['this']:.1f} "
                  f"(x{total['this'] / max(total['baseline'], 1e-9):.2f})", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", nargs="*", help="spec files (default: specs/shift_l.yaml; with --compile, specs/*.yaml)")
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="cold and warm `nlic compile` seconds instead")
    p.add_argument("--baseline", metavar="PYTHON", help="with --compile: also compile with this interpreter's nlic "
                   "(an older checkout's venv), alternating with this one")
    p.add_argument("--rounds", type=int, default=1, help="with --compile: repeat every spec this many times")
    p.add_argument("--train", action="store_true", help="training step s, GFLOP/s, %% of peak, search s/task per spec")
    p.add_argument("--with-compile", action="store_true", help="with --train: also cold and warm compile seconds")
    p.add_argument("--attention", action="store_true", help="attention alone at the specs' shapes")
    p.add_argument("--peak", type=float, default=PEAK_GFLOPS, help="the CPU's fp32 peak GFLOP/s (default 157)")
    args = p.parse_args(argv)
    if not args.peak > 0:
        p.error(f"--peak must be a positive GFLOP/s figure, not {args.peak}")
    if args.tasks < 1 or args.repeats < 1:
        p.error("--tasks and --repeats must be at least 1")

    if args.compile:
        compile_times([Path(s) for s in args.spec] or sorted((ROOT / "specs").glob("*.yaml")),
                      baseline=args.baseline, rounds=args.rounds)
        return 0
    if args.train or args.attention:
        specs = [Path(s) for s in args.spec] or shipped_specs()
        for path in specs:
            load_spec(path)  # every bad spec is a located error before minutes of benchmarking
        if args.attention:
            attention_table(specs, repeats=args.repeats, peak=args.peak)
        if args.train:
            train_table(specs, repeats=args.repeats, tasks=args.tasks, peak=args.peak, with_compile=args.with_compile)
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
