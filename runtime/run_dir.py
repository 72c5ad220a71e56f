"""Run directories: the locked spec, environment, metrics, checkpoints and final weights of one training run.

The identity of what they hold (spec hash, fingerprint) is `nlic.compiler.identity`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import platform
import shutil
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from nlic.compiler.families import codec_of
from nlic.compiler.families import files as files_family
from nlic.compiler.identity import fingerprint, format_diff, spec_data, spec_hash, trained_spec_diff, weight_leaves
from nlic.compiler.lower import abstract_model
from nlic.compiler.printer import format_spec
from nlic.compiler.validate import load_spec
from nlic.grammar.errors import CheckpointError, Loc
from nlic.grammar.reading import (MAX_DATA_BYTES, MAX_HEADER_BYTES, MAX_WEIGHTS_BYTES, check_file, loads_json,
                                  read_bytes, read_text)
from nlic.runtime.files import atomic_write, read_sealed, remove_temp_files, seal, write_sealed, writing

__all__ = [
    "SPEC_FILE",
    "ENV_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "MODEL_META_FILE",
    "EXECUTOR_WEIGHTS_FILE",
    "HEALTH_FILE",
    "CHECKPOINT_DIR",
    "RESTARTS_FILE",
    "ATTEMPTS_DIR",
    "ROLLBACKS_FILE",
    "ROLLBACKS_DIR",
    "DATA_FILE",
    "RESULT_FILES",
    "RUN_MARKERS",
    "env_info",
    "prepare",
    "write_spec",
    "write_data",
    "find_moved_data",
    "with_locked_data",
    "write_env",
    "append_metrics",
    "read_metrics",
    "run_markers",
    "truncate_metrics",
    "read_record",
    "invalid_record",
    "save_model",
    "load_model",
    "check_leaves",
    "executor_weights_npz",
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
HEALTH_FILE = "health.json"  # warnings and verdict (`nlic.runtime.health`)
CHECKPOINT_DIR = "checkpoints"
RESTARTS_FILE = "restarts.json"  # the attempt a run is in (`nlic.runtime.recovery`)
ATTEMPTS_DIR = "attempts"  # abandoned attempts' metrics, health records and checkpoints
ROLLBACKS_FILE = "rollbacks.json"  # the rollbacks of the attempt a run is in (`nlic.runtime.rollback`)
ROLLBACKS_DIR = "rollbacks"  # the steps each rollback abandoned: their metrics and checkpoints
DATA_FILE = "data.json"  # a `files` task's data: each path relative to the run too, and its digest (`write_data`)
# Everything a run writes; `--force` removes exactly these and nothing else a user may have put there.
RESULT_FILES = (SPEC_FILE, ENV_FILE, METRICS_FILE, MODEL_FILE, MODEL_META_FILE, EXECUTOR_WEIGHTS_FILE, HEALTH_FILE,
                CHECKPOINT_DIR, RESTARTS_FILE, ATTEMPTS_DIR, ROLLBACKS_FILE, ROLLBACKS_DIR, DATA_FILE)
RUN_MARKERS = (ENV_FILE, MODEL_FILE, MODEL_META_FILE, METRICS_FILE, CHECKPOINT_DIR, EXECUTOR_WEIGHTS_FILE,
               RESTARTS_FILE, ATTEMPTS_DIR, ROLLBACKS_FILE, ROLLBACKS_DIR)
"""What only a run directory of `nlic train` holds (any one of them: a run interrupted before its first step, whose
`env.json` a new run writes first, or between archiving an abandoned attempt and starting the next, too); not a
project folder's spec.yaml or data.json."""
MODEL_FORMAT = 1
MODEL_FORMAT_TAG = "nlic-model"
DATA_FORMAT = 1
DATA_FORMAT_TAG = "nlic-data"
_RESUME = "then continue with `nlic train --resume`: the last checkpoint written is intact"


# --- files ----------------------------------------------------------------------------------------------------


def env_info() -> dict[str, Any]:
    """Versions, backend and devices of this process (written to `env.json` for reproducibility; a multi-process
    run adds `process_count`, its devices being every process's)."""
    versions = {}
    for pkg in ("nlic", "jax", "jaxlib", "equinox", "optax", "numpy", "lark", "PyYAML"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    info = {
        "python": sys.version.split()[0],
        "versions": versions,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "devices": [str(d) for d in jax.devices()],
        "platform": platform.platform(),
        "machine": platform.machine(),
        # The fingerprint depends on these too (nlic.runtime.numerics caps the CPU instruction set).
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    if jax.process_count() > 1:
        info["process_count"] = jax.process_count()
    return info


def _writing(what: str) -> contextlib.AbstractContextManager[None]:
    """A write of the run directory: a full disk or a read-only directory is a located `CheckpointError` that says
    how to continue."""
    return writing(what, error=CheckpointError, then=_RESUME)


def _has_results(run: Path) -> bool:
    return any((run / name).exists() for name in RESULT_FILES)


def prepare(run: Path, *, resume: bool, force: bool) -> bool:
    """Make `run` ready for a run; returns whether there is a previous run to resume.

    Raises:
        CheckpointError: `run` holds results and neither `resume` nor `force` was given, it is not a directory,
            it holds files of a run's names but is no run (`RUN_MARKERS`: a user's spec.yaml or data.json, which
            `force` would delete), or it cannot be written.
    """
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise CheckpointError("the run directory is a file", loc=Loc(str(run)), hint="choose another --out")
    if force and resume:
        raise CheckpointError("--force and --resume contradict each other", loc=Loc(str(run)), hint="drop one")
    if run.is_dir() and _has_results(run):
        if not run_markers(run):  # no training made these: a project folder's own spec.yaml or data.json
            theirs = [name for name in RESULT_FILES if (run / name).exists()]
            raise CheckpointError(
                f"the directory is not a training run, but holds {', '.join(theirs)}, which a run would replace",
                loc=Loc(str(run)),
                hint="give the run a directory of its own with --out DIR; --force does not override this")
        if resume:
            return True
        if not force:
            raise CheckpointError(
                "the run directory already holds results",
                loc=Loc(str(run)),
                hint="continue it with --resume, write elsewhere with --out DIR, or start over with --force",
            )
        with _writing("run directory"):
            for name in RESULT_FILES:
                p = run / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
    with _writing("run directory"):
        run.mkdir(parents=True, exist_ok=True)
        (run / CHECKPOINT_DIR).mkdir(exist_ok=True)
    return False


def write_spec(run: Path, spec: Any) -> None:
    """Write the canonical locked spec (`spec.yaml`), the spec every later command reads back.

    Raises:
        OSError: from `atomic_write` (run and build directories alike write it; each caller says what to do).
    """
    atomic_write(Path(run) / SPEC_FILE, format_spec(spec, syntax="yaml"))


# --- a `files` task's data, found again where the project folder moved ------------------------------------------


def _data_paths(spec: Any) -> list[tuple[str, str]]:
    """(split, path) of every data path a `files` task names (the locked spec's are absolute); [] for other
    families."""
    if spec.task.family != files_family.FILES.name:
        return []
    return [(split, p) for split, value in spec.task.params for p in files_family.paths_of(value)]


def write_data(run: Path, spec: Any) -> None:
    """Write `data.json` for a `files` task (nothing for other families): each data path the spec names, the same
    path relative to the run directory, and the digest of its files (`files.data_digest`). A project folder moved
    or copied with its data and runs, whose locked spec names paths that are gone, then finds the same files at the
    same place relative to the run (`find_moved_data`, `with_locked_data`)."""
    entries = []
    for split, path in _data_paths(spec):
        where = files_family.located(path)  # the data read (`find_moved_data` may have found them elsewhere)
        try:
            relative = os.path.relpath(where, Path(run).resolve())
        except ValueError:  # another drive (Windows): no relative path
            relative = None
        entries.append({"split": split, "path": path, "relative": relative,
                        "sha256": files_family.data_digest(where)})
    if entries:
        with _writing("data record"):
            atomic_write(Path(run) / DATA_FILE, json.dumps({"format": DATA_FORMAT_TAG, "version": DATA_FORMAT,
                                                            "paths": entries}, indent=2) + "\n")


def _data_record(run: Path) -> list[dict[str, str]]:
    """The entries of the run's `data.json` that give a relative path; [] without the file (a run of another
    family, or written before nlic recorded it).

    Raises:
        CheckpointError: the file is not a valid data record.
    """
    path = Path(run) / DATA_FILE
    record = read_record(path, what="data record", format=DATA_FORMAT_TAG, version=DATA_FORMAT)
    entries = [] if record is None else record.get("paths")
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and all(isinstance(e.get(k), str) for k in ("split", "path", "sha256"))
            and isinstance(e.get("relative"), (str, type(None))) for e in entries):
        raise invalid_record(path, "data record")
    return [e for e in entries if e["relative"] is not None]


def _beside_run(run: Path, entry: Mapping[str, str]) -> str:
    """Where an entry's data are now if they moved with the run: the same place relative to it."""
    return os.path.normpath(os.path.join(Path(run).resolve(), entry["relative"]))


def _other_data(entry: Mapping[str, str], new: str) -> CheckpointError:
    return CheckpointError(
        f"split '{entry['split']}': the run's data are gone from {entry['path']}, and the files at the same place "
        "relative to the run directory differ from those it recorded", loc=Loc(new),
        hint="restore the data the run was trained on (at either place), or train again on these")


def find_moved_data(run: Path) -> None:
    """Where a data path the run's locked spec names is gone, read it from the same place relative to the run
    (the project folder moved or copied with its data and runs; `write_data`) if the files there are those the run
    recorded (`files.data_digest`): `files.relocate`. Paths that exist are read as they are, and a path found in
    neither place is left to the spec's validation to name.

    Raises:
        CheckpointError: files are at the run's relative place and differ from those it recorded.
    """
    for entry in _data_record(run):
        old, new = entry["path"], _beside_run(run, entry)
        if os.path.exists(old) or new == old or not os.path.exists(new):
            continue
        if files_family.data_digest(new) != entry["sha256"]:
            raise _other_data(entry, new)
        files_family.relocate(old, new)


def with_locked_data(run: Path, spec: Any) -> Any:
    """`spec` with the data paths the run's locked spec names, where `spec` names the same files (their digest) at
    the run's relative place instead (`nlic train SPEC --resume` in a project folder moved or copied with its runs
    resolves the spec's paths anew): the locked paths read from those (`files.relocate`), and the spec is the one
    the run locked again. `spec` itself where nothing moved.

    Raises:
        CheckpointError: the locked path is gone and `spec` names other files at the run's relative place.
    """
    if not run_markers(run):  # no run (yet), or a folder of the user's own files, among them perhaps a data.json
        return spec
    beside = {_beside_run(run, e): e for e in _data_record(run)}
    moved = {}
    for _, path in _data_paths(spec):
        entry = beside.get(path)
        if entry is None or entry["path"] == path or not os.path.exists(path):
            continue
        if files_family.data_digest(path) == entry["sha256"]:
            moved[path] = entry["path"]
        elif not os.path.exists(entry["path"]):  # else the spec names other data than the run's, which are there
            raise _other_data(entry, path)
    if not moved:
        return spec
    for new, old in moved.items():
        files_family.relocate(old, new)
    locked = tuple((k, tuple(moved.get(str(p), p) for p in v) if isinstance(v, (list, tuple)) else moved.get(str(v), v))
                   for k, v in spec.task.params)
    return dataclasses.replace(spec, task=dataclasses.replace(spec.task, params=locked))


def write_env(run: Path) -> None:
    with _writing("environment record"):
        atomic_write(Path(run) / ENV_FILE, json.dumps(env_info(), indent=2, sort_keys=True) + "\n")


def append_metrics(run: Path, row: Mapping[str, Any]) -> None:
    """Append one JSON row to `metrics.jsonl` (flushed, so a killed run keeps every finished row)."""
    with _writing("metrics"), open(Path(run) / METRICS_FILE, "a") as f:
        f.write(json.dumps(dict(row), sort_keys=True) + "\n")
        f.flush()


def run_markers(path: Path | str) -> list[str]:
    """The `RUN_MARKERS` in `path`: none unless it is (or was meant to be) a training run's directory, which no other
    command may write into (`nlic compile --out`, `nlic data export --out`)."""
    return [name for name in RUN_MARKERS if (Path(path) / name).exists()]


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """Rows of `metrics.jsonl`, each with an integer "step"; a torn last line (killed mid-write), or any line that
    is not such a row (a hand-edited `"step": "x"`), is skipped."""
    path = Path(run) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    # Not read_text: a crash can leave a torn, even NUL-filled, last line, which is skipped like any bad line.
    text = read_bytes(path, limit=MAX_DATA_BYTES, what="metrics file", error=CheckpointError).decode("utf-8", "replace")
    for n, line in enumerate(text.split("\n"), 1):
        try:
            row = loads_json(line, path=str(path), error=CheckpointError, first_line=n)
        except CheckpointError:
            continue
        step = row.get("step") if isinstance(row, dict) else None
        if isinstance(step, int) and not isinstance(step, bool):
            rows.append(row)
    return rows


def invalid_record(path: Path, what: str) -> CheckpointError:
    """The error for a run's small JSON record (`restarts.json`, `rollbacks.json`) that is not a valid one."""
    return CheckpointError(f"not a valid nlic {what}", loc=Loc(str(path)),
                           hint="restore it from a backup, or start the run over with --force")


def read_record(path: Path, *, what: str, format: str, version: int) -> dict[str, Any] | None:
    """A run's small JSON record (bounded): None when the file is absent, else its object, whose `format` and
    `version` are those given.

    Raises:
        CheckpointError: the file is unreadable, not JSON, or not a record of that format and version
            (`invalid_record`).
    """
    path = Path(path)
    if not path.exists():
        return None
    data = loads_json(read_text(path, limit=MAX_HEADER_BYTES, what=what, error=CheckpointError), path=str(path),
                      error=CheckpointError)
    if not isinstance(data, dict) or data.get("format") != format or data.get("version") != version:
        raise invalid_record(path, what)
    return data


def truncate_metrics(run: Path, step: int) -> None:
    """Drop rows logged after `step` (written after the checkpoint a resumed run restarts from), and torn ones."""
    rows = [r for r in read_metrics(run) if r["step"] <= step]
    with _writing("metrics"):
        # A resumed run also sweeps the temp files of writes a killed process left (model, metrics, ...).
        remove_temp_files(Path(run), RESULT_FILES)
        atomic_write(Path(run) / METRICS_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def save_model(run: Path, spec: Any, model: Any, *, step: int, weights_step: int | None = None,
               weights_attempt: int = 0) -> str:
    """Write `model.eqx` (equinox leaves) sealed by `model.json` (spec hash, checksum, fingerprint, the steps
    trained, `weights_step`: the step whose weights these are, `step` unless the run kept earlier ones, and
    `weights_attempt`: the restart attempt that trained them, 0 for a run that never restarted); returns the
    fingerprint."""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    payload = buf.getvalue()
    fp = fingerprint(spec, model)
    # `spec`: to name what differs if the spec later reads back differently; `data`: the same for the data's shape.
    header = seal(payload, format=MODEL_FORMAT_TAG, version=MODEL_FORMAT, kind=spec.model.kind,
                  spec_hash=spec_hash(spec), step=int(step),
                  weights_step=int(step if weights_step is None else weights_step),
                  weights_attempt=int(weights_attempt), fingerprint=fp,
                  spec=spec_data(spec), **({"data": data} if (data := data_shape(spec)) else {}))
    with _writing("model"):
        write_sealed(Path(run) / MODEL_FILE, payload, header, header_path=Path(run) / MODEL_META_FILE)
    return fp


def data_shape(spec: Any) -> dict[str, int] | None:
    """The length and alphabet of the spec's task data (`L`, `V`), or None where they cannot be read now: the
    model's arrays depend on them, and a user's own files may change after training."""
    try:
        codec = codec_of(spec)
        return {"length": int(codec.length), "values": int(codec.values)}
    except Exception:  # noqa: BLE001 - a note for messages only; the model is written regardless
        return None


def _data_changed(meta: Mapping[str, Any], spec: Any, where: Path) -> None:
    """Raise a `CheckpointError` naming the change if the spec's data no longer have the shape the model was
    trained on (called when the weights do not fit, to say why)."""
    then, now = meta.get("data"), data_shape(spec)
    if not isinstance(then, dict) or now is None or then == now:
        return
    changes = ", ".join(f"{name} {then.get(key)} -> {now[key]}" for key, name in
                        (("length", "length L"), ("values", "alphabet V")) if then.get(key) != now[key])
    raise CheckpointError(
        f"the task data changed since training ({changes}), and the model's arrays were shaped by them",
        loc=Loc(str(where)),
        hint="restore the data files the run was trained on (a value or a datum larger than any before sets L "
             "and V), or train again on the new data")


def read_leaves(payload: bytes, like: Any, where: Path, *, what: str, hint: str) -> Any:
    """Equinox leaves `payload` in the structure of `like`, with the shapes and dtypes of `like` (`check_leaves`);
    `CheckpointError` "cannot read <what>" located at `where` otherwise."""
    try:
        loaded = eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as e:  # numpy raises several types on malformed data
        raise CheckpointError(f"cannot read {what}: {e}", loc=Loc(str(where)), hint=hint) from None
    check_leaves(loaded, like, where)
    return loaded


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


def load_model(run: Path, spec: Any, like: Any, *, ignore: tuple[str, ...] = ()) -> Any:
    """Read `model.eqx` into the structure of `like`, checking checksum, spec hash and shapes.

    `ignore`: top-level spec sections allowed to differ from the ones the run was trained with (see
    `UNTRAINED_SECTIONS`); by default the whole spec must match.
    """
    run = Path(run)
    path = run / MODEL_FILE
    meta, payload = read_sealed(path, format=MODEL_FORMAT_TAG, version=MODEL_FORMAT, error=CheckpointError,
                                what="model", header_path=run / MODEL_META_FILE,
                                hint="is this a finished run directory? re-run `nlic train --resume`")
    diff: list[str] = []
    if meta.get("spec_hash") != spec_hash(spec):
        # A field this nlic added after the run was trained takes its default in the loaded spec (which lacks it
        # too); new fields default to the old behaviour, so only other differences refuse the model.
        diff = trained_spec_diff(meta.get("spec"), spec, ignore=ignore)
    if diff:
        raise CheckpointError(
            f"the model was trained for another spec (trained != {SPEC_FILE}: {format_diff(diff)})",
            loc=Loc(str(run / MODEL_META_FILE)),
            hint=f"{SPEC_FILE} was edited after training, or this nlic's spec defaults changed; restore it or retrain",
        )
    try:
        model = read_leaves(payload, like, path, what="model weights", hint="re-run `nlic train`")
    except CheckpointError:
        _data_changed(meta, spec, run / MODEL_META_FILE)  # weights that do not fit: the data's shape changed?
        raise
    return model


def executor_weights_npz(model: Any) -> bytes:
    """The model's array leaves as an `.npz` (`leaf_00000`, ...: the exported executor's order)."""
    buf = io.BytesIO()
    np.savez(buf, **{f"leaf_{i:05d}": x for i, x in enumerate(weight_leaves(model))})
    return buf.getvalue()


def save_executor_weights(run: Path, model: Any) -> None:
    """Write `executor_weights.npz` (`executor_weights_npz`), the weights a build's exported executor takes."""
    with _writing("executor weights"):
        atomic_write(Path(run) / EXECUTOR_WEIGHTS_FILE, executor_weights_npz(model))


def load_executor_weights(path: Path, *, data: bytes | None = None) -> list[np.ndarray]:
    """The leaves written by `save_executor_weights` (or `weights.npz` of a build), in order.

    `data`: the file's bytes when the caller has read them already (to check a checksum); `path` names them.
    """
    path = Path(path)
    if data is None:
        check_file(path, limit=MAX_WEIGHTS_BYTES, what="weights file", error=CheckpointError)
    try:
        with np.load(path if data is None else io.BytesIO(data), allow_pickle=False) as z:
            names = sorted(z.files)
            if names != [f"leaf_{i:05d}" for i in range(len(names))]:
                raise CheckpointError(
                    "not an nlic weights file (expected arrays leaf_00000, leaf_00001, ...)", loc=Loc(str(path))
                )
            # A compressed member may unpack to far more than the file's size: bound what it claims first.
            claimed = sum(info.file_size for info in z.zip.infolist())
            if claimed > MAX_WEIGHTS_BYTES:
                raise CheckpointError(f"the weights file unpacks to {claimed} bytes, more than nlic reads",
                                      loc=Loc(str(path)), hint="is this an nlic weights file?")
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
    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError("a file, not a run directory" if run.exists() else "no such run directory",
                              loc=Loc(str(run)), hint="give the --out folder of `nlic train SPEC`")
    if not (run / SPEC_FILE).exists():
        raise CheckpointError(f"not a run directory (no {SPEC_FILE})", loc=Loc(str(run)),
                              hint="pass the --out of `nlic train`")
    find_moved_data(run)  # the project folder moved with its data and runs: found at the same place beside it
    spec = load_spec(run / SPEC_FILE, kind_fields=False)  # as locked: an earlier version may have accepted more
    like = abstract_model(spec)
    return spec, load_model(run, spec, like)
