"""Program files: the text form of learned discrete programs, its AST, parser and canonical printer.

A program file holds one program per task, written in the token language of one trained model, for people to
read, diff, edit by hand and replay with `nlic run`.

Format (version 1; `#` starts a comment that runs to the end of the line; one statement per line)::

    nlic-programs 1
    language "shift_l" fingerprint 3f2a9c1e7b04d2aa
    vocab 16 skip t0 max_length 16

    alias t3 = shift1
    alias t5 = shift2
    alias shift3 = shift1 shift2

    program task_0001 = shift1 shift1 t5 [fit=1.0 loglik=-0.0132 search=gradient steps=50]
    program task_0002 = shift3 shift3 t7
    program "task with spaces" = t7
    program identity_task =

- Line 1: the format version. Line 2: the spec name of the language and (optional) the fingerprint of its
  trained weights and spec; `nlic run` refuses a file whose fingerprint is not the run's. Without a
  fingerprint (a file written by hand), only the language name, vocabulary, skip token and maximum length
  are checked. Line 3: codebook size K, the skip (no-op) token and the maximum program length.
- `alias t<id> = name` gives token t<id> a readable name, used everywhere in the file (tokens may be written
  either way); `alias name = t<id>` says the same. A name may not look like a token (`t12`), and each token and
  name has at most one alias.
- `alias name = WORD WORD ...` (a macro) names a sequence of tokens: above, `shift3` is `t3 t5`, and
  `task_0002` is `t3 t5 t3 t5 t7`. Each WORD is a token, a token's alias, or a macro defined on an earlier
  line (its tokens are copied in, so macros cannot refer to themselves); skip tokens are dropped, and what is
  left must be 2 to max_length tokens. Macro names share one namespace with token aliases. Programs may use
  any macro of the file; they hold the expanded tokens (`Program.tokens`), and max_length applies to those.
- `program ID = TOKENS [METADATA]`: ID is a bare word of letters, digits and `_ - . # /` (not starting with
  `#`), or a double-quoted JSON string. TOKENS are `t<id>`, alias names or macro names, executed left to
  right; skip tokens may be written but are dropped, and an empty program is the identity. METADATA is optional
  `key=value` fields (numbers, words or quoted strings): `fit` (fraction of spec pairs reproduced), `loglik`,
  `search`, `steps`, `starts` (an enumeration: `depth`), and `colours` for languages trained on canonical colours
  (`task.colours: canonical`: the task's own colour of each canonical colour 1, 2, ..., which `nlic run` maps
  through)...
- Canonical form (what `format_programs` writes): header, a blank line, aliases sorted by token, then macros in
  definition order with their tokens written out (by alias where a token has one, never by another macro), a
  blank line, programs in file order; metadata keys sorted; no comments. A program's tokens are abbreviated by
  the macros, greedily from the left: at each position the longest macro whose tokens follow (of equal ones,
  the first defined), else the token, by its alias if any.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import lark
import numpy as np

from nlic.grammar.errors import Diagnostic, Loc, ProgramError, ProgramSyntaxError, did_you_mean
from nlic.grammar.lark_grammar import load_grammar
from nlic.grammar.reading import MAX_NUMBER_DIGITS, MAX_PROGRAM_BYTES, decode_utf8, read_bytes
from nlic.grammar.tree import unpaired_surrogate

__all__ = [
    "FORMAT_VERSION",
    "Header",
    "Alias",
    "Macro",
    "Program",
    "ProgramFile",
    "parse_programs",
    "load_programs",
    "decode_text",
    "format_programs",
    "token_name",
]

FORMAT_VERSION = 1

MetaValue = int | float | str

_TOKEN_RE = re.compile(r"t[0-9]+")
_BARE_ID_RE = re.compile(r"[A-Za-z0-9_.\/\-][A-Za-z0-9_.#\/\-]*")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Tokens that macros may add to one file by expansion, programs and macro bodies together: a few lines of
# macros of macros would otherwise expand to billions of tokens (the header's max_length need not be small).
_MAX_EXPANDED = 1 << 24


def _loc_field() -> Any:
    # Locations say where a node was read; they are not part of its meaning, so equality ignores them
    # (parse -> print -> parse gives equal files although positions move).
    return dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Header:
    """The first three lines: format version, language identity and token alphabet.

    Attributes:
        version: format version (`FORMAT_VERSION`).
        language: spec name of the language.
        fingerprint: hex fingerprint of the trained weights and spec, or None in a hand-written file.
        vocab: codebook size K (token ids are 0..K-1).
        skip: id of the skip (no-op) token.
        max_length: most non-skip tokens a program may have.
    """

    version: int
    language: str
    fingerprint: str | None
    vocab: int
    skip: int
    max_length: int
    loc: Loc | None = _loc_field()
    line_locs: tuple[Loc, Loc, Loc] | None = _loc_field()  # the version, language and vocab lines

    def line_loc(self, index: int) -> Loc | None:
        """Location of header line `index` (0: version, 1: language, 2: vocab), if it was read from text."""
        return self.line_locs[index] if self.line_locs else self.loc


@dataclasses.dataclass(frozen=True)
class Alias:
    """`alias t<token> = name`."""

    token: int
    name: str
    loc: Loc | None = _loc_field()


@dataclasses.dataclass(frozen=True)
class Macro:
    """`alias name = t1 t2 ...`: a name for a sequence of tokens that programs may use in its place.

    Attributes:
        name: the macro's name (letters, digits and `_`, not `t<number>`).
        tokens: its token ids, expanded (no other macro, no skip token), at least 2 and at most `max_length`.
    """

    name: str
    tokens: tuple[int, ...]
    loc: Loc | None = _loc_field()


@dataclasses.dataclass(frozen=True)
class Program:
    """One task's program: token ids without skip tokens, and sorted metadata fields."""

    id: str
    tokens: tuple[int, ...]
    meta: tuple[tuple[str, MetaValue], ...] = ()
    loc: Loc | None = _loc_field()
    token_locs: tuple[Loc, ...] | None = _loc_field()

    def field(self, key: str, default: Any = None) -> Any:
        """A metadata value, or `default`."""
        return dict(self.meta).get(key, default)


@dataclasses.dataclass(frozen=True)
class ProgramFile:
    """A parsed program file (see the module docstring for the format).

    Attributes:
        header: the first three lines.
        aliases: token aliases, sorted by token.
        programs: the programs in file order, their tokens expanded (macros replaced by their tokens).
        macros: the macros in definition order; they only change how programs are written.
        path: the file it was read from, if any.
    """

    header: Header
    aliases: tuple[Alias, ...] = ()
    programs: tuple[Program, ...] = ()
    macros: tuple[Macro, ...] = ()
    path: str | None = _loc_field()

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.programs)

    @functools.cached_property
    def _by_id(self) -> dict[str, Program]:
        # Replays look programs up once per input; a dict keeps that linear in the number of inputs.
        return {p.id: p for p in self.programs}

    def __contains__(self, program_id: object) -> bool:
        return program_id in self._by_id

    def get(self, program_id: str, *, loc: Loc | None = None) -> Program:
        """The program with this id; a `ProgramError` naming close ids otherwise."""
        if program_id in self._by_id:
            return self._by_id[program_id]
        raise ProgramError(
            f"no program '{program_id}' in {self.path or 'the program file'}",
            loc=loc,
            hint=did_you_mean(program_id, self.ids, most=20) if self.programs else "the file has no programs",
        )

    def with_macros(self, macros: Sequence[Macro]) -> ProgramFile:
        """This file with `macros` (in this order) in place of its macros; programs are unchanged, and
        `format_programs` writes them abbreviated by the new macros.

        Args:
            macros: the macros, each named by a word that is neither a token (`t12`), a token's alias nor
                another macro's name, with 2 to `max_length` tokens of the vocabulary, none of them skip.

        Raises:
            ProgramError: a macro breaks one of these rules (every problem at once, each with a hint).
        """
        h = self.header
        aliases = {a.name: a.token for a in self.aliases}
        seen: set[str] = set()
        diags = []
        for m in macros:
            problems = []
            if not _NAME_RE.fullmatch(m.name):
                problems.append((f"macro name '{m.name}' is not a name",
                                 "use letters, digits and '_', not starting with a digit"))
            elif _TOKEN_RE.fullmatch(m.name):
                problems.append(_shadows(m.name))
            elif m.name in aliases:
                problems.append((f"macro name '{m.name}' is the alias of {token_name(aliases[m.name])}",
                                 "give the macro another name"))
            elif m.name in seen:
                problems.append((f"duplicate macro '{m.name}'", "give each macro its own name"))
            seen.add(m.name)
            outside = [t for t in m.tokens if not 0 <= t < h.vocab]
            if outside:
                problems.append((f"macro '{m.name}' uses token {token_name(outside[0])}, outside the vocabulary "
                                 f"of {h.vocab} tokens", f"use t0..t{h.vocab - 1}"))
            if h.skip in m.tokens:
                problems.append((f"macro '{m.name}' holds the skip token {token_name(h.skip)}",
                                 "leave skip tokens out of macros"))
            if not 2 <= len(m.tokens) <= h.max_length:
                problems.append(_bad_length(m.name, len(m.tokens), h.max_length, m.tokens[0] if m.tokens else 0))
            diags += [Diagnostic(m.loc, message, hint) for message, hint in problems]
        if diags:
            raise ProgramError(diagnostics=diags)
        return dataclasses.replace(self, macros=tuple(macros))

    def token_name(self, token: int) -> str:
        """The alias of `token`, or `t<token>`."""
        for a in self.aliases:
            if a.token == token:
                return a.name
        return token_name(token)

    def array(self, ids: Sequence[str] | None = None, length: int | None = None) -> np.ndarray:
        """Programs as int32 [n, length] token ids, padded with the skip token (executor input).

        Args:
            ids: program ids in the wanted order (all programs, in file order, when None).
            length: padded length (the header's `max_length` when None); must fit every program.
        """
        length = self.header.max_length if length is None else length
        programs = self.programs if ids is None else [self.get(i) for i in ids]
        out = np.full((len(programs), length), self.header.skip, np.int32)
        for row, p in enumerate(programs):
            if len(p.tokens) > length:
                raise ProgramError(
                    f"program '{p.id}' has {len(p.tokens)} tokens, more than {length}",
                    loc=p.loc,
                    hint=f"shorten it to at most {length} tokens",
                )
            out[row, : len(p.tokens)] = p.tokens
        return out


def token_name(token: int) -> str:
    """Canonical text of a token id: `t<id>`."""
    return f"t{int(token)}"


def _shadows(name: str) -> tuple[str, str]:
    """Message and hint for a macro named like a token."""
    return f"macro name '{name}' shadows token {name}", "choose a name that is not t<number>"


def _bad_length(name: str, length: int, max_length: int, first: int) -> tuple[str, str]:
    """Message and hint for a macro of `length` tokens (outside 2..max_length); `first` is its first token."""
    if length > max_length:
        return (f"macro '{name}' has {length} tokens, more than max_length {max_length}",
                f"a macro must fit in a program: give it at most {max_length} tokens")
    if length == 0:
        return f"macro '{name}' has no tokens", "give it at least 2 tokens (skip tokens do not count)"
    return (f"macro '{name}' has 1 token, and a macro has at least 2",
            f"add tokens, or name the one token with `alias {token_name(first)} = {name}`")


# --- parsing ---------------------------------------------------------------------------------------------------

# What the user sees instead of lark's terminal names in "expected ..." messages.
_READABLE = {
    "MAGIC": "'nlic-programs'",
    "NAME": "a token (t3), alias or macro name",
    "HEX": "a lowercase hex fingerprint",
    "INT": "a whole number",
    "NUMBER": "a number",
    "ID": "a program id",
    "STRING": "a quoted string",
    "_NL": "end of line",
    "$END": "end of file",
    "EQUAL": "'='",
    "LSQB": "'['",
    "RSQB": "']'",
    "LANGUAGE": "'language'",
    "FINGERPRINT": "'fingerprint'",
    "VOCAB": "'vocab'",
    "SKIP": "'skip'",
    "MAX_LENGTH": "'max_length'",
    "ALIAS": "'alias'",
    "PROGRAM": "'program'",
}

_HEADER_HINT = "a program file starts with `nlic-programs 1`, `language \"NAME\" fingerprint HEX`, `vocab K skip t0 max_length N`"


def _parser() -> lark.Lark:
    return load_grammar("program", positions=True)


def _readable(names: Iterable[str]) -> str:
    out = sorted({_READABLE.get(n, repr(n.lower())) for n in names if not n.startswith("__")})
    return ", ".join(out) if out else "nothing"


def _describe(token: lark.Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "_NL":
        return "end of line"
    return f"'{token}'"


def _syntax_error(e: lark.exceptions.LarkError, text: str, path: str) -> ProgramSyntaxError:
    end = len(text.rstrip())
    if isinstance(e, lark.UnexpectedCharacters):
        loc = Loc(path, e.line, e.column)
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        if ch == '"':
            return ProgramSyntaxError(
                "unterminated string", loc=loc, hint="close the string with '\"' on the same line"
            )
        if "MAGIC" in (e.allowed or ()):
            return ProgramSyntaxError("this is not an nlic program file", loc=loc, hint=_HEADER_HINT)
        shown = repr(ch) if ch.isprintable() else f"character {ch!r}"
        return ProgramSyntaxError(
            f"unexpected {shown}", loc=loc, hint="expected " + _readable(e.allowed or ())
        )
    if isinstance(e, (lark.UnexpectedToken, lark.UnexpectedEOF)):
        token = getattr(e, "token", None)
        expected = e.expected if isinstance(e, lark.UnexpectedToken) else e.expected
        at_end = token is None or token.type == "$END" or (
            token.start_pos is not None and token.start_pos >= end
        )
        if at_end:
            line = text.count("\n", 0, end) + 1
            col = end - (text.rfind("\n", 0, end) + 1) + 1
            return ProgramSyntaxError(
                "unexpected end of file",
                loc=Loc(path, line, col),
                hint=f"the file looks truncated: expected {_readable(expected)}",
            )
        loc = Loc(path, token.line, token.column)
        if token.line == 1 and "MAGIC" in expected:
            return ProgramSyntaxError("this is not an nlic program file", loc=loc, hint=_HEADER_HINT)
        return ProgramSyntaxError(
            f"unexpected {_describe(token)}", loc=loc, hint="expected " + _readable(expected)
        )
    return ProgramSyntaxError(str(e), loc=Loc(path))


def decode_text(data: bytes, path: str) -> str:
    """UTF-8 text of a program file's bytes.

    Raises:
        ProgramSyntaxError: binary (NUL bytes) or non-UTF-8 data, located at the first bad byte.
    """
    return decode_utf8(data, path, what="program file", error=ProgramSyntaxError,
                       binary="binary file, not a program file", not_utf8="not UTF-8 text")


def parse_programs(text: str, path: str = "<programs>") -> ProgramFile:
    """Parses program-file text, reporting every semantic problem at once.

    Args:
        text: the file's text.
        path: file name used in error locations.

    Returns:
        The `ProgramFile`; skip tokens are dropped and aliases resolved to token ids.

    Raises:
        ProgramSyntaxError: the text does not follow the grammar (or is empty).
        ProgramError: it parses but is inconsistent (unknown token or alias, duplicate ids, too long...).
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise ProgramSyntaxError("empty program file", loc=Loc(path, 1, 1), hint=_HEADER_HINT)
    source = text if text.endswith("\n") else text + "\n"
    fast = _parse_fast(source, path)
    if isinstance(fast, ProgramFile):
        return fast
    if fast is not None:
        _diagnose(source, path, *fast)  # raises where the lines the fast path could not take hold the problems
    try:
        tree = _parser().parse(source)
    except lark.exceptions.LarkError as e:
        raise _syntax_error(e, source, path) from None
    return _Builder(path).build(tree)


# --- the fast path ---------------------------------------------------------------------------------------------
# lark parses some 10^4-10^5 tokens/s, and a program line has about 30: a file of 100k programs took minutes.
# Program lines of the shapes the grammar allows with blanks between tokens (what `format_programs` writes, with
# any spacing and a trailing comment) are read by one regex each instead, mirroring program.lark's terminals;
# lark parses the rest (header, aliases, comments) with those lines blanked, so that line numbers stay. Whatever
# the fast path is not sure of (a program line the regex does not take, or anything to diagnose) sends the whole
# file through lark and `_Builder`, so the result and every error are the same either way
# (tests/test_hostile_inputs.py compares the two paths).

_W = r"[\t ]*"
_WORD = r"[A-Za-z_][A-Za-z0-9_]*(?![A-Za-z0-9_])"  # NAME, never split in two by backtracking
_STRING_LIT = r'"(?:[^"\\\n]|\\[^\n])*"'
_NUMBER_LIT = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?(?![A-Za-z0-9_.\-])"
_FIELD = f"(?P<key>{_WORD}){_W}={_W}(?:(?P<number>{_NUMBER_LIT})|(?P<word>{_WORD})|(?P<string>{_STRING_LIT}))"
_FIELD_RE = re.compile(_FIELD)
_FAST_VOCAB = 1 << 16  # larger vocabularies (no spec allows one) take the lark path
_WORD_RE = re.compile(_WORD)
_INT_LIT = re.compile(r"-?[0-9]+")
_PROGRAM_LINE = re.compile(
    f"{_W}(?P<kw>program)[\\t ]+(?P<id>[A-Za-z0-9_.\\/\\-][A-Za-z0-9_.#\\/\\-]*|{_STRING_LIT}){_W}="
    f"(?P<tokens>(?:{_W}{_WORD})*){_W}(?:\\[(?P<meta>(?:{_W}{_FIELD})*){_W}\\]{_W})?(?:#[^\\n]*)?"
)


def _diagnose(source: str, path: str, suspects: set[int], fine: set[int]) -> None:
    """Raise the diagnostics of a file whose program lines `fine` the fast path read and `suspects` it could not:
    lark and `_Builder` see the file without the fine program lines, so that one bad line in a million costs
    about as much as reading it. Returns if that finds nothing (a problem that needs the whole file)."""
    lines = source.split("\n")
    for n in fine - suspects:
        lines[n - 1] = ""
    try:
        tree = _parse_lines(lines)
    except lark.exceptions.LarkError as e:
        raise _syntax_error(e, source, path) from None
    _Builder(path).build(tree)


def _parse_lines(lines: list[str]) -> lark.Tree:
    """lark's tree of `lines`, some blanked (line numbers stay). lark's line-break terminal costs ~10 us per blank
    line it swallows: the blanked lines after the last line lark must see are left out (there are none after the
    programs in a file `nlic solve` wrote)."""
    last = max((n for n, line in enumerate(lines, 1) if line.strip()), default=1)
    return _parser().parse("\n".join(lines[:last]) + "\n")


def _parse_fast(source: str, path: str) -> ProgramFile | tuple[set[int], set[int]] | None:
    """The `ProgramFile` of `source` when every program line has a regular shape and nothing needs a
    diagnostic. Where only some program lines need one (or a look by lark), the numbers of those lines and of the
    program lines read, for `_diagnose`; None where anything else does (then `parse_programs` parses with lark)."""
    lines = source.split("\n")
    matches: list[tuple[int, re.Match[str]]] = []
    for n, line in enumerate(lines, 1):
        m = _PROGRAM_LINE.fullmatch(line) if "program" in line else None
        if m is not None:
            matches.append((n, m))
            lines[n - 1] = ""
    if not matches:
        return None
    try:
        tree = _parse_lines(lines)
    except lark.exceptions.LarkError:
        # A syntax error outside the program lines read: `_diagnose` reports it from the same text.
        return set(), {n for n, _ in matches}
    header_tree, *statements = tree.children
    if matches[0][0] <= header_tree.meta.end_line:
        return None
    # Program lines of shapes the regex does not take: lark's, and suspects for `_diagnose`; with their ids, so that
    # a line read below with one of them goes to `_diagnose` too (the builder names duplicate ids).
    suspects = {s.meta.line for s in statements if s.data == "program"}
    suspect_ids = {_raw_id(str(s.children[0].children[0])) for s in statements if s.data == "program"}
    builder = _Builder(path)
    header = builder.header(header_tree)
    aliases, defined = builder.definitions([s for s in statements if s.data == "alias"], header)
    if builder.syntax or builder.errors:
        return None
    if header.vocab > _FAST_VOCAB:
        return None
    # Every word a program may use, to its token id: t0..t<vocab-1> and the aliases; macros to their tokens.
    words = {token_name(t): t for t in range(header.vocab)} | {a.name: a.token for a in aliases}
    macros = tuple(m for m in defined.values() if m is not None)
    bodies = {m.name: m.tokens for m in macros}
    budget = _MAX_EXPANDED - builder.expanded
    programs = []
    seen: dict[str, int] = {}
    for n, m in matches:
        read = _fast_program(path, n, m, header, words, bodies, budget)
        if read is None:
            suspects.add(n)
            suspect_ids.add(_raw_id(m.group("id")))
            continue
        program, expanded = read
        if program.id in seen:  # both lines, so that the builder names the first
            suspects.update((n, seen[program.id]))
            continue
        budget -= expanded
        seen[program.id] = n
        programs.append(program)
    if suspects:
        suspects.update(n for pid, n in seen.items() if pid in suspect_ids)
        return suspects, {n for n, _ in matches}
    return ProgramFile(header, tuple(sorted(aliases, key=lambda a: a.token)), tuple(programs), macros, path)


def _fast_program(path: str, n: int, m: re.Match[str], header: Header, words: dict[str, int],
                  bodies: dict[str, tuple[int, ...]], budget: int) -> tuple[Program, int] | None:
    """The program of line `n` as `_Builder.program` makes it, and how many tokens its macros added (at most
    `budget`); None where the builder would diagnose something (or for a token it reads another way, such as
    `t01`)."""
    raw = m.group("id")
    pid = _fast_string(raw) if raw.startswith('"') else raw
    if not pid:
        return None
    tokens, locs = [], []
    expanded = 0
    base = m.start("tokens") + 1
    for w in _WORD_RE.finditer(m.group("tokens")):
        tid = words.get(w.group(), -1)
        if tid < 0:
            # Not a token: a macro (rare, so the common case above pays nothing for it), or an error.
            body = bodies.get(w.group())
            expanded += len(body) if body is not None else 0
            if body is None or expanded > budget or len(tokens) + len(body) > header.max_length:
                return None
            tokens += body
            locs += [Loc(path, n, base + w.start())] * len(body)
        elif tid != header.skip:
            tokens.append(tid)
            locs.append(Loc(path, n, base + w.start()))
    if len(tokens) > header.max_length:
        return None
    meta: dict[str, MetaValue] = {}
    for f in _FIELD_RE.finditer(m.group("meta") or ""):
        key, number, word, string = f.group("key", "number", "word", "string")
        value = _fast_number(number) if number is not None else word if word is not None else _fast_string(string)
        if value is None or key in meta:
            return None
        meta[key] = value
    program = Program(pid, tuple(tokens), tuple(sorted(meta.items())), Loc(path, n, m.start("kw") + 1), tuple(locs))
    return program, expanded


def _raw_id(literal: str) -> str:
    """A program id as written (quoted or not) to the id it names, or the literal itself where it does not read."""
    return (_fast_string(literal) or literal) if literal.startswith('"') else literal


def _fast_string(literal: str) -> str | None:
    """A quoted string's value, as `_Builder.string` reads it; None where it reports a problem."""
    try:
        value = json.loads(literal)
    except json.JSONDecodeError:
        return None
    return None if unpaired_surrogate(value) is not None else value


def _fast_number(literal: str) -> int | float | None:
    """A metadata number's value, as `_Builder.value` reads it; None where it reports a problem."""
    if len(literal) > MAX_NUMBER_DIGITS and max(map(len, re.findall(r"[0-9]+", literal))) > MAX_NUMBER_DIGITS:
        return None
    if _INT_LIT.fullmatch(literal):
        return int(literal)
    value = float(literal)
    return value if math.isfinite(value) else None


def load_programs(path: str | Path) -> ProgramFile:
    """Reads (at most `MAX_PROGRAM_BYTES`) and parses a program file (see `parse_programs`).

    Raises:
        ProgramSyntaxError: the file cannot be read (missing, a directory or device, too large) or does not
            parse. ProgramError: see `parse_programs`.
    """
    shown = str(path)
    data = read_bytes(path, limit=MAX_PROGRAM_BYTES, what="program file", error=ProgramSyntaxError,
                      hint="split the programs into several files")
    return parse_programs(decode_text(data, shown), shown)


def _loc(path: str, node: lark.Tree | lark.Token) -> Loc:
    if isinstance(node, lark.Token):
        return Loc(path, node.line, node.column)
    return Loc(path, node.meta.line, node.meta.column)


class _Builder:
    """Turns the lark tree into a `ProgramFile`, collecting all diagnostics before raising."""

    def __init__(self, path: str):
        self.path = path
        self.syntax: list[Diagnostic] = []
        self.errors: list[Diagnostic] = []
        self.expanded = 0  # tokens that macros added, against `_MAX_EXPANDED`

    def loc(self, node: lark.Tree | lark.Token) -> Loc:
        return _loc(self.path, node)

    def string(self, token: lark.Token) -> str:
        try:
            value = json.loads(str(token))
        except json.JSONDecodeError as e:
            loc = Loc(self.path, token.line, (token.column or 1) + e.pos) if token.line is not None else self.loc(token)
            if e.msg.startswith("Invalid control character"):
                char = str(token)[e.pos]
                self.syntax.append(Diagnostic(loc, f"a control character (U+{ord(char):04X}) inside a string",
                                              f"write it as the escape \\u{ord(char):04x}, or leave it out"))
            else:
                self.syntax.append(Diagnostic(loc, f"bad escape in string: {e.msg}", "write strings as JSON strings"))
            return str(token)[1:-1]
        surrogate = unpaired_surrogate(value)
        if surrogate is not None:  # no UTF-8 file could hold the string (a file nlic writes from it, say)
            self.syntax.append(Diagnostic(self.loc(token), f"string holds the unpaired surrogate {surrogate[0]}",
                                          "write the character itself, or both halves of its surrogate pair"))
            return surrogate[1]
        return value

    def number(self, token: lark.Token, text: str, default: int) -> int:
        """`int(text)` of a number in `token`; `default` (and a diagnostic) when it has too many digits to be
        anything nlic can use (Python would refuse to convert thousands of them)."""
        digits = len(text.lstrip("-"))
        if digits > MAX_NUMBER_DIGITS:
            self.syntax.append(Diagnostic(self.loc(token), f"a number of {digits} digits, more than the "
                                          f"{MAX_NUMBER_DIGITS} nlic reads", "write a smaller number"))
            return default
        return int(text)

    def token_id(self, token: lark.Token, vocab: int) -> int | None:
        """Id of a `t<id>` name, diagnosing ids out of the vocabulary; None for non-token names."""
        if not _TOKEN_RE.fullmatch(token):
            return None
        tid = self.number(token, str(token)[1:], 0)
        if tid >= vocab:
            self.errors.append(Diagnostic(
                self.loc(token), f"unknown token '{token}': the vocabulary has {vocab} tokens",
                f"use t0..t{vocab - 1}",
            ))
        return tid

    def build(self, tree: lark.Tree) -> ProgramFile:
        header_tree, *statements = tree.children
        header = self.header(header_tree)
        aliases, macros = self.definitions([s for s in statements if s.data == "alias"], header)
        by_name = {a.name: a.token for a in aliases}
        programs = []
        seen: dict[str, Loc] = {}
        for node in statements:
            if node.data != "program":
                continue
            program = self.program(node, header, by_name, macros)
            if program.id in seen:
                first = seen[program.id]
                self.errors.append(Diagnostic(
                    program.loc, f"duplicate program id '{program.id}' (first defined at line {first.line})",
                    "give every task's program a distinct id",
                ))
            else:
                seen[program.id] = program.loc
            programs.append(program)
        if self.syntax or self.errors:
            diags = sorted(self.syntax + self.errors, key=lambda d: (d.loc.line or 0, d.loc.col or 0))
            raise (ProgramSyntaxError if self.syntax else ProgramError)(diagnostics=diags)
        return ProgramFile(header, tuple(sorted(aliases, key=lambda a: a.token)), tuple(programs),
                           tuple(m for m in macros.values() if isinstance(m, Macro)), self.path)

    def header(self, node: lark.Tree) -> Header:
        version_line, language_line, vocab_line = node.children
        magic, version_tok = version_line.children
        version = self.number(version_tok, str(version_tok), FORMAT_VERSION)
        if version != FORMAT_VERSION:
            self.syntax.append(Diagnostic(
                self.loc(version_tok), f"unsupported program file version {version}",
                f"this nlic reads version {FORMAT_VERSION}",
            ))
        name = self.string(language_line.children[0])
        fingerprint = str(language_line.children[1]) if len(language_line.children) > 1 else None
        if fingerprint is not None and not re.fullmatch(r"[0-9a-f]+", fingerprint):
            self.syntax.append(Diagnostic(
                self.loc(language_line.children[1]), f"fingerprint '{fingerprint}' is not lowercase hex",
                "copy the fingerprint nlic solve wrote, or drop `fingerprint ...` in a hand-written file",
            ))
        vocab_tok, skip_tok, max_tok = vocab_line.children
        vocab, max_length = self.number(vocab_tok, str(vocab_tok), 2), self.number(max_tok, str(max_tok), 1)
        if vocab < 2:
            self.errors.append(Diagnostic(self.loc(vocab_tok), f"vocab {vocab} is too small", "a language has at least 2 tokens, one of them skip"))
            vocab = 2
        if max_length < 1:
            self.errors.append(Diagnostic(self.loc(max_tok), "max_length must be at least 1", None))
        skip = self.token_id(skip_tok, vocab)
        if skip is None:
            self.errors.append(Diagnostic(self.loc(skip_tok), f"skip must be a token like t0, not '{skip_tok}'", "aliases are not allowed in the header"))
            skip = 0
        lines = (self.loc(version_line), self.loc(language_line), self.loc(vocab_line))
        return Header(version, name, fingerprint, vocab, skip, max_length, self.loc(node), lines)

    def definitions(self, nodes: list[lark.Tree], header: Header) -> tuple[list[Alias], dict[str, Macro | None]]:
        """The token aliases and macros of the `alias` lines (in file order).

        Returns:
            The token aliases, and every macro name defined by a line to its `Macro`, or to None where the
            definition is diagnosed (so that uses of the name are not diagnosed again).
        """
        aliases: list[Alias] = []
        names: dict[str, Loc] = {}  # every alias and macro name, where it is defined: the first definition wins
        tokens: dict[int, Loc] = {}
        pending: list[tuple[lark.Tree, lark.Token, list[lark.Token]]] = []
        for node in nodes:
            left, *body = node.children
            loc = self.loc(node)
            if not body:
                self.errors.append(Diagnostic(
                    self.loc(left), f"alias '{left}' has nothing after '='",
                    f"name a token with `alias t3 = {left}`, or a sequence of tokens with `alias {left} = t1 t2`"
                    if not _TOKEN_RE.fullmatch(left) else f"write `alias {left} = NAME`",
                ))
                continue
            if len(body) == 1 and (_TOKEN_RE.fullmatch(left) or _TOKEN_RE.fullmatch(body[0])):
                # `alias t3 = shift1`, or the same written `alias shift1 = t3`.
                token, name = (left, body[0]) if _TOKEN_RE.fullmatch(left) else (body[0], left)
                tid = self.token_id(token, header.vocab)
                if _TOKEN_RE.fullmatch(name):
                    self.errors.append(Diagnostic(
                        self.loc(name), f"alias name '{name}' shadows token {name}",
                        "choose a name that is not t<number>",
                    ))
                    continue
                if self.taken(name, names):
                    continue
                if tid in tokens:
                    self.errors.append(Diagnostic(
                        self.loc(token), f"token {token} already has an alias (line {tokens[tid].line})",
                        "give each token at most one alias",
                    ))
                    continue
                names[str(name)] = loc
                tokens[tid] = loc
                aliases.append(Alias(tid, str(name), loc))
                continue
            if _TOKEN_RE.fullmatch(left):
                self.errors.append(Diagnostic(self.loc(left), *_shadows(str(left))))
                continue
            if not self.taken(left, names):
                names[str(left)] = loc
                pending.append((node, left, body))
        # Bodies may use every token alias, but only macros of earlier lines (so that no macro refers to itself).
        by_name = {a.name: a.token for a in aliases}
        macros: dict[str, Macro | None] = {}
        later = {str(name): self.loc(node) for node, name, _ in pending}
        for node, name, body in pending:
            out: list[int] = []
            broken = False
            for word in body:
                tid = self.token_id(word, header.vocab)
                if tid is None and word in by_name:
                    tid = by_name[str(word)]
                if tid is not None:
                    if tid != header.skip:
                        out.append(tid)
                    continue
                if word in macros:
                    expansion = self.expand(word, macros[str(word)])
                    broken = broken or expansion is None
                    out += expansion or ()
                    continue
                broken = True
                if word == name:
                    self.errors.append(Diagnostic(self.loc(word), f"macro '{word}' is used in its own definition",
                                                  "a macro cannot refer to itself: write its tokens"))
                elif word in later:
                    self.errors.append(Diagnostic(
                        self.loc(word), f"macro '{word}' is used before its definition (line {later[word].line})",
                        f"define '{word}' on a line above line {self.loc(node).line}",
                    ))
                else:
                    known = [*by_name, *macros]
                    self.errors.append(Diagnostic(
                        self.loc(word), f"unknown word '{word}' in macro '{name}'",
                        did_you_mean(str(word), known) if known else "write tokens as t<id>, or define "
                        f"`alias t<id> = {word}` or a macro `alias {word} = ...` above",
                    ))
            if not broken and not 2 <= len(out) <= header.max_length:
                self.errors.append(Diagnostic(self.loc(name), *_bad_length(str(name), len(out), header.max_length,
                                                                            out[0] if out else 0)))
                broken = True
            macros[str(name)] = None if broken else Macro(str(name), tuple(out), self.loc(node))
        return aliases, macros

    def taken(self, name: lark.Token, names: dict[str, Loc]) -> bool:
        """Whether an alias or macro `name` is already defined (and then diagnosed here)."""
        if name not in names:
            return False
        self.errors.append(Diagnostic(
            self.loc(name), f"duplicate alias '{name}' (first defined at line {names[str(name)].line})",
            "each alias and macro name can be used once",
        ))
        return True

    def expand(self, word: lark.Token, macro: Macro | None) -> tuple[int, ...] | None:
        """The tokens of `macro`, used at `word`, counted against the file's `_MAX_EXPANDED`; None where the
        macro was diagnosed or the count runs over (diagnosed here, once)."""
        if macro is None:
            return None
        self.expanded += len(macro.tokens)
        if self.expanded <= _MAX_EXPANDED:
            return macro.tokens
        if self.expanded - len(macro.tokens) <= _MAX_EXPANDED:
            self.errors.append(Diagnostic(
                self.loc(word), f"macros expand to more than {_MAX_EXPANDED} tokens in this file",
                "use fewer or shorter macros, or split the programs into several files",
            ))
        return None

    def program(self, node: lark.Tree, header: Header, by_name: dict[str, int],
                macros: dict[str, Macro | None]) -> Program:
        id_node, *rest = node.children
        id_token = id_node.children[0]
        pid = self.string(id_token) if id_token.type == "STRING" else str(id_token)
        loc = self.loc(node)
        if not pid:
            self.errors.append(Diagnostic(self.loc(id_token), "empty program id", "write a task id, e.g. task_0001"))
        meta_nodes = [c for c in rest if isinstance(c, lark.Tree)]
        tokens, locs = [], []
        for word in (c for c in rest if isinstance(c, lark.Token)):
            tid = self.token_id(word, header.vocab)
            if tid is None:
                if word in macros:
                    expansion = self.expand(word, macros[str(word)]) or ()
                    tokens += expansion
                    locs += [self.loc(word)] * len(expansion)
                    continue
                if word not in by_name:
                    known = [*by_name, *macros]
                    self.errors.append(Diagnostic(
                        self.loc(word), f"unknown alias '{word}'",
                        did_you_mean(str(word), known) if known else "define it with `alias t<id> = "
                        f"{word}` or write the token as t<id>",
                    ))
                    continue
                tid = by_name[str(word)]
            if tid == header.skip:
                continue
            tokens.append(tid)
            locs.append(self.loc(word))
        if len(tokens) > header.max_length:
            self.errors.append(Diagnostic(
                loc, f"program '{pid}' has {len(tokens)} tokens, more than max_length {header.max_length}",
                f"shorten it to at most {header.max_length} tokens",
            ))
        meta: dict[str, MetaValue] = {}
        for mnode in meta_nodes:
            for field in mnode.children:
                key, value = field.children
                if str(key) in meta:
                    self.errors.append(Diagnostic(self.loc(key), f"duplicate metadata field '{key}'", "write each field once"))
                    continue
                meta[str(key)] = self.value(value)
        return Program(pid, tuple(tokens), tuple(sorted(meta.items())), loc, tuple(locs))

    def value(self, node: lark.Tree) -> MetaValue:
        (token,) = node.children
        if node.data == "string":
            return self.string(token)
        if node.data == "word":
            return str(token)
        text = str(token)
        if re.fullmatch(r"-?[0-9]+", text):
            return self.number(token, text, 0)
        longest = max(re.findall(r"[0-9]+", text), key=len)
        if len(longest) > MAX_NUMBER_DIGITS:
            return float(self.number(token, longest, 0))  # diagnoses it
        value = float(text)
        if not math.isfinite(value):  # 1e999: no number prints back as it; `format_programs` writes "inf"
            self.syntax.append(Diagnostic(self.loc(token), f"number {text} is out of range",
                                          'write a finite number, or quote it ("inf") to keep it as text'))
            return 0.0
        return value


# --- printing --------------------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _program_id(pid: str) -> str:
    return pid if _BARE_ID_RE.fullmatch(pid) else _quote(pid)


def _value(value: MetaValue) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Non-finite numbers have no number syntax; they travel as strings.
        return repr(value) if math.isfinite(value) else _quote(repr(value))
    if _NAME_RE.fullmatch(value):
        return value
    return _quote(value)


def _abbreviator(macros: Sequence[Macro]) -> Callable[[list[int], dict[int, str]], list[str]]:
    """A function writing a program's tokens as words: at each position the longest macro whose tokens follow
    (of equal ones, the first defined), else the token (by its alias in `names`, if any)."""
    # A trie of the macros' tokens; key None holds the name of the macro that ends at a node.
    root: dict[int | None, Any] = {}
    for m in macros:
        node = root
        for t in m.tokens:
            node = node.setdefault(t, {})
        node.setdefault(None, m.name)

    def abbreviate(tokens: list[int], names: dict[int, str]) -> list[str]:
        words, i = [], 0
        while i < len(tokens):
            node, j, end, name = root, i, i + 1, None
            while j < len(tokens) and tokens[j] in node:
                node = node[tokens[j]]
                j += 1
                if None in node:
                    end, name = j, node[None]
            words.append(name if name is not None else names.get(tokens[i], token_name(tokens[i])))
            i = end
        return words

    return abbreviate


def format_programs(pf: ProgramFile) -> str:
    """Canonical text of a program file (see the module docstring); `parse_programs` reads it back equal."""
    h = pf.header
    fingerprint = f" fingerprint {h.fingerprint}" if h.fingerprint else ""
    lines = [
        f"nlic-programs {h.version}",
        f"language {_quote(h.language)}{fingerprint}",
        f"vocab {h.vocab} skip {token_name(h.skip)} max_length {h.max_length}",
    ]
    names = {a.token: a.name for a in pf.aliases}
    if pf.aliases or pf.macros:
        lines.append("")
        lines += [f"alias {token_name(a.token)} = {a.name}" for a in sorted(pf.aliases, key=lambda a: a.token)]
        lines += [f"alias {m.name} = " + " ".join(names.get(t, token_name(t)) for t in m.tokens) for m in pf.macros]
    if pf.programs:
        lines.append("")
    abbreviate = _abbreviator(pf.macros)
    for p in pf.programs:
        if pf.macros:
            body = " ".join(abbreviate([t for t in p.tokens if t != h.skip], names))
        else:
            body = " ".join(names.get(t, token_name(t)) for t in p.tokens if t != h.skip)
        line = f"program {_program_id(p.id)} ="
        if body:
            line += " " + body
        if p.meta:
            line += " [" + " ".join(f"{k}={_value(v)}" for k, v in sorted(p.meta)) + "]"
        lines.append(line)
    return "\n".join(lines) + "\n"
