"""Writing files so that nothing is lost: atomic replacement, and sealed files (header + payload + checksum).

Checkpoints, saved models and build artifacts are all sealed files; this module is the one place that writes
and checks them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlic.grammar.errors import Loc, NlicError

__all__ = ["atomic_write", "read_sealed", "seal", "write_sealed"]

_MAX_HEADER = 1 << 20  # an inline header holds the spec; anything longer is not ours


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write `path` so that readers see the old or the new content, never a mix (temp + fsync + replace).

    Raises:
        OSError: the directory is missing, read-only or full; `path` is left as it was.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
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


def seal(payload: bytes, *, format: str, version: int, **fields: Any) -> dict[str, Any]:
    """The header of a sealed file: format tag, version, the payload's sha256 and size, and `fields`."""
    return {"format": format, "version": version, "sha256": hashlib.sha256(payload).hexdigest(),
            "bytes": len(payload), **fields}


def write_sealed(path: Path, payload: bytes, header: Mapping[str, Any], *, header_path: Path | None = None) -> None:
    """Write a sealed file atomically.

    Args:
        path: the payload's file.
        payload: the bytes to protect.
        header: from `seal`.
        header_path: write the header as a JSON file here (a side file a person can read), after the payload;
            None: the header is the first line of `path`, followed by the payload.
    """
    text = json.dumps(dict(header), sort_keys=True, default=str)
    if header_path is None:
        atomic_write(path, text.encode() + b"\n" + payload)
    else:
        atomic_write(path, payload)
        atomic_write(header_path, json.dumps(dict(header), indent=2, sort_keys=True, default=str) + "\n")


def _fail(error: type[NlicError], message: str, where: Path, hint: str) -> NlicError:
    return error(message, loc=Loc(str(where)), hint=hint)


def read_sealed(
    path: Path,
    *,
    format: str,
    version: int,
    error: type[NlicError],
    what: str,
    hint: str,
    header_path: Path | None = None,
) -> tuple[dict[str, Any], bytes]:
    """Read and check a file written by `write_sealed`; returns `(header, payload)`.

    Raises:
        error: the file is missing, not of `format`, of another `version`, truncated or corrupt (checksum).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fail(error, f"missing {what}", path, hint) from None
    except IsADirectoryError:
        raise _fail(error, f"the {what} is a directory", path, hint) from None
    where = path if header_path is None else Path(header_path)
    try:
        if header_path is None:
            end = data.find(b"\n", 0, _MAX_HEADER)
            if end < 0:
                raise ValueError("no header line")
            header, payload = json.loads(data[:end]), data[end + 1 :]
        else:
            header, payload = json.loads(Path(header_path).read_bytes()), data
        if not isinstance(header, dict) or header.get("format") != format:
            raise ValueError("wrong format tag")
    except FileNotFoundError:
        raise _fail(error, f"{where.name} is missing", where, hint) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        if header_path is None:
            raise _fail(error, f"not an nlic {what} (unreadable header)", where, hint) from None
        raise _fail(error, f"corrupt {what} metadata ({where.name} is not an nlic {what} description)", where,
                    hint) from None
    if header.get("version") != version:
        raise _fail(error, f"{what} format version {header.get('version')!r} is not supported (this nlic reads "
                    f"{version})", where, hint)
    if len(payload) != header.get("bytes", len(payload)) or hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise _fail(error, f"{what} is truncated or corrupt ({len(payload)} of {header.get('bytes')} bytes, "
                    "checksum mismatch)", path, hint)
    return header, payload
