"""Program files: the text form of learned discrete programs, its AST, parser and canonical printer.

A program file holds one program per task, written in the token language of one trained model, for people to
read, diff, edit by hand and replay with `nlic run`.

Format (version 1; `#` starts a comment that runs to the end of the line; one statement per line)::

    nlic-programs 1
    language "shift_l" fingerprint 3f2a9c1e7b04d2aa
    vocab 16 skip t0 max_length 16

    alias t3 = shift1
    alias t5 = shift2

    program task_0001 = shift1 shift1 t5 [fit=1.0 loglik=-0.0132 search=gradient steps=50]
    program "task with spaces" = t7
    program identity_task =

- Line 1: the format version. Line 2: the spec name of the language and (optional) the fingerprint of its
  trained weights and spec; `nlic run` refuses a file whose fingerprint is not the run's. Without a
  fingerprint (a file written by hand), only the language name, vocabulary, skip token and maximum length
  are checked. Line 3: codebook size K, the skip (no-op) token and the maximum program length.
- `alias t<id> = name` gives token t<id> a readable name, used everywhere in the file (tokens may be written
  either way). A name may not look like a token (`t12`), and each token and name has at most one alias.
- `program ID = TOKENS [METADATA]`: ID is a bare word of letters, digits and `_ - . # /` (not starting with
  `#`), or a double-quoted JSON string. TOKENS are `t<id>` or alias names, executed left to right; skip tokens
  may be written but are dropped, and an empty program is the identity. METADATA is optional `key=value`
  fields (numbers, words or quoted strings): `fit` (fraction of spec pairs reproduced), `loglik`, `search`,
  `steps`, `starts`...
- Canonical form (what `format_programs` writes): header, a blank line, aliases sorted by token, a blank line,
  programs in file order; tokens by their alias if any; metadata keys sorted; no comments.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import lark
import numpy as np

from nlic.grammar.errors import Diagnostic, Loc, ProgramError, ProgramSyntaxError, did_you_mean

__all__ = [
    "FORMAT_VERSION",
    "Header",
    "Alias",
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
    """A parsed program file (see the module docstring for the format)."""

    header: Header
    aliases: tuple[Alias, ...] = ()
    programs: tuple[Program, ...] = ()
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
            hint=did_you_mean(program_id, self.ids) if self.programs else "the file has no programs",
        )

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


# --- parsing ---------------------------------------------------------------------------------------------------

# What the user sees instead of lark's terminal names in "expected ..." messages.
_READABLE = {
    "MAGIC": "'nlic-programs'",
    "NAME": "a token (t3) or alias name",
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


def _has_interegular() -> bool:
    try:
        import interegular  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _parser() -> lark.Lark:
    text = resources.files("nlic.grammar").joinpath("program.lark").read_text(encoding="utf-8")
    # strict mode's terminal-collision check needs interegular (lark[interegular]); without it lark refuses
    # strict mode altogether, so fall back to the (still conflict-free) non-strict parser.
    return lark.Lark(
        text, parser="lalr", lexer="contextual", strict=_has_interegular(), propagate_positions=True,
        maybe_placeholders=False,
    )


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
    if b"\x00" in data:
        raise ProgramSyntaxError(
            "binary file, not a program file", loc=Loc(path), hint="program files are UTF-8 text written by nlic solve"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ProgramSyntaxError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x})", loc=Loc(path, line, col), hint="save the file as UTF-8"
        ) from None


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
    try:
        tree = _parser().parse(source)
    except lark.exceptions.LarkError as e:
        raise _syntax_error(e, source, path) from None
    return _Builder(path).build(tree)


def load_programs(path: str | Path) -> ProgramFile:
    """Reads and parses a program file (see `parse_programs`)."""
    path = Path(path)
    data = path.read_bytes()
    return parse_programs(decode_text(data, str(path)), str(path))


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

    def loc(self, node: lark.Tree | lark.Token) -> Loc:
        return _loc(self.path, node)

    def string(self, token: lark.Token) -> str:
        try:
            value = json.loads(str(token))
        except json.JSONDecodeError as e:
            self.syntax.append(Diagnostic(self.loc(token), f"bad escape in string: {e.msg}", "write strings as JSON strings"))
            return str(token)[1:-1]
        return value

    def token_id(self, token: lark.Token, vocab: int) -> int | None:
        """Id of a `t<id>` name, diagnosing ids out of the vocabulary; None for non-token names."""
        if not _TOKEN_RE.fullmatch(token):
            return None
        tid = int(str(token)[1:])
        if tid >= vocab:
            self.errors.append(Diagnostic(
                self.loc(token), f"unknown token '{token}': the vocabulary has {vocab} tokens",
                f"use t0..t{vocab - 1}",
            ))
        return tid

    def build(self, tree: lark.Tree) -> ProgramFile:
        header_tree, *statements = tree.children
        header = self.header(header_tree)
        aliases = self.aliases([s for s in statements if s.data == "alias"], header)
        by_name = {a.name: a.token for a in aliases}
        programs = []
        seen: dict[str, Loc] = {}
        for node in statements:
            if node.data != "program":
                continue
            program = self.program(node, header, by_name)
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
        return ProgramFile(header, tuple(sorted(aliases, key=lambda a: a.token)), tuple(programs), self.path)

    def header(self, node: lark.Tree) -> Header:
        version_line, language_line, vocab_line = node.children
        magic, version = version_line.children
        if int(version) != FORMAT_VERSION:
            self.syntax.append(Diagnostic(
                self.loc(version), f"unsupported program file version {int(version)}",
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
        vocab, max_length = int(vocab_tok), int(max_tok)
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
        return Header(int(version), name, fingerprint, vocab, skip, max_length, self.loc(node), lines)

    def aliases(self, nodes: list[lark.Tree], header: Header) -> list[Alias]:
        out: list[Alias] = []
        names: dict[str, Loc] = {}
        tokens: dict[int, Loc] = {}
        for node in nodes:
            left, right = node.children
            loc = self.loc(node)
            tid = self.token_id(left, header.vocab)
            if tid is None:
                self.errors.append(Diagnostic(
                    self.loc(left), f"'{left}' is not a token: an alias names a token, `alias t3 = shift1`",
                    "write the token on the left, the new name on the right",
                ))
                continue
            if _TOKEN_RE.fullmatch(right):
                self.errors.append(Diagnostic(
                    self.loc(right), f"alias name '{right}' shadows token {right}",
                    "choose a name that is not t<number>",
                ))
                continue
            if right in names:
                self.errors.append(Diagnostic(
                    self.loc(right), f"duplicate alias '{right}' (first defined at line {names[right].line})",
                    "each alias name can be used once",
                ))
                continue
            if tid in tokens:
                self.errors.append(Diagnostic(
                    self.loc(left), f"token {left} already has an alias (line {tokens[tid].line})",
                    "give each token at most one alias",
                ))
                continue
            names[str(right)] = loc
            tokens[tid] = loc
            out.append(Alias(tid, str(right), loc))
        return out

    def program(self, node: lark.Tree, header: Header, by_name: dict[str, int]) -> Program:
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
                if word not in by_name:
                    self.errors.append(Diagnostic(
                        self.loc(word), f"unknown alias '{word}'",
                        did_you_mean(str(word), by_name) if by_name else "define it with `alias t<id> = "
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
            return int(text)
        return float(text)


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


def format_programs(pf: ProgramFile) -> str:
    """Canonical text of a program file (see the module docstring); `parse_programs` reads it back equal."""
    h = pf.header
    fingerprint = f" fingerprint {h.fingerprint}" if h.fingerprint else ""
    lines = [
        f"nlic-programs {h.version}",
        f"language {_quote(h.language)}{fingerprint}",
        f"vocab {h.vocab} skip {token_name(h.skip)} max_length {h.max_length}",
    ]
    if pf.aliases:
        lines.append("")
        lines += [f"alias {token_name(a.token)} = {a.name}" for a in sorted(pf.aliases, key=lambda a: a.token)]
    if pf.programs:
        lines.append("")
    names = {a.token: a.name for a in pf.aliases}
    for p in pf.programs:
        body = " ".join(names.get(t, token_name(t)) for t in p.tokens if t != h.skip)
        line = f"program {_program_id(p.id)} ="
        if body:
            line += " " + body
        if p.meta:
            line += " [" + " ".join(f"{k}={_value(v)}" for k, v in sorted(p.meta)) + "]"
        lines.append(line)
    return "\n".join(lines) + "\n"
