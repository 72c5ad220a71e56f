"""Bounded, safe reading of every file nlic reads: specs, program files, task and input files, checkpoints.

Hostile or mistaken input (`/dev/zero`, a file of gigabytes, an integer of 5000 digits, JSON nested 10000 deep)
ends in a located `NlicError` within seconds, never in a hang, an exhausted memory or a traceback.

Limits (module constants; every reader names the one it uses in its error):
    MAX_SPEC_BYTES (1 MiB): a spec file (`nlic.compiler.validate` re-exports it).
    MAX_PROGRAM_BYTES (64 MiB): a program file (about 500k programs of 16 tokens).
    MAX_DATA_BYTES (256 MiB): one task file, one replay inputs file, standard input, `metrics.jsonl`.
    MAX_HEADER_BYTES (16 MiB): the JSON header of a sealed file (checkpoint, model, build artifact).
    MAX_WEIGHTS_BYTES (16 GiB): a checkpoint, saved model or weights file (checked by size, before reading).
    MAX_DIR_FILES (100 000): entries nlic lists in one folder of task or input files.
    MAX_JSON_DEPTH (64): nesting of JSON arrays and objects (nlic's own formats need fewer than 10).
    MAX_NUMBER_DIGITS (40): digits in one run of a JSON number (an int64 has 19, a float's repr 17).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import select
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nlic.grammar.errors import Loc, NlicError, escape

__all__ = [
    "MAX_SPEC_BYTES",
    "MAX_PROGRAM_BYTES",
    "MAX_DATA_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_WEIGHTS_BYTES",
    "MAX_DIR_FILES",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_DIGITS",
    "STDIN",
    "check_file",
    "read_bytes",
    "read_text",
    "decode_utf8",
    "list_dir",
    "loads_json",
    "position",
    "escape",
]

MAX_SPEC_BYTES = 1 << 20
MAX_PROGRAM_BYTES = 64 << 20
MAX_DATA_BYTES = 256 << 20
MAX_HEADER_BYTES = 16 << 20
MAX_WEIGHTS_BYTES = 16 << 30
MAX_DIR_FILES = 100_000
MAX_JSON_DEPTH = 64
MAX_NUMBER_DIGITS = 40

STDIN = "-"
"""The file name that means standard input, where a reader allows it (`stdin=True`)."""

PIPE_WAIT = 30.0
"""Seconds a named pipe (FIFO) may go without a writer before reading it fails: opening one blocks until a writer
comes, so nlic opens it without waiting and polls instead (a pipe nobody writes is an error, not a hang)."""
_PIPE_POLL = 0.05

_STDIN_SHOWN = "<stdin>"
_CHUNK = 1 << 24  # brackets per step of the depth scan: bounds its temporary arrays to ~100 MB
_SMALL_TEXT = 1 << 16  # below this, a regex finds long numbers faster than translating the text


def _size(n: int) -> str:
    """Bytes in the largest binary unit that keeps a whole number when possible: 1 MiB, 256 MiB, 16 GiB."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _too_big(
    error: type[NlicError], shown: str, what: str, limit: int, hint: str | None, size: int | None = None
) -> NlicError:
    holds = f"the file holds {_size(size)}," if size is not None else "the stream holds"
    return error(f"{holds} more than the {_size(limit)} nlic reads from one {what}", loc=Loc(shown),
                 hint=hint or "is this the right file?")


def check_file(
    path: str | os.PathLike[str],
    *,
    limit: int,
    what: str,
    error: type[NlicError],
    hint: str | None = None,
    streams: bool = False,
) -> int | None:
    """Checks that `path` is a regular file of at most `limit` bytes, without reading it.

    Args:
        path: the file.
        limit: most bytes allowed.
        what: what the file is, for messages ("task file", "checkpoint").
        error: the `NlicError` subclass to raise.
        hint: the hint of a too-large file (default: the limit).
        streams: also accept a pipe (FIFO), whose size is unknown until read.

    Returns:
        The file's size, or None for a pipe.

    Raises:
        error: missing or unreadable, a directory, a device (`/dev/zero`), a socket, or larger than `limit`.
    """
    shown = str(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise error(f"cannot read {what}: {e.strerror or e}", loc=Loc(shown), hint="check the path") from None
    mode = st.st_mode
    if stat.S_ISREG(mode):
        if st.st_size > limit:
            raise _too_big(error, shown, what, limit, hint, st.st_size)
        return int(st.st_size)
    if stat.S_ISFIFO(mode) and streams:
        return None
    if stat.S_ISDIR(mode):
        kind = "a directory"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    elif stat.S_ISFIFO(mode):
        kind = "a pipe"
    else:
        kind = "a socket or other special file"
    raise error(f"expected a file, found {kind}", loc=Loc(shown), hint=f"give the {what} as a regular file"
                + (" or a pipe" if streams else ""))


def _read_pipe(path: str | os.PathLike[str], *, limit: int, what: str, error: type[NlicError],
               hint: str | None) -> bytes:
    """At most `limit` bytes of a named pipe, waiting at most `PIPE_WAIT` seconds for its first writer.

    The pipe is opened without blocking. A read that finds no data while a writer holds the pipe open
    (`BlockingIOError`) waits for data; one that finds end of file before any writer was seen polls for one; end of
    file after a writer was seen ends the stream."""
    shown = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise error(f"cannot read {what}: {e.strerror or e}", loc=Loc(shown), hint="check the path") from None
    chunks: list[bytes] = []
    total, seen_writer = 0, False
    deadline = time.monotonic() + PIPE_WAIT
    try:
        while total <= limit:
            try:
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            except BlockingIOError:  # a writer holds the pipe open and has not written yet
                seen_writer = True
                select.select([fd], [], [], 1.0)
                continue
            if chunk:
                seen_writer = True
                chunks.append(chunk)
                total += len(chunk)
            elif seen_writer:
                break
            elif time.monotonic() > deadline:
                raise error(f"the pipe had no writer for {PIPE_WAIT:g} s", loc=Loc(shown),
                            hint=f"start the program that writes the {what} first, or give a regular file")
            else:
                time.sleep(_PIPE_POLL)
    except OSError as e:
        raise error(f"cannot read {what}: {e.strerror or e}", loc=Loc(shown), hint="check the path") from None
    finally:
        os.close(fd)
    if total > limit:
        raise _too_big(error, shown, what, limit, hint)
    return b"".join(chunks)


def read_bytes(
    path: str | os.PathLike[str],
    *,
    limit: int,
    what: str,
    error: type[NlicError],
    hint: str | None = None,
    stdin: bool = False,
    streams: bool = True,
) -> bytes:
    """At most `limit` bytes of a regular file or a pipe (`-`: standard input, when `stdin`).

    Reads at most `limit + 1` bytes, so an endless stream stops; devices and directories are refused before
    any read (see `check_file`; `streams=False` refuses pipes too).

    Raises:
        error: the file cannot be read, is not a regular file or a pipe, or holds more than `limit` bytes.
    """
    if stdin and str(path) == STDIN:
        stream = sys.stdin
        buffer = getattr(stream, "buffer", None)
        try:
            data = buffer.read(limit + 1) if buffer is not None else stream.read(limit + 1).encode("utf-8")
        except OSError as e:
            raise error(f"cannot read standard input: {e.strerror or e}", loc=Loc(_STDIN_SHOWN)) from None
        if len(data) > limit:
            raise _too_big(error, _STDIN_SHOWN, what, limit, hint)
        return data
    size = check_file(path, limit=limit, what=what, error=error, hint=hint, streams=streams)
    if size is None:
        return _read_pipe(path, limit=limit, what=what, error=error, hint=hint)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as e:
        raise error(f"cannot read {what}: {e.strerror or e}", loc=Loc(str(path)), hint="check the path") from None
    if len(data) > limit:
        raise _too_big(error, str(path), what, limit, hint)
    return data


def position(text: str | bytes, index: int, first_line: int = 1) -> tuple[int, int]:
    """1-based (line, column) of character (or byte) `index` of `text`; lines count from `first_line`."""
    nl = "\n" if isinstance(text, str) else b"\n"
    line = text.count(nl, 0, index) + first_line
    col = index - (text.rfind(nl, 0, index) + 1) + 1
    return line, col


def decode_utf8(
    data: bytes,
    shown: str,
    *,
    what: str,
    error: type[NlicError],
    binary: str | None = None,
    not_utf8: str | None = None,
) -> str:
    """UTF-8 text of `data` (a leading byte-order mark dropped), refusing NUL bytes and invalid UTF-8.

    Args:
        data: the bytes.
        shown: the file's name in messages.
        what: what the file is ("spec", "task file").
        error: the `NlicError` subclass to raise.
        binary: the message for NUL bytes (default: "the file contains NUL bytes (binary data?)").
        not_utf8: the start of the message for invalid UTF-8 (default: "the file is not UTF-8 text").

    Raises:
        error: located at the first NUL byte or the first byte that is not UTF-8.
    """
    nul = data.find(b"\x00")
    if nul >= 0:
        raise error(binary or "the file contains NUL bytes (binary data?)", loc=Loc(shown, *position(data, nul)),
                    hint=f"{what}s are UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        # utf-8-sig counts positions after a byte-order mark it removed.
        start = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        raise error(f"{not_utf8 or 'the file is not UTF-8 text'} (byte 0x{data[start]:02x})",
                    loc=Loc(shown, *position(data, start)),
                    hint=f"save the {what} as UTF-8") from None


def read_text(
    path: str | os.PathLike[str],
    *,
    limit: int,
    what: str,
    error: type[NlicError],
    hint: str | None = None,
    stdin: bool = False,
    streams: bool = True,
) -> str:
    """`read_bytes` then `decode_utf8`: the UTF-8 text of a file of at most `limit` bytes (`streams=False`
    refuses pipes, whose reader would wait for a writer)."""
    data = read_bytes(path, limit=limit, what=what, error=error, hint=hint, stdin=stdin, streams=streams)
    shown = _STDIN_SHOWN if stdin and str(path) == STDIN else str(path)
    return decode_utf8(data, shown, what=what, error=error)


def list_dir(
    path: str | os.PathLike[str],
    *,
    suffixes: tuple[str, ...],
    what: str,
    error: type[NlicError],
    limit: int = MAX_DIR_FILES,
) -> list[Path]:
    """The entries of a folder whose names end in one of `suffixes` (unsorted), looking at most `limit` entries.

    Raises:
        error: the folder cannot be listed or holds more than `limit` entries.
    """
    shown = str(path)
    try:
        with os.scandir(path) as entries:
            found = []
            for n, entry in enumerate(entries):
                if n >= limit:
                    raise error(f"the directory holds more than {limit} entries", loc=Loc(shown),
                                hint=f"split the {what}s into folders of at most {limit} files")
                if entry.name.endswith(suffixes):
                    found.append(Path(path) / entry.name)
    except OSError as e:
        raise error(f"cannot list the directory: {e.strerror or e}", loc=Loc(shown), hint="check the path") from None
    return found


# --- JSON --------------------------------------------------------------------------------------------------------

# A JSON string (escapes included), in the unrolled form that the regex engine matches in linear time.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRING_RE = re.compile(_STRING, re.DOTALL)
_BRACKETS_RE = re.compile(_STRING + r"|[\[\]{}]", re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_DIGIT_MARKS = bytes(ord("1") if chr(c).isdigit() and c < 128 else ord(" ") for c in range(256))


@functools.cache
def _digits(digits: int) -> re.Pattern[str]:
    return re.compile(f"[0-9]{{{digits + 1}}}")


@functools.cache
def _string_or_digits(digits: int) -> re.Pattern[str]:
    return re.compile(f"{_STRING}|[0-9]{{{digits + 1},}}", re.DOTALL)


def _bounds_exceeded(text: str, max_depth: int, max_digits: int) -> tuple[bool, bool]:
    """Whether arrays and objects nest deeper than `max_depth` (outside strings), and whether a run of more than
    `max_digits` digits may occur outside strings (`_digits_match` decides).

    Linear and at C speed (no Python step per character): strings are removed by one regex pass, the rest is
    encoded once; digits are found by a regex (short texts, such as JSONL lines) or by `bytes.translate` and a
    substring search, the running depth of the brackets alone by a cumulative sum. Unbalanced brackets (invalid
    JSON) are left for the parser to report.
    """
    deep_possible = text.count("[") + text.count("{") > max_depth
    small = len(text) <= _SMALL_TEXT
    long = small and len(text) > max_digits and _digits(max_digits).search(text) is not None
    if not deep_possible and (small or len(text) <= max_digits):
        return False, long
    bare = (_STRING_RE.sub('""', text) if '"' in text else text).encode("utf-8", "surrogatepass")
    if not small:
        long = b"1" * (max_digits + 1) in bare.translate(_DIGIT_MARKS)
    if not deep_possible:
        return False, long
    codes = np.frombuffer(bare.translate(None, _NOT_BRACKETS), np.uint8)
    depth = 0
    for start in range(0, len(codes), _CHUNK):
        chunk = codes[start : start + _CHUNK]
        steps = np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1).astype(np.int32)
        running = np.cumsum(steps, dtype=np.int64) + depth
        if int(running.max()) > max_depth:
            return True, long
        depth = int(running[-1])
    return False, long


def _deep_index(text: str, max_depth: int) -> int:
    """Index of the first bracket deeper than `max_depth` (called once `_bounds_exceeded` found one)."""
    depth = 0
    for m in _BRACKETS_RE.finditer(text):
        token = m.group()
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                return m.start()
        elif token in ("]", "}"):
            depth -= 1
    return 0


def _digits_match(text: str, max_digits: int) -> re.Match[str] | None:
    """The first run of more than `max_digits` digits outside strings (called once `_bounds_exceeded` found one)."""
    for m in _string_or_digits(max_digits).finditer(text):
        if not m.group().startswith('"'):
            return m
    return None


class _Refused(ValueError):
    """A literal the JSON hooks refuse; carries the literal so that it can be located."""

    def __init__(self, literal: str, message: str):
        super().__init__(message)
        self.literal = literal
        self.message = message


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused(literal, f"number {literal} is out of range")
    return value


def _parse_constant(literal: str) -> float:
    raise _Refused(literal, f"{literal} is not a number JSON allows")


class _Duplicate(ValueError):
    """A key written twice in one JSON object (json keeps the last silently); carries the key to locate it."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return obj


_SURROGATE_RE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _lone_surrogate(text: str) -> re.Match[str] | None:
    """The first string literal of (valid) JSON `text` whose value holds half a surrogate pair (`"\\ud800"`, which
    `json.loads` accepts and no UTF-8 writer or terminal can print), or None. Cheap unless the text has such escapes."""
    if "\\u" not in text or _SURROGATE_RE.search(text) is None:
        return None
    for m in _STRING_RE.finditer(text):
        if _SURROGATE_RE.search(m.group()) is None:
            continue
        try:
            json.loads(m.group()).encode("utf-8")
        except UnicodeEncodeError:
            return m
        except ValueError:
            continue
    return None


# Integers keep json's own fast path (the digit bound above keeps them far from Python's conversion limit);
# only floats, rare in nlic's data, and the non-standard constants go through a hook.
_json_loads: Callable[[str], Any] = functools.partial(json.loads, parse_float=_parse_float,
                                                      parse_constant=_parse_constant,
                                                      object_pairs_hook=_unique_keys)


def _duplicate_index(text: str, key: str) -> int:
    """Index of the second time `key` is written as an object key (0 if it is spelt with escapes)."""
    pattern = re.compile(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:")
    found = [m.start() for m in pattern.finditer(text)]
    return found[1] if len(found) > 1 else 0


def _literal_index(text: str, literal: str) -> int:
    """Index of the first occurrence of `literal` outside strings (0 if not found)."""
    pattern = re.compile(_STRING + "|" + re.escape(literal), re.DOTALL)
    for m in pattern.finditer(text):
        if m.group() == literal:
            return m.start()
    return 0


def loads_json(
    text: str,
    *,
    path: str,
    error: type[NlicError],
    max_depth: int = MAX_JSON_DEPTH,
    max_number_digits: int = MAX_NUMBER_DIGITS,
    first_line: int = 1,
    invalid: str = "invalid JSON",
    hint: str | None = None,
) -> Any:
    """`json.loads` with bounded nesting and number sizes, every failure a located `error`.

    Nesting and number lengths are checked by a linear scan before `json.loads` runs, so neither Python's
    recursion limit nor its integer-conversion limit is ever reached; NaN, Infinity and floats that overflow
    are refused, as are strings holding half of a surrogate pair (`"\\ud800"`: not a character, unprintable).

    Args:
        text: the JSON text.
        path: file name in error locations.
        error: the `NlicError` subclass to raise.
        max_depth: most nested arrays and objects.
        max_number_digits: most digits in one run of a number literal (so a literal has at most about three
            times as many characters: integer, fraction, exponent).
        first_line: line number of the text's first line (a JSONL line's number).
        invalid: the message's start for text that is not JSON ("invalid JSON: Expecting value").
        hint: the hint of a syntax error.

    Raises:
        error: located at `path:line:col`.
    """
    def at(index: int) -> Loc:
        return Loc(path, *position(text, index, first_line))

    deep, long = _bounds_exceeded(text, max_depth, max_number_digits)
    if deep:
        raise error(f"JSON nested deeper than {max_depth} levels", loc=at(_deep_index(text, max_depth)),
                    hint="nlic's data nest a few levels: a task, its pairs, a grid, its rows")
    match = _digits_match(text, max_number_digits) if long else None
    if match is not None:
        raise error(f"a number of {len(match.group())} digits, more than the {max_number_digits} nlic reads",
                    loc=at(match.start()), hint="data values are small integers")
    try:
        value = _json_loads(text)
    except _Refused as e:
        raise error(e.message, loc=at(_literal_index(text, e.literal)), hint="write a finite number") from None
    except _Duplicate as e:
        raise error(f"key {json.dumps(e.key)} is written twice in one object",
                    loc=at(_duplicate_index(text, e.key)),
                    hint="JSON keeps only the last value of a repeated key: remove or rename one") from None
    except RecursionError:  # not reached after the depth check; kept so that no traceback can escape
        raise error("JSON nested too deeply", loc=Loc(path, first_line), hint=hint) from None
    except ValueError as e:  # json.JSONDecodeError
        line, col = getattr(e, "lineno", 1), getattr(e, "colno", None)
        msg = getattr(e, "msg", str(e))
        raise error(f"{invalid}: {msg}", loc=Loc(path, line + first_line - 1, col), hint=hint) from None
    lone = _lone_surrogate(text)
    if lone is not None:
        literal = lone.group() if len(lone.group()) <= 60 else lone.group()[:57] + "..."
        raise error(f"the string {literal} holds half of a UTF-16 surrogate pair, which is not a character",
                    loc=at(lone.start()), hint="write the character itself, or both halves of the pair "
                    "(\\ud83d\\ude00)")
    return value
