"""Command-line numbers that override a spec field keep to that field's bounds (`nlic.compiler.spec.field_range`),
so that `--steps 10**12` is the same located error as `training: {steps: 1000000000000}` in a spec, not an
overflow deep inside training."""

from __future__ import annotations

from nlic.compiler.spec import EvalSpec, SearchSpec, Spec, TrainingSpec, field_range
from nlic.grammar.errors import Loc, SpecError

__all__ = ["check_flag", "FIELDS"]

FIELDS: dict[str, tuple[type, str]] = {
    "training.steps": (TrainingSpec, "steps"),
    "search.starts": (SearchSpec, "starts"),
    "search.steps": (SearchSpec, "steps"),
    "eval.tasks": (EvalSpec, "tasks"),
    "seed": (Spec, "seed"),
}
"""The spec fields that command-line flags override, by their dotted names."""


def check_flag(value: int | None, flag: str, field: str, *, minimum: int | None = None) -> None:
    """Raise a `SpecError` located at `flag` unless `value` (None: not given) is within the bounds of the spec
    field `field` (a key of `FIELDS`); `minimum` raises the field's lower bound (`-n` is at least 1)."""
    if value is None:
        return
    lo, hi = field_range(*FIELDS[field])
    if minimum is not None:
        lo = minimum if lo is None else max(lo, minimum)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{lo}..{hi:,}" if hi is not None else f"at least {lo}"
        raise SpecError(f"{flag} must be in {bounds}, as {field} in a spec; got {value:,}", loc=Loc(flag),
                        hint=f"give {flag} a value in {bounds}")
