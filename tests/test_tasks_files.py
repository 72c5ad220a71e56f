"""User task files: ARC-style JSON / JSONL loading, located DataErrors, export round trips, `nlic data`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_without_exedec

from nlic.compiler.families import FAMILIES, GridCodec, codec_of, load_tasks, sample_split
from nlic.compiler.spec import LanguageSpec, Spec, TaskSpec
from nlic.grammar.errors import DataError
from nlic.runtime.cli import main
from nlic.runtime.export import export_tasks

DATA = Path(__file__).parent / "data"
BAD = DATA / "bad_data"
GOOD = DATA / "tasks"

# file -> (location prefix printed before "error:", fragment of the message)
BAD_CASES = {
    "bad_id.jsonl": ("bad_id.jsonl:1", '"id" must be a non-empty string'),
    "bad_json.json": ("bad_json.json:4:3", "invalid JSON"),
    "bad_line.jsonl": ("bad_line.jsonl:3:", "invalid JSON"),
    "bool_value.json": ("bool_value.json", "train pair 1: output has a non-integer value true"),
    "duplicate_id.jsonl": ("duplicate_id.jsonl:2", "task 'd' is defined twice"),
    "empty_file.jsonl": ("empty_file.jsonl", "holds no tasks"),
    "empty_train.json": ("empty_train.json", '"train" is empty'),
    "empty_value.json": ("empty_value.json", "train pair 1: input is empty"),
    "grid_for_sequences.json": ("grid_for_sequences.json", "train pair 1: input must be a list of integers"),
    "missing_output.jsonl": ("missing_output.jsonl:2", "task 'm1': train pair 2: missing \"output\""),
    "missing_train.json": ("missing_train.json", 'missing "train"'),
    "mixed_dims.jsonl": ("mixed_dims.jsonl:2", "input is a grid but task 's'"),
    "negative_value.json": ("negative_value.json", "test pair 1: input has a negative value -1 at position 2"),
    "non_int_value.jsonl": ("non_int_value.jsonl:1", "non-integer value 1.5 at position 3"),
    "not_utf8.json": ("not_utf8.json", "not UTF-8"),
    "out_of_alphabet.json": ("out_of_alphabet.json", "train pair 2: input has value 12 at position 3, outside the alphabet 0..9"),
    "pair_not_object.jsonl": ("pair_not_object.jsonl:1", "train pair 1: must be an object"),
    "ragged_grid.json": ("ragged_grid.json", "input is ragged: row 2 has 1 values"),
    "single_pair_no_test.json": ("single_pair_no_test.json", "leave nothing to learn from"),
    "test_not_list.json": ("test_not_list.json", "'test' must be a list"),
    "too_long.jsonl": ("too_long.jsonl:7", "task 'a3x': train pair 2: output has 5 values, the model reads exactly 4"),
    "top_level_scalar.json": ("top_level_scalar.json", "expected a task object"),
    "train_not_list.json": ("train_not_list.json", "'train' must be a list"),
    "unknown_pair_key.json": ("unknown_pair_key.json", "unknown key 'ouput' (did you mean 'output'?)"),
    "unknown_task_key.json": ("unknown_task_key.json", "unknown key 'trian' (did you mean 'train'?)"),
    "wrong_suffix.txt": ("wrong_suffix.txt", "unknown task file type '.txt'"),
}


def _spec(family="shift", pairs=2, values=0, **params):
    return Spec(task=TaskSpec(family=family, params=tuple(params.items()), pairs=pairs),
                language=LanguageSpec(values=values))


def test_every_bad_file_has_a_case():
    assert sorted(os.listdir(BAD)) == sorted(BAD_CASES)
    assert len(BAD_CASES) >= 15


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_data_is_a_located_data_error(name):
    where, fragment = BAD_CASES[name]
    with pytest.raises(DataError) as e:
        load_tasks(BAD / name, _spec(length=4))
    text = e.value.render()
    assert f"{where}" in text and fragment in text, text
    assert text.startswith(str(BAD / name)), text


def test_files_family_infers_and_reports_bad_files():
    with pytest.raises(DataError, match="mixed_dims.jsonl:2: error"):
        sample_split(_spec("files", ood=str(BAD / "mixed_dims.jsonl")), "ood", 4, seed=0)


def test_arc_json_with_two_test_pairs():
    ts = load_tasks(GOOD / "reverse.json", _spec(length=4, pairs=4))
    assert ts.ids == ("reverse", "reverse#1")
    assert ts.pair_mask.tolist() == [[True, True, True, False]] * 2
    assert ts.has_target.tolist() == [True, False]
    assert ts.inputs[0, 1].tolist() == [5, 6, 7, 8] and ts.outputs[0, 1].tolist() == [8, 7, 6, 5]
    assert ts.query_inputs[1].tolist() == [7, 7, 8, 9]
    # More train pairs than the model's spec size: the first ones are kept.
    assert load_tasks(GOOD / "reverse.json", _spec(length=4, pairs=1)).inputs.shape == (2, 1, 4)


def test_jsonl_and_a_list_of_paths():
    spec = _spec("files", pairs=3, train=(str(GOOD / "tasks.jsonl"), str(GOOD / "reverse.json")))
    ts = sample_split(spec, "train", 100, seed=0)
    assert ts.ids == ("rot0", "rot1", "rot2", "reverse", "reverse#1")
    assert FAMILIES.get("files").codec(dict(spec.task.params)).length == 4
    a = sample_split(spec, "train", 2, seed=1)
    b = sample_split(spec, "train", 2, seed=1)
    assert a.ids == b.ids and len(a) == 2


def test_grids_of_several_sizes_are_padded():
    spec = _spec("files", pairs=2, ood=str(GOOD / "grids"))
    codec = codec_of(spec)
    assert codec == GridCodec(rows=3, cols=3, values=11, pad=10)
    ts = sample_split(spec, "ood", 10, seed=0)
    assert ts.ids == ("flip-1", "flip-2")
    assert codec.decode(ts.inputs[0, 1]) == [[1, 1, 1]]
    assert codec.decode(ts.query_outputs[0]) == [[9, 8], [7, 6], [5, 4]]
    assert ts.inputs[1, 0].reshape(3, 3).tolist() == [[2, 10, 10], [10, 10, 10], [10, 10, 10]]
    text = codec.render(ts.query_inputs[0], color=True)
    assert "\x1b[48;5;" in text and len(text.split("\n")) == 3


def test_model_alphabet_limits_user_tasks(tmp_path):
    f = tmp_path / "big.jsonl"
    f.write_text(json.dumps({"id": "big", "train": [{"input": [1, 2, 3, 14], "output": [1, 2, 3, 4]}], "test": [
        {"input": [1, 2, 3, 4]}]}) + "\n")
    with pytest.raises(DataError, match=r"big.jsonl:1: error: task 'big': train pair 1: input has value 14"):
        load_tasks(f, _spec(length=4))
    assert load_tasks(f, _spec(length=4, values=16)).inputs[0, 0].tolist() == [1, 2, 3, 14]


@pytest.mark.parametrize("family,params", [
    ("shift", {"split": "comp_i"}),
    ("pattern", {"rows": 6, "cols": 5, "size": 3}),
    ("string_rules", {}),
    ("deepcoder", {"split": "COMPOSE_NEW_OP"}),
])
def test_export_round_trips(tmp_path, family, params):
    if family == "deepcoder":  # its ood split reads the ExeDec test files, which live outside the repository
        skip_without_exedec()
    spec = _spec(family, pairs=2, **params)
    ts = sample_split(spec, "ood", 12, seed=4)
    written = export_tasks(ts, codec_of(spec), tmp_path / "out")
    assert len(written) == 12
    back = load_tasks(tmp_path / "out", spec)
    assert back.ids == ts.ids
    for f in ("inputs", "outputs", "pair_mask", "query_inputs", "query_outputs", "has_target"):
        assert np.array_equal(getattr(back, f), getattr(ts, f)), f
    if family != "deepcoder":  # plain ints: the files family infers an equivalent codec
        via_files = load_tasks(tmp_path / "out", _spec("files", pairs=2, ood=str(tmp_path / "out")))
        assert np.array_equal(via_files.query_outputs, ts.query_outputs)


def test_export_refuses_to_overwrite(tmp_path):
    spec = _spec()
    ts = sample_split(spec, "id", 2, seed=0)
    (tmp_path / "keep.json").write_text("{}")
    with pytest.raises(DataError, match="not empty"):
        export_tasks(ts, codec_of(spec), tmp_path)
    assert (tmp_path / "keep.json").read_text() == "{}"
    assert len(export_tasks(ts, codec_of(spec), tmp_path, force=True)) == 2


def _nlic(*args, cwd=None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "nlic.runtime", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def _write_spec(path, family, params, pairs=2):
    body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in params.items())
    text = f"name: t\ntask:\n  family: {family}\n  params: {{{body}}}\n  pairs: {pairs}\n"
    if family == "files":  # a files spec names only the splits it has
        split = next(iter(params))
        text += f"  train_split: {split}\neval:\n  splits: [{split}]\n"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["missing_output.jsonl", "bad_json.json", "not_utf8.json"])
def test_cli_reports_bad_data_without_traceback(tmp_path, name):
    spec = _write_spec(tmp_path / "s.yaml", "files", {"ood": str(BAD / name)})
    r = _nlic("data", "show", str(spec), "--split", "ood")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "error:" in r.stderr
    where, _ = BAD_CASES[name]
    assert where in r.stderr


def _main(capsys, *args):
    """The CLI in-process (subprocess start-up is slow): (exit code, stdout, stderr)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_show_and_export_round_trip(tmp_path, capsys, monkeypatch):
    spec = _write_spec(tmp_path / "s.yaml", "shift", {"split": "shift_l", "length": 12})
    code, out, err = _main(capsys, "data", "show", str(spec), "--split", "ood", "-n", "2")
    assert code == 0, err
    assert out.count("task ood-") == 2 and "query:" in out and "\x1b[" not in out
    code, _, err = _main(capsys, "data", "export", str(spec), "--split", "ood", "-n", "5", "--out", str(tmp_path / "ex"))
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "ex")) == [f"ood-{i:04d}.json" for i in range(5)]
    files_spec = _write_spec(tmp_path / "f.yaml", "files", {"ood": "ex"})  # relative to the spec file
    monkeypatch.chdir("/")
    code, out2, err = _main(capsys, "data", "show", str(files_spec), "--split", "ood", "-n", "5")
    assert code == 0, err
    shown = lambda text: [line for line in text.splitlines() if line.startswith("  ")]  # noqa: E731
    assert shown(out2) == shown(_main(capsys, "data", "show", str(spec), "--split", "ood", "-n", "5")[1])
    code, _, err = _main(capsys, "data", "export", str(spec), "--split", "ood", "--out", str(tmp_path / "ex"))
    assert code == 2 and "not empty" in err


def test_unknown_split_names_the_known_ones(tmp_path, capsys):
    spec = _write_spec(tmp_path / "s.yaml", "pattern", {})
    code, _, err = _main(capsys, "data", "show", str(spec), "--split", "ood_srong")
    assert code == 2 and "did you mean 'ood_strong'" in err
