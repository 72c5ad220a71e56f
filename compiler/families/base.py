"""The data contract: task sets in fixed-size token form, task families, codecs, and their registry.

Every model kind consumes a `TaskSet` (NumPy, converted to jnp at the boundary by `TaskSet.batch`), whether it
comes from a built-in generator or from a user's data files.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import jax.numpy as jnp
import numpy as np

from nlic.compiler.kinds import Batch
from nlic.grammar.errors import Diagnostic, Loc
from nlic.grammar.registry import Registry

__all__ = ["TaskSet", "Codec", "Family", "Primitive", "FAMILIES"]


@dataclasses.dataclass(frozen=True)
class TaskSet:
    """n tasks, each with m spec pairs and one query pair, every datum an int array of L values in [0, V).

    Attributes:
        ids: task ids (program ids in program files).
        inputs, outputs: int32 [n, m, L] spec pairs.
        pair_mask: bool [n, m], False for padding pairs of tasks with fewer than m pairs.
        query_inputs, query_outputs: int32 [n, L]; the held-out query pair.
        has_target: bool [n], False where the query output is unknown (then query_outputs is padding).
        colour_maps: int [n, V] or None: for tasks renumbered into canonical colours (`task.colours: canonical`,
            `nlic.compiler.families.colours`), each task's map from canonical values to its own.
    """

    ids: tuple[str, ...]
    inputs: np.ndarray
    outputs: np.ndarray
    pair_mask: np.ndarray
    query_inputs: np.ndarray
    query_outputs: np.ndarray
    has_target: np.ndarray
    colour_maps: np.ndarray | None = None

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
            colour_maps=None if self.colour_maps is None else self.colour_maps[idx],
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

    A family may also define `primitives(params) -> tuple[Primitive, ...]`, its ground-truth operations,
    `curriculum(params, stage) -> params`, easier training distributions, and `check_data(params, pairs=...)`,
    what sampling would refuse in the data it reads (see the comment at the end of this class); all three are
    optional and looked up with `getattr(family, name, None)`.
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

    # Optional (not part of the protocol, so that a family without ground truth still satisfies it):
    #
    #     def primitives(self, params: Mapping[str, Any]) -> tuple[Primitive, ...]:
    #         """The family's ground-truth operations for these params, each a fixed function of one input."""
    #
    #     def curriculum(self, params: Mapping[str, Any], stage: float) -> Mapping[str, Any]:
    #         """The params of an easier training distribution at curriculum stage `stage` in [0, 1): the easiest at
    #         0, growing towards `params`' own (`training.curriculum`; deepcoder: the program lengths)."""
    #
    #     def check_data(self, params: Mapping[str, Any], *, pairs: int) -> None:
    #         """Raise `DataError` for what `sample` would refuse in data the family reads (`nlic validate` calls it;
    #         files: tasks with nothing to learn from, clashing ids, splits too large once padded)."""
    #
    # `nlic inspect` names what a learned token does by the primitive that agrees with it on most probe inputs;
    # callers look the method up with `getattr(family, "primitives", None)`. Families whose programs are not
    # functions of the input alone (pattern: the pasted pattern belongs to the task) or that have no known
    # programs (files) leave it out, and tokens are then described by the positions they move and the values
    # they map.


_PRIMITIVE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN_NAME = re.compile(r"t[0-9]+")


@dataclasses.dataclass(frozen=True)
class Primitive:
    """A ground-truth operation of a task family (see `Family`'s optional `primitives`).

    Attributes:
        name: an identifier that is not a token name (`shift3`, `map_times2`), usable as an alias in program
            files.
        fn: int32 [n, L] encoded inputs -> int32 [n, L] encoded outputs; a row of -1 where the operation is
            undefined on that input (it then agrees with no token's output).
        description: readable text where the name abbreviates it (`Map (*2)`), else empty.
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    description: str = ""

    def __post_init__(self) -> None:
        if not _PRIMITIVE_NAME.fullmatch(self.name) or _TOKEN_NAME.fullmatch(self.name):
            raise ValueError(f"primitive name {self.name!r} must be an identifier and not look like a token (t3)")

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """`fn` on int [n, L] inputs, as int32 [n, L]."""
        x = np.asarray(inputs, np.int32)
        out = np.asarray(self.fn(x), np.int32)
        if out.shape != x.shape:
            raise ValueError(f"primitive {self.name} returned shape {out.shape} for inputs of shape {x.shape}")
        return out


FAMILIES: Registry[Family] = Registry("task family")
