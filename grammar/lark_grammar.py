"""The one way nlic builds a parser from one of its `.lark` grammars (package data): LALR, contextual lexer, and
lark's strict mode (terminal-collision checks) wherever interegular is installed, cached per process."""

from __future__ import annotations

import functools
import importlib.util
from importlib import resources

import lark

__all__ = ["load_grammar", "strict_available"]


def strict_available() -> bool:
    """Whether lark's strict mode can run: it needs interegular (the `lark[interegular]` extra); without it lark
    refuses strict mode altogether, and the (still conflict-free) non-strict LALR parser is used."""
    return importlib.util.find_spec("interegular") is not None


@functools.cache
def load_grammar(name: str, *, strict: bool | None = None, start: tuple[str, ...] = ("start",),
                 positions: bool = False) -> lark.Lark:
    """The LALR parser of `grammar/<name>.lark` (built once per process and set of options).

    Args:
        name: the grammar file's stem (`spec`, `program`).
        strict: lark's strict mode; None: where interegular is installed.
        start: start symbols.
        positions: propagate line and column to tree nodes.
    """
    text = resources.files("nlic.grammar").joinpath(f"{name}.lark").read_text(encoding="utf-8")
    return lark.Lark(text, parser="lalr", lexer="contextual", strict=strict_available() if strict is None else strict,
                     start=list(start), propagate_positions=positions, maybe_placeholders=False)
