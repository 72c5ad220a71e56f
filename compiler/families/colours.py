"""Canonical colours: each task's colours renumbered by their role in the task (`task.colours: canonical`).

ARC-style rules take colours as arguments: "recolour the block to the colour that appears in the outputs", where
the colours are drawn anew for every task. A discrete program cannot name a colour it has not seen, so in raw
colours such a rule is a different program in every task (72 of them for recolour's pairs of 9 colours), and no
fixed token can run it. Renumbered per task by role, the same rule is one program in every task: the block's
colour is always 1 and the new colour always 9.

The renumbering (`canonical_map`) ranks a task's colours (the codec's values other than the background 0 and
PAD) from what every method may read: the spec pairs and the query input.
1. Colours of the inputs (the spec inputs and the query input) take 1, 2, ... in order of rank.
2. Colours that only the spec outputs hold (a rule's new colours) take the top values C, C-1, ... in order of
   rank, so that their value does not depend on how many colours the inputs hold.
3. Colours the task never shows take the values left, in increasing order.
The rank of a colour: its cells' mean run length (cells over maximal one-colour runs of a row; a block ranks
above single pixels), then its number of cells, then where it first appears (pair by pair, input before
output, cell by cell), all larger first except the last. The background and PAD keep their values.

The map is a permutation, so exact-match accuracy is the same in either numbering; what users see (predictions,
`nlic data` output, program replay) is mapped back to the task's own colours through `TaskSet.colour_maps`, and
program files record each program's map as its `colours` metadata (`colour_text`, `parse_colours`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from nlic.compiler.families.base import TaskSet
from nlic.compiler.families.codecs import GridCodec

__all__ = [
    "colours_of",
    "canonical_map",
    "canonical_colours",
    "restore_colours",
    "restore_rows",
    "through",
    "colour_text",
    "parse_colours",
]

def colours_of(codec: object) -> tuple[int, ...] | None:
    """The values a grid codec's colours take (1 .. V-1 without PAD), or None for a codec without colours."""
    if not isinstance(codec, GridCodec):
        return None
    return tuple(v for v in range(1, int(codec.values)) if v != codec.pad)


def _stats(rows: Sequence[np.ndarray] | np.ndarray, values: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per value: cells, maximal runs (within a row) and the first position where it appears (or a large one)."""
    cells = np.zeros(values, np.int64)
    runs = np.zeros(values, np.int64)
    first = np.full(values, np.iinfo(np.int64).max)
    offset = 0
    for row in rows:
        row = np.asarray(row, np.int64).ravel()
        if row.size == 0:
            continue
        np.add.at(cells, row, 1)
        starts = np.ones(row.size, bool)
        starts[1:] = row[1:] != row[:-1]
        np.add.at(runs, row[starts], 1)
        pos = np.arange(row.size) + offset
        np.minimum.at(first, row, pos)
        offset += row.size
    return cells, runs, first


def _ranked(colours: Sequence[int], cells: np.ndarray, runs: np.ndarray, first: np.ndarray) -> list[int]:
    present = [c for c in colours if cells[c] > 0]
    return sorted(present, key=lambda c: (-cells[c] / runs[c], -cells[c], first[c]))


def canonical_map(inputs: np.ndarray, outputs: np.ndarray, query_input: np.ndarray, colours: Sequence[int],
                  values: int) -> np.ndarray:
    """The renumbering of one task: int [values], canonical value -> the task's own value (module docstring).

    Args:
        inputs, outputs: the task's spec pairs, int [m, L] (padding pairs already left out).
        query_input: int [L].
        colours: the values that are colours (`colours_of`); every other value maps to itself.
        values: V.
    """
    colours = [int(c) for c in colours]
    ins = [*inputs, query_input]
    # Rows in reading order for the first-appearance tie-break: pair by pair, input before output.
    order = [r for x, y in zip(inputs, outputs) for r in (x, y)] + [query_input]
    _, _, first = _stats(order, values)
    cells_in, runs_in, _ = _stats(ins, values)
    cells_out, runs_out, _ = _stats(outputs, values)
    seen_in = _ranked(colours, cells_in, runs_in, first)
    only_out = _ranked([c for c in colours if cells_in[c] == 0], cells_out, runs_out, first)
    slots = sorted(colours)
    canon = np.arange(values)
    taken: dict[int, int] = {}
    for slot, c in zip(slots, seen_in):
        taken[slot] = c
    for slot, c in zip(reversed(slots), only_out):
        taken[slot] = c
    rest = iter(c for c in slots if c not in taken.values())
    for slot in slots:
        canon[slot] = taken[slot] if slot in taken else next(rest)
    return canon.astype(np.int32)


def canonical_colours(tasks: TaskSet, colours: Sequence[int], values: int) -> TaskSet:
    """The tasks renumbered into canonical colours, with `colour_maps` set (canonical -> the task's own values).

    Tasks already canonical (`colour_maps` set) are returned as they are."""
    if tasks.colour_maps is not None:
        return tasks
    n = len(tasks)
    maps = np.empty((n, values), np.int32)
    inputs = np.empty_like(tasks.inputs)
    outputs = np.empty_like(tasks.outputs)
    qx = np.empty_like(tasks.query_inputs)
    qy = np.empty_like(tasks.query_outputs)
    for i in range(n):
        keep = np.asarray(tasks.pair_mask[i], bool)
        back = canonical_map(tasks.inputs[i][keep], tasks.outputs[i][keep], tasks.query_inputs[i], colours, values)
        to = np.argsort(back).astype(np.int32)  # the task's value -> canonical
        maps[i] = back
        inputs[i] = through(to, tasks.inputs[i])
        outputs[i] = through(to, tasks.outputs[i])
        qx[i] = through(to, tasks.query_inputs[i])
        qy[i] = through(to, tasks.query_outputs[i])
    return dataclasses.replace(tasks, inputs=inputs, outputs=outputs, query_inputs=qx, query_outputs=qy,
                               colour_maps=maps)


def through(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x with every value v in range replaced by table[v] (values outside the table are left alone)."""
    x = np.asarray(x)
    inside = (x >= 0) & (x < table.size)
    return np.where(inside, table[np.clip(x, 0, table.size - 1)], x).astype(x.dtype)


def restore_colours(tasks: TaskSet) -> TaskSet:
    """The tasks in their own colours again (the identity for tasks without `colour_maps`)."""
    if tasks.colour_maps is None:
        return tasks
    m = tasks.colour_maps
    return dataclasses.replace(
        tasks,
        inputs=restore_rows(tasks.inputs, m),
        outputs=restore_rows(tasks.outputs, m),
        query_inputs=restore_rows(tasks.query_inputs, m),
        query_outputs=restore_rows(tasks.query_outputs, m),
        colour_maps=None,
    )


def restore_rows(rows: np.ndarray, maps: np.ndarray | None) -> np.ndarray:
    """int [n, ...] data of n tasks in canonical colours (rows [n, L], or pairs [n, m, L]) -> each in its task's own
    colours (maps: int [n, V], or None)."""
    if maps is None:
        return rows
    return np.stack([through(maps[i], r) for i, r in enumerate(rows)]) if len(rows) else rows


def colour_text(back: np.ndarray, colours: Sequence[int]) -> str:
    """A task's map as program-file metadata: the task's own colour of each canonical colour, in order
    (`"3,1,7,..."` lists the colours that canonical 1, 2, 3, ... stand for)."""
    return ",".join(str(int(back[c])) for c in colours)


def parse_colours(text: str, colours: Sequence[int], values: int) -> np.ndarray:
    """The inverse of `colour_text`: int [values], canonical -> own. `ValueError` (with the reason) unless the text
    is a permutation of `colours`."""
    parts = str(text).split(",")
    if len(parts) != len(colours) or not all(p.strip().isdigit() and len(p.strip()) <= 6 for p in parts):
        raise ValueError(f"expected {len(colours)} comma-separated colours, a permutation of "
                         f"{','.join(map(str, colours))}")
    own = [int(p) for p in parts]
    if sorted(own) != sorted(colours):
        raise ValueError(f"not a permutation of the colours {','.join(map(str, colours))}")
    back = np.arange(values, dtype=np.int32)
    for c, o in zip(colours, own):
        back[c] = o
    return back
