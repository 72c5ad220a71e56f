"""User task files (ARC-style JSON and JSONL): reading with located errors, exporting, and the `files` family.

Bad data of any kind is a `DataError` naming the file, the line (JSONL) or task, and the pair; never a traceback.

Formats:
    ARC-style JSON: one file is one task `{"train": [{"input": X, "output": Y}, ...], "test": [...]}` whose id
        is the file name without extension; a file may also hold a list of tasks (ids `<name>-<i>`, or each
        task's "id") or a dict from ids to tasks. A directory means every `*.json` / `*.jsonl` in it, sorted
        (not its subfolders, hidden files or entries that are not regular files).
    JSONL: one task object per line, with an optional "id" (default `<name>-<line>`); blank lines are skipped.
Values X, Y are 1-D int lists or 2-D grids (lists of rows), all of one kind in a data set, values in
0..MAX_VALUE (65535), at most MAX_LENGTH (4096) values in one (a grid's shape is checked before its cells).
Files are read within `nlic.grammar.reading`'s bounds: 256 MiB a file, 100 000 entries a folder, JSON nested
at most 64 deep with numbers of at most 40 digits, no key written twice in one object; pipes are refused. Every
datum is padded to the data set's largest (grids to its most rows and most columns, at most MAX_LENGTH values),
and one split's padded rows hold at most MAX_ENCODED (2^27) values.
Task keys are "train", "test" and "id" only. Pairs in messages count from 1.

Tasks as TaskSet rows: the first `pairs` train pairs are the spec (fewer are masked out with pair_mask, more
are dropped); each test pair gives one row (ids `name`, `name#1`, `name#2`, ...), and a test pair without
"output" has has_target False. A task without "test" uses its last train pair as the query.

The `files` family: params map split names to files or directories, or lists of them (`train: data/train.jsonl`,
`ood: data/ood/`), `train` being optional when a spec only solves. The spec loader resolves relative paths of
the split names in `path_params` (any key answers `in`) against the spec file's folder; others are read relative
to the working directory. A path the runtime found moved (`relocate`: a run's project folder moved or copied with
its data, the files checked by `data_digest`) is read from its new place. L and V are inferred over all its
files: sequences of one
length / grids of one size need no padding (V = max value + 1); otherwise shorter data are padded with a PAD
token = max value + 1 (V = max value + 2), sequences at the end, grids to the bottom-right.

Primitives: none (the family defines no `primitives`): the programs behind a user's data are unknown, so
`nlic inspect` probes a language trained on files with the user's own task inputs and describes each token by the
positions it moves and the values it maps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlic.compiler.families.base import Codec, TaskSet
from nlic.compiler.families.codecs import GridCodec, SequenceCodec, is_int, show_value
from nlic.compiler.families.common import rng_for
from nlic.grammar.errors import DataError, Diagnostic, Loc, SpecError, did_you_mean
from nlic.grammar.reading import MAX_DATA_BYTES, list_dir, loads_json, read_bytes, read_text

__all__ = ["RawTask", "read_raw", "read_tasks", "infer_codec", "encode_tasks", "check_encodable", "row_ids",
           "data_digest", "relocate", "paths_of", "located", "FilesFamily", "MAX_LENGTH", "MAX_VALUE", "MAX_ENCODED"]

MAX_LENGTH = 4096
"""Most values in one datum (a sequence's length, a grid's rows x cols; ARC's largest grid has 900)."""
MAX_VALUE = 65535
"""Largest data value (the alphabet is at most `language.values`' 65536 tokens)."""

_TASK_KEYS = ("train", "test", "id")
_PAIR_KEYS = ("input", "output")
_SPLIT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclasses.dataclass(frozen=True)
class RawTask:
    """One task as JSON values, with where it came from (`loc`) for error messages."""

    id: str
    train: tuple[tuple[Any, Any], ...]
    test: tuple[tuple[Any, Any | None], ...]
    loc: Loc


def _err(loc: Loc, msg: str, hint: str | None = None) -> DataError:
    return DataError(msg, loc=loc, hint=hint)


def _natural(path: Path) -> list[Any]:
    """Sort key putting `task-2` before `task-10`."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", path.name)]


def _files_of(path: Path) -> list[Path]:
    if path.is_dir():
        listed = [p for p in list_dir(path, suffixes=(".json", ".jsonl"), what="task file", error=DataError)
                  if not p.name.startswith(".")]  # hidden files: editors' and macOS's `._name.json` companions
        files = sorted((p for p in listed if p.is_file()), key=_natural)
        if not files:
            others = sorted(p.name for p in listed)
            skipped = (f" ({len(others)} skipped, not regular files: {', '.join(others[:3])}"
                       f"{', ...' if len(others) > 3 else ''})") if others else ""
            raise _err(Loc(str(path)), f"the directory holds no .json or .jsonl task files{skipped}",
                       "put ARC-style task files (one task per .json) or a .jsonl file there; subfolders, links "
                       "that lead nowhere and hidden files are not read")
        return files
    if not path.exists():
        raise _err(Loc(str(path)), "no such task file or directory", "check the path")
    if path.suffix not in (".json", ".jsonl"):
        raise _err(Loc(str(path)), f"unknown task file type '{path.suffix or '(none)'}'",
                   "use ARC-style .json, .jsonl (one task per line) or a directory of them")
    return [path]


def _pairs(obj: Any, key: str, tid: str, loc: Loc, *, need_output: bool) -> tuple[tuple[Any, Any], ...]:
    pairs = obj[key]
    if not isinstance(pairs, list):
        raise _err(loc, f"task '{tid}': '{key}' must be a list of {{\"input\", \"output\"}} pairs, "
                   f"got {type(pairs).__name__}")
    out = []
    for i, pair in enumerate(pairs, 1):
        where = f"task '{tid}': {key} pair {i}"
        if not isinstance(pair, dict):
            raise _err(loc, f"{where}: must be an object with \"input\" and \"output\", got {type(pair).__name__}")
        for k in pair:
            if k not in _PAIR_KEYS:
                raise _err(loc, f"{where}: unknown key '{k}'", did_you_mean(k, _PAIR_KEYS))
        if "input" not in pair:
            raise _err(loc, f"{where}: missing \"input\"")
        if need_output and pair.get("output") is None:  # null: a test pair's unknown output, no train pair's
            raise _err(loc, f"{where}: {'missing' if 'output' not in pair else 'null'} \"output\"",
                       "every train pair needs an output")
        out.append((pair["input"], pair.get("output")))
    return tuple(out)


def _task(obj: Any, default_id: str, loc: Loc) -> RawTask:
    if not isinstance(obj, dict):
        raise _err(loc, f"task '{default_id}': expected an object with \"train\" and \"test\", "
                   f"got {type(obj).__name__}")
    tid = obj.get("id", default_id)
    if not isinstance(tid, (str, int)) or isinstance(tid, bool) or str(tid) == "":
        raise _err(loc, f"task '{default_id}': \"id\" must be a non-empty string, got {show_value(tid)}")
    tid = str(tid)
    if not tid.isascii():
        try:
            tid.encode("utf-8")
        except UnicodeEncodeError:  # a file name of bytes that are no UTF-8 (`t\xff.json`): unwritable, unprintable
            raise _err(loc, f"task '{tid}': the id, from the file name, is not UTF-8 text",
                       "rename the file, or give the task an \"id\"") from None
    for k in obj:
        if k not in _TASK_KEYS:
            raise _err(loc, f"task '{tid}': unknown key '{k}'", did_you_mean(k, _TASK_KEYS))
    if "train" not in obj:
        raise _err(loc, f"task '{tid}': missing \"train\" pairs", "a task needs at least one train pair")
    train = _pairs(obj, "train", tid, loc, need_output=True)
    if not train:
        raise _err(loc, f"task '{tid}': \"train\" is empty", "a task needs at least one train pair")
    test = _pairs(obj, "test", tid, loc, need_output=False) if "test" in obj else ()
    return RawTask(tid, train, test, loc)


def _read_json(path: Path) -> Iterator[RawTask]:
    try:
        data = loads_json(_text(path), path=str(path), error=DataError)
    except DataError as e:
        (d,) = e.diagnostics
        if "Extra data" not in d.message:
            raise
        raise DataError(d.message, loc=d.loc, hint="a .json file holds one JSON value: a task, or a list or dict of "
                        "tasks; name a file of one task per line .jsonl") from None
    stem = path.stem
    if isinstance(data, dict) and ("train" in data or "test" in data):
        yield _task(data, stem, Loc(str(path)))
    elif isinstance(data, list):
        if not data:
            raise _err(Loc(str(path)), "the file holds an empty list of tasks")
        for i, obj in enumerate(data):
            yield _task(obj, f"{stem}-{i}", Loc(str(path)))
    elif isinstance(data, dict):
        if not data:
            raise _err(Loc(str(path)), "the file holds an empty object", "write {\"train\": [...], \"test\": [...]}")
        for key, obj in data.items():
            if isinstance(obj, dict) and "id" not in obj:
                obj = {"id": key, **obj}
            yield _task(obj, key, Loc(str(path)))
    else:
        raise _err(Loc(str(path)), f"expected a task object, a list or a dict of tasks, got {type(data).__name__}")


def _read_jsonl(path: Path) -> Iterator[RawTask]:
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters splitlines() breaks at.
    lines = _text(path).split("\n")
    any_task = False
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        loc = Loc(str(path), n)
        obj = loads_json(line, path=str(path), error=DataError, first_line=n,
                         hint="a .jsonl file holds one task object per line")
        any_task = True
        yield _task(obj, f"{path.stem}-{n}", loc)
    if not any_task:
        raise _err(Loc(str(path)), "the file holds no tasks")


def _text(path: Path) -> str:
    return read_text(path, limit=MAX_DATA_BYTES, what="task file", error=DataError, streams=False,
                     hint="split the tasks into several files (a split may list several, or a folder)")


def paths_of(path: Any) -> list[str]:
    """One path, or a list of them (a split may name several files)."""
    return [str(p) for p in path] if isinstance(path, (list, tuple)) else [str(path)]


def read_raw(path: str | os.PathLike[str] | Sequence[str]) -> list[RawTask]:
    """Every task of a file or directory (or of several) as JSON values; `DataError` on malformed files or
    duplicate ids."""
    tasks: list[RawTask] = []
    seen: dict[str, Loc] = {}
    for f in (f for p in paths_of(path) for f in _files_of(Path(p))):
        for t in (_read_jsonl(f) if f.suffix == ".jsonl" else _read_json(f)):
            if t.id in seen:
                raise _err(t.loc, f"task '{t.id}' is defined twice (first at {seen[t.id]})", "task ids must be unique")
            seen[t.id] = t.loc
            tasks.append(t)
    return tasks


# --- shape inference -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Stats:
    dims: int | None = None
    first: str = ""
    max_value: int = 0
    shapes: set[tuple[int, ...]] = dataclasses.field(default_factory=set)
    tallest: tuple[int, str, Loc] = (0, "", Loc(""))  # the most rows of any grid, and which datum has them
    widest: tuple[int, str, Loc] = (0, "", Loc(""))


def _scan(value: Any, what: str, loc: Loc, st: _Stats) -> None:
    """Check one JSON value is a non-empty int list or rectangular grid of ints in 0..MAX_VALUE; record its shape.

    The shape is checked (one look per row) before any value, so that a huge grid is refused at once."""
    if not isinstance(value, list):
        raise _err(loc, f"{what} must be a list of integers or a grid (list of rows), got {type(value).__name__}")
    if not value:
        raise _err(loc, f"{what} is empty", "every input and output needs at least one value")
    dims = 2 if isinstance(value[0], list) else 1
    if st.dims is None:
        st.dims, st.first = dims, what
    elif dims != st.dims:
        kinds = {1: "a sequence", 2: "a grid"}
        raise _err(loc, f"{what} is {kinds[dims]} but {st.first} is {kinds[st.dims]}",
                   "all values of a data set must be sequences, or all grids")
    rows = value if dims == 2 else [value]
    width = len(rows[0])
    if len(rows) * width > MAX_LENGTH or len(rows) > MAX_LENGTH:
        size = f"a {len(rows)}x{width} grid" if dims == 2 else f"a sequence of {width} values"
        raise _err(loc, f"{what} is {size}, more than the {MAX_LENGTH} values nlic reads in one datum",
                   "crop or split the data (ARC's largest grids are 30x30)")
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            raise _err(loc, f"{what} row {r + 1} is not a list", "a grid is a list of rows")
        if len(row) != width:
            raise _err(loc, f"{what} is ragged: row {r + 1} has {len(row)} values, row 1 has {width}",
                       "every row of a grid needs the same length")
    if dims == 2 and width == 0:
        raise _err(loc, f"{what} has empty rows")
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            if not is_int(v) or not 0 <= v <= MAX_VALUE:
                pos = f"row {r + 1}, column {c + 1}" if dims == 2 else f"position {c + 1}"
                if not is_int(v):
                    raise _err(loc, f"{what} has a non-integer value {show_value(v)} at {pos}",
                               "values are integers >= 0")
                if v < 0:
                    raise _err(loc, f"{what} has a negative value {v} at {pos}", "values are integers >= 0")
                raise _err(loc, f"{what} has value {v} at {pos}, more than {MAX_VALUE}",
                           f"values are tokens of an alphabet of at most {MAX_VALUE + 1}")
            st.max_value = max(st.max_value, int(v))
    st.shapes.add((len(rows), width) if dims == 2 else (width,))
    if len(rows) > st.tallest[0]:
        st.tallest = (len(rows), what, loc)
    if width > st.widest[0]:
        st.widest = (width, what, loc)


def _cells(value: Any) -> int:
    """How many values a datum holds, by its first row (cheap; `_scan` checks the rest)."""
    if not isinstance(value, list):
        return 0
    return len(value) * len(value[0]) if value and isinstance(value[0], list) else len(value)


def _refuse_oversized(tasks: list[RawTask], codec: Codec) -> None:
    """Refuse, with the codec's own message, any datum larger than the codec reads, before looking at values."""
    length = int(codec.length)
    for t in tasks:
        for kind, pairs in (("train", t.train), ("test", t.test)):
            for i, (x, y) in enumerate(pairs, 1):
                for side, v in (("input", x), ("output", y)):
                    if v is not None and _cells(v) > length:
                        _enc(codec, v, t.loc, f"task '{t.id}': {kind} pair {i}: {side}")


def _scan_tasks(tasks: list[RawTask], st: _Stats) -> None:
    for t in tasks:
        for kind, pairs in (("train", t.train), ("test", t.test)):
            for i, (x, y) in enumerate(pairs, 1):
                _scan(x, f"task '{t.id}': {kind} pair {i}: input", t.loc, st)
                if y is not None:
                    _scan(y, f"task '{t.id}': {kind} pair {i}: output", t.loc, st)


def infer_codec(tasks: list[RawTask]) -> Codec:
    """The smallest codec holding every value of `tasks` (see the module docstring for the PAD rule)."""
    st = _Stats()
    _scan_tasks(tasks, st)
    pad = None if len(st.shapes) == 1 else st.max_value + 1
    values = st.max_value + 1 + (pad is not None)
    if st.dims == 2:
        rows, cols = st.tallest[0], st.widest[0]
        if rows * cols > MAX_LENGTH:
            # Every grid is padded to the most rows and the most columns of any: two grids that each fit may
            # together ask for more.
            raise _err(st.tallest[2],
                       f"grids padded to {rows} rows (as {st.tallest[1]}) and {cols} columns (as {st.widest[1]}, "
                       f"{st.widest[2]}) are {rows}x{cols}, more than the {MAX_LENGTH} values nlic reads in one datum",
                       "every grid of a data set is padded to the most rows and the most columns of any: crop the "
                       "tall or the wide ones, or keep such tasks in separate specs")
        return GridCodec(rows, cols, values, pad)
    return SequenceCodec(max(s[0] for s in st.shapes), values, pad)


# --- encoding --------------------------------------------------------------------------------------------------


MAX_ENCODED = 1 << 27
"""Most values the encoded rows of one split may hold (512 MiB of int32): rows x (2 pairs + 2) x L, every datum
padded to L, the largest of the data set."""


def _spec_and_queries(t: RawTask) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any | None]]]:
    """A task's spec pairs and queries: its test pairs, or its last train pair when it has none."""
    if t.test:
        return list(t.train), list(t.test)
    if len(t.train) < 2:
        raise _err(t.loc, f"task '{t.id}': one train pair and no test pair leave nothing to learn from",
                   "add a \"test\" pair or a second train pair")
    return list(t.train[:-1]), list(t.train[-1:])


def row_ids(tasks: list[RawTask]) -> list[str]:
    """The TaskSet row ids of `tasks` (`name`, `name#1`, ... per query); `DataError` for a task that has nothing to
    learn from, or a task id that is another task's query id (`t#1` beside a task `t` with two test pairs)."""
    def named(t: RawTask, j: int) -> str:
        return f"task '{t.id}'" if j == 0 else f"test pair {j + 1} of task '{t.id}'"

    ids: list[str] = []
    owner: dict[str, tuple[RawTask, int]] = {}
    for t in tasks:
        _, queries = _spec_and_queries(t)
        for j in range(len(queries)):
            rid = t.id if j == 0 else f"{t.id}#{j}"
            if rid in owner:
                first, k = owner[rid]
                raise _err(t.loc, f"'{rid}' names both {named(first, k)} ({first.loc}) and {named(t, j)}",
                           "nlic names test pair n + 1 of a task 'ID#n': rename the task")
            owner[rid] = (t, j)
            ids.append(rid)
    return ids


def check_encodable(tasks: list[RawTask], codec: Codec, pairs: int) -> list[str]:
    """`DataError` unless `encode_tasks` can encode `tasks`: every task has something to learn from, row ids are
    unique and the padded rows stay within `MAX_ENCODED` values (without encoding any). Returns the row ids."""
    ids = row_ids(tasks)
    n, L = len(ids), int(codec.length)
    total = n * (2 * pairs + 2) * L
    if total > MAX_ENCODED:
        raise _err(Loc(tasks[0].loc.path), f"{n} queries of {pairs} pairs, every datum padded to {L} values, "
                   f"are {total:,} values, more than the {MAX_ENCODED:,} nlic holds for one split",
                   "every datum is padded to the largest of the data set: split the tasks into several splits or "
                   "specs, keeping large and small data apart, or crop the large ones")
    return ids


def encode_tasks(tasks: list[RawTask], codec: Codec, pairs: int) -> TaskSet:
    """Raw tasks -> TaskSet rows (one per test pair) with the given codec; `DataError` if a value does not fit
    (or see `check_encodable`)."""
    ids = check_encodable(tasks, codec, pairs)
    n, L = len(ids), int(codec.length)
    fill = getattr(codec, "pad", None) or 0
    inputs = np.full((n, pairs, L), fill, np.int32)
    outputs = np.full((n, pairs, L), fill, np.int32)
    pair_mask = np.zeros((n, pairs), bool)
    query_inputs = np.full((n, L), fill, np.int32)
    query_outputs = np.full((n, L), fill, np.int32)
    has = np.zeros(n, bool)
    row = 0
    for t in tasks:
        spec_pairs, queries = _spec_and_queries(t)
        first = row
        for i, (x, y) in enumerate(spec_pairs[:pairs]):
            w = f"task '{t.id}': train pair {i + 1}"
            inputs[row, i] = _enc(codec, x, t.loc, f"{w}: input")
            outputs[row, i] = _enc(codec, y, t.loc, f"{w}: output")
            pair_mask[row, i] = True
        for j, (x, y) in enumerate(queries):
            kind, num = ("test", j + 1) if t.test else ("train", len(t.train))
            w = f"task '{t.id}': {kind} pair {num}"
            if row != first:  # every query of a task has the task's spec pairs
                inputs[row], outputs[row], pair_mask[row] = inputs[first], outputs[first], pair_mask[first]
            query_inputs[row] = _enc(codec, x, t.loc, f"{w}: input")
            if y is not None:
                query_outputs[row] = _enc(codec, y, t.loc, f"{w}: output")
                has[row] = True
            row += 1
    return TaskSet(ids=tuple(ids), inputs=inputs, outputs=outputs, pair_mask=pair_mask,
                   query_inputs=query_inputs, query_outputs=query_outputs, has_target=has)


def _enc(codec: Codec, value: Any, loc: Loc, what: str) -> np.ndarray:
    try:
        return codec.encode(value, where=loc, what=what)
    except TypeError:
        # A codec written against the bare protocol (no `what`): prefix the message ourselves.
        try:
            return codec.encode(value, where=loc)
        except DataError as e:
            raise DataError(diagnostics=[dataclasses.replace(d, message=f"{what}: {d.message}")
                                         for d in e.diagnostics]) from None


def read_tasks(path: str | os.PathLike[str] | Sequence[str], codec: Codec, *, pairs: int) -> TaskSet:
    """A task file or directory encoded with `codec` (see the module docstring)."""
    raw = read_raw(path)
    if not raw:
        raise _err(Loc(str(path)), "no tasks found")
    if isinstance(codec, (SequenceCodec, GridCodec)):
        _refuse_oversized(raw, codec)
        _scan_tasks(raw, _Stats())  # type and shape problems get the data-set wording before codec limits
    return encode_tasks(raw, codec, pairs)


# --- export ----------------------------------------------------------------------------------------------------


# --- moved data ------------------------------------------------------------------------------------------------


def data_digest(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of the task files a path names (a file, or a directory's files as `read_raw` lists them):
    their names within it and their bytes. Equal digests: the same data, wherever they are.

    Raises:
        DataError: the path or a file in it cannot be read.
    """
    path = Path(path)
    h = hashlib.sha256()
    for f in _files_of(path):
        data = read_bytes(f, limit=MAX_DATA_BYTES, what="task file", error=DataError, streams=False)
        name = f.name if f != path else ""
        h.update(f"{name}\0{len(data)}\0".encode("utf-8", "surrogateescape") + hashlib.sha256(data).digest())
    return h.hexdigest()


_MOVED: dict[str, str] = {}


def relocate(path: str, to: str) -> None:
    """Read the data a spec names `path` from `to` from now on, in this process: the same files (the caller checked
    their `data_digest`) moved with a run's project folder, while a run's locked spec still names `path`, which its
    spec hash and fingerprint cover."""
    _MOVED[str(path)] = str(to)


def located(path: str) -> str:
    """Where the data a spec names `path` are read from: `path`, or its new place (`relocate`)."""
    return _MOVED.get(path, path)


def _split_paths(params: Mapping[str, Any], split: str) -> list[str]:
    return [located(p) for p in paths_of(params[split])]


# --- the family ------------------------------------------------------------------------------------------------


class _PathKeys(tuple):
    """Every key of the files family is a path; iteration lists the usual split names."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)


_CACHE: dict[tuple[Any, ...], tuple[tuple[float, ...], Any]] = {}


def _cached(kind: str, paths: Sequence[str], extra: tuple[Any, ...], build: Any) -> Any:
    """Memoise by paths and modification times, so a training loop does not re-read the files every step."""
    stamp = []
    for p in paths:
        path = Path(p)
        files = _files_of(path) if path.exists() else [path]
        stamp.extend(f.stat().st_mtime_ns if f.exists() else -1 for f in files)
    key = (kind, *paths, *extra)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == tuple(stamp):
        return hit[1]
    value = build()
    _CACHE[key] = (tuple(stamp), value)
    return value


@dataclasses.dataclass(frozen=True)
class FilesFamily:
    """Tasks from the user's files; params map split names to paths (see the module docstring)."""

    name: str = "files"
    path_params: tuple[str, ...] = _PathKeys(("train", "id", "ood", "test", "valid"))

    def check_params(self, params: Mapping[str, Any], locs: Mapping[str, Loc], where: Loc) -> list[Diagnostic]:
        diags = []
        if not params:
            diags.append(Diagnostic(where, "task family 'files' needs at least one split",
                                    "write e.g. params: {train: data/train.jsonl, ood: data/ood/}"))
        for key, value in params.items():
            loc = locs.get(key, where)
            if not _SPLIT_NAME.match(key):
                diags.append(Diagnostic(loc, f"'{key}' is not a valid split name", "use letters, digits, _ and -"))
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            if not items or any(not isinstance(v, (str, os.PathLike)) or str(v) == "" for v in items):
                diags.append(Diagnostic(loc, f"split '{key}' must be a path to a task file or directory (or a list "
                                        f"of them), got {value!r}", "write e.g. train: data/train.jsonl"))
                continue
            for v in items:
                # Relative paths are checked when read: the spec loader may still resolve them.
                if os.path.isabs(str(v)) and not os.path.exists(located(str(v))):
                    diags.append(Diagnostic(loc, f"split '{key}': no such file or directory: {v}", "check the path"))
        return diags

    def splits(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(params)

    def _raw(self, params: Mapping[str, Any], split: str) -> list[RawTask]:
        paths = _split_paths(params, split)
        return _cached("raw", paths, (), lambda: read_raw(paths))

    def codec(self, params: Mapping[str, Any]) -> Codec:
        diags = self.check_params(params, {}, Loc("task.params"))
        if diags:
            raise SpecError(diagnostics=diags)
        names = tuple(sorted(params))
        paths = tuple(p for k in names for p in _split_paths(params, k))
        return _cached("codec", paths, (), lambda: infer_codec([t for k in names for t in self._raw(params, k)]))

    def check_data(self, params: Mapping[str, Any], *, pairs: int) -> None:
        """What `sample` would refuse, checked without encoding (for `nlic validate`): see `check_encodable`."""
        codec = self.codec(params)
        for split in params:
            check_encodable(self._raw(params, split), codec, pairs)

    def sample(self, params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int) -> TaskSet:
        """n tasks of the split's files: all of them in file order when n >= their number, else a seeded subset
        (training draws a fresh subset per step seed)."""
        if split not in params:
            raise SpecError(f"task family 'files' has no split '{split}'", loc=Loc("task.params"),
                            hint=did_you_mean(split, params))
        codec = self.codec(params)
        ts = _cached("tasks", _split_paths(params, split), (pairs, codec),
                     lambda: encode_tasks(self._raw(params, split), codec, pairs))
        if n >= len(ts):
            return ts
        idx = np.sort(rng_for(seed, split, "files").choice(len(ts), n, replace=False))
        return ts.take(idx)


FILES = FilesFamily()
"""The `files` family (registered by `nlic.compiler.families`)."""
