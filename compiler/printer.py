"""Canonical text of a `Spec` in YAML or the native `.nls` syntax (the spec hash is built on it: `identity`).

Every field is printed in schema order (`version` first, task params sorted), floats in shortest round-trip
form, so print -> parse -> print is the identity and equal specs print to equal text.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from nlic.compiler.families import FAMILIES
from nlic.compiler.kinds import MODEL_KINDS, search_method_names
from nlic.compiler.spec import ROW_GRID_DEFAULTS, IntRange, Schedule, Spec, _num
from nlic.grammar.tree import type_plain_scalar

__all__ = ["format_spec", "SYNTAXES"]

SYNTAXES = ("yaml", "nls")
_YAML_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_NLS_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
# Words other YAML readers (YAML 1.1) would take for booleans: quoted so the file means the same everywhere.
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off"}
_INDENT = "  "
_YAML_KEY_LIMIT = 1024  # characters a YAML reader must accept in a `key: value` key
_ASTRAL = re.compile("([\U00010000-\U0010ffff])")


def _string(s: str, syntax: str) -> str:
    plain = _YAML_PLAIN if syntax == "yaml" else _NLS_PLAIN
    if plain.fullmatch(s) and type_plain_scalar(s) == s and s.lower() not in _YAML11_WORDS:
        return s
    if syntax == "yaml" and _ASTRAL.search(s):
        # JSON escapes a character beyond U+FFFF as a surrogate pair, which YAML reads as two separate (invalid)
        # characters; YAML's own 8-digit escape keeps it whole. Other characters are escaped as JSON does.
        parts = _ASTRAL.split(s)
        return '"' + "".join(json.dumps(p, ensure_ascii=True)[1:-1] if i % 2 == 0 else f"\\U{ord(p):08x}"
                             for i, p in enumerate(parts)) + '"'
    return json.dumps(s, ensure_ascii=True)


def _value(v: Any, syntax: str) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _num(v)
    if isinstance(v, str):
        return _string(v, syntax)
    if isinstance(v, (Schedule, IntRange)):
        return str(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(_value(i, syntax) for i in v) + "]"
    raise TypeError(f"cannot print spec value {v!r}")


def _is_params(f: dataclasses.Field) -> bool:
    return f.name == "params"


def _registered(registry: str | None) -> str:
    """` One of: ...` for a field whose values are registry names: the docs read them from the registries."""
    if registry == "family":
        names = FAMILIES.names()
    elif registry == "kind":
        names = MODEL_KINDS.names()
    elif registry == "method":
        names = search_method_names()
    else:
        return ""
    return " One of: " + ", ".join(names) + "."


def _grid_default(name: str) -> str:
    """` One-row grid data: ...` for a field `ROW_GRID_DEFAULTS` gives another default."""
    for field, value, nli_only in ROW_GRID_DEFAULTS:
        if field == name:
            return f" Default for one-row grid data{' (nli)' if nli_only else ''}: {_value(value, 'yaml')}."
    return ""


def _lines(obj: Any, syntax: str, depth: int, comments: bool, prefix: str = "",
           keep: frozenset[str] = frozenset()) -> list[str]:
    out: list[str] = []
    pad = _INDENT * depth
    sep = ": " if syntax == "yaml" else " "
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("quiet_default") and not comments and value == f.default and prefix + f.name not in keep:
            continue  # a field added later, left out at its default so that earlier specs keep their hash
        if comments and f.metadata.get("doc"):
            out.append(f"{pad}# {f.metadata['doc']}{_registered(f.metadata.get('registry'))}"
                       f"{_grid_default(prefix + f.name)}")
        if dataclasses.is_dataclass(value) and not isinstance(value, (Schedule, IntRange)):
            out.append(f"{pad}{f.name}:" if syntax == "yaml" else f"{pad}{f.name} {{")
            out.extend(_lines(value, syntax, depth + 1, comments, f"{prefix}{f.name}.", keep))
            if syntax == "nls":
                out.append(f"{pad}}}")
        elif _is_params(f):
            if not value:
                out.append(f"{pad}{f.name}{sep}{{}}")
                continue
            out.append(f"{pad}{f.name}:" if syntax == "yaml" else f"{pad}{f.name} {{")
            for k, v in value:
                key = _string(k, syntax)
                if syntax == "yaml" and len(key) > _YAML_KEY_LIMIT:  # YAML's explicit-key form has no limit
                    out += [f"{pad}{_INDENT}? {key}", f"{pad}{_INDENT}: {_value(v, syntax)}"]
                else:
                    out.append(f"{pad}{_INDENT}{key}{sep}{_value(v, syntax)}")
            if syntax == "nls":
                out.append(f"{pad}}}")
        else:
            out.append(f"{pad}{f.name}{sep}{_value(value, syntax)}")
    return out


def format_spec(spec: Spec, syntax: str = "yaml", *, comments: bool = False, keep: frozenset[str] = frozenset()) -> str:
    """The canonical text of a spec.

    Args:
        spec: a validated spec.
        syntax: 'yaml' or 'nls'.
        comments: precede every field with its documentation as a `#` comment (still canonical: comments are
            ignored by the parsers and printed again identically).
        keep: dotted names of fields to print even where they are at a default the canonical text leaves out
            (`quiet_default`): a user's spec whose data give that field another default (`nlic fmt`; what a run
            locks is read back without data defaults and needs none).

    Returns:
        The text, ending with a newline. Task paths are printed as stored: `load_spec` stores resolved paths,
        `load_spec(..., resolve_paths=False)` (what `nlic fmt` uses) keeps them as written.
    """
    if syntax not in SYNTAXES:
        raise ValueError(f"unknown syntax {syntax!r}; expected one of {SYNTAXES}")
    return "\n".join(_lines(spec, syntax, 0, comments, keep=keep)) + "\n"
