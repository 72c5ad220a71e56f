"""Program files meet trained models: language checks, building files from search results, and `replay`.

`nlic solve` writes the discrete programs it found through `program_file`; `nlic run` is `replay`: check a file
against a run, read inputs, execute with hard tokens from Python or from the exported executor (and, with
`trace=True`, show the interpreter's state after every token).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from nlic.compiler.families import canonical_colours_of, codec_of
from nlic.compiler.families.colours import parse_colours, restore_rows, through
from nlic.compiler.identity import fingerprint, spec_hash
from nlic.compiler.kinds import kind_of
from nlic.compiler.validate import load_spec
from nlic.grammar.errors import (
    ArtifactError,
    CheckpointError,
    DataError,
    Diagnostic,
    Loc,
    ProgramError,
    did_you_mean,
)
from nlic.grammar.program import FORMAT_VERSION, Alias, Header, Program, ProgramFile, load_programs
from nlic.grammar.reading import MAX_DATA_BYTES, STDIN, list_dir, loads_json, read_text
from nlic.runtime.build import Artifact, load_artifact
from nlic.runtime.progress import format_duration
from nlic.runtime.run_dir import EXECUTOR_WEIGHTS_FILE, SPEC_FILE, find_moved_data, load_run

__all__ = [
    "replay",
    "Language",
    "check_programs",
    "program_file",
    "Replay",
    "read_inputs",
    "program_matrix",
    "execute_programs",
    "trace_programs",
    "json_value",
    "jsonl",
]


@dataclasses.dataclass(frozen=True)
class Language:
    """The identity and token alphabet of one trained language (what a program file must agree with).

    Attributes:
        name: spec name.
        fingerprint: hex hash of spec and weights (`nlic.runtime.run_dir.fingerprint`).
        vocab: codebook size K.
        skip: skip token id.
        max_length: most tokens a program may have.
    """

    name: str
    fingerprint: str
    vocab: int
    skip: int
    max_length: int

    @classmethod
    def of(cls, spec: Any, fingerprint: str) -> Language:
        """The language of a validated spec with trained weights of this fingerprint."""
        lang = spec.language
        return cls(str(spec.name), str(fingerprint), int(lang.vocab), int(lang.skip_token), int(lang.max_length))

    def header(self) -> Header:
        """A program-file header for this language."""
        return Header(FORMAT_VERSION, self.name, self.fingerprint, self.vocab, self.skip, self.max_length)


def check_programs(pf: ProgramFile, language: Language) -> None:
    """Check that a program file belongs to `language`, reporting every mismatch at once.

    A file with a fingerprint must carry the language's fingerprint; a hand-written file without one is
    checked by name. Vocabulary, skip token and maximum length must agree in either case.

    Raises:
        ProgramError: located at the header lines (or at the programs too long for the language).
    """
    h = pf.header
    file_loc = Loc(pf.path or "<programs>")
    diags: list[Diagnostic] = []
    ours = f"'{language.name}' (fingerprint {language.fingerprint})"
    if h.fingerprint is not None and h.fingerprint != language.fingerprint:
        diags.append(Diagnostic(
            h.line_loc(1) or file_loc,
            f"program file is for language '{h.language}' (fingerprint {h.fingerprint}), but this run's "
            f"language is {ours}",
            "replay it with the run it was solved with, or solve the tasks again with this run",
        ))
    elif h.language != language.name:
        diags.append(Diagnostic(
            h.line_loc(1) or file_loc, f"program file is for language '{h.language}', but this run's language is {ours}",
            f"write `language \"{language.name}\"` if the programs really are in this run's language",
        ))
    for key, theirs, mine, hint in (
        ("vocab", h.vocab, language.vocab, "token ids differ between languages"),
        ("skip", h.skip, language.skip, "the skip token is fixed by the spec's language.skip_token"),
        ("max_length", h.max_length, language.max_length, "programs must fit the run's language.max_length"),
    ):
        if theirs != mine:
            shown = (f"t{theirs}", f"t{mine}") if key == "skip" else (theirs, mine)
            diags.append(Diagnostic(
                h.line_loc(2) or file_loc, f"program file has {key} {shown[0]}, the run's language has {key} {shown[1]}",
                hint,
            ))
    for p in pf.programs:
        if len(p.tokens) > language.max_length:
            diags.append(Diagnostic(
                p.loc, f"program '{p.id}' has {len(p.tokens)} tokens, the language allows {language.max_length}",
                f"shorten it to at most {language.max_length} tokens",
            ))
        bad = [t for t in p.tokens if t >= language.vocab]
        # Parsing already rejects tokens >= the file's vocab; this catches ASTs built in code.
        if bad and h.vocab == language.vocab:
            diags.append(Diagnostic(p.loc, f"program '{p.id}' uses unknown token t{bad[0]}", f"use t0..t{language.vocab - 1}"))
    if diags:
        raise ProgramError(diagnostics=diags)


def _meta_value(v: Any) -> int | float | str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        # Four decimals keep files readable and stable across platforms' last-bit differences.
        return round(v, 4) + 0.0 if math.isfinite(v) else repr(v)  # + 0.0: no "-0.0"
    return str(v)


def program_file(
    language: Language,
    ids: Sequence[str],
    programs: np.ndarray,
    meta: Sequence[Mapping[str, Any]] | None = None,
    aliases: Mapping[int, str] | None = None,
) -> ProgramFile:
    """A program file from search results.

    Args:
        language: the run's language (header).
        ids: one id per task.
        programs: int [n, T] token ids; skip tokens are dropped.
        meta: optional per-task metadata fields (numbers rounded to 4 decimals).
        aliases: optional token id -> readable name.
    """
    programs = np.asarray(programs)
    if programs.ndim != 2 or len(programs) != len(ids):
        raise ValueError(f"programs must be [n={len(ids)}, T], got shape {programs.shape}")
    out = []
    for i, pid in enumerate(ids):
        tokens = tuple(int(t) for t in programs[i] if int(t) != language.skip)
        fields = tuple(sorted((str(k), _meta_value(v)) for k, v in (meta[i] if meta else {}).items()))
        out.append(Program(str(pid), tokens, fields))
    alias_nodes = tuple(Alias(int(t), str(n)) for t, n in sorted((aliases or {}).items()))
    return ProgramFile(language.header(), alias_nodes, tuple(out))


# --- replay inputs -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Replay:
    """One input to run: which program, the user's value, its encoding and where it was read."""

    id: str
    value: Any
    encoded: np.ndarray
    loc: Loc


def _encode(codec: Any, value: Any, loc: Loc, what: str | None = None) -> np.ndarray:
    try:
        return np.asarray(codec.encode(value, where=loc), np.int32)
    except DataError as e:
        if what is None:
            raise
        raise DataError(diagnostics=[Diagnostic(d.loc, f"{what}: {d.message}", d.hint) for d in e.diagnostics]) from None


def _program_for(pf: ProgramFile, pid: Any, loc: Loc, program: str | None) -> str:
    if program is not None:
        return pf.get(program, loc=Loc("--program")).id
    if pid is None:
        raise DataError("input has no \"id\"", loc=loc, hint="add \"id\": <program id>, or choose one program with --program ID")
    if not isinstance(pid, str):
        pid = json.dumps(pid)
    if pid not in pf:
        hint = did_you_mean(pid, pf.ids, most=20) if pf.ids else "the program file has no programs"
        one = "run every input with one program: --program ID"
        raise ProgramError(f"no program '{pid}' in {pf.path or 'the program file'}", loc=loc,
                           hint=f"{hint} Or {one}" if hint.endswith("?") else f"{hint}; or {one}")
    return pid


# Keys of an input line; `output`, `target` and `correct` (written by `nlic solve --predictions`) are ignored, so
# a predictions file can be replayed as it is.
_INPUT_KEYS = frozenset({"id", "input", "output", "target", "correct"})


def _jsonl_inputs(lines: Iterable[str], path: str, codec: Any, pf: ProgramFile, program: str | None) -> list[Replay]:
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        loc = Loc(path, n)
        row = loads_json(line, path=path, error=DataError, first_line=n, invalid="not JSON",
                         hint="one JSON object per line")
        out.append(_row_input(row, loc, codec, pf, program))
    return out


def _row_input(row: Any, loc: Loc, codec: Any, pf: ProgramFile, program: str | None) -> Replay:
    """One input row `{"id": program id, "input": value}` (a JSONL line, or a row given to `replay`), checked."""
    if not isinstance(row, dict) or "input" not in row:
        raise DataError(
            "expected an object with an \"input\"", loc=loc,
            hint="write lines like {\"id\": \"task_1\", \"input\": [1, 2, 3]}",
        )
    unknown = sorted(set(row) - _INPUT_KEYS)
    if unknown:
        raise DataError(f"unknown key '{unknown[0]}'", loc=loc, hint=did_you_mean(unknown[0], _INPUT_KEYS))
    pid = _program_for(pf, row.get("id"), loc, program)
    return Replay(pid, row["input"], _encode(codec, row["input"], loc), loc)


def _read_input_text(name: str, what: str) -> str:
    return read_text(name, limit=MAX_DATA_BYTES, what=what, error=DataError, stdin=True,
                     hint="split the inputs into several files (--inputs may be repeated)")


def _task_inputs(path: Path, codec: Any, pf: ProgramFile, program: str | None) -> list[Replay]:
    task = loads_json(_read_input_text(str(path), "task file"), path=str(path), error=DataError, invalid="not JSON")
    if not isinstance(task, dict) or not isinstance(task.get("test"), list):
        raise DataError(
            "expected an ARC-style task: an object with a \"test\" list", loc=Loc(str(path)),
            hint="write {\"train\": [...], \"test\": [{\"input\": ...}]}, or give inputs as JSONL",
        )
    loc = Loc(str(path))
    pid = _program_for(pf, path.stem, loc, program)
    out = []
    for i, pair in enumerate(task["test"]):
        if not isinstance(pair, dict) or "input" not in pair:
            raise DataError(f"test[{i}] has no \"input\"", loc=loc, hint="each test pair is {\"input\": ...}")
        out.append(Replay(pid, pair["input"], _encode(codec, pair["input"], loc, f"test[{i}].input"), loc))
    return out


def read_inputs(paths: Sequence[str], codec: Any, pf: ProgramFile, *, program: str | None = None) -> list[Replay]:
    """Inputs to replay, in the order given.

    Args:
        paths: JSONL files of `{"id": program id, "input": value}` (`-` reads standard input), ARC-style task
            files (`.json`, run with the program whose id is the file name without extension), or directories
            of such files.
        codec: the spec's codec (encodes each input).
        pf: the program file (ids are checked against it).
        program: run every input with this program instead (ids in the inputs are then optional).

    Raises:
        DataError: malformed inputs, located by file and line.
        ProgramError: an input names a program the file does not have.
    """
    out: list[Replay] = []
    for name in paths:
        if name == STDIN:
            out += _jsonl_inputs(_lines(_read_input_text(name, "input file")), "<stdin>", codec, pf, program)
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(list_dir(path, suffixes=(".json", ".jsonl"), what="input file", error=DataError))
            if not files:
                raise DataError("no .json or .jsonl files in this directory", loc=Loc(str(path)))
        else:
            files = [path]
        for f in files:
            if f.suffix == ".json":
                out += _task_inputs(f, codec, pf, program)
                continue
            out += _jsonl_inputs(_lines(_read_input_text(str(f), "input file")), str(f), codec, pf, program)
    if not out:
        shown = ", ".join("<stdin>" if p == STDIN else p for p in paths)
        raise DataError("no inputs", loc=Loc(shown), hint="give at least one input")
    return out


def _lines(text: str) -> list[str]:
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters splitlines() breaks at.
    return text.split("\n")


def program_matrix(pf: ProgramFile, ids: Sequence[str], length: int) -> np.ndarray:
    """int32 [n, length]: the programs named by `ids` (repeats allowed), padded with the skip token."""
    return pf.array(ids, length)


# --- execution ---------------------------------------------------------------------------------------------------

_EXECUTORS: dict[int, Any] = {}


def _bucket(n: int, cap: int = 1024) -> int:
    # Few distinct batch sizes, so that the jitted executor compiles a handful of times at most.
    b = 8
    while b < min(n, cap):
        b *= 2
    return b


PROGRESS_EVERY = 10.0
"""Seconds between two progress lines of a long replay (`replay(progress=True)`; a shorter one prints none)."""


class _Progress:
    """`run: 40,960/200,000 inputs, 41 s, ETA 2 min` on standard error, at most every `PROGRESS_EVERY` seconds, the
    first after that long (a replay that takes less prints nothing), and the last when any was printed."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.t0 = self.shown = time.perf_counter()
        self.any = False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.shown < PROGRESS_EVERY and not (self.any and done == total):
            return
        self.shown, self.any = now, True
        elapsed = now - self.t0
        eta = f", ETA {format_duration(elapsed / done * (total - done))}" if 0 < done < total else ""
        print(f"{self.what}: {done:,}/{total:,} inputs, {format_duration(elapsed)}{eta}", file=sys.stderr, flush=True)


def _in_chunks(fn: Any, model: Any, programs: np.ndarray, inputs: np.ndarray,
               progress: Callable[[int, int], None] | None = None) -> list[Any]:
    """`fn(model, programs, inputs)` over padded fixed-size chunks; the outputs (arrays or tuples of arrays) of each
    chunk as NumPy, padding rows dropped. `progress(done, total)` is called after each chunk."""
    programs = np.asarray(programs, np.int32)
    inputs = np.asarray(inputs, np.int32)
    n = len(programs)
    chunk = _bucket(n)
    outs = []
    for start in range(0, n, chunk):
        p, x = programs[start : start + chunk], inputs[start : start + chunk]
        pad = chunk - len(p)
        if pad:
            # Padding rows repeat row 0: valid programs and inputs, results dropped.
            p = np.concatenate([p, np.repeat(p[:1], pad, 0)])
            x = np.concatenate([x, np.repeat(x[:1], pad, 0)])
        got = fn(model, jnp.asarray(p), jnp.asarray(x))
        if isinstance(got, tuple):
            outs.append(tuple(np.asarray(g)[: chunk - pad] for g in got))
        else:
            outs.append(np.asarray(got)[: chunk - pad])
        if progress is not None:
            progress(min(start + chunk, n), n)
    return outs


def _joined(outs: list[Any], parts: int) -> tuple[np.ndarray, ...]:
    """`_in_chunks`' outputs (`parts` arrays a chunk, or one bare array) joined along the batch."""
    outs = [o if isinstance(o, tuple) else (o,) for o in outs]
    return tuple(np.concatenate([o[k] for o in outs]) for k in range(parts))


def _program_kind(spec: Any) -> Any:
    kind = kind_of(spec)
    if kind.execute is None or not kind.discrete_programs:
        raise ProgramError(
            f"model kind '{kind.name}' has no discrete programs to run", loc=Loc("model.kind"),
            hint="program files come from kinds with discrete programs (nli)",
        )
    return kind


def execute_programs(spec: Any, model: Any, programs: np.ndarray, inputs: np.ndarray, *,
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run discrete programs with hard tokens (`ModelKind.execute`), in padded fixed-size chunks.

    Args:
        spec: the run's spec (selects the model kind).
        model: the trained model.
        programs: int [n, T] token ids padded with skip.
        inputs: int [n, L] encoded inputs.
        progress: called with (inputs done, inputs) after each chunk.

    Returns:
        int32 [n, L] outputs.

    Raises:
        ProgramError: the model kind has no discrete programs.
    """
    kind = _program_kind(spec)
    fn = _EXECUTORS.setdefault(id(kind.execute), eqx.filter_jit(kind.execute))
    outs = _in_chunks(fn, model, programs, inputs, progress)
    return np.concatenate(outs).astype(np.int32) if outs else np.zeros((0, np.shape(inputs)[-1]), np.int32)


def trace_programs(spec: Any, model: Any, programs: np.ndarray, inputs: np.ndarray, *,
                   progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run discrete programs token by token (`ModelKind.trace`), in padded fixed-size chunks.

    Args:
        spec: the run's spec (selects the model kind).
        model: the trained model.
        programs: int [n, T] token ids padded with skip.
        inputs: int [n, L] encoded inputs.
        progress: as `execute_programs`'.

    Returns:
        `(values, probs)`, int32 and float32 [n, T+1, L]: row 0 the input, row k the likeliest value per
        position after token k and its probability.

    Raises:
        ProgramError: the model kind has no discrete programs or no trace.
    """
    kind = _program_kind(spec)
    if kind.trace is None:
        raise ProgramError(f"model kind '{kind.name}' has no execution trace", loc=Loc("model.kind"),
                           hint="replay without a trace")
    fn = _EXECUTORS.setdefault(id(kind.trace), eqx.filter_jit(kind.trace))
    outs = _in_chunks(fn, model, programs, inputs, progress)
    if not outs:
        shape = (0, np.shape(programs)[-1] + 1, np.shape(inputs)[-1])
        return np.zeros(shape, np.int32), np.zeros(shape, np.float32)
    return (np.concatenate([o[0] for o in outs]).astype(np.int32),
            np.concatenate([o[1] for o in outs]).astype(np.float32))


def _trace_steps(pf: ProgramFile, program: Program, codec: Any, values: np.ndarray, probs: np.ndarray,
                 tokens: np.ndarray) -> list[dict[str, Any]]:
    """One input's trace as rows `{"step", "token", "values", "tokens", "probs"}`: its input, then one row per token
    of its program (the padding after it repeats the last row and is left out)."""
    steps = []
    for k in range(len(program.tokens) + 1):
        steps.append({
            "step": k,
            "token": None if k == 0 else pf.token_name(int(tokens[k - 1])),
            "values": json_value(codec.decode(values[k])),
            "tokens": [int(v) for v in values[k]],
            "probs": [round(float(p), 4) + 0.0 for p in probs[k]],
        })
    return steps


def json_value(x: Any) -> Any:
    """A JSON-able copy of decoded data (NumPy scalars and arrays become Python numbers and lists)."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (list, tuple)):
        return [json_value(v) for v in x]
    if isinstance(x, dict):
        return {str(k): json_value(v) for k, v in x.items()}
    return x


def jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows as JSON Lines (compact, keys in the order given)."""
    return "".join(json.dumps(json_value(dict(r)), separators=(", ", ": ")) + "\n" for r in rows)



def replay(run_dir: str | Path, programs: str | Path | ProgramFile, inputs: Sequence[str | Path | Mapping[str, Any]], *,
           program: str | None = None, artifact: str | Path | None = None, trace: bool = False,
           progress: bool = False) -> list[dict[str, Any]]:
    """Run a program file on inputs: what `nlic run` prints, as rows `{"id", "input", "output"}`.

    Args:
        run_dir: a trained run directory (the `--out` of `nlic train`).
        programs: a program file (path) or a parsed `ProgramFile` of that run's language.
        inputs: input files (JSONL rows with "input", or task files, whose query inputs are replayed), or rows
            `{"id": program id, "input": value}` given directly.
        program: run this program id on every input (default: the program whose id matches the input's).
        artifact: a build directory: replay with its exported executor instead of nlic's model code.
        trace: add to each row a `"trace"`: one step per token of its program after the input (step 0, token
            None), each `{"step": k, "token": name (the file's alias where it has one), "values": the state
            decoded by the spec's codec, "tokens": the likeliest value per position, "probs": their
            probabilities rounded to 4 places}`; the last step's values are the output.
        progress: print `run: 40,960/200,000 inputs, 41 s, ETA 2 min` to standard error while the programs run,
            every `PROGRESS_EVERY` seconds (none for a replay shorter than that).

    Raises:
        ProgramSyntaxError, ProgramError: the file does not parse or belongs to another language (or, with
            `trace`, its model kind has no trace).
        DataError: malformed inputs. CheckpointError, ArtifactError: unusable run or build directory (or, with
            `trace`, a build without an exported trace).
    """
    # The program file first: it is cheap to check, and its errors are the likeliest.
    pf = programs if isinstance(programs, ProgramFile) else load_programs(programs)
    run = Path(run_dir)
    if artifact is None:
        spec, model = load_run(run)
        language = Language.of(spec, fingerprint(spec, model))
    else:
        spec, art, weights, fp = artifact_of_run(run, Path(artifact))
        language = Language.of(spec, fp)
    check_programs(pf, language)
    codec = codec_of(spec)
    rows = [r for r in inputs if isinstance(r, Mapping)]
    paths = [str(r) for r in inputs if not isinstance(r, Mapping)]
    if rows and paths:
        raise DataError("give inputs either as files or as rows, not both", loc=Loc("inputs"),
                        hint='e.g. replay(run, programs, [{"id": "ood-0000", "input": [1, 2, 3]}])')
    if rows:
        items = [_row_input(json_value(dict(r)), Loc("<inputs>", n), codec, pf, program) for n, r in enumerate(rows, 1)]
    else:
        items = read_inputs(paths, codec, pf, program=program)
    if not items:
        raise DataError("no inputs to replay", loc=Loc("inputs"), hint="give at least one input")
    tokens = pf.array([it.id for it in items], language.max_length)
    maps = program_colour_maps(spec, pf, [it.id for it in items])
    x = np.stack([it.encoded for it in items])
    if maps is not None:  # the programs run in their tasks' canonical colours
        x = np.stack([through(np.argsort(m), row) for m, row in zip(maps, x)])
    if artifact is None:
        outputs = execute_programs(spec, model, tokens, x, progress=_Progress("run") if progress else None)
        traced = trace_programs(spec, model, tokens, x, progress=_Progress("trace") if progress else None) \
            if trace else None
    else:  # in the same chunks as the model's replay: bounded memory, a progress line, few batch shapes to compile
        traced = _joined(_in_chunks(art.trace, weights, tokens, x, _Progress("trace") if progress else None), 2) \
            if trace else None  # first: a build without a trace fails fast
        outputs = _joined(_in_chunks(art.run, weights, tokens, x, _Progress("run") if progress else None), 1)[0]
    outputs = restore_rows(np.asarray(outputs), maps)
    rows = [{"id": it.id, "input": it.value, "output": codec.decode(out)} for it, out in zip(items, outputs)]
    if traced is not None:
        for i, (row, it) in enumerate(zip(rows, items)):
            values = traced[0][i] if maps is None else through(maps[i], np.asarray(traced[0][i]))
            row["trace"] = _trace_steps(pf, pf.get(it.id), codec, values, traced[1][i], tokens[i])
    return rows


def program_colour_maps(spec: Any, pf: ProgramFile, ids: Sequence[str]) -> np.ndarray | None:
    """Each program's map from canonical colours to its task's own (its `colours` metadata, written by `nlic
    solve`), int [n, V]; None where the run's spec keeps colours as they are (`task.colours`).

    A program without `colours` (written by hand) runs on the colours it is given.

    Raises:
        ProgramError: a `colours` field that is not a permutation of the codec's colours, or one in a file of a
            language that keeps colours as they are.
    """
    found = canonical_colours_of(spec)
    if found is None:
        for pid in dict.fromkeys(ids):
            prog = pf.get(pid)
            if prog.field("colours") is not None:
                raise ProgramError(f"program '{pid}' has colours metadata, but this language keeps the task's colours "
                                   "as they are (its spec has no task.colours: canonical)", loc=prog.loc,
                                   hint="remove the colours=... field")
        return None
    colours, values = found
    out = np.empty((len(ids), values), np.int32)
    cache: dict[str, np.ndarray] = {}
    for i, pid in enumerate(ids):
        if pid not in cache:
            prog = pf.get(pid)
            text = prog.field("colours")
            if text is None:
                cache[pid] = np.arange(values, dtype=np.int32)
            else:
                try:
                    cache[pid] = parse_colours(str(text), colours, values)
                except ValueError as e:
                    raise ProgramError(f"program '{pid}': bad colours={json.dumps(str(text)[:80])}: {e}", loc=prog.loc,
                                       hint="write the task's own colour of each canonical colour 1, 2, ..., as "
                                       "nlic solve does, or leave the field out") from None
        out[i] = cache[pid]
    return out


def artifact_of_run(run: Path, build: Path) -> tuple[Any, Artifact, list[np.ndarray], str]:
    """Spec, artifact, weights and language fingerprint of a run replayed through an exported executor.

    Raises:
        CheckpointError: `run` is not a finished run. ArtifactError: the build is of another spec.
    """
    if not (run / SPEC_FILE).exists():
        raise CheckpointError(f"not a run directory (no {SPEC_FILE})", loc=Loc(str(run)),
                              hint="pass the --out of `nlic train`")
    find_moved_data(run)  # the project folder moved with its data and runs: found at the same place beside it
    spec = load_spec(run / SPEC_FILE, kind_fields=False)  # as locked: an earlier version may have accepted more
    art = load_artifact(build)
    if art.spec_hash != spec_hash(spec):
        raise ArtifactError(
            f"the build was compiled from spec {art.spec_hash}, the run was trained with spec {spec_hash(spec)}",
            loc=Loc(str(build)), hint=f"compile the run's spec: nlic compile {run / SPEC_FILE} --out {build}",
        )
    weights_path = run / EXECUTOR_WEIGHTS_FILE
    if not weights_path.exists():
        raise CheckpointError(f"no {EXECUTOR_WEIGHTS_FILE} in the run", loc=Loc(str(run)),
                              hint="did training finish? `nlic train` writes it at the end")
    weights = art.load_weights(weights_path)
    # The fingerprint hashes the spec and the weight leaves in export order, so the exported weights give the
    # same fingerprint as the trained model.
    return spec, art, weights, fingerprint(spec, weights)
