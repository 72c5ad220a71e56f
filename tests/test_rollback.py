"""Rollback (`nlic.runtime.rollback`): a run whose ID accuracy falls after a loss spike goes back to its best point
and trains on at a lower learning rate; deterministic, and a killed run resumes bit-identically."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlic.compiler import parse_spec
from nlic.compiler.optim import drop_step, lr_schedule
from nlic.compiler.seeds import derive_seed
from nlic.grammar.errors import CheckpointError, SpecError
from nlic.runtime import checkpoint as ckpt
from nlic.runtime import health, rollback
from nlic.runtime import run_dir as rd
from nlic.runtime.train import train
from conftest import interrupt_training

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_health import TINY_NLI  # noqa: E402
from test_recovery import _losses, ckpt_model, leaves  # noqa: E402

# 12 steps, evaluations and checkpoints every 2 (the selection sample scored too), no token splits.
TINY = (TINY_NLI.replace("REG", "0.0").replace("STEPS", "12").replace("checkpoint_every: 4", "checkpoint_every: 2")
        .replace("eval_every: 0", "eval_every: 2, split_until: 0").replace("restarts: 0", "restarts: 0EXTRA"))
assert "0EXTRA" in TINY
FALL = 8  # the evaluation point the scripted `training-unstable` fires at


def tiny(extra: str = ", rollback: 1"):
    return parse_spec(TINY.replace("EXTRA", extra), "tiny.yaml")


SCORES = {2: 0.5, 4: 0.9, 6: 0.3, 8: 0.2}  # scripted accuracy by evaluation point (0.1 later): the best is step 4


def _fall_at(monkeypatch, step: int = FALL):
    """`training-unstable` at evaluation point `step`, and scores by evaluation point (`SCORES`): a real fall after
    a loss spike is a matter of luck in a 12-step run (`test_health` tests the check itself)."""
    train_module = importlib.import_module("nlic.runtime.train")  # the module (the package exports its function)
    real_inputs, now = train_module.step_inputs, [0]

    def inputs(spec, seed, step_):
        now[0] = step_ + 1  # the evaluation after this step is of point step_ + 1
        return real_inputs(spec, seed, step_)

    def scored(spec, model, tasks):
        acc = SCORES.get(now[0], 0.1)
        return {"accuracy": acc, "spec_fit": acc, "tasks": 10}

    monkeypatch.setattr(train_module, "step_inputs", inputs)
    monkeypatch.setattr(train_module, "quick_accuracy", scored)

    def scripted(rows, *, step: int, spec, discrete):
        if step != FALL:
            return None
        return health.HealthWarning(rollback.UNSTABLE, step, "ID accuracy fell (scripted)", {}, "a test", "none")

    monkeypatch.setattr(rollback, "rollback_reason", scripted)


def _best_before(rows, step: int) -> int:
    """The best selection point before `step` (the latest of equals), as `selection.Best` picks it."""
    best, at = -1.0, None
    for r in rows:
        if r.get("split") == "selection" and r["step"] < step and r["accuracy"] >= best:
            best, at = r["accuracy"], r["step"]
    return at


# --- the pure parts -------------------------------------------------------------------------------------------


def test_a_rollback_moves_the_drop_to_the_step_gone_back_to_and_compounds_one_in_effect():
    spec = parse_spec(TINY.replace("EXTRA", "").replace("steps: 12", "steps: 6000"), "t.yaml")
    assert rollback.rolled_back_spec(spec, ()) is spec
    one = rollback.Rollback(3000, 2500, rollback.UNSTABLE, "", 0.25)
    tr = rollback.rolled_back_spec(spec, (one,)).training
    assert (drop_step(tr), tr.lr_drop) == (2500, 0.25)
    # grid1d's: lr_drop_at 0.5 (step 3000). Going back to 2500 brings the drop forward, not twice.
    dropped = dataclasses.replace(spec, training=dataclasses.replace(spec.training, lr_drop_at=0.5))
    tr = rollback.rolled_back_spec(dropped, (one,)).training
    assert (drop_step(tr), tr.lr_drop) == (2500, 0.25)
    lr = lr_schedule(tr)
    assert lr(2499) == pytest.approx(lr_schedule(dropped.training)(2499))
    assert lr(2500) == pytest.approx(0.25 * lr(2499)) and lr(3500) == pytest.approx(lr(2500))
    # Going back to a step already at the dropped rate drops once more; twice, twice more.
    two = rollback.Rollback(5000, 4000, rollback.UNSTABLE, "", 0.0625)
    tr = rollback.rolled_back_spec(dropped, (one, two)).training
    assert (drop_step(tr), tr.lr_drop) == (4000, 0.0625)
    for steps, to in ((12, 6), (7, 3), (10_000_000, 9_999_999), (6000, 1)):
        sp = dataclasses.replace(spec, training=dataclasses.replace(spec.training, steps=steps))
        assert drop_step(rollback.rolled_back_spec(sp, (dataclasses.replace(one, to=to),)).training) == to


def test_the_record_round_trips_and_bad_records_are_located(tmp_path):
    assert rollback.read_rollbacks(tmp_path) == ()
    records = (rollback.Rollback(8, 6, rollback.UNSTABLE, "fell", 0.25),
               rollback.Rollback(12, 6, rollback.UNSTABLE, "fell again", 0.0625))
    rollback.write_rollbacks(tmp_path, records)
    assert rollback.read_rollbacks(tmp_path) == records
    good = json.loads((tmp_path / rd.ROLLBACKS_FILE).read_text())
    bad_items = [{**good["rollbacks"][0], "to": 8}, {**good["rollbacks"][0], "step": True},
                 {**good["rollbacks"][0], "factor": 2.0}, {**good["rollbacks"][0], "reason": 3}, "x"]
    for bad in [{**good, "format": "x"}, {**good, "version": 2}, {**good, "rollbacks": {}}, [],
                *({**good, "rollbacks": [item]} for item in bad_items),
                {**good, "rollbacks": [good["rollbacks"][0], {**good["rollbacks"][1], "step": 6}]}]:
        (tmp_path / rd.ROLLBACKS_FILE).write_text(json.dumps(bad))
        with pytest.raises(CheckpointError) as e:
            rollback.read_rollbacks(tmp_path)
        assert rd.ROLLBACKS_FILE in e.value.render()
    (tmp_path / rd.ROLLBACKS_FILE).write_text("{")
    with pytest.raises(CheckpointError):
        rollback.read_rollbacks(tmp_path)


@pytest.mark.parametrize("extra, says", [(", rollback: 1, keep: last", "training.keep: best"),
                                         (", rollback: 1, eval_every: 0", "training.keep: best"),
                                         (", rollback: 1, lr_drop: 1.0", "lr_drop below 1")])
def test_a_rollback_it_cannot_make_is_refused_with_a_fix(extra, says):
    text = TINY.replace("EXTRA", extra)
    if "eval_every: 0" in extra:
        text = text.replace("eval_every: 2, ", "")
    with pytest.raises(SpecError) as e:
        parse_spec(text, "t.yaml")
    assert "training.rollback" in e.value.render() and says in e.value.render()


def test_the_field_is_quiet_when_unset():
    from nlic.compiler.printer import format_spec

    assert "rollback" not in format_spec(tiny(""), syntax="yaml")
    assert "rollback: 1" in format_spec(tiny(), syntax="yaml")


# --- real tiny runs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rolled(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    _fall_at(mp)
    try:
        res = train(tiny(), out=tmp_path_factory.mktemp("rolled") / "run", progress=False)
    finally:
        mp.undo()
    return res


def test_a_fall_after_a_spike_goes_back_to_the_best_point_at_a_lower_rate(rolled):
    run = rolled.run_dir
    (r,) = rollback.read_rollbacks(run)
    abandoned = rd.read_metrics(run / rd.ROLLBACKS_DIR / "0")
    assert (r.step, r.reason, r.factor) == (FALL, rollback.UNSTABLE, 0.25)
    assert r.to == _best_before(abandoned, FALL)
    # The abandoned steps' rows are archived; the run's rows go on from the step gone back to, each step once.
    assert max(row["step"] for row in abandoned) == FALL
    rows = rd.read_metrics(run)
    train_rows = [row for row in rows if "loss" in row]
    assert [row["step"] for row in train_rows] == list(range(2, 13, 2))
    base = {row["step"]: row["lr"] for row in abandoned if "loss" in row}
    for row in train_rows:
        factor = 0.25 if row["step"] > r.to else 1.0  # the row of step s logs the rate of step s - 1
        assert row["lr"] == pytest.approx(factor * base.get(row["step"], row["lr"] / factor))
    assert rolled.step == 12
    record = json.loads((run / rd.HEALTH_FILE).read_text())
    assert [(x["step"], x["to"]) for x in record["rollbacks"]] == [(FALL, r.to)]
    assert rollback.note((r,)).startswith(f"note: rolled back once after a fall with a loss spike "
                                          f"({rollback.UNSTABLE}): at step {FALL} to step {r.to}'s weights")
    assert rollback.note(()) is None
    # No checkpoint of the abandoned steps is left among the run's own.
    # The checkpoint of step 6, written before the fall at step 8 was seen, is archived with the abandoned steps.
    archived = run / rd.ROLLBACKS_DIR / "0" / rd.CHECKPOINT_DIR
    assert [p.name for p in ckpt.list_checkpoints(archived)] == [ckpt.checkpoint_name(6)]


def test_a_rollback_is_the_run_that_dropped_its_rate_at_that_step(rolled, tmp_path, monkeypatch):
    """Going back resumes from the checkpoint of the step gone back to: the run ends with the weights of a run
    whose learning rate drops at that step, bit for bit."""
    _fall_at(monkeypatch)
    (r,) = rollback.read_rollbacks(rolled.run_dir)
    assert r.to == 4
    spec = tiny(f", lr_drop_at: {r.to / 12!r}")
    assert drop_step(spec.training) == r.to
    plain = train(spec, out=tmp_path / "dropped", progress=False)
    for a, b in zip(leaves(ckpt_model(rolled.run_dir, rolled.spec)), leaves(ckpt_model(plain.run_dir, spec)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert _losses(rolled.run_dir) == _losses(plain.run_dir)


def test_without_a_fall_nothing_changes(tmp_path):
    with_field = train(tiny(), out=tmp_path / "a", progress=False)
    without = train(tiny(""), out=tmp_path / "b", progress=False)
    assert not (with_field.run_dir / rd.ROLLBACKS_FILE).exists()
    for a, b in zip(leaves(with_field.model), leaves(without.model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_killed_after_its_rollback_resumes_bit_identically(rolled, tmp_path, monkeypatch):
    _fall_at(monkeypatch)
    spec = tiny()
    # Step index 9 (the 10th step) is drawn only after the rollback: the run first fell at step 8.
    interrupt_training(monkeypatch, spec, tmp_path / "r", derive_seed(spec.seed, "train", 9))
    assert len(rollback.read_rollbacks(tmp_path / "r")) == 1
    resumed = train(spec, out=tmp_path / "r", resume=True, progress=False)
    assert resumed.fingerprint == rolled.fingerprint
    assert _losses(tmp_path / "r") == _losses(rolled.run_dir)


def test_a_run_killed_while_going_back_falls_again_and_ends_the_same(rolled, tmp_path, monkeypatch):
    """Killed before the record is written: the resumed run trains the same steps again, falls at the same point,
    and goes back as the uninterrupted one did."""
    _fall_at(monkeypatch)
    spec = tiny()
    real = rollback.write_rollbacks

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rollback, "write_rollbacks", killed)
    with pytest.raises(KeyboardInterrupt):
        train(spec, out=tmp_path / "r", progress=False)
    monkeypatch.setattr(rollback, "write_rollbacks", real)
    assert rollback.read_rollbacks(tmp_path / "r") == ()
    resumed = train(spec, out=tmp_path / "r", resume=True, progress=False)
    assert resumed.fingerprint == rolled.fingerprint
    assert rollback.read_rollbacks(tmp_path / "r") == rollback.read_rollbacks(rolled.run_dir)


DRIVER = """\
import sys
sys.path.insert(0, {tests!r})
import pytest
import test_rollback
test_rollback._fall_at(pytest.MonkeyPatch())  # in every process: the launcher starts each with this driver
from nlic.runtime.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_two_processes_roll_back_as_one_does(rolled, tmp_path):
    """Process 0 decides and sets the run directory back; every process resumes from the same checkpoint at the
    same rate: the same record and the same losses, within float tolerance, as one process."""
    (tmp_path / "tiny.yaml").write_text(TINY.replace("EXTRA", ", rollback: 1"))
    (tmp_path / "driver.py").write_text(DRIVER.format(tests=str(Path(__file__).resolve().parent)))
    r = subprocess.run([sys.executable, "driver.py", "train", "tiny.yaml", "--out", "two", "--processes", "2",
                        "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert r.returncode == 0, r.stderr
    # --no-progress prints the verdict and the note after it.
    assert "note: rolled back once after a fall with a loss spike (training-unstable): at step 8" in r.stderr
    assert rollback.read_rollbacks(tmp_path / "two") == rollback.read_rollbacks(rolled.run_dir)
    a, b = _losses(tmp_path / "two"), _losses(rolled.run_dir)
    assert [s for s, _ in a] == [s for s, _ in b]
    np.testing.assert_allclose([x for _, x in a], [x for _, x in b], rtol=1e-5)
