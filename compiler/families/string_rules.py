"""The `string_rules` family: LPN's string manipulation task, compositions of parameterised local rewrite rules.

A program is an ordered list of rules over sequences of values 0..4; generation is vectorised over all pairs.

Each rule sweeps the positions left to right, rewriting in place (so position i sees the already rewritten
i - 1); a rule needing a missing neighbour skips the ends. With k a threshold, m an amount, n a factor:
    1 drop_right: if x[i] - x[i+1] >= k: x[i] = (x[i] - m) mod 5
    2 scale_equal: if x[i-1] == x[i+1]: x[i] = min(x[i] * n, 4)
    3 rise_left: if x[i] - x[i-1] >= k: x[i] = (x[i] + m) mod 5
    4 below_right: if x[i+1] - x[i] >= k: x[i] = (x[i] - m) mod 5
    5 neighbours: x[i] = f(x[i-1], x[i+1]) mod 5, f one of sum, floor average, max, min
Parameter ranges: k in 1..3, m in 1..4, n in 2..3, f uniform; rule types uniform. Tasks whose outputs all
equal their inputs are redrawn.

Params:
    length: sequence length L (default 10); V = 5.
    rules: number of rules of train/id/ood_compose programs (default 3..5).
    ood_rules: number of rules of `ood` programs (default 6..8).

Splits: `train`, `id` (fresh tasks of the training distribution); `ood` (longer compositions: ood_rules rules,
more than any training program); `ood_compose` (programs using both rule 1 and rule 4, a pairing that no
train/id program contains).

Primitives (`StringRulesFamily.primitives`, the names `nlic inspect` gives learned tokens): every rule with every
parameter value it can take, one sweep each: `drop_right_k1_m2`, `scale_equal_n3`, `rise_left_k2_m1`,
`below_right_k3_m4`, `neighbours_avg`... (42 in all).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from nlic.grammar.errors import Diagnostic, Loc, SpecError
from nlic.compiler.families.base import Primitive, TaskSet
from nlic.compiler.families.codecs import SequenceCodec
from nlic.compiler.families.common import check_split, from_pairs, rng_for, task_ids
from nlic.compiler.families.params import Param, check, resolve, resolve_valid

__all__ = ["StringRulesFamily", "RULES", "apply", "generate"]

SCHEMA = (
    Param("length", "int", 10, "Sequence length L.", min=3, max=4096),
    Param("rules", "range", "3..5", "Rules per program in train, id and ood_compose.", min=1, max=64),
    Param("ood_rules", "range", "6..8", "Rules per program in ood.", min=1, max=64),
)
SPLITS = ("train", "id", "ood", "ood_compose")
RULES = ("drop_right", "scale_equal", "rise_left", "below_right", "neighbours")
FUNCS = ("sum", "avg", "max", "min")
V = 5


def apply(x: np.ndarray, kind: np.ndarray, k: np.ndarray, m: np.ndarray, n: np.ndarray, f: np.ndarray) -> np.ndarray:
    """One rule per row: x int [N, L]; kind in 1..5 (0 = no rule), parameters int [N]. Returns a new array."""
    x = x.copy()
    L = x.shape[1]
    for i in range(L):
        cur = x[:, i]
        new = cur.copy()
        left = x[:, i - 1] if i > 0 else None
        right = x[:, i + 1] if i < L - 1 else None
        if right is not None:
            new = np.where((kind == 1) & (cur - right >= k), (cur - m) % V, new)
            new = np.where((kind == 4) & (right - cur >= k), (cur - m) % V, new)
        if left is not None:
            new = np.where((kind == 3) & (cur - left >= k), (cur + m) % V, new)
        if left is not None and right is not None:
            new = np.where((kind == 2) & (left == right), np.minimum(cur * n, V - 1), new)
            fval = np.select(
                [f == 0, f == 1, f == 2], [left + right, (left + right) // 2, np.maximum(left, right)],
                np.minimum(left, right),
            ) % V
            new = np.where(kind == 5, fval, new)
        x[:, i] = new
    return x


def _programs(rng: np.random.Generator, n: int, lengths: range, split: str) -> dict[str, np.ndarray]:
    """Rule types int [n, R] (0-padded) and their parameters, following the split's constraint."""
    R = lengths.stop - 1
    count = rng.integers(lengths.start, lengths.stop, n)
    kind = rng.integers(1, len(RULES) + 1, (n, R))
    live = np.arange(R)[None, :] < count[:, None]
    if split == "ood_compose":
        # Two distinct live slots get rules 1 and 4.
        a = rng.integers(0, count)
        b = (a + rng.integers(1, np.maximum(count, 2))) % np.maximum(count, 1)
        kind[np.arange(n), a] = 1
        kind[np.arange(n), b] = 4
    else:
        # Never both 1 and 4 in a program: turn every 4 into another rule where a 1 is present.
        while True:
            both = ((kind == 1) & live).any(1) & ((kind == 4) & live).any(1)
            if not both.any():
                break
            redo = both[:, None] & (kind == 4)
            kind = np.where(redo, rng.choice(np.array([2, 3, 5]), kind.shape), kind)
    kind = np.where(live, kind, 0)
    return {
        "kind": kind,
        "k": rng.integers(1, 4, (n, R)),
        "m": rng.integers(1, 5, (n, R)),
        "n": rng.integers(2, 4, (n, R)),
        "f": rng.integers(0, len(FUNCS), (n, R)),
    }


def run_programs(progs: dict[str, np.ndarray], xs: np.ndarray) -> np.ndarray:
    """Apply each task's program to its sequences: xs int [n, m, L]."""
    n, m, L = xs.shape
    y = xs.reshape(n * m, L)
    for s in range(progs["kind"].shape[1]):
        col = {key: np.repeat(val[:, s], m) for key, val in progs.items()}
        y = apply(y, col["kind"], col["k"], col["m"], col["n"], col["f"])
    return y.reshape(n, m, L)


def generate(
    params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int
) -> tuple[TaskSet, dict[str, np.ndarray]]:
    """n tasks and their programs (`kind`, `k`, `m`, `n`, `f`: int [n, R], kind 0 = unused slot)."""
    p = resolve(SCHEMA, params, family="string_rules")
    check_split("string_rules", split, SPLITS)
    L = p["length"]
    lengths = (p["ood_rules"] if split == "ood" else p["rules"]).values()
    if split == "ood_compose":
        lengths = range(max(2, lengths.start), max(2, lengths.stop - 1) + 1)
    rng = rng_for(seed, split)
    progs = _programs(rng, n, lengths, split)
    xs = rng.integers(0, V, (n, pairs + 1, L))
    ys = run_programs(progs, xs)
    for _ in range(50):  # redraw tasks on which the program never changes anything
        same = (xs == ys).all(axis=(1, 2))
        if not same.any():
            break
        idx = np.nonzero(same)[0]
        sub = _programs(rng, len(idx), lengths, split)
        for key in progs:
            progs[key][idx] = sub[key]
        xs[idx] = rng.integers(0, V, (len(idx), pairs + 1, L))
        ys[idx] = run_programs(sub, xs[idx])
    return from_pairs(task_ids(split, n), xs, ys, pairs), progs


@dataclasses.dataclass(frozen=True)
class StringRulesFamily:
    """LPN's string manipulation task (see the module docstring)."""

    name: str = "string_rules"
    path_params: tuple[str, ...] = ()

    def check_params(self, params: Mapping[str, Any], locs: Mapping[str, Loc], where: Loc) -> list[Diagnostic]:
        diags = check(SCHEMA, params, locs, where, family=self.name)
        p = resolve_valid(SCHEMA, params, family=self.name)
        if p["ood_rules"].lo <= p["rules"].hi:
            key = "ood_rules" if "ood_rules" in params else "rules"
            diags.append(Diagnostic(locs.get(key, where), f"ood_rules {p['ood_rules']} must be longer than "
                                    f"rules {p['rules']}", "the ood split holds longer compositions than training"))
        return diags

    def splits(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return SPLITS

    def codec(self, params: Mapping[str, Any]) -> SequenceCodec:
        p = resolve(SCHEMA, params, family=self.name)
        return SequenceCodec(length=p["length"], values=V)

    def sample(self, params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int) -> TaskSet:
        diags = self.check_params(params, {}, Loc("task.params"))
        if diags:
            raise SpecError(diagnostics=diags)
        return generate(params, split, n, pairs, seed=seed)[0]

    def primitives(self, params: Mapping[str, Any]) -> tuple[Primitive, ...]:
        """Every rule with every parameter value (see the module docstring)."""
        resolve(SCHEMA, params, family=self.name)
        out = []
        for kind, rule in enumerate(RULES, 1):
            if kind == 2:
                settings = [(f"n{n}", dict(n=n)) for n in range(2, 4)]
            elif kind == 5:
                settings = [(func, dict(f=f)) for f, func in enumerate(FUNCS)]
            else:
                settings = [(f"k{k}_m{m}", dict(k=k, m=m)) for k in range(1, 4) for m in range(1, 5)]
            for suffix, values in settings:
                out.append(Primitive(f"{rule}_{suffix}", functools.partial(_one_rule, kind=kind, **values)))
        return tuple(out)


def _one_rule(x: np.ndarray, kind: int, k: int = 1, m: int = 1, n: int = 2, f: int = 0) -> np.ndarray:
    """One rule with fixed parameters applied to every row of x int [N, L] (values outside 0..4 are undefined)."""
    rows = len(x)
    out = apply(x, *(np.full(rows, v) for v in (kind, k, m, n, f)))
    bad = ((x < 0) | (x >= V)).any(axis=-1)
    out[bad] = -1
    return out


STRING_RULES = StringRulesFamily()
"""The `string_rules` family (registered by `nlic.compiler.families`)."""
