"""Lowering: build a spec's model at its shapes, AOT-compile train step, search and executor, export the executor.

The exported executor (`jax.export`, serialised StableHLO) replays programs without nlic's model code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nlic.grammar.errors import ArtifactError, DataError, Loc, ProgramError

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "FAST_COMPILE",
    "kind_of",
    "abstract_model",
    "count_parameters",
    "export_executor",
    "compile_spec",
    "format_summary",
    "Artifact",
    "load_artifact",
]

ARTIFACT_FORMAT = "nlic-executor"
ARTIFACT_VERSION = 1
EXPORT_FILE = "executor.jaxexport"
EXPORT_META_FILE = "executor.json"
WEIGHTS_FILE = "weights.npz"
SUMMARY_FILE = "summary.json"
EXPORT_PLATFORMS = ("cpu", "cuda")


def _is_leaf_array(x: Any) -> bool:
    return eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def kind_of(spec: Any) -> Any:
    """The registered `ModelKind` of `spec.model.kind`, importing `nlic.compiler.models.<kind>` on demand.

    Raises:
        SpecError: no such kind (listing the registered ones).
    """
    from nlic.compiler.kinds import MODEL_KINDS

    name = spec.model.kind
    if name not in MODEL_KINDS:
        importlib.import_module("nlic.compiler.models")
        try:
            importlib.import_module(f"nlic.compiler.models.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"nlic.compiler.models.{name}":
                raise
    return MODEL_KINDS.get(name, loc=Loc("model.kind"))


def abstract_model(spec: Any) -> Any:
    """The spec's model with `jax.ShapeDtypeStruct` leaves (no computation): a template to load weights into."""
    from nlic.runtime.tasks import shapes_of

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
# only make LLVM's code generation cheaper, which is most of the compile time on CPU.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _lower(fn: Callable[..., Any], *args: Any, static_out: list[Any] | None = None) -> tuple[Any, float]:
    """`jax.jit(fn).lower(...)` for pytrees mixing arrays and static values; returns (lowered, seconds).

    The compiled function takes the array leaves of `args` (as one pytree) and returns the array leaves of the
    result (None where `fn` returned static values); those static values are appended to `static_out`, so
    that outputs can be recombined without tracing `fn` a second time.
    """
    dyn, static = eqx.partition(args, _is_leaf_array)

    def pure(dyn_args):
        arrays, rest = eqx.partition(fn(*eqx.combine(dyn_args, static)), eqx.is_array)
        if static_out is not None:
            static_out.append(rest)
        return arrays  # static parts of returned modules are not jit outputs

    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), dyn)
    t0 = time.perf_counter()
    lowered = jax.jit(pure).lower(abstract)
    return lowered, time.perf_counter() - t0


def _compile_all(lowered: dict[str, tuple[Any, float]], options: dict[str, Any] | None) -> dict[str, tuple[Any, float]]:
    """Compile several lowered functions at once: XLA releases the GIL, so they overlap on a multi-core CPU.

    Returns name -> (compiled, seconds of lowering plus compiling that function).
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(item):
        name, (low, lower_s) = item
        t0 = time.perf_counter()
        compiled = low.compile(compiler_options=options)
        return name, (compiled, lower_s + time.perf_counter() - t0)

    with ThreadPoolExecutor(max_workers=max(1, len(lowered))) as pool:
        return dict(pool.map(one, lowered.items()))


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


def _abstract_batch(shapes: Any, n: int) -> Any:
    from nlic.compiler.kinds import Batch

    i32 = jnp.int32
    return Batch(
        inputs=jax.ShapeDtypeStruct((n, shapes.pairs, shapes.length), i32),
        outputs=jax.ShapeDtypeStruct((n, shapes.pairs, shapes.length), i32),
        pair_mask=jax.ShapeDtypeStruct((n, shapes.pairs), jnp.bool_),
        query_input=jax.ShapeDtypeStruct((n, shapes.length), i32),
        query_output=jax.ShapeDtypeStruct((n, shapes.length), i32),
    )


def _executor_fn(kind: Any, model: Any) -> tuple[Callable[..., Any], list[Any]]:
    """`f(weights, programs, inputs)` running `kind.execute` on a flat list of weight leaves, and those leaves."""
    arrays, static = eqx.partition(model, _is_leaf_array)
    leaves, treedef = jax.tree_util.tree_flatten(arrays)

    def run(weights, programs, inputs):
        m = eqx.combine(jax.tree_util.tree_unflatten(treedef, list(weights)), static)
        return kind.execute(m, programs, inputs).astype(jnp.int32)

    return run, leaves


def export_executor(spec: Any, kind: Any, model: Any, shapes: Any) -> tuple[bytes, dict[str, Any]]:
    """Serialised `jax.export` of the executor with a symbolic batch dimension, and its `executor.json` metadata.

    The exported function takes `(weights: list of leaves, programs: int32[b, max_length], inputs: int32[b, L])`
    and returns int32[b, L].
    """
    from nlic.runtime.run_dir import spec_hash

    run, leaves = _executor_fn(kind, model)
    (b,) = jax.export.symbolic_shape("b")
    tmax = int(spec.language.max_length)
    args = (
        [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves],
        jax.ShapeDtypeStruct((b, tmax), jnp.int32),
        jax.ShapeDtypeStruct((b, shapes.length), jnp.int32),
    )
    try:
        # One artifact for CPU and GPU hosts: StableHLO lowered for both, picked at call time.
        exported = jax.export.export(jax.jit(run), platforms=EXPORT_PLATFORMS)(*args)
    except Exception:  # a kind using a platform-specific op: export for this backend only (recorded in meta)
        exported = jax.export.export(jax.jit(run))(*args)
    blob = bytes(exported.serialize())
    meta = {
        "format": ARTIFACT_FORMAT,
        "version": ARTIFACT_VERSION,
        "kind": kind.name,
        "spec_hash": spec_hash(spec),
        "length": int(shapes.length),
        "values": int(shapes.values),
        "vocab": int(spec.language.vocab),
        "max_length": tmax,
        "skip_token": int(spec.language.skip_token),
        "platforms": list(exported.platforms),
        "leaves": [{"shape": list(x.shape), "dtype": np.dtype(x.dtype).name} for x in leaves],
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    return blob, meta


def compile_spec(spec: Any, *, out: Path | None = None, log: Callable[[str], None] | None = None,
                 optimize: bool = False) -> dict[str, Any]:
    """Build, AOT-compile and (with `out`) write the build directory of `spec`; returns the summary.

    Compiles the training step (one batch of `training.batch` tasks), the search (`kind.solve` on `search.batch`
    tasks with `spec.search`) and, for kinds with discrete programs, the executor (one datum, a program of
    `language.max_length` tokens; XLA counts the scanned step once, so its FLOPs are those of one executor step),
    then exports the executor. All compile at once (with the initialiser) on a thread pool.

    Args:
        spec: the validated spec.
        out: build directory to write (spec.yaml, summary.json, executor.jaxexport, executor.json, weights.npz).
        log: called with one line per stage.
        optimize: compile with XLA's full CPU code generation (as training does) instead of the fast
            `FAST_COMPILE` options; the FLOP and memory estimates are the same, only compile times differ.
    """
    from nlic.runtime import run_dir as rd
    from nlic.runtime.tasks import shapes_of
    from nlic.runtime.train import init_state, make_optimizer

    say = log or (lambda _s: None)
    options = None if optimize else FAST_COMPILE
    t_start = time.perf_counter()
    kind = kind_of(spec)
    shapes = shapes_of(spec)
    optim = make_optimizer(spec.training)
    rest: list[Any] = []
    # Trace the initialiser once; every other function is traced at its output *shapes*, so the initialiser
    # compiles and runs while they are traced and compiled.
    lowered = {"init": _lower(lambda seed: init_state(spec, kind, shapes, optim), jax.ShapeDtypeStruct((), jnp.uint32),
                              static_out=rest)}
    model, opt_state, key = eqx.combine(lowered["init"][0].out_info, rest[0])
    params = count_parameters(model)

    def train_step(model, opt_state, batch, t, step, key):
        k = jax.random.fold_in(key, step)
        (loss, _), grads = eqx.filter_value_and_grad(lambda m: kind.loss(m, batch, t, key=k), has_aux=True)(model)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    search = spec.search

    def solve(model, batch, key):
        return kind.solve(model, batch, search, key=key)

    lowered |= {
        "train_step": _lower(train_step, model, opt_state, _abstract_batch(shapes, spec.training.batch),
                             jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32), key),
        "search": _lower(solve, model, _abstract_batch(shapes, search.batch), key),
    }
    if kind.execute is not None:
        run, leaves = _executor_fn(kind, model)
        lowered["executor"] = _lower(run, leaves, jax.ShapeDtypeStruct((1, spec.language.max_length), jnp.int32),
                                     jax.ShapeDtypeStruct((1, shapes.length), jnp.int32))
    say(f"traced {', '.join(lowered)} in {sum(s for _, s in lowered.values()):.1f} s; compiling")
    t0 = time.perf_counter()
    compiled = _compile_all(lowered, options)
    init, build_s = compiled.pop("init")
    # The initial weights, as `nlic train` starts from them (same seed, same initialiser).
    model, opt_state, key = eqx.combine(init((jnp.asarray(spec.seed, jnp.uint32),)), rest[0])
    compile_wall = time.perf_counter() - t0
    say(f"built {kind.name} model for L={shapes.length} V={shapes.values} m={shapes.pairs}: {params['total']:,} "
        f"parameters")
    functions: dict[str, Any] = {
        "train_step": {"batch": spec.training.batch, **_costs(*compiled["train_step"])},
        "search": {"batch": search.batch, "method": search.method, **_costs(*compiled["search"])},
    }
    if "executor" in compiled:
        functions["executor"] = {"batch": 1, "program_length": int(spec.language.max_length),
                                 **_costs(*compiled["executor"])}
    each = ", ".join(f"{k} {v['compile_s']:.1f} s" for k, v in functions.items())
    say(f"compiled in {compile_wall:.1f} s ({each})")

    blob = meta = None
    if kind.execute is not None:
        t0 = time.perf_counter()
        blob, meta = export_executor(spec, kind, model, shapes)
        functions["export"] = {"compile_s": round(time.perf_counter() - t0, 3)}
        say(f"exported executor in {functions['export']['compile_s']:.1f} s")

    summary = {
        "name": spec.name,
        "kind": kind.name,
        "spec_hash": rd.spec_hash(spec),
        "shapes": dataclasses.asdict(shapes),
        "parameters": params,
        "functions": functions,
        "optimized": bool(optimize),
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "build_s": round(build_s, 3),
        "total_s": round(time.perf_counter() - t_start, 3),
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        rd.write_spec(out, spec)
        if blob is not None:
            rd.atomic_write(out / EXPORT_FILE, blob)
            rd.atomic_write(out / EXPORT_META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
            buf = io.BytesIO()
            np.savez(buf, **{f"leaf_{i:05d}": x for i, x in enumerate(rd.weight_leaves(model))})
            rd.atomic_write(out / WEIGHTS_FILE, buf.getvalue())
        summary["total_s"] = round(time.perf_counter() - t_start, 3)
        rd.atomic_write(out / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


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
    mode = ("full XLA optimisation" if summary.get("optimized")
            else "fast code generation; --optimize compiles as training does")
    lines.append(f"total {summary['total_s']:.1f} s ({mode})")
    return "\n".join(lines)


# --- the artifact ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A loaded build directory: the exported executor and its metadata (no nlic model code needed to run it).

    Attributes:
        directory: the build directory.
        meta: `executor.json` (format, version, kind, spec_hash, length, values, vocab, max_length, skip_token,
            leaves, sha256).
        exported: the deserialised `jax.export.Exported`.
    """

    directory: Path
    meta: dict[str, Any]
    exported: Any

    @property
    def spec_hash(self) -> str:
        return self.meta["spec_hash"]

    def weights(self) -> list[np.ndarray]:
        """The initial weights written by `nlic compile` (`weights.npz`)."""
        return self.load_weights(self.directory / WEIGHTS_FILE)

    def load_weights(self, path: Path | str) -> list[np.ndarray]:
        """Leaves from a weights file (`weights.npz` or a run's `executor_weights.npz`), checked against the export."""
        from nlic.grammar.errors import CheckpointError
        from nlic.runtime.run_dir import load_executor_weights

        try:
            leaves = load_executor_weights(Path(path))
        except CheckpointError as e:
            raise ArtifactError(diagnostics=e.diagnostics) from None
        self._check_weights(leaves, Path(path))
        return leaves

    def _check_weights(self, weights: Sequence[Any], where: Path | None = None) -> None:
        spec = self.meta["leaves"]
        loc = Loc(str(where)) if where is not None else Loc(str(self.directory / EXPORT_META_FILE))
        if len(weights) != len(spec):
            raise ArtifactError(f"{len(weights)} weight arrays given, the executor takes {len(spec)}", loc=loc,
                                hint="use the weights of a run of the same spec")
        for i, (w, s) in enumerate(zip(weights, spec)):
            if list(np.shape(w)) != s["shape"] or np.dtype(np.asarray(w).dtype).name != s["dtype"]:
                raise ArtifactError(
                    f"weight {i} is {np.asarray(w).dtype.name}{list(np.shape(w))}, the executor takes "
                    f"{s['dtype']}{s['shape']}",
                    loc=loc, hint="use the weights of a run of the same spec",
                )

    def run(self, weights: Sequence[np.ndarray], programs: Any, inputs: Any) -> np.ndarray:
        """Run discrete programs on inputs with the exported executor.

        Args:
            weights: leaves in export order (from `weights()`, `load_weights` or a run's `executor_weights.npz`).
            programs: int [B, T] token ids, T <= max_length (padded here with the skip token).
            inputs: int [B, L] data in [0, V).

        Returns:
            int32 [B, L] outputs.

        Raises:
            ArtifactError: weights of other shapes. ProgramError: tokens out of range or programs too long.
            DataError: inputs of the wrong length or out-of-range values.
        """
        m = self.meta
        self._check_weights(weights)
        programs = np.asarray(programs)
        inputs = np.asarray(inputs)
        if programs.ndim != 2 or inputs.ndim != 2 or len(programs) != len(inputs):
            raise DataError(f"expected programs [B, T] and inputs [B, L] with the same B, got {list(programs.shape)} "
                            f"and {list(inputs.shape)}")
        if programs.shape[1] > m["max_length"]:
            raise ProgramError(f"a program of {programs.shape[1]} tokens is longer than the language's maximum "
                               f"of {m['max_length']}", hint="drop skip tokens or raise language.max_length")
        if programs.size and (programs.min() < 0 or programs.max() >= m["vocab"]):
            raise ProgramError(f"program tokens must lie in [0, {m['vocab']})",
                               hint="check the program file's language")
        if inputs.shape[1] != m["length"]:
            raise DataError(f"inputs have length {inputs.shape[1]}, the executor reads {m['length']}")
        if inputs.size and (inputs.min() < 0 or inputs.max() >= m["values"]):
            raise DataError(f"input values must lie in [0, {m['values']})")
        here = jax.default_backend()
        if here not in self.exported.platforms and not (here == "gpu" and "cuda" in self.exported.platforms):
            raise ArtifactError(f"the executor was exported for {', '.join(self.exported.platforms)}, not {here}",
                                loc=Loc(str(self.directory)), hint="re-run `nlic compile` on this machine")
        pad = m["max_length"] - programs.shape[1]
        programs = np.pad(programs.astype(np.int32), ((0, 0), (0, pad)), constant_values=m["skip_token"])
        out = self.exported.call([jnp.asarray(w) for w in weights], jnp.asarray(programs),
                                 jnp.asarray(inputs, jnp.int32))
        return np.asarray(out)


def load_artifact(build_dir: Path | str) -> Artifact:
    """Load the exported executor of a build directory written by `nlic compile`.

    Raises:
        ArtifactError: missing, corrupt (checksum), unsupported or inconsistent files.
    """
    d = Path(build_dir)
    meta_path = d / EXPORT_META_FILE
    if not d.is_dir():
        raise ArtifactError("no such build directory", loc=Loc(str(d)),
                            hint="create it with `nlic compile SPEC --out DIR`")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"no exported executor ({EXPORT_META_FILE} is missing)", loc=Loc(str(d)),
                            hint="only kinds with discrete programs export one; run `nlic compile SPEC --out DIR`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"corrupt executor metadata: {e}", loc=Loc(str(meta_path)),
                            hint="re-run `nlic compile`") from None
    need = ("format", "version", "spec_hash", "length", "values", "vocab", "max_length", "skip_token", "leaves", "sha256")
    if not isinstance(meta, dict) or meta.get("format") != ARTIFACT_FORMAT or any(k not in meta for k in need):
        raise ArtifactError("not an nlic executor description", loc=Loc(str(meta_path)), hint="re-run `nlic compile`")
    if meta["version"] != ARTIFACT_VERSION:
        raise ArtifactError(f"executor format version {meta['version']} is not supported (this nlic reads "
                            f"{ARTIFACT_VERSION})", loc=Loc(str(meta_path)), hint="re-run `nlic compile`")
    blob_path = d / EXPORT_FILE
    try:
        blob = blob_path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError("the exported executor is missing", loc=Loc(str(blob_path)),
                            hint="re-run `nlic compile`") from None
    if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise ArtifactError("the exported executor is corrupt (checksum mismatch)", loc=Loc(str(blob_path)),
                            hint="re-run `nlic compile`")
    try:
        exported = jax.export.deserialize(bytearray(blob))
    except Exception as e:  # flatbuffer / version errors come in several types
        raise ArtifactError(f"cannot deserialise the exported executor: {e}", loc=Loc(str(blob_path)),
                            hint="was it written by a newer jax? re-run `nlic compile`") from None
    if len(exported.in_avals) != len(meta["leaves"]) + 2:
        raise ArtifactError("executor.json does not describe the exported function's arguments",
                            loc=Loc(str(meta_path)), hint="re-run `nlic compile`")
    return Artifact(directory=d, meta=meta, exported=exported)
