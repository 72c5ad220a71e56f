"""Lowering: build a spec's model at its shapes, AOT-compile train step, search and executor, export the executor
(and the execution trace of kinds that have one).

The exported executor (`jax.export`, serialised StableHLO) replays programs without nlic's model code. Nothing
here writes files: `nlic.runtime.build.write_build` writes a `CompiledSpec` as a build directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nlic.compiler.families import shapes_of
from nlic.compiler.identity import spec_hash
from nlic.compiler.kinds import Batch, ModelKind, Shapes, kind_of
from nlic.compiler import tracecache
from nlic.compiler.optim import init_fn, make_optimizer, traced_code, train_step_fn
from nlic.compiler.spec import Spec

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "TRACE_FORMAT",
    "TRACE_VERSION",
    "FAST_COMPILE",
    "CompiledSpec",
    "abstract_model",
    "count_parameters",
    "export_executor",
    "export_trace",
    "compile_spec",
    "format_summary",
]

ARTIFACT_FORMAT = "nlic-executor"
ARTIFACT_VERSION = 1
TRACE_FORMAT = "nlic-trace"
TRACE_VERSION = 1
EXPORT_PLATFORMS = ("cpu", "cuda")


def _is_leaf_array(x: Any) -> bool:
    return eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def abstract_model(spec: Any) -> Any:
    """The spec's model with `jax.ShapeDtypeStruct` leaves (no computation): a template to load weights into."""
    kind = kind_of(spec)
    return eqx.filter_eval_shape(kind.build, spec, shapes_of(spec), key=jax.random.key(0))


def count_parameters(model: Any) -> dict[str, int]:
    """Trainable (floating) parameters per top-level field of the model (its components), plus `total`.

    Works on concrete models and on `jax.ShapeDtypeStruct` templates.
    """
    def floating(x: Any) -> bool:
        return eqx.is_inexact_array(x) or (isinstance(x, jax.ShapeDtypeStruct) and jnp.issubdtype(x.dtype, jnp.inexact))

    def size(tree: Any) -> int:
        return int(sum(np.prod(x.shape, dtype=np.int64) for x in jax.tree_util.tree_leaves(eqx.filter(tree, floating))))

    out: dict[str, int] = {}
    if dataclasses.is_dataclass(model):
        for f in dataclasses.fields(model):
            n = size(getattr(model, f.name))
            if n:
                out[f.name] = n
    out["total"] = size(model)
    return out


# XLA's HLO passes (which fix FLOPs, fusion and buffer assignment, hence the estimates) run either way; these
# make the CPU code generation, most of the compile time, cheaper. The legacy fusion emitters (not the MLIR ones)
# halve it again: shift_l's `nlic compile` took 36 s of CPU instead of 68 s, its FLOP and memory estimates moving
# by under 0.1%. Training and search compile with XLA's defaults, so no trained weight or search result depends on
# these options (the build's initial weights are within 1e-6 of training's, with or without them).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                "xla_cpu_use_fusion_emitters": False, "xla_cpu_parallel_codegen_split_count": 1}


def _state_template(spec: Any, kind: Any, shapes: Any, optim: Any) -> tuple[Any, Any, Any]:
    """`(model, opt_state, train_key)` as `init_fn` returns them, with `jax.ShapeDtypeStruct` leaves, from the
    model's shapes (`abstract_model`) without tracing the initialiser's random draws."""
    model = abstract_model(spec)

    def floating(x: Any) -> bool:
        return isinstance(x, jax.ShapeDtypeStruct) and jnp.issubdtype(x.dtype, jnp.inexact)

    opt_state = jax.eval_shape(optim.init, eqx.filter(model, floating))
    key = jax.eval_shape(lambda: jax.random.split(jax.random.key(0))[1])
    return model, opt_state, key


def _state_rebuilder(template: Any, out_info: Any) -> Callable[[Any], Any] | None:
    """`outputs -> (model, opt_state, train_key)` for the flat outputs of the initialiser lowered by `tracecache`
    (keys as their data), or None when `template`'s leaves are not those outputs."""
    arrays, static = eqx.partition(template, _is_leaf_array)
    leaves, treedef = jax.tree_util.tree_flatten(arrays)
    outs = jax.tree_util.tree_leaves(out_info)
    keys = [jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) for x in leaves]
    want = [jax.eval_shape(jax.random.key_data, x) if k else x for x, k in zip(leaves, keys, strict=True)]
    if len(want) != len(outs) or any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(want, outs)):
        return None

    def rebuild(values: Any) -> Any:
        values = [jax.random.wrap_key_data(v) if k else v for v, k in zip(values, keys, strict=True)]
        return eqx.combine(jax.tree_util.tree_unflatten(treedef, values), static)

    return rebuild


class _Compiler:
    """Compiles lowered functions on one background thread while the caller goes on tracing the next ones.

    XLA releases the GIL while it compiles, so on a multi-core CPU a function's compilation overlaps the (Python,
    single-threaded) tracing and lowering of the functions after it. One compile at a time: on the 2-core CI
    machine shift_l's four functions compiled at once took 9.6 s, one after another 8 s. `result(name)` waits for
    that function.
    """

    def __init__(self, options: dict[str, Any] | None):
        self.options = options
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlic-compile")
        # Functions whose trace came from the store most likely load from the compile cache too: loading
        # executables two at a time is faster (deepcoder's warm compile phase 2.2 -> 1.5 s), compiling is not.
        self.loads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nlic-load")
        self.futures: dict[str, Any] = {}
        self.compile_s: dict[str, float] = {}  # XLA's part alone, per function

    def submit(self, name: str, lowered: tuple[Any, float], *, cached: bool = False) -> None:
        low, lower_s = lowered

        def one() -> tuple[Any, float]:
            t0 = time.perf_counter()
            compiled = low.compile(compiler_options=self.options)
            self.compile_s[name] = time.perf_counter() - t0
            return compiled, lower_s + self.compile_s[name]

        self.futures[name] = (self.loads if cached else self.pool).submit(one)

    def result(self, name: str) -> tuple[Any, float]:
        """(compiled, seconds of lowering plus compiling that function)."""
        return self.futures[name].result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.loads.shutdown(wait=True, cancel_futures=True)


def _costs(compiled: Any, seconds: float) -> dict[str, Any]:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax returned one dict per device
        cost = cost[0] if cost else {}
    cost = cost or {}
    mem = compiled.memory_analysis()
    memory = {}
    if mem is not None:
        for name in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
                     "generated_code_size_in_bytes", "alias_size_in_bytes", "peak_memory_in_bytes"):
            if hasattr(mem, name):
                memory[name.removesuffix("_in_bytes")] = int(getattr(mem, name))
    if memory:
        # peak_memory leaves out temporaries on CPU; arguments + outputs + temporaries bound what a call needs.
        memory["estimate"] = (memory.get("argument_size", 0) + memory.get("output_size", 0) + memory.get("temp_size", 0)
                              - memory.get("alias_size", 0))
    return {
        "flops": float(cost.get("flops", float("nan"))),
        "bytes_accessed": float(cost.get("bytes accessed", float("nan"))),
        "memory": memory,
        "compile_s": round(seconds, 3),
    }


def _abstract_batch(shapes: Shapes, n: int) -> Batch:
    i32 = jnp.int32
    return Batch(
        inputs=jax.ShapeDtypeStruct((n, shapes.pairs, shapes.length), i32),
        outputs=jax.ShapeDtypeStruct((n, shapes.pairs, shapes.length), i32),
        pair_mask=jax.ShapeDtypeStruct((n, shapes.pairs), jnp.bool_),
        query_input=jax.ShapeDtypeStruct((n, shapes.length), i32),
        query_output=jax.ShapeDtypeStruct((n, shapes.length), i32),
    )


def _weights_fn(fn: Callable[..., Any], model: Any) -> tuple[Callable[..., Any], list[Any]]:
    """`f(weights, programs, inputs)` calling `fn(model, programs, inputs)` on a flat list of the model's weight
    leaves, and those leaves (the argument order every exported function shares)."""
    arrays, static = eqx.partition(model, _is_leaf_array)
    leaves, treedef = jax.tree_util.tree_flatten(arrays)

    def run(weights, programs, inputs):
        return fn(eqx.combine(jax.tree_util.tree_unflatten(treedef, list(weights)), static), programs, inputs)

    return run, leaves


def _executor_fn(kind: Any, model: Any) -> tuple[Callable[..., Any], list[Any]]:
    """`f(weights, programs, inputs)` running `kind.execute` on a flat list of weight leaves, and those leaves."""
    return _weights_fn(lambda m, p, x: kind.execute(m, p, x).astype(jnp.int32), model)


def _trace_fn(kind: Any, model: Any) -> tuple[Callable[..., Any], list[Any]]:
    """`f(weights, programs, inputs) -> (values, probs)` running `kind.trace`, and the weight leaves."""
    def fn(m, p, x):
        values, probs = kind.trace(m, p, x)
        return values.astype(jnp.int32), probs.astype(jnp.float32)

    return _weights_fn(fn, model)


def _export(run: Callable[..., Any], leaves: list[Any], spec: Any, shapes: Any, *, name: str,
            kind: Any) -> tuple[Any, bytes]:
    """`jax.export` of `run(weights, programs: int32[b, max_length], inputs: int32[b, L])`, b symbolic, and its
    serialised bytes; from the trace store (`tracecache.export`) under `name` when it holds them."""
    (b,) = jax.export.symbolic_shape("b")
    args = (
        [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves],
        jax.ShapeDtypeStruct((b, int(spec.language.max_length)), jnp.int32),
        jax.ShapeDtypeStruct((b, shapes.length), jnp.int32),
    )

    def make() -> Any:
        try:
            # One artifact for CPU and GPU hosts: StableHLO lowered for both, picked at call time.
            return jax.export.export(jax.jit(run), platforms=EXPORT_PLATFORMS)(*args)
        except Exception:  # a kind using a platform-specific op: export for this backend only (recorded in meta)
            return jax.export.export(jax.jit(run))(*args)

    return tracecache.export(name, make, args[0], parts=(spec_hash(spec),), code=traced_code(kind))


def export_executor(spec: Any, kind: Any, model: Any, shapes: Any) -> tuple[bytes, dict[str, Any]]:
    """Serialised `jax.export` of the executor with a symbolic batch dimension, and its `executor.json` metadata.

    The exported function takes `(weights: list of leaves, programs: int32[b, max_length], inputs: int32[b, L])`
    and returns int32[b, L].
    """
    run, leaves = _executor_fn(kind, model)
    exported, blob = _export(run, leaves, spec, shapes, name="export_executor", kind=kind)
    meta = {
        "format": ARTIFACT_FORMAT,
        "version": ARTIFACT_VERSION,
        "kind": kind.name,
        "spec_hash": spec_hash(spec),
        "length": int(shapes.length),
        "values": int(shapes.values),
        "vocab": int(spec.language.vocab),
        "max_length": int(spec.language.max_length),
        "skip_token": int(spec.language.skip_token),
        "platforms": list(exported.platforms),
        "leaves": [{"shape": list(x.shape), "dtype": np.dtype(x.dtype).name} for x in leaves],
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    return blob, meta


def export_trace(spec: Any, kind: Any, model: Any, shapes: Any) -> tuple[bytes, dict[str, Any]]:
    """Serialised `jax.export` of the kind's execution trace (`ModelKind.trace`), and the fields of its header.

    The exported function takes the executor's arguments, `(weights, programs: int32[b, max_length],
    inputs: int32[b, L])` with a symbolic batch, and returns `(values: int32[b, max_length + 1, L],
    probs: float32[b, max_length + 1, L])`.

    Raises:
        ValueError: the kind has no trace.
    """
    if kind.trace is None:
        raise ValueError(f"model kind '{kind.name}' has no execution trace")
    run, leaves = _trace_fn(kind, model)
    exported, blob = _export(run, leaves, spec, shapes, name="export_trace", kind=kind)
    meta = {
        "kind": kind.name,
        "spec_hash": spec_hash(spec),
        "length": int(shapes.length),
        "max_length": int(spec.language.max_length),
        "platforms": list(exported.platforms),
        "leaves": len(leaves),
    }
    return blob, meta


@dataclasses.dataclass(frozen=True)
class CompiledSpec:
    """What `compile_spec` returns: the summary it reports and what a build directory holds.

    Attributes:
        spec: the spec compiled.
        kind: its model kind.
        summary: name, kind, spec hash, shapes, parameters, per-function FLOPs / memory / compile seconds,
            backend, devices and total seconds (what `format_summary` prints and `summary.json` holds).
        model: the initial model, as `nlic train` starts from it (same seed, same initialiser).
        executor: the serialised `jax.export` of the executor; None for kinds without discrete programs.
        executor_meta: its description (`executor.json`); None with `executor`.
        trace: the serialised `jax.export` of the execution trace (same arguments as the executor); None for
            kinds without `ModelKind.trace`.
        trace_meta: fields of its sealed header (`export_trace`); None with `trace`.
    """

    spec: Spec
    kind: ModelKind
    summary: dict[str, Any]
    model: Any
    executor: bytes | None = None
    executor_meta: dict[str, Any] | None = None
    trace: bytes | None = None
    trace_meta: dict[str, Any] | None = None


def compile_spec(spec: Spec, *, log: Callable[[str], None] | None = None, optimize: bool = False) -> CompiledSpec:
    """Build and AOT-compile `spec`'s functions, and export its executor and execution trace.

    Compiles the training step that `nlic train` runs (`nlic.compiler.optim.train_step_fn` on one batch of
    `training.batch` tasks), the search (`kind.solve` on `search.batch` tasks with `spec.search`, as one function:
    a `deepen` search's stages, which `nlic solve` compiles as two functions, enumerate at every depth and gradient
    search, compile slower apart, 42 s of CPU against 35 s for Comp-I's whole command) and, for kinds
    with discrete programs, the executor (one datum, a program of `language.max_length` tokens; XLA counts the
    scanned step once, so its FLOPs are those of one executor step), then exports the executor and, for kinds
    with `ModelKind.trace`, the execution trace (exported only, not AOT-compiled: the summary's `export_trace`
    seconds are its whole cost). Each function compiles on a background thread as soon as it is lowered, while
    the next is traced, and the exports trace while the last ones compile (`_Compiler`).

    Args:
        spec: the validated spec.
        log: called with one line per stage.
        optimize: compile with XLA's full CPU code generation (as training does) instead of the fast
            `FAST_COMPILE` options; the FLOP and memory estimates agree to 0.1%, compile times differ.
    """
    say = log or (lambda _s: None)
    options = None if optimize else FAST_COMPILE
    t_start = time.perf_counter()
    kind = kind_of(spec)
    shapes = shapes_of(spec)
    optim = make_optimizer(spec.training)
    # Trace the initialiser once; every other function is traced at its output *shapes*, so the initialiser
    # compiles while they are traced.
    compiler = _Compiler(options)
    try:
        parts, code = (spec_hash(spec),), traced_code(kind, spec.training.optimizer)
        loaded: list[str] = []
        seed = jax.ShapeDtypeStruct((), jnp.uint32)
        # The initialiser's results take the structure of a template made without its random draws, so that a
        # trace from the store is not traced again; a template that does not match the trace is made by tracing.
        initialise = init_fn(spec, kind, shapes, optim)
        low = tracecache.lower("init", initialise, (seed,), parts=parts, code=code, is_leaf=_is_leaf_array)
        template = _state_template(spec, kind, shapes, optim)
        rebuild = _state_rebuilder(template, low.lowered.out_info)
        if rebuild is None:
            template = eqx.filter_eval_shape(initialise, seed)
            rebuild = _state_rebuilder(template, low.lowered.out_info)
            assert rebuild is not None  # the same function's outputs
        lowered = {"init": (low.lowered, low.seconds)}
        if low.loaded:
            loaded.append("init")
        compiler.submit("init", lowered["init"], cached=low.loaded)
        model, opt_state, key = template
        params = count_parameters(model)
        search = spec.search

        def solve(model, batch, key):
            return kind.solve(model, batch, search, key=key)

        # Each function compiles on the background thread as soon as it is lowered, while the next is traced (or
        # loaded from the trace store: `tracecache`).

        def traced(name: str, fn: Callable[..., Any], *args: Any) -> None:
            low = tracecache.lower(name, fn, args, parts=parts, code=code, is_leaf=_is_leaf_array)
            lowered[name] = (low.lowered, low.seconds)
            if low.loaded:
                loaded.append(name)
            compiler.submit(name, lowered[name], cached=low.loaded)

        traced("train_step", train_step_fn(kind, optim), model, opt_state, _abstract_batch(shapes, spec.training.batch),
               jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32), key)
        traced("search", solve, model, _abstract_batch(shapes, search.batch), key)
        if kind.execute is not None:
            run, leaves = _executor_fn(kind, model)
            traced("executor", run, leaves, jax.ShapeDtypeStruct((1, spec.language.max_length), jnp.int32),
                   jax.ShapeDtypeStruct((1, shapes.length), jnp.int32))
        how = f" ({', '.join(loaded)} from the trace store)" if loaded else ""
        say(f"traced {', '.join(lowered)} in {sum(s for _, s in lowered.values()):.1f} s{how}; compiling")
        t_traced = time.perf_counter()
        # The exports need only the weights' shapes: they trace while the last functions compile.
        functions: dict[str, Any] = {}
        blob = meta = trace_blob = trace_meta = None
        if kind.execute is not None:
            t0 = time.perf_counter()
            blob, meta = export_executor(spec, kind, model, shapes)
            export_s = round(time.perf_counter() - t0, 3)
            if kind.trace is not None:
                t0 = time.perf_counter()
                trace_blob, trace_meta = export_trace(spec, kind, model, shapes)
                trace_s = round(time.perf_counter() - t0, 3)
        compiled = {name: compiler.result(name) for name in lowered}
    finally:
        compiler.close()
    init, build_s = compiled.pop("init")
    # The initial weights, as `nlic train` starts from them (same seed, same initialiser).
    model, opt_state, key = rebuild(init(jnp.asarray(spec.seed, jnp.uint32)))
    after_tracing = time.perf_counter() - t_traced
    say(f"built {kind.name} model for L={shapes.length} V={shapes.values} m={shapes.pairs}: {params['total']:,} "
        f"parameters")
    functions["train_step"] = {"batch": spec.training.batch, **_costs(*compiled["train_step"])}
    functions["search"] = {"batch": search.batch, "method": search.method, **_costs(*compiled["search"])}
    if "executor" in compiled:
        functions["executor"] = {"batch": 1, "program_length": int(spec.language.max_length),
                                 **_costs(*compiled["executor"])}
    each = ", ".join(f"{k} {v['compile_s']:.1f} s" for k, v in functions.items())
    say(f"compiled in {sum(compiler.compile_s.values()):.1f} s, waiting {after_tracing:.1f} s after the tracing "
        f"(lowering + compiling: {each})")
    if blob is not None:
        functions["export"] = {"compile_s": export_s}
        say(f"exported executor in {export_s:.1f} s")
    if trace_blob is not None:
        functions["export_trace"] = {"compile_s": trace_s}
        say(f"exported trace in {trace_s:.1f} s")

    summary = {
        "name": spec.name,
        "kind": kind.name,
        "spec_hash": spec_hash(spec),
        "shapes": dataclasses.asdict(shapes),
        "parameters": params,
        "functions": functions,
        "optimized": bool(optimize),
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "build_s": round(build_s, 3),
        "total_s": round(time.perf_counter() - t_start, 3),
    }
    return CompiledSpec(spec=spec, kind=kind, summary=summary, model=model, executor=blob, executor_meta=meta,
                        trace=trace_blob, trace_meta=trace_meta)


def _num(n: float) -> str:
    if n != n:  # NaN: the backend gave no estimate
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable summary `nlic compile` prints."""
    lines = [f"{summary['name']}: kind {summary['kind']}, spec {summary['spec_hash']}, shapes "
             f"L={summary['shapes']['length']} V={summary['shapes']['values']} m={summary['shapes']['pairs']}, "
             f"backend {summary['backend']} x{summary['devices']}"]
    lines.append("parameters:")
    for name, n in summary["parameters"].items():
        lines.append(f"  {name:<20} {n:>12,}")
    lines.append("functions (XLA estimates; loop bodies such as program steps are counted once):")
    lines.append(f"  {'function':<14} {'batch':>6} {'FLOPs':>10} {'memory':>14} {'compile':>9}")
    for name, f in summary["functions"].items():
        if "flops" not in f:
            continue
        mem = f["memory"].get("estimate", 0)
        lines.append(f"  {name:<14} {f['batch']:>6} {_num(f['flops']):>10} {_bytes(int(mem)):>14} "
                     f"{f['compile_s']:>8.2f}s")
    if "export" in summary["functions"]:
        export_s = summary["functions"]["export"]["compile_s"]
        lines.append(f"  export executor (jax.export, symbolic batch): {export_s:.2f}s")
    if "export_trace" in summary["functions"]:
        trace_s = summary["functions"]["export_trace"]["compile_s"]
        lines.append(f"  export trace (jax.export, symbolic batch): {trace_s:.2f}s")
    mode = ("full XLA optimisation" if summary.get("optimized")
            else "fast code generation; --optimize compiles as training does")
    lines.append(f"total {summary['total_s']:.1f} s ({mode})")
    return "\n".join(lines)
