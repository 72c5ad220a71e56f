"""Spec validation: located tree -> `Spec`, checking types, ranges, choices and cross-field rules at once.

The schema is derived from the dataclasses of `nlic.compiler.spec` (types, defaults, `metadata` min/max/choices),
so adding a field there is the only step. Every problem becomes one located diagnostic; all are raised together.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlic.compiler import spec as spec_module
from nlic.compiler.families import FAMILIES
from nlic.compiler.families.codecs import GridCodec
from nlic.compiler.families.colours import colours_of
from nlic.compiler.kinds import MODEL_KINDS, kind_reads
from nlic.compiler.spec import (
    ROW_GRID_DEFAULTS,
    IntRange,
    Schedule,
    Spec,
    TrainingSpec,
    field_names,
    field_types,
    is_section,
)
from nlic.grammar.errors import MAX_SHOWN, Diagnostic, Loc, NlicError, SpecError, capped, did_you_mean
from nlic.grammar.reading import MAX_SPEC_BYTES, read_text
from nlic.grammar.spec_parser import parse_expression, parse_nls
from nlic.grammar.tree import Call, Document, ListNode, MappingNode, Node, Range, Scalar
from nlic.grammar.yaml_front import parse_yaml

__all__ = [
    "load_spec", "parse_spec", "read_spec_text", "validate_tree", "syntax_of", "ignored_fields", "check_kind_fields",
    "value_at", "replace_at", "is_row_grid",
    "MAX_SPEC_BYTES", "MAX_DIAGNOSTICS",
]

MAX_DIAGNOSTICS = MAX_SHOWN  # a file of garbage should not print a million lines
_INT_LIMIT = 2**63 - 1
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
MAX_NAME = 128
_DEFAULT_SPLIT_UNTIL = TrainingSpec().split_until
_SYNTAXES = {".yaml": "yaml", ".yml": "yaml", ".nls": "nls"}
_BAD = object()  # a value that failed conversion (already reported)


def syntax_of(path: str | os.PathLike) -> str | None:
    """'yaml' or 'nls' from a file name's extension; None if unknown."""
    return _SYNTAXES.get(Path(path).suffix.lower())


@functools.cache
def _homes() -> dict[str, tuple[str, ...]]:
    """Field name -> the sections that have it, to point a misplaced key at its section."""
    homes: dict[str, list[str]] = {}

    def walk(cls: type, prefix: str) -> None:
        for f in dataclasses.fields(cls):
            tp = field_types(cls)[f.name]
            if prefix:
                homes.setdefault(f.name, []).append(prefix[:-1])
            if is_section(tp):
                walk(tp, f"{prefix}{f.name}.")

    walk(Spec, "")
    return {k: tuple(v) for k, v in homes.items()}


def _describe(node: Node) -> str:
    if isinstance(node, Scalar):
        v = node.value
        text = node.text if len(node.text) <= 40 else node.text[:37] + "..."
        if v is None:
            return "nothing"
        if isinstance(v, bool):
            return f"boolean {text}"
        if isinstance(v, (int, float)):
            return f"number {text}"
        return f"string '{text}'"
    if isinstance(node, Range):
        return f"range {_short(node.text or f'{node.lo}..{node.hi}')}"
    if isinstance(node, Call):
        return f"expression {node.name}(...)"
    if isinstance(node, ListNode):
        return "a list"
    return "a mapping"


class _Checker:
    """Collects diagnostics and the location of every value while converting the tree."""

    def __init__(self, path: str):
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        self.locs: dict[str, Loc] = {}  # dotted name -> location of its value (or key for sections)
        self.bad: set[str] = set()  # dotted names whose value was rejected (cross-checks skip them)
        self.param_locs: dict[str, Loc] = {}

    def at(self, node: Any) -> Loc:
        return Loc(self.path, node.line or None, node.col or None)

    def error(self, where: Any, message: str, hint: str | None = None, name: str | None = None) -> object:
        loc = where if isinstance(where, Loc) or where is None else self.at(where)
        self.diagnostics.append(Diagnostic(loc, message, hint))
        if name is not None:
            self.bad.add(name)
        return _BAD

    def loc_of(self, name: str) -> Loc:
        while name not in self.locs and "." in name:
            name = name.rsplit(".", 1)[0]
        return self.locs.get(name, Loc(self.path, 1, 1))

    # -- sections ------------------------------------------------------------------------------------------

    def section(self, cls: type, node: Node, name: str) -> Any:
        if not isinstance(node, MappingNode):
            title = f"'{name}'" if name else "the spec"
            self.error(node, f"{title} must be a mapping of keys to values, got {_describe(node)}",
                       "write 'key: value' entries, one per line", name or "<root>")
            return cls()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for entry in node.entries:
            dotted = f"{name}.{entry.key}" if name else entry.key
            f = fields.get(entry.key)
            if f is None:
                where = f"section '{name}'" if name else "the spec"
                homes = [h for h in _homes().get(entry.key, ()) if h != name]
                hint = did_you_mean(entry.key, fields)
                if homes:
                    hint = f"'{entry.key}' is a key of section " + " or ".join(f"'{h}'" for h in homes)
                elif "." in entry.key:
                    head, _, rest = entry.key.partition(".")
                    hint = f"write it nested: {head}: {{{rest}: ...}} (or {head} {{ {rest} ... }} in .nls)"
                self.error(entry, f"unknown key '{entry.key}' in {where}", hint)
                continue
            self.locs[dotted] = self.at(entry.value) if not isinstance(entry.value, MappingNode) else self.at(entry)
            value = self.field(field_types(cls)[f.name], f, entry.value, dotted)
            if value is not _BAD:
                values[f.name] = value
        return cls(**values)

    def field(self, tp: Any, f: dataclasses.Field, node: Node, name: str) -> Any:
        if is_section(tp):
            return self.section(tp, node, name)
        return self.value(tp, f, f.metadata, node, name)

    def value(self, tp: Any, f: dataclasses.Field, meta: Mapping[str, Any], node: Node, name: str) -> Any:
        """Convert one value by its annotated type (the schema is the annotations plus field metadata)."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if isinstance(node, Scalar) and node.value is None:
            if origin in (typing.Union, types.UnionType) and type(None) in args:
                return None
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            return self.error(node, f"'{name}' has no value",
                              f"remove the line to use the default ({_show(default)})", name)
        if origin in (typing.Union, types.UnionType):
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                return self.value(rest[0], f, meta, node, name)
        if tp is Schedule:
            return self.schedule(node, name, meta)
        if tp is bool:
            if isinstance(node, Scalar) and isinstance(node.value, bool):
                return node.value
            return self.error(node, f"'{name}' must be true or false, got {_describe(node)}", None, name)
        if tp is int or tp is float:
            return self.number(node, name, meta, integer=tp is int)
        choices = meta.get("choices") or (args if origin is typing.Literal else ())
        if tp is str or choices:
            value = self.string(node, name)
            if value is not _BAD and choices and value not in choices:
                return self.error(node, f"'{name}' cannot be '{value}'", did_you_mean(value, choices), name)
            return value
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            if typing.get_origin(args[0]) is tuple:  # tuple[tuple[str, Any], ...]: a free-form mapping
                return self.params(node, name)
            return self.items(args[0], f, meta, node, name)
        raise TypeError(f"spec field {name} has a type the validator does not know: {tp}")

    # -- values --------------------------------------------------------------------------------------------

    def number(self, node: Node, name: str, meta: Mapping[str, Any], *, integer: bool) -> Any:
        kind = "an integer" if integer else "a number"
        if not isinstance(node, Scalar) or isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            hint = "write digits without quotes" if isinstance(node, Scalar) and _looks_numeric(node) else None
            return self.error(node, f"'{name}' must be {kind}, got {_describe(node)}", hint, name)
        value = self.finite(node, name)
        if value is _BAD:
            return value
        if integer and isinstance(value, float):
            hint = f"write {int(value)}" if value.is_integer() else None
            return self.error(node, f"'{name}' must be an integer, got {node.text}", hint, name)
        if not integer:
            value = float(value)
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            allowed = f"{_show(lo)}..{_show(hi)}" if lo is not None and hi is not None else (
                f">= {_show(lo)}" if lo is not None else f"<= {_show(hi)}")
            return self.error(node, f"'{name}' is out of range: {_short(node.text)}", f"allowed: {allowed}", name)
        return value

    def finite(self, node: Scalar, name: str) -> Any:
        """Reject numbers no float holds (1e400) and integers beyond 64 bits, quoting what the user wrote."""
        v = node.value
        if isinstance(v, float) and not math.isfinite(v):
            return self.error(node, f"number {_short(node.text)} is too large", "use a value below 1e308", name)
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > _INT_LIMIT:
            return self.error(node, f"integer {_short(node.text)} is too large", "integers must fit in 64 bits",
                              name)
        return v

    def string(self, node: Node, name: str) -> Any:
        if isinstance(node, Scalar) and isinstance(node.value, str):
            return node.value
        if isinstance(node, Scalar) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.text  # `name: 2024` means the text, not the number
        hint = 'quote the value: "..."' if isinstance(node, (Call, Range)) else None
        return self.error(node, f"'{name}' must be a string, got {_describe(node)}", hint, name)

    def items(self, tp: Any, f: dataclasses.Field, meta: Mapping[str, Any], node: Node, name: str) -> Any:
        """A list (a single value is a list of one); repeats are refused, as every list in a spec is a set."""
        items = node.items if isinstance(node, ListNode) else (node,)
        out: list[Any] = []
        for item in items:
            value = self.value(tp, f, meta, item, name)
            if value is _BAD:
                return _BAD
            if value in out:
                return self.error(item, f"'{name}' lists '{_show(value)}' twice", "remove the repeat", name)
            out.append(value)
        return tuple(out)

    def schedule(self, node: Node, name: str, meta: Mapping[str, Any]) -> Any:
        if isinstance(node, Scalar) and isinstance(node.value, str):
            try:  # a quoted schedule in YAML, or a plain string that the front end left as text
                # nls strings keep their quotes in `text`; YAML ones already point past the quote.
                node = parse_expression(node.value, self.path, node.line, node.col + (node.text != node.value))
            except SpecError as e:
                self.diagnostics.extend(e.diagnostics)
                self.bad.add(name)
                return _BAD
        kinds = typing.get_args(field_types(Schedule)["kind"])
        example = "exp(8 -> 0.5), linear(1 -> 0), cosine(1 -> 0), const(0.5) or a number"
        if isinstance(node, Scalar) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            args: tuple[Node, ...] = (node,)
            kind = "const"
        elif isinstance(node, Call):
            if node.name not in kinds:
                return self.error(node, f"unknown schedule '{node.name}' in '{name}'",
                                  did_you_mean(node.name, kinds), name)
            kind, args = node.name, node.args
            want = 1 if kind == "const" else 2
            if len(args) != want:
                form = "const(x)" if kind == "const" else f"{kind}(start -> end)"
                return self.error(node, f"'{name}': {kind} takes {want} value{'s' * (want > 1)}, got {len(args)}",
                                  f"write {form}", name)
        else:
            return self.error(node, f"'{name}' must be a schedule, got {_describe(node)}", f"write {example}", name)
        values = []
        for a in args:
            if not isinstance(a, Scalar) or isinstance(a.value, bool) or not isinstance(a.value, (int, float)):
                return self.error(a, f"'{name}': schedule endpoints must be numbers, got {_describe(a)}", None, name)
            v = self.finite(a, name)
            if v is _BAD:
                return v
            lo, hi = meta.get("min"), meta.get("max")
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                allowed = f"{_show(lo)}..{_show(hi)}" if lo is not None and hi is not None else (
                    f">= {_show(lo)}" if lo is not None else f"<= {_show(hi)}")
                return self.error(a, f"'{name}' is out of range: {_short(a.text)}", f"allowed: {allowed}", name)
            values.append(float(v))
        start, end = values[0], values[-1]
        if kind == "exp" and (start <= 0 or end <= 0):
            return self.error(node, f"'{name}': exp schedules need positive endpoints, got {_num(start)} -> "
                              f"{_num(end)}", "use linear(...) to reach 0, or a small positive end such as 0.01",
                              name)
        above = meta.get("above_zero")  # "all": every value of the schedule; "start": its first
        if above and (start <= 0 or (above == "all" and end <= 0)):
            return self.error(node, f"'{name}' must stay above 0, got {_num(start)} -> {_num(end)}",
                              meta.get("above_zero_hint"), name)
        return Schedule(kind, start, end)

    def params(self, node: Node, name: str) -> Any:
        if not isinstance(node, MappingNode):
            return self.error(node, f"'{name}' must be a mapping of parameter names to values, got "
                              f"{_describe(node)}", "write e.g. params: {split: shift_l, length: 20}", name)
        out = []
        ok = True
        for entry in node.entries:
            self.param_locs[entry.key] = self.at(entry.value)
            value = self.param_value(entry.value, f"{name}.{entry.key}")
            if value is _BAD:
                ok = False
            else:
                out.append((entry.key, value))
        if not ok:
            self.bad.add(name)
            return _BAD
        return tuple(sorted(out, key=lambda kv: kv[0]))

    def param_value(self, node: Node, name: str) -> Any:
        if isinstance(node, Scalar):
            if node.value is None:
                return self.error(node, f"'{name}' has no value", "give a value or remove the line")
            return self.finite(node, name) if isinstance(node.value, (int, float)) else node.value
        if isinstance(node, Range):
            if abs(node.lo) > _INT_LIMIT or abs(node.hi) > _INT_LIMIT:
                text = node.text or f"{node.lo}..{node.hi}"
                return self.error(node, f"range {_short(text)} is too large", "integers must fit in 64 bits")
            if node.lo > node.hi:
                return self.error(node, f"'{name}': empty range {node.lo}..{node.hi}",
                                  f"write {node.hi}..{node.lo}")
            return IntRange(node.lo, node.hi)
        if isinstance(node, Call):
            return self.schedule(node, name, {})
        if isinstance(node, ListNode):
            items = [self.param_value(i, name) for i in node.items]
            if any(isinstance(i, (tuple, list)) for i in items if i is not _BAD):
                return self.error(node, f"'{name}': lists of lists are not supported", None)
            return _BAD if _BAD in items else tuple(items)
        return self.error(node, f"'{name}': nested mappings are not supported in task parameters",
                          "use flat keys, e.g. train_file: a.json")


def _looks_numeric(node: Scalar) -> bool:
    try:
        float(str(node.value))
    except ValueError:
        return False
    return True


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _num(x: float) -> str:
    return spec_module._num(x)


def _show(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _num(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


# -- cross-field checks -----------------------------------------------------------------------------------


def _resolve_paths(params: tuple, keys: Any, base: Path) -> tuple:
    """Relative path values of the `keys` params joined to `base` (`keys` may be any container: a family can
    treat every key as a path)."""

    def fix(v: Any) -> Any:
        if isinstance(v, str) and v:
            v = os.path.expanduser(v)
            return v if os.path.isabs(v) else os.path.normpath(str(base / v))
        if isinstance(v, tuple):
            return tuple(fix(i) for i in v)
        return v

    return tuple((k, fix(v) if k in keys else v) for k, v in params)


def value_at(spec: Any, name: str) -> Any:
    """The value of the field at dotted `name` of `spec` (e.g. 'training.steps')."""
    for part in name.split("."):
        spec = getattr(spec, part)
    return spec


def replace_at(spec: Any, name: str, value: Any) -> Any:
    """`spec` with the field at dotted `name` set to `value` (every section on the way replaced)."""
    head, _, rest = name.partition(".")
    if not rest:
        return dataclasses.replace(spec, **{head: value})
    return dataclasses.replace(spec, **{head: replace_at(getattr(spec, head), rest, value)})


def ignored_fields(spec: Spec) -> list[str]:
    """The fields (dotted names) that `spec` sets to another value than their default and that its model kind does
    not read (`ModelKind.reads`), in schema order; [] for a kind not registered. Set to the default, such a field
    is harmless (a spec's canonical text writes every field)."""
    if spec.model.kind not in MODEL_KINDS:
        return []
    kind, default = MODEL_KINDS.get(spec.model.kind), Spec()
    return [n for n in field_names() if not kind_reads(kind, n) and value_at(spec, n) != value_at(default, n)]


def _ignored_field(spec: Spec, name: str, loc: Loc) -> Diagnostic:
    """The refusal of field `name`, which `spec`'s model kind does not read (`ignored_fields`), located at `loc`."""
    readers = [k for k in MODEL_KINDS.names() if kind_reads(MODEL_KINDS.get(k), name)]
    return Diagnostic(loc, f"model kind '{spec.model.kind}' does not read {name}: its value "
                      f"{_short(_show(value_at(spec, name)))} would be ignored",
                      f"remove it; model kinds that read it: {', '.join(readers)}")


def check_kind_fields(spec: Spec) -> None:
    """Refuse the fields `spec` sets that its model kind does not read (`ignored_fields`), as validation refuses
    them in a spec file: for a `Spec` built or changed in Python, which the validator never saw. Each is located
    at its dotted name.

    Raises:
        SpecError: naming every such field, the kind and the kinds that read it.
    """
    found = [_ignored_field(spec, name, Loc(name)) for name in ignored_fields(spec)]
    if found:
        raise SpecError(diagnostics=found)


def is_row_grid(codec: Any) -> bool:
    """Whether a family's codec holds one-row grids of colours (the data `ROW_GRID_DEFAULTS` are for)."""
    return isinstance(codec, GridCodec) and codec.rows == 1


def _data_defaults(spec: Spec, c: _Checker, kind: Any, codec: Any) -> Spec:
    """`spec` with `ROW_GRID_DEFAULTS` for every field it does not write, where `codec` (its task family's, the
    task's params and data checked) holds one-row grids. A default that would contradict what the spec writes is
    not applied (a rollback where the spec keeps the last weights, a skip_from where it turns the skip token off, a
    program budget for another search), nor one the model kind does not read or offer: the cross-field checks that
    ran before it on the schema's defaults hold for these values too."""
    if not is_row_grid(codec):
        return spec
    for name, value, nli_only in ROW_GRID_DEFAULTS:
        if name in c.locs or name in c.bad or not kind_reads(kind, name) or (nli_only and kind.name != "nli"):
            continue
        if name == "search.method" and value not in kind.search_methods:
            continue
        if name == "search.programs" and spec.search.method != "enumerate":
            continue
        if name == "training.rollback" and (spec.training.keep != "best" or spec.training.eval_every <= 0
                                            or spec.training.lr_drop >= 1):
            continue
        if name == "relaxation.skip_from" and not spec.relaxation.skip:
            continue
        spec = replace_at(spec, name, value)
    return spec


def _cross_checks(spec: Spec, c: _Checker, base_dir: Path | None, resolve_paths: bool, kind_fields: bool) -> Spec:
    """Checks between fields and against the registries; returns the spec with path params resolved."""
    ok = lambda *names: not any(n in c.bad for n in names)  # noqa: E731
    # Rules between fields a kind does not read are not checked for it (an LPN spec whose max_length is below
    # the default language.length must not be told to raise a length LPN never reads).
    kind = MODEL_KINDS.get(spec.model.kind) if ok("model.kind") and spec.model.kind in MODEL_KINDS else None
    reads = lambda *names: kind is None or all(kind_reads(kind, n) for n in names)  # noqa: E731
    if ok("name") and not _NAME.fullmatch(spec.name):
        c.error(c.loc_of("name"), f"name '{spec.name[:60]}{'...' if len(spec.name) > 60 else ''}' cannot be used "
                "as a directory name", "use letters, digits, '_', '-' and '.', starting with a letter, digit or '_'")
    elif ok("name") and len(spec.name) > MAX_NAME:
        # Run and build folders are named `<name>-seed<k>` and `<name>` under the user's; 255 bytes is the usual
        # limit of one path component.
        c.error(c.loc_of("name"), f"name is {len(spec.name)} characters long, more than the {MAX_NAME} nlic uses "
                "in folder names", f"shorten it to at most {MAX_NAME} characters")
    for part in ("inductor", "executor"):
        arch = getattr(spec.model, part)
        if ok(f"model.{part}.heads", f"model.{part}.width") and arch.width % arch.heads:
            c.error(c.loc_of(f"model.{part}.heads"), f"model.{part}.heads ({arch.heads}) must divide "
                    f"model.{part}.width ({arch.width})",
                    f"use heads in {[h for h in range(1, min(arch.width, 64) + 1) if arch.width % h == 0]}")
    lang = spec.language
    if ok("language.max_length", "language.length") and reads("language.length") and lang.max_length < lang.length:
        c.error(c.loc_of("language.max_length"), f"language.max_length ({lang.max_length}) is shorter than "
                f"language.length ({lang.length})", f"set max_length to at least {lang.length}")
    if ok("language.skip_token", "language.vocab") and reads("language.skip_token") and lang.skip_token >= lang.vocab:
        c.error(c.loc_of("language.skip_token"), f"language.skip_token ({lang.skip_token}) must be below "
                f"language.vocab ({lang.vocab})", f"use a token id in 0..{lang.vocab - 1}")

    ex = spec.model.executor
    if ok("model.executor.mirrors", "model.executor.routing") and ex.mirrors and not ex.routing:
        c.error(c.loc_of("model.executor.mirrors"), "model.executor.mirrors needs model.executor.routing",
                "set routing: true, or remove mirrors")
    if ok("model.executor.anchors", "model.executor.routing") and ex.anchors and not ex.routing:
        c.error(c.loc_of("model.executor.anchors"), "model.executor.anchors needs model.executor.routing",
                "set routing: true, or remove anchors")
    tr = spec.training
    if ok("training.rollback", "training.keep", "training.eval_every") and tr.rollback and (
            tr.keep != "best" or tr.eval_every <= 0):
        c.error(c.loc_of("training.rollback"), "training.rollback goes back to the best evaluation point's weights, "
                f"which a run keeps only with training.keep: best and training.eval_every > 0 (now {tr.keep}, "
                f"{tr.eval_every})", "set training.keep: best and an eval_every, or remove training.rollback")
    if ok("training.split_until", "training.eval_every") and reads("training.split_until") \
            and tr.split_until != _DEFAULT_SPLIT_UNTIL \
            and tr.split_until and tr.eval_every <= 0:
        # Set to another value than the default, which splits where evaluation runs and is quiet otherwise (a
        # run's locked spec writes every field, the default too).
        c.error(c.loc_of("training.split_until"), "training.split_until splits tokens at the evaluation points, and "
                "training.eval_every is 0 (no evaluation)", "set training.eval_every (e.g. 500), or remove "
                "training.split_until")
    if ok("training.rollback", "training.lr_drop") and tr.rollback and tr.lr_drop >= 1:
        c.error(c.loc_of("training.rollback"), f"training.rollback trains on at training.lr_drop times the rate, "
                f"and training.lr_drop is {tr.lr_drop:g}: the same steps at the same rate fall again",
                "set training.lr_drop below 1 (default 0.25), or remove training.rollback")
    search = spec.search
    if ok("search.length", "language.length", "language.max_length") and reads("search.length") and search.length \
            and not lang.length <= search.length <= lang.max_length:
        c.error(c.loc_of("search.length"), f"search.length ({search.length}) is outside language.length .. "
                f"language.max_length ({lang.length} .. {lang.max_length})",
                f"use a length in {lang.length}..{lang.max_length}, or 0 for language.max_length")

    kinds = MODEL_KINDS.names()
    if ok("model.kind") and spec.model.kind not in kinds:
        c.error(c.loc_of("model.kind"), f"unknown model kind '{spec.model.kind}'", did_you_mean(spec.model.kind, kinds))
    elif ok("model.kind", "search.method"):
        methods = MODEL_KINDS.get(spec.model.kind).search_methods
        if spec.search.method not in methods:
            c.error(c.loc_of("search.method"), f"search method '{spec.search.method}' is not available for model "
                    f"kind '{spec.model.kind}'", did_you_mean(spec.search.method, methods))
    if kind_fields and kind is not None:
        # A field the kind never reads would train and search exactly as without it: say so rather than ignore
        # it (an LPN spec adapted from an NLI one keeps relaxation and inductor settings that do nothing).
        c.diagnostics.extend(_ignored_field(spec, name, c.loc_of(name)) for name in ignored_fields(spec) if ok(name))

    names = FAMILIES.names()
    if not ok("task.family"):
        return spec
    if spec.task.family not in names:
        c.error(c.loc_of("task.family"), f"unknown task family '{spec.task.family}'",
                did_you_mean(spec.task.family, names))
        return spec
    if not ok("task.params"):
        return spec
    family = FAMILIES.get(spec.task.family)
    params = spec.task.params
    resolved = params
    if base_dir is not None and getattr(family, "path_params", ()):
        resolved = _resolve_paths(params, family.path_params, base_dir)
    where = c.locs.get("task.params", c.loc_of("task"))
    try:
        found = list(family.check_params(dict(resolved), dict(c.param_locs), where))
    except NlicError as e:
        found = list(e.diagnostics)
    c.diagnostics.extend(found)
    if found:
        return spec
    try:
        splits = tuple(family.splits(dict(resolved)))
        codec = family.codec(dict(resolved))
        check_data = getattr(family, "check_data", None)  # data a family reads: what encoding it would refuse
        if check_data is not None and ok("task.pairs"):
            check_data(dict(resolved), pairs=spec.task.pairs)
    except NlicError as e:
        c.diagnostics.extend(e.diagnostics)
        return spec
    if kind_fields and kind is not None:  # not for a locked spec, whose text is complete
        spec = _data_defaults(spec, c, kind, codec)
    if ok("training.curriculum") and spec.training.curriculum > 0 and getattr(family, "curriculum", None) is None:
        have = [n for n in names if getattr(FAMILIES.get(n), "curriculum", None) is not None]
        c.error(c.loc_of("training.curriculum"), f"task family '{family.name}' has no curriculum (easier training "
                f"tasks to start from)", f"remove training.curriculum; families with one: {', '.join(have)}")
    if ok("task.train_split") and spec.task.train_split not in splits:
        c.error(c.loc_of("task.train_split"), f"task family '{family.name}' has no split "
                f"'{spec.task.train_split}'", did_you_mean(spec.task.train_split, splits))
    if ok("eval.splits") and "eval.splits" not in c.locs and not set(spec.eval.splits) <= set(splits):
        # Not written, and the default names splits the family lacks (a `files` task of `train` and `test`): evaluate
        # the default's splits it has, else every split but the training one.
        own = tuple(s for s in spec.eval.splits if s in splits) or tuple(
            s for s in splits if s != spec.task.train_split)
        if own:
            spec = dataclasses.replace(spec, eval=dataclasses.replace(spec.eval, splits=own))
    if ok("eval.splits"):
        for s in spec.eval.splits:
            if s not in splits:
                hint = did_you_mean(s, splits)
                if "eval.splits" not in c.locs:
                    hint = f"eval.splits defaults to {_show(spec.eval.splits)}; set it to some of: {', '.join(splits)}"
                c.error(c.loc_of("eval.splits"), f"task family '{family.name}' has no split '{s}'", hint)
    if ok("task.colours") and spec.task.colours == "canonical":
        if colours_of(codec) is None:
            c.error(c.loc_of("task.colours"), f"task.colours: canonical needs grid data, and task family "
                    f"'{family.name}' encodes its values with {type(codec).__name__}",
                    "remove task.colours (or use as_is): only grid colours are renumbered")
    if ok("language.values") and lang.values and lang.values < codec.values:
        c.error(c.loc_of("language.values"), f"language.values ({lang.values}) is smaller than the task's "
                f"alphabet ({codec.values})", f"set values to 0 (inferred) or at least {codec.values}")
    if resolve_paths and resolved != params:
        spec = dataclasses.replace(spec, task=dataclasses.replace(spec.task, params=resolved))
    return spec


# -- entry points -----------------------------------------------------------------------------------------


def validate_tree(
    doc: Document,
    *,
    base_dir: str | os.PathLike | None = None,
    resolve_paths: bool = True,
    diagnostics: list[Diagnostic] | tuple[Diagnostic, ...] = (),
    kind_fields: bool = True,
) -> Spec:
    """Check a located tree against the spec schema and build the `Spec`.

    Args:
        doc: the tree from a front end.
        base_dir: directory relative data paths (the family's `path_params`) are resolved against; None
            leaves them as written.
        resolve_paths: store resolved paths in the spec (False keeps them as written, for `nlic fmt`; the
            family's checks see resolved paths either way).
        diagnostics: problems the front end already found; reported together with the validator's.
        kind_fields: refuse fields the model kind does not read (`ignored_fields`), and give the fields the spec
            leaves out the defaults of its data (`ROW_GRID_DEFAULTS`); False for a spec a run locked (an earlier
            version accepted such fields, and they changed nothing; its text is complete, read as written: a
            field left out is at the schema's default, as when it was locked).

    Raises:
        SpecError: with every diagnostic of the file.
    """
    c = _Checker(doc.path)
    c.diagnostics.extend(diagnostics)
    root = doc.root
    if isinstance(root, MappingNode) and not root.entries and not diagnostics:
        raise SpecError("the spec is empty", loc=Loc(doc.path, 1, 1),
                        hint="a minimal spec is 'name: my_spec' and 'task: {family: shift, params: {split: shift_l}}'")
    spec = c.section(Spec, root, "")
    if isinstance(root, MappingNode):
        spec = _cross_checks(spec, c, Path(base_dir) if base_dir is not None else None, resolve_paths, kind_fields)
    if c.diagnostics:
        raise SpecError(diagnostics=_ordered(c.diagnostics))
    return spec


def _ordered(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """File order, duplicates removed (one problem found twice is reported once), at most `MAX_DIAGNOSTICS`."""
    seen: dict[str, Diagnostic] = {}
    for d in diagnostics:
        seen.setdefault(str(d), d)
    out = sorted(seen.values(), key=lambda d: ((d.loc.line or 0) if d.loc else 0, (d.loc.col or 0) if d.loc else 0))
    return list(capped(out, MAX_DIAGNOSTICS))


def _parse_tree(text: str, path: str, syntax: str) -> tuple[Document, list[Diagnostic]]:
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    if "\x00" in text:
        i = text.index("\x00")
        line = text.count("\n", 0, i) + 1
        col = i - (text.rfind("\n", 0, i) + 1) + 1
        raise SpecError("the file contains NUL bytes (binary data?)", loc=Loc(path, line, col),
                        hint="a spec is a UTF-8 text file")
    if syntax == "yaml":
        return parse_yaml(text, path)
    if syntax == "nls":
        return parse_nls(text, path)
    raise SpecError(f"unknown spec syntax '{syntax}'", loc=Loc(path), hint="use 'yaml' or 'nls'")


def parse_spec(
    text: str,
    path: str = "<string>",
    syntax: str | None = None,
    *,
    base_dir: str | os.PathLike | None = None,
    resolve_paths: bool = True,
    kind_fields: bool = True,
) -> Spec:
    """Parse and validate spec text.

    Args:
        text: the spec.
        path: file name for messages; its extension picks the syntax when `syntax` is None (YAML otherwise).
        syntax: 'yaml' or 'nls'.
        base_dir: directory relative data paths are resolved against (default: the directory of `path` when
            it names a file, else none).
        resolve_paths, kind_fields: see `validate_tree`.

    Raises:
        SpecError: with all diagnostics of the text.
    """
    if syntax is None:
        syntax = syntax_of(path) or "yaml"
    if base_dir is None and path and not path.startswith("<"):
        base_dir = Path(path).resolve().parent
    doc, diagnostics = _parse_tree(text, path, syntax)
    return validate_tree(doc, base_dir=base_dir, resolve_paths=resolve_paths, diagnostics=diagnostics,
                         kind_fields=kind_fields)


def read_spec_text(path: str | os.PathLike) -> str:
    """The text of a spec file, refusing non-files (directories, devices), huge files and non-UTF-8 bytes with
    located errors (see `nlic.grammar.reading`)."""
    return read_text(path, limit=MAX_SPEC_BYTES, what="spec", error=SpecError,
                     hint="a spec is a small text file; is this the right file?")


def load_spec(path: str | os.PathLike, *, resolve_paths: bool = True, kind_fields: bool = True) -> Spec:
    """Read, parse and validate a spec file (`.yaml`, `.yml` or `.nls`).

    Relative paths in the task family's path parameters are resolved against the file's directory, so the
    returned spec works from any working directory (`resolve_paths=False` keeps them as written). `kind_fields`:
    see `validate_tree`.

    Raises:
        SpecError: with every problem of the file, each located `path:line:col` with a hint.
    """
    shown = str(path)
    syntax = syntax_of(shown)
    if Path(shown).is_dir():
        raise SpecError("this is a directory, not a spec file", loc=Loc(shown), hint="give a .yaml or .nls file")
    if syntax is None:
        raise SpecError(f"unknown spec file extension '{Path(shown).suffix}'", loc=Loc(shown),
                        hint="name the file .yaml, .yml or .nls")
    text = read_spec_text(path)
    return parse_spec(text, shown, syntax, base_dir=Path(shown).resolve().parent, resolve_paths=resolve_paths,
                      kind_fields=kind_fields)
