"""Writing files so that nothing is lost: atomic replacement, and sealed files (header + payload + checksum).

Checkpoints, saved models and build artifacts are all sealed files; this module is the one place that writes
and checks them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nlic.grammar.errors import Loc, NlicError
from nlic.grammar.reading import MAX_HEADER_BYTES, MAX_WEIGHTS_BYTES, loads_json, read_bytes

__all__ = ["HEADER_SHA256", "atomic_write", "header_digest", "read_sealed", "remove_temp_files", "seal",
           "write_error", "write_sealed", "writing"]

_MAX_HEADER = 1 << 20  # an inline header holds the spec; anything longer is not ours
_TEMP_SUFFIX = ".tmp"  # atomic_write's temp files: `.<name>.<random>.tmp` beside the file they become


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, replace: bool = True) -> None:
    """Write `path` so that readers see the old or the new content, never a mix (temp + fsync + replace).

    `replace=False` never replaces a file: the temp file is linked to `path`, which fails if `path` exists, so of
    two writers that both checked that `path` was free, one gets `FileExistsError` instead of overwriting the other.

    Raises:
        OSError: the directory is missing, read-only or full (its `filename` is `path`, not the temp file's);
            `path` is left as it was and no temp file remains. `FileExistsError`: `replace=False` and `path` exists.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=_TEMP_SUFFIX, dir=path.parent)
        try:
            # mkstemp makes the file owner-only; results are ordinary files (0666 less the umask), shareable.
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if replace:
                os.replace(tmp, path)
            else:
                _link_new(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as e:
        # Name the file the caller wrote: the temp file's name means nothing to a user, and a full disk's
        # ENOSPC (raised by write or fsync) names no file at all.
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    _fsync_dir(path.parent)


def _link_new(tmp: str, path: Path) -> None:
    """Give `tmp` the name `path` unless `path` exists (`FileExistsError`), atomically where links exist."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as e:  # a file system without hard links: check, then replace (a race remains there)
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; set it back at once
    os.umask(mask)
    return mask


def _temp_prefix(name: str) -> str:
    return f".{name}."


def remove_temp_files(directory: Path, names: tuple[str, ...]) -> None:
    """Delete the temp files `atomic_write` left for `names` (file names, or glob patterns of them) in `directory`
    when a process was killed mid-write: they are never read, only take space."""
    directory = Path(directory)
    for name in names:
        for tmp in directory.glob(f"{_temp_prefix(name)}*{_TEMP_SUFFIX}"):
            try:
                tmp.unlink()
            except OSError:
                pass


_WRITE_FAILURES = {
    errno.ENOSPC: ("no space left on the device", "free some space"),
    errno.EDQUOT: ("disk quota exceeded", "free some space"),
    errno.EROFS: ("the file system is read-only", "make it writable"),
    errno.EACCES: ("permission denied", "make the directory writable"),
    errno.EPERM: ("operation not permitted", "make the directory writable"),
}


def write_error(e: OSError, *, error: type[NlicError], what: str, then: str) -> NlicError:
    """The user error for an `OSError` raised while writing `what` (a full disk, a read-only or forbidden
    directory), located at the file (`atomic_write` names it) and saying what to do.

    Args:
        e: the OSError.
        error: the `NlicError` subclass to return.
        what: what was being written ("checkpoint", "model", ...).
        then: how to continue once the cause is fixed, ending the hint.
    """
    reason, fix = _WRITE_FAILURES.get(e.errno, (e.strerror or str(e), "check the disk and the directory"))
    where = Loc(str(e.filename)) if e.filename is not None else None
    return error(f"cannot write the {what}: {reason}", loc=where,
                 hint=f"{fix} or write elsewhere with --out DIR; {then}")


@contextlib.contextmanager
def writing(what: str, *, error: type[NlicError], then: str) -> Iterator[None]:
    """Turn an `OSError` raised inside the block while writing `what` into `write_error`'s located user error."""
    try:
        yield
    except OSError as e:
        raise write_error(e, error=error, what=what, then=then) from None


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


HEADER_SHA256 = "header_sha256"


def header_digest(header: Mapping[str, Any]) -> str:
    """The sha256 of a header's canonical JSON, leaving out `HEADER_SHA256` itself: a header that reads back
    with any other value or key is corrupt, whatever its whitespace."""
    rest = {k: v for k, v in header.items() if k != HEADER_SHA256}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(payload: bytes, *, format: str, version: int, **fields: Any) -> dict[str, Any]:
    """The header of a sealed file: format tag, version, the payload's sha256 and size, `fields`, and the
    header's own checksum (`header_digest`), so that no byte of a sealed file goes unchecked."""
    header = {"format": format, "version": version, "sha256": hashlib.sha256(payload).hexdigest(),
              "bytes": len(payload), **fields}
    return _sealed_header(header)


def _sealed_header(header: Mapping[str, Any]) -> dict[str, Any]:
    # As the file will read back (tuples as lists, `default=str` applied), then its digest.
    plain = json.loads(json.dumps({k: v for k, v in header.items() if k != HEADER_SHA256}, default=str))
    return {**plain, HEADER_SHA256: header_digest(plain)}


def write_sealed(path: Path, payload: bytes, header: Mapping[str, Any], *, header_path: Path | None = None) -> None:
    """Write a sealed file atomically.

    Args:
        path: the payload's file.
        payload: the bytes to protect.
        header: from `seal` (or any mapping with `format`, `version`, `sha256` and `bytes`: its header checksum
            is added here).
        header_path: write the header as a JSON file here (a side file a person can read), after the payload;
            None: the header is the first line of `path`, followed by the payload.

    Raises:
        OSError: from `atomic_write` (a full disk, a read-only directory); the files are left as they were,
            except that with `header_path` a new payload may sit beside the old header (it then reads as corrupt,
            which is refused, never loaded).
    """
    header = _sealed_header(header)
    if header_path is None:
        atomic_write(path, _header_text(header, side=False) + b"\n" + payload)
    else:
        atomic_write(path, payload)
        atomic_write(header_path, _header_text(header, side=True))


def _header_text(header: Mapping[str, Any], *, side: bool) -> bytes:
    """A header as `write_sealed` writes it: a JSON side file a person can read, or the first line of the file."""
    if side:
        return (json.dumps(dict(header), indent=2, sort_keys=True) + "\n").encode()
    return json.dumps(dict(header), sort_keys=True).encode()


def _header_intact(header: Mapping[str, Any], raw: bytes, *, side: bool) -> bool:
    """Whether a header read back is the one written, byte for byte: its checksum matches and it reads back as
    `write_sealed` wrote it; or it has no checksum because an nlic from before sealed headers wrote it (and no
    damaged key hides one)."""
    if HEADER_SHA256 in header:
        return header[HEADER_SHA256] == header_digest(header) and raw == _header_text(header, side=side)
    return not any(len(k) == len(HEADER_SHA256) and sum(a != b for a, b in zip(k, HEADER_SHA256)) <= 2
                   for k in header)


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
    if not path.exists():
        raise _fail(error, f"missing {what}", path, hint)
    if path.is_dir():
        raise _fail(error, f"the {what} is a directory", path, hint)
    # Bounded, and only regular files: a device or pipe in a run directory cannot make this read forever.
    data = read_bytes(path, limit=MAX_WEIGHTS_BYTES, what=what, error=error, hint=hint, streams=False)
    where = path if header_path is None else Path(header_path)
    if header_path is not None and not where.exists():
        raise _fail(error, f"{where.name} is missing", where, hint)
    try:
        if header_path is None:
            end = data.find(b"\n", 0, _MAX_HEADER)
            if end < 0:
                raise ValueError("no header line")
            text, payload = data[:end], data[end + 1 :]
        else:
            text = read_bytes(where, limit=MAX_HEADER_BYTES, what=f"{what} header", error=error, hint=hint,
                              streams=False)
            payload = data
        header = loads_json(text.decode("utf-8"), path=str(where), error=error)
        if not isinstance(header, dict) or header.get("format") != format:
            raise ValueError("wrong format tag")
    except (ValueError, UnicodeDecodeError, RecursionError, NlicError):
        if header_path is None:
            raise _fail(error, f"not an nlic {what} (unreadable header)", where, hint) from None
        raise _fail(error, f"corrupt {what} metadata ({where.name} is not an nlic {what} description)", where,
                    hint) from None
    if header.get("version") != version:
        raise _fail(error, f"{what} format version {header.get('version')!r} is not supported (this nlic reads "
                    f"{version})", where, hint)
    if not _header_intact(header, text, side=header_path is not None):
        raise _fail(error, f"{what} header is corrupt (checksum mismatch)", where, hint)
    if len(payload) != header.get("bytes", len(payload)) or hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise _fail(error, f"{what} is truncated or corrupt ({len(payload)} of {header.get('bytes')} bytes, "
                    "checksum mismatch)", path, hint)
    return header, payload
