"""Fuzzing campaign over nlic's three text grammars: spec YAML, native `.nls` specs and program files.

The properties (shared with `tests/test_fuzz.py`, which runs them briefly): random valid documents round-trip
(print -> parse gives an equal value, print -> parse -> print identical text), and random mutations of valid files
(byte flips, deletions, insertions, truncations, copied chunks) read from disk either parse, and then round-trip
too, or raise an `NlicError` whose every diagnostic is located in the file. Anything else, an exception of another
class or a round-trip mismatch, is a failure; the first few distinct ones are written to --out as reproducers.

Usage: python benchmarks/fuzz.py --minutes N [--grammar yaml|nls|programs|all] [--seed S] [--out DIR]
(N minutes per grammar; exits 1 if any failure was found.)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import re
import sys
import tempfile
import time
import traceback
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from nlic.compiler import FAMILIES, MODEL_KINDS, format_spec, load_spec, parse_spec
from nlic.compiler.families.colours import colours_of
from nlic.compiler.spec import DEEPENED_METHODS, IntRange, Schedule, SearchSpec, Spec, TrainingSpec
from nlic.compiler.validate import _Checker, _parse_tree, ignored_fields, replace_at, value_at
from nlic.grammar.errors import Loc, NlicError
from nlic.grammar.program import (
    Alias,
    Header,
    Macro,
    Program,
    ProgramFile,
    format_programs,
    load_programs,
    parse_programs,
)
from nlic.runtime.cli import guarded

__all__ = [
    "GRAMMARS",
    "Failure",
    "specs",
    "params_specs",
    "program_files",
    "mutations",
    "mutate",
    "spec_seeds",
    "program_seeds",
    "check_spec_roundtrip",
    "check_params_roundtrip",
    "check_programs_roundtrip",
    "check_spec_file",
    "check_program_file",
    "check_located",
    "main",
]

ROOT = Path(__file__).resolve().parent.parent
GRAMMARS = ("yaml", "nls", "programs")
EXTENSIONS = {"yaml": ".yaml", "nls": ".nls", "programs": ".nlp"}
_INT_LIMIT = 2**63 - 1  # the validator's bound on integers
# Diagnostics about a file as a whole (or a summary line) need no line number.
_WHOLE_FILE = re.compile(r"more errors not shown|binary file|directory|larger than|cannot read")


class Failure(AssertionError):
    """A property did not hold: an unlocated or non-`NlicError` exception, or a round-trip mismatch."""


# --- strategies: valid specs ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _TaskBase:
    task: Any  # TaskSpec of a shipped spec
    splits: tuple[str, ...]
    values: int  # the task's alphabet: language.values must be 0 or at least this
    grids: bool  # the task's values are grid colours (task.colours: canonical is allowed)
    curriculum: bool  # the family has easier training tasks (training.curriculum is allowed)


@functools.cache
def _task_bases() -> tuple[_TaskBase, ...]:
    """The task sections of the shipped specs, with their splits and alphabets (families check their own params,
    so generated specs reuse real ones)."""
    out = []
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        try:
            task = load_spec(path).task
            family = FAMILIES.get(task.family)
            params = dict(task.params)
            codec = family.codec(params)
            out.append(_TaskBase(task, tuple(family.splits(params)), codec.values, colours_of(codec) is not None,
                                 getattr(family, "curriculum", None) is not None))
        except NlicError:  # e.g. a family whose data is not on this machine
            continue
    if not out:
        raise RuntimeError(f"no valid spec in {ROOT / 'specs'} to take task sections from")
    return tuple(out)


def _finite(lo: float | None = None, hi: float | None = None) -> st.SearchStrategy[float]:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


def schedules(lo: float | None = None, above_zero: str | None = None,
              hi: float | None = None) -> st.SearchStrategy[Schedule]:
    """Any schedule the validator accepts (exp needs positive endpoints; const has start == end; `above_zero`, a
    field's metadata: "all" keeps every endpoint above 0, "start" the first; every endpoint within lo..hi)."""
    plain = _finite(lo, hi)
    positive = st.floats(min_value=max(lo or 0.0, 0.0), max_value=hi, exclude_min=True, allow_nan=False,
                         allow_infinity=False)
    start = positive if above_zero else plain
    end = positive if above_zero == "all" else plain
    return st.one_of(
        start.map(lambda x: Schedule("const", x, x)),
        st.builds(Schedule, st.sampled_from(("linear", "cosine")), start, end),
        st.builds(Schedule, st.just("exp"), positive, positive),
    )


def _value_strategy(tp: Any, meta: typing.Mapping[str, Any]) -> st.SearchStrategy:
    """Values of a spec field within its schema: the annotation plus metadata min/max/choices."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(meta.get("min", -_INT_LIMIT), meta.get("max", _INT_LIMIT))
    if tp is float:
        return _finite(meta.get("min"), meta.get("max"))
    if tp is Schedule:
        return schedules(meta.get("min"), meta.get("above_zero"), meta.get("max"))
    choices = meta.get("choices") or (args if origin is typing.Literal else ())
    if choices:
        return st.sampled_from(tuple(choices))
    if tp is str:
        return st.text()
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] is str:
        return st.lists(st.text(), unique=True).map(tuple)
    if origin is tuple and len(args) == 2 and typing.get_origin(args[0]) is tuple:
        return st.just(())  # free-form params: `specs` takes real ones, `params_specs` draws its own
    raise TypeError(f"no strategy for spec fields of type {tp}")


def _section(cls: type, **given_: st.SearchStrategy) -> st.SearchStrategy:
    """A section with every field drawn from its schema, except those given."""
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if f.name in given_:
            fields[f.name] = given_[f.name]
        elif dataclasses.is_dataclass(hints[f.name]) and hints[f.name] not in (Schedule, IntRange):
            fields[f.name] = _section(hints[f.name])
        else:
            fields[f.name] = _value_strategy(hints[f.name], f.metadata)
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


def _divisible(draw: Callable, arch: Any) -> Any:
    """The architecture with its width a multiple of its heads (4 <= width <= 4096)."""
    k = draw(st.integers(max(1, -(-4 // arch.heads)), 4096 // arch.heads))
    return dataclasses.replace(arch, width=arch.heads * k)


@functools.cache
def _schema_specs() -> st.SearchStrategy[Spec]:
    # Built once: hypothesis validates every new strategy object, which costs more than drawing from it.
    # At most MAX_NAME characters (validate refuses longer names, which cannot name a folder).
    return _section(Spec, name=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}", fullmatch=True))


@st.composite
def specs(draw: Callable) -> Spec:
    """A valid spec: every field drawn within the schema, then the cross-field rules of the validator made true
    (heads divide widths, max_length >= length, skip < vocab, the search fits the model kind and language, ...).
    Task sections come from the shipped specs."""
    base = draw(st.sampled_from(_task_bases()))
    spec = draw(_schema_specs())
    task = dataclasses.replace(spec.task, family=base.task.family, params=base.task.params,
                               train_split=draw(st.sampled_from(base.splits)),
                               colours=spec.task.colours if base.grids else "as_is")  # canonical needs grids
    lang = spec.language
    lang = dataclasses.replace(
        lang,
        max_length=draw(st.integers(lang.length, 1024)),
        skip_token=draw(st.integers(0, lang.vocab - 1)),
        values=draw(st.one_of(st.just(0), st.integers(max(base.values, 1), 65536))),
    )
    executor = _divisible(draw, spec.model.executor)
    executor = dataclasses.replace(executor, routing=executor.routing or executor.mirrors or executor.anchors)
    kind = draw(st.sampled_from(sorted(MODEL_KINDS.names())))
    model = dataclasses.replace(spec.model, kind=kind, inductor=_divisible(draw, spec.model.inductor),
                                executor=executor)
    search: SearchSpec = spec.search
    method = draw(st.sampled_from(sorted(MODEL_KINDS.get(kind).search_methods)))
    search = dataclasses.replace(
        search,
        method=method,
        deepen=search.deepen and method in DEEPENED_METHODS,
        depth=draw(st.integers(0, 64)),
        length=draw(st.one_of(st.just(0), st.integers(lang.length, lang.max_length))),
    )
    evals = dataclasses.replace(spec.eval, splits=tuple(draw(st.lists(st.sampled_from(base.splits), unique=True))))
    training = spec.training if base.curriculum else dataclasses.replace(spec.training, curriculum=0.0)
    if training.keep != "best" or training.eval_every <= 0 or training.lr_drop >= 1:  # what a rollback needs
        training = dataclasses.replace(training, rollback=0)
    if training.eval_every <= 0 and training.split_until != TrainingSpec().split_until:  # splits need evaluation
        training = dataclasses.replace(training, split_until=0.0)
    spec = dataclasses.replace(spec, task=task, language=lang, model=model, search=search, eval=evals,
                               training=training)
    for name in ignored_fields(spec):  # what the kind does not read stays at its default (the validator's rule)
        spec = replace_at(spec, name, value_at(Spec(), name))
    return spec


# Words that are keywords, types or numbers somewhere in the grammars: printers must quote some of them.
_AWKWARD_WORDS = ("true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", "nan", "inf", "-1", "1e5", "1..5",
                  "exp(1 -> 2)", "a b", "a: b", "# x", "- x", "&a", "*a", "!t", "|", ">", "'", '"', "\\", "{}", "[]",
                  "", " ", "\t", "\n", "\r", "\x85", "\u2028", "\ufeff", "\x00", "\x7f", "é", "😀", "a.b", "a-b", "a/b",
                  "program", "alias", "language", "vocab", "skip", "max_length", "fingerprint", "t3", "<<",
                  "k" * 1100, "é" * 200)
_texts = st.one_of(st.sampled_from(_AWKWARD_WORDS), st.text(), st.text(alphabet="ab-_./:#0 ", max_size=6))


def _param_scalars() -> st.SearchStrategy:
    return st.one_of(
        st.booleans(),
        st.integers(-_INT_LIMIT, _INT_LIMIT),
        _finite(),
        _texts,
        st.tuples(st.integers(-_INT_LIMIT, _INT_LIMIT), st.integers(0, 2**32)).map(
            lambda t: IntRange(t[0], min(t[0] + t[1], _INT_LIMIT))),
        schedules(),
    )


def _params() -> st.SearchStrategy:
    values = st.one_of(_param_scalars(), st.lists(_param_scalars(), max_size=4).map(tuple))
    return st.dictionaries(_texts, values, max_size=5).map(lambda d: tuple(sorted(d.items())))


@st.composite
def params_specs(draw: Callable) -> Spec:
    """A valid spec whose task params are free-form (any keys; numbers, strings, booleans, ranges, schedules and
    lists of them): checked against the schema only, without the family's own checks."""
    spec = draw(specs())
    return dataclasses.replace(spec, task=dataclasses.replace(spec.task, params=draw(_params())))


# --- strategies: valid program files --------------------------------------------------------------------------

_NAMES = st.one_of(st.sampled_from(("alias", "program", "language", "vocab", "skip", "max_length", "fingerprint",
                                    "nlic", "T3", "t", "_", "inf", "nan", "true")),
                   st.from_regex(r"[A-Za-z_][A-Za-z0-9_]*", fullmatch=True)).filter(lambda s: not re.fullmatch(r"t[0-9]+", s))
_META_VALUES = st.one_of(st.integers(), _finite(), _texts, _NAMES)


@st.composite
def program_files(draw: Callable) -> ProgramFile:
    """A valid program file: header, aliases with distinct tokens and names, macros (names distinct from those,
    2 to max_length tokens, no skip), programs with distinct ids (any text) of tokens within the vocabulary and
    max_length (often made of macros' tokens, so that printing abbreviates them), and metadata of numbers and
    strings."""
    vocab = draw(st.one_of(st.integers(2, 40), st.integers(2, 10**12)))
    skip = draw(st.integers(0, vocab - 1))
    max_length = draw(st.integers(1, 24))
    fingerprint = draw(st.one_of(st.none(), st.from_regex(r"[0-9a-f]{1,32}", fullmatch=True)))
    header = Header(1, draw(_texts), fingerprint, vocab, skip, max_length)
    tokens = st.integers(0, min(vocab - 1, 60)).filter(lambda t: t != skip)
    alias_tokens = draw(st.lists(st.integers(0, min(vocab - 1, 60)), unique=True, max_size=6))
    names = draw(st.lists(_NAMES, unique=True, min_size=len(alias_tokens), max_size=len(alias_tokens) + 4))
    aliases = tuple(sorted((Alias(t, n) for t, n in zip(alias_tokens, names)), key=lambda a: a.token))
    macros: list[Macro] = []
    pieces = tokens.map(lambda t: (t,))  # what macro bodies and programs are made of: tokens and macros' tokens
    if max_length >= 2:  # the names left over name macros, some of them spelling out earlier ones
        for name in names[len(alias_tokens):]:
            parts = draw(st.lists(pieces, min_size=2, max_size=4))
            macros.append(Macro(name, tuple(t for part in parts for t in part)[:max_length]))
            pieces = st.one_of(tokens.map(lambda t: (t,)), st.sampled_from(tuple(macros)).map(lambda m: m.tokens))
    ids = draw(st.lists(st.one_of(_texts, st.from_regex(r"[A-Za-z0-9_.\/\-][A-Za-z0-9_.#\/\-]*", fullmatch=True))
                        .filter(bool), unique=True, max_size=5))
    programs = []
    for pid in ids:
        body = tuple(t for piece in draw(st.lists(pieces, max_size=max_length)) for t in piece)[:max_length]
        meta = draw(st.dictionaries(_NAMES, _META_VALUES, max_size=4))
        programs.append(Program(pid, body, tuple(sorted(meta.items()))))
    return ProgramFile(header, aliases, tuple(programs)).with_macros(macros)


# --- mutations ------------------------------------------------------------------------------------------------

_SNIPPETS = (
    b"{", b"}", b"[", b"]", b"(", b")", b":", b": ", b",", b'"', b"'", b"#", b"\n", b"\r\n", b"\r", b"\t", b" ",
    b"  ", b"-", b"- ", b"->", b"..", b"=", b"\\", b"\\u12", b"&a ", b"*a ", b"!!python/object ", b"!x ", b"|\n",
    b">\n", b"---\n", b"...\n", b"? ", b"%YAML 1.1\n", b"<<: ", b"\xef\xbb\xbf", b"\x00", b"\xff", b"\xc3", b"\xe2\x80\xa8",
    b"\x0c", b"\x1b", b"0", b"-1", b"1e999", b"-1e999", b"1e-999", b"9" * 30, b"9" * 5000, b"1" * 4400 + b"..2",
    b"0..0", b"5..1", b".5", b"1.", b"null", b"~", b"true", b"yes", b"nan", b"inf", b"exp(", b"const(1)",
    b"exp(1 -> 0)", b"t0", b"t99", b"t" + b"9" * 5000, b"alias t1 = x\n", b"program p = t1\n", b"program ",
    b"alias ", b"[fit=1.0]", b"x=", b"nlic-programs 1\n", b"language ", b"fingerprint ", b"vocab ", b"skip ",
    b"max_length ", b"files", b"deepcoder", b"pattern", b"string_rules", b"shift", b"name: ", b"task: ",
    b"params: ", b"search ", b"{" * 40, b"[" * 40, b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"\\ud800",
    b'"\\udc00"', b"\\U0001f600",
)
MUTATION_KINDS = ("flip", "byte", "delete", "insert", "truncate", "copy")
_op = st.tuples(
    st.sampled_from(MUTATION_KINDS),
    st.integers(0, 1 << 20),
    st.integers(0, 1 << 20),
    st.one_of(st.sampled_from(_SNIPPETS), st.binary(min_size=1, max_size=4)),
)


def mutations() -> st.SearchStrategy[list]:
    """One to five mutation operations (see `mutate`)."""
    return st.lists(_op, min_size=1, max_size=5)


def mutate(data: bytes, ops: list) -> bytes:
    """Apply mutation operations `(kind, position, amount, snippet)`: flip a bit, overwrite a byte, delete up to
    16 bytes, insert a snippet, truncate, or copy a chunk elsewhere (repeated keys and lines). Positions wrap."""
    out = bytearray(data)
    for kind, pos, amount, snippet in ops:
        i = pos % (len(out) + 1)
        if kind == "flip" and i < len(out):
            out[i] ^= 1 << (amount % 8)
        elif kind == "byte" and i < len(out):
            out[i] = amount % 256
        elif kind == "delete":
            del out[i:i + 1 + amount % 16]
        elif kind == "insert":
            out[i:i] = snippet
        elif kind == "truncate":
            del out[i:]
        elif kind == "copy" and out:
            j = amount % len(out)
            out[i:i] = out[j:j + 1 + amount % 64]
    return bytes(out)


@functools.cache
def spec_seeds(syntax: str) -> tuple[bytes, ...]:
    """The shipped spec files of one syntax: specs/, and the canonical snapshots."""
    ext = EXTENSIONS[syntax]
    paths = sorted((ROOT / "specs").glob(f"*{ext}")) + sorted((ROOT / "tests/data/spec_snapshots").glob(f"*{ext}"))
    return tuple(p.read_bytes() for p in paths)


@functools.cache
def program_seeds() -> tuple[bytes, ...]:
    """The shipped valid program files (canonical snapshots and messy input)."""
    return tuple(p.read_bytes() for p in sorted((ROOT / "tests/data/programs").glob("*.nlp")))


def spec_documents(syntax: str) -> st.SearchStrategy[bytes]:
    """Valid spec files to mutate: shipped ones, or generated specs printed canonically (with or without the
    documentation comments)."""
    printed = st.tuples(specs(), st.booleans()).map(lambda sc: format_spec(sc[0], syntax, comments=sc[1]).encode())
    return st.one_of(st.sampled_from(spec_seeds(syntax)), printed)


def program_documents() -> st.SearchStrategy[bytes]:
    """Valid program files to mutate: shipped ones, or generated files printed canonically."""
    return st.one_of(st.sampled_from(program_seeds()), program_files().map(lambda pf: format_programs(pf).encode()))


# --- properties -----------------------------------------------------------------------------------------------


def _ext(syntax: str) -> str:
    return EXTENSIONS[syntax]


def _saveable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise Failure(f"canonical text cannot be saved as UTF-8 ({e.reason}: {e.object[e.start:e.end]!r})") from None


def check_spec_roundtrip(spec: Spec, syntax: str) -> None:
    """Canonical text parses back to an equal spec and prints identically, with and without comments."""
    text = format_spec(spec, syntax)
    _saveable(text)
    again = parse_spec(text, "<fuzz>", syntax, kind_fields=False)  # as a run reads what it locked
    if again != spec:
        raise Failure(f"{syntax}: parse(print(spec)) != spec\n--- text:\n{text}\n--- spec:\n{spec!r}\n--- parsed:\n{again!r}")
    if format_spec(again, syntax) != text:
        raise Failure(f"{syntax}: print(parse(text)) != text\n--- text:\n{text}")
    commented = format_spec(spec, syntax, comments=True)
    if parse_spec(commented, "<fuzz>", syntax) != spec:
        raise Failure(f"{syntax}: the commented canonical text parses to another spec\n--- text:\n{commented}")


def check_params_roundtrip(spec: Spec, syntax: str) -> None:
    """Like `check_spec_roundtrip` for free-form task params, checked against the schema only (the family
    would refuse unknown params)."""
    text = format_spec(spec, syntax)
    doc, diagnostics = _parse_tree(text, f"fuzz{_ext(syntax)}", syntax)
    checker = _Checker(doc.path)
    again = checker.section(Spec, doc.root, "")
    problems = [str(d) for d in [*diagnostics, *checker.diagnostics]]
    if problems or again != spec:
        raise Failure(f"{syntax}: free-form params do not round-trip: {problems}\n--- text:\n{text}\n--- spec:\n"
                      f"{spec.task.params!r}\n--- parsed:\n{again.task.params!r}")
    if format_spec(again, syntax) != text:
        raise Failure(f"{syntax}: print(parse(text)) != text\n--- text:\n{text}")


def check_programs_roundtrip(pf: ProgramFile) -> None:
    """Canonical text parses back to an equal program file and prints identically."""
    text = format_programs(pf)
    _saveable(text)
    try:
        again = parse_programs(text, "<fuzz>")
    except NlicError as e:
        raise Failure(f"canonical text does not parse: {e.render()}\n--- text:\n{text}") from None
    if again != pf:
        raise Failure(f"parse(print(file)) != file\n--- text:\n{text}\n--- file:\n{pf!r}\n--- parsed:\n{again!r}")
    if format_programs(again) != text:
        raise Failure(f"print(parse(text)) != text\n--- text:\n{text}")


def check_located(error: NlicError, path: str, data: bytes) -> None:
    """Every diagnostic names `path` and, unless it is about the whole file, a line (and column) inside it."""
    try:
        lines = len(data.decode("utf-8-sig").splitlines()) + 1
    except UnicodeDecodeError:
        lines = data.count(b"\n") + 1
    for d in error.diagnostics:
        loc = d.loc
        if loc is None or loc.path != path:
            raise Failure(f"diagnostic not located in {path}: {d}")
        if loc.line is None:
            if not _WHOLE_FILE.search(d.message):
                raise Failure(f"diagnostic without a line: {d}")
        elif not 1 <= loc.line <= lines or (loc.col is not None and loc.col < 1):
            raise Failure(f"diagnostic outside the file ({lines} lines): {d}")


def _unexpected(e: BaseException) -> Failure:
    return Failure(f"{type(e).__name__} instead of a located NlicError:\n{traceback.format_exc()}")


def check_spec_file(data: bytes, syntax: str, folder: Path) -> str:
    """Write `data` as a spec file and load it: 'valid' (and then its canonical text round-trips) or 'located'
    (an `NlicError` located in the file); raises `Failure` otherwise."""
    path = folder / f"fuzz{_ext(syntax)}"
    path.write_bytes(data)
    try:
        spec = load_spec(path, resolve_paths=False)
    except NlicError as e:
        check_located(e, str(path), data)
        return "located"
    except Exception as e:  # noqa: BLE001 - any other exception is what the fuzzer looks for
        raise _unexpected(e) from None
    try:
        check_spec_roundtrip(spec, syntax)
    except NlicError as e:
        raise Failure(f"a valid spec's canonical text does not parse: {e.render()}") from None
    return "valid"


def check_program_file(data: bytes, folder: Path) -> str:
    """Write `data` as a program file and load it: 'valid' (and then it round-trips) or 'located'; raises
    `Failure` otherwise."""
    path = folder / "fuzz.nlp"
    path.write_bytes(data)
    try:
        pf = load_programs(path)
    except NlicError as e:
        check_located(e, str(path), data)
        return "located"
    except Exception as e:  # noqa: BLE001
        raise _unexpected(e) from None
    check_programs_roundtrip(pf)
    return "valid"


# --- the campaign ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Stats:
    grammar: str
    prop: str
    tried: int = 0
    valid: int = 0
    located: int = 0
    failures: int = 0
    slowest: float = 0.0


@dataclasses.dataclass
class _Campaign:
    out: Path
    keep: int = 5
    signatures: dict[str, int] = dataclasses.field(default_factory=dict)

    def record(self, grammar: str, prop: str, failure: Failure, case: Any) -> None:
        """Count a failure; write a reproducer for the first `keep` distinct ones (by the message's first line
        and, for exceptions, the innermost frame)."""
        text = str(failure)
        frames = [line for line in text.splitlines() if line.strip().startswith("File ")]
        signature = f"{grammar}:{text.splitlines()[0][:80]}:{frames[-1] if frames else ''}"
        self.signatures[signature] = self.signatures.get(signature, 0) + 1
        if self.signatures[signature] > 1 or len(self.signatures) > self.keep:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        n = len(self.signatures)
        if isinstance(case, bytes):
            (self.out / f"{grammar}-{n}{EXTENSIONS[grammar]}").write_bytes(case)
        (self.out / f"{grammar}-{n}.txt").write_text(f"property: {prop}\n{text}\n--- case:\n{case!r}\n")


def _properties(grammar: str, folder: Path) -> list[tuple[str, st.SearchStrategy, Callable[[Any], str]]]:
    """(name, strategy, check) of a grammar; a check returns 'valid' or 'located', or raises `Failure`."""
    if grammar == "programs":
        def roundtrip(pf: ProgramFile) -> str:
            check_programs_roundtrip(pf)
            return "valid"

        return [
            ("round trip", program_files(), roundtrip),
            ("mutations", st.tuples(program_documents(), mutations()),
             lambda dm: check_program_file(mutate(*dm), folder)),
        ]

    def spec_roundtrip(spec: Spec) -> str:
        check_spec_roundtrip(spec, grammar)
        return "valid"

    def params_roundtrip(spec: Spec) -> str:
        check_params_roundtrip(spec, grammar)
        return "valid"

    return [
        ("round trip", specs(), spec_roundtrip),
        ("params round trip", params_specs(), params_roundtrip),
        ("mutations", st.tuples(spec_documents(grammar), mutations()),
         lambda dm: check_spec_file(mutate(*dm), grammar, folder)),
    ]


def _run_chunk(strategy: st.SearchStrategy, check: Callable[[Any], str], stats: _Stats, campaign: _Campaign,
               seed: int, until: float, examples: int) -> None:
    """Up to `examples` cases of one property (fewer when the time is up), failures recorded, not raised."""

    @hypothesis.seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), verbosity=hypothesis.Verbosity.quiet)
    @given(strategy)
    def prop(case: Any) -> None:
        if time.monotonic() > until:
            return
        start = time.monotonic()
        stats.tried += 1
        try:
            outcome = check(case)
        except Failure as f:
            stats.failures += 1
            campaign.record(stats.grammar, stats.prop, f, mutate(*case) if stats.prop == "mutations" else case)
            return
        except Exception as e:  # noqa: BLE001 - a crash of a round-trip check (e.g. the printer) is a failure too
            stats.failures += 1
            campaign.record(stats.grammar, stats.prop, _unexpected(e), case)
            return
        finally:
            stats.slowest = max(stats.slowest, time.monotonic() - start)
        if outcome == "valid":
            stats.valid += 1
        else:
            stats.located += 1

    prop()


def campaign(grammar: str, seconds: float, seed: int, out: Path, *, examples: int = 200) -> list[_Stats]:
    """Run a grammar's properties in turn, `examples` cases at a time, for `seconds` in all; mutation cases get
    two turns for each turn of a round-trip property."""
    runner = _Campaign(out)
    with tempfile.TemporaryDirectory(prefix="nlic-fuzz-") as tmp:
        props = _properties(grammar, Path(tmp))
        stats = [_Stats(grammar, name) for name, _, _ in props]
        schedule = [i for i, (name, _, _) in enumerate(props) for _ in range(2 if name == "mutations" else 1)]
        until = time.monotonic() + seconds
        turn = 0
        while time.monotonic() < until:
            i = schedule[turn % len(schedule)]
            _run_chunk(props[i][1], props[i][2], stats[i], runner, seed * 1_000_003 + turn, until, examples)
            turn += 1
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, required=True, help="time per grammar")
    p.add_argument("--grammar", choices=(*GRAMMARS, "all"), default="all")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated cases")
    p.add_argument("--out", default="fuzz-failures", help="folder for reproducers of the first failures")
    args = p.parse_args(argv)
    if not (args.minutes > 0 and math.isfinite(args.minutes)):
        raise NlicError(f"--minutes must be a positive number, got {args.minutes}", loc=Loc("--minutes"),
                        hint="e.g. --minutes 10")
    grammars = GRAMMARS if args.grammar == "all" else (args.grammar,)
    print(f"# fuzz: {args.minutes:g} min per grammar, seed {args.seed}, hypothesis {hypothesis.__version__}")
    print("| grammar | property | cases | valid | located errors | failures | slowest case (s) |")
    print("|---|---|---|---|---|---|---|")
    failures = 0
    for grammar in grammars:
        rows = campaign(grammar, args.minutes * 60, args.seed, Path(args.out))
        for s in rows:
            print(f"| {s.grammar} | {s.prop} | {s.tried} | {s.valid} | {s.located} | {s.failures} | {s.slowest:.2f} |")
        total = _Stats(grammar, "all", *(sum(getattr(s, k) for s in rows) for k in ("tried", "valid", "located",
                                                                                  "failures")))
        print(f"| {grammar} | **all** | {total.tried} | {total.valid} | {total.located} | {total.failures} | "
              f"{max(s.slowest for s in rows):.2f} |", flush=True)
        failures += total.failures
    if failures:
        print(f"{failures} failures; reproducers of the first ones in {args.out}/", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(guarded(main))
