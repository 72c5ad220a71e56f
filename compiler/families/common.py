"""Helpers shared by the generated task families: seeded generators and TaskSet assembly.

A family draws all pairs of a task at once and `from_pairs` splits them into spec pairs and the query pair.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from nlic.grammar.errors import SpecError, did_you_mean
from nlic.compiler.families.base import TaskSet

__all__ = ["rng_for", "from_pairs", "check_split", "task_ids"]


def rng_for(seed: int, split: str, *salt: str) -> np.random.Generator:
    """A generator for (seed, split): different splits draw independent streams from the same seed."""
    words = [zlib.crc32(s.encode()) for s in (split, *salt)]
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF, *words])


def task_ids(split: str, n: int) -> tuple[str, ...]:
    """Ids of generated tasks: `<split>-0000`, `<split>-0001`, ..."""
    return tuple(f"{split}-{i:04d}" for i in range(n))


def from_pairs(ids: Sequence[str], xs: np.ndarray, ys: np.ndarray, pairs: int) -> TaskSet:
    """A TaskSet from int [n, pairs+1, L] inputs/outputs: the first `pairs` are the spec, the last the query."""
    xs = np.ascontiguousarray(xs, np.int32)
    ys = np.ascontiguousarray(ys, np.int32)
    n = xs.shape[0]
    if xs.shape[1] != pairs + 1 or ys.shape != xs.shape:
        raise ValueError(f"expected [n, {pairs + 1}, L] pairs, got {xs.shape} and {ys.shape}")
    return TaskSet(
        ids=tuple(ids),
        inputs=xs[:, :pairs],
        outputs=ys[:, :pairs],
        pair_mask=np.ones((n, pairs), bool),
        query_inputs=xs[:, pairs],
        query_outputs=ys[:, pairs],
        has_target=np.ones(n, bool),
    )


def check_split(family: str, split: str, splits: Sequence[str]) -> None:
    """`SpecError` naming the known splits if `split` is not one of them."""
    if split not in splits:
        raise SpecError(f"task family '{family}' has no split '{split}'", hint=did_you_mean(split, splits))
