"""The `grid1d` family: one-row ARC-style grids (the puzzles of 1-D ARC) made by 14 named rules over blocks and dots.

Each task is one hidden rule (two in `ood_comp`) applied to `pairs` + 1 rows of one length; tasks differ in length.

Rows. A row is a 1 x n grid of colours 0-9: 0 is the background, the rules draw their colours from 1-9 (one random
permutation of 1-9 per task gives its body, border, dot and new colours, so colours are fixed within a task and vary
across tasks). Each task draws its length n uniformly in min_length..max_length (8..32 by default; set both to
one value to fix it); every pair of a task has that length. The codec is a 1 x max_length `GridCodec` with a PAD
token 10 (V = 11): positions past n hold PAD, the model learns to keep them. `nlic data export` writes ARC-JSON with
1-row grids `[[...]]` of the n unpadded cells, which the `files` family reads back as mixed-width 1-row grids.

Rules (`RULES`; `apply(rule, row, **args)` runs one on a row). A block is a run of non-background cells, possibly
with a border pixel of another colour at one end; a dot is a single pixel. Arguments are ints, colours in 1-9:
    move(k, direction)        every pixel moves k cells (direction +1 right, -1 left); nothing may leave the row.
    move_to_dot(dot)          the block moves towards the dot of colour `dot` until it touches it; the dot stays.
    flip()                    the cells from the first to the last pixel are reversed in place (a block's border
                              pixel goes to its other end).
    mirror(dot)               every other pixel is reflected through the dot: cell i goes to 2p - i.
    fill()                    the cells between the row's only two pixels (of one colour) take their colour.
    hollow()                  blocks of 3 or more cells keep their two end cells; the interior becomes background.
    denoise()                 only the widest block stays; every other pixel (noise) becomes background.
    copy_to_dots()            each dot is replaced by a copy of the widest block (odd width >= 3) centred on it.
    recolour_by_size(size1, size2, size3)   blocks of 1, 2, 3 cells take colour size1, size2, size3.
    scale_to_dot(dot)         the block grows towards the dot until it touches it, in the colour of its facing end.
    recolour(source, target)  every pixel of colour `source` takes colour `target`.
    recolour_largest(target)  the widest block takes colour `target`.
    push_to_edge(direction)   every pixel moves together until the row touches the right (+1) or left (-1) edge.
    grow()                    the cells from the first to the last pixel extend by one cell on each side (clipped
                              at the row's ends), in the colour of the end cell they extend.
The six rules of `COMPOSABLE` (move, flip, recolour, hollow, grow, push_to_edge) all read one scene, a single block
of 3 to max(3, n / 2) cells with a border pixel on half the rows (on every row when flip is involved), so any two
of them compose. Every other rule draws its own scene (a block and a dot, two pixels, a block with noise pixels,
a pattern and dots, blocks of sizes 1-3, blocks of distinct sizes).

Params:
    suite: `id` (default), `moves` or `comp`: the training distribution (below).
    min_length, max_length: the range of row lengths, 8..32 (default 8 and 32); L = max_length.
    move_by: move amounts of the moves suite's train and id (default 1..2).
    ood_move_by: move amounts of ood_moves (default 3..3); disjoint from move_by, and every move must leave room
        for a block of 3 in a row of min_length. The id and comp suites train on both ranges.

Suites (`params: {suite: ...}`) fix what `train` and `id` hold, and what `ood` is:
    suite   train / id (single rules)                             ood
    id      all 14 rules, moves by move_by and ood_move_by        ood_comp
    moves   move by move_by (1..2) only                           ood_moves
    comp    the 6 composable rules, moves by both ranges          ood_comp
Every suite has the splits train, id, ood_moves, ood_comp and ood. `ood_moves` (move by ood_move_by, default 3,
half of the tasks; move_to_dot the other half) and `ood_comp` (f after g for an ordered pair of distinct
composable rules; g = move then f = push_to_edge is left out, as it equals push_to_edge) are the same task
distributions in every suite, so one suite's model can be scored on the other's split. No suite trains on
compositions, so ood_comp is out of distribution for all of them; ood_moves is in distribution for the id suite.
`id` holds fresh tasks of the training distribution (an independent stream of the same seed).

Identifiability. Every pair has output != input and the rule must apply (moves stay inside the row, copies fit);
a pair that fails is redrawn. The spec pairs must also tell a rule from its look-alikes: move_to_dot,
scale_to_dot and push_to_edge move or grow by different amounts across them (else `move` fits), recolour_largest
has largest blocks of different widths (else "recolour blocks of width w" fits), recolour shows a border pixel
that keeps its colour, grow and move show a block away from both edges, and a composition's output differs on
every pair from both of its rules applied alone. A task that fails is redrawn with new arguments (bounded
retries, all from the task's seeded generator, so generation stays deterministic).

Primitives (`Grid1dFamily.primitives`, the names `nlic inspect` gives learned tokens): every rule with fixed
arguments, listed by `primitive_steps`.

Generation is per task in NumPy (rows of at most 32 cells, a Python loop over tasks and pairs): 0.3-0.7 ms a
task measured on a shared 2-core machine, about 10 ms for a training batch of 16 tasks.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nlic.compiler.families.base import Primitive, TaskSet
from nlic.compiler.families.codecs import GridCodec, is_int
from nlic.compiler.families.common import check_split, from_pairs, rng_for, task_ids
from nlic.compiler.families.params import Param, check, resolve, resolve_valid
from nlic.grammar.errors import Diagnostic, Loc, SpecError, did_you_mean

__all__ = [
    "Grid1dFamily",
    "GRID1D",
    "RULES",
    "COMPOSABLE",
    "SUITES",
    "SPLITS",
    "PAD",
    "Step",
    "apply",
    "run_program",
    "generate",
    "split_programs",
    "primitive_steps",
]

SUITES = ("id", "moves", "comp")
SPLITS = ("train", "id", "ood_moves", "ood_comp", "ood")
LENGTHS = (8, 32)
"""Inclusive bounds of a row's length."""
PAD = 10
"""The token past the end of a shorter row (V = 11: colours 0-9 and PAD)."""

SCHEMA = (
    Param("suite", "choice", "id", "Training distribution: id (every rule), moves (moves by move_by only) or comp "
          "(the composable rules); ood is ood_moves for moves, ood_comp otherwise.", choices=SUITES),
    Param("min_length", "int", 8, "Shortest row; each task draws its length uniformly in min_length..max_length.",
          min=LENGTHS[0], max=LENGTHS[1]),
    Param("max_length", "int", 32, "Longest row; shorter rows are padded with PAD to it (the model's L).",
          min=LENGTHS[0], max=LENGTHS[1]),
    Param("move_by", "range", "1..2", "Move amounts of the moves suite's train and id (other suites: both ranges).",
          min=1, max=LENGTHS[1]),
    Param("ood_move_by", "range", "3..3", "Move amounts of ood_moves.", min=1, max=LENGTHS[1]),
)

_PAIR_TRIES = 64
_TASK_TRIES = 64


class _Unfit(Exception):
    """The rule does not apply to this row (generation redraws the row)."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One rule application of a task's hidden program.

    Attributes:
        rule: a name of `RULES`.
        args: its arguments as (name, int) pairs, in the rule's order.
    """

    rule: str
    args: tuple[tuple[str, int], ...] = ()

    def kwargs(self) -> dict[str, int]:
        """The arguments as keyword arguments of `apply`."""
        return dict(self.args)


# --- row helpers ------------------------------------------------------------------------------------------------


def _objects(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of non-background cells, left to right."""
    edges = np.diff(np.concatenate([[0], (row != 0).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _shifted(row: np.ndarray, d: int) -> np.ndarray:
    nz = np.flatnonzero(row)
    if nz.size == 0:
        raise _Unfit("the row is empty")
    if nz[0] + d < 0 or nz[-1] + d >= row.size:
        raise _Unfit("a pixel would leave the row")
    out = np.zeros_like(row)
    out[nz + d] = row[nz]
    return out


def _widest(row: np.ndarray) -> tuple[int, int]:
    objs = _objects(row)
    if not objs:
        raise _Unfit("the row is empty")
    widths = [e - s for s, e in objs]
    top = max(widths)
    if widths.count(top) > 1:
        raise _Unfit("no single widest block")
    return objs[widths.index(top)]


def _dot_and_block(row: np.ndarray, dot: int) -> tuple[int, int, int]:
    """(dot position, first and last cell of the rest) of a row holding one dot and, on one side, a block."""
    where = np.flatnonzero(row == dot)
    if where.size != 1:
        raise _Unfit(f"needs exactly one pixel of colour {dot}")
    p = int(where[0])
    rest = np.flatnonzero((row != 0) & (row != dot))
    if rest.size == 0:
        raise _Unfit("needs a block besides the dot")
    s, e = int(rest[0]), int(rest[-1])
    if s < p < e:
        raise _Unfit("the dot is inside the block")
    return p, s, e


# --- the rules ---------------------------------------------------------------------------------------------------


def _move(row: np.ndarray, *, k: int, direction: int) -> np.ndarray:
    return _shifted(row, k * direction)


def _move_to_dot(row: np.ndarray, *, dot: int) -> np.ndarray:
    p, s, e = _dot_and_block(row, dot)
    block = row.copy()
    block[p] = 0
    out = _shifted(block, p - 1 - e if e < p else p + 1 - s)
    out[p] = dot
    return out


def _span(row: np.ndarray) -> tuple[int, int]:
    """(first, stop) of the cells from the first to the last non-background one."""
    nz = np.flatnonzero(row)
    if nz.size == 0:
        raise _Unfit("the row is empty")
    return int(nz[0]), int(nz[-1]) + 1


def _flip(row: np.ndarray) -> np.ndarray:
    s, e = _span(row)
    out = row.copy()
    out[s:e] = row[s:e][::-1]
    return out


def _mirror(row: np.ndarray, *, dot: int) -> np.ndarray:
    p, _, _ = _dot_and_block(row, dot)
    idx = np.flatnonzero(row)
    idx = idx[idx != p]
    to = 2 * p - idx
    if to.min() < 0 or to.max() >= row.size:
        raise _Unfit("the mirror image leaves the row")
    out = np.zeros_like(row)
    out[p] = dot
    out[to] = row[idx]
    return out


def _fill(row: np.ndarray) -> np.ndarray:
    nz = np.flatnonzero(row)
    if nz.size != 2 or row[nz[0]] != row[nz[1]]:
        raise _Unfit("needs exactly two pixels of one colour")
    out = row.copy()
    out[nz[0]:nz[1] + 1] = row[nz[0]]
    return out


def _hollow(row: np.ndarray) -> np.ndarray:
    out = row.copy()
    for s, e in _objects(row):
        if e - s >= 3:
            out[s + 1:e - 1] = 0
    return out


def _denoise(row: np.ndarray) -> np.ndarray:
    s, e = _widest(row)
    out = np.zeros_like(row)
    out[s:e] = row[s:e]
    return out


def _copy_to_dots(row: np.ndarray) -> np.ndarray:
    s, e = _widest(row)
    if (e - s) % 2 == 0 or e - s < 3:
        raise _Unfit("the pattern (the widest block) needs an odd width of at least 3")
    pattern, h = row[s:e], (e - s) // 2
    dots = [a for a, b in _objects(row) if b - a == 1]
    if not dots:
        raise _Unfit("needs at least one dot")
    out = row.copy()
    for p in dots:
        if p - h < 0 or p + h >= row.size:
            raise _Unfit("a copy would leave the row")
        span = out[p - h:p + h + 1].copy()
        span[h] = 0
        if span.any():
            raise _Unfit("a copy would overlap another block")
        out[p - h:p + h + 1] = pattern
    return out


def _recolour_by_size(row: np.ndarray, *, size1: int, size2: int, size3: int) -> np.ndarray:
    colour = {1: size1, 2: size2, 3: size3}
    out = row.copy()
    for s, e in _objects(row):
        if e - s not in colour:
            raise _Unfit("blocks of 1 to 3 cells only")
        out[s:e] = colour[e - s]
    return out


def _scale_to_dot(row: np.ndarray, *, dot: int) -> np.ndarray:
    p, s, e = _dot_and_block(row, dot)
    out = row.copy()
    if e < p:
        out[e + 1:p] = row[e]
    else:
        out[p + 1:s] = row[s]
    return out


def _recolour(row: np.ndarray, *, source: int, target: int) -> np.ndarray:
    return np.where(row == source, np.int32(target), row).astype(row.dtype)


def _recolour_largest(row: np.ndarray, *, target: int) -> np.ndarray:
    s, e = _widest(row)
    out = row.copy()
    out[s:e] = target
    return out


def _push_to_edge(row: np.ndarray, *, direction: int) -> np.ndarray:
    nz = np.flatnonzero(row)
    if nz.size == 0:
        raise _Unfit("the row is empty")
    return _shifted(row, int(row.size - 1 - nz[-1]) if direction > 0 else -int(nz[0]))


def _grow(row: np.ndarray) -> np.ndarray:
    s, e = _span(row)
    out = row.copy()
    if s > 0:
        out[s - 1] = row[s]
    if e < row.size:
        out[e] = row[e - 1]
    return out


# --- scenes: the inputs each rule is shown on ----------------------------------------------------------------------


def _paint_block(rng: np.random.Generator, row: np.ndarray, s: int, w: int, sc: Mapping[str, Any]) -> None:
    """Cells s..s+w-1 in the body colour, one end in the border colour with probability sc['border_p']."""
    row[s:s + w] = sc["body"]
    if rng.random() < sc["border_p"]:
        row[s if rng.random() < 0.5 else s + w - 1] = sc["border"]


def _block_scene(rng: np.random.Generator, n: int, sc: Mapping[str, Any]) -> np.ndarray:
    """One block of 3..max(3, n/2) cells, with a border pixel at a random end with probability sc['border_p']."""
    w = int(rng.integers(3, max(3, n // 2) + 1))
    s = int(rng.integers(0, n - w + 1))
    row = np.zeros(n, np.int32)
    _paint_block(rng, row, s, w, sc)
    return row


def _dot_scene(rng: np.random.Generator, n: int, sc: Mapping[str, Any]) -> np.ndarray:
    """A block of 2..max(2, n/3) cells and, at least one cell away on the task's side, a dot."""
    w = int(rng.integers(2, max(2, n // 3) + 1))
    g = int(rng.integers(1, n - w))
    a = int(rng.integers(0, n - w - g))
    row = np.zeros(n, np.int32)
    block, dot = (a, a + w + g) if sc["side"] > 0 else (a + 1 + g, a)
    _paint_block(rng, row, block, w, sc)
    row[dot] = sc["dot"]
    return row


def _mirror_scene(rng: np.random.Generator, n: int, sc: Mapping[str, Any]) -> np.ndarray:
    """A dot with a block on a random side and room for the block's mirror image on the other."""
    half = (n - 1) // 2
    w = int(rng.integers(2, max(2, half - 1) + 1))
    g = int(rng.integers(0, half - w + 1))
    p = int(rng.integers(g + w, n - g - w))
    row = np.zeros(n, np.int32)
    s = p - g - w if rng.random() < 0.5 else p + g + 1
    _paint_block(rng, row, s, w, sc)
    row[p] = sc["dot"]
    return row


def _points_scene(rng: np.random.Generator, n: int, sc: Mapping[str, Any]) -> np.ndarray:
    """Two pixels of the body colour with at least one cell between them."""
    i = int(rng.integers(0, n - 2))
    j = int(rng.integers(i + 2, n))
    row = np.zeros(n, np.int32)
    row[[i, j]] = sc["body"]
    return row


def _room(row: np.ndarray, reach: int) -> np.ndarray:
    """Positions c whose cells c - reach..c + reach (clipped to the row) are all background."""
    occupied = np.pad(row != 0, reach)
    return ~np.lib.stride_tricks.sliding_window_view(occupied, 2 * reach + 1).any(1)


def _noise_scene(rng: np.random.Generator, n: int, sc: Mapping[str, Any]) -> np.ndarray:
    """A block of 3..max(3, n/2) cells and 1-3 isolated noise pixels (the body colour, or other colours)."""
    row = _block_scene(rng, n, {**sc, "border_p": 0.0})
    placed = 0
    for _ in range(int(rng.integers(1, 4))):
        free = np.flatnonzero(_room(row, 1))
        if not free.size:
            break
        c = int(free[int(rng.integers(free.size))])
        row[c] = sc["body"] if not sc["mixed"] else sc["noise"][int(rng.integers(len(sc["noise"])))]
        placed += 1
    if not placed:
        raise _Unfit("no room for noise")
    return row


def _pattern_scene(rng: np.random.Generator, n: int, sc: Mapping[str, Any]) -> np.ndarray:
    """A 3-cell pattern and 1-3 dots of its end colour, each with room for a copy one cell away from the rest."""
    row = np.zeros(n, np.int32)
    s = int(rng.integers(0, n - 2))
    row[s:s + 3] = (sc["body"], sc["middle"], sc["body"])
    placed = 0
    for _ in range(int(rng.integers(1, 4))):
        free = np.flatnonzero(_room(row, 3)[1:n - 1]) + 1
        if not free.size:
            break
        row[int(free[int(rng.integers(free.size))])] = sc["body"]
        placed += 1
    if not placed:
        raise _Unfit("no room for a dot")
    return row


def _place(rng: np.random.Generator, n: int, sizes: Sequence[int], colour: int) -> np.ndarray:
    """Blocks of the given sizes, in order, one cell apart at least, the slack spread at random."""
    slack = n - (sum(sizes) + len(sizes) - 1)
    if slack < 0:
        raise _Unfit("the blocks do not fit")
    gaps = rng.multinomial(slack, np.full(len(sizes) + 1, 1.0 / (len(sizes) + 1)))
    row = np.zeros(n, np.int32)
    c = int(gaps[0])
    for i, w in enumerate(sizes):
        row[c:c + w] = colour
        c += w + 1 + int(gaps[i + 1])
    return row


def _sizes_scene(rng: np.random.Generator, n: int, sc: Mapping[str, Any]) -> np.ndarray:
    """Blocks of sizes 1, 2 and 3 (each at least once, up to 3 more), shuffled, one colour."""
    sizes = [1, 2, 3]
    for _ in range(int(rng.integers(0, 4))):
        w = int(rng.integers(1, 4))
        if sum(sizes) + w + len(sizes) <= n:
            sizes.append(w)
    rng.shuffle(sizes)
    return _place(rng, n, sizes, sc["body"])


def _largest_scene(rng: np.random.Generator, n: int, sc: Mapping[str, Any]) -> np.ndarray:
    """2-3 blocks of distinct sizes 1..6, one colour."""
    sizes = [int(v) for v in rng.choice(np.arange(1, 7), int(rng.integers(2, 4)), replace=False)]
    return _place(rng, n, sizes, sc["body"])


# --- task-level checks on the spec pairs -----------------------------------------------------------------------------


def _always(xs: list[np.ndarray], ys: list[np.ndarray]) -> bool:
    return True


def _varies(measure: Callable[[np.ndarray, np.ndarray], int]) -> Callable[[list[np.ndarray], list[np.ndarray]], bool]:
    """The measure takes two values or more on the spec pairs (any value when there is one spec pair)."""

    def ok(xs: list[np.ndarray], ys: list[np.ndarray]) -> bool:
        return len(xs) < 2 or len({measure(x, y) for x, y in zip(xs, ys)}) > 1

    return ok


def _gap(x: np.ndarray, y: np.ndarray) -> int:
    objs = _objects(x)
    return objs[1][0] - objs[0][1] if len(objs) > 1 else 0


def _shift_of(x: np.ndarray, y: np.ndarray) -> int:
    return int(np.flatnonzero(y)[0] - np.flatnonzero(x)[0])


def _largest(x: np.ndarray, y: np.ndarray) -> int:
    return max(e - s for s, e in _objects(x))


def _inner(row: np.ndarray) -> bool:
    return bool(row[0] == 0 and row[-1] == 0)


def _some_border(xs: list[np.ndarray], ys: list[np.ndarray]) -> bool:
    return any(len(set(np.unique(x).tolist()) - {0}) > 1 for x in xs)


def _some_inner_input(xs: list[np.ndarray], ys: list[np.ndarray]) -> bool:
    return any(_inner(x) for x in xs)


def _some_inner_output(xs: list[np.ndarray], ys: list[np.ndarray]) -> bool:
    return any(_inner(y) for y in ys)


# --- the rule table --------------------------------------------------------------------------------------------------


_Setup = Callable[[np.random.Generator, np.ndarray, tuple[int, ...]], tuple[dict[str, int], dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class _Rule:
    """A rule: its function, argument names, how a task draws its arguments and scene, and its spec-pair check."""

    name: str
    fn: Callable[..., np.ndarray]
    args: tuple[str, ...]
    setup: _Setup
    scene: Callable[[np.random.Generator, int, Mapping[str, Any]], np.ndarray]
    ok: Callable[[list[np.ndarray], list[np.ndarray]], bool] = _always


def _sign(rng: np.random.Generator) -> int:
    return 1 if rng.random() < 0.5 else -1


def _block(pal: np.ndarray, border_p: float = 0.5) -> dict[str, Any]:
    return {"body": int(pal[0]), "border": int(pal[1]), "border_p": border_p}


def _with_dot(rng: np.random.Generator, pal: np.ndarray, border_p: float) -> dict[str, Any]:
    return {**_block(pal, border_p), "dot": int(pal[2]), "side": _sign(rng)}


_TABLE = (
    _Rule("move", _move, ("k", "direction"),
          lambda rng, pal, ks: ({"k": int(ks[int(rng.integers(len(ks)))]), "direction": _sign(rng)}, _block(pal)),
          _block_scene, _some_inner_output),
    _Rule("move_to_dot", _move_to_dot, ("dot",),
          lambda rng, pal, ks: ({"dot": int(pal[2])}, _with_dot(rng, pal, 0.5)), _dot_scene, _varies(_gap)),
    _Rule("flip", _flip, (), lambda rng, pal, ks: ({}, _block(pal, 1.0)), _block_scene),
    _Rule("mirror", _mirror, ("dot",),
          lambda rng, pal, ks: ({"dot": int(pal[2])}, _with_dot(rng, pal, 0.5)), _mirror_scene),
    _Rule("fill", _fill, (), lambda rng, pal, ks: ({}, _block(pal)), _points_scene),
    _Rule("hollow", _hollow, (), lambda rng, pal, ks: ({}, _block(pal)), _block_scene),
    _Rule("denoise", _denoise, (),
          lambda rng, pal, ks: ({}, {**_block(pal), "mixed": bool(rng.random() < 0.5),
                                     "noise": [int(c) for c in pal[1:]]}), _noise_scene),
    _Rule("copy_to_dots", _copy_to_dots, (),
          lambda rng, pal, ks: ({}, {"body": int(pal[0]), "middle": int(pal[0] if rng.random() < 0.5 else pal[1])}),
          _pattern_scene),
    _Rule("recolour_by_size", _recolour_by_size, ("size1", "size2", "size3"),
          lambda rng, pal, ks: ({"size1": int(pal[3]), "size2": int(pal[4]), "size3": int(pal[5])}, _block(pal)),
          _sizes_scene),
    _Rule("scale_to_dot", _scale_to_dot, ("dot",),
          lambda rng, pal, ks: ({"dot": int(pal[2])}, _with_dot(rng, pal, 0.0)), _dot_scene, _varies(_gap)),
    _Rule("recolour", _recolour, ("source", "target"),
          lambda rng, pal, ks: ({"source": int(pal[0]), "target": int(pal[3])}, _block(pal)), _block_scene,
          _some_border),
    _Rule("recolour_largest", _recolour_largest, ("target",),
          lambda rng, pal, ks: ({"target": int(pal[3])}, _block(pal)), _largest_scene, _varies(_largest)),
    _Rule("push_to_edge", _push_to_edge, ("direction",),
          lambda rng, pal, ks: ({"direction": _sign(rng)}, _block(pal)), _block_scene, _varies(_shift_of)),
    _Rule("grow", _grow, (), lambda rng, pal, ks: ({}, _block(pal)), _block_scene, _some_inner_input),
)
_RULE = {r.name: r for r in _TABLE}

RULES: tuple[str, ...] = tuple(r.name for r in _TABLE)
"""Names of the rules, in a fixed order (see the module docstring for what each does)."""
COMPOSABLE: tuple[str, ...] = ("move", "flip", "recolour", "hollow", "grow", "push_to_edge")
"""The rules that share one scene (a block with a border pixel), which `ood_comp` composes."""
_DEGENERATE = {("move", "push_to_edge")}
"""(first, second) compositions equal to a single rule: a push after a move is just the push."""


def apply(rule: str, row: Sequence[int] | np.ndarray, **args: int) -> list[int]:
    """Run one rule on one row.

    Args:
        rule: a name of `RULES`.
        row: colours 0-9 (0 the background), any length.
        **args: the rule's arguments (module docstring), e.g. `apply("move", row, k=2, direction=1)`.

    Returns:
        The output row.

    Raises:
        ValueError: unknown rule or arguments, a bad row, or a row the rule does not apply to (a pixel would leave
            the row, a dot is missing, ...).
    """
    if rule not in _RULE:
        raise ValueError(f"unknown grid1d rule {rule!r} ({did_you_mean(rule, RULES) or 'see RULES'})")
    r = _RULE[rule]
    if set(args) != set(r.args):
        raise ValueError(f"rule {rule!r} takes arguments ({', '.join(r.args) or 'none'}), got ({', '.join(args)})")
    for key, v in args.items():
        if not is_int(v) or (key in ("k",) and v < 1) or (key == "direction" and v not in (-1, 1)) or (
            key not in ("k", "direction") and not 1 <= v <= 9
        ):
            raise ValueError(f"rule {rule!r}: bad argument {key}={v!r} (k >= 1, direction -1 or 1, colours 1-9)")
    x = np.asarray(row)
    if x.ndim != 1 or x.size == 0 or not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() > 9:
        raise ValueError("a row is a non-empty list of colours 0-9")
    try:
        return [int(v) for v in r.fn(x.astype(np.int32), **{k: int(v) for k, v in args.items()})]
    except _Unfit as e:
        raise ValueError(f"rule {rule!r} does not apply to this row: {e}") from None


def run_program(steps: Sequence[Step], row: Sequence[int] | np.ndarray) -> list[int]:
    """Run the steps of a program (as `generate` returns them) in order on one row; `ValueError` as `apply`."""
    out = list(np.asarray(row).tolist())
    for step in steps:
        out = apply(step.rule, out, **step.kwargs())
    return out


# --- splits and generation -----------------------------------------------------------------------------------------


_Entry = tuple[tuple[str, ...], tuple[int, ...]]
"""A program pool entry: rule names in the order applied, and the move amounts `move` draws from."""


def _pool(p: Mapping[str, Any], split: str) -> list[_Entry]:
    train_k = tuple(p["move_by"].values())
    ood_k = tuple(p["ood_move_by"].values())
    both = tuple(sorted(set(train_k) | set(ood_k)))
    if split == "ood_moves":
        return [(("move",), ood_k), (("move_to_dot",), ())]
    if split == "ood_comp":
        return [((g, f), both) for g in COMPOSABLE for f in COMPOSABLE if f != g and (g, f) not in _DEGENERATE]
    if p["suite"] == "moves":
        return [(("move",), train_k)]
    return [((r,), both) for r in (RULES if p["suite"] == "id" else COMPOSABLE)]


def _run(rules: Sequence[_Rule], args: Sequence[Mapping[str, int]], row: np.ndarray) -> np.ndarray | None:
    """The rules in order on a row; None where one does not apply."""
    try:
        for r, a in zip(rules, args):
            row = r.fn(row, **a)
    except _Unfit:
        return None
    return row


def _checked(params: Mapping[str, Any], split: str) -> tuple[dict[str, Any], str]:
    """Resolved params and the split's task distribution (`ood` is the suite's held-out split); `SpecError` for bad
    params or an unknown split."""
    diags = GRID1D.check_params(params, {}, Loc("task.params"))
    if diags:
        raise SpecError(diagnostics=diags)
    check_split("grid1d", split, SPLITS)
    p = resolve(SCHEMA, params, family="grid1d")
    if split == "ood":
        split = "ood_moves" if p["suite"] == "moves" else "ood_comp"
    return p, split


def split_programs(params: Mapping[str, Any], split: str) -> tuple[tuple[str, ...], ...]:
    """The programs a split draws from, uniformly: rule names in the order applied (a task's arguments, colours
    and move amounts are drawn on top). `SpecError` for bad params or an unknown split."""
    p, dist = _checked(params, split)
    return tuple(names for names, _ in _pool(p, dist))


def _draw_task(
    rng: np.random.Generator, entry: _Entry, n: int, rows: int, pairs: int
) -> tuple[np.ndarray, np.ndarray, tuple[Step, ...]]:
    """One task: `rows` input/output rows of length n following the entry's program, checked as documented."""
    names, ks = entry
    rules = [_RULE[r] for r in names]
    for _ in range(_TASK_TRIES):
        pal = rng.permutation(9) + 1
        drawn = [r.setup(rng, pal, ks) for r in rules]
        args = [a for a, _ in drawn]
        if len(rules) == 1:
            scene, sc = rules[0].scene, drawn[0][1]
        else:
            scene, sc = _block_scene, _block(pal, 1.0 if "flip" in names else 0.5)
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        for _ in range(rows):
            for _ in range(_PAIR_TRIES):
                try:
                    x = scene(rng, n, sc)
                except _Unfit:
                    continue
                y = _run(rules, args, x)
                if y is None or np.array_equal(x, y):
                    continue
                if len(rules) > 1 and any(
                    (alone := _run([r], [a], x)) is not None and np.array_equal(alone, y) for r, a in zip(rules, args)
                ):
                    continue
                xs.append(x)
                ys.append(y)
                break
            else:
                break
        if len(xs) == rows and (len(rules) > 1 or rules[0].ok(xs[:pairs], ys[:pairs])):
            steps = tuple(Step(r.name, tuple((k, int(a[k])) for k in r.args)) for r, a in zip(rules, args))
            return np.stack(xs), np.stack(ys), steps
    raise RuntimeError(f"grid1d: no valid task of {'+'.join(names)} at length {n} in {_TASK_TRIES} tries")


def generate(
    params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int
) -> tuple[TaskSet, list[tuple[Step, ...]]]:
    """n tasks of a split and their hidden programs (the steps in the order they are applied).

    Raises:
        SpecError: bad params or an unknown split.
    """
    p, dist = _checked(params, split)
    # train and id depend on the suite; ood_moves and ood_comp are the same tasks in every suite.
    rng = rng_for(seed, dist, p["suite"] if dist in ("train", "id") else "")
    pool = _pool(p, dist)
    lo, hi = p["min_length"], p["max_length"]
    xs = np.full((n, pairs + 1, hi), PAD, np.int32)
    ys = np.full((n, pairs + 1, hi), PAD, np.int32)
    programs = []
    for i in range(n):
        entry = pool[int(rng.integers(len(pool)))]
        length = int(rng.integers(lo, hi + 1))
        x, y, steps = _draw_task(rng, entry, length, pairs + 1, pairs)
        xs[i, :, :length] = x
        ys[i, :, :length] = y
        programs.append(steps)
    return from_pairs(task_ids(split, n), xs, ys, pairs), programs


@dataclasses.dataclass(frozen=True)
class Grid1dFamily:
    """One-row ARC-style grids and 14 rules (see the module docstring)."""

    name: str = "grid1d"
    path_params: tuple[str, ...] = ()

    def check_params(self, params: Mapping[str, Any], locs: Mapping[str, Loc], where: Loc) -> list[Diagnostic]:
        diags = check(SCHEMA, params, locs, where, family=self.name)
        p = resolve_valid(SCHEMA, params, family=self.name)

        def at(*keys: str) -> Loc:
            return next((locs.get(k, where) for k in keys if k in params), where)

        lo, hi = p["min_length"], p["max_length"]
        if lo > hi:
            diags.append(Diagnostic(at("min_length", "max_length"), f"min_length ({lo}) is larger than max_length "
                                    f"({hi})", "set min_length <= max_length (equal values fix the row length)"))
        common = sorted(set(p["move_by"].values()) & set(p["ood_move_by"].values()))
        if common:
            diags.append(Diagnostic(at("ood_move_by", "move_by"), f"move_by {p['move_by']} and ood_move_by "
                                    f"{p['ood_move_by']} overlap at {common}",
                                    "ood_moves must hold move amounts never seen in the moves suite's training"))
        for key in ("move_by", "ood_move_by"):
            top = p[key].hi
            if top > min(lo, hi) - 3:
                diags.append(Diagnostic(at(key, "min_length"), f"moves by {top} do not fit rows of {min(lo, hi)} "
                                        "cells with a block of 3", f"use moves of at most {min(lo, hi) - 3}, or a "
                                        f"min_length of at least {top + 3}"))
        return diags

    def splits(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return SPLITS

    def codec(self, params: Mapping[str, Any]) -> GridCodec:
        p = resolve(SCHEMA, params, family=self.name)
        return GridCodec(rows=1, cols=p["max_length"], values=PAD + 1, pad=PAD)

    def sample(self, params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int) -> TaskSet:
        return generate(params, split, n, pairs, seed=seed)[0]

    def primitives(self, params: Mapping[str, Any]) -> tuple[Primitive, ...]:
        """Every rule with fixed arguments, on encoded rows (see `primitive_steps`)."""
        return tuple(Primitive(name, functools.partial(_on_encoded, steps=steps), text)
                     for name, steps, text in primitive_steps(params))


def primitive_steps(params: Mapping[str, Any]) -> list[tuple[str, tuple[Step, ...], str]]:
    """(name, steps, description) of the ground-truth primitives `nlic inspect` names tokens by.

    `identity`; `move_right<k>` / `move_left<k>` for every move amount of the params; `push_right`, `push_left`;
    the argument-free rules; `move_to_dot_<c>`, `scale_to_dot_<c>`, `mirror_<c>` and `recolour_largest_<c>` for
    each colour c; `recolour_<a>_to_<b>` for each pair of colours. recolour_by_size is left out (its 504 colour
    maps would outnumber every other primitive together).
    """
    p = resolve(SCHEMA, params, family="grid1d")
    ks = sorted(set(p["move_by"].values()) | set(p["ood_move_by"].values()))
    out: list[tuple[str, tuple[Step, ...], str]] = [("identity", (), "")]
    for d, side in ((1, "right"), (-1, "left")):
        out += [(f"move_{side}{k}", (Step("move", (("k", k), ("direction", d))),), f"move {side} by {k}") for k in ks]
    out += [(f"push_{side}", (Step("push_to_edge", (("direction", d),)),), f"push to the {side} edge")
            for d, side in ((1, "right"), (-1, "left"))]
    out += [(r, (Step(r),), "") for r in ("flip", "fill", "hollow", "denoise", "copy_to_dots", "grow")]
    coloured = (("move_to_dot", "dot"), ("scale_to_dot", "dot"), ("mirror", "dot"), ("recolour_largest", "target"))
    for rule, arg in coloured:
        out += [(f"{rule}_{c}", (Step(rule, ((arg, c),)),), f"{rule} ({arg} colour {c})") for c in range(1, 10)]
    out += [(f"recolour_{a}_to_{b}", (Step("recolour", (("source", a), ("target", b))),), f"recolour {a} to {b}")
            for a in range(1, 10) for b in range(1, 10) if a != b]
    return out


def _on_encoded(x: np.ndarray, steps: tuple[Step, ...]) -> np.ndarray:
    """The steps on encoded rows int [n, L] (a row, then PAD); rows of -1 where they do not apply."""
    out = np.full(x.shape, -1, np.int32)
    for i, enc in enumerate(np.asarray(x)):
        pads = np.flatnonzero(enc == PAD)
        n = int(pads[0]) if pads.size else enc.size
        row = enc[:n]
        if n == 0 or (enc[n:] != PAD).any() or row.min() < 0 or row.max() > 9:
            continue
        try:
            y = row.astype(np.int32)
            for step in steps:
                y = _RULE[step.rule].fn(y, **step.kwargs())
        except _Unfit:
            continue
        out[i, :n] = y
        out[i, n:] = PAD
    return out


GRID1D = Grid1dFamily()
"""The `grid1d` family (registered by `nlic.compiler.families`)."""
