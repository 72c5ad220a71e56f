"""The data contract: task sets in fixed-size token form, task families, codecs, and their registry.

Every model kind consumes a `TaskSet` (NumPy, converted to jnp at the boundary by `TaskSet.batch`), whether it
comes from a built-in generator or from a user's data files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import jax.numpy as jnp
import numpy as np

from nlic.compiler.kinds import Batch
from nlic.grammar.errors import Diagnostic, Loc
from nlic.grammar.registry import Registry

__all__ = ["TaskSet", "Codec", "Family", "FAMILIES"]


@dataclasses.dataclass(frozen=True)
class TaskSet:
    """n tasks, each with m spec pairs and one query pair, every datum an int array of L values in [0, V).

    Attributes:
        ids: task ids (program ids in program files).
        inputs, outputs: int32 [n, m, L] spec pairs.
        pair_mask: bool [n, m], False for padding pairs of tasks with fewer than m pairs.
        query_inputs, query_outputs: int32 [n, L]; the held-out query pair.
        has_target: bool [n], False where the query output is unknown (then query_outputs is padding).
    """

    ids: tuple[str, ...]
    inputs: np.ndarray
    outputs: np.ndarray
    pair_mask: np.ndarray
    query_inputs: np.ndarray
    query_outputs: np.ndarray
    has_target: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: Sequence[int] | np.ndarray | slice) -> TaskSet:
        """A subset of the tasks, in the given order."""
        idx = np.arange(len(self))[index]
        return TaskSet(
            ids=tuple(self.ids[i] for i in idx),
            inputs=self.inputs[idx],
            outputs=self.outputs[idx],
            pair_mask=self.pair_mask[idx],
            query_inputs=self.query_inputs[idx],
            query_outputs=self.query_outputs[idx],
            has_target=self.has_target[idx],
        )

    def batch(self):
        """The tasks as a `nlic.compiler.kinds.Batch` of jnp arrays."""
        return Batch(
            inputs=jnp.asarray(self.inputs, jnp.int32),
            outputs=jnp.asarray(self.outputs, jnp.int32),
            pair_mask=jnp.asarray(self.pair_mask, bool),
            query_input=jnp.asarray(self.query_inputs, jnp.int32),
            query_output=jnp.asarray(self.query_outputs, jnp.int32),
        )


@runtime_checkable
class Codec(Protocol):
    """Converts between a user's JSON value (list, grid, DeepCoder inputs…) and the model's int[L] form."""

    length: int
    values: int

    def encode(self, value: Any, *, where: Loc | None = None) -> np.ndarray:
        """JSON value -> int32 [L]; raises `DataError` at `where` if the value does not fit."""
        ...

    def decode(self, tokens: np.ndarray) -> Any:
        """int [L] -> JSON value (inverse of encode on encodable values)."""
        ...

    def render(self, tokens: np.ndarray, *, color: bool = False) -> str:
        """Human-readable text of one datum (grids as blocks when `color`)."""
        ...


@runtime_checkable
class Family(Protocol):
    """A task family: seeded, vectorised generation of ID/OOD splits (or a loader of user files).

    `params` is the spec's `task.params` mapping; `locs` maps each param key to its source location, so
    `check_params` can return located diagnostics.
    """

    name: str
    # Param keys holding file or directory paths. The spec loader resolves relative paths against the spec
    # file's directory, so a spec works from any working directory.
    path_params: tuple[str, ...]

    def check_params(self, params: Mapping[str, Any], locs: Mapping[str, Loc], where: Loc) -> list[Diagnostic]:
        """All problems of the family parameters at once (unknown keys with did-you-mean, types, ranges)."""
        ...

    def splits(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Split names; always includes 'train' and the evaluation splits (e.g. 'id', 'ood')."""
        ...

    def codec(self, params: Mapping[str, Any]) -> Codec:
        """The codec fixing L and V for these params."""
        ...

    def sample(self, params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int) -> TaskSet:
        """n tasks of `split`, deterministic in (params, split, n, pairs, seed)."""
        ...


FAMILIES: Registry[Family] = Registry("task family")
