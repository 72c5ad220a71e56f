"""End to end on a tiny spec: train a few steps, `nlic solve`, re-parse the program file, `nlic run` (Python and
exported executor) and check that replayed outputs equal the solver's discrete-program predictions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import re
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from nlic.compiler.families import sample_split, shapes_of
from nlic.compiler.identity import fingerprint
from nlic.compiler.kinds import kind_of
from nlic.compiler.lower import export_executor
from nlic.compiler.seeds import derive_seed
from nlic.runtime.build import EXPORT_FILE, EXPORT_META_FILE
from nlic.runtime.files import atomic_write
from nlic.runtime.run_dir import load_run
from nlic.runtime.solve import solve
from nlic.runtime.train import train

pytest.importorskip("nlic.runtime.solve", reason="H-nli's solve API is not available")
pytest.importorskip("nlic.runtime.train", reason="H-train's training runtime is not available")

from nlic.compiler import parse_spec  # noqa: E402
from nlic.grammar.program import format_programs, load_programs, parse_programs  # noqa: E402
from nlic.runtime.cli import main  # noqa: E402

SPEC = """
version: 1
name: tiny_shift
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
training: {steps: 2, batch: 8, warmup: 1, log_every: 1, eval_every: 0, checkpoint_every: 0}
search: {method: prior, starts: 4, steps: 0, batch: 8}
eval: {tasks: 6, splits: [id, ood]}
"""


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    spec = parse_spec(SPEC, str(d / "tiny.yaml"))
    result = train(spec, out=d / "run", progress=False)
    assert result.step == 2
    return d / "run"


@pytest.fixture(scope="module")
def solved(run_dir):
    out = run_dir.parent / "solved.nlp"
    preds = run_dir.parent / "solved.predictions.jsonl"
    code, stdout, stderr = _cli("solve", run_dir, "ood", "--out", out, "--predictions", preds)
    assert code == 0, stderr
    return out, preds, stdout, stderr


def test_solve_writes_programs_predictions_and_accuracy(run_dir, solved):
    out, preds, stdout, stderr = solved
    assert re.fullmatch(r"accuracy: \d\.\d\d \(\d+/6\)", stdout.splitlines()[-1])
    assert "solving 6 tasks of 'ood'" in stderr and "6/6 tasks" in stderr
    pf = load_programs(out)
    fp = fingerprint(*load_run(run_dir))
    assert (pf.header.language, pf.header.fingerprint) == ("tiny_shift", fp)
    assert (pf.header.vocab, pf.header.skip, pf.header.max_length) == (6, 0, 6)
    rows = _rows(preds)
    assert pf.ids == tuple(r["id"] for r in rows) and len(rows) == 6
    assert all(p.field("search") == "prior" and p.field("starts") == 4 and 0.0 <= p.field("fit") <= 1.0
               for p in pf.programs)
    hits = sum(r["correct"] for r in rows)
    assert stdout.splitlines()[-1].endswith(f"({hits}/6)")
    # The written text is canonical.
    assert format_programs(parse_programs(out.read_text())) == out.read_text()


def test_an_enumerations_programs_record_its_depth_not_starts_it_never_ran(run_dir, tmp_path):
    out = tmp_path / "enum.nlp"
    code, _, stderr = _cli("solve", run_dir, "ood", "--search", "enumerate", "--out", out,
                           "--predictions", tmp_path / "enum.jsonl")
    assert code == 0, stderr
    pf = load_programs(out)
    assert all(p.field("search") == "enumerate" and p.field("starts") is None and p.field("depth") >= 1
               for p in pf.programs)
    assert f"every program of up to {pf.programs[0].field('depth')} token" in stderr


def test_solve_matches_python_api_and_is_deterministic(run_dir, solved):
    spec, model = load_run(run_dir)
    tasks = sample_split(spec, "ood", 6, seed=derive_seed(spec.seed, "eval", "ood"))
    result = solve(spec, model, tasks, search=spec.search, seed=spec.seed)
    pf = load_programs(solved[0])
    assert pf.ids == result.ids
    # The file drops skip tokens (no-ops) wherever the search put them.
    assert [list(p.tokens) for p in pf.programs] == [[int(t) for t in row if t != 0] for row in result.programs]
    preds = _rows(solved[1])
    np.testing.assert_array_equal(np.array([r["output"] for r in preds]), result.outputs)


def test_run_replays_the_solved_programs(run_dir, solved, tmp_path):
    out, preds, _, _ = solved
    rows = _rows(preds)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"id": r["id"], "input": r["input"]}) + "\n" for r in rows))
    replayed = tmp_path / "outputs.jsonl"
    code, _, stderr = _cli("run", run_dir, out, "--inputs", inputs, "--out", replayed)
    assert code == 0, stderr
    got = _rows(replayed)
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    assert [g["input"] for g in got] == [r["input"] for r in rows]
    assert [g["output"] for g in got] == [r["output"] for r in rows]
    # Standard output by default, same rows.
    code, stdout, _ = _cli("run", run_dir, out, "--inputs", inputs)
    assert code == 0 and [json.loads(line) for line in stdout.splitlines()] == got


def test_run_reads_arc_task_files(run_dir, solved, tmp_path):
    out, preds, _, _ = solved
    first = _rows(preds)[0]
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    task = {"train": [], "test": [{"input": first["input"]}, {"input": first["input"][::-1]}]}
    (tasks / f"{first['id']}.json").write_text(json.dumps(task))
    code, stdout, stderr = _cli("run", run_dir, out, "--inputs", tasks)
    assert code == 0, stderr
    got = [json.loads(line) for line in stdout.splitlines()]
    assert [g["id"] for g in got] == [first["id"]] * 2
    assert got[0]["output"] == first["output"]


def test_hand_written_program_composes_token_by_token(run_dir, tmp_path):
    # Repeating a token 7 times equals running it once, 7 times over: hard execution is a composition of steps.
    prog = tmp_path / "hand.nlp"
    prog.write_text(
        'nlic-programs 1\nlanguage "tiny_shift"\nvocab 6 skip t0 max_length 6\n\nalias t1 = step\n\n'
        "program six = step step step step step step\nprogram one = step\n"
    )
    x = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"id": "six", "input": x}) + "\n")
    code, stdout, stderr = _cli("run", run_dir, prog, "--inputs", inputs)
    assert code == 0, stderr
    six = json.loads(stdout)["output"]
    y = x
    for _ in range(6):
        step_in = tmp_path / "step.jsonl"
        step_in.write_text(json.dumps({"input": y}) + "\n")
        code, stdout, stderr = _cli("run", run_dir, prog, "--inputs", step_in, "--program", "one")
        assert code == 0, stderr
        y = json.loads(stdout)["output"]
    assert six == y


def test_run_refuses_another_languages_file(run_dir, solved, tmp_path):
    out, preds, _, _ = solved
    text = out.read_text()
    fp = load_programs(out).header.fingerprint
    other = tmp_path / "other.nlp"
    other.write_text(text.replace(fp, "0123456789abcdef"))
    code, stdout, stderr = _cli("run", run_dir, other, "--inputs", preds)
    assert code == 2 and stdout == ""
    assert f"fingerprint 0123456789abcdef), but this run's language is 'tiny_shift' (fingerprint {fp})" in stderr
    assert "Traceback" not in stderr


def test_run_reports_bad_inputs_with_line(run_dir, solved, tmp_path):
    out, preds, _, _ = solved
    first = _rows(preds)[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": first["id"], "input": first["input"]}) + "\n" + '{"id": 1, "input": [0, 1]}\n')
    code, _, stderr = _cli("run", run_dir, out, "--inputs", bad)
    assert code == 2 and stderr.startswith(f"{bad}:2: error:")
    bad.write_text(json.dumps({"id": first["id"], "input": [9] * 12}) + "\n")
    code, _, stderr = _cli("run", run_dir, out, "--inputs", bad)
    assert code == 2 and stderr.startswith(f"{bad}:1: error:") and "outside the alphabet" in stderr
    bad.write_text("{not json\n")
    code, _, stderr = _cli("run", run_dir, out, "--inputs", bad)
    assert code == 2 and f"{bad}:1:2: error: not JSON" in stderr


def test_outputs_never_replace_inputs_or_existing_results_unasked(run_dir, solved, tmp_path):
    out, preds, _, _ = solved
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"id": r["id"], "input": r["input"]}) + "\n" for r in _rows(preds)))
    programs = tmp_path / "copy.nlp"
    programs.write_bytes(out.read_bytes())
    before = programs.read_bytes(), inputs.read_bytes()
    # run --out onto its own program file or inputs: refused even with --force; onto an existing file: --force
    for target, force in ((programs, True), (inputs, True), (programs, False)):
        code, _, stderr = _cli("run", run_dir, programs, "--inputs", inputs, "--out", target,
                               *(["--force"] if force else []))
        assert code == 2 and "is also an input of this command; refusing to write over it" in stderr, stderr
    kept = tmp_path / "kept.jsonl"
    kept.write_text("mine\n")
    code, _, stderr = _cli("run", run_dir, programs, "--inputs", inputs, "--out", kept)
    assert code == 2 and "already exists; refusing to replace it (add --force" in stderr
    assert (programs.read_bytes(), inputs.read_bytes(), kept.read_text()) == (*before, "mine\n")
    assert _cli("run", run_dir, programs, "--inputs", inputs, "--out", kept, "--force")[0] == 0
    # solve with --predictions where --out writes: refused before the search
    same = tmp_path / "same.nlp"
    code, _, stderr = _cli("solve", run_dir, "ood", "--out", same, "--predictions", same, "--force")
    assert code == 2 and "two outputs of this command are this one file" in stderr and not same.exists()


def test_an_output_inside_a_file_is_refused_before_the_work(run_dir, solved, tmp_path, monkeypatch):
    """`nlic solve RUN ood --out spec.yaml/x.nlp` searched every task, then said 'spec.yaml: error: the file appeared
    while nlic solved (another command writing the same output?)'; `nlic compile --out spec.yaml/b` compiled
    everything, then 'Not a directory'. Both are refused before the work, naming the file in the way."""
    from nlic.compiler import parse_spec
    from nlic.grammar.errors import ArtifactError
    from nlic.runtime.build import check_build_dir

    solve_mod = importlib.import_module("nlic.runtime.solve")
    monkeypatch.setattr(solve_mod, "solve", lambda *a, **k: pytest.fail("searched before refusing"))
    a_file = tmp_path / "spec.yaml"
    a_file.write_text("mine\n")
    code, _, stderr = _cli("solve", run_dir, "ood", "--out", a_file / "x.nlp")
    assert code == 2 and stderr == (f"{a_file}: error: the output file {a_file / 'x.nlp'} would be inside this file "
                                    "(give a path in a directory)\n"), stderr
    out, _, _, _ = solved
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"input": [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]}\n')
    code, _, stderr = _cli("run", run_dir, out, "--inputs", inputs, "--out", a_file / "deeper" / "o.jsonl")
    assert code == 2 and stderr.startswith(f"{a_file}: error: the output file"), stderr
    with pytest.raises(ArtifactError, match="would be inside this file"):
        check_build_dir(parse_spec(SPEC), a_file / "build")
    assert a_file.read_text() == "mine\n"

def test_a_result_that_appears_during_a_solve_is_not_replaced(run_dir, tmp_path, monkeypatch):
    # Two `nlic solve` into one file: both found it free before searching; the second to finish must not replace
    # the first's programs, nor leave its own programs beside the first's predictions.
    solve_mod = importlib.import_module("nlic.runtime.solve")
    out, preds = tmp_path / "p.nlp", tmp_path / "p.predictions.jsonl"
    real = solve_mod.solve

    def other_writer_first(*args, **kwargs):
        result = real(*args, **kwargs)
        preds.write_text("the other command's predictions\n")
        return result

    monkeypatch.setattr(solve_mod, "solve", other_writer_first)
    code, _, stderr = _cli("solve", run_dir, "ood", "--out", out)
    assert code == 2 and "p.predictions.jsonl: error: the file appeared while nlic solved" in stderr, stderr
    assert not out.exists() and preds.read_text() == "the other command's predictions\n"


@pytest.mark.parametrize("args,message", [
    (["--steps", "1000000000000"], "--steps: error: --steps must be in 0..100,000, as search.steps in a spec"),
    (["--starts", "0"], "--starts: error: --starts must be in 1..1,000,000, as search.starts"),
    (["-n", "1000000000000"], "-n: error: -n must be in 1..1,000,000, as eval.tasks in a spec"),
    (["--seed", "100000000000000000000"], "--seed: error: --seed must be in 0..2,147,483,647, as seed in a spec"),
    (["--seed", "-1"], "--seed must be in 0..2,147,483,647"),
])
def test_command_line_numbers_keep_to_the_spec_fields_bounds(run_dir, args, message):
    code, _, stderr = _cli("solve", run_dir, "ood", "--search", "gradient", *args)
    assert code == 2 and message in stderr, stderr
    assert "Traceback" not in stderr


def test_train_steps_beyond_the_spec_bound_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "s.yaml").write_text(SPEC)
    code, _, stderr = _cli("train", tmp_path / "s.yaml", "--out", tmp_path / "r", "--steps", str(2**40))
    assert code == 2 and "--steps must be in 0..10,000,000, as training.steps in a spec" in stderr
    assert not (tmp_path / "r").exists()


def test_solve_rejects_unknown_split_and_search(run_dir):
    code, _, stderr = _cli("solve", run_dir, "odd")
    assert code == 2 and "'odd' is neither a task file nor a split" in stderr and "did you mean 'ood'" in stderr
    code, _, stderr = _cli("solve", run_dir, "id", "--search", "gradiant")
    assert code == 2 and "--search: error: model kind 'nli' has no search method 'gradiant'" in stderr


def test_artifact_replay_equals_python_replay(run_dir, solved, tmp_path, monkeypatch):
    pytest.importorskip("flatbuffers", reason="jax.export serialisation needs flatbuffers")

    # The build directory part `nlic run --artifact` reads (what `nlic compile` writes), without compiling the
    # training step again: the exported executor and its description.
    spec, model = load_run(run_dir)
    blob, meta = export_executor(spec, kind_of(spec), model, shapes_of(spec))
    build = tmp_path / "build"
    build.mkdir()
    atomic_write(build / EXPORT_FILE, blob)
    atomic_write(build / EXPORT_META_FILE, json.dumps(meta))

    out, preds, _, _ = solved
    code, python_out, stderr = _cli("run", run_dir, out, "--inputs", preds)
    assert code == 0, stderr
    code, artifact_out, stderr = _cli("run", "--artifact", build, run_dir, out, "--inputs", preds)
    assert code == 0, stderr
    assert artifact_out == python_out
    # In chunks, as the model's replay, with its progress lines (it ran the whole file at once, silently).
    replay_mod = importlib.import_module("nlic.runtime.replay")
    monkeypatch.setattr(replay_mod, "_bucket", lambda n: 4)
    monkeypatch.setattr(replay_mod, "PROGRESS_EVERY", 0.0)
    code, chunked_out, stderr = _cli("run", "--artifact", build, run_dir, out, "--inputs", preds)
    assert code == 0 and chunked_out == python_out, stderr
    assert [line.split(",")[0] for line in stderr.splitlines()] == ["run: 4/6 inputs", "run: 6/6 inputs"]
    # A build of another spec is refused.
    meta["spec_hash"] = "0" * 16
    atomic_write(build / EXPORT_META_FILE, json.dumps(meta))
    code, _, stderr = _cli("run", "--artifact", build, run_dir, out, "--inputs", preds)
    assert code == 2 and "the build was compiled from spec 0000000000000000" in stderr


def test_kind_without_programs_writes_predictions_only(run_dir, tmp_path, monkeypatch):
    # Baseline kinds (in_context, lpn...) have no discrete programs; the command's branch for them only reads
    # `discrete_programs`, so the tiny NLI run stands in for one (training a second model would double the time).
    import dataclasses

    solve_module = sys.modules["nlic.runtime.solve"]  # `nlic.runtime.solve` the attribute is the function
    real = solve_module.kind_of
    monkeypatch.setattr(solve_module, "kind_of", lambda spec: dataclasses.replace(real(spec), discrete_programs=False))
    out, preds = tmp_path / "p.nlp", tmp_path / "p.jsonl"
    # -n 6 keeps the batch shape of the fixture's solve, so the compiled search is reused.
    code, stdout, stderr = _cli("solve", run_dir, "id", "-n", "6", "--out", out, "--predictions", preds)
    assert code == 0, stderr
    assert "model kind 'nli' has no discrete programs: no program file written, predictions only" in stderr
    assert not out.exists() and len(_rows(preds)) == 6
    assert re.fullmatch(r"accuracy: \d\.\d\d \(\d/6\)", stdout.strip())


def test_progress_is_a_line_every_few_seconds_not_one_per_batch(monkeypatch):
    # A search of batch 1 over many tasks printed a line per task to a log; now at most one every PROGRESS_EVERY
    # seconds, and always the last.
    solve_mod = importlib.import_module("nlic.runtime.solve")  # the module (the package exports its `solve`)
    spec = parse_spec(SPEC, "tiny.yaml")
    kind = kind_of(spec)
    tasks = sample_split(spec, "id", 20, seed=0)

    def fake(model, batch, search, *, key, **kw):
        return (np.zeros((batch.inputs.shape[0], 3), np.int32),)

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        parts = solve_mod._solve_batches(dataclasses.replace(kind, solve=fake), None, tasks, spec.search, 1,
                                         jax.random.key(0), progress=True, label="", t0=0.0)
    assert parts[0].shape == (20, 3)
    lines = err.getvalue().splitlines()
    assert 1 <= len(lines) <= 3 and lines[-1].startswith("solve: 20/20 tasks"), lines
    monkeypatch.setattr(solve_mod, "PROGRESS_EVERY", 0.0)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        solve_mod._solve_batches(dataclasses.replace(kind, solve=fake), None, tasks, spec.search, 5,
                                 jax.random.key(0), progress=True, label="", t0=0.0)
    assert len(err.getvalue().splitlines()) == 4  # every batch where the interval allows it


def test_a_long_replay_prints_progress_and_a_short_one_nothing(monkeypatch):
    """`nlic run` of 200,000 inputs ran 209 s without a line (grid1d, 2-core CPU); now a line every
    PROGRESS_EVERY seconds while the programs run, none for a replay shorter than that."""
    replay_mod = importlib.import_module("nlic.runtime.replay")
    calls = []

    def fn(model, p, x):
        calls.append(len(p))
        return x

    programs, inputs = np.zeros((20, 3), np.int32), np.arange(20 * 4, dtype=np.int32).reshape(20, 4)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # short: nothing printed
        outs = replay_mod._in_chunks(fn, None, programs, inputs, replay_mod._Progress("run"))
    assert err.getvalue() == "" and np.array_equal(np.concatenate(outs), inputs)
    monkeypatch.setattr(replay_mod, "_bucket", lambda n: 8)
    monkeypatch.setattr(replay_mod, "PROGRESS_EVERY", 0.0)
    with contextlib.redirect_stderr(err):
        outs = replay_mod._in_chunks(fn, None, programs, inputs, replay_mod._Progress("run"))
    lines = err.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["run: 8/20 inputs", "run: 16/20 inputs", "run: 20/20 inputs"]
    assert "ETA" in lines[0] and "ETA" not in lines[-1]
    assert np.array_equal(np.concatenate(outs), inputs)
