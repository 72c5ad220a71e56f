"""Traced functions kept between processes: lowering from a stored `jax.export` instead of tracing again.

A warm `nlic compile` spent most of its time tracing (JAX running nlic's Python to build the jaxpr and its
StableHLO: 4.5 s of shift_l's 7 s, against 2 s of XLA loading compiled code from the compile cache). `lower`
traces a function once, stores its serialised `jax.export` (StableHLO, version-stamped by JAX) under a key, and a
later process with the same key deserialises it and lowers a call to it, which takes a tenth of the time.

Every function lowered here goes through the export, cache or no cache, so the code XLA compiles is the same
whether the trace came from the store or from nlic's Python.

**The key** (`trace_key`) hashes everything a trace depends on: the function's name and the caller's parts (the
spec's hash), the arguments' shapes, dtypes and tree structure with their static values, the source of nlic's three
packages (`code_fingerprint`) and of the modules outside nlic that define what is traced (a user's own model kind
or optimiser), the versions of jax, jaxlib, equinox and optax, the JAX flags that change tracing, and the backend.
A stale entry cannot match; a damaged one fails to deserialise or to match the arguments and is traced afresh.

Nothing here touches the disk: the runtime hands a store (`set_trace_store`), the compile cache's folder.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import inspect
import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import equinox as eqx
import jax

__all__ = [
    "TRACE_FORMAT",
    "Lowered",
    "TraceStore",
    "code_fingerprint",
    "describe",
    "export",
    "kept_arguments",
    "lower",
    "set_trace_store",
    "trace_key",
    "trace_store",
]

TRACE_FORMAT = 1
"""Bumped when what `lower` stores changes meaning."""

_PACKAGES = ("grammar", "compiler", "runtime")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # reprs of functions and objects: the same code, another address
_FLAGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_default_prng_impl", "jax_threefry_partitionable",
          "jax_numpy_dtype_promotion", "jax_numpy_rank_promotion", "jax_enable_custom_prng", "jax_dynamic_shapes")


@runtime_checkable
class TraceStore(Protocol):
    """Where `lower` keeps traces: bytes by key (a hex string). `get` returns None for no (usable) entry."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...


_store: dict[str, TraceStore | None] = {"store": None}


def set_trace_store(store: TraceStore | None) -> None:
    """Use `store` for the traces `lower` keeps (None: trace every time)."""
    _store["store"] = store


def trace_store() -> TraceStore | None:
    """The store `set_trace_store` set, or None."""
    return _store["store"]


def _roots() -> tuple[Path, ...]:
    """The folders of nlic's three packages: siblings of this one, installed or editable (pyproject's package-dir)."""
    here = Path(__file__).resolve().parent.parent
    return tuple(here / package for package in _PACKAGES)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of the source of nlic's three packages (every `.py` file, by its path inside them)."""
    h = hashlib.sha256()
    for package, root in zip(_PACKAGES, _roots(), strict=True):
        for path in sorted(root.rglob("*.py")):
            h.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _file_hash(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _outside_sources(objects: Iterable[Any]) -> list[str]:
    """Hashes of the source files of `objects` (functions, classes) that lie outside nlic's packages."""
    roots = _roots()
    out = set()
    for obj in objects:
        try:
            path = inspect.getsourcefile(obj)
        except TypeError:
            continue
        if path is None:
            continue
        resolved = Path(path).resolve()
        if any(resolved.is_relative_to(r) for r in roots):
            continue
        out.add(f"{resolved}:{_file_hash(str(resolved))}")
    return sorted(out)


def _versions() -> list[str]:
    out = []
    for dist in ("jax", "jaxlib", "equinox", "optax"):
        try:
            out.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{dist}=?")
    return out


def describe(x: Any) -> str:
    """`repr(x)` without memory addresses (the same function or object in another process)."""
    return _ADDRESS.sub("", repr(x))


def trace_key(name: str, parts: Iterable[str], dyn: Any, static: Any, code: Iterable[Any] = ()) -> str:
    """The key of a trace of `name` at array arguments `dyn` (leaves with `.shape`/`.dtype`) and static values
    `static`; `parts` are the caller's (the spec's hash), `code` the functions or classes whose source outside nlic
    the trace runs (their files are hashed)."""
    leaves, treedef = jax.tree_util.tree_flatten(dyn)
    s_leaves, s_def = jax.tree_util.tree_flatten(static)
    record = [
        f"nlic-trace {TRACE_FORMAT}", name, *parts,
        describe(treedef), *(f"{tuple(x.shape)}:{x.dtype}" for x in leaves),
        describe(s_def), *(describe(x) for x in s_leaves),
        code_fingerprint(), *_outside_sources(code), *_versions(),
        *(f"{f}={getattr(jax.config, f, None)}" for f in _FLAGS),
        jax.default_backend(), str(jax.device_count()), str(jax.process_count()),
    ]
    return hashlib.sha256("\n".join(record).encode()).hexdigest()


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _abstract(x: Any) -> jax.ShapeDtypeStruct:
    """What the exported function takes for leaf `x`: PRNG keys as their uint32 data (jax.export takes no key types)."""
    if _is_key(x):
        data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(x.shape, x.dtype))
        return jax.ShapeDtypeStruct(data.shape, data.dtype)
    return jax.ShapeDtypeStruct(x.shape, x.dtype)


@dataclasses.dataclass(frozen=True)
class Lowered:
    """What `lower` returns.

    Attributes:
        lowered: the `jax.stages.Lowered` function; it takes the array leaves of the arguments at `kept` (PRNG keys
            as their `jax.random.key_data`), as `jax.jit` does when it compiles the function itself (unread
            arguments are dropped), and returns the array leaves of the result (keys as their data).
        seconds: how long `lower` took.
        loaded: whether the trace came from the store.
        kept: positions, among the flat array leaves of the arguments, of those the function reads.
        info: what `outline` returned for the result when it was traced (JSON values), or None.
    """

    lowered: Any
    seconds: float
    loaded: bool
    kept: tuple[int, ...]
    info: Any = None


_MAGIC = b"nlic-trace\n"


def _pack(info: Any, blob: bytes) -> bytes:
    header = json.dumps({"format": TRACE_FORMAT, "info": info}, sort_keys=True).encode()
    return _MAGIC + len(header).to_bytes(8, "little") + header + blob


def _unpack(data: bytes) -> tuple[Any, bytes] | None:
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 8:
        return None
    at = len(_MAGIC)
    n = int.from_bytes(data[at:at + 8], "little")
    if n > min(len(data) - at - 8, 1 << 20):
        return None
    try:
        header = json.loads(data[at + 8:at + 8 + n])
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("format") != TRACE_FORMAT:
        return None
    return header.get("info"), data[at + 8 + n:]


def lower(
    name: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    parts: Iterable[str] = (),
    code: Iterable[Any] = (),
    is_leaf: Callable[[Any], bool] = eqx.is_array,
    outline: Callable[[Any], Any] | None = None,
    check: Callable[[Any], bool] | None = None,
) -> Lowered:
    """Lower `fn(*args)` for compilation, from the store when it holds this trace (see `Lowered`).

    `args` mixes arrays (or `jax.ShapeDtypeStruct`s: only their shapes count) and static values; `is_leaf` says
    which is which. `fn`'s static outputs are dropped: a caller that needs the result's structure rebuilds it,
    with `outline(result)` (abstract values, at trace time; JSON values, kept with the trace) to help. A stored
    trace whose outline `check` refuses is traced afresh.
    """
    t0 = time.perf_counter()
    dyn, static = eqx.partition(args, is_leaf)
    leaves, treedef = jax.tree_util.tree_flatten(dyn)
    keys = [_is_key(x) for x in leaves]
    abstract = [_abstract(x) for x in leaves]
    store = trace_store()
    key = trace_key(name, parts, dyn, static, code) if store is not None else None
    data = store.get(key) if store is not None and key is not None else None
    unpacked = _unpack(data) if data is not None else None
    if unpacked is not None and (check is None or _checks(check, unpacked[0])):
        exported = _deserialize(unpacked[1], abstract)
        if exported is not None:
            try:
                lowered, kept = _lower_call(exported, abstract)
            except Exception:  # an entry that deserialised but does not lower here: trace afresh (and overwrite it)
                pass
            else:
                return Lowered(lowered, time.perf_counter() - t0, True, kept, unpacked[0])
    described: list[Any] = []

    def flat(*xs):
        xs = [jax.random.wrap_key_data(x) if k else x for x, k in zip(xs, keys, strict=True)]
        out = fn(*eqx.combine(jax.tree_util.tree_unflatten(treedef, xs), static))
        if outline is not None:
            described.append(outline(out))
        arrays = jax.tree_util.tree_leaves(eqx.filter(out, eqx.is_array))
        return [jax.random.key_data(a) if _is_key(a) else a for a in arrays]

    try:
        exported = jax.export.export(jax.jit(flat))(*abstract)
        blob = bytes(exported.serialize())
    except Exception:
        # What jax.export refuses (a host callback in a user's model, say) compiles as a plain jit, not stored;
        # an error of `fn` itself is raised again here.
        described.clear()
        lowered = jax.jit(flat).lower(*abstract)
        info = described[0] if described else None
        return Lowered(lowered, time.perf_counter() - t0, False, tuple(range(len(abstract))), info)
    info = described[0] if described else None
    if store is not None and key is not None:
        store.put(key, _pack(info, blob))
    lowered, kept = _lower_call(exported, abstract)
    return Lowered(lowered, time.perf_counter() - t0, False, kept, info)


def export(name: str, make: Callable[[], Any], dyn: Any, *, parts: Iterable[str] = (),
           code: Iterable[Any] = ()) -> tuple[Any, bytes]:
    """`make()` (a `jax.export.Exported` of arguments `dyn`) and its serialised bytes, from the store under the key
    of `name` when it holds them (a damaged entry is made afresh and replaced)."""
    store = trace_store()
    key = trace_key(name, parts, dyn, (), code) if store is not None else None
    blob = store.get(key) if store is not None and key is not None else None
    if blob is not None:
        try:
            return jax.export.deserialize(bytearray(blob)), blob
        except Exception:
            pass
    exported = make()
    blob = bytes(exported.serialize())
    if store is not None and key is not None:
        store.put(key, blob)
    return exported, blob


def _checks(check: Callable[[Any], bool], info: Any) -> bool:
    try:
        return bool(check(info))
    except Exception:
        return False


def kept_arguments(exported: Any) -> list[int]:
    """The positions of the flat arguments the exported function reads (jit drops the others, as `jax.jit` does
    when it compiles a function directly: the lowered function of `lower` takes these only)."""
    return sorted(exported.module_kept_var_idx)


def _lower_call(exported: Any, abstract: list[jax.ShapeDtypeStruct]) -> tuple[Any, tuple[int, ...]]:
    """A call of `exported` lowered on the arguments it reads, and their positions."""
    kept = tuple(kept_arguments(exported))

    def call(*xs):
        full: list[Any] = [jax.numpy.zeros(a.shape, a.dtype) for a in abstract]  # never read: the module drops them
        for i, x in zip(kept, xs, strict=True):
            full[i] = x
        return exported.call(*full)

    return jax.jit(call).lower(*[abstract[i] for i in kept]), kept


def _deserialize(blob: bytes, abstract: list[jax.ShapeDtypeStruct]) -> Any:
    """The stored export, or None when it does not deserialise or does not take `abstract`."""
    try:
        exported = jax.export.deserialize(bytearray(blob))
    except Exception:  # a damaged or foreign entry: trace afresh (and overwrite it)
        return None
    try:
        ok = (len(exported.in_avals) == len(abstract)
              and all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(exported.in_avals, abstract)))
    except Exception:
        return None
    return exported if ok else None
