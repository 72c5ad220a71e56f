"""Keeping a run's best weights (`training.keep`, `nlic.runtime.selection`): the weights of the evaluation point whose
discrete programs solve the most of the training-split selection sample become the run's model; the latest of
equals, so a run that ends at its best keeps its last weights; the choice survives a kill and `--resume`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from nlic.compiler import parse_spec
from nlic.compiler.identity import weight_leaves
from nlic.compiler.seeds import derive_seed
from nlic.runtime import checkpoint as ckpt
from nlic.runtime import run_dir as rd
from nlic.runtime import selection
from nlic.runtime.train import train
from conftest import interrupt_training

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_health import TINY_NLI  # noqa: E402

TINY = (TINY_NLI.replace("REG", "0.0").replace("STEPS", "12")
        .replace("eval_every: 0", "eval_every: 4, keep: KEEP"))
assert "keep: KEEP" in TINY

# The selection accuracy each evaluation point is given (the tiny run's own are all zero): step 8 is the best.
SCRIPT = {4: 0.5, 8: 0.9, 12: 0.2}


def tiny(keep: str = "best"):
    return parse_spec(TINY.replace("KEEP", keep), "tiny.yaml")


def leaves(model):
    return [np.asarray(x) for x in weight_leaves(model)]


def _script(mp: pytest.MonkeyPatch) -> None:
    """Selection accuracies from SCRIPT (by step), for the rows read back on resume too."""
    real = selection.Best.note
    mp.setattr(selection.Best, "note", lambda self, step, acc: real(self, step, SCRIPT[step]))


@pytest.fixture
def scripted(monkeypatch):
    _script(monkeypatch)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs of the tiny spec: keep last; keep best (every point equal); keep best with SCRIPT's accuracies."""
    root = tmp_path_factory.mktemp("keep")
    last = train(tiny("last"), out=root / "last", progress=False)
    even = train(tiny(), out=root / "even", progress=False)
    with pytest.MonkeyPatch.context() as mp:
        _script(mp)
        best = train(tiny(), out=root / "best", progress=False)
    return last, even, best


# --- the pure part --------------------------------------------------------------------------------------------


def test_best_is_the_highest_point_and_the_latest_of_equals(tmp_path):
    best = selection.Best(tmp_path)
    assert best.step is None and best.earlier(12) is None  # nothing scored: the last weights
    assert best.note(4, 0.5) and best.note(8, 0.9)
    assert not best.note(12, 0.2) and best.step == 8 and best.last == 0.2
    assert best.note(16, 0.9) and best.step == 16  # equal to the best: the later point
    assert not best.note(20, None) and best.step == 16  # an unscored point (no targets) changes nothing
    rows = [{"step": 4, "split": "selection", "accuracy": 0.5}, {"step": 4, "split": "id", "accuracy": 1.0},
            {"step": 8, "loss": 1.0}, {"step": 8, "split": "selection", "accuracy": 0.7}]
    again = selection.Best(tmp_path, rows)  # a resumed run: from its rows, evaluation splits never read
    assert (again.step, again.accuracy) == (8, 0.7)


def test_keep_needs_evaluation_points():
    assert selection.keeps_best(tiny("best"))
    assert not selection.keeps_best(tiny("last"))
    assert not selection.keeps_best(parse_spec(TINY.replace("KEEP", "best").replace("eval_every: 4",
                                                                                       "eval_every: 0"), "t.yaml"))
    with pytest.raises(Exception) as e:
        parse_spec(TINY.replace("KEEP", "first"), "t.yaml")
    assert "training.keep" in str(e.value) or "keep" in str(e.value)


def test_the_selection_sample_is_the_training_split_not_an_evaluation_one():
    from nlic.compiler import families as task_api

    spec = tiny()
    sample = selection.selection_tasks(spec)
    assert len(sample) == spec.eval.tasks
    same = task_api.sample_split(spec, "train", spec.eval.tasks, seed=derive_seed(spec.seed, "select"))
    assert np.array_equal(np.asarray(sample.batch().inputs), np.asarray(same.batch().inputs))
    for split in spec.eval.splits:
        other = task_api.evaluation_tasks(spec, split)
        assert not np.array_equal(np.asarray(sample.batch().inputs), np.asarray(other.batch().inputs))


# --- training -------------------------------------------------------------------------------------------------


def test_a_run_keeps_its_best_points_weights(runs):
    last, _, res = runs
    assert res.step == last.step == 12
    rows = [r for r in rd.read_metrics(res.run_dir) if r.get("split") == selection.SELECTION_SPLIT]
    assert [r["step"] for r in rows] == [4, 8, 12] and all(r["from"] == "train" for r in rows)
    header = json.loads((res.run_dir / rd.MODEL_META_FILE).read_text())
    assert header["step"] == 12 and header["weights_step"] == 8
    best_file = ckpt.latest_checkpoint(res.run_dir / rd.CHECKPOINT_DIR / selection.BEST_DIR)
    assert best_file is not None and best_file.name == ckpt.checkpoint_name(8)
    # The kept weights are step 8's, not the last step's (which `keep: last` keeps).
    assert json.loads((last.run_dir / rd.MODEL_META_FILE).read_text())["weights_step"] == 12
    assert not any(r.get("split") == selection.SELECTION_SPLIT for r in rd.read_metrics(last.run_dir))
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(res.model), leaves(last.model)))
    assert res.fingerprint != last.fingerprint


def test_a_run_that_ends_at_its_best_keeps_its_last_weights_bit_for_bit(runs):
    # Unscripted: the tiny run solves nothing, every point is equal, so the last is kept.
    last, even, _ = runs
    assert json.loads((even.run_dir / rd.MODEL_META_FILE).read_text())["weights_step"] == 12
    assert all(np.array_equal(a, b) for a, b in zip(leaves(even.model), leaves(last.model)))


def test_a_killed_run_resumes_to_the_same_kept_weights(tmp_path, monkeypatch, scripted, runs):
    spec, whole = tiny(), runs[2]
    # Killed at step 11: the best (step 8) is on disk, the last checkpoint is step 8's.
    interrupt_training(monkeypatch, spec, tmp_path / "killed", derive_seed(spec.seed, "train", 10))
    resumed = train(spec, out=tmp_path / "killed", resume=True, progress=False)
    assert resumed.fingerprint == whole.fingerprint
    assert all(np.array_equal(a, b) for a, b in zip(leaves(resumed.model), leaves(whole.model)))
    assert json.loads((resumed.run_dir / rd.MODEL_META_FILE).read_text())["weights_step"] == 8
