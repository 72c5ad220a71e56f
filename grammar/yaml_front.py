"""The YAML spec front end: YAML text -> the same located tree as the native syntax, never `yaml.load`.

Composition with `yaml.SafeLoader` keeps node marks; scalars are typed by `type_plain_scalar` (shared with
`.nls`), and plain scalars that look like `exp(8 -> 0.5)` or `1..5` are parsed with the spec expression grammar.
"""

from __future__ import annotations

import re

import yaml

from nlic.grammar.errors import Diagnostic, Loc, SpecError
from nlic.grammar.spec_parser import parse_expression
from nlic.grammar.tree import (
    MAX_DEPTH,
    Document,
    Entry,
    ListNode,
    MappingNode,
    Node,
    Range,
    Scalar,
    range_ends,
    type_plain_scalar,
    unpaired_surrogate,
)

__all__ = ["parse_yaml"]

_RANGE = re.compile(r"[-+]?[0-9]+\.\.[-+]?[0-9]+")
_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*\(")
# Tags the safe resolver assigns on its own; an explicit tag (`!!python/object`, `!custom`) is refused.
_STANDARD_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}

_HINTS = (
    ("\t", "indent with spaces; YAML does not allow tabs"),
    ("'\\t'", "indent with spaces; YAML does not allow tabs"),
    ("mapping values are not allowed", "check the indentation (keys of one section line up), or quote a value "
     "that contains ': '"),
    ("could not find expected ':'", "each line of a section is 'key: value'"),
    ("found unexpected end of stream", "close the quote or bracket opened here"),
    ("expected a single document", "remove the '---' separators: a spec is one document"),
    ("did not find expected key", "check the indentation: keys of one section line up"),
)


def _loc(path: str, mark: yaml.Mark | None) -> Loc:
    if mark is None:
        return Loc(path, 1, 1)
    return Loc(path, mark.line + 1, mark.column + 1)


def _yaml_error(e: yaml.MarkedYAMLError, path: str) -> SpecError:
    mark = e.problem_mark or e.context_mark
    problem = e.problem or e.context or "invalid YAML"
    message = f"YAML: {problem}"
    if e.context and e.problem:
        message = f"YAML: {problem} ({e.context})"
    hint = next((h for key, h in _HINTS if key in problem or key in (e.context or "")),
                "check the indentation and quoting here")
    return SpecError(message, loc=_loc(path, mark), hint=hint)


_STR_TAG = "tag:yaml.org,2002:str"


def _prescan(text: str, path: str) -> set[tuple[int, int]]:
    """Refuse anchors, aliases, explicit tags and deep nesting from the event stream (which is not recursive),
    before composing: aliases can expand exponentially (billion laughs) and nesting can overflow the stack.

    Returns where (0-based line and column, as the composed nodes' marks) a scalar is tagged `!!str`: a string
    whatever it looks like (`!!str 5`), which the composed node no longer tells apart from a plain `1e-4`."""
    depth = 0
    strings: set[tuple[int, int]] = set()
    diagnostics: list[Diagnostic] = []
    aliased: set[str] = set()
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(ev, yaml.AliasEvent):
            if ev.anchor not in aliased:  # the first use of each is enough
                aliased.add(ev.anchor)
                diagnostics.append(Diagnostic(_loc(path, ev.start_mark),
                                              f"YAML alias '*{ev.anchor}' is not supported",
                                              "write the value out; specs allow no anchors or aliases"))
        elif isinstance(ev, yaml.NodeEvent) and ev.anchor is not None:
            diagnostics.append(Diagnostic(_loc(path, ev.start_mark), f"YAML anchor '&{ev.anchor}' is not supported",
                                          "write the value out; specs allow no anchors or aliases"))
        if isinstance(ev, yaml.ScalarEvent) and ev.tag == _STR_TAG:
            strings.add((ev.start_mark.line, ev.start_mark.column))
        if isinstance(ev, (yaml.ScalarEvent, yaml.CollectionStartEvent)) and ev.tag not in (None, "!"):
            if ev.tag not in _STANDARD_TAGS:
                diagnostics.append(Diagnostic(_loc(path, ev.start_mark), f"YAML tag '{ev.tag}' is not supported",
                                              "remove the tag; values are typed by the spec schema"))
        if isinstance(ev, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                diagnostics.append(Diagnostic(_loc(path, ev.start_mark), f"nesting deeper than {MAX_DEPTH} levels",
                                              "specs nest a few sections deep; check for unbalanced brackets"))
                break
        elif isinstance(ev, yaml.CollectionEndEvent):
            depth -= 1
    if diagnostics:
        raise SpecError(diagnostics=diagnostics)
    return strings


class _Convert:
    def __init__(self, path: str, strings: set[tuple[int, int]] = frozenset()):
        self.path = path
        self.strings = strings  # `_prescan`'s `!!str` scalars
        self.diagnostics: list[Diagnostic] = []

    def node(self, n: yaml.Node) -> Node:
        line, col = n.start_mark.line + 1, n.start_mark.column + 1
        if isinstance(n, yaml.MappingNode):
            return self.mapping(n, line, col)
        if isinstance(n, yaml.SequenceNode):
            return ListNode(tuple(self.node(i) for i in n.value), line, col)
        return self.scalar(n, line, col)

    def mapping(self, n: yaml.MappingNode, line: int, col: int) -> MappingNode:
        entries: dict[str, Entry] = {}
        for k, v in n.value:
            kl, kc = k.start_mark.line + 1, k.start_mark.column + 1
            if not isinstance(k, yaml.ScalarNode):
                self.diagnostics.append(Diagnostic(Loc(self.path, kl, kc), "a key must be a plain name",
                                                   "write 'name: value'"))
                continue
            key = self.check_text(k.value, kl, kc)
            if key in entries:
                first = entries[key]
                self.diagnostics.append(Diagnostic(
                    Loc(self.path, kl, kc), f"duplicate key '{key}'",
                    f"it is already set at line {first.line}, column {first.col}; keep one"))
                continue
            entries[key] = Entry(key, self.node(v), kl, kc)
        return MappingNode(tuple(entries.values()), line, col)

    def check_text(self, text: str, line: int, col: int) -> str:
        """`text`, after reporting what a double-quoted escape can write but no UTF-8 file can hold
        (`"\\ud800"`; see `unpaired_surrogate`)."""
        surrogate = unpaired_surrogate(text)
        if surrogate is None:
            return text
        self.diagnostics.append(Diagnostic(
            Loc(self.path, line, col), f"string holds the unpaired surrogate {surrogate[0]}",
            "write the character itself, or its 8-digit escape (\\U0001f600)"))
        return surrogate[1]

    def scalar(self, n: yaml.ScalarNode, line: int, col: int) -> Node:
        text = n.value
        if (n.start_mark.line, n.start_mark.column) in self.strings:  # `!!str 5`: the string "5"
            text = self.check_text(text, line, col)
            return Scalar(text, text, line, col)
        if n.style is not None:  # quoted or block scalars are strings, whatever they look like
            # Positions inside a quoted string count from its first character, after the quote.
            col += n.style in ("'", '"')
            text = self.check_text(text, line, col)
            return Scalar(text, text, line, col)
        if _RANGE.fullmatch(text):
            return Range(*range_ends(text), line, col, text)
        if _CALL.match(text):
            try:
                return parse_expression(text, self.path, line, col)
            except SpecError as e:
                self.diagnostics.extend(e.diagnostics)
                return Scalar(text, text, line, col)
        return Scalar(type_plain_scalar(text), text, line, col)


def parse_yaml(text: str, path: str = "<string>") -> tuple[Document, list[Diagnostic]]:
    """Parse YAML spec text into a located tree.

    Args:
        text: the file's text.
        path: shown in diagnostics.

    Returns:
        The document and the non-fatal diagnostics (duplicate keys, non-scalar keys, bad expressions).

    Raises:
        SpecError: on YAML syntax errors, anchors/aliases, explicit tags, several documents or deep nesting.
    """
    try:
        strings = _prescan(text, path)
        composed = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        raise _yaml_error(e, path) from None
    except yaml.YAMLError as e:  # reader errors (control characters) carry no mark object of the same kind
        mark = getattr(e, "position", None)
        loc = Loc(path, 1, 1)
        if mark is not None:
            before = text[:mark]
            loc = Loc(path, before.count("\n") + 1, mark - (before.rfind("\n") + 1) + 1)
        reason = getattr(e, "reason", None) or str(e).splitlines()[0]
        raise SpecError(f"YAML: {reason}", loc=loc, hint="remove control characters; a spec is plain text") from None
    if composed is None:
        return Document(path, MappingNode((), 1, 1)), []
    conv = _Convert(path, strings)
    root = conv.node(composed)
    return Document(path, root), conv.diagnostics
