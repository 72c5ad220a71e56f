"""Training checkpoints: model, optimiser state, step and RNG state in one self-checking file, written atomically.

A checkpoint is one JSON header line (format, spec hash, step, payload checksum, the header's own checksum)
followed by the equinox leaves.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import equinox as eqx

from nlic.compiler.identity import format_diff, spec_data, spec_diff, spec_hash
from nlic.grammar.errors import CheckpointError, Loc
from nlic.grammar.reading import read_text
from nlic.runtime.files import atomic_write, read_sealed, remove_temp_files, seal, write_sealed, writing
from nlic.runtime.run_dir import read_leaves

__all__ = [
    "FORMAT",
    "VERSION",
    "LATEST",
    "checkpoint_name",
    "checkpoint_step",
    "save_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "read_header",
    "load_checkpoint",
]

FORMAT = "nlic-checkpoint"
VERSION = 1
LATEST = "latest"
_NAME = re.compile(r"^step_(\d{8})\.eqx$")


def checkpoint_name(step: int) -> str:
    """The file name of step `step`'s checkpoint."""
    return f"step_{step:08d}.eqx"


def checkpoint_step(path: Path | str) -> int:
    """The step a checkpoint file's name (`checkpoint_name`) gives.

    Raises:
        ValueError: the name is not a checkpoint's.
    """
    found = _NAME.match(Path(path).name)
    if found is None:
        raise ValueError(f"not a checkpoint name: {Path(path).name!r}")
    return int(found.group(1))


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def save_checkpoint(directory: Path, state: Any, *, step: int, spec: Any, keep: int = 3) -> Path:
    """Write `state` (any pytree of arrays) as the checkpoint of `step`, point `latest` at it, keep the last `keep`.

    The file is complete before it gets its name, and `latest` moves only after that, so a crash at any moment
    leaves the previous checkpoint usable; so does a write that fails.

    Raises:
        CheckpointError: the directory is full, read-only or not writable (located at the file, with a hint);
            `latest` and the previous checkpoints are as they were.
    """
    directory = Path(directory)
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, state)
    payload = buf.getvalue()
    header = seal(payload, format=FORMAT, version=VERSION, spec_hash=spec_hash(spec), step=int(step),
                  spec=spec_data(spec))
    path = directory / checkpoint_name(step)
    with writing("checkpoint", error=CheckpointError,
                 then="`nlic train --resume` continues from the last checkpoint written, which is intact"):
        directory.mkdir(parents=True, exist_ok=True)
        # What a process killed mid-write left behind (never read, only taking space).
        remove_temp_files(directory, ("step_*.eqx", LATEST))
        write_sealed(path, payload, header)
        atomic_write(directory / LATEST, path.name + "\n")
        for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
            if old != path:
                old.unlink(missing_ok=True)
    return path


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint `latest` points at; None when there is none yet. Where `latest` names a checkpoint that no
    longer exists (a user deleted a corrupt one, as its error says), the newest that does, or None.

    Raises:
        CheckpointError: `latest` is not a checkpoint name.
    """
    directory = Path(directory)
    pointer = directory / LATEST
    if not pointer.exists():
        found = list_checkpoints(directory)
        # A crash between writing a checkpoint and its pointer leaves a complete, newer file: use it.
        return found[-1] if found else None
    name = read_text(pointer, limit=4096, what="checkpoint pointer", error=CheckpointError,
                     hint="delete it to use the newest step_*.eqx").strip()
    if not _NAME.match(name):
        raise CheckpointError(f"'latest' names '{name}', not a checkpoint file", loc=Loc(str(pointer)),
                              hint="delete it to use the newest step_*.eqx")
    path = directory / name
    if not path.exists():
        found = list_checkpoints(directory)
        return found[-1] if found else None
    return path


def _split(path: Path) -> tuple[dict[str, Any], bytes]:
    """The checked header and payload of a checkpoint (`CheckpointError` if truncated, corrupt or foreign)."""
    return read_sealed(Path(path), format=FORMAT, version=VERSION, error=CheckpointError, what="checkpoint",
                       hint="the file is corrupt or was not written by `nlic train`; delete it, and --resume goes "
                            "on from the checkpoint before it (or starts over where there is none: the same weights)")


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a checkpoint (format, version, spec_hash, step, sha256, bytes, spec)."""
    return _split(path)[0]


def load_checkpoint(path: Path, like: Any, *, spec: Any) -> tuple[Any, int]:
    """Read a checkpoint into the structure of `like`; returns `(state, step)`.

    Raises:
        CheckpointError: truncated or corrupt payload (checksum), another spec (naming the differing fields), or
            arrays of other shapes.
    """
    path = Path(path)
    header, payload = _split(path)
    if header.get("spec_hash") != spec_hash(spec):
        diff = spec_diff(header.get("spec") or {}, spec_data(spec))
        raise CheckpointError(
            f"checkpoint belongs to another spec (checkpoint != this spec: {format_diff(diff) or 'spec hash differs'})",
            loc=Loc(str(path)),
            hint="resume with the spec (and --steps) it was trained with, or start a new run with --out or --force",
        )
    state = read_leaves(payload, like, path, what="checkpoint arrays",
                        hint="was it written for another model? start a new run with --out or --force")
    return state, int(header["step"])
