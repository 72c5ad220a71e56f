"""`nlic inspect`: probing with a fake executor whose semantics the test controls (naming, descriptions, pairs,
aliases), the families' primitives, mining, and end to end on a tiny trained run (report files, determinism, the
mining round trip through format -> parse -> replay, and every bad input)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nlic.compiler import parse_spec
from nlic.compiler.families.base import Primitive
from nlic.compiler.families.deepcoder import CODEC, DEEPCODER
from nlic.compiler.families.shift import SHIFT
from nlic.compiler.families.string_rules import RULES, STRING_RULES, run_programs
from nlic.compiler.identity import fingerprint
from nlic.grammar.errors import CheckpointError, ProgramError, SpecError
from nlic.grammar.program import Header, Macro, Program, ProgramFile, format_programs, load_programs, parse_programs
from nlic.runtime import inspect_run, replay
from nlic.runtime.cli import main
from nlic.runtime.inspection import (
    agreements,
    alias_classes,
    analyze,
    candidate_outputs,
    describe,
    probe_sequences,
    run_sequences,
    run_sequentially,
    token_usage,
)
from nlic.runtime.mining import abbreviate, mined_file, name_macros, select_macros, token_aliases
from nlic.runtime.report import primitive_ways
from nlic.runtime.run_dir import load_run
from nlic.runtime.train import train

L, V = 12, 5


# --- a language whose meaning the test fixes -----------------------------------------------------------------------

def _step(y: np.ndarray, t: int) -> np.ndarray:
    if t in (1, 2, 3):
        return np.roll(y, t)  # shift by t
    if t == 4:
        return (y + 1) % V  # inc
    if t == 5:
        return y[::-1]  # reverse
    if t == 6:
        return np.roll(y, 1) if y[0] != 0 else y  # shift1, except on inputs starting with 0
    if t == 7:
        return V - 1 - np.roll(y, 2)  # shift2, then complement
    return y


def fake_execute(programs: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    out = np.empty_like(inputs)
    for r, (program, x) in enumerate(zip(programs, inputs)):
        y = x
        for t in program:
            y = _step(y, int(t))
        out[r] = y
    return out


@pytest.fixture(scope="module")
def probes() -> np.ndarray:
    return np.random.default_rng(0).integers(0, V, (40, L)).astype(np.int32)


@pytest.fixture(scope="module")
def semantics(probes):
    prims = SHIFT.primitives({"split": "comp_i", "length": L, "alphabet": V})
    return analyze(fake_execute, probes, vocab=8, skip=0, values=V, primitives=prims, length=3, focus=[1, 2])


def test_tokens_are_named_by_their_primitive_with_agreement_one(semantics):
    names = {m.token: (m.primitive, m.agreement, m.named) for m in semantics.tokens}
    assert names[1] == ("shift1", 1.0, True)
    assert names[2] == ("shift2", 1.0, True)
    assert names[3] == ("shift3", 1.0, True)
    assert names[4] == ("inc", 1.0, True)
    assert names[5] == ("reverse", 1.0, True)
    assert semantics.tokens[0].skip and semantics.tokens[0].meaning == "skip (no-op)"


def test_a_token_doing_two_primitives_is_named_by_their_composition(semantics):
    both = semantics.tokens[7]
    assert (both.primitive, both.agreement, both.named) == ("shift2_complement", 1.0, True)
    assert both.meaning == "shift2 then complement"


def test_each_primitive_is_found_with_its_shortest_programs(semantics):
    realized = dict(semantics.realized)
    assert realized["shift1"][0] == (1,) and realized["shift2"][:2] == ((2,), (1, 1))
    assert realized["reverse"] == ((5,),) and realized["inc"] == ((4,),)
    assert "complement" not in realized  # t7 needs a shift by 10 after it: no probed sequence does that


def test_a_token_right_on_most_probes_only_is_not_named(semantics, probes):
    noisy = semantics.tokens[6]
    expected = float(np.mean(probes[:, 0] != 0))
    assert noisy.primitive == "shift1" and noisy.agreement == pytest.approx(expected)
    assert 0.5 < expected < 0.99 and not noisy.named
    assert noisy.meaning == "unnamed (closest shift1)"


def test_descriptions_name_moves_and_value_maps(semantics, probes):
    assert semantics.tokens[3].description.text == "position i <- i-3 (mod 12), values kept on 100% of probes"
    assert semantics.tokens[4].description.text == "positions kept, value v -> v+1 mod 5 on 100% of probes"
    assert semantics.tokens[5].description.text == "position i <- 11-i (reversed), values kept on 100% of probes"
    both = describe(probes, fake_execute(np.array([[3, 4]] * len(probes)), probes), V)
    assert (both.offset, both.mirrored, both.agreement) == (3, False, 1.0)
    assert both.text == "position i <- i-3 (mod 12), value v -> v+1 mod 5 on 100% of probes"
    complement = describe(probes, V - 1 - probes, V)
    assert complement.text == "positions kept, value v -> 4-v on 100% of probes"


def test_pairs_compose_named_primitives_and_find_equal_tokens(semantics):
    p = semantics.pairs
    i = {t: k for k, t in enumerate(p.tokens)}
    assert p.composed[i[1], i[1]] == 1.0 and p.primitive[i[1]][i[1]] == "shift2" and p.single[i[1], i[1]] == 2
    assert p.composed[i[1], i[4]] == 1.0  # shift1 then inc holds; no single primitive does both
    assert p.primitive[i[1]][i[4]] == "shift1_inc" and p.primitive_agreement[i[1], i[4]] == 1.0
    assert p.single[i[5], i[5]] == 0 and p.single_agreement[i[5], i[5]] == 1.0  # reverse twice is the identity
    assert np.isnan(p.composed[i[6], i[1]])  # t6 is not named
    assert p.score.shape == (7, 7)


def test_alias_classes_group_identical_sequences_shortest_first(semantics):
    classes = {c[0]: set(c) for c in semantics.classes}
    assert {(2,), (1, 1)} <= classes[(2,)]
    assert {(3,), (1, 2), (2, 1), (1, 1, 1)} <= classes[(3,)]
    assert {(), (5, 5)} <= classes[()]
    assert all(len(c) >= 2 and c == tuple(sorted(c, key=lambda s: (len(s), s))) for c in semantics.classes)
    # Sequences of 3 are made of the focus tokens only.
    assert all(set(s) <= {1, 2} for s in semantics.sequences if len(s) == 3)
    assert probe_sequences(4, 0, length=3, focus=[2])[-1] == (2, 2, 2)


def test_running_sequentially_equals_one_program_for_this_executor(probes):
    seqs = [(1, 4), (5, 2, 3)]
    together = run_sequences(fake_execute, seqs, probes, skip=0, width=3)
    apart = run_sequentially(fake_execute, seqs, probes, skip=0, width=3)
    assert np.array_equal(together, apart)
    assert agreements(together, together).diagonal().tolist() == [1.0, 1.0]
    assert alias_classes([(1,), (2,)], together[:, :0]) == (((1,), (2,)),)  # no probes: all alike


# --- families ------------------------------------------------------------------------------------------------------

def test_shift_primitives():
    names = [p.name for p in SHIFT.primitives({"split": "shift_l", "length": 6})]
    assert names == ["identity", "shift1", "shift2", "shift3", "shift4", "shift5"]
    comp = {p.name: p for p in SHIFT.primitives({"split": "comp_i", "length": 6, "alphabet": 10})}
    x = np.array([[0, 1, 2, 3, 4, 9]], np.int32)
    assert comp["shift2"](x).tolist() == [[4, 9, 0, 1, 2, 3]]
    assert comp["double"](x).tolist() == [[0, 2, 4, 6, 8, 8]]
    assert comp["complement"](x).tolist() == [[9, 8, 7, 6, 5, 0]]


def test_string_rules_primitives_are_the_rules_with_fixed_parameters():
    prims = STRING_RULES.primitives({})
    assert len(prims) == 42 and len({p.name for p in prims}) == 42
    x = np.random.default_rng(1).integers(0, 5, (30, 1, 10))
    for p in prims:
        kw = {"k": 1, "m": 1, "n": 2, "f": 0, **{k: v for k, v in p.fn.keywords.items()}}
        prog = {key: np.full((30, 1), kw[key]) for key in ("kind", "k", "m", "n", "f")}
        assert np.array_equal(run_programs(prog, x)[:, 0], p(x[:, 0])), p.name
        assert p.name.startswith(RULES[kw["kind"] - 1])


def test_deepcoder_primitives_decode_apply_encode_and_mark_undefined():
    prims = {p.name: p for p in DEEPCODER.primitives({})}
    assert {"sort", "map_times2", "zipwith_add", "scanl1_max"} <= set(prims)
    x = np.stack([CODEC.encode([3, -1, 2]), CODEC.encode({"x0": 2, "x1": [5, 6, 7]}), CODEC.encode(4)])
    sort = prims["sort"](x)
    assert CODEC.decode(sort[0]) == [-1, 2, 3] and CODEC.decode(sort[1]) == [5, 6, 7]
    assert (sort[2] == -1).all()  # no list input: undefined
    assert CODEC.decode(prims["take"](x)[1]) == [5, 6]
    assert prims["map_times2"].description == "Map (*2)"


def test_compositions_reuse_their_first_step_and_keep_undefined_rows(probes):
    prims = DEEPCODER.primitives({})
    x = np.stack([CODEC.encode([3, -1, 2]), CODEC.encode({"x0": 2, "x1": [5, 6, 7]}), CODEC.encode(4)])
    candidates, outputs = candidate_outputs(prims, x)
    assert len(candidates) == len(prims) + len(prims) ** 2 and candidates[len(prims)].name == "head_head"
    for k in (len(prims) + 7, len(prims) + 300, len(candidates) - 1):
        assert np.array_equal(candidates[k](x), outputs[k]), candidates[k].name
    by_name = dict(zip((c.name for c in candidates), outputs))
    assert CODEC.decode(by_name["sort_head"][0]) == -1 and (by_name["sum_sort"] == -1).all()  # int into Sort


def test_primitive_names_must_not_look_like_tokens():
    with pytest.raises(ValueError, match="token"):
        Primitive("t3", np.copy)
    with pytest.raises(ValueError):
        Primitive("map (+1)", np.copy)


# --- mining --------------------------------------------------------------------------------------------------------

def _pf(programs: list[tuple[int, ...]]) -> ProgramFile:
    header = Header(1, "fake", None, 7, 0, 12)
    return ProgramFile(header, programs=tuple(Program(f"p{i}", p) for i, p in enumerate(programs)))


def test_select_macros_saves_the_most_tokens_and_matches_the_printer():
    programs = [(1, 1, 1, 1, 2)] * 5 + [(1, 1, 1, 1)] * 3 + [(3, 4, 3, 4, 5)] * 2 + [(5,)]
    chosen = select_macros(programs)
    # (1 1 1 1) saves 8 x 3 tokens less its 4-token definition, more than (1 1 1 1 2) alone (5 x 4 - 5); then
    # (3 4 3 4 5) saves 2 x 4 - 5; (1 1 1 1 2) on top would save 5 x 1 tokens and cost 5: not worth it.
    assert chosen == [(1, 1, 1, 1), (3, 4, 3, 4, 5)]
    assert select_macros([(1, 2), (3, 4)]) == [] and select_macros([]) == []
    pf = _pf(programs).with_macros([Macro(f"m{i}", m) for i, m in enumerate(chosen)])
    words = [line.split(" = ", 1)[1].split() for line in format_programs(pf).splitlines() if line.startswith("program")]
    assert [len(w) for w in words] == [len(abbreviate(p, chosen)) for p in programs]


def test_macros_are_named_uniquely_and_the_mined_file_round_trips(probes):
    prims = SHIFT.primitives({"split": "comp_i", "length": L, "alphabet": V})
    prim_out = np.stack([p(probes) for p in prims])
    programs = [(1, 1, 1, 4), (1, 1, 1), (1, 1, 1, 5), (4, 5, 4, 5), (4, 5, 4, 5)]
    chosen = select_macros(programs)
    outs = run_sequences(fake_execute, chosen, probes, skip=0)
    taken: set[str] = set()
    aliases = token_aliases({1: "shift1", 3: "shift3", 4: "inc", 6: "shift1"}, taken)
    assert aliases == ((1, "shift1"), (3, "shift3"), (4, "inc"), (6, "shift1_2"))
    macros = name_macros(chosen, outs, run_sequentially(fake_execute, chosen, probes, skip=0, width=3), prim_out,
                         [p.name for p in prims], programs, taken)
    by_tokens = {m.tokens: m for m in macros}
    assert by_tokens[(1, 1, 1)].name == "shift3_2" and by_tokens[(1, 1, 1)].agreement == 1.0
    assert by_tokens[(4, 5)].name == "m1" and by_tokens[(4, 5)].consistency == 1.0
    assert [m.saved for m in macros] == sorted((m.saved for m in macros), reverse=True)
    pf = mined_file(_pf(programs), macros, aliases)
    text = format_programs(pf)
    assert "alias shift3_2 = shift1 shift1 shift1" in text and "program p3 = m1 m1" in text
    back = parse_programs(text)
    assert [p.tokens for p in back.programs] == programs and format_programs(back) == text


# --- end to end on a tiny trained run ------------------------------------------------------------------------------

SPEC = """
version: 1
name: tiny_inspect
seed: 0
task:
  family: shift
  params: {split: shift_l, length: 12, alphabet: 5}
  pairs: 3
language: {vocab: 6, length: 3, max_length: 6}
model:
  kind: nli
  inductor: {layers: 1, width: 16, heads: 2, head_hidden: 16}
  executor: {layers: 1, width: 16, heads: 2}
training: {steps: 0, batch: 8, warmup: 1, log_every: 1, eval_every: 0, checkpoint_every: 0}
search: {method: none, batch: 8}
eval: {tasks: 6, splits: [id, ood]}
"""

# Programs with repeats, in the run's language (id), and a file of another language (ood).
ID_PROGRAMS = [(1, 2, 1, 2), (1, 2, 1, 2, 3), (3, 3), (1, 2), (4,), ()]


def _cli(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    # Untrained weights (0 steps: no training step to compile): inspection needs a run, not a good language.
    d = tmp_path_factory.mktemp("inspect")
    spec = parse_spec(SPEC, str(d / "tiny.yaml"))
    train(spec, out=d / "run", progress=False)
    run = d / "run"
    spec, model = load_run(run)
    header = Header(1, spec.name, fingerprint(spec, model), 6, 0, 6)
    mine = ProgramFile(header, programs=tuple(Program(f"id-{i:04d}", p) for i, p in enumerate(ID_PROGRAMS)))
    foreign = ProgramFile(dataclasses.replace(header, fingerprint="0123456789abcdef"),
                          programs=(Program("ood-0000", (1,)),))
    (run / "programs").mkdir()
    (run / "programs" / "id.nlp").write_text(format_programs(mine))
    (run / "programs" / "ood.nlp").write_text(format_programs(foreign))
    return run


@pytest.fixture(scope="module")
def inspected(run_dir):
    lines: list[str] = []
    report = inspect_run(run_dir, out=run_dir.parent / "a", probes=16, mine=True, log=lines.append)
    return report, lines


def test_report_structure_and_files(inspected, run_dir):
    report, lines = inspected
    out = run_dir.parent / "a"
    names = {Path(f).name for f in report.files}
    assert {"report.md", "inspect.json", "usage.png", "pairs.png", "id.mined.nlp", "ood.mined.nlp", "ood.nlp",
            "ood.predictions.jsonl"} <= names
    assert {f"token_t{t}.png" for t in range(1, 6)} <= names and all((out / n).is_file() for n in names)
    assert (out / "usage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "inspect.json").read_text())
    assert data["format"] == "nlic-inspect" and data["version"] == 1
    assert [t["token"] for t in data["tokens"]] == list(range(6)) and data["tokens"][0]["skip"]
    assert data["splits"][0]["usage"] == token_usage(ID_PROGRAMS, 6).tolist()
    assert data["splits"][0]["lengths"] == {"0": 1, "1": 1, "2": 2, "4": 1, "5": 1}
    assert not data["splits"][0]["solved"] and data["splits"][1]["solved"]
    assert data["probes"]["count"] == 16 and "shift3" in data["primitives"]
    assert all(t["agreement"] is not None and 0 <= t["agreement"] <= 1 for t in data["tokens"])
    assert len(data["pairs"]["composed"]) == 5
    md = (out / "report.md").read_text()
    for section in ("## Tokens", "## Program lengths", "## Pairs", "## Aliases", "## Mined macros", "![t1](token_t1.png)"):
        assert section in md
    # The file of another language is reported, and its tasks solved again.
    assert any("is not a program file of this run's language" in line for line in lines)
    assert any("0123456789abcdef" in line for line in lines)


def test_mined_files_are_shorter_and_replay_identically(inspected, run_dir):
    report, _ = inspected
    saving = {s.split: s for s in report.mining.splits}
    assert saving["id"].before == sum(map(len, ID_PROGRAMS)) and saving["id"].after < saving["id"].before
    assert any(m.tokens == (1, 2) or m.tokens == (1, 2, 1, 2) for m in report.mining.macros)
    for split in ("id", "ood"):
        original = report.splits[["id", "ood"].index(split)].program_file
        mined_path = Path(saving[split].file)
        mined = load_programs(mined_path)
        assert [p.tokens for p in mined.programs] == [p.tokens for p in original.programs]
        assert format_programs(parse_programs(mined_path.read_text())) == mined_path.read_text()
        rows = [{"id": pid, "input": [int(v) for v in x]} for pid in original.ids
                for x in np.random.default_rng(3).integers(0, 5, (2, 12))]
        assert replay(run_dir, mined_path, rows) == replay(run_dir, original, rows)
    line = next(x for x in Path(saving["id"].file).read_text().splitlines() if x.startswith("program id-0000 = "))
    assert len(line.split(" = ")[1].split()) < 4  # t1 t2 t1 t2 is written with macros


def test_cli_prints_one_line_per_used_token_and_is_deterministic(inspected, run_dir):
    report, _ = inspected
    code, out, err = _cli("inspect", run_dir, "--out", run_dir.parent / "b", "--probes", 16, "--mine")
    assert code == 0, err
    lines = out.splitlines()
    for t in report.used:
        assert any(line.startswith(f"t{t} ") and f"used {int(report.uses[t])}" in line for line in lines), out
    assert lines[-1] == f"report: {run_dir.parent / 'b' / 'report.md'}"
    assert "probing" in err  # progress goes to stderr
    a, b = (json.loads((run_dir.parent / d / "inspect.json").read_text()) for d in ("a", "b"))
    for data in (a, b):
        for s in data["splits"] + data["mining"]["splits"]:
            s.pop("source", None), s.pop("file", None)
    assert a == b
    for split in ("id", "ood"):
        assert (run_dir.parent / "a" / f"{split}.mined.nlp").read_text() == \
            (run_dir.parent / "b" / f"{split}.mined.nlp").read_text()


def test_an_existing_report_is_refused_unless_forced(inspected, run_dir):
    code, _, err = _cli("inspect", run_dir, "--out", run_dir.parent / "a", "--tasks", "id")
    assert code == 2 and "already exists; refusing to replace it" in err and "--force" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--tasks", "od"], "task family 'shift' has no split 'od' (did you mean 'ood'?)"),
    (["--probes", "0"], "--probes must be between 1"),
])
def test_bad_arguments_are_located_errors(run_dir, argv, message, tmp_path):
    code, _, err = _cli("inspect", run_dir, "--out", tmp_path / "x", *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_damaged_program_file_in_the_run_is_a_located_error(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("programs"))
    (copy / "programs").mkdir()
    (copy / "programs" / "id.nlp").write_text("nlic-programs 1\nlanguage \"tiny_inspect\"\nvocab 6 skip t0\n")
    code, _, err = _cli("inspect", copy, "--tasks", "id", "--out", tmp_path / "x")
    assert code == 2 and f"{copy / 'programs' / 'id.nlp'}:3:" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_a_directory_that_is_not_a_run(tmp_path):
    code, _, err = _cli("inspect", tmp_path)
    assert code == 2 and "not a run directory" in err and str(tmp_path) in err


def test_an_unwritable_out_is_a_located_error(run_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _cli("inspect", run_dir, "--out", blocker / "sub", "--tasks", "id")
    # Refused before probing (`refuse_existing`: an output inside a file), no longer when the report is written.
    assert code == 2 and err.startswith(f"{blocker}: error: the output report file {blocker / 'sub'}") \
        and "would be inside this file" in err, err
    code, _, err = _cli("inspect", run_dir, "--out", blocker, "--tasks", "id")
    assert code == 2 and "--out is a file" in err


def test_a_kind_without_discrete_programs_is_refused(run_dir, monkeypatch):
    import nlic.runtime.report as report_module

    real = report_module.kind_of
    monkeypatch.setattr(report_module, "kind_of",
                        lambda spec: dataclasses.replace(real(spec), name="lpn", discrete_programs=False))
    with pytest.raises(ProgramError, match="model kind 'lpn' has no discrete programs to inspect"):
        inspect_run(run_dir, write=False)


def test_errors_are_nlic_errors_in_the_api(run_dir, tmp_path):
    with pytest.raises(SpecError):
        inspect_run(run_dir, tasks=[], write=False)
    with pytest.raises(CheckpointError):
        inspect_run(tmp_path / "missing")


def test_primitives_equal_on_every_probe_are_one_entry_of_the_summary(probes):
    # A recolour of a value no probe holds is the identity on the probes: it joins the identity's entry rather than
    # repeating its sequences (grid1d with canonical colours listed 48 such lines).
    def recolour(a, b):
        return Primitive(f"recolour_{a}_to_{b}", lambda x: np.where(x == a, b, x).astype(np.int32))

    prims = (Primitive("identity", lambda x: x.copy()), recolour(9, 1), recolour(8, 2),
             Primitive("reverse", lambda x: x[:, ::-1].copy()))
    sem = analyze(fake_execute, probes, vocab=8, skip=0, values=V, primitives=prims, length=2, compose=False)
    assert {name for name, _ in sem.realized} >= {"identity", "recolour_9_to_1", "recolour_8_to_2", "reverse"}
    ways = primitive_ways(sem, (5,))
    assert [(name, alike) for name, _, alike in ways] == [
        ("identity", ("recolour_9_to_1", "recolour_8_to_2")), ("reverse", ())]
    assert dict((name, seqs) for name, seqs, _ in ways)["reverse"][0] == (5,)
