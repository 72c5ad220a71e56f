"""The spec-level entry points to task data: a spec's family, codec, shapes, sampled splits and user files.

Everything that trains, solves or evaluates gets its tasks through these functions.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from nlic.compiler.families.base import FAMILIES, Codec, Family, TaskSet
from nlic.compiler.families.colours import canonical_colours, colours_of
from nlic.compiler.families.common import check_split
from nlic.compiler.families.files import read_tasks
from nlic.compiler.kinds import Shapes
from nlic.compiler.seeds import derive_seed
from nlic.grammar.errors import Diagnostic, Loc, SpecError, did_you_mean

__all__ = [
    "canonical_colours_of",
    "coloured",
    "family_of",
    "params_of",
    "unknown_splits",
    "codec_of",
    "curriculum_spec",
    "shapes_of",
    "sample_split",
    "evaluation_tasks",
    "load_tasks",
]


def family_of(spec: Any) -> Family:
    """The registered family of `spec.task.family` (`SpecError` listing the known ones otherwise)."""
    return FAMILIES.get(spec.task.family, loc=Loc("task.family"))


def params_of(spec: Any) -> dict[str, Any]:
    """`spec.task.params` as a dict."""
    return dict(spec.task.params)


def unknown_splits(spec: Any, splits: Any, loc: Loc, *, prefix: str = "") -> list[Diagnostic]:
    """A diagnostic at `loc` (a command's flag) for each of `splits` the spec's task family does not have, naming
    the closest it has; `prefix` starts each message (which spec, where a command reads several)."""
    family = family_of(spec)
    known = family.splits(params_of(spec))
    return [Diagnostic(loc, f"{prefix}task family '{family.name}' has no split '{s}'", did_you_mean(s, known))
            for s in splits if s not in known]


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
    return coloured(spec, family.sample(params, split, int(n), int(spec.task.pairs), seed=int(seed)))


def curriculum_spec(spec: Any, t: float) -> Any:
    """The spec whose task draws training step progress `t`'s tasks: during the first `training.curriculum` of the
    steps, `task.params` replaced by the family's easier ones (`Family.curriculum` at stage t / curriculum); else
    `spec` itself."""
    frac = float(getattr(spec.training, "curriculum", 0.0))
    if frac <= 0.0 or t >= frac:
        return spec
    family = family_of(spec)
    easier = getattr(family, "curriculum", None)
    if easier is None:
        raise SpecError(f"task family '{family.name}' has no curriculum", loc=Loc("training.curriculum"),
                        hint="remove training.curriculum")
    params = easier(params_of(spec), t / frac)
    task = dataclasses.replace(spec.task, params=tuple(sorted(params.items(), key=lambda kv: kv[0])))
    return dataclasses.replace(spec, task=task)


def canonical_colours_of(spec: Any) -> tuple[tuple[int, ...], int] | None:
    """(the colour values, V of the family's codec) when the spec renumbers colours (`task.colours: canonical`),
    else None.

    Raises:
        SpecError: canonical colours asked of a family without grid data.
    """
    if spec.task.colours != "canonical":
        return None
    codec = family_of(spec).codec(params_of(spec))
    colours = colours_of(codec)
    if colours is None:
        raise SpecError(f"task.colours: canonical needs grid data, and task family '{spec.task.family}' has none",
                        loc=Loc("task.colours"), hint="remove task.colours")
    return colours, int(codec.values)


def coloured(spec: Any, tasks: TaskSet) -> TaskSet:
    """The tasks in canonical colours where the spec asks for them (`task.colours`), else as they are."""
    found = canonical_colours_of(spec)
    return tasks if found is None else canonical_colours(tasks, *found)


def evaluation_tasks(spec: Any, split: str, n: int | None = None, *, seed: int | None = None) -> TaskSet:
    """The first n tasks of the split's evaluation sample: the tasks that every command names `<split>-0000`, ...

    The evaluation sample is `eval.tasks` tasks of `split` drawn with `derive_seed(seed, "eval", split)`, so
    `nlic train`'s evaluation, `nlic data show|export`, `nlic solve RUN SPLIT` and `nlic eval` all see the same
    task under one id. The families draw a sample as a whole (its first tasks depend on its size), so n above
    `eval.tasks` draws a larger sample of n tasks instead, whose first tasks differ from the default ones.

    Args:
        spec: the spec (its task section, `eval.tasks` and `seed`).
        split: a split of the spec's family.
        n: how many tasks (default `eval.tasks`).
        seed: the seed fed to the derivation (default `spec.seed`).

    Raises:
        SpecError: an unknown split or bad family parameters.
    """
    size = int(spec.eval.tasks)
    n = size if n is None else int(n)
    base = int(spec.seed if seed is None else seed)
    sample = sample_split(spec, split, max(n, size), seed=derive_seed(base, "eval", split))
    return sample if len(sample) <= n else sample.take(slice(0, n))


def load_tasks(path: str | os.PathLike[str], spec: Any) -> TaskSet:
    """A user's task file or directory (ARC-style JSON or JSONL), encoded with the spec's codec.

    Raises:
        DataError: located by file and line (JSONL) or task id and pair, for any malformed or unfit task.
    """
    return coloured(spec, read_tasks(path, codec_of(spec), pairs=int(spec.task.pairs)))
