"""The `shift` family: the NLI paper's sequence suite (Shift-L, Shift-P, Comp-I) on uniform random sequences.

Each task is one hidden program applied to `pairs` + 1 random inputs; generation is vectorised NumPy.

Params:
    split: `shift_l` (default), `shift_p` or `comp_i`.
    length: sequence length L (default 20).
    alphabet: values 0..alphabet-1 (default 10); V = alphabet.
    train_shifts, ood_shifts: IntRange overrides of the shift amounts (`shift_l`, `shift_p` only).

Programs (a cyclic shift by k moves every value k positions to the right: y[i] = x[(i - k) mod L]):
    shift_l: train/id shift by 1..5, ood by 6..10 (length extrapolation: longer programs than seen).
    shift_p: train/id shift by 6..10, ood by 1..5 (primitive extraction: shorter programs than seen).
    comp_i: six primitives `shift1` (shift by 1), `shift2` (shift by 2), `reverse`, `inc` (x + 1 mod alphabet),
        `complement` (alphabet - 1 - x) and `double` (2x mod alphabet). train/id apply one primitive; ood applies
        f o g (g first, then f) for an ordered pair of distinct primitives (30 programs, none seen in training).

Splits: `train`, `id` (fresh tasks of the training distribution, an independent stream of the same seed) and
`ood`. The shift amounts of train/id and ood are disjoint (overlapping overrides are an error).

Primitives (`ShiftFamily.primitives`, the names `nlic inspect` gives learned tokens): `identity`, every cyclic
shift `shift<k>` for k = 1..L-1, and with comp_i also `reverse`, `inc`, `complement` and `double`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from nlic.grammar.errors import Diagnostic, Loc, SpecError
from nlic.compiler.families.base import Primitive, TaskSet
from nlic.compiler.families.codecs import SequenceCodec
from nlic.compiler.families.common import check_split, from_pairs, rng_for, task_ids
from nlic.compiler.families.params import Param, check, resolve, resolve_valid

__all__ = ["ShiftFamily", "PRIMITIVES", "DEFAULT_SHIFTS", "generate"]

SCHEMA = (
    Param("split", "choice", "shift_l", "Which suite: shift_l, shift_p or comp_i.",
          choices=("shift_l", "shift_p", "comp_i")),
    Param("length", "int", 20, "Sequence length L.", min=2, max=4096),
    Param("alphabet", "int", 10, "Number of values (0..alphabet-1).", min=2, max=65536),
    Param("train_shifts", "range", None, "Shift amounts of train/id (shift_l: 1..5, shift_p: 6..10).", min=0),
    Param("ood_shifts", "range", None, "Shift amounts of ood (shift_l: 6..10, shift_p: 1..5).", min=0),
)

DEFAULT_SHIFTS = {"shift_l": ((1, 5), (6, 10)), "shift_p": ((6, 10), (1, 5))}
"""(train, ood) inclusive shift ranges per suite."""

PRIMITIVES: tuple[tuple[str, Callable[[np.ndarray, int], np.ndarray]], ...] = (
    ("shift1", lambda x, v: np.roll(x, 1, axis=-1)),
    ("shift2", lambda x, v: np.roll(x, 2, axis=-1)),
    ("reverse", lambda x, v: x[..., ::-1]),
    ("inc", lambda x, v: (x + 1) % v),
    ("complement", lambda x, v: v - 1 - x),
    ("double", lambda x, v: (2 * x) % v),
)
"""comp_i primitives: (name, f(x int[..., L], alphabet) -> int[..., L])."""

SPLITS = ("train", "id", "ood")


def _shift_ranges(p: Mapping[str, Any]) -> tuple[range, range]:
    (tlo, thi), (olo, ohi) = DEFAULT_SHIFTS.get(p["split"], ((1, 5), (6, 10)))
    tr = p["train_shifts"].values() if p["train_shifts"] is not None else range(tlo, thi + 1)
    oo = p["ood_shifts"].values() if p["ood_shifts"] is not None else range(olo, ohi + 1)
    return tr, oo


def _programs(split: str, p: Mapping[str, Any]) -> list[tuple[int, ...]]:
    """The program pool of a split: shift amounts (1-tuples) or primitive index tuples (comp_i)."""
    if p["split"] == "comp_i":
        k = len(PRIMITIVES)
        if split == "ood":
            return [(f, g) for f in range(k) for g in range(k) if f != g]
        return [(f,) for f in range(k)]
    tr, oo = _shift_ranges(p)
    return [(s,) for s in (oo if split == "ood" else tr)]


def generate(
    params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int
) -> tuple[TaskSet, list[tuple[int, ...]]]:
    """n tasks and their hidden programs (shift amounts, or primitive indices applied last-to-first)."""
    p = resolve(SCHEMA, params, family="shift")
    check_split("shift", split, SPLITS)
    L, V = p["length"], p["alphabet"]
    rng = rng_for(seed, split, p["split"])
    pool = _programs(split, p)
    choice = rng.integers(0, len(pool), n)
    xs = rng.integers(0, V, (n, pairs + 1, L), dtype=np.int32)
    if p["split"] == "comp_i":
        ys = np.empty_like(xs)
        for i, prog in enumerate(pool):
            sel = choice == i
            y = xs[sel]
            for prim in reversed(prog):  # f o g: g runs first
                y = PRIMITIVES[prim][1](y, V)
            ys[sel] = y
    else:
        shifts = np.asarray([pool[c][0] for c in choice], np.int64).reshape(n, 1, 1)
        idx = (np.arange(L).reshape(1, 1, L) - shifts) % L
        ys = np.take_along_axis(xs, np.broadcast_to(idx, xs.shape), axis=-1)
    return from_pairs(task_ids(split, n), xs, ys, pairs), [pool[c] for c in choice]


@dataclasses.dataclass(frozen=True)
class ShiftFamily:
    """Cyclic shifts and primitive compositions on random sequences (see the module docstring)."""

    name: str = "shift"
    path_params: tuple[str, ...] = ()

    def check_params(self, params: Mapping[str, Any], locs: Mapping[str, Loc], where: Loc) -> list[Diagnostic]:
        diags = check(SCHEMA, params, locs, where, family=self.name)
        p = resolve_valid(SCHEMA, params, family=self.name)
        if p["split"] == "comp_i":
            for key in ("train_shifts", "ood_shifts"):
                if key in params:
                    diags.append(Diagnostic(locs.get(key, where), f"'{key}' has no effect with split comp_i",
                                            "remove it, or use split shift_l / shift_p"))
            return diags
        tr, oo = _shift_ranges(p)
        for key, r in (("train_shifts", tr), ("ood_shifts", oo)):
            if r.stop - 1 >= p["length"] or r.start < 1:
                diags.append(Diagnostic(locs.get(key, where), f"shifts {r.start}..{r.stop - 1} do not fit sequences "
                                        f"of length {p['length']}", f"use shifts between 1 and {p['length'] - 1}"))
        common = sorted(set(tr) & set(oo))
        if common:
            key = "ood_shifts" if "ood_shifts" in params else "train_shifts"
            diags.append(Diagnostic(locs.get(key, where), f"train and ood shifts overlap at {common}",
                                    "the ood split must hold shifts never seen in training"))
        return diags

    def splits(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return SPLITS

    def codec(self, params: Mapping[str, Any]) -> SequenceCodec:
        p = resolve(SCHEMA, params, family=self.name)
        return SequenceCodec(length=p["length"], values=p["alphabet"])

    def sample(self, params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int) -> TaskSet:
        diags = self.check_params(params, {}, Loc("task.params"))
        if diags:
            raise SpecError(diagnostics=diags)
        return generate(params, split, n, pairs, seed=seed)[0]

    def primitives(self, params: Mapping[str, Any]) -> tuple[Primitive, ...]:
        """`identity`, `shift<k>` for k = 1..L-1, and for comp_i `reverse`, `inc`, `complement`, `double`."""
        p = resolve(SCHEMA, params, family=self.name)
        out = [Primitive("identity", np.copy)]
        out += [Primitive(f"shift{k}", functools.partial(_roll, k=k)) for k in range(1, p["length"])]
        if p["split"] == "comp_i":
            # shift1 and shift2 are among the shifts already.
            out += [Primitive(name, functools.partial(_comp_i_primitive, f=f, alphabet=p["alphabet"]))
                    for name, f in PRIMITIVES if not name.startswith("shift")]
        return tuple(out)


def _roll(x: np.ndarray, k: int) -> np.ndarray:
    return np.roll(x, k, axis=-1)


def _comp_i_primitive(x: np.ndarray, f: Callable[[np.ndarray, int], np.ndarray], alphabet: int) -> np.ndarray:
    return f(x, alphabet)


SHIFT = ShiftFamily()
"""The `shift` family (registered by `nlic.compiler.families`)."""
