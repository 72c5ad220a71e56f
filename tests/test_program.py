"""Program files: canonical round trips (snapshots), the malformed-file corpus, and language checks.

Files: `tests/data/programs/*.nlp` are canonical snapshots (`X.input.nlp` is messy input whose canonical form is
`X.nlp`); `tests/data/bad_programs/NAME.nlp` fail with the class and the located messages in `NAME.expect`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlic.grammar.errors import NlicError, ProgramError, ProgramSyntaxError
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
from nlic.runtime.replay import Language, check_programs, program_file
import nlic.grammar.program as module

DATA = Path(__file__).parent / "data"
GOOD = sorted(p for p in (DATA / "programs").glob("*.nlp") if not p.name.endswith(".input.nlp"))
MESSY = sorted((DATA / "programs").glob("*.input.nlp"))
BAD = sorted((DATA / "bad_programs").glob("*.nlp"))
# The language every file in bad_programs/ is checked against after it parses.
REFERENCE = Language("shift_l", "3f2a9c1e7b04d2aa", vocab=16, skip=0, max_length=8)


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_canonical_snapshot_prints_identically(path):
    text = _read(path)
    pf = parse_programs(text, str(path))
    assert format_programs(pf) == text
    assert parse_programs(format_programs(pf)) == pf


@pytest.mark.parametrize("path", MESSY, ids=lambda p: p.name)
def test_messy_input_prints_as_its_snapshot(path):
    snapshot = path.with_name(path.name.replace(".input.nlp", ".nlp"))
    pf = load_programs(path)
    printed = format_programs(pf)
    assert printed == _read(snapshot)
    assert parse_programs(printed) == pf
    assert format_programs(parse_programs(printed)) == printed


def test_corpus_is_large_enough():
    assert len(BAD) >= 20
    assert all(p.with_suffix(".expect").exists() for p in BAD)


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_program_file(path):
    kind, *expected = path.with_suffix(".expect").read_text().splitlines()
    with pytest.raises(NlicError) as info:
        check_programs(load_programs(path), REFERENCE)
    assert type(info.value).__name__ == kind
    rendered = info.value.render()
    for line in expected:
        assert line in rendered, f"missing {line!r} in\n{rendered}"
    # Every diagnostic says where (file:line:col, or at least the file) and how to fix it (most of them).
    for d in info.value.diagnostics:
        assert d.loc is not None and d.loc.path == str(path)


def test_semantic_errors_all_reported_at_once():
    text = (DATA / "bad_programs" / "multiple_errors.nlp").read_text()
    with pytest.raises(ProgramError) as info:
        parse_programs(text, "m.nlp")
    assert len(info.value.diagnostics) == 3
    lines = [d.loc.line for d in info.value.diagnostics]
    assert lines == sorted(lines)


def test_ast_keeps_locations_but_equality_ignores_them():
    text = _read(DATA / "programs" / "shift_learned.nlp")
    pf = parse_programs(text, "x.nlp")
    p = pf.get("task_0002")
    assert (p.loc.line, p.loc.col) == (9, 1)
    assert p.token_locs[0].col == len("program task_0002 = ") + 1
    assert pf.aliases[1] == Alias(5, "shift2")
    shifted = parse_programs("\n\n" + text, "y.nlp")
    assert shifted == pf and shifted.get("task_0002").loc.line == 11
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.id = "other"  # type: ignore[misc]


def test_parsed_values():
    pf = load_programs(DATA / "programs" / "shift_learned.nlp")
    assert pf.header == Header(1, "shift_l", "3f2a9c1e7b04d2aa", 16, 0, 16)
    assert pf.get("task_0001").tokens == (3, 3, 5)
    assert pf.get("task_0001").field("steps") == 50
    assert pf.get("task_0001").field("fit") == 1.0
    assert pf.get("ood/0003#b").field("loglik") == "-inf"
    assert pf.get("a task with spaces").tokens == (3,)
    assert pf.get("identity").tokens == ()
    arr = pf.array(["identity", "task_0001", "task_0001"], 6)
    np.testing.assert_array_equal(arr, [[0] * 6, [3, 3, 5, 0, 0, 0], [3, 3, 5, 0, 0, 0]])
    assert arr.dtype == np.int32
    with pytest.raises(ProgramError, match="more than 4"):
        pf.array(["task_0002"], 4)
    with pytest.raises(ProgramError, match="did you mean 'task_0001'"):
        pf.get("task_001")


def test_skip_tokens_and_aliases_normalise():
    head = 'nlic-programs 1\nlanguage "l"\nvocab 8 skip t2 max_length 3\nalias t2 = nop\nalias t1 = one\n'
    pf = parse_programs(head + "program a = t1 nop t2 one t0 nop\n")
    assert pf.get("a").tokens == (1, 1, 0)  # skip (t2, alias nop) dropped; 3 tokens fit max_length 3
    assert format_programs(pf).endswith("program a = one one t0\n")


def test_program_ids_are_quoted_only_when_needed():
    ids = ["plain_1", "a-b.c/d#e", "7", "#starts_with_hash", "with space", 'quote"d', "ünïcode", "tab\there"]
    lang = Language("l", "ab", 4, 0, 2)
    pf = program_file(lang, ids, np.array([[1, 0]] * len(ids)))
    text = format_programs(pf)
    assert "program plain_1 = t1\n" in text and "program a-b.c/d#e = t1\n" in text
    assert 'program "#starts_with_hash" = t1\n' in text and 'program "quote\\"d" = t1\n' in text
    back = parse_programs(text)
    assert back.ids == tuple(ids) and back == pf


def test_program_file_from_search_results_rounds_metadata():
    lang = Language("shift_l", "3f2a", 16, 0, 4)
    meta = [{"fit": np.float32(0.333333), "loglik": float("-inf"), "search": "gradient", "steps": np.int64(5),
             "correct": True}]
    pf = program_file(lang, ["t"], np.array([[3, 0, 3, 0]]), meta)
    assert pf.programs[0] == Program("t", (3, 3), (("correct", "yes"), ("fit", 0.3333), ("loglik", "-inf"),
                                                   ("search", "gradient"), ("steps", 5)))
    text = format_programs(pf)
    assert 'program t = t3 t3 [correct=yes fit=0.3333 loglik="-inf" search=gradient steps=5]\n' in text
    assert parse_programs(text) == pf


def test_round_trip_of_random_files():
    rng = np.random.default_rng(0)
    for trial in range(30):
        vocab = int(rng.integers(2, 40))
        skip = int(rng.integers(0, vocab))
        max_length = int(rng.integers(1, 12))
        names = {int(t): f"op_{t}" for t in rng.choice(vocab, size=min(vocab, 3), replace=False)}
        n = int(rng.integers(0, 6))
        programs = rng.integers(0, vocab, size=(n, max_length))
        ids = [f"task {trial}/{i}" if i % 2 else f"task_{i}" for i in range(n)]
        meta = [{"fit": float(rng.random()), "k": int(rng.integers(-5, 5))} for _ in range(n)]
        pf = program_file(Language(f"lang{trial}", "abc123", vocab, skip, max_length), ids, programs, meta, names)
        text = format_programs(pf)
        back = parse_programs(text)
        assert back == pf
        assert format_programs(back) == text


def test_fingerprint_check_names_both_languages():
    pf = load_programs(DATA / "programs" / "shift_learned.nlp")
    check_programs(pf, Language("shift_l", "3f2a9c1e7b04d2aa", 16, 0, 16))
    with pytest.raises(ProgramError) as info:
        check_programs(pf, Language("shift_p", "0000aaaa", 16, 0, 16))
    msg = info.value.render()
    assert "'shift_l' (fingerprint 3f2a9c1e7b04d2aa)" in msg and "'shift_p' (fingerprint 0000aaaa)" in msg


def test_hand_written_file_without_fingerprint_is_checked_by_name():
    pf = load_programs(DATA / "programs" / "hand_written.nlp")
    assert pf.header.fingerprint is None
    check_programs(pf, Language("shift_l", "anything", 16, 0, 16))
    with pytest.raises(ProgramError, match="language 'shift_l', but this run's language is 'shift_p'"):
        check_programs(pf, Language("shift_p", "anything", 16, 0, 16))


def test_syntax_errors_name_expected_tokens_readably():
    head = 'nlic-programs 1\nlanguage "l"\nvocab 8 skip t0 max_length 3\n'
    with pytest.raises(ProgramSyntaxError) as info:
        parse_programs(head + "program = t1\n", "f.nlp")
    (d,) = info.value.diagnostics
    assert str(d.loc) == "f.nlp:4:9"
    assert d.message == "unexpected '='" and "a program id" in d.hint and "a quoted string" in d.hint
    assert "__" not in d.hint and "_NL" not in d.hint


BAD_CLI = ["empty", "binary", "truncated_header", "unknown_alias", "too_long"]


@pytest.mark.parametrize("name", BAD_CLI)
def test_cli_reports_bad_program_files_without_traceback(name, tmp_path):
    # `nlic run` parses the program file before it needs a run; a missing run dir would be reported too, so
    # give it one that does not exist and expect the program-file error first.
    path = DATA / "bad_programs" / f"{name}.nlp"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "nlic.runtime", "run", str(tmp_path / "no_run"), str(path), "--inputs", str(path)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    expected = path.with_suffix(".expect").read_text().splitlines()[1]
    assert expected in proc.stderr
    assert proc.stderr.startswith(str(path))


def test_header_loc_and_programs_are_frozen_dataclasses():
    pf = ProgramFile(Header(1, "l", None, 4, 0, 2))
    assert format_programs(pf) == 'nlic-programs 1\nlanguage "l"\nvocab 4 skip t0 max_length 2\n'
    assert parse_programs(format_programs(pf)) == pf


def test_format_example_in_module_docstring_parses():
    doc = module.__doc__
    block = doc.split("::\n\n", 1)[1].split("\n\n- ", 1)[0]
    text = "\n".join(line[4:] for line in block.splitlines()) + "\n"
    pf = parse_programs(text, "docstring")
    assert pf.ids == ("task_0001", "task_0002", "task with spaces", "identity_task")
    assert pf.get("task_0001").tokens == (3, 3, 5)
    assert pf.macros == (Macro("shift3", (3, 5)),)
    assert pf.get("task_0002").tokens == (3, 5, 3, 5, 7)  # as the docstring says


def test_language_errors_point_at_the_header_line_that_differs():
    text = 'nlic-programs 1\n# trained on 2026-11-21\n\nlanguage "x" fingerprint ab12\n# vocab:\nvocab 8 skip t0 max_length 4\n'
    with pytest.raises(ProgramError) as info:
        check_programs(parse_programs(text, "h.nlp"), Language("y", "cd34", 9, 0, 4))
    assert [str(d.loc) for d in info.value.diagnostics] == ["h.nlp:4:1", "h.nlp:6:1"]
