"""Hostile and huge files, as a user or a script could give them, through the CLI in-process: every case ends in
exit 2 with a located message, no traceback, within seconds (issue 18).

Task files go through the `files` family (`nlic data show SPEC`), replay inputs through `nlic run`, on a run
directory made without training (a model of zero weights saved as a run). The time bound is not a speed target:
without the bounds the /dev cases never return and the huge-grid cases work per cell for many seconds.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import jax
import lark
import numpy as np
import pytest

from nlic.compiler import parse_spec
from nlic.compiler.lower import abstract_model
from nlic.grammar import program as program_module
from nlic.grammar.errors import DataError, Loc, NlicError, escape
from nlic.grammar.reading import MAX_DATA_BYTES, list_dir, loads_json
from nlic.runtime.cli import main
from nlic.runtime.run_dir import MODEL_FILE, save_model, write_spec

RUN_SPEC = """
name: hostile
task: {family: shift, params: {split: shift_l, length: 12, alphabet: 5}, pairs: 2}
language: {vocab: 4, length: 2, max_length: 3}
model: {inductor: {layers: 1, width: 8, heads: 1}, executor: {layers: 1, width: 8, heads: 1}}
"""
PROGRAMS = 'nlic-programs 1\nlanguage "hostile"\nvocab 4 skip t0 max_length 3\n\nprogram p = t1\n'
ESC = "\x1b[31m"
LIMIT_S = 5.0  # every case; the /dev ones would never return without the bounds

# JSON texts, each in a task file (under "train": [{"input": X, ...}]) and in a replay input line.
DIGITS = "9" * 5000
HUGE = "1" + "0" * 400
DEEP = "[" * 10000 + "]" * 10000
GRID = "[" + ",".join(["[" + ",".join(["0"] * 3000) + "]"] * 3000) + "]"
BEYOND_C = "18446744073709551616"  # 2**64: no C integer type holds it


def _cli(capsys, *argv) -> tuple[int, str, float]:
    start = time.perf_counter()
    code = main([str(a) for a in argv])
    seconds = time.perf_counter() - start
    captured = capsys.readouterr()
    return code, captured.err, seconds


def _refused(capsys, argv, where, fragment):
    code, err, seconds = _cli(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith(str(where)), err
    assert fragment in err, err
    assert "\x1b" not in err
    assert seconds < LIMIT_S, f"{seconds:.1f} s"
    return err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run directory holding a model of zero weights (replay reads it like a trained one; building a random
    one costs seconds of XLA compilation) and a program file."""
    d = tmp_path_factory.mktemp("hostile")
    spec = parse_spec(RUN_SPEC, str(d / "spec.yaml"))
    model = jax.tree_util.tree_map(
        lambda s: np.zeros(s.shape, s.dtype) if isinstance(s, jax.ShapeDtypeStruct) else s, abstract_model(spec))
    (d / "run").mkdir()
    write_spec(d / "run", spec)
    save_model(d / "run", spec, model, step=0)
    (d / "p.nlp").write_text(PROGRAMS)
    return d


def _files_spec(tmp: Path, data: Path) -> Path:
    spec = tmp / "files.yaml"
    spec.write_text(f"name: f\ntask: {{family: files, params: {{train: {json.dumps(str(data))}}}}}\n")
    return spec


def _link(tmp: Path, name: str, target: str) -> Path:
    path = tmp / name
    path.symlink_to(target)
    return path


# --- task files (files family) ---------------------------------------------------------------------------------

TASK_TEXT = {
    "digits": (DIGITS, ":1:22: error: a number of 5000 digits"),
    "huge": (HUGE, ":1:22: error: a number of 401 digits"),
    "deep": (DEEP, ":1:83: error: JSON nested deeper than 64 levels"),
    "grid": (GRID, ": error: task 't': train pair 1: input is a 3000x3000 grid"),
    "beyond_c": (f"[1, {BEYOND_C}]", f": error: task 't': train pair 1: input has value {BEYOND_C} at position 2, "
                 "more than 65535"),
}


def test_an_unknown_program_ids_hint_lists_at_most_twenty_ids():
    # A program file of a thousand tasks: an unknown id's hint names the first few ids and how many there are
    # (spec keys are still all listed).
    from nlic.grammar.errors import did_you_mean
    ids = [f"task-{k:04d}" for k in range(1000)]
    hint = did_you_mean("zzz", ids, most=20)
    assert hint.startswith("expected one of: task-0000, task-0001,") and hint.endswith(", ... (1000 in all)")
    assert hint.count(",") == 20 and did_you_mean("task-00x7", ids).startswith("did you mean 'task-")
    assert did_you_mean("zzz", ids[:20], most=20) == did_you_mean("zzz", ids[:20]) == "expected one of: " + ", ".join(ids[:20])


@pytest.mark.parametrize("name", sorted(TASK_TEXT))
def test_task_file_with_hostile_json(capsys, tmp_path, name):
    value, fragment = TASK_TEXT[name]
    data = tmp_path / "t.json"
    data.write_text('{"train": [{"input": ' + value + ', "output": [1]}]}')
    _refused(capsys, ["data", "show", _files_spec(tmp_path, data)], data, fragment)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_task_file_that_is_a_device(capsys, tmp_path, device):
    _refused(capsys, ["data", "show", _files_spec(tmp_path, Path(device))], device, "unknown task file type")
    data = _link(tmp_path, "t.jsonl", device)  # named like a task file
    _refused(capsys, ["data", "show", _files_spec(tmp_path, data)], data, "found a device")


# --- replay inputs (`nlic run`) --------------------------------------------------------------------------------

INPUT_TEXT = {
    "digits": (DIGITS, ":1:11: error: a number of 5000 digits"),
    "huge": (HUGE, ":1:11: error: a number of 401 digits"),
    "deep": (DEEP, ":1:74: error: JSON nested deeper than 64 levels"),
    "grid": (GRID, ":1: error: value must be a list of integers"),
    "beyond_c": ("[" + ", ".join([BEYOND_C] * 12) + "]", f":1: error: value has value {BEYOND_C} at position 1, "
                 "outside the alphabet"),
}


@pytest.mark.parametrize("name", sorted(INPUT_TEXT))
def test_replay_input_with_hostile_json(capsys, run, tmp_path, name):
    value, fragment = INPUT_TEXT[name]
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"input": ' + value + "}\n")
    _refused(capsys, ["run", run / "run", run / "p.nlp", "--program", "p", "--inputs", inputs], inputs, fragment)


def test_replay_task_file_with_a_huge_grid(capsys, run, tmp_path):
    task = tmp_path / "p.json"
    task.write_text('{"train": [], "test": [{"input": ' + GRID + "}]}")
    _refused(capsys, ["run", run / "run", run / "p.nlp", "--inputs", task], task, "test[0].input: value must be")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_replay_inputs_that_are_a_device(capsys, run, device):
    _refused(capsys, ["run", run / "run", run / "p.nlp", "--program", "p", "--inputs", device], device,
             "found a device")


class _EndlessStdin:
    """Standard input that never ends (`yes | nlic run ... --inputs -`)."""

    class buffer:  # noqa: N801 (sys.stdin.buffer)
        @staticmethod
        def read(n: int) -> bytes:
            return b"{" * n


def test_endless_standard_input_stops_at_the_limit(capsys, run, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _EndlessStdin())
    err = _refused(capsys, ["run", run / "run", run / "p.nlp", "--program", "p", "--inputs", "-"], "<stdin>",
                   "more than the 256 MiB nlic reads from one input file")
    assert str(MAX_DATA_BYTES) not in err  # said in MiB


# --- specs, program files, run directories ----------------------------------------------------------------------

@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_spec_that_is_a_device(capsys, tmp_path, device):
    spec = _link(tmp_path, "s.yaml", device)
    _refused(capsys, ["validate", spec], spec, "found a device")
    _refused(capsys, ["validate", device], device, "unknown spec file extension")


def test_spec_that_is_a_directory(capsys, tmp_path):
    (tmp_path / "s.yaml").mkdir()
    _refused(capsys, ["validate", tmp_path / "s.yaml"], tmp_path / "s.yaml", "directory")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_program_file_that_is_a_device(capsys, run, device):
    _refused(capsys, ["run", run / "run", device, "--inputs", device], device, "found a device")


def test_program_file_that_is_a_directory(capsys, run, tmp_path):
    _refused(capsys, ["run", run / "run", tmp_path, "--inputs", tmp_path], tmp_path, "found a directory")


def test_endless_pipe_as_program_file_stops_at_the_limit(capsys, run, tmp_path):
    fifo = tmp_path / "p.nlp"
    os.mkfifo(fifo)

    def write_forever():
        try:
            with open(fifo, "wb") as f:
                while True:
                    f.write(b"#" * (1 << 20))
        except OSError:  # the reader closed the pipe
            pass

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    _refused(capsys, ["run", run / "run", fifo, "--inputs", fifo], fifo,
             "the stream holds more than the 64 MiB nlic reads")
    writer.join(timeout=5)


def test_program_file_with_a_5000_digit_token(capsys, run, tmp_path):
    programs = tmp_path / "p.nlp"
    programs.write_text(PROGRAMS + f"program q = t{DIGITS}\n")
    _refused(capsys, ["run", run / "run", programs, "--inputs", programs], programs, ":6:13: error: a number of 5000")


def test_model_file_that_is_a_device(capsys, run, tmp_path):
    broken = tmp_path / "run"
    broken.mkdir()
    for f in (run / "run").iterdir():
        (broken / f.name).symlink_to("/dev/zero" if f.name == MODEL_FILE else f)
    _refused(capsys, ["run", broken, run / "p.nlp", "--program", "p", "--inputs", "/dev/zero"],
             broken / MODEL_FILE, "found a device")



def test_an_output_that_is_a_pipe_or_a_device_is_not_replaced_even_with_force(capsys, run, tmp_path):
    """`--out /dev/null --force` renamed a regular file over the device (as root, /dev/null itself); a pipe became a
    file too. A special file is refused like a directory (a link to /dev/null here: the test must not risk /dev)."""
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"input": [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]}\n')
    fifo, link = tmp_path / "out.fifo", tmp_path / "null.jsonl"
    os.mkfifo(fifo)
    link.symlink_to(os.devnull)
    for out in (fifo, link):
        _refused(capsys, ["run", run / "run", run / "p.nlp", "--program", "p", "--inputs", inputs, "--out", out,
                          "--force"], out, "is a device, pipe or socket, not a regular file; refusing to replace it")
    assert fifo.is_fifo() and link.is_symlink() and os.readlink(link) == os.devnull

# --- control characters are shown escaped ------------------------------------------------------------------------

def test_ansi_escapes_in_task_ids_file_names_and_spec_keys_are_escaped(capsys, run, tmp_path):
    # A task id, echoed by a data error.
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"id": f"{ESC}red", "train": [{"input": [1], "output": [-1]}]}) + "\n")
    err = _refused(capsys, ["data", "show", _files_spec(tmp_path, data)], data, "task '\\x1b[31mred'")
    # A file name, in the location.
    named = tmp_path / f"{ESC}.jsonl"
    named.write_text("{not json\n")
    err = _refused(capsys, ["run", run / "run", run / "p.nlp", "--program", "p", "--inputs", named],
                   escape(str(named)), "not JSON")
    assert "\\x1b[31m.jsonl:1:2: error" in err
    # A program id, echoed by `--program`.
    good = tmp_path / "in.jsonl"
    good.write_text('{"input": [1, 2, 3]}\n')
    _refused(capsys, ["run", run / "run", run / "p.nlp", "--program", f"{ESC}p", "--inputs", good], "--program",
             "no program '\\x1b[31mp'")
    # A spec key (YAML's "\e" is ESC).
    spec = tmp_path / "s.yaml"
    spec.write_text('name: x\n"\\e[31mkey": 1\n')
    _refused(capsys, ["validate", spec], spec, "unknown key '\\x1b[31mkey'")


def test_escape_keeps_text_and_shows_controls():
    assert escape("plain text, ünïcode") == "plain text, ünïcode"
    assert escape("a\x1b[2Jb\tc\nd\x9b\u202e") == "a\\x1b[2Jb\\tc\\nd\\x9b\\u202e"
    assert escape("one\ntwo\x07", keep_newlines=True) == "one\ntwo\\x07"
    assert escape("t\udcff.json") == "t\\udcff.json"  # a file name's undecodable byte: no UTF-8 stream takes it
    assert str(Loc(f"f{ESC}")) == f"f{ESC}"  # a Loc is data; the diagnostic escapes it when shown
    assert DataError("m\x1b", loc=Loc("f\x1b", 1, 2), hint="h\x1b").render() == "f\\x1b:1:2: error: m\\x1b (h\\x1b)"


# --- the JSON bounds themselves --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment, where", [
    ('{"a": "[[[[[[", "b": [1, 2]}', None, None),  # brackets and digits inside strings do not count
    ('["' + "9" * 100 + '"]', None, None),
    ("[" * 64 + "]" * 64, None, None),
    ("[1.5e999]", "number 1.5e999 is out of range", "f:1:2"),
    ('[1, -Infinity]', "-Infinity is not a number JSON allows", "f:1:5"),
    ('[1,\n [' + "9" * 41 + "]]", "a number of 41 digits", "f:2:3"),
    ("[" * 65 + "]" * 65, "JSON nested deeper than 64 levels", "f:1:65"),
    ('{"a": [}', "invalid JSON: Expecting value", "f:1:8"),
    # Half a surrogate pair: json.loads accepts it, and printing the task id to stdout was a UnicodeEncodeError.
    ('["\\ud83d\\ude00", "\\\\ud800", "\\u00e9"]', None, None),  # a whole pair, an escaped backslash, é
    ('{"id": "x",\n "b": ["ok", "a\\ud800"]}', "the string \"a\\ud800\" holds half of a UTF-16 surrogate", "f:2:14"),
    # the halves in the wrong order
    ('["\\udc00\\ud83d"]', 'the string "\\udc00\\ud83d" holds half of a UTF-16 surrogate pair', "f:1:2"),
])
def test_loads_json_bounds(text, fragment, where):
    if fragment is None:
        loads_json(text, path="f", error=DataError)
        return
    with pytest.raises(DataError) as e:
        loads_json(text, path="f", error=DataError)
    assert e.value.render().startswith(f"{where}: error: {fragment}"), e.value.render()


# --- program files: the fast path reads what lark reads ---------------------------------------------------------

HEAD = 'nlic-programs 1\nlanguage "l"  # a comment\nvocab 8 skip t0 max_length 3\n\nalias t3 = shift1\n'
SAME = [
    "program a = t1 t2",
    '  program "q r" =   t1 t0  t2 [ fit = 1.5 s="x y" w=abc ] # comment',
    "program a#b=t1[fit=1.5]",
    "program x = t1#c",
    "program e =",
    "program f = [steps=50 loglik=-0.0132 search=gradient big=1e5 neg=-2.5E-3 q=\"\\u00e9\"]",
    "program g = shift1 t3 t0 t0",
    "program program = t1",
    "program t01 = t01",  # `t01` is token 1 (the fast path leaves it to lark)
    "programz = t1",  # lark's lexer needs no blank here (nor does the fast path take it)
    "program y = t1 [a=1b=2]",
]
DIFFERENT = [  # each line alone after HEAD, each an error
    "program a = t99", "program a = nope", "program a = t1 [k=1 k=2]", 'program "" = t1', 'program "\\ud800" = t1',
    "program a = t1 t1 t1 t1", "program z = t1 [x=1e999]", f"program y = t1 [x={'9' * 50}]",
    "program d = t1\nprogram d = t2", "program a = t1 t2 = t3", "program d = t99\nprogram d = t2",
    "program d = t2\nprogram \"d\" = t99",
]


def _with_lark(text: str) -> program_module.ProgramFile:
    """`parse_programs` without its fast path."""
    try:
        tree = program_module._parser().parse(text)
    except lark.exceptions.LarkError as e:
        raise program_module._syntax_error(e, text, "f.nlp") from None
    return program_module._Builder("f.nlp").build(tree)


def _locs(pf):
    return ([(p.loc, p.token_locs) for p in pf.programs], [a.loc for a in pf.aliases], pf.header.line_locs)


def test_fast_path_reads_program_lines_as_lark_does():
    text = HEAD + "\n".join(SAME) + "\n# trailing comment\n"
    fast, slow = program_module.parse_programs(text, "f.nlp"), _with_lark(text)
    assert fast == slow and _locs(fast) == _locs(slow)
    plain = HEAD + "\n".join(SAME[:7]) + "\n"
    assert program_module._parse_fast(plain, "f.nlp") is not None  # the lines nlic writes take the fast path
    assert _locs(program_module.parse_programs(plain, "f.nlp")) == _locs(_with_lark(plain))


@pytest.mark.parametrize("line", DIFFERENT)
def test_fast_path_leaves_every_error_to_the_full_parser(line):
    text = HEAD + "program ok = t1\n" + line + "\n"
    with pytest.raises(NlicError) as slow:
        _with_lark(text)
    with pytest.raises(type(slow.value)) as fast:
        program_module.parse_programs(text, "f.nlp")
    assert fast.value.render() == slow.value.render()


@pytest.mark.parametrize("line", DIFFERENT)
def test_one_bad_line_among_many_is_found_without_reparsing_the_file_and_named_as_lark_names_it(line):
    good = "".join(f"program ok{i} = t1 t2 [fit=1.0]\n" for i in range(300))
    text = HEAD + good + line + "\n" + good.replace("ok", "more")
    with pytest.raises(NlicError) as slow:
        _with_lark(text)
    found = program_module._parse_fast(text, "f.nlp")
    assert isinstance(found, tuple) and len(found[0]) <= 2  # only the bad lines go to lark
    with pytest.raises(type(slow.value)) as fast:
        program_module.parse_programs(text, "f.nlp")
    assert fast.value.render() == slow.value.render()


def test_a_file_of_many_bad_lines_prints_the_first_hundred_and_a_count():
    text = HEAD + "".join(f"program p{i} = t99\n" for i in range(1000))
    with pytest.raises(NlicError) as e:
        program_module.parse_programs(text, "f.nlp")
    lines = e.value.render().split("\n")
    assert len(e.value.diagnostics) == 1000 and len(lines) == 101
    assert lines[-1] == "f.nlp: error: 900 more errors not shown (fix the ones above first)"


def test_a_raw_control_character_in_a_string_is_named_at_its_column():
    with pytest.raises(NlicError) as e:
        program_module.parse_programs(HEAD + f'program "a{ESC}" = t1\n', "f.nlp")
    line = len(HEAD.split("\n"))
    assert e.value.render() == (f"f.nlp:{line}:11: error: a control character (U+001B) inside a string (write it "
                                "as the escape \\u001b, or leave it out)")


def test_a_file_over_its_limit_is_refused_by_its_size(capsys, tmp_path):
    spec = tmp_path / "s.yaml"
    with open(spec, "wb") as f:
        f.truncate(2 << 20)  # sparse: nothing is written, nothing must be read
    _refused(capsys, ["validate", spec], spec, "the file holds 2 MiB, more than the 1 MiB nlic reads from one spec")


def test_a_folder_of_too_many_files_is_refused(tmp_path):
    for i in range(5):
        (tmp_path / f"{i}.json").write_text("{}")
    assert len(list_dir(tmp_path, suffixes=(".json",), what="task file", error=DataError, limit=5)) == 5
    with pytest.raises(DataError, match="more than 4 entries") as e:
        list_dir(tmp_path, suffixes=(".json",), what="task file", error=DataError, limit=4)
    assert e.value.diagnostics[0].loc == Loc(str(tmp_path))
