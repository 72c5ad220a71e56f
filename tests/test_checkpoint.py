"""Tests of checkpoints: round trip, `latest` pointer and pruning, atomic writes, and refusal of bad files."""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
import numpy as np
import pytest

from nlic.compiler.spec import Spec
from nlic.grammar.errors import CheckpointError
from nlic.runtime import checkpoint as ck
from nlic.runtime.train import train

SPEC = Spec()


def state(scale: float = 1.0):
    return {"w": jnp.arange(6.0).reshape(2, 3) * scale, "count": jnp.asarray(7, jnp.int32)}


def test_round_trip_latest_pointer_and_pruning(tmp_path):
    for step in (2, 4, 6, 8):
        ck.save_checkpoint(tmp_path, state(step), step=step, spec=SPEC, keep=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["step_00000006.eqx", "step_00000008.eqx"]
    path = ck.latest_checkpoint(tmp_path)
    assert path.name == "step_00000008.eqx"
    loaded, step = ck.load_checkpoint(path, state(), spec=SPEC)
    assert step == 8
    np.testing.assert_array_equal(loaded["w"], state(8)["w"])
    assert int(loaded["count"]) == 7
    header = ck.read_header(path)
    assert header["format"] == "nlic-checkpoint" and header["step"] == 8 and len(header["sha256"]) == 64


def test_no_checkpoint_yet(tmp_path):
    assert ck.latest_checkpoint(tmp_path) is None
    assert ck.latest_checkpoint(tmp_path / "absent") is None


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) - 10], "truncated or corrupt"),
        (lambda b: b[:-5] + bytes(x ^ 0xFF for x in b[-5:]), "truncated or corrupt"),
        (lambda b: b"garbage" + b, "not an nlic checkpoint"),
        (lambda b: b"", "not an nlic checkpoint"),
        (lambda b: b.replace(b'"version": 1}\n', b'"version": 99}\n', 1), "format version 99"),
    ],
    ids=["truncated", "flipped", "bad-header", "empty", "future-version"],
)
def test_damaged_checkpoints_are_refused_naming_the_file(tmp_path, damage, message):
    path = ck.save_checkpoint(tmp_path, state(), step=1, spec=SPEC)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as e:
        ck.load_checkpoint(path, state(), spec=SPEC)
    assert str(path) in e.value.render()
    assert e.value.diagnostics[0].hint or message == "not an nlic checkpoint"


def test_checkpoint_of_another_spec_names_the_differences(tmp_path):
    path = ck.save_checkpoint(tmp_path, state(), step=1, spec=SPEC)
    other = dataclasses.replace(SPEC, seed=5, training=dataclasses.replace(SPEC.training, batch=32))
    with pytest.raises(CheckpointError, match="another spec") as e:
        ck.load_checkpoint(path, state(), spec=other)
    text = e.value.render()
    assert "seed: 0 != 5" in text and "training.batch: 16 != 32" in text and str(path) in text


def test_arrays_of_other_shapes_are_refused(tmp_path):
    path = ck.save_checkpoint(tmp_path, state(), step=1, spec=SPEC)
    like = {"w": jnp.zeros((3, 3)), "count": jnp.asarray(0, jnp.int32)}
    with pytest.raises(CheckpointError, match=r"changed shape|float32\[2, 3\]") as e:
        ck.load_checkpoint(path, like, spec=SPEC)
    assert "(2, 3)" in e.value.render() or "[2, 3]" in e.value.render()
    assert e.value.diagnostics[0].hint


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    ck.save_checkpoint(tmp_path, state(1), step=1, spec=SPEC)

    def crash(*_a, **_k):
        raise KeyboardInterrupt  # e.g. Ctrl-C between writing the temp file and renaming it

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(tmp_path, state(2), step=2, spec=SPEC)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000001.eqx"]  # no temp files left
    loaded, step = ck.load_checkpoint(ck.latest_checkpoint(tmp_path), state(), spec=SPEC)
    assert step == 1 and float(loaded["w"][1, 2]) == 5.0


def test_latest_pointing_nowhere_falls_back_to_the_newest_checkpoint_and_a_foreign_name_is_an_error(tmp_path):
    # A user who deleted a corrupt checkpoint, as its error says, resumes from the one before it (deterministic
    # training gives the same weights), or starts over where none is left.
    first = ck.save_checkpoint(tmp_path, state(), step=1, spec=SPEC)
    (tmp_path / "latest").write_text("step_00000009.eqx\n")
    assert ck.latest_checkpoint(tmp_path) == first
    first.unlink()
    assert ck.latest_checkpoint(tmp_path) is None
    (tmp_path / "latest").write_text("../../etc/passwd\n")
    with pytest.raises(CheckpointError, match="not a checkpoint file"):
        ck.latest_checkpoint(tmp_path)


def test_resume_from_a_corrupt_checkpoint_is_refused_before_training(tmp_path):
    from test_train import tiny_spec

    spec = tiny_spec()
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    path = ck.save_checkpoint(run / "checkpoints", state(), step=2, spec=spec)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        train(spec, out=run, resume=True, progress=False)
    assert "step_00000002.eqx" in e.value.render()
    assert not (run / "model.eqx").exists()


def test_metrics_rows_edited_by_hand_are_skipped_on_resume(tmp_path):
    """A `metrics.jsonl` row whose "step" is not an integer (`{"step": "x"}`, edited by hand) ended `nlic train
    --resume` in `ValueError: invalid literal for int()`; such rows are skipped like a torn line."""
    from nlic.runtime import run_dir as rd

    (tmp_path / rd.METRICS_FILE).write_text(
        '{"step": 1, "loss": 2.0}\n{"step": "x"}\n{"step": null, "loss": 1.0}\n{"step": true}\n[1, 2]\n'
        '{"loss": 3.0}\n{"step": 7, "loss": 1.5}\n{"step": 9, "loss": 1.0}\n{"step": 10, "lo')
    assert [r["step"] for r in rd.read_metrics(tmp_path)] == [1, 7, 9]
    rd.truncate_metrics(tmp_path, 8)
    assert [r["step"] for r in rd.read_metrics(tmp_path)] == [1, 7]
