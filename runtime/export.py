"""Exporting tasks as files a user (or another tool) can read: ARC-style JSON, one file per task.

The files load back with the `files` family (or `nlic solve RUN_DIR DIR`) as the same tasks.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from nlic.compiler.families import Codec, TaskSet
from nlic.compiler.families.colours import restore_colours
from nlic.grammar.errors import DataError, Loc
from nlic.runtime.build import BUILD_MARKERS
from nlic.runtime.files import atomic_write, writing
from nlic.runtime.run_dir import run_markers

__all__ = ["export_tasks", "task_rows"]


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_MAX_STEM = 100
_QUERY = re.compile(r"^(.*)#([1-9][0-9]*)$")


def _stems(ids: list[str]) -> list[str]:
    """A file name (without `.json`) per task id, all distinct on any file system: the id with characters outside
    `A-Za-z0-9_.-` as `_`, at most 100 of them and no leading dot; where that is not the id itself, or equals
    another task's name but for case, 8 hex digits of the id's hash are appended (the file then holds the id)."""
    base = [re.sub(r"^\.", "_", _UNSAFE.sub("_", t)[:_MAX_STEM]) for t in ids]
    clash = collections.Counter(b.casefold() for b in base)
    stems = [b if b == t and clash[b.casefold()] == 1 else f"{b}-{hashlib.sha256(t.encode()).hexdigest()[:8]}"
             for t, b in zip(ids, base)]
    seen: set[str] = set()
    for i, stem in enumerate(stems):  # a hash suffix equal to another id's name: count up until free
        n = 1
        while stem.casefold() in seen:
            n += 1
            stem = f"{stems[i]}-{n}"
        seen.add(stem.casefold())
        stems[i] = stem
    return stems


def task_rows(tasks: TaskSet) -> list[tuple[str, list[int]]]:
    """The rows of each task: a row `ID#n` joins the task `ID` when it holds that task's test pair n + 1 (the same
    spec pairs, its place next), as the `files` family numbers a task's test pairs; every other row is a task."""
    rows: dict[str, list[int]] = {}
    spec = lambda i: (tasks.inputs[i].tobytes(), tasks.outputs[i].tobytes(), tasks.pair_mask[i].tobytes())  # noqa: E731
    order: list[str] = []
    for i, tid in enumerate(tasks.ids):
        m = _QUERY.match(tid)
        if m and m.group(1) in rows and len(rows[m.group(1)]) == int(m.group(2)) \
                and spec(rows[m.group(1)][0]) == spec(i):
            rows[m.group(1)].append(i)
            continue
        rows[tid] = [i]
        order.append(tid)
    return [(tid, rows[tid]) for tid in order]


def export_tasks(tasks: TaskSet, codec: Codec, out_dir: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Write each task as an ARC-style JSON file (spec pairs as train, its queries as test; see `_stems` for the
    file names), so that the `files` family reads back the same rows under the same ids. Returns the files.

    Everything is encoded before the first file is written; if a write fails, the files this call created are
    removed again.

    Raises:
        DataError: `out_dir` is a file, a training run or a build, or a non-empty directory and not `force`; a
            file cannot be written.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError("is a file, not a directory", loc=Loc(str(out)), hint="choose a directory for the exported tasks")
    theirs = run_markers(out) + [name for name in BUILD_MARKERS if (out / name).exists()]
    if theirs:  # --force replaces task files: a task named 'model' would replace a run's model.json
        raise DataError(f"the directory is a training run or a build ({', '.join(theirs)}); refusing to write task "
                        "files there, even with --force", loc=Loc(str(out)), hint="choose a directory of its own")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DataError("the directory is not empty; refusing to mix or overwrite task files", loc=Loc(str(out)),
                        hint="choose a new directory or pass --force")
    tasks = restore_colours(tasks)  # the tasks' own colours, also for tasks a spec renumbered
    groups = task_rows(tasks)
    files = []
    for (tid, rows), stem in zip(groups, _stems([tid for tid, _ in groups])):
        first = rows[0]
        train = [
            {"input": codec.decode(tasks.inputs[first, j]), "output": codec.decode(tasks.outputs[first, j])}
            for j in range(tasks.inputs.shape[1]) if tasks.pair_mask[first, j]
        ]
        test = []
        for i in rows:
            pair: dict[str, Any] = {"input": codec.decode(tasks.query_inputs[i])}
            if tasks.has_target[i]:
                pair["output"] = codec.decode(tasks.query_outputs[i])
            test.append(pair)
        task = ({"id": tid} if stem != tid else {}) | {"train": train, "test": test}
        files.append((out / f"{stem}.json", json.dumps(task, separators=(",", ":")) + "\n"))
    created: list[Path] = []
    with writing("exported tasks", error=DataError, then="then export again"):
        out.mkdir(parents=True, exist_ok=True)
        try:
            for path, text in files:
                new = not path.exists()
                atomic_write(path, text)
                if new:
                    created.append(path)
        except OSError:
            for path in created:
                path.unlink(missing_ok=True)
            raise
    return [path for path, _ in files]
