"""Run directories: the locked spec, environment, metrics, checkpoints and final weights of one training run.

Also the identity of a trained language: `spec_hash` (the canonical spec) and `fingerprint` (spec + weights).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import platform
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from nlic.grammar.errors import CheckpointError, Loc

__all__ = [
    "SPEC_FILE",
    "ENV_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "MODEL_META_FILE",
    "EXECUTOR_WEIGHTS_FILE",
    "CHECKPOINT_DIR",
    "RESULT_FILES",
    "spec_data",
    "spec_hash",
    "spec_diff",
    "trained_spec_diff",
    "UNTRAINED_SECTIONS",
    "weight_leaves",
    "fingerprint",
    "atomic_write",
    "env_info",
    "prepare",
    "write_spec",
    "write_env",
    "append_metrics",
    "read_metrics",
    "truncate_metrics",
    "save_model",
    "load_model",
    "check_leaves",
    "save_executor_weights",
    "load_executor_weights",
    "load_run",
]

SPEC_FILE = "spec.yaml"
ENV_FILE = "env.json"
METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.eqx"
MODEL_META_FILE = "model.json"
EXECUTOR_WEIGHTS_FILE = "executor_weights.npz"
CHECKPOINT_DIR = "checkpoints"
# Everything a run writes; `--force` removes exactly these and nothing else a user may have put there.
RESULT_FILES = (SPEC_FILE, ENV_FILE, METRICS_FILE, MODEL_FILE, MODEL_META_FILE, EXECUTOR_WEIGHTS_FILE, CHECKPOINT_DIR)
MODEL_FORMAT = 1


# --- identity -------------------------------------------------------------------------------------------------


def _plain(x: Any) -> Any:
    """A JSON-able, order-stable view of spec values (schedules and ranges as their canonical text)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        # Schedules and ranges are values users write as text; keep that text so diffs read like the spec.
        if type(x).__name__ in ("Schedule", "IntRange"):
            return str(x)
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (tuple, list)):
        # task.params is a tuple of (key, value) pairs: show it as the mapping users wrote.
        if x and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in x):
            return {k: _plain(v) for k, v in x}
        return [_plain(v) for v in x]
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and x == int(x) and abs(x) < 1e15:
        return int(x)  # 1.0 and 1 are the same setting; do not let the hash tell them apart
    return x


def spec_data(spec: Any) -> dict[str, Any]:
    """The spec as a plain nested dict (the basis of `spec_hash` and of mismatch messages)."""
    return _plain(spec)


def spec_hash(spec: Any) -> str:
    """Hex hash of the canonical spec text (`nlic.compiler.spec_hash`): equal specs hash equal, whatever their
    source syntax."""
    from nlic.compiler import spec_hash as canonical_hash

    return canonical_hash(spec)


def spec_diff(
    a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "", *, only_in_b_is_new: bool = False
) -> list[str]:
    """Dotted paths whose values differ between two `spec_data` dicts, as `path: a != b` lines.

    `only_in_b_is_new`: a key `a` lacks is a field added since `a` was written (it takes its default, which keeps
    the old behaviour) and is not a difference.
    """
    out: list[str] = []
    keys = set(b) if not only_in_b_is_new else set()
    for k in sorted(set(a) | keys):
        path = f"{prefix}{k}"
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out.extend(spec_diff(va, vb, path + ".", only_in_b_is_new=only_in_b_is_new))
        elif va != vb:
            out.append(f"{path}: {json.dumps(va, default=str)} != {json.dumps(vb, default=str)}")
    return out


def weight_leaves(model: Any) -> list[np.ndarray]:
    """The model's array leaves as NumPy, in `jax.tree_util` order: the order the exported executor takes them."""
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def fingerprint(spec: Any, model: Any) -> str:
    """Short hex hash of the canonical spec and the weights' bytes; identifies a trained language."""
    h = hashlib.sha256(spec_hash(spec).encode())
    for leaf in weight_leaves(model):
        h.update(f"{leaf.dtype.str}{leaf.shape}".encode())
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()[:16]


# --- files ----------------------------------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `path` so that readers see the old or the new content, never a mix (temp + fsync + replace)."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def env_info() -> dict[str, Any]:
    """Versions, backend and devices of this process (written to `env.json` for reproducibility)."""
    from importlib import metadata

    versions = {}
    for pkg in ("nlic", "jax", "jaxlib", "equinox", "optax", "numpy", "lark", "PyYAML"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": sys.version.split()[0],
        "versions": versions,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "devices": [str(d) for d in jax.devices()],
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def _has_results(run: Path) -> bool:
    return any((run / name).exists() for name in RESULT_FILES)


def prepare(run: Path, *, resume: bool, force: bool) -> bool:
    """Make `run` ready for a run; returns whether there is a previous run to resume.

    Raises:
        CheckpointError: `run` holds results and neither `resume` nor `force` was given, or it is not a directory.
    """
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise CheckpointError("the run directory is a file", loc=Loc(str(run)), hint="choose another --out")
    if force and resume:
        raise CheckpointError("--force and --resume contradict each other", loc=Loc(str(run)), hint="drop one")
    if run.is_dir() and _has_results(run):
        if resume:
            return True
        if not force:
            raise CheckpointError(
                "the run directory already holds results",
                loc=Loc(str(run)),
                hint="continue it with --resume, write elsewhere with --out DIR, or start over with --force",
            )
        for name in RESULT_FILES:
            p = run / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    run.mkdir(parents=True, exist_ok=True)
    (run / CHECKPOINT_DIR).mkdir(exist_ok=True)
    return False


def write_spec(run: Path, spec: Any) -> None:
    """Write the canonical locked spec (`spec.yaml`), the spec every later command reads back."""
    from nlic.compiler import format_spec  # H-spec's canonical printer

    atomic_write(Path(run) / SPEC_FILE, format_spec(spec, syntax="yaml"))


def write_env(run: Path) -> None:
    atomic_write(Path(run) / ENV_FILE, json.dumps(env_info(), indent=2, sort_keys=True) + "\n")


def append_metrics(run: Path, row: Mapping[str, Any]) -> None:
    """Append one JSON row to `metrics.jsonl` (flushed, so a killed run keeps every finished row)."""
    with open(Path(run) / METRICS_FILE, "a") as f:
        f.write(json.dumps(dict(row), sort_keys=True) + "\n")
        f.flush()


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """Rows of `metrics.jsonl`; a torn last line (killed mid-write) is skipped."""
    path = Path(run) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def truncate_metrics(run: Path, step: int) -> None:
    """Drop rows logged after `step` (written after the checkpoint a resumed run restarts from)."""
    rows = [r for r in read_metrics(run) if int(r.get("step", 0)) <= step]
    atomic_write(Path(run) / METRICS_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def save_model(run: Path, spec: Any, model: Any, *, step: int) -> str:
    """Write `model.eqx` (equinox leaves) and `model.json` (spec hash, checksum, fingerprint); returns the
    fingerprint."""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    payload = buf.getvalue()
    fp = fingerprint(spec, model)
    meta = {
        "format": "nlic-model",
        "version": MODEL_FORMAT,
        "kind": spec.model.kind,
        "spec_hash": spec_hash(spec),
        "step": int(step),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "bytes": len(payload),
        "fingerprint": fp,
        "spec": spec_data(spec),  # to name what differs if the spec later reads back differently
    }
    atomic_write(Path(run) / MODEL_FILE, payload)
    atomic_write(Path(run) / MODEL_META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return fp


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"missing {what}", loc=Loc(str(path)), hint="is this a finished run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt {what}: {e}", loc=Loc(str(path)), hint="re-run `nlic train`") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"corrupt {what}: not a JSON object", loc=Loc(str(path)), hint="re-run `nlic train`")
    return data


def check_leaves(loaded: Any, like: Any, where: Path) -> None:
    """Raise `CheckpointError` unless `loaded` has the array shapes and dtypes of `like` (another spec's weights
    deserialise without complaint otherwise)."""
    a = jax.tree_util.tree_leaves(eqx.filter(loaded, eqx.is_array))
    b = jax.tree_util.tree_leaves(eqx.filter(like, lambda x: eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)))
    if len(a) != len(b):
        raise CheckpointError(
            f"holds {len(a)} arrays, the spec's model has {len(b)}", loc=Loc(str(where)),
            hint="was it written by another spec?",
        )
    for i, (x, y) in enumerate(zip(a, b)):
        if tuple(x.shape) != tuple(y.shape) or np.dtype(x.dtype) != np.dtype(y.dtype):
            raise CheckpointError(
                f"array {i} is {np.dtype(x.dtype).name}{list(x.shape)}, the spec's model needs "
                f"{np.dtype(y.dtype).name}{list(y.shape)}",
                loc=Loc(str(where)),
                hint="was it written by another spec?",
            )


UNTRAINED_SECTIONS = ("search", "eval")
"""Spec sections training never reads: a run trained under other values of them has the same weights."""


def trained_spec_diff(trained: Any, spec: Any, *, ignore: tuple[str, ...] = ()) -> list[str]:
    """Differences between a run's recorded spec data (`model.json`'s `spec`) and `spec`, as `spec_diff` lines.

    Fields added to nlic since the run was trained are not differences (they default to the old behaviour), nor
    is anything under the top-level sections in `ignore` (e.g. `UNTRAINED_SECTIONS`).
    """
    if not isinstance(trained, Mapping):
        return ["spec hash differs"]
    now = spec_data(spec)
    trained = {k: v for k, v in trained.items() if k not in ignore}
    now = {k: v for k, v in now.items() if k not in ignore}
    return spec_diff(trained, now, only_in_b_is_new=True)


def load_model(run: Path, spec: Any, like: Any, *, ignore: tuple[str, ...] = ()) -> Any:
    """Read `model.eqx` into the structure of `like`, checking checksum, spec hash and shapes.

    `ignore`: top-level spec sections allowed to differ from the ones the run was trained with (see
    `UNTRAINED_SECTIONS`); by default the whole spec must match.
    """
    run = Path(run)
    meta = _read_json(run / MODEL_META_FILE, "model metadata")
    path = run / MODEL_FILE
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError("missing model weights", loc=Loc(str(path)), hint="did training finish?") from None
    if hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
        raise CheckpointError(
            "model weights are corrupt (checksum mismatch)", loc=Loc(str(path)), hint="re-run `nlic train --resume`"
        )
    diff: list[str] = []
    if meta.get("spec_hash") != spec_hash(spec):
        # A field this nlic added after the run was trained takes its default in the loaded spec (which lacks it
        # too); new fields default to the old behaviour, so only other differences refuse the model.
        diff = trained_spec_diff(meta.get("spec"), spec, ignore=ignore)
    if diff:
        shown = "; ".join(diff[:5]) + (f"; and {len(diff) - 5} more" if len(diff) > 5 else "")
        raise CheckpointError(
            f"the model was trained for another spec (trained != {SPEC_FILE}: {shown})",
            loc=Loc(str(run / MODEL_META_FILE)),
            hint=f"{SPEC_FILE} was edited after training, or this nlic's spec defaults changed; restore it or retrain",
        )
    try:
        model = eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as e:  # numpy raises several types on malformed data
        raise CheckpointError(f"cannot read model weights: {e}", loc=Loc(str(path)),
                              hint="re-run `nlic train`") from None
    check_leaves(model, like, path)
    return model


def save_executor_weights(run: Path, model: Any) -> None:
    """Write the flat array leaves as `executor_weights.npz` (`leaf_00000`, ...: the exported executor's order)."""
    buf = io.BytesIO()
    np.savez(buf, **{f"leaf_{i:05d}": x for i, x in enumerate(weight_leaves(model))})
    atomic_write(Path(run) / EXECUTOR_WEIGHTS_FILE, buf.getvalue())


def load_executor_weights(path: Path) -> list[np.ndarray]:
    """The leaves written by `save_executor_weights` (or `weights.npz` of a build), in order."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names = sorted(z.files)
            if names != [f"leaf_{i:05d}" for i in range(len(names))]:
                raise CheckpointError(
                    "not an nlic weights file (expected arrays leaf_00000, leaf_00001, ...)", loc=Loc(str(path))
                )
            return [z[n] for n in names]
    except FileNotFoundError:
        raise
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"cannot read weights: {e}", loc=Loc(str(path)), hint="is the file complete?") from None


def load_run(run_dir: Path | str) -> tuple[Any, Any]:
    """Load a trained run directory: its locked spec and the final model.

    Raises:
        CheckpointError: the directory is missing, incomplete, corrupt, or its files disagree.
    """
    from nlic.compiler import load_spec
    from nlic.compiler.lower import abstract_model

    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError("no such run directory", loc=Loc(str(run)), hint="train one with `nlic train SPEC`")
    if not (run / SPEC_FILE).exists():
        raise CheckpointError(f"not a run directory (no {SPEC_FILE})", loc=Loc(str(run)),
                              hint="pass the --out of `nlic train`")
    spec = load_spec(run / SPEC_FILE)
    like = abstract_model(spec)
    return spec, load_model(run, spec, like)
