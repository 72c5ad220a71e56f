"""The native spec front end: `.nls` text -> located tree, with `grammar/spec.lark` (LALR, strict).

Also parses single expressions (`exp(8 -> 0.5)`, `1..5`) for the YAML front end, so both syntaxes share one
expression grammar. Syntax errors become located `SpecError`s whose hint lists the expected tokens by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import lark
from lark import Token, Transformer

from nlic.grammar.errors import Diagnostic, Loc, SpecError
from nlic.grammar.lark_grammar import load_grammar
from nlic.grammar.tree import (
    MAX_DEPTH,
    Call,
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

__all__ = ["parse_nls", "parse_expression", "spec_grammar", "check_depth", "drop_duplicates"]

# What users see instead of terminal names in "expected ..." hints.
_READABLE = {
    "NAME": "a name",
    "NUMBER": "a number",
    "RANGE": "a range such as 1..5",
    "STRING": 'a "quoted string"',
    "ARROW": "'->'",
    "COLON": "':'",
    "COMMA": "','",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "$END": "end of file",
}
_SURROGATE_HINT = "write the character itself, or both halves of its surrogate pair (\\ud83d\\ude00)"


def spec_grammar(strict: bool | None = None) -> lark.Lark:
    """The compiled spec grammar (cached); start symbols `start` (a file) and `expression` (one value)."""
    return load_grammar("spec", strict=strict, start=("start", "expression"))


class _Build(Transformer):
    """Parse tree -> located tree nodes. String-escape problems are collected, not raised."""

    def __init__(self, path: str, line0: int = 1, col0: int = 1):
        super().__init__()
        self.path = path
        self.line0 = line0
        self.col0 = col0
        self.diagnostics: list[Diagnostic] = []

    def _pos(self, tok: Token) -> tuple[int, int]:
        return _shift(tok.line or 1, tok.column or 1, self.line0, self.col0)

    def _string(self, tok: Token) -> str:
        try:
            value = json.loads(tok)
        except ValueError as e:
            line, col = self._pos(tok)
            self.diagnostics.append(
                Diagnostic(Loc(self.path, line, col), f"bad escape in string {tok}: {e.msg}",
                           'use \\" \\\\ \\n \\t or \\uXXXX inside strings')
            )
            return str(tok)[1:-1]
        surrogate = unpaired_surrogate(value)
        if surrogate is not None:
            self.diagnostics.append(Diagnostic(Loc(self.path, *self._pos(tok)), f"string {tok} holds the unpaired "
                                               f"surrogate {surrogate[0]}", _SURROGATE_HINT))
            value = surrogate[1]
        return value

    def start(self, children: list) -> MappingNode:
        return MappingNode(tuple(children), 1, 1)

    def expression(self, children: list) -> Node:
        return children[0]

    def entry(self, children: list) -> Entry:
        (key, line, col), value = children[0], children[-1]
        return Entry(key, value, line, col)

    def key(self, children: list) -> tuple[str, int, int]:
        tok = children[0]
        text = self._string(tok) if tok.type == "STRING" else str(tok)
        return (text, *self._pos(tok))

    def block(self, children: list) -> MappingNode:
        return MappingNode(tuple(c for c in children if isinstance(c, Entry)), *self._pos(children[0]))

    def list(self, children: list) -> ListNode:
        items = tuple(c for c in children if not isinstance(c, Token))
        return ListNode(items, *self._pos(children[0]))

    def call(self, children: list) -> Call:
        args = tuple(c for c in children[1:] if not isinstance(c, Token))
        return Call(str(children[0]), args, *self._pos(children[0]))

    def range(self, children: list) -> Range:
        tok = children[0]
        return Range(*range_ends(str(tok)), *self._pos(tok), str(tok))

    def scalar(self, children: list) -> Scalar:
        tok = children[0]
        value = self._string(tok) if tok.type == "STRING" else type_plain_scalar(str(tok))
        return Scalar(value, str(tok), *self._pos(tok))


def _shift(line: int, col: int, line0: int, col0: int) -> tuple[int, int]:
    """Position inside an embedded string -> position in the file (the string starts at line0:col0)."""
    if line == 1:
        return line0, col0 + col - 1
    return line0 + line - 1, col


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _expected(names: set[str] | frozenset[str] | None) -> str | None:
    if not names:
        return None
    shown = sorted({_READABLE.get(n, n) for n in names})
    return "expected " + (shown[0] if len(shown) == 1 else "one of: " + ", ".join(shown))


def _syntax_error(e: lark.exceptions.LarkError, text: str, path: str, line0: int, col0: int) -> SpecError:
    """A lark error as a located `SpecError` naming what was found and what was expected."""
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        line, col = _shift(e.line, e.column, line0, col0)
        hint = _expected(e.allowed)
        if e.char == '"':
            hint = 'close the string with " on the same line'
        return SpecError(f"unexpected character {e.char!r}", loc=Loc(path, line, col), hint=hint)
    if isinstance(e, lark.exceptions.UnexpectedToken) and e.token.type != "$END":
        tok = e.token
        line, col = _shift(tok.line, tok.column, line0, col0)
        what = _READABLE.get(tok.type, tok.type)
        if tok.type in ("NAME", "NUMBER", "STRING", "RANGE"):
            what = f"{what.split(' ')[1]} {str(tok)!r}"  # "a name" -> "name 'x'"
        message = f"unexpected {what}"
        expected = e.expected
        if e.interactive_parser is not None:
            # LALR merges states, so `e.expected` can list tokens that fail after a reduction; `accepts()` tries
            # each one and keeps the ones that really fit here.
            expected = e.interactive_parser.accepts() or expected
        if tok.type in ("RBRACE", "RSQB", "RPAR") and "NUMBER" in (expected or ()):
            message = f"missing value before {what}"
        return SpecError(message, loc=Loc(path, line, col), hint=_expected(expected))
    if isinstance(e, (lark.exceptions.UnexpectedToken, lark.exceptions.UnexpectedEOF)):
        line, col = _shift(*_end_position(text), line0, col0)
        opened = _unclosed(text)
        if opened is not None:
            ch, at_line, at_col = opened
            at_line, at_col = _shift(at_line, at_col, line0, col0)
            closer = {"{": "}", "[": "]", "(": ")"}[ch]
            return SpecError(f"unexpected end of input: the '{ch}' at line {at_line}, column {at_col} is not closed",
                             loc=Loc(path, line, col), hint=f"close it with '{closer}'")
        return SpecError("unexpected end of input", loc=Loc(path, line, col), hint=_expected(e.expected))
    return SpecError(f"syntax error: {e}", loc=Loc(path, line0, col0))


def _brackets(text: str) -> Iterator[tuple[str, int, int]]:
    """Every bracket of `text` outside strings and `#` comments, with its line and column (1-based)."""
    line, col, in_string, in_comment, escaped = 1, 1, False, False, False
    for ch in text:
        if in_comment:
            in_comment = ch != "\n"
        elif in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch in '"\n':
                in_string = False
        elif ch == "#":
            in_comment = True
        elif ch == '"':
            in_string = True
        elif ch in "{[()]}":
            yield ch, line, col
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1


def _unclosed(text: str) -> tuple[str, int, int] | None:
    """The innermost bracket left open at the end of `text` (outside strings and comments), with its line and
    column; None where every bracket is closed."""
    stack: list[tuple[str, int, int]] = []
    for found in _brackets(text):
        if found[0] in "{[(":
            stack.append(found)
        elif stack:
            stack.pop()
    return stack[-1] if stack else None


def check_depth(text: str, path: str, line: int = 1, col: int = 1) -> None:
    """Refuse brackets nested deeper than `MAX_DEPTH` before any recursive walk can overflow the stack; `line`
    and `col`: where `text` starts in its file (a YAML scalar's place)."""
    depth = 0
    for ch, at_line, at_col in _brackets(text):
        if ch in "{[(":
            depth += 1
            if depth > MAX_DEPTH:
                where = Loc(path, line, col + at_col - 1) if at_line == 1 else Loc(path, line + at_line - 1, at_col)
                raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", loc=where,
                                hint="specs nest a few sections deep; check for unbalanced brackets")
        else:
            depth -= 1


def drop_duplicates(node: Node, path: str, diagnostics: list[Diagnostic]) -> Node:
    """The tree with each mapping's repeated keys removed (the first one wins); each repeat is reported."""
    if isinstance(node, MappingNode):
        seen: dict[str, Entry] = {}
        for e in node.entries:
            if e.key in seen:
                first = seen[e.key]
                diagnostics.append(Diagnostic(
                    Loc(path, e.line, e.col), f"duplicate key '{e.key}'",
                    f"it is already set at line {first.line}, column {first.col}; keep one"))
                continue
            seen[e.key] = Entry(e.key, drop_duplicates(e.value, path, diagnostics), e.line, e.col)
        return MappingNode(tuple(seen.values()), node.line, node.col)
    if isinstance(node, ListNode):
        return ListNode(tuple(drop_duplicates(i, path, diagnostics) for i in node.items), node.line, node.col)
    return node


def parse_nls(text: str, path: str = "<string>") -> tuple[Document, list[Diagnostic]]:
    """Parse native spec text into a located tree.

    Args:
        text: the file's text.
        path: shown in diagnostics.

    Returns:
        The document and the non-fatal diagnostics found while building it (duplicate keys, bad escapes).

    Raises:
        SpecError: on a syntax error (located, with the expected tokens) or too deep nesting.
    """
    check_depth(text, path)
    try:
        parsed = spec_grammar().parse(text, start="start")
    except lark.exceptions.LarkError as e:
        raise _syntax_error(e, text, path, 1, 1) from None
    build = _Build(path)
    root = build.transform(parsed)
    diagnostics = list(build.diagnostics)
    root = drop_duplicates(root, path, diagnostics)
    return Document(path, root), diagnostics


def parse_expression(text: str, path: str = "<string>", line: int = 1, col: int = 1) -> Node:
    """Parse one value written as text (a YAML scalar): `exp(8 -> 0.5)`, `const(1)`, `1..5`, `[1, 2]`.

    Args:
        text: the expression.
        path, line, col: where the text starts in its file, so errors point into it.

    Raises:
        SpecError: located at the offending character.
    """
    check_depth(text, path, line, col)
    try:
        parsed = spec_grammar().parse(text, start="expression")
    except lark.exceptions.LarkError as e:
        raise _syntax_error(e, text, path, line, col) from None
    build = _Build(path, line, col)
    node = build.transform(parsed)
    if build.diagnostics:
        raise SpecError(diagnostics=build.diagnostics)
    return node
