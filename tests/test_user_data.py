"""A user's own task files brought as a user would: sizes that only overflow together, ids that clash, keys written
twice, pipes and hidden files in folders, exports that keep every task, data changed after training."""

import json
import os
import shutil
import sys

import numpy as np
import pytest

from nlic.compiler.families import codec_of, sample_split
from nlic.compiler.families import files as files_family
from nlic.compiler.spec import Spec, TaskSpec
from nlic.grammar.errors import DataError
from nlic.grammar.reading import loads_json
from nlic.runtime.cli import main
from nlic.runtime.export import export_tasks


def _task(x, y, *tests):
    return {"train": [{"input": x, "output": y}], "test": [{"input": a, "output": b} for a, b in tests]}


def _spec_file(tmp_path, data, pairs=1, name="s.yaml"):
    path = tmp_path / name
    path.write_text(f"name: t\ntask: {{family: files, params: {{train: {json.dumps(str(data))}}}, pairs: {pairs}}}\n"
                    "eval: {splits: [train]}\n")
    return path


def _main(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _files_spec(data, pairs=1):
    return Spec(task=TaskSpec(family="files", params=(("train", str(data)),), pairs=pairs))


def test_a_wide_grid_and_a_tall_grid_that_only_overflow_together_are_refused_at_validate(tmp_path, capsys):
    # Each grid fits (4096 values); padded to the most rows and the most columns they would be 4096 x 4096.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "wide.json").write_text(json.dumps(_task([[1] * 4096], [[1] * 4096], ([[1] * 4096], [[1] * 4096]))))
    (tmp_path / "d" / "tall.json").write_text(json.dumps(_task([[1]] * 4096, [[1]] * 4096, ([[1]] * 4096, [[1]] * 4096))))
    code, _, err = _main(capsys, "validate", _spec_file(tmp_path, tmp_path / "d"))
    assert code == 2, err
    assert "grids padded to 4096 rows (as task 'tall': train pair 1: input) and 4096 columns (as task 'wide'" in err
    assert "tall.json: error:" in err and "crop the tall or the wide ones" in err


def test_a_split_too_large_once_padded_is_refused_before_anything_is_allocated(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(files_family, "MAX_ENCODED", 10_000)
    rows = [{"id": f"t{i}", **_task([[1]], [[2]], ([[1]], [[2]]))} for i in range(40)]
    rows.append({"id": "big", **_task([[1] * 30] * 30, [[2] * 30] * 30, ([[1] * 30] * 30, [[2] * 30] * 30))})
    data = tmp_path / "a.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = _main(capsys, "validate", _spec_file(tmp_path, data))
    assert code == 2
    assert "41 queries of 1 pairs, every datum padded to 900 values, are 147,600 values, more than the 10,000" in err
    with pytest.raises(DataError, match="more than the 10,000 nlic holds"):
        sample_split(_files_spec(data), "train", 4, seed=0)


def test_validate_refuses_what_training_would(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps({"train": [{"input": [1, 2], "output": [2, 1]}]}))
    code, _, err = _main(capsys, "validate", _spec_file(tmp_path, tmp_path / "a.json"))
    assert code == 2 and "one train pair and no test pair leave nothing to learn from" in err


def test_a_train_pair_with_a_null_output_is_refused_at_validate(tmp_path, capsys):
    """`"output": null` in a train pair passed `nlic validate` (it was taken for a test pair's unknown output) and
    only `data show` or `train` refused it."""
    data = tmp_path / "a.json"
    data.write_text(json.dumps({"train": [{"input": [1], "output": None}], "test": [{"input": [1], "output": None}]}))
    code, _, err = _main(capsys, "validate", _spec_file(tmp_path, data))
    assert code == 2 and err.startswith(f"{data}: error: task 'a': train pair 1: null \"output\" (every train pair "
                                        "needs an output)"), err
    data.write_text(json.dumps({"train": [{"input": [1], "output": [1]}], "test": [{"input": [1], "output": None}]}))
    assert _main(capsys, "validate", _spec_file(tmp_path, data))[0] == 0  # a test pair's output may be unknown(tmp_path):
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"id": "t", **_task([1, 2], [2, 1], ([3, 4], [4, 3]), ([5, 6], [6, 5]))}) + "\n"
                    + json.dumps({"id": "t#1", **_task([7, 7], [7, 7], ([8, 8], [8, 8]))}) + "\n")
    with pytest.raises(DataError) as e:
        sample_split(_files_spec(data), "train", 4, seed=0)
    assert "a.jsonl:2: error: 't#1' names both test pair 2 of task 't'" in e.value.render()


def test_a_key_written_twice_is_a_located_error():
    with pytest.raises(DataError) as e:
        loads_json('{"x": {"train": []},\n "x": {"train": []}}', path="d.json", error=DataError)
    assert e.value.render().startswith('d.json:2:2: error: key "x" is written twice in one object')
    assert loads_json('[{"a": 1}, {"a": 2}]', path="d.json", error=DataError) == [{"a": 1}, {"a": 2}]


def test_a_task_id_of_half_a_surrogate_pair_is_a_located_error(tmp_path, capsys):
    """`"id": "\\ud800"` (JSON accepts it; it is no character) passed validate, and `nlic data show` printed the task
    id to a UTF-8 terminal: `UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800'`, a traceback."""
    data = tmp_path / "a.json"
    data.write_text('{"id": "\\ud800", "train": [{"input": [1], "output": [1]}], "test": [{"input": [1]}]}')
    spec = _spec_file(tmp_path, data)
    for command in (["validate", spec], ["data", "show", spec, "--split", "train"]):
        code, out, err = _main(capsys, *command)
        assert code == 2 and err.startswith(f"{data}:1:8: error: the string \"\\ud800\" holds half of a UTF-16 "
                                            "surrogate pair"), err

@pytest.mark.skipif(sys.platform != "linux", reason="file names of any bytes")
def test_a_task_named_by_a_file_name_that_is_no_utf8_is_a_located_error(tmp_path, capsys):
    """A task file `t\\xff.json` gave the task the id 't\\udcff': validate said ok and `nlic data export` ended in
    a traceback (UnicodeEncodeError: surrogates not allowed)."""
    data = tmp_path / "data"
    data.mkdir()
    name = os.fsdecode(b"t\xff.json")
    (data / name).write_text(json.dumps(_task([1], [1], ([1], [1]))))
    spec = _spec_file(tmp_path, data)
    for command in (["validate", spec], ["data", "export", spec, "--split", "train", "--out", tmp_path / "ex"]):
        code, _, err = _main(capsys, *command)
        assert code == 2 and "task 't\\udcff': the id, from the file name, is not UTF-8 text (rename the file, or " \
            "give the task an \"id\")" in err, err
    (data / name).write_text(json.dumps({"id": "t", **_task([1], [1], ([1], [1]))}))  # an id of its own: read
    assert _main(capsys, "validate", spec)[0] == 0

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_pipe_named_as_a_task_file_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "f.json")
    with pytest.raises(DataError, match="expected a file, found a pipe"):
        sample_split(_files_spec(tmp_path / "f.json"), "train", 1, seed=0)


def test_hidden_files_are_skipped_and_a_folder_of_unreadable_entries_says_what_it_skipped(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.json").write_text(json.dumps(_task([1, 2], [2, 1], ([3, 4], [4, 3]))))
    (d / "._a.json").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS's companion file
    assert sample_split(_files_spec(d), "train", 4, seed=0).ids == ("a",)
    e = tmp_path / "e"
    e.mkdir()
    (e / "loop.json").symlink_to(e / "loop.json")
    with pytest.raises(DataError, match=r"holds no \.json or \.jsonl task files \(1 skipped, not regular files: loop"):
        sample_split(_files_spec(e), "train", 1, seed=0)


def test_export_keeps_every_task_and_its_id_when_names_clash(tmp_path, capsys):
    ids = ["sub/dir", "sub_dir", "A", "a", ".hidden", "x\x1b[31m", "x" * 300]
    rows = [{"id": t, **_task([i, 1], [1, i], ([i, 2], [2, i]))} for i, t in enumerate(ids)]
    rows.append({"id": "two", **_task([1, 2], [2, 1], ([3, 4], [4, 3]), ([5, 6], None))})
    rows[-1]["test"][1].pop("output")
    data = tmp_path / "a.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = _spec_file(tmp_path, data, name="s.yaml")
    code, out, err = _main(capsys, "data", "show", spec, "-n", "20", "--color", "never")
    assert code == 0, err
    assert "split 'train', 8 tasks (9 queries)" in out and "task x\\x1b[31m" in out and "\x1b" not in out
    code, out, err = _main(capsys, "data", "export", spec, "--split", "train", "--out", tmp_path / "ex")
    assert code == 0, err
    assert "wrote 8 tasks (9 queries)" in out
    names = os.listdir(tmp_path / "ex")
    assert len(names) == 8 and len({n.casefold() for n in names}) == 8
    assert all(not n.startswith(".") and len(n) < 120 for n in names)
    back = sample_split(_files_spec(tmp_path / "ex"), "train", 20, seed=0)
    original = sample_split(_files_spec(data), "train", 20, seed=0)
    assert sorted(back.ids) == sorted(original.ids)
    order = [back.ids.index(t) for t in original.ids]
    for f in ("inputs", "outputs", "pair_mask", "query_inputs", "query_outputs", "has_target"):
        assert np.array_equal(getattr(back, f)[order], getattr(original, f)), f
    assert json.loads((tmp_path / "ex" / "two.json").read_text())["test"][1] == {"input": [5, 6]}


def test_a_failed_export_leaves_no_files_behind(tmp_path, monkeypatch):
    spec = _files_spec(tmp_path / "a.jsonl")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"id": f"t{i}", **_task([i], [i], ([i], [i]))}) + "\n"
                                              for i in range(5)))
    ts = sample_split(spec, "train", 5, seed=0)
    from nlic.runtime import export
    real, calls = export.atomic_write, []

    def flaky(path, text):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(export, "atomic_write", flaky)
    with pytest.raises(DataError, match="cannot write the exported tasks: no space left"):
        export_tasks(ts, codec_of(spec), tmp_path / "ex")
    assert os.listdir(tmp_path / "ex") == []


def test_export_never_writes_into_a_training_run_or_a_build(tmp_path):
    """`nlic data export --out RUN --force` wrote task files into a run directory, and a task with the id 'model'
    replaced the run's model.json (the run no longer loaded)."""
    spec = _files_spec(tmp_path / "a.jsonl")
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "model", **_task([1], [1], ([1], [1]))}) + "\n")
    ts = sample_split(spec, "train", 1, seed=0)
    for name, marker in (("run", "model.json"), ("build", "executor.json")):
        d = tmp_path / name
        d.mkdir()
        (d / marker).write_text("mine\n")
        with pytest.raises(DataError) as e:
            export_tasks(ts, codec_of(spec), d, force=True)
        assert e.value.render() == (f"{d}: error: the directory is a training run or a build ({marker}); refusing to "
                                    "write task files there, even with --force (choose a directory of its own)")
        assert os.listdir(d) == [marker] and (d / marker).read_text() == "mine\n"

@pytest.mark.skipif(sys.platform == "win32", reason="posix paths")
def test_data_changed_after_training_is_named_when_the_weights_no_longer_fit(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    for i in range(6):
        (d / f"t{i}.json").write_text(json.dumps(_task([i % 5, 1, 2], [2, 1, i % 5], ([3, 4, i % 5], [i % 5, 4, 3]))))
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: t\ntask: {{family: files, params: {{train: {json.dumps(str(d))}}}, pairs: 1}}\n"
                    "eval: {splits: [train]}\nmodel: {inductor: {layers: 1}, executor: {layers: 1}}\n"
                    "training: {steps: 2, batch: 2, eval_every: 0}\n")
    code, _, err = _main(capsys, "train", spec, "--out", tmp_path / "run", "--no-progress")
    assert code == 0, err
    (d / "t0.json").write_text(json.dumps(_task([9, 1, 2], [2, 1, 9], ([3, 4, 0], [0, 4, 3]))))  # V 5 -> 10
    code, _, err = _main(capsys, "solve", tmp_path / "run", "train", "--search", "none")
    assert code == 2
    assert "model.json: error: the task data changed since training (alphabet V 5 -> 10)" in err


def test_one_task_per_line_in_a_json_file_is_told_to_be_jsonl(tmp_path):
    line = json.dumps(_task([1], [2], ([1], [2])))
    (tmp_path / "two.json").write_text(line + "\n" + line + "\n")
    with pytest.raises(DataError) as e:
        sample_split(_files_spec(tmp_path / "two.json"), "train", 1, seed=0)
    assert e.value.render().endswith("two.json:2:1: error: invalid JSON: Extra data (a .json file holds one JSON "
                                     "value: a task, or a list or dict of tasks; name a file of one task per line "
                                     ".jsonl)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_without_a_writer_is_an_error_and_a_late_writer_is_read(tmp_path, capsys, monkeypatch):
    import threading
    import time

    from nlic.grammar import reading

    monkeypatch.setattr(reading, "PIPE_WAIT", 0.5)
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    code, _, err = _main(capsys, "validate", fifo)
    assert code == 2 and "s.yaml: error: the pipe had no writer for 0.5 s" in err
    assert time.monotonic() - t0 < 10
    monkeypatch.setattr(reading, "PIPE_WAIT", 20.0)

    def write_late():
        time.sleep(1.0)
        with open(fifo, "w") as f:
            f.write("name: late\ntask: {family: shift, params: {split: shift_l}}\n")

    writer = threading.Thread(target=write_late, daemon=True)
    writer.start()
    code, out, err = _main(capsys, "validate", fifo)
    writer.join(timeout=5)
    assert code == 0 and "ok" in out and "late" in out, err


@pytest.mark.skipif(sys.platform == "win32", reason="posix paths")
def test_a_project_folder_copied_with_its_runs_solves_runs_and_resumes_from_the_copy(tmp_path, capsys, monkeypatch):
    """A run locks its data paths absolute; copied with its spec and data, it reads the copy's files (at the same
    place relative to the run) where the original's are gone, and only when they are the files training read."""
    monkeypatch.setattr(files_family, "_MOVED", {})  # this test's relocations only
    proj = tmp_path.resolve() / "proj"
    (proj / "data").mkdir(parents=True)
    for split, n in (("train", 6), ("test", 3)):
        (proj / "data" / f"{split}.jsonl").write_text("".join(
            json.dumps(_task([i % 5, 1, 2], [2, 1, i % 5], ([3, 4, i % 5], [i % 5, 4, 3]))) + "\n" for i in range(n)))
    (proj / "spec.yaml").write_text(
        "name: t\ntask: {family: files, params: {train: data/train.jsonl, test: data/test.jsonl}, pairs: 1}\n"
        "eval: {splits: [test]}\nmodel: {inductor: {layers: 1, width: 16, heads: 2, head_hidden: 16}, executor: "
        "{layers: 1, width: 16, heads: 2}}\ntraining: {steps: 2, batch: 2, eval_every: 0}\n")
    (proj / "in.jsonl").write_text('{"id": "test-1", "input": [1, 2, 3]}\n')
    monkeypatch.chdir(proj)
    code, _, err = _main(capsys, "train", "spec.yaml", "--out", "runs/t", "--no-progress")
    assert code == 0, err
    assert _main(capsys, "solve", "runs/t", "test", "--search", "none")[0] == 0
    predictions = (proj / "runs/t/programs/test.none.predictions.jsonl").read_text()
    code, ran, err = _main(capsys, "run", "runs/t", "runs/t/programs/test.none.nlp", "--inputs", "in.jsonl")
    assert code == 0 and '"output"' in ran, err
    fingerprint = json.loads((proj / "runs/t/model.json").read_text())["fingerprint"]
    evaluate = ("eval", "spec.yaml", "--methods", "none", "--budgets", "0", "--no-flops", "--runs", "runs")
    assert _main(capsys, *evaluate, "--out", "res")[0] == 0  # trains runs/t-seed0

    copy = tmp_path.resolve() / "elsewhere" / "proj"
    shutil.copytree(proj, copy)
    monkeypatch.chdir(copy)
    # The original still there: the copy's spec names the copy's data, the same files as the run's, and resumes.
    code, _, err = _main(capsys, "train", "spec.yaml", "--out", "runs/t", "--resume", "--no-progress")
    assert code == 0, err
    shutil.rmtree(proj)  # the original gone (deleted, or on another machine)
    code, out, err = _main(capsys, "solve", "runs/t", "test", "--search", "none", "--force")
    assert code == 0 and "accuracy:" in out, err
    assert (copy / "runs/t/programs/test.none.predictions.jsonl").read_text() == predictions
    assert _main(capsys, "run", "runs/t", "runs/t/programs/test.none.nlp", "--inputs", "in.jsonl")[:2] == (0, ran)
    code, _, err = _main(capsys, *evaluate, "--out", "res2")
    assert code == 0 and "model reused" in err, err
    code, _, err = _main(capsys, "train", "spec.yaml", "--out", "runs/t", "--resume", "--no-progress")
    assert code == 0, err
    assert json.loads((copy / "runs/t/model.json").read_text())["fingerprint"] == fingerprint  # the same language
    assert str(proj) in (copy / "runs/t/spec.yaml").read_text()  # as locked

    # Other data at the copy's place are never read for the run's.
    (copy / "data" / "test.jsonl").write_text(json.dumps(_task([1, 1, 2], [2, 1, 1], ([3, 4, 1], [1, 4, 3]))) + "\n")
    message = f"{copy / 'data/test.jsonl'}: error: split 'test': the run's data are gone from " \
              f"{proj / 'data/test.jsonl'}, and the files at the same place relative to the run directory differ " \
              "from those it recorded (restore the data the run was trained on (at either place), or train again"
    for argv in (("solve", "runs/t", "test", "--force"), ("train", "spec.yaml", "--out", "runs/t", "--resume"),
                 ("run", "runs/t", "runs/t/programs/test.none.nlp", "--inputs", "in.jsonl")):
        code, _, err = _main(capsys, *argv)
        assert code == 2 and message in err and "Traceback" not in err, err
