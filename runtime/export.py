"""Exporting tasks as files a user (or another tool) can read: ARC-style JSON, one file per task.

The files load back with the `files` family (or `nlic solve RUN_DIR DIR`) as the same tasks.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from nlic.compiler.families import Codec, TaskSet
from nlic.compiler.families.colours import restore_colours
from nlic.grammar.errors import DataError, Loc
from nlic.runtime.files import atomic_write

__all__ = ["export_tasks"]


def export_tasks(tasks: TaskSet, codec: Codec, out_dir: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Write each task as an ARC-style JSON file `<id>.json` (spec pairs as train, the query as test).

    Raises:
        DataError: `out_dir` is a file, or a non-empty directory and not `force`.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError("is a file, not a directory", loc=Loc(str(out)), hint="choose a directory for the exported tasks")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DataError("the directory is not empty; refusing to mix or overwrite task files", loc=Loc(str(out)),
                        hint="choose a new directory or pass --force")
    out.mkdir(parents=True, exist_ok=True)
    tasks = restore_colours(tasks)  # the tasks' own colours, also for tasks a spec renumbered
    written = []
    for i, tid in enumerate(tasks.ids):
        train = [
            {"input": codec.decode(tasks.inputs[i, j]), "output": codec.decode(tasks.outputs[i, j])}
            for j in range(tasks.inputs.shape[1]) if tasks.pair_mask[i, j]
        ]
        test: dict[str, Any] = {"input": codec.decode(tasks.query_inputs[i])}
        if tasks.has_target[i]:
            test["output"] = codec.decode(tasks.query_outputs[i])
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", tid)
        path = out / f"{name}.json"
        atomic_write(path, json.dumps({"train": train, "test": [test]}, separators=(",", ":")) + "\n")
        written.append(path)
    return written
