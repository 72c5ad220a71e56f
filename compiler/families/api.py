"""The spec-level entry points to task data: a spec's family, codec, shapes, sampled splits and user files.

Everything that trains, solves or evaluates gets its tasks through these functions.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from nlic.compiler.families.base import FAMILIES, Codec, Family, TaskSet
from nlic.compiler.families.common import check_split
from nlic.compiler.families.files import read_tasks
from nlic.compiler.kinds import Shapes
from nlic.grammar.errors import Loc, SpecError

__all__ = ["family_of", "params_of", "codec_of", "shapes_of", "sample_split", "load_tasks"]


def family_of(spec: Any) -> Family:
    """The registered family of `spec.task.family` (`SpecError` listing the known ones otherwise)."""
    return FAMILIES.get(spec.task.family, loc=Loc("task.family"))


def params_of(spec: Any) -> dict[str, Any]:
    """`spec.task.params` as a dict."""
    return dict(spec.task.params)


def codec_of(spec: Any) -> Codec:
    """The codec fixing how the spec's data are encoded (the family's, with V = language.values if set).

    Raises:
        SpecError: language.values is set but smaller than the task's alphabet.
    """
    codec = family_of(spec).codec(params_of(spec))
    values = int(spec.language.values)
    if values == 0 or values == codec.values:
        return codec
    if values < codec.values:
        raise SpecError(
            f"language.values = {values} is smaller than the task's alphabet of {codec.values} values",
            loc=Loc("language.values"), hint=f"use 0 (inferred) or at least {codec.values}",
        )
    # A larger alphabet only widens what the executor can represent; the family still writes its own values.
    return dataclasses.replace(codec, values=values) if dataclasses.is_dataclass(codec) else codec


def shapes_of(spec: Any) -> Shapes:
    """Static shapes a model is built for: L and V from the codec (V = language.values if non-zero)."""
    codec = codec_of(spec)
    return Shapes(length=int(codec.length), values=int(codec.values), pairs=int(spec.task.pairs))


def sample_split(spec: Any, split: str, n: int, *, seed: int) -> TaskSet:
    """n tasks of `split`, deterministic in (spec.task, split, n, seed); fast enough to call once per step."""
    family = family_of(spec)
    params = params_of(spec)
    check_split(family.name, split, family.splits(params))
    return family.sample(params, split, int(n), int(spec.task.pairs), seed=int(seed))


def load_tasks(path: str | os.PathLike[str], spec: Any) -> TaskSet:
    """A user's task file or directory (ARC-style JSON or JSONL), encoded with the spec's codec.

    Raises:
        DataError: located by file and line (JSONL) or task id and pair, for any malformed or unfit task.
    """
    return read_tasks(path, codec_of(spec), pairs=int(spec.task.pairs))
