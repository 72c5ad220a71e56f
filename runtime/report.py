"""`nlic inspect` as a Python API: read (or solve) a run's programs, probe its tokens, mine macros, and write the
report (`report.md`, `inspect.json`, PNG plots, mined program files); `inspect_run` returns it as an object.

The analysis itself is `nlic.runtime.inspection` (probing) and `nlic.runtime.mining` (macros); this module loads,
orchestrates and writes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlic.compiler.families import GridCodec, codec_of, evaluation_tasks, family_of, params_of, unknown_splits
from nlic.compiler.identity import fingerprint
from nlic.compiler.kinds import kind_of
from nlic.grammar.errors import CheckpointError, Loc, ProgramError, SpecError, escape
from nlic.grammar.program import ProgramFile, format_programs, load_programs
from nlic.runtime.files import atomic_write, writing
from nlic.runtime.inspection import (
    NAMED,
    Semantics,
    TokenSeq,
    analyze,
    family_primitives,
    length_histogram,
    model_executor,
    probe_inputs,
    run_sequences,
    run_sequentially,
    sequence_text,
    token_usage,
)
from nlic.runtime.mining import Mining, SplitSaving, abbreviate, mined_file, name_macros, select_macros, token_aliases
from nlic.runtime.outputs import refuse_existing
from nlic.runtime.replay import Language, check_programs, json_value
from nlic.runtime.run_dir import load_run
from nlic.runtime.solve import solve_to_files

__all__ = [
    "INSPECT_DIR",
    "REPORT_FILE",
    "JSON_FILE",
    "SplitPrograms",
    "InspectReport",
    "inspect_run",
    "write_report",
    "format_markdown",
    "summary_lines",
    "primitive_ways",
    "written_as",
]

INSPECT_DIR = "inspect"
"""Default output folder inside the run directory."""
REPORT_FILE = "report.md"
JSON_FILE = "inspect.json"
JSON_FORMAT = "nlic-inspect"
JSON_VERSION = 1
FOCUS = 7
"""Where the programs use at most this many tokens, every sequence of 3 of them is probed too (at most 343, as many
as every sequence of 3 tokens of an 8-token language); beyond, sequences of 3 would dominate the probing time."""
MAX_PROBES = 100_000
_EXAMPLES = 4


@dataclasses.dataclass(frozen=True)
class SplitPrograms:
    """The programs of one inspected split.

    Attributes:
        split: the split's name.
        program_file: its programs.
        source: the program file read, or the file the solved programs were written to.
        solved: whether `nlic inspect` solved the tasks (no usable program file existed).
        note: why they were solved (empty when read).
        accuracy: accuracy of the solve where query outputs are known, else None.
    """

    split: str
    program_file: ProgramFile
    source: str
    solved: bool
    note: str = ""
    accuracy: float | None = None

    @property
    def programs(self) -> tuple[TokenSeq, ...]:
        return tuple(p.tokens for p in self.program_file.programs)


@dataclasses.dataclass(frozen=True)
class InspectReport:
    """Everything `nlic inspect` found about one run's language (see `inspect_run`).

    Attributes:
        run_dir: the run, as given.
        language: its identity and alphabet.
        family: the task family's name.
        codec: the spec's codec (renders examples).
        probe_source: where the probe inputs came from.
        splits: the inspected splits' programs.
        usage: per split, int [K] token counts.
        semantics: the probing results.
        mining: the mined macros (None without `mine`).
        out: the report folder (None when nothing was written).
        files: the files written.
        seconds: wall time per phase.
    """

    run_dir: str
    language: Language
    family: str
    codec: Any
    probe_source: str
    splits: tuple[SplitPrograms, ...]
    usage: dict[str, np.ndarray]
    semantics: Semantics
    mining: Mining | None
    out: str | None
    files: tuple[str, ...]
    seconds: dict[str, float]

    @property
    def uses(self) -> np.ndarray:
        """int [K]: uses of each token over all inspected splits."""
        total = np.zeros(self.language.vocab, np.int64)
        for counts in self.usage.values():
            total += counts
        return total

    @property
    def used(self) -> tuple[int, ...]:
        """Tokens used by some program (the skip token never is)."""
        return tuple(int(t) for t in np.flatnonzero(self.uses))

    @property
    def unused(self) -> tuple[int, ...]:
        """Non-skip tokens no program uses."""
        return tuple(t for t in range(self.language.vocab) if t != self.language.skip and not self.uses[t])

    def to_json(self) -> dict[str, Any]:
        """The report as JSON data (deterministic: no timings, no output paths)."""
        return _report_json(self)


# --- loading programs ----------------------------------------------------------------------------------------------


def _check_splits(spec: Any, splits: Sequence[str]) -> tuple[str, ...]:
    unknown = unknown_splits(spec, splits, Loc("--tasks"))
    if unknown:
        raise SpecError(diagnostics=unknown[:1])
    if not splits:
        raise SpecError("no splits to inspect", loc=Loc("--tasks"), hint="name at least one split, e.g. --tasks ood")
    return tuple(dict.fromkeys(splits))


def _usable(path: Path, language: Language, log: Callable[[str], None]) -> ProgramFile | None:
    """The program file at `path` if it exists and belongs to `language`; None (saying why) otherwise.

    A file of another language (the run was retrained, or the file is another run's) is not an error: its tasks
    are solved again. A file that does not parse is (`ProgramSyntaxError`, located).
    """
    if not path.is_file():
        return None
    pf = load_programs(path)
    try:
        check_programs(pf, language)
    except ProgramError as e:
        log(f"inspect: {path} is not a program file of this run's language, so its tasks are solved again:")
        for line in e.render().split("\n"):
            log(f"  {line}")
        return None
    return pf


def _programs_of(run: Path, out: Path, splits: Sequence[str], language: Language,
                 log: Callable[[str], None]) -> dict[str, tuple[ProgramFile, Path] | None]:
    """Per split: a usable program file (RUN/programs/<split>.nlp, else OUT/<split>.nlp) and its path, or None."""
    found: dict[str, tuple[ProgramFile, Path] | None] = {}
    for split in splits:
        found[split] = None
        for path in (run / "programs" / f"{split}.nlp", out / f"{split}.nlp"):
            pf = _usable(path, language, log)
            if pf is not None:
                found[split] = (pf, path)
                break
    return found


# --- writing -------------------------------------------------------------------------------------------------------


def _token_plot_name(token: int) -> str:
    return f"token_t{token}.png"


def _planned_files(out: Path, language: Language, splits: Sequence[str], to_solve: Sequence[str],
                   mine: bool) -> list[Path]:
    files = [out / REPORT_FILE, out / JSON_FILE, out / "usage.png", out / "pairs.png"]
    files += [out / _token_plot_name(t) for t in range(language.vocab) if t != language.skip]
    for split in to_solve:
        files += [out / f"{split}.nlp", out / f"{split}.predictions.jsonl"]
    if mine:
        files += [out / f"{split}.mined.nlp" for split in splits]
    return files


def _prepare_out(out: Path, planned: Sequence[Path], force: bool) -> None:
    """Refuse existing results (unless `force`) and an unwritable folder, before any work."""
    if out.exists() and not out.is_dir():
        raise CheckpointError("--out is a file, not a folder", loc=Loc(str(out)), hint="give a folder for the report")
    refuse_existing(planned, force=force, what="report file",
                    hint="add --force to overwrite the report, or write elsewhere with --out DIR")
    with writing("inspection report", error=CheckpointError, then="then run nlic inspect again"):
        out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK | os.X_OK):
        raise CheckpointError("cannot write the inspection report: the folder is not writable", loc=Loc(str(out)),
                              hint="make it writable, or write elsewhere with --out DIR")


def _write(path: Path, data: bytes | str) -> None:
    with writing("inspection report", error=CheckpointError, then="then run nlic inspect again"):
        atomic_write(path, data)


# --- the command ---------------------------------------------------------------------------------------------------


def inspect_run(
    run_dir: str | Path,
    *,
    tasks: Sequence[str] | None = None,
    out: str | Path | None = None,
    probes: int = 128,
    mine: bool = False,
    force: bool = False,
    write: bool = True,
    log: Callable[[str], None] | None = None,
) -> InspectReport:
    """Inspect a trained run's language: token usage, meanings by probing, aliases, and (with `mine`) macros.

    Programs of each split are read from `RUN/programs/<split>.nlp` (or `OUT/<split>.nlp`) when that file exists
    and is of this run's language; otherwise the split's evaluation tasks are solved with the spec's search and
    the programs written to `OUT/<split>.nlp` (a file of another language is reported on the log and its tasks
    are solved again; a file that does not parse is an error).

    Args:
        run_dir: a trained run directory.
        tasks: splits whose programs are inspected (default: the spec's `eval.splits`).
        out: report folder (default `RUN/inspect`).
        probes: probe inputs drawn from the training split (the user's task inputs for a `files` spec without one).
        mine: also mine macros and write `OUT/<split>.mined.nlp`.
        force: overwrite a report (and its files) that exists in `out`.
        write: write the report files (False: only return the report; nothing is solved into `out` either, the
            solved programs are kept in memory).
        log: called with progress lines (default: silent).

    Returns:
        The `InspectReport`.

    Raises:
        CheckpointError: not a run directory, or `out` holds a report (without `force`) or cannot be written.
        ProgramError: the run's model kind has no discrete programs.
        SpecError: an unknown split or a bad `probes`.
        ProgramSyntaxError: a program file in the run does not parse.
    """
    say = log or (lambda _line: None)
    if not 1 <= probes <= MAX_PROBES:
        raise SpecError(f"--probes must be between 1 and {MAX_PROBES}, got {probes}", loc=Loc("--probes"),
                        hint="128 probe inputs name most tokens reliably")
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    run = Path(run_dir)
    spec, model = load_run(run)
    kind = kind_of(spec)
    if kind.execute is None or not kind.discrete_programs:
        raise ProgramError(f"model kind '{kind.name}' has no discrete programs to inspect",
                           loc=Loc(str(run / "spec.yaml")),
                           hint="nlic inspect reads the tokens of kinds with discrete programs (nli)")
    splits = _check_splits(spec, list(spec.eval.splits) if tasks is None else list(tasks))
    language = Language.of(spec, fingerprint(spec, model))
    out_dir = Path(out) if out is not None else run / INSPECT_DIR
    found = _programs_of(run, out_dir, splits, language, say)
    to_solve = [s for s in splits if found[s] is None]
    if write:
        _prepare_out(out_dir, _planned_files(out_dir, language, splits, to_solve, mine), force)
    seconds["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    inspected = []
    written: list[str] = []
    for split in splits:
        hit = found[split]
        if hit is not None:
            pf, path = hit
            say(f"inspect: {len(pf.programs)} programs of '{split}' from {path}")
            inspected.append(SplitPrograms(split, pf, str(path), False))
            continue
        note = f"no program file of this language in {run / 'programs'}"
        say(f"inspect: solving the '{split}' tasks with the spec's search ({note})")
        target = out_dir / f"{split}.nlp" if write else None
        solved = _solve(run, split, target, force, log)  # None: no progress lines either
        if target is not None:
            written += [str(target), str(target.with_name(target.stem + ".predictions.jsonl"))]
        inspected.append(SplitPrograms(split, solved[0], str(target) if target else "(not written)", True, note,
                                       solved[1]))
    seconds["programs"] = time.perf_counter() - t

    t = time.perf_counter()
    vocab, skip = language.vocab, language.skip
    fallback = [evaluation_tasks(spec, s) for s in splits] if family_of(spec).name == "files" else []
    inputs = probe_inputs(spec, probes, fallback=fallback)
    train_split = str(spec.task.train_split)
    probe_source = (f"the '{train_split}' split" if train_split in family_of(spec).splits(params_of(spec))
                    else "the inspected tasks' inputs")
    primitives = family_primitives(spec)
    codec = codec_of(spec)
    execute = model_executor(spec, model, log=say)
    used = sorted({t for s in inspected for p in s.programs for t in p})
    length = 3 if 0 < len(used) <= FOCUS else 2
    triples = f" and the {len(used) ** 3} sequences of 3 used tokens" if length == 3 else ""
    say(f"inspect: probing {vocab - 1} tokens, their {(vocab - 1) ** 2} ordered pairs{triples} on {len(inputs)} "
        f"inputs of {probe_source}")
    semantics = analyze(execute, inputs, vocab=vocab, skip=skip, values=int(codec.values), primitives=primitives,
                        length=length, focus=used)
    seconds["probe"] = time.perf_counter() - t

    mining = None
    if mine:
        t = time.perf_counter()
        mining = _mine(inspected, semantics, execute, language, length, out_dir if write else None, say)
        written += [s.file for s in mining.splits if s.file]
        seconds["mine"] = time.perf_counter() - t

    usage = {s.split: token_usage(s.programs, vocab) for s in inspected}
    report = InspectReport(str(run_dir), language, family_of(spec).name, codec, probe_source, tuple(inspected), usage,
                           semantics, mining, str(out_dir) if write else None, (), seconds)
    if write:
        t = time.perf_counter()
        files = write_report(report, out_dir)
        seconds["write"] = time.perf_counter() - t
        report = dataclasses.replace(report, files=tuple(written) + tuple(str(f) for f in files))
    seconds["total"] = time.perf_counter() - t0
    return report


def _solve(run: Path, split: str, target: Path | None, force: bool,
           log: Callable[[str], None] | None) -> tuple[ProgramFile, float | None]:
    if target is None:
        # Solve without writing: into a scratch folder that is removed again.
        with tempfile.TemporaryDirectory(prefix="nlic-inspect-") as tmp:
            return _solve(run, split, Path(tmp) / f"{split}.nlp", True, log)
    found = solve_to_files(run, split, out=target, force=force, log=log)
    assert found.program_file is not None  # the kind has discrete programs (checked by the caller)
    return found.program_file, found.result.accuracy


def _mine(inspected: Sequence[SplitPrograms], semantics: Semantics, execute: Any, language: Language, width: int,
          out: Path | None, say: Callable[[str], None]) -> Mining:
    programs = [p for s in inspected for p in s.programs]
    chosen = select_macros(programs, max_n=language.max_length)
    say(f"inspect: mining {len(programs)} programs: {len(chosen)} macros chosen; probing them")
    inputs = semantics.inputs
    skip = language.skip
    outputs = run_sequences(execute, chosen, inputs, skip=skip) if chosen else np.zeros((0, *inputs.shape), np.int32)
    sequential = (run_sequentially(execute, chosen, inputs, skip=skip, width=width) if chosen
                  else np.zeros((0, *inputs.shape), np.int32))
    named = {m.token: str(m.primitive) for m in semantics.tokens if m.named and not m.skip}
    taken: set[str] = set()
    aliases = token_aliases(named, taken)
    candidate_outputs = (semantics.candidate_outputs if semantics.candidate_outputs is not None
                         else np.zeros((0, *inputs.shape), np.int32))
    macros = name_macros(chosen, outputs, sequential, candidate_outputs, [p.name for p in semantics.candidates],
                         programs, taken, singles=len(semantics.primitives))
    savings = []
    for s in inspected:
        pf = mined_file(s.program_file, macros, aliases)
        before = sum(len(p) for p in s.programs)
        bodies = [m.tokens for m in pf.macros]
        pieces = [q for p in s.programs for q in abbreviate(p, bodies)]
        after = len(pieces)
        # The definitions cost their bodies, once each, for the macros this split's programs use.
        used = {q for q in pieces if isinstance(q, tuple)}
        library = sum(len(b) for b in bodies if tuple(b) in used)
        text = format_programs(pf)
        path = None
        if out is not None:
            path = out / f"{s.split}.mined.nlp"
            _write(path, text)
        savings.append(SplitSaving(s.split, before, after, str(path) if path else None, library=library,
                                   bytes_before=len(format_programs(s.program_file).encode()),
                                   bytes_after=len(text.encode())))
        say(f"inspect: '{s.split}': {before} -> {after} tokens with {len(pf.macros)} macros"
            + (f", wrote {path}" if path else ""))
    return Mining(macros, aliases, tuple(savings))


# --- text ----------------------------------------------------------------------------------------------------------


def _inline(codec: Any, row: np.ndarray, width: int = 48) -> str:
    """One datum on one line (grids as JSON), shortened to `width` characters."""
    text = codec.render(row)
    if "\n" in text:
        text = json.dumps(json_value(codec.decode(row)), separators=(",", ""))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _rate(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _token_label(report: InspectReport, token: int) -> str:
    return report.semantics.tokens[token].meaning


def written_as(report: InspectReport, most: int = 3) -> list[tuple[str, tuple[TokenSeq, ...], tuple[str, ...]]]:
    """`primitive_ways` of the report's language, the tokens its programs use ranked first."""
    return primitive_ways(report.semantics, report.used, most)


def primitive_ways(sem: Semantics, used_tokens: Sequence[int],
                   most: int = 3) -> list[tuple[str, tuple[TokenSeq, ...], tuple[str, ...]]]:
    """Per primitive the language writes with a probed sequence: up to `most` of those sequences, shortest first,
    then those of `used_tokens`; and the later primitives whose outputs equal its own on every probe input, which
    read as one entry with it (grid1d with canonical colours: each recolour of a colour no probe holds is the
    identity on the probes, 48 lines `= t7 | t16 | t20` otherwise)."""
    used = set(used_tokens)
    index = {name: i for i, name in enumerate(sem.primitives)}
    outputs = sem.candidate_outputs
    first: dict[bytes, int] = {}  # a primitive's probe outputs -> its entry
    out: list[tuple[str, tuple[TokenSeq, ...], list[str]]] = []
    for name, seqs in sem.realized:
        key = None if outputs is None else np.asarray(outputs[index[name]]).tobytes()
        if key is not None and key in first:
            out[first[key]][2].append(name)
            continue
        if key is not None:
            first[key] = len(out)
        ranked = sorted(seqs, key=lambda q: (len(q), not set(q) <= used, q))
        out.append((name, tuple(ranked[:most]), []))
    return [(name, seqs, tuple(alike)) for name, seqs, alike in out]


def _alike_text(alike: Sequence[str], most: int) -> str:
    """`(and N primitives equal to it on every probe: a, b, ...)`, or nothing."""
    if not alike:
        return ""
    names = ", ".join(alike[:most]) + (", ..." if len(alike) > most else "")
    return f"  (and {len(alike)} primitive{'s' if len(alike) > 1 else ''} equal to it on every probe: {names})"


def summary_lines(report: InspectReport) -> list[str]:
    """The terminal summary: a header, one line per used token (`t3  shift1  agreement 1.00  used 143`), the
    unused tokens, the mining savings and where the report is."""
    lang = report.language
    lines = [f"{lang.name} (fingerprint {lang.fingerprint}): {lang.vocab} tokens, skip t{lang.skip}; "
             f"{len(report.semantics.inputs)} probe inputs from {report.probe_source}"]
    uses = report.uses
    rows = []
    for t in report.used:
        m = report.semantics.tokens[t]
        rate = f"agreement {_rate(m.agreement)}" if m.agreement is not None else "no primitives"
        extra = "" if m.named else f"  ({m.description.text})"
        rows.append((f"t{t}", _token_label(report, t), rate, f"used {int(uses[t])}", extra))
    if rows:
        w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
        lines += [f"{a:<{w0}}  {b:<{w1}}  {c}  {d}{e}" for a, b, c, d, e in rows]
    else:
        lines.append("no token is used by any program")
    if report.unused:
        lines.append("unused: " + " ".join(f"t{t}" for t in report.unused))
    ways = written_as(report)
    if ways:
        longest = max(len(s) for s in report.semantics.sequences)
        lines.append(f"primitives written with up to {longest} tokens "
                     f"({sum(1 + len(alike) for *_, alike in ways)} of {len(report.semantics.primitives)}):")
        width = max(len(name) for name, *_ in ways)
        lines += [f"  {name:<{width}} = " + " | ".join(sequence_text(q) for q in seqs) + _alike_text(alike, 3)
                  for name, seqs, alike in ways]
    if report.mining is not None:
        for s in report.mining.splits:
            where = f": {s.file}" if s.file else ""
            lines.append(f"mined {s.split}: {s.before} -> {s.after} tokens ({s.shorter:.0%} shorter; "
                         f"{s.shorter_with_library:.0%} counting the {s.library} tokens of the macro definitions, "
                         f"file {s.bytes_before} -> {s.bytes_after} bytes){where}")
    if report.out is not None:
        lines.append(f"report: {Path(report.out) / REPORT_FILE}")
    return [escape(line) for line in lines]


def _md(text: str) -> str:
    """Text for a markdown table cell."""
    return escape(str(text)).replace("|", "\\|")


def format_markdown(report: InspectReport) -> str:
    """`report.md`: the language's tokens, program lengths, pairs, aliases and mined macros as tables."""
    lang, sem, codec = report.language, report.semantics, report.codec
    splits = [s.split for s in report.splits]
    out = [f"# The language of `{_md(lang.name)}`", "",
           f"Run `{_md(report.run_dir)}`, fingerprint `{lang.fingerprint}`, task family `{report.family}`: "
           f"{lang.vocab} tokens (skip `t{lang.skip}`), programs of at most {lang.max_length} tokens. "
           "Meanings come from running every token and every ordered pair of tokens"
           + (" (and every sequence of 3 tokens the programs use)" if max(map(len, sem.sequences)) > 2 else "")
           + f" on {len(sem.inputs)} probe inputs of "
           f"{report.probe_source}; a token is named by the ground-truth primitive it agrees with on at least "
           f"{NAMED:.0%} of them" + ("." if sem.primitives else " (this family defines no primitives)."), ""]
    out += ["## Programs", "", "| split | programs | tokens | source |", "|---|---:|---:|---|"]
    for s in report.splits:
        source = f"solved ({_md(s.note)}); written to `{_md(s.source)}`" if s.solved else f"`{_md(s.source)}`"
        if s.accuracy is not None:
            source += f", accuracy {s.accuracy:.2f}"
        out.append(f"| {_md(s.split)} | {len(s.programs)} | {sum(map(len, s.programs))} | {source} |")
    out += ["", "## Tokens", "",
            "| token | " + " | ".join(f"uses {_md(s)}" for s in splits)
            + " | meaning | closest primitive | agreement | position/value rule | example |",
            "|---|" + "---:|" * len(splits) + "---|---|---:|---|---|"]
    for m in sem.tokens:
        uses = " | ".join(str(int(report.usage[s][m.token])) for s in splits)
        i = sem.index((m.token,)) if not m.skip else sem.index(())
        example = f"`{_md(_inline(codec, sem.inputs[0]))}` → `{_md(_inline(codec, sem.outputs[i][0]))}`"
        same = f" (= {', '.join(f't{u}' for u in m.equals)})" if m.equals else ""
        out.append(f"| t{m.token} | {uses} | {_md(_token_label(report, m.token))}{same} | {_md(m.primitive or '–')} "
                   f"| {_rate(m.agreement)} | {_md(m.description.text)} | {example} |")
    unused = ", ".join(f"t{t}" for t in report.unused) or "none"
    out += ["", f"Tokens no program uses: {unused}.", "", "![token uses per split](usage.png)", ""]
    ways = written_as(report, most=6)
    if sem.primitives:
        out += ["## Primitives", "",
                f"How the language writes each of the family's {len(sem.primitives)} primitives with the probed "
                "sequences (agreement on at least " f"{NAMED:.0%} of the probes), shortest first:", ""]
        if ways:
            out += ["| primitive | written as |", "|---|---|"]
            out += [f"| {_md(name)}{_md(_alike_text(alike, 8))} | "
                    + " · ".join(f"`{sequence_text(q)}`" for q in seqs) + " |" for name, seqs, alike in ways]
        else:
            out.append("No probed sequence agrees with any primitive.")
        out.append("")
    lengths = {s.split: length_histogram(s.programs) for s in report.splits}
    all_lengths = sorted({n for h in lengths.values() for n in h})
    out += ["## Program lengths", "", "| length | " + " | ".join(map(_md, splits)) + " |",
            "|---:|" + "---:|" * len(splits)]
    out += [f"| {n} | " + " | ".join(str(lengths[s].get(n, 0)) for s in splits) + " |" for n in all_lengths]
    out += ["", "## Pairs", "",
            "Each ordered pair `a b` (a runs first). Where both tokens are named, the heat map shows how often `a b` "
            "agrees with the composition of their primitives; otherwise how often it equals its closest single "
            "token. Pairs that act as one primitive or one token:", "",
            "| pair | composition agreement | closest primitive | agreement | same as token | agreement |",
            "|---|---:|---|---:|---|---:|"]
    p = report.semantics.pairs
    for i, a in enumerate(p.tokens):
        for j, b in enumerate(p.tokens):
            named = p.primitive_agreement[i, j] >= NAMED
            single = p.single_agreement[i, j] >= NAMED
            if not (named or single):
                continue
            same = "(empty)" if p.single[i, j] == lang.skip else f"t{p.single[i, j]}"
            out.append(f"| t{a} t{b} | {_rate(float(p.composed[i, j]))} | {_md(p.primitive[i][j] or '–')} | "
                       f"{_rate(float(p.primitive_agreement[i, j]))} | {same if single else '–'} | "
                       f"{_rate(float(p.single_agreement[i, j]))} |")
    out += ["", "![pair agreement](pairs.png)", "", "## Aliases", "",
            "Tokens, ordered pairs" + (" and sequences of 3 used tokens" if max(map(len, sem.sequences)) > 2 else "")
            + " that give identical outputs on every probe, shortest first (`(empty)` is the identity).", ""]
    if sem.classes:
        out += ["| class | members | meaning |", "|---:|---|---|"]
        for n, cls in enumerate(sem.classes, 1):
            shown = " = ".join(f"`{sequence_text(c)}`" for c in cls[:12]) + (f" (+{len(cls) - 12} more)"
                                                                                 if len(cls) > 12 else "")
            name, rate = sem.sequence_primitive[sem.index(cls[0])]
            meaning = name if rate is not None and rate >= NAMED else "–"
            out.append(f"| {n} | {shown} | {_md(meaning)} |")
    else:
        out.append("No two probed sequences behave identically.")
    if report.mining is not None:
        mining = report.mining
        names = dict(mining.aliases)
        out += ["", "## Mined macros", "",
                "Frequent n-grams of the programs, chosen greedily by the tokens they save (programs are written "
                "with the longest macro that fits at each position). `consistency`: how often the n-gram as one "
                "program equals its tokens run one after the other.", ""]
        if mining.macros:
            out += ["| macro | tokens | uses | tokens saved | closest primitive | agreement | consistency |",
                    "|---|---|---:|---:|---|---:|---:|"]
            for m in mining.macros:
                out.append(f"| `{_md(m.name)}` | `{sequence_text(m.tokens, names)}` | {m.uses} | {m.saved} | "
                           f"{_md(m.primitive or '–')} | {_rate(m.agreement)} | {_rate(m.consistency)} |")
        else:
            out.append("No n-gram saves enough tokens to be worth a macro.")
        out += ["", "| split | tokens before | after | shorter | + definitions | shorter with them | bytes before | "
                "after | file |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for s in mining.splits:
            out.append(f"| {_md(s.split)} | {s.before} | {s.after} | {s.shorter:.0%} | {s.library} | "
                       f"{s.shorter_with_library:.0%} | {s.bytes_before} | {s.bytes_after} | "
                       f"{'`' + _md(Path(s.file).name) + '`' if s.file else '–'} |")
    out += ["", "## Examples", ""]
    for m in sem.tokens:
        if not m.skip:
            out += [f"### t{m.token}: {_md(_token_label(report, m.token))}", "", f"{_md(m.description.text)}.", "",
                    f"![t{m.token}]({_token_plot_name(m.token)})", ""]
    return "\n".join(out).rstrip() + "\n"


def _nan_none(a: np.ndarray) -> list[Any]:
    return [[None if math.isnan(float(v)) else round(float(v), 4) for v in row] for row in np.asarray(a, float)]


def _report_json(report: InspectReport) -> dict[str, Any]:
    lang, sem, codec = report.language, report.semantics, report.codec
    splits = [s.split for s in report.splits]
    tokens = []
    for m in sem.tokens:
        i = sem.index(()) if m.skip else sem.index((m.token,))
        tokens.append({
            "token": m.token, "skip": m.skip, "uses": {s: int(report.usage[s][m.token]) for s in splits},
            "meaning": m.meaning, "named": m.named,
            "primitive": m.primitive, "agreement": None if m.agreement is None else round(m.agreement, 4),
            "description": m.description.to_json(), "equals": list(m.equals),
            "examples": [{"input": json_value(codec.decode(sem.inputs[e])), "output": json_value(codec.decode(
                sem.outputs[i][e]))} for e in range(min(_EXAMPLES, len(sem.inputs)))],
        })
    p = sem.pairs
    return {
        "format": JSON_FORMAT, "version": JSON_VERSION, "run": report.run_dir,
        "language": {"name": lang.name, "fingerprint": lang.fingerprint, "vocab": lang.vocab, "skip": lang.skip,
                     "max_length": lang.max_length},
        "family": report.family, "primitives": list(sem.primitives),
        "probes": {"count": int(len(sem.inputs)), "source": report.probe_source},
        "splits": [{"split": s.split, "source": s.source, "solved": s.solved, "note": s.note,
                    "accuracy": s.accuracy, "programs": len(s.programs), "tokens": sum(map(len, s.programs)),
                    "lengths": {str(k): v for k, v in length_histogram(s.programs).items()},
                    "usage": [int(c) for c in report.usage[s.split]]} for s in report.splits],
        "tokens": tokens, "used": list(report.used), "unused": list(report.unused),
        "realized": [{"primitive": name, "sequences": [list(q) for q in seqs]} for name, seqs in sem.realized],
        "pairs": {"tokens": list(p.tokens), "composed": _nan_none(p.composed),
                  "primitive": [list(r) for r in p.primitive], "primitive_agreement": _nan_none(p.primitive_agreement),
                  "single": [[int(v) for v in r] for r in p.single], "single_agreement": _nan_none(p.single_agreement)},
        "classes": [{"members": [list(c) for c in cls], "primitive": sem.sequence_primitive[sem.index(cls[0])][0],
                     "agreement": _round(sem.sequence_primitive[sem.index(cls[0])][1])} for cls in sem.classes],
        "mining": report.mining.to_json() if report.mining is not None else None,
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


# --- plots ---------------------------------------------------------------------------------------------------------


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(fig)
    return buf.getvalue()


def _plots(report: InspectReport) -> dict[str, bytes]:
    """File name -> PNG bytes: token uses, the pair heat map, and one example plot per token."""
    import matplotlib  # loads only where plots are drawn: it takes a second to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lang, sem = report.language, report.semantics
    out = {}
    tokens = [t for t in range(lang.vocab) if t != lang.skip]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(tokens) + 2), 3.2))
    width = 0.8 / max(1, len(report.splits))
    for k, s in enumerate(report.splits):
        ax.bar(np.arange(len(tokens)) + k * width, [int(report.usage[s.split][t]) for t in tokens], width,
               label=s.split)
    ax.set_xticks(np.arange(len(tokens)) + width * (len(report.splits) - 1) / 2, [f"t{t}" for t in tokens])
    ax.set_ylabel("uses in programs")
    ax.set_title(f"{lang.name}: token uses")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out["usage.png"] = _png(fig)

    p = sem.pairs
    k = len(p.tokens)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * k + 2), max(3.5, 0.5 * k + 1.5)))
    im = ax.imshow(p.score, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(k), [f"t{t}" for t in p.tokens], fontsize=7)
    ax.set_yticks(range(k), [f"t{t}" for t in p.tokens], fontsize=7)
    ax.set_xlabel("b (runs second)")
    ax.set_ylabel("a (runs first)")
    ax.set_title("`a b`: agreement with b∘a (named) or the closest token", fontsize=9)
    if k <= 16:
        for i in range(k):
            for j in range(k):
                label = ""
                if p.primitive_agreement[i, j] >= NAMED:
                    label = str(p.primitive[i][j])
                elif p.single_agreement[i, j] >= NAMED:
                    label = "()" if p.single[i, j] == lang.skip else f"t{p.single[i, j]}"
                ax.text(j, i, label, ha="center", va="center", fontsize=5, color="w" if p.score[i, j] < 0.5 else "k")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    out["pairs.png"] = _png(fig)

    codec = report.codec
    grid = isinstance(codec, GridCodec)
    n = min(_EXAMPLES, len(sem.inputs))
    for m in sem.tokens:
        if m.skip:
            continue
        ys = sem.outputs[sem.index((m.token,))]
        fig, axes = plt.subplots(n, 2, figsize=(6 if not grid else 4, 0.5 + (0.5 if not grid else 1.6) * n),
                                 squeeze=False)
        for e in range(n):
            for c, (row, title) in enumerate(((sem.inputs[e], "input"), (ys[e], "output"))):
                ax = axes[e][c]
                data = row.reshape(codec.rows, codec.cols) if grid else row[None, :]
                # Colours only (the report's tables hold the values): text in every cell triples the drawing time.
                ax.imshow(data, cmap="tab10" if codec.values <= 10 else "viridis", vmin=0,
                          vmax=max(codec.values - 1, 1), aspect="auto" if not grid else "equal",
                          interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if e == 0:
                    ax.set_title(title, fontsize=8)
        fig.suptitle(f"t{m.token}: {_token_label(report, m.token)}", fontsize=9)
        fig.tight_layout()
        out[_token_plot_name(m.token)] = _png(fig)
    return out


def write_report(report: InspectReport, out: str | Path) -> list[Path]:
    """Write `report.md`, `inspect.json` and the plots into `out` (atomically, file by file); returns the paths.

    Raises:
        CheckpointError: a file cannot be written (a full disk, a read-only folder).
    """
    out = Path(out)
    files = {REPORT_FILE: format_markdown(report).encode(),
             JSON_FILE: (json.dumps(report.to_json(), indent=1, sort_keys=True) + "\n").encode()}
    files |= _plots(report)
    paths = []
    for name, data in files.items():
        _write(out / name, data)
        paths.append(out / name)
    return paths
