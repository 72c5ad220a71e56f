"""The one error hierarchy of nlic, and source locations.

Every user-facing error is an `NlicError`; the CLI prints its diagnostics as `path:line:col: error: message (hint)`
and exits 2. Several diagnostics can travel in one error so that all problems of a file are reported at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Sequence

__all__ = [
    "Loc",
    "Diagnostic",
    "NlicError",
    "SpecError",
    "ProgramSyntaxError",
    "ProgramError",
    "DataError",
    "CheckpointError",
    "ArtifactError",
    "did_you_mean",
    "capped",
    "MAX_SHOWN",
    "escape",
]

# Characters that act on a terminal instead of showing: C0 and C1 controls (ESC starts colour and cursor
# sequences, U+009B is a one-byte CSI), DEL, and the Unicode line separators and bidirectional overrides that
# reorder what a reader sees; and lone surrogates (a file name's undecodable bytes), which no UTF-8 stream takes.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _visible(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with control characters made visible (`\\x1b`, `\\n`, `\\u202e`), safe to print to a terminal.

    Args:
        text: e.g. a message echoing a user's file name or task id.
        keep_newlines: keep line breaks (text that is multi-line by design).
    """
    if keep_newlines:
        return "\n".join(_INVISIBLE.sub(_visible, line) for line in text.split("\n"))
    return _INVISIBLE.sub(_visible, text)


@dataclasses.dataclass(frozen=True)
class Loc:
    """A place in a file: 1-based line and column. `path` may be a dotted path when there is no file."""

    path: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.col is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.col}"


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """One problem: where, what, and how to fix it."""

    loc: Loc | None
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        # Messages echo what the user wrote (file names, task ids, keys): escaped here, once for every error,
        # so that no input can move the cursor or recolour the terminal.
        where = f"{self.loc}: " if self.loc is not None else ""
        hint = f" ({self.hint})" if self.hint else ""
        return escape(f"{where}error: {self.message}{hint}")


MAX_SHOWN = 100
"""Most diagnostics an error prints (`NlicError.render`) and spec validation reports (`capped`)."""


def capped(diagnostics: Sequence[Diagnostic], limit: int = MAX_SHOWN) -> tuple[Diagnostic, ...]:
    """The first `limit` diagnostics, then one saying how many more there are (a file of garbage should not print
    a million lines); all of them where there are at most `limit`."""
    if len(diagnostics) <= limit:
        return tuple(diagnostics)
    last = diagnostics[limit - 1].loc
    more = Diagnostic(Loc(last.path) if last is not None else None,
                      f"{len(diagnostics) - limit} more errors not shown", "fix the ones above first")
    return (*diagnostics[:limit], more)


class NlicError(Exception):
    """Base of every error nlic reports to a user. Carries one or more diagnostics."""

    def __init__(
        self,
        message: str | None = None,
        *,
        loc: Loc | None = None,
        hint: str | None = None,
        diagnostics: Sequence[Diagnostic] | None = None,
    ):
        if diagnostics is None:
            if message is None:
                raise TypeError("NlicError needs a message or diagnostics")
            diagnostics = [Diagnostic(loc, message, hint)]
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__(self.render())

    def render(self) -> str:
        """The diagnostics, one per line, in `path:line:col: error: message (hint)` form: at most `MAX_SHOWN`
        of them, then how many more there are (a file of garbage should not print a million lines)."""
        # MAX_SHOWN + 1: diagnostics `capped` already (spec validation's) print as they are.
        shown = self.diagnostics if len(self.diagnostics) <= MAX_SHOWN + 1 else capped(self.diagnostics)
        return "\n".join(str(d) for d in shown)


class SpecError(NlicError, ValueError):
    """A spec file is malformed or inconsistent."""


class ProgramSyntaxError(NlicError, ValueError):
    """A program file does not parse."""


class ProgramError(NlicError, ValueError):
    """A program file parses but does not fit the language (unknown token, wrong fingerprint, too long)."""


class DataError(NlicError, ValueError):
    """A task or input data file is malformed or inconsistent with the model."""


class CheckpointError(NlicError, ValueError):
    """A checkpoint or run directory is corrupt, missing or belongs to another spec."""


class ArtifactError(NlicError, ValueError):
    """A build directory (exported executor) is corrupt, missing or mismatched."""


def did_you_mean(word: str, candidates: Iterable[str], *, most: int | None = None) -> str:
    """A hint naming the closest candidate, or listing all of them (at most `most`, and how many there are)."""
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if not candidates:
        return "nothing is allowed here"
    if most is not None and len(candidates) > most:  # a program file's thousand ids: the first few, and how many
        return f"expected one of: {', '.join(candidates[:most])}, ... ({len(candidates)} in all)"
    return "expected one of: " + ", ".join(candidates)
