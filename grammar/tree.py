"""The located spec tree that both front ends (YAML and native `.nls`) produce, node for node.

Nodes are frozen dataclasses keeping 1-based line and column; positions do not take part in equality, so the
trees of the same spec written in the two syntaxes compare equal.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Union

__all__ = [
    "Scalar",
    "Range",
    "Call",
    "Entry",
    "MappingNode",
    "ListNode",
    "Node",
    "Document",
    "type_plain_scalar",
    "to_plain",
    "range_ends",
    "unpaired_surrogate",
    "MAX_DEPTH",
]

# Deeper nesting than this is refused before any recursive walk: real specs nest three levels.
MAX_DEPTH = 32

_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Past 64 bits every integer is refused by validation, which quotes the source text; this one stands for the
# literals Python will not convert at all (more than 4300 digits, `sys.get_int_max_str_digits`).
_BEYOND_INT64 = 2**64


def _pos() -> Any:
    return dataclasses.field(compare=False, default=0)


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A number, string, boolean or null. `text` is the source text (messages quote what the user wrote)."""

    value: str | int | float | bool | None
    text: str = dataclasses.field(compare=False, default="")
    line: int = _pos()
    col: int = _pos()


@dataclasses.dataclass(frozen=True)
class Range:
    """An inclusive integer range `lo..hi`; `text` is the source text (see `range_ends` for huge ends)."""

    lo: int
    hi: int
    line: int = _pos()
    col: int = _pos()
    text: str = dataclasses.field(compare=False, default="")


@dataclasses.dataclass(frozen=True)
class Call:
    """A call expression such as `exp(8 -> 0.5)`: a name and its arrow-separated arguments."""

    name: str
    args: tuple[Node, ...]
    line: int = _pos()
    col: int = _pos()


@dataclasses.dataclass(frozen=True)
class Entry:
    """One `key: value` entry of a mapping; the key keeps its own position for unknown-key errors."""

    key: str
    value: Node
    line: int = _pos()
    col: int = _pos()


@dataclasses.dataclass(frozen=True)
class MappingNode:
    """A mapping, entries in source order (duplicates are removed by the front ends, which report them)."""

    entries: tuple[Entry, ...]
    line: int = _pos()
    col: int = _pos()

    def get(self, key: str) -> Entry | None:
        for e in self.entries:
            if e.key == key:
                return e
        return None


@dataclasses.dataclass(frozen=True)
class ListNode:
    """A list of nodes."""

    items: tuple[Node, ...]
    line: int = _pos()
    col: int = _pos()


Node = Union[Scalar, Range, Call, MappingNode, ListNode]


@dataclasses.dataclass(frozen=True)
class Document:
    """A parsed spec file: its path (for messages) and its root node."""

    path: str
    root: Node


def type_plain_scalar(text: str) -> str | int | float | bool | None:
    """The value of an unquoted word, shared by both front ends so that they agree on types.

    Unlike YAML 1.1 (PyYAML), `1e-4` is a float and `yes`/`on` stay strings; numbers too large for a float
    become `inf` and are rejected by validation with their source text.
    """
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if _INT.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more digits than Python converts; out of range either way
            return float(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _literal_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts
        return -_BEYOND_INT64 if text.startswith("-") else _BEYOND_INT64


def range_ends(text: str) -> tuple[int, int]:
    """The ends of a range literal `lo..hi`; an end of thousands of digits becomes a number just beyond 64 bits
    (of its sign), which validation refuses as too large, quoting the literal."""
    lo, hi = text.split("..")
    return _literal_int(lo), _literal_int(hi)


def unpaired_surrogate(value: str) -> tuple[str, str] | None:
    """The first UTF-16 surrogate in a string as its escape (`\\ud800`), and the string with every surrogate
    replaced by U+FFFD; None if it has none.

    Quoted strings can write one (`"\\ud800"` without its partner), but no UTF-8 file can hold it: front ends
    report it (so that every spec and program prints to a file that can be saved) and go on with the
    replacement, so that no later message carries it.
    """
    m = _SURROGATE.search(value)
    if m is None:
        return None
    return f"\\u{ord(m.group()):04x}", _SURROGATE.sub("\ufffd", value)


def to_plain(node: Node) -> Any:
    """The tree without positions as plain Python values (for tests and debugging)."""
    if isinstance(node, Scalar):
        return node.value
    if isinstance(node, Range):
        return f"{node.lo}..{node.hi}"
    if isinstance(node, Call):
        return (node.name, tuple(to_plain(a) for a in node.args))
    if isinstance(node, ListNode):
        return [to_plain(i) for i in node.items]
    return {e.key: to_plain(e.value) for e in node.entries}
