"""Canonical colours (`task.colours: canonical`): each task's colours renumbered by role, the same task in any
colours, rules with colour arguments as one program in every task, maps back to the task's own colours in
predictions, `nlic data` and replay, the spec field's errors, and specs without it keeping their hash."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest

from nlic.compiler import parse_spec
from nlic.compiler.families import evaluation_tasks, sample_split
from nlic.compiler.families.colours import (
    canonical_colours,
    canonical_map,
    colour_text,
    parse_colours,
    restore_colours,
)
from nlic.compiler.families.grid1d import PAD, generate
from nlic.compiler.identity import spec_hash
from nlic.compiler.printer import format_spec
from nlic.compiler.validate import load_spec
from nlic.grammar.errors import SpecError
from nlic.runtime.cli import main
from nlic.runtime.train import train

from conftest import TINY_GRID1D_MODEL

COLOURS = tuple(range(1, 10))
SPECS = Path(__file__).resolve().parents[1] / "specs"


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _permuted(ts, perm):
    """The tasks with every colour c replaced by perm[c] (0 and PAD kept)."""
    table = np.arange(PAD + 1)
    table[1:10] = perm
    return dataclasses.replace(ts, inputs=table[ts.inputs], outputs=table[ts.outputs],
                               query_inputs=table[ts.query_inputs], query_outputs=table[ts.query_outputs])


def test_the_map_ranks_blocks_then_cells_and_puts_new_colours_on_top():
    # Inputs: a block of 5s with a border pixel 3, and a lone 7; the outputs recolour the 5s to 2.
    x = np.array([[0, 3, 5, 5, 5, 0, 7, 0], [0, 0, 5, 5, 3, 0, 0, 7]])
    y = np.array([[0, 3, 2, 2, 2, 0, 7, 0], [0, 0, 2, 2, 3, 0, 0, 7]])
    back = canonical_map(x, y, np.array([5, 5, 5, 0, 0, 0, 0, 0]), COLOURS, PAD + 1)
    # canonical 1 = 5 (runs of 2-3), then 3 and 7 (runs of 1, two cells each: 3 appears first); 9 = the new colour 2.
    assert back[1:4].tolist() == [5, 3, 7] and back[9] == 2
    assert back[0] == 0 and back[PAD] == PAD and sorted(back[1:10].tolist()) == list(COLOURS)
    # The colours never shown fill the middle in increasing order.
    assert back[4:9].tolist() == [1, 4, 6, 8, 9]


@pytest.mark.parametrize("suite,split", [("comp", "id"), ("id", "id"), ("comp", "ood_comp")])
def test_canonical_tasks_do_not_depend_on_the_colours_drawn(suite, split):
    ts, _ = generate({"suite": suite}, split, 60, 3, seed=3)
    canon = canonical_colours(ts, COLOURS, PAD + 1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        other = canonical_colours(_permuted(ts, rng.permutation(9) + 1), COLOURS, PAD + 1)
        for f in ("inputs", "outputs", "query_inputs", "query_outputs"):
            assert np.array_equal(getattr(other, f), getattr(canon, f)), f
    back = restore_colours(canon)
    for f in ("inputs", "outputs", "query_inputs", "query_outputs"):
        assert np.array_equal(getattr(back, f), getattr(ts, f)), f
    assert back.colour_maps is None and canon.take([2, 0]).colour_maps.shape == (2, PAD + 1)


def test_a_rule_with_colour_arguments_is_one_map_in_every_task():
    ts, programs = generate({"suite": "id"}, "id", 300, 3, seed=5)
    canon = canonical_colours(ts, COLOURS, PAD + 1)
    changes = {}
    for i, steps in enumerate(programs):
        rule = steps[0].rule
        if rule not in ("recolour", "recolour_largest", "recolour_by_size"):
            continue
        x = np.concatenate([canon.inputs[i].ravel(), canon.query_inputs[i]])
        y = np.concatenate([canon.outputs[i].ravel(), canon.query_outputs[i]])
        changes.setdefault(rule, set()).add(frozenset(zip(x[x != y].tolist(), y[x != y].tolist())))
    # In raw colours each task of these rules changes other colours; canonical, every task the same ones.
    assert changes["recolour"] == {frozenset({(1, 9)})}
    assert changes["recolour_largest"] == {frozenset({(1, 9)})}
    assert all(pairs <= {(1, 7), (1, 8), (1, 9)} for pairs in changes["recolour_by_size"])


def test_colour_metadata_round_trips_and_refuses_non_permutations():
    back = np.array([0, 4, 2, 9, 1, 3, 5, 6, 7, 8, PAD])
    text = colour_text(back, COLOURS)
    assert text == "4,2,9,1,3,5,6,7,8"
    assert np.array_equal(parse_colours(text, COLOURS, PAD + 1), back)
    for bad in ("1,2,3", "1,1,3,4,5,6,7,8,9", "a,2,3,4,5,6,7,8,9", "0,2,3,4,5,6,7,8,9", "1,2,3,4,5,6,7,8,10"):
        with pytest.raises(ValueError):
            parse_colours(bad, COLOURS, PAD + 1)


def test_the_field_is_checked_and_left_out_of_the_hash_at_its_default(tmp_path):
    spec = load_spec(SPECS / "minimal" / "comp_i.yaml")
    assert "colours" not in format_spec(spec) and "colours: as_is" in format_spec(spec, comments=True)
    canon = dataclasses.replace(spec, task=dataclasses.replace(spec.task, colours="canonical"))
    assert "  colours: canonical" in format_spec(canon) and spec_hash(canon) != spec_hash(spec)
    # A family without grids, and an unknown value: located errors with a fix.
    with pytest.raises(SpecError) as e:
        parse_spec("name: s\ntask: {family: shift, colours: canonical}\n", str(tmp_path / "s.yaml"))
    (d,) = e.value.diagnostics
    assert "s.yaml:2:" in str(d.loc) and "grid data" in d.message and "remove task.colours" in d.hint
    with pytest.raises(SpecError) as e:
        parse_spec("name: s\ntask: {family: grid1d, colours: canon}\n", str(tmp_path / "s.yaml"))
    assert "canonical" in str(e.value)
    ok = parse_spec("name: s\ntask: {family: grid1d, colours: canonical}\n", str(tmp_path / "s.yaml"))
    assert sample_split(ok, "train", 4, seed=0).colour_maps is not None


MODEL = TINY_GRID1D_MODEL


def test_predictions_data_and_replay_are_in_the_tasks_own_colours(tmp_path):
    text = ("name: g1d_canon\ntask:\n  family: grid1d\n  params: {suite: comp, min_length: 8, max_length: 12}\n"
            "  pairs: 3\n  colours: canonical\neval: {tasks: 6, splits: [ood]}\n" + MODEL)
    path = tmp_path / "g.yaml"
    path.write_text(text)
    spec = parse_spec(text, str(path))
    train(spec, out=tmp_path / "run", progress=False)
    # nlic data shows and exports the task's own colours.
    code, _, err = _cli("data", "export", path, "--split", "ood", "--out", tmp_path / "ood")
    assert code == 0, err
    exported = json.loads((tmp_path / "ood" / "ood-0000.json").read_text())
    assert exported["train"][0]["input"] != []
    programs, preds = tmp_path / "p.nlp", tmp_path / "p.predictions.jsonl"
    code, _, err = _cli("solve", tmp_path / "run", "ood", "--out", programs, "--predictions", preds)
    assert code == 0, err
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    # Inputs and targets as the data hold them (the ood sample in its own colours).
    own = restore_colours(evaluation_tasks(spec, "ood"))
    assert rows[0]["input"] == [[int(v) for v in own.query_inputs[0] if v != PAD]]
    assert rows[0]["target"] == [[int(v) for v in own.query_outputs[0] if v != PAD]]
    assert exported["test"][0]["input"] == rows[0]["input"]
    file_text = programs.read_text()
    assert file_text.count("colours=") == 6
    # Replay gives the solver's predictions, from JSONL inputs and from the exported task folder.
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"id": r["id"], "input": r["input"]}) + "\n" for r in rows))
    for source in (inputs, tmp_path / "ood"):
        code, out, err = _cli("run", tmp_path / "run", programs, "--inputs", source)
        assert code == 0, err
        assert [(r["id"], r["output"]) for r in map(json.loads, out.splitlines())] == [
            (r["id"], r["output"]) for r in rows]
    # A bad map is a located error, exit 2.
    broken = tmp_path / "broken.nlp"
    broken.write_text(file_text.replace('colours="', 'colours="9,9,', 1))
    code, _, err = _cli("run", tmp_path / "run", broken, "--inputs", inputs)
    assert code == 2 and "broken.nlp:5:" in err and "a permutation of 1,2,3" in err, err
