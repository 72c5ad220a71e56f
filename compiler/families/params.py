"""Declared task-family parameters: one schema per family, checked with located diagnostics.

Families list their `Param`s; `check` reports every problem at once and `resolve` fills defaults and normalises.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nlic.compiler.spec import IntRange
from nlic.grammar.errors import Diagnostic, Loc, SpecError, did_you_mean

__all__ = ["Param", "check", "resolve", "resolve_valid", "as_range"]

_RANGE_TEXT = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


@dataclasses.dataclass(frozen=True)
class Param:
    """One family parameter.

    Attributes:
        name: the key users write under `task.params`.
        kind: "int", "float", "str", "choice", "range" (IntRange, written `1..5`), "path" or "bool".
        default: value when the key is absent (None: optional without a default).
        doc: user documentation.
        min, max: inclusive bounds of ints, floats and both ends of ranges.
        choices: allowed values of a "choice".
    """

    name: str
    kind: str
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()


def as_range(value: Any) -> IntRange | None:
    """An `IntRange` from an IntRange, `"a..b"` text, an `[a, b]` list or a single int; None if not one."""
    if isinstance(value, IntRange):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return IntRange(value, value)
    if isinstance(value, str):
        m = _RANGE_TEXT.match(value)
        return IntRange(int(m.group(1)), int(m.group(2))) if m else None
    if isinstance(value, Sequence) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return IntRange(int(value[0]), int(value[1]))
    return None


def _one(p: Param, value: Any) -> tuple[Any, str | None, str | None]:
    """(normalised value, error message, hint) of one parameter value."""
    bounds = ""
    if p.min is not None or p.max is not None:
        lo = "" if p.min is None else f"{p.min:g}"
        hi = "" if p.max is None else f"{p.max:g}"
        bounds = f"between {lo} and {hi}" if lo and hi else (f">= {lo}" if lo else f"<= {hi}")
    if p.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"'{p.name}' must be an integer, got {value!r}", bounds or None
        x = value
    elif p.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"'{p.name}' must be a number, got {value!r}", bounds or None
        x = float(value)
    elif p.kind == "bool":
        if not isinstance(value, bool):
            return None, f"'{p.name}' must be true or false, got {value!r}", None
        return value, None, None
    elif p.kind in ("str", "path"):
        if not isinstance(value, str) or not value:
            return None, f"'{p.name}' must be a non-empty string, got {value!r}", None
        return value, None, None
    elif p.kind == "choice":
        if value not in p.choices:
            return None, f"'{p.name}' has unknown value {value!r}", did_you_mean(str(value), p.choices)
        return value, None, None
    elif p.kind == "range":
        r = as_range(value)
        if r is None:
            return None, f"'{p.name}' must be an integer range like 1..5, got {value!r}", bounds or None
        if r.lo > r.hi:
            return None, f"'{p.name}' range {r} is empty", f"write {r.hi}..{r.lo}"
        if (p.min is not None and r.lo < p.min) or (p.max is not None and r.hi > p.max):
            return None, f"'{p.name}' range {r} is out of bounds", f"both ends must be {bounds}"
        return r, None, None
    else:  # pragma: no cover - schema bug
        raise ValueError(p.kind)
    if (p.min is not None and x < p.min) or (p.max is not None and x > p.max):
        return None, f"'{p.name}' = {value} is out of range", f"must be {bounds}"
    return x, None, None


def check(
    schema: Sequence[Param],
    params: Mapping[str, Any],
    locs: Mapping[str, Loc],
    where: Loc | None,
    *,
    family: str,
) -> list[Diagnostic]:
    """Every problem of `params` against `schema`: unknown keys (with did-you-mean), types, ranges."""
    known = {p.name: p for p in schema}
    diags: list[Diagnostic] = []
    for key, value in params.items():
        loc = locs.get(key, where)
        if key not in known:
            diags.append(
                Diagnostic(loc, f"unknown parameter '{key}' of task family '{family}'", did_you_mean(key, known))
            )
            continue
        _, msg, hint = _one(known[key], value)
        if msg:
            diags.append(Diagnostic(loc, msg, hint))
    return diags


def resolve(schema: Sequence[Param], params: Mapping[str, Any], *, family: str) -> dict[str, Any]:
    """Parameters with defaults filled in and values normalised; `SpecError` with every problem otherwise."""
    diags = check(schema, params, {}, Loc(f"task.params ({family})"), family=family)
    if diags:
        raise SpecError(diagnostics=diags)
    out: dict[str, Any] = {}
    for p in schema:
        if p.name in params:
            out[p.name] = _one(p, params[p.name])[0]
        else:
            out[p.name] = as_range(p.default) if p.kind == "range" and p.default is not None else p.default
    return out


def resolve_valid(schema: Sequence[Param], params: Mapping[str, Any], *, family: str) -> dict[str, Any]:
    """Like `resolve`, but unknown or invalid keys fall back to their defaults, so cross-parameter checks can
    still run (and report) next to the per-key problems."""
    known = {p.name: p for p in schema}
    ok = {k: v for k, v in params.items() if k in known and _one(known[k], v)[1] is None}
    return resolve(schema, ok, family=family)
