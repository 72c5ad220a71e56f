"""The `pattern` family: LPN's Pattern task, a P x P pattern pasted at the one marked cell of a black grid.

Each specification shares one pattern; inputs mark a random cell, outputs paste the pattern there (vectorised).

Params:
    rows, cols: grid size (default 10 x 10); grids are flattened row-major, L = rows * cols.
    size: pattern side P (default 4); the marked cell has row in [0, rows - P] and column in [0, cols - P].
    density: probability that a pattern cell is coloured in train/id (default 0.5).
    weak_density, strong_density: the same for the ood splits (default 0.75 and 1.0).
Values: 0 is black, the marker is 1, pattern colours are uniform in 1..9 (V = 10).

Splits: `train`, `id` (fresh tasks, density 0.5), `ood_weak` (0.75), `ood_strong` (1.0) and `ood` (= ood_strong,
LPN's headline OOD setting). The splits differ in distribution only: a dense training pattern is possible, just
rare (0.5^16 for a full one).

Primitives: none (the family defines no `primitives`). A task's output is its own hidden pattern pasted at the
marker, so no fixed function of the input alone is a ground-truth operation; `nlic inspect` describes this
family's tokens by the positions they move and the values they map instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from nlic.grammar.errors import Diagnostic, Loc, SpecError
from nlic.compiler.families.base import TaskSet
from nlic.compiler.families.codecs import GridCodec
from nlic.compiler.families.common import check_split, from_pairs, rng_for, task_ids
from nlic.compiler.families.params import Param, check, resolve, resolve_valid

__all__ = ["PatternFamily", "generate"]

SCHEMA = (
    Param("rows", "int", 10, "Grid rows.", min=1, max=256),
    Param("cols", "int", 10, "Grid columns.", min=1, max=256),
    Param("size", "int", 4, "Pattern side P.", min=1, max=256),
    Param("density", "float", 0.5, "Pattern cell density of train and id.", min=0.0, max=1.0),
    Param("weak_density", "float", 0.75, "Pattern cell density of ood_weak.", min=0.0, max=1.0),
    Param("strong_density", "float", 1.0, "Pattern cell density of ood_strong (and ood).", min=0.0, max=1.0),
)
SPLITS = ("train", "id", "ood_weak", "ood_strong", "ood")
COLOURS = 9


def generate(
    params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int
) -> tuple[TaskSet, np.ndarray]:
    """n tasks and their patterns int [n, P, P]."""
    p = resolve(SCHEMA, params, family="pattern")
    check_split("pattern", split, SPLITS)
    R, C, P = p["rows"], p["cols"], p["size"]
    density = {"ood_weak": p["weak_density"], "ood_strong": p["strong_density"], "ood": p["strong_density"]}.get(
        split, p["density"]
    )
    rng = rng_for(seed, "ood_strong" if split == "ood" else split)
    colours = rng.integers(1, COLOURS + 1, (n, P, P), dtype=np.int32)
    patterns = np.where(rng.random((n, P, P)) < density, colours, 0).astype(np.int32)
    m = pairs + 1
    r = rng.integers(0, R - P + 1, (n, m))
    c = rng.integers(0, C - P + 1, (n, m))
    ti, pi = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
    xs = np.zeros((n, m, R, C), np.int32)
    xs[ti, pi, r, c] = 1
    ys = np.zeros((n, m, R, C), np.int32)
    for dr in range(P):
        for dc in range(P):
            ys[ti, pi, r + dr, c + dc] = patterns[:, dr, dc][:, None]
    return from_pairs(task_ids(split, n), xs.reshape(n, m, R * C), ys.reshape(n, m, R * C), pairs), patterns


@dataclasses.dataclass(frozen=True)
class PatternFamily:
    """LPN's Pattern task (see the module docstring)."""

    name: str = "pattern"
    path_params: tuple[str, ...] = ()

    def check_params(self, params: Mapping[str, Any], locs: Mapping[str, Loc], where: Loc) -> list[Diagnostic]:
        diags = check(SCHEMA, params, locs, where, family=self.name)
        p = resolve_valid(SCHEMA, params, family=self.name)
        if p["size"] > min(p["rows"], p["cols"]):
            key = "size" if "size" in params else ("rows" if "rows" in params else "cols")
            diags.append(Diagnostic(locs.get(key, where), f"a {p['size']}x{p['size']} pattern does not fit a "
                                    f"{p['rows']}x{p['cols']} grid", "make size at most min(rows, cols)"))
        return diags

    def splits(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return SPLITS

    def codec(self, params: Mapping[str, Any]) -> GridCodec:
        p = resolve(SCHEMA, params, family=self.name)
        return GridCodec(p["rows"], p["cols"], COLOURS + 1)

    def sample(self, params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int) -> TaskSet:
        diags = self.check_params(params, {}, Loc("task.params"))
        if diags:
            raise SpecError(diagnostics=diags)
        return generate(params, split, n, pairs, seed=seed)[0]


PATTERN = PatternFamily()
"""The `pattern` family (registered by `nlic.compiler.families`)."""
