"""The grid1d family: rule semantics on hand-made rows, valid and deterministic tasks, the suites' splits, located
parameter errors, ARC-JSON export, and mixed row lengths end to end (grid1d itself and exported files: train,
solve, replay)."""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from nlic.compiler import parse_spec
from nlic.compiler.families import FAMILIES, GridCodec, codec_of, load_tasks, sample_split, shapes_of
from nlic.compiler.families.grid1d import (
    COMPOSABLE,
    PAD,
    RULES,
    SPLITS,
    Step,
    apply,
    generate,
    primitive_steps,
    run_program,
    split_programs,
)
from nlic.compiler.spec import Spec, TaskSpec
from nlic.grammar.errors import Loc, SpecError
from nlic.runtime.cli import main
from nlic.runtime.export import export_tasks
from nlic.runtime.train import train

from conftest import TINY_GRID1D_MODEL

USER_TASKS = Path(__file__).parent / "data" / "grid1d"

# (rule, args, input, expected output): the semantics of every rule, pinned.
CASES = [
    ("move", dict(k=2, direction=1), [0, 3, 3, 3, 0, 0, 0, 0], [0, 0, 0, 3, 3, 3, 0, 0]),
    ("move", dict(k=1, direction=-1), [0, 0, 5, 2, 0], [0, 5, 2, 0, 0]),
    ("move_to_dot", dict(dot=9), [0, 2, 2, 0, 0, 0, 9, 0], [0, 0, 0, 0, 2, 2, 9, 0]),
    ("move_to_dot", dict(dot=9), [9, 0, 0, 1, 4, 0], [9, 1, 4, 0, 0, 0]),
    ("flip", {}, [0, 4, 3, 3, 3, 0], [0, 3, 3, 3, 4, 0]),
    ("flip", {}, [0, 4, 0, 0, 3, 0], [0, 3, 0, 0, 4, 0]),
    ("mirror", dict(dot=9), [1, 2, 0, 9, 0, 0, 0, 0], [0, 0, 0, 9, 0, 2, 1, 0]),
    ("fill", {}, [0, 6, 0, 0, 0, 6, 0], [0, 6, 6, 6, 6, 6, 0]),
    ("hollow", {}, [0, 5, 5, 5, 5, 0, 7, 7, 7, 0, 2, 2], [0, 5, 0, 0, 5, 0, 7, 0, 7, 0, 2, 2]),
    ("denoise", {}, [4, 0, 0, 4, 4, 4, 4, 0, 3, 0], [0, 0, 0, 4, 4, 4, 4, 0, 0, 0]),
    ("copy_to_dots", {}, [1, 2, 1, 0, 0, 0, 1, 0, 0, 1, 0], [1, 2, 1, 0, 0, 1, 2, 1, 1, 2, 1]),
    ("recolour_by_size", dict(size1=7, size2=8, size3=9), [5, 0, 5, 5, 0, 5, 5, 5, 0, 5],
     [7, 0, 8, 8, 0, 9, 9, 9, 0, 7]),
    ("scale_to_dot", dict(dot=9), [0, 3, 3, 0, 0, 0, 9, 0], [0, 3, 3, 3, 3, 3, 9, 0]),
    ("scale_to_dot", dict(dot=9), [0, 9, 0, 0, 4, 1], [0, 9, 4, 4, 4, 1]),
    ("recolour", dict(source=3, target=5), [3, 3, 4, 0, 3], [5, 5, 4, 0, 5]),
    ("recolour_largest", dict(target=2), [1, 0, 1, 1, 1, 0, 1, 1], [1, 0, 2, 2, 2, 0, 1, 1]),
    ("push_to_edge", dict(direction=1), [0, 6, 6, 0, 7, 0, 0], [0, 0, 0, 6, 6, 0, 7]),
    ("push_to_edge", dict(direction=-1), [0, 0, 8, 8, 0], [8, 8, 0, 0, 0]),
    ("grow", {}, [0, 0, 2, 1, 1, 0, 0], [0, 2, 2, 1, 1, 1, 0]),
    ("grow", {}, [3, 3, 0], [3, 3, 3]),
]

# (rule, args, a row it does not apply to)
UNFIT = [
    ("move", dict(k=2, direction=1), [0, 0, 3, 3, 3, 0]),  # would leave the row
    ("move_to_dot", dict(dot=9), [0, 2, 2, 0, 0]),  # no dot
    ("mirror", dict(dot=9), [0, 9, 0, 2, 2, 0]),  # the image leaves the row
    ("fill", {}, [0, 6, 0, 6, 0, 6]),  # three pixels
    ("copy_to_dots", {}, [1, 1, 0, 0, 1, 0]),  # even pattern
    ("recolour_by_size", dict(size1=7, size2=8, size3=9), [5, 5, 5, 5, 0, 5]),  # a block of 4
    ("denoise", {}, [1, 1, 0, 2, 2]),  # no single widest block
]


def _spec(pairs=3, **params):
    return Spec(task=TaskSpec(family="grid1d", params=tuple(params.items()), pairs=pairs))


def _rows(ts):
    """Every pair of a TaskSet as int [n, pairs + 1, L] inputs and outputs (the query last)."""
    return (np.concatenate([ts.inputs, ts.query_inputs[:, None]], 1),
            np.concatenate([ts.outputs, ts.query_outputs[:, None]], 1))


def test_rules_are_named_and_pinned_on_hand_made_rows():
    assert len(RULES) >= 12 and len(set(RULES)) == len(RULES) and set(COMPOSABLE) <= set(RULES)
    assert {c[0] for c in CASES} == set(RULES)
    for rule, args, x, y in CASES:
        assert apply(rule, x, **args) == y, (rule, args, x)
        assert run_program([Step(rule, tuple(args.items()))], x) == y


@pytest.mark.parametrize("rule,args,row", UNFIT, ids=[u[0] for u in UNFIT])
def test_rules_refuse_rows_they_do_not_apply_to(rule, args, row):
    with pytest.raises(ValueError, match="does not apply"):
        apply(rule, row, **args)


def test_apply_reports_bad_calls():
    with pytest.raises(ValueError, match="did you mean 'move'"):
        apply("mvoe", [0, 1, 0], k=1, direction=1)
    with pytest.raises(ValueError, match=r"takes arguments \(k, direction\)"):
        apply("move", [0, 1, 0], k=1)
    with pytest.raises(ValueError, match="bad argument direction=2"):
        apply("move", [0, 1, 0], k=1, direction=2)
    with pytest.raises(ValueError, match="colours 0-9"):
        apply("flip", [0, 12, 0])


@pytest.mark.parametrize("lengths", [(8, 8), (8, 32), (32, 32)])
def test_every_rule_makes_valid_tasks(lengths):
    lo, hi = lengths
    ts, programs = generate({"min_length": lo, "max_length": hi}, "train", 150, 3, seed=lo + hi)
    assert {p[0].rule for p in programs} == set(RULES) and all(len(p) == 1 for p in programs)
    xs, ys = _rows(ts)
    assert xs.shape == (150, 4, hi) and ts.pair_mask.all() and ts.has_target.all()
    for i, steps in enumerate(programs):
        n = int((xs[i, 0] != PAD).sum())
        assert lo <= n <= hi
        for x, y in zip(xs[i], ys[i]):
            # Every pair of a task has the same length n: cells 0..n-1 hold colours, the rest PAD.
            assert (x[n:] == PAD).all() and (y[n:] == PAD).all()
            assert (x[:n] <= 9).all() and (y[:n] <= 9).all() and x[:n].any()
            assert not np.array_equal(x, y)
            assert run_program(steps, x[:n]) == y[:n].tolist()
        for name, value in steps[0].args:
            assert 1 <= value <= 9 if name not in ("k", "direction") else value in (1, 2, 3, -1)


def _gap(row):
    """Background cells between a row's first and last pixel."""
    nz = np.flatnonzero((row != 0) & (row != PAD))
    return int(nz[-1] - nz[0] + 1 - nz.size)


def _widest(row):
    """Cells of a row's widest run of pixels."""
    return max(len(run) for run in "".join("1" if v not in (0, PAD) else " " for v in row).split())


def test_spec_pairs_tell_look_alike_rules_apart():
    ts, programs = generate({"min_length": 8, "max_length": 16}, "train", 200, 3, seed=3)
    seen = collections.Counter()
    for i, steps in enumerate(programs):
        rule = steps[0].rule
        x, y = ts.inputs[i], ts.outputs[i]
        # The distance moved (or grown) differs across the spec pairs, so that no fixed move fits them.
        if rule in ("move_to_dot", "scale_to_dot"):
            assert len({_gap(r) for r in x}) > 1, (rule, i)
        elif rule == "push_to_edge":
            assert len({int(np.flatnonzero(b)[0] - np.flatnonzero(a)[0]) for a, b in zip(x, y)}) > 1, i
        elif rule == "move":
            # Some output is away from both edges, so that push_to_edge does not fit.
            assert any(r[0] == 0 and r[int((r != PAD).sum()) - 1] == 0 for r in y), i
        elif rule == "recolour_largest":
            assert len({_widest(r) for r in x}) > 1, i
        else:
            continue
        seen[rule] += 1
    assert len(seen) == 5 and min(seen.values()) > 5


def test_deterministic_per_seed_and_independent_streams():
    spec = _spec(min_length=8, max_length=20)
    a, b, c = (sample_split(spec, "train", 24, seed=s) for s in (5, 5, 6))
    for f in ("inputs", "outputs", "query_inputs", "query_outputs"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.inputs, c.inputs)
    assert not np.array_equal(a.inputs, sample_split(spec, "id", 24, seed=5).inputs)
    # A larger sample starts with the same tasks.
    assert np.array_equal(sample_split(spec, "train", 40, seed=5).inputs[:24], a.inputs)


def test_splits_hold_what_each_suite_promises():
    assert FAMILIES.get("grid1d").splits({}) == SPLITS
    comp = {(g, f) for g in COMPOSABLE for f in COMPOSABLE if g != f} - {("move", "push_to_edge")}
    expected = {  # suite -> split -> programs (rule names in the order applied)
        "id": {"train": {(r,) for r in RULES}, "ood": comp},
        "moves": {"train": {("move",)}, "ood": {("move",), ("move_to_dot",)}},
        "comp": {"train": {(r,) for r in COMPOSABLE}, "ood": comp},
    }
    for suite, splits in expected.items():
        params = {"suite": suite}
        assert set(split_programs(params, "train")) == set(split_programs(params, "id")) == splits["train"]
        assert set(split_programs(params, "ood")) == splits["ood"]
        assert set(split_programs(params, "ood_moves")) == expected["moves"]["ood"]
        assert set(split_programs(params, "ood_comp")) == comp and len(comp) == 29
    # Move amounts: the moves suite trains on 1 and 2 only; ood_moves holds moves by 3 (and moves to a dot).
    for split, suite, amounts in (("train", "moves", {1, 2}), ("id", "moves", {1, 2}), ("ood", "moves", {3}),
                                  ("ood_moves", "id", {3}), ("train", "comp", {1, 2, 3})):
        progs = generate({"suite": suite, "min_length": 8, "max_length": 16}, split, 60, 3, seed=11)[1]
        assert {tuple(s.rule for s in p) for p in progs} <= set(split_programs({"suite": suite}, split))
        moves = [s.kwargs() for p in progs for s in p if s.rule == "move"]
        assert {m["k"] for m in moves} == amounts and {m["direction"] for m in moves} == {-1, 1}, (split, suite)
    progs = generate({"suite": "comp"}, "ood", 60, 3, seed=11)[1]
    assert all(len(p) == 2 and (p[0].rule, p[1].rule) in comp for p in progs)


def test_compositions_differ_from_each_part_alone():
    ts, programs = generate({"min_length": 8, "max_length": 32}, "ood_comp", 60, 3, seed=2)
    xs, ys = _rows(ts)
    for i, (g, f) in enumerate(programs):
        for x, y in zip(xs[i], ys[i]):
            n = int((x != PAD).sum())
            for part in (g, f):
                try:
                    alone = apply(part.rule, x[:n].tolist(), **part.kwargs())
                except ValueError:
                    continue
                assert alone != y[:n].tolist()


def test_codec_shapes_and_move_overrides():
    spec = _spec(min_length=9, max_length=14, suite="moves", move_by="1..1", ood_move_by="2..4")
    assert codec_of(spec) == GridCodec(rows=1, cols=14, values=11, pad=PAD)
    s = shapes_of(spec)
    assert (s.length, s.values, s.pairs) == (14, 11, 3)
    progs = generate(dict(spec.task.params), "ood_moves", 100, 3, seed=0)[1]
    assert {p[0].kwargs()["k"] for p in progs if p[0].rule == "move"} == {2, 3, 4}


def test_bad_params_are_located_errors():
    fam = FAMILIES.get("grid1d")
    locs = {k: Loc("s.yaml", i, 3) for i, k in enumerate(
        ["suite", "min_lenght", "min_length", "max_length", "move_by", "ood_move_by"], 2)}
    diags = fam.check_params({"suite": "idd", "min_lenght": 9, "max_length": 40, "min_length": 7}, locs, Loc("s.yaml"))
    msgs = [str(d) for d in diags]
    assert any("s.yaml:2:3" in m and "'suite' has unknown value 'idd'" in m and "did you mean 'id'" in m for m in msgs)
    assert any("s.yaml:3:3" in m and "unknown parameter 'min_lenght'" in m and "did you mean 'min_length'" in m
               for m in msgs)
    assert any("s.yaml:4:3" in m and "out of range" in m and "between 8 and 32" in m for m in msgs)
    assert any("s.yaml:5:3" in m and "out of range" in m for m in msgs)
    msgs = [str(d) for d in fam.check_params({"min_length": 20, "max_length": 12}, locs, Loc("s.yaml"))]
    assert any("s.yaml:4:3" in m and "min_length (20) is larger than max_length (12)" in m for m in msgs)
    msgs = [str(d) for d in fam.check_params({"ood_move_by": "2..3"}, locs, Loc("s.yaml"))]
    assert any("s.yaml:7:3" in m and "overlap at [2]" in m for m in msgs)
    msgs = [str(d) for d in fam.check_params({"ood_move_by": "3..6"}, locs, Loc("s.yaml"))]
    assert any("s.yaml:7:3" in m and "moves by 6 do not fit rows of 8 cells" in m for m in msgs)
    with pytest.raises(SpecError, match="min_length"):
        sample_split(_spec(min_length=20, max_length=12), "train", 2, seed=0)
    with pytest.raises(SpecError, match="did you mean 'ood_comp'"):
        sample_split(_spec(), "ood_cmop", 2, seed=0)


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_validate_locates_bad_params(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ntask:\n  family: grid1d\n  params:\n    suite: moves\n    min_length: 20\n"
                    "    max_length: 12\n    move_by: 1..3\n    ood_move_by: 3..4\n")
    code, _, err = _cli("validate", spec)
    assert code == 2 and "Traceback" not in err
    assert f"{spec}:6:17: error: min_length (20) is larger than max_length (12)" in err, err
    assert f"{spec}:9:18: error: move_by 1..3 and ood_move_by 3..4 overlap at [3]" in err, err


def test_export_is_arc_json_with_unpadded_one_row_grids(tmp_path):
    spec = _spec(min_length=8, max_length=20)
    ts = sample_split(spec, "ood_comp", 12, seed=1)
    written = export_tasks(ts, codec_of(spec), tmp_path / "ex")
    widths = set()
    for i, path in enumerate(written):
        task = json.loads(path.read_text())
        assert sorted(task) == ["test", "train"] and len(task["train"]) == 3 and len(task["test"]) == 1
        n = int((ts.inputs[i, 0] != PAD).sum())
        for pair in task["train"] + task["test"]:
            for side in ("input", "output"):
                grid = pair[side]
                assert len(grid) == 1 and len(grid[0]) == n and all(0 <= v <= 9 for v in grid[0])
        widths.add(n)
    assert len(widths) > 3
    # Read back through the files family: the same tasks, padded with the files family's own PAD.
    back = load_tasks(tmp_path / "ex", Spec(task=TaskSpec(family="files", params=(("ood", str(tmp_path / "ex")),),
                                                          pairs=3)))
    for i in range(len(ts)):
        n = int((ts.inputs[i, 0] != PAD).sum())
        assert np.array_equal(back.inputs[i, :, :n], ts.inputs[i, :, :n])
        assert np.array_equal(back.query_outputs[i, :n], ts.query_outputs[i, :n])


def test_data_show_and_export_commands(tmp_path, capsys):
    spec = tmp_path / "g.yaml"
    spec.write_text("name: g\ntask:\n  family: grid1d\n  params: {suite: comp, min_length: 8, max_length: 12}\n"
                    "  pairs: 3\n")
    code, out, err = _cli("data", "show", spec, "--split", "ood", "-n", "2")
    assert code == 0, err
    assert out.count("task ood-") == 2 and "L=12, V=11" in out
    code, out, err = _cli("data", "export", spec, "--split", "ood", "-n", "3", "--out", tmp_path / "ex")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "ex")) == [f"ood-{i:04d}.json" for i in range(3)]


def test_primitives_run_on_encoded_rows():
    fam = FAMILIES.get("grid1d")
    prims = {p.name: p for p in fam.primitives({"max_length": 10})}
    assert len(prims) == len(primitive_steps({"max_length": 10}))
    assert {"identity", "move_right1", "move_left3", "push_left", "flip", "mirror_9", "recolour_3_to_5"} <= set(prims)
    x = np.array([[0, 3, 3, 0, 0, 0, 0, 0, PAD, PAD], [3, 3, 0, 0, 0, 0, 0, 0, 0, 0]], np.int32)
    np.testing.assert_array_equal(prims["move_right1"](x), [[0, 0, 3, 3, 0, 0, 0, 0, PAD, PAD],
                                                           [0, 3, 3, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(prims["move_left1"](x)[0], [3, 3, 0, 0, 0, 0, 0, 0, PAD, PAD])
    assert (prims["move_left1"](x)[1] == -1).all()  # a pixel would leave the row: undefined
    np.testing.assert_array_equal(prims["identity"](x), x)


# --- end to end with rows of mixed lengths --------------------------------------------------------------------------

# One tiny model for the end-to-end tests (conftest): the same shapes (L = 12, V = 11), so the later ones compile
# from the cache.
MODEL = TINY_GRID1D_MODEL


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _solve_and_replay(run_dir: Path, source: str, tmp: Path, tasks_dir: Path | None = None) -> list[dict]:
    """`nlic solve RUN SOURCE`, then `nlic run` of the programs found on the solved inputs (and on the test inputs
    of an ARC task folder): the replayed outputs are the solver's predictions."""
    programs, preds = tmp / "p.nlp", tmp / "p.predictions.jsonl"
    code, out, err = _cli("solve", run_dir, source, "--out", programs, "--predictions", preds)
    assert code == 0, err
    assert out.splitlines()[-1].startswith("accuracy: ")
    rows = _jsonl(preds)
    inputs = _write(tmp / "inputs.jsonl", "".join(json.dumps({"id": r["id"], "input": r["input"]}) + "\n"
                                                 for r in rows))
    code, out, err = _cli("run", run_dir, programs, "--inputs", inputs)
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {"id": r["id"], "input": r["input"], "output": r["output"]} for r in rows]
    if tasks_dir is not None:
        code, out, err = _cli("run", run_dir, programs, "--inputs", tasks_dir)
        assert code == 0, err
        replayed = [json.loads(line) for line in out.splitlines()]
        assert [(r["id"], r["input"], r["output"]) for r in replayed] == [
            (r["id"], r["input"], r["output"]) for r in rows]
    return rows


def test_grid1d_mixed_lengths_train_solve_replay(tmp_path):
    text = ("name: g1d_tiny\ntask:\n  family: grid1d\n  params: {suite: id, min_length: 8, max_length: 12}\n"
            "  pairs: 3\neval: {tasks: 6, splits: [id]}\n" + MODEL)
    path = _write(tmp_path / "g.yaml", text)
    run = train(parse_spec(text, str(path)), out=tmp_path / "run", progress=False)
    assert run.step == 2
    code, _, err = _cli("data", "export", path, "--split", "id", "--out", tmp_path / "id")
    assert code == 0, err
    rows = _solve_and_replay(tmp_path / "run", "id", tmp_path, tmp_path / "id")
    assert len(rows) == 6 and len({len(r["input"][0]) for r in rows}) > 1  # several lengths, unpadded


@pytest.mark.parametrize("colours", ["as_is", "canonical"])
def test_exported_and_user_files_of_mixed_lengths_through_the_files_family(tmp_path, colours):
    # Exported grid1d tasks (rows of 9-12 cells) next to a user's hand-written 1-row ARC tasks (tests/data/grid1d:
    # 9, 10 and 12 cells; one task with two test pairs, one of them without an output, one with no test pair).
    source = _spec(min_length=8, max_length=12)
    ts = sample_split(source, "ood_comp", 6, seed=4)
    export_tasks(ts, codec_of(source), tmp_path / "tasks")
    lengths = {int((ts.inputs[i, 0] != PAD).sum()) for i in range(len(ts))}
    assert len(lengths) > 1 and max(lengths) == 12
    paths = json.dumps(["tasks", str(USER_TASKS)])
    text = (f"name: g1d_files\ntask:\n  family: files\n  params: {{train: {paths}, ood: {paths}}}\n  pairs: 3\n"
            f"  colours: {colours}\neval: {{tasks: 20, splits: [ood]}}\n" + MODEL)
    spec = parse_spec(text, str(_write(tmp_path / "f.yaml", text)))
    codec = codec_of(spec)
    assert isinstance(codec, GridCodec) and (codec.rows, codec.cols, codec.values) == (1, 12, 11) and codec.pad
    run = train(spec, out=tmp_path / "run", progress=False)
    assert run.step == 2
    rows = _solve_and_replay(tmp_path / "run", "ood", tmp_path)
    assert [r["id"] for r in rows] == [f"ood_comp-{i:04d}" for i in range(6)] + [
        "fill_points", "fill_points#1", "hollow_block", "move_right"]
    assert [len(r["input"][0]) for r in rows] == [
        int((ts.query_inputs[i] != PAD).sum()) for i in range(6)] + [12, 12, 10, 9]
    assert all(r["target"] == [[int(v) for v in ts.query_outputs[i] if v != PAD]] for i, r in enumerate(rows[:6]))
    assert "target" not in rows[7] and rows[9]["target"] == [[0, 0, 0, 0, 0, 7, 7, 7, 0]]
