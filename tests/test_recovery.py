"""Recovery from a bad start (`nlic.runtime.recovery`): when an attempt is abandoned, the restart record, the
archive of abandoned attempts, and that a restarted run is deterministic and resumes bit-identically."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

from nlic.compiler import parse_spec
from nlic.compiler.families import shapes_of
from nlic.compiler.kinds import kind_of
from nlic.compiler.optim import init_state, make_optimizer
from nlic.compiler.identity import weight_leaves
from nlic.compiler.seeds import derive_seed
from nlic.grammar.errors import CheckpointError
from nlic.runtime import checkpoint as ckpt
from nlic.runtime import health, recovery, selection
from nlic.runtime import run_dir as rd
from nlic.runtime.train import train
from conftest import interrupt_training

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_health import TINY_NLI, _evaluated  # noqa: E402

# tests/test_health.py's tiny NLI whose token-count regulariser (reg_weight 20) holds the codebook at one token:
# `codebook-collapse` fires at step 6 of every attempt (that file measures the same run without restarts).
TINY = TINY_NLI.replace("REG", "20.0").replace("STEPS", "12").replace("restarts: 0", "restarts: RESTARTS")
assert "restarts: RESTARTS" in TINY


def tiny(restarts: int):
    return parse_spec(TINY.replace("RESTARTS", str(restarts)), "tiny.yaml")


def leaves(model):
    return [np.asarray(x) for x in weight_leaves(model)]


# --- the pure parts -------------------------------------------------------------------------------------------


def test_attempt_zero_keeps_the_specs_seed_and_later_ones_derive_their_own():
    assert recovery.attempt_seed(7, 0) == 7
    seeds = {recovery.attempt_seed(7, k) for k in range(1, 5)}
    assert len(seeds) == 4 and 7 not in seeds
    assert recovery.attempt_seed(7, 2) == derive_seed(7, "restart", 2)


def test_probe_step():
    spec = tiny(2)
    assert recovery.probe_step(spec.training) == 6  # half of 12
    assert recovery.probe_step(tiny(0).training) == 0  # no restarts: never abandoned


def test_restart_reason_is_the_first_health_warning_up_to_the_probe():
    spec = parse_spec(TINY.replace("RESTARTS", "2").replace("steps: 12", "steps: 1000"), "t.yaml")
    flat = [{"step": s, "loss": 2.3, "nll": 2.3, "tokens_in_use": 3.0, "codebook_perplexity": 2.5,
             "skip_fraction": 0.3, "id_accuracy": 0.0} for s in range(50, 501, 50)]
    reason = recovery.restart_reason(flat[:4], step=200, probe=500, spec=spec, discrete=True)
    assert reason is not None and reason[0] == "plateau-no-discrete"
    assert recovery.restart_reason(flat[:4], step=600, probe=500, spec=spec, discrete=True) is None  # past the probe
    learning = [dict(r, loss=2.3 * 0.9 ** (r["step"] / 50), nll=None) for r in flat]
    learning = [{k: v for k, v in r.items() if k != "nll"} for r in learning]
    assert recovery.restart_reason(learning, step=450, probe=500, spec=spec, discrete=True) is None
    # An accuracy still at zero is not a reason by itself (a hard task's healthy run can be there).
    at_probe = learning + [{"step": 500, "split": "id", "accuracy": 0.0, "tasks": 100}]
    assert recovery.restart_reason(at_probe, step=500, probe=500, spec=spec, discrete=True) is None


def test_a_restart_after_a_language_that_never_formed_anneals_more_slowly():
    from nlic.compiler.spec import Schedule

    spec = tiny(3)
    assert recovery.attempt_spec(spec, 0, ()) is spec
    tau = spec.relaxation.tau_inductor
    assert (tau.kind, tau.start, tau.end) == ("exp", 4.0, 0.5)  # the default
    first = recovery.attempt_spec(spec, 1, ("plateau-no-discrete",))
    assert first.seed == spec.seed and first.training == spec.training  # the seed kept: only the schedule changes
    assert first.relaxation.tau_inductor == Schedule("exp", 8.0, 0.5)  # the start doubled, the end kept
    # A warning whose fix is not the anneal (a NaN, a drop) restarts from the next derived seed alone.
    nan = recovery.attempt_spec(spec, 1, ("nan-loss",))
    assert nan.relaxation == spec.relaxation and nan.seed == recovery.attempt_seed(spec.seed, 1) != spec.seed
    # The slower anneal failed at this seed too (a second such warning in a row): the seed is derived as well.
    again = recovery.attempt_spec(spec, 2, ("plateau-no-discrete", "codebook-collapse"))
    assert again.seed == recovery.attempt_seed(spec.seed, 1) != spec.seed
    assert again.relaxation.tau_inductor == Schedule("exp", 16.0, 0.5)
    assert recovery.attempt_spec(spec, 3, ("plateau-no-discrete",) * 3).seed == recovery.attempt_seed(spec.seed, 2)
    third = recovery.attempt_spec(spec, 3, ("codebook-collapse", "nan-loss", "all-skip"))
    assert third.relaxation.tau_inductor == Schedule("exp", 16.0, 0.5) and third.seed == recovery.attempt_seed(0, 1)
    const = dataclasses.replace(spec, relaxation=dataclasses.replace(spec.relaxation,
                                                                      tau_inductor=Schedule("const", 1.0, 1.0)))
    assert recovery.attempt_spec(const, 1, ("relaxation-gap",)).relaxation.tau_inductor == Schedule("const", 2.0, 2.0)
    assert set(recovery.SLOWER_ANNEAL) <= set(health._ORDER)  # warning ids


def test_a_language_stuck_on_part_of_the_tasks_restarts_from_a_derived_seed_annealed_slower_up_to_the_probe():
    # Comp-I seed 4 (measured): ID 0.15, 0.48, 0.49 at steps 500-1500 of 3000; the probe point is step 1500.
    spec = parse_spec(TINY.replace("RESTARTS", "2").replace("steps: 12", "steps: 3000"), "t.yaml")
    rows = _evaluated([0.15, 0.48, 0.49])
    reason = recovery.restart_reason(rows, step=1500, probe=1500, spec=spec, discrete=True)
    assert reason is not None and reason[0] == "id-accuracy-stuck"
    assert recovery.restart_reason(rows[:4], step=1000, probe=1500, spec=spec, discrete=True) is None  # still gaining
    nxt = recovery.attempt_spec(spec, 1, (reason[0],))
    assert nxt.seed == recovery.attempt_seed(spec.seed, 1) != spec.seed  # both: a derived seed...
    tau = spec.relaxation.tau_inductor
    assert nxt.relaxation.tau_inductor == dataclasses.replace(tau, start=2 * tau.start)  # ...and the slower anneal
    third = recovery.attempt_spec(spec, 3, (reason[0], "plateau-no-discrete", reason[0]))
    assert third.seed == recovery.attempt_seed(spec.seed, 2)  # two reseeds, three doublings
    assert third.relaxation.tau_inductor == dataclasses.replace(tau, start=8 * tau.start)
    assert recovery.RESEED_AND_SLOWER <= set(health._ORDER) and not recovery.RESEED_AND_SLOWER & recovery.SLOWER_ANNEAL


def test_a_language_still_stuck_after_the_probe_restarts_up_to_the_last_token_split_and_nothing_else_does():
    # Comp-I seed 4 on an AMD EPYC (measured): ID 0.09, 0.34, 0.48 at steps 500-1500 (gaining at the probe point),
    # then 0.48 at every point to step 3000 through the splits at steps 1500 and 2000.
    spec = parse_spec(TINY.replace("RESTARTS", "2").replace("steps: 12", "steps: 3000"), "t.yaml")
    history = [0.09, 0.34, 0.48, 0.48, 0.48]
    assert recovery.last_step(1500, 2010) == 2010 and recovery.last_step(1500, 0) == 1500
    assert recovery.last_step(0, 2010) == 0  # no restarts allowed: never
    assert recovery.last_step(1500, 2010, 1500) == 1499 and recovery.last_step(1500, 0, 2000) == 1500  # lr_drop_at
    # grid1d comp seed 1 (measured): stuck at ID 0.72 at step 1500, the drop's step; with the drop it ran on to
    # ID 0.91 / OOD 0.59 with search, so no restart from that step on.
    dropped = dataclasses.replace(spec, training=dataclasses.replace(spec.training, lr_drop_at=0.5))
    stuck = _evaluated([0.60, 0.72, 0.72])
    assert recovery.restart_reason(stuck, step=1500, probe=1000, spec=spec, discrete=True, split_until=2010)[0] \
        == recovery.STUCK
    assert recovery.restart_reason(stuck, step=1500, probe=1000, spec=dropped, discrete=True, split_until=2010) is None
    assert recovery.restart_reason(_evaluated(history[:3]), step=1500, probe=1500, spec=spec, discrete=True, split_until=2010) \
        is None  # still gaining at the probe point
    at_2000 = _evaluated(history[:4])
    reason = recovery.restart_reason(at_2000, step=2000, probe=1500, spec=spec, discrete=True, split_until=2010)
    assert reason is not None and reason[0] == recovery.STUCK and "step 2000" in reason[1]
    assert recovery.restart_reason(at_2000, step=2000, probe=1500, spec=spec, discrete=True) is None  # no splits
    assert recovery.restart_reason(_evaluated(history), step=2500, probe=1500, spec=spec, discrete=True, split_until=2010) is None
    # After the probe step no other warning ends an attempt: a plateau at step 1800 is reported, not acted on.
    flat = [{"step": s, "loss": 2.3, "nll": 2.3, "tokens_in_use": 3.0, "codebook_perplexity": 2.5,
             "skip_fraction": 0.3, "id_accuracy": 0.0} for s in range(1550, 2001, 50)]
    found = health.check_health(flat, total_steps=3000, spec=spec, stuck_until=2010)
    assert found and found[0].id == "plateau-no-discrete" and found[0].step > 1500
    assert recovery.restart_reason(flat, step=2000, probe=1500, spec=spec, discrete=True, split_until=2010) is None


def test_restarts_are_paid_in_steps_so_attempts_abandoned_early_buy_more():
    # Comp-I's defaults: 3000 steps, restarts 2, an attempt abandoned at step 2010 at the latest (the last split).
    spec = parse_spec(TINY.replace("RESTARTS", "2").replace("steps: 12", "steps: 3000"), "t.yaml")
    tr, last = spec.training, 2010
    # The first `restarts` attempts may always be abandoned up to the last step, as when restarts were a count.
    assert [recovery.abandon_until(tr, k, spent, last) for k, spent in ((0, 0), (1, 2010))] == [2010, 2010]
    # Comp-I seed 5 (measured): attempts abandoned at steps 600 and 350 (a language that never formed) left 3070 of
    # the 4020 steps unspent, so the third, stuck at ID 0.33 from step 500, may be abandoned too; a fourth solved it.
    assert recovery.abandon_until(tr, 2, 950, last) == 2010
    assert recovery.abandon_until(tr, 3, 950 + 1500, last) == 1570  # what is left of the budget
    assert recovery.abandon_until(tr, 2, 2 * 2010, last) == 0  # two late restarts: the third attempt is the last
    assert recovery.abandon_until(tr, 4, 4 * 50, last) == 0  # at most 2 x restarts, however few steps they spent
    assert recovery.abandon_until(dataclasses.replace(tr, restarts=0), 0, 0, last) == 0
    assert recovery.abandon_until(tr, 0, 0, 0) == 0  # no step at which an attempt may be abandoned
    # A run never trains longer than restarts x last + steps, whatever its attempts spend.
    for steps in ((350, 600, 1500, 1570), (2010, 2010), (50, 50, 50, 50), (2010, 1, 2009)):
        spent, k = 0, 0
        for s in steps:
            if s > recovery.abandon_until(tr, k, spent, last):
                break
            spent, k = spent + s, k + 1
        assert spent <= 2 * last and k <= 4
    history = (recovery.Restart(0, 600, "plateau-no-discrete", ""), recovery.Restart(1, 2000, recovery.CONTINUED, ""))
    assert recovery.steps_spent(history) == 600  # the attempt set aside to continue another is not a restart


def test_state_round_trips_and_bad_records_are_located(tmp_path):
    assert recovery.read_state(tmp_path) == recovery.RestartState()
    state = recovery.RestartState().after(recovery.Restart(0, 600, "plateau-no-discrete", "loss 1.5 -> 1.5"))
    recovery.write_state(tmp_path, state)
    assert recovery.read_state(tmp_path) == state
    path = tmp_path / recovery.RESTARTS_FILE
    for bad in ("[]", '{"format": "nlic-restarts", "version": 1, "attempt": 2, "history": []}',
                '{"format": "nlic-restarts", "version": 1, "attempt": -1, "history": []}', "{", "x" * 10):
        path.write_text(bad)
        with pytest.raises(CheckpointError) as e:
            recovery.read_state(tmp_path)
        assert str(path) in e.value.render()


def test_archive_is_a_rename_and_can_be_repeated(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "a").write_text("x")
    dest = recovery.archive_attempt(tmp_path, 0, ["metrics.jsonl", "health.json", "checkpoints"])
    assert (dest / "metrics.jsonl").read_text() == "{}\n" and (dest / "checkpoints" / "a").exists()
    assert not (tmp_path / "metrics.jsonl").exists()
    recovery.archive_attempt(tmp_path, 0, ["metrics.jsonl", "checkpoints"])  # nothing left to move: fine
    assert (dest / "metrics.jsonl").exists()


# --- real tiny runs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restarted(tmp_path_factory):
    spec = tiny(1)
    run = tmp_path_factory.mktemp("restarted") / "run"
    return spec, train(spec, out=run, progress=False)


def test_a_failing_attempt_is_abandoned_at_its_first_warning(restarted):
    spec, res = restarted
    state = recovery.read_state(res.run_dir)
    assert state.attempt == 1
    (h,) = state.history
    assert (h.attempt, h.step, h.reason) == (0, 6, "codebook-collapse")
    archived = res.run_dir / recovery.ATTEMPTS_DIR / "0"
    assert [r["step"] for r in rd.read_metrics(archived)] == [2, 4, 6]
    # The last attempt runs to the end whatever its health, and says so.
    assert res.step == 12 and [r["step"] for r in rd.read_metrics(res.run_dir)] == list(range(2, 13, 2))
    assert res.verdict is not None and res.verdict.failed == "codebook-collapse"
    record = json.loads((res.run_dir / "health.json").read_text())
    assert record["restarts"][0]["reason"] == "codebook-collapse"
    # The restart anneals from twice the start temperature: the model trained it (its static configuration).
    assert res.model.cfg.relaxation.tau_inductor == recovery.attempt_spec(spec, 1, ("codebook-collapse",)) \
        .relaxation.tau_inductor != spec.relaxation.tau_inductor
    # Its fixes name the temperature the attempt trained with (the spec's was tried by attempt 0).
    fix = next(w["fix"] for w in record["warnings"] if w["id"] == "codebook-collapse")
    assert f"(now {res.model.cfg.relaxation.tau_inductor}" in fix, fix


def test_restarts_are_deterministic_and_zero_restarts_is_the_old_run(restarted, tmp_path):
    spec, res = restarted
    again = train(spec, out=tmp_path / "again", progress=False)
    assert again.fingerprint == res.fingerprint
    for a, b in zip(leaves(again.model), leaves(res.model)):
        np.testing.assert_array_equal(a, b)
    # Without restarts the run is attempt 0 to the end: other weights.
    plain = train(tiny(0), out=tmp_path / "plain", progress=False)
    assert not (plain.run_dir / recovery.RESTARTS_FILE).exists()
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(plain.model), leaves(res.model)))


def test_attempts_abandoned_early_leave_steps_for_one_more_restart(tmp_path, monkeypatch):
    """restarts: 1 over 24 steps: an attempt may be abandoned up to step 12 (the probe), so the restarts may spend
    12 steps; the collapse abandons attempts at step 6, so a second restart fits, and a killed run resumes into it
    and ends bit-identical."""
    spec = parse_spec(TINY.replace("RESTARTS", "1").replace("steps: 12", "steps: 24"), "tiny.yaml")
    res = train(spec, out=tmp_path / "a", progress=False)
    state = recovery.read_state(res.run_dir)
    assert [(h.attempt, h.step, h.reason) for h in state.history] == [(0, 6, "codebook-collapse"),
                                                                    (1, 6, "codebook-collapse")]
    assert state.attempt == 2 and res.step == 24  # the budget is spent: the third attempt runs to the end
    assert sorted(p.name for p in (res.run_dir / recovery.ATTEMPTS_DIR).iterdir()) == ["0", "1"]
    seed2 = recovery.attempt_spec(spec, 2, ("codebook-collapse",) * 2).seed
    interrupt_training(monkeypatch, spec, tmp_path / "r", derive_seed(seed2, "train", 15))  # in attempt 2
    assert recovery.read_state(tmp_path / "r").attempt == 2
    resumed = train(spec, out=tmp_path / "r", resume=True, progress=False)
    assert resumed.fingerprint == res.fingerprint


def test_a_run_killed_after_its_restart_resumes_bit_identically(restarted, tmp_path, monkeypatch):
    spec, res = restarted
    seed1 = recovery.attempt_spec(spec, 1, ("codebook-collapse",)).seed  # attempt 0 stops at step 6
    interrupt_training(monkeypatch, spec, tmp_path / "r", derive_seed(seed1, "train", 9))  # in attempt 1
    assert recovery.read_state(tmp_path / "r").attempt == 1
    resumed = train(spec, out=tmp_path / "r", resume=True, progress=False)
    assert resumed.fingerprint == res.fingerprint
    assert [r["step"] for r in rd.read_metrics(tmp_path / "r")] == list(range(2, 13, 2))


def test_two_processes_restart_as_one_does(restarted, tmp_path):
    """Process 0 decides the restart from the (global) metrics and every process takes its reason: the same
    attempts, reasons and steps as one process, and the same losses within float tolerance."""
    spec, res = restarted
    (tmp_path / "tiny.yaml").write_text(TINY.replace("RESTARTS", "1"))
    r = subprocess.run([sys.executable, "-m", "nlic.runtime.cli", "train", "tiny.yaml", "--out", "two", "--processes",
                        "2", "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert r.returncode == 0, r.stderr
    two = tmp_path / "two"
    assert recovery.read_state(two) == recovery.read_state(res.run_dir)
    assert "codebook-collapse" in r.stdout + r.stderr
    def losses(run):  # (step, loss) of the training rows
        return [(m["step"], m["loss"]) for m in rd.read_metrics(run) if "split" not in m]

    archived = recovery.ATTEMPTS_DIR + "/0"
    for run_a, run_b in ((two, res.run_dir), (two / archived, res.run_dir / archived)):
        a, b = losses(run_a), losses(run_b)
        assert [s for s, _ in a] == [s for s, _ in b]
        np.testing.assert_allclose([x for _, x in a], [x for _, x in b], rtol=1e-5)
    assert json.loads((two / "health.json").read_text())["restarts"][0]["reason"] == "codebook-collapse"


def _scripted_selection(monkeypatch, first: float, later: float):
    """Every evaluation of attempt 0 (the spec's own temperature) scores `first`, of later attempts `later`."""
    train_module = importlib.import_module("nlic.runtime.train")  # the module (the package exports its function)
    real = train_module.quick_accuracy

    def scripted(spec, model, tasks):
        row = real(spec, model, tasks)
        own = model.cfg.relaxation.tau_inductor == spec.relaxation.tau_inductor
        return {**row, "accuracy": first if own else later}

    monkeypatch.setattr(train_module, "quick_accuracy", scripted)


@pytest.mark.parametrize("first, kept", [(0.9, 0), (0.4, 1)])
def test_an_abandoned_attempt_that_beat_the_last_one_gives_the_run_its_weights(first, kept, tmp_path, monkeypatch):
    # Attempt 0 is abandoned at step 6 (codebook collapse) after scoring `first` on the selection sample at steps
    # 2, 4, 6; attempt 1 scores 0.5 everywhere. The run keeps the better attempt's best point (ties: the last).
    spec = parse_spec(TINY.replace("RESTARTS", "1").replace("eval_every: 0", "eval_every: 2, split_until: 0"),
                      "tiny.yaml")
    assert spec.training.keep == "best"
    _scripted_selection(monkeypatch, first, 0.5)
    res = train(spec, out=tmp_path / "run", progress=False)
    assert recovery.read_state(res.run_dir).attempt == 1
    meta = json.loads((res.run_dir / "model.json").read_text())
    assert meta["weights_attempt"] == kept
    assert meta["weights_step"] == (6 if kept == 0 else 12)  # the latest of equal points
    if kept == 0:
        saved = res.run_dir / recovery.ATTEMPTS_DIR / "0" / "checkpoints" / "best" / "step_00000006.eqx"
        assert saved.exists()
        # The same choice again, from the files alone: a second run of the same spec keeps the same weights.
        again = train(spec, out=tmp_path / "again", progress=False)
        assert again.fingerprint == res.fingerprint
        # And the weights are attempt 0's: not those a run without the archive would keep.
        _scripted_selection(monkeypatch, 0.4, 0.5)
        other = train(spec, out=tmp_path / "other", progress=False)
        assert other.fingerprint != res.fingerprint


def test_best_abandoned_reads_the_archives_and_skips_what_does_not_beat_the_bar(tmp_path):
    run = tmp_path / "run"
    for k, accs in enumerate([(0.2, 0.6), (0.7, 0.3), (0.7,)]):
        d = run / recovery.ATTEMPTS_DIR / str(k)
        d.mkdir(parents=True)
        rows = [{"step": 2 * (i + 1), "split": "selection", "from": "train", "accuracy": a, "spec_fit": a,
                 "tasks": 10} for i, a in enumerate(accs)]
        (d / rd.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    # No checkpoint files: nothing can be kept.
    assert selection.best_abandoned(run, 3, 0.5) is None
    # Attempts 1 and 2 tie at 0.7: the earliest wins; the bar is strict.
    best_dir = run / recovery.ATTEMPTS_DIR / "1" / "checkpoints" / "best"
    best_dir.mkdir(parents=True)
    (best_dir / "step_00000002.eqx").write_bytes(b"x")
    (best_dir / "latest").write_text("step_00000002.eqx\n")
    found = selection.best_abandoned(run, 3, 0.5)
    assert found is not None and found[0] == 1 and found[1].step == 2 and found[2].name == "step_00000002.eqx"
    assert selection.best_abandoned(run, 3, 0.7) is None
    assert selection.best_abandoned(run, 1, None) is None  # attempt 0 has no file


def test_a_run_whose_language_is_still_stuck_after_the_probe_restarts_at_its_last_token_split(tmp_path, monkeypatch):
    # 12 steps, evaluations every 2: the probe step is 6, the last token split at step 8. Attempt 0's ID accuracy
    # (scripted) gains up to the probe and then stalls: it is abandoned at step 8, not at the probe; attempt 1
    # solves everything and runs to the end.
    spec = parse_spec(TINY.replace("REG", "0.0").replace("RESTARTS", "1").replace("eval_every: 0", "eval_every: 2"),
                      "tiny.yaml")
    assert recovery.probe_step(spec.training) == 6 and int(spec.training.split_until * 12) == 8
    train_module = importlib.import_module("nlic.runtime.train")
    calls = []

    def scripted(spec_, model, tasks):  # no evaluation: the scores alone
        own = model.cfg.relaxation.tau_inductor == spec.relaxation.tau_inductor
        calls.append(own)
        point = (sum(calls) - 1) // 3 if own else 0  # three scorings per point (id, ood, selection)
        acc = [0.1, 0.3, 0.5, 0.5, 0.5, 0.5][min(point, 5)] if own else 1.0
        return {"accuracy": acc, "spec_fit": acc, "tasks": 10}

    monkeypatch.setattr(train_module, "quick_accuracy", scripted)
    res = train(spec, out=tmp_path / "run", progress=False)
    state = recovery.read_state(res.run_dir)
    assert state.attempt == 1
    assert (state.history[0].step, state.history[0].reason) == (8, recovery.STUCK)
    archived = rd.read_metrics(res.run_dir / recovery.ATTEMPTS_DIR / "0")
    assert [r["accuracy"] for r in archived if r.get("split") == "id"] == [0.1, 0.3, 0.5, 0.5]
    assert res.verdict is not None and res.verdict.healthy


def _stuck_then_worse(monkeypatch, spec, later: float):
    """Scripted scores (no evaluation): attempt 0 (the spec's own temperature) gains up to the probe and then stalls
    at 0.5, so it is abandoned as stuck at its last token split (step 8 of 12); later attempts score `later`."""
    train_module = importlib.import_module("nlic.runtime.train")
    calls = []

    def scripted(spec_, model, tasks):
        own = model.cfg.relaxation.tau_inductor == spec.relaxation.tau_inductor
        calls.append(own)
        point = (sum(calls) - 1) // 3 if own else 0  # three scorings per point (id, ood, selection)
        acc = [0.1, 0.3, 0.5, 0.5, 0.5, 0.5][min(point, 5)] if own else later
        return {"accuracy": acc, "spec_fit": acc, "tasks": 10}

    monkeypatch.setattr(train_module, "quick_accuracy", scripted)


def _stuck_spec(restarts: int = 1):
    return parse_spec(TINY.replace("REG", "0.0").replace("RESTARTS", str(restarts))
                      .replace("eval_every: 0", "eval_every: 2"), "tiny.yaml")


def _losses(run):
    return [(m["step"], m["loss"]) for m in rd.read_metrics(run) if "loss" in m]


@pytest.fixture(scope="module")
def continued(tmp_path_factory):
    """Attempt 0 abandoned as stuck at step 8 (selection 0.5), attempt 1 scoring 0.2 to the end: the run goes back
    and continues attempt 0 from its last checkpoint (step 4) to step 12."""
    mp = pytest.MonkeyPatch()
    spec = _stuck_spec()
    _stuck_then_worse(mp, spec, 0.2)
    try:
        res = train(spec, out=tmp_path_factory.mktemp("continued") / "run", progress=False)
        plain = train(_stuck_spec(0), out=tmp_path_factory.mktemp("plain") / "run", progress=False)
    finally:
        mp.undo()
    return spec, res, plain


def test_a_stuck_attempt_that_beat_its_restarts_is_continued_to_the_end(continued):
    spec, res, plain = continued
    state = recovery.read_state(res.run_dir)
    assert [(h.attempt, h.step, h.reason) for h in state.history] == [(0, 8, recovery.STUCK),
                                                                      (1, 12, recovery.CONTINUED)]
    assert (state.attempt, state.continues, state.restored, state.training) == (2, 0, True, 0)
    # The last attempt is archived like the others; the continued one's files are the run's again.
    assert (res.run_dir / recovery.ATTEMPTS_DIR / "1" / rd.METRICS_FILE).exists()
    assert not (res.run_dir / recovery.ATTEMPTS_DIR / "0").exists()
    assert res.step == 12 and res.model.cfg.relaxation.tau_inductor == spec.relaxation.tau_inductor
    # Attempt 0 trained on exactly as a run without restarts: the same losses at every step, the same last weights.
    assert _losses(res.run_dir) == _losses(plain.run_dir) and [s for s, _ in _losses(res.run_dir)] == list(
        range(2, 13, 2))
    for a, b in zip(leaves(ckpt_model(res.run_dir, spec)), leaves(ckpt_model(plain.run_dir, plain.spec)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    meta = json.loads((res.run_dir / "model.json").read_text())
    assert meta["weights_attempt"] == 0
    record = json.loads((res.run_dir / "health.json").read_text())
    assert [r["reason"] for r in record["restarts"]] == [recovery.STUCK, recovery.CONTINUED]
    # The verdict judges the continued attempt; the line after it says the restarts were tried.
    assert recovery.continued_note(state) == ("note: attempt 1 (abandoned as stuck) was continued to the end: the "
                                              "attempt after it ended below it (restarts.json, attempts/)")
    assert recovery.continued_note(recovery.RestartState(1, state.history[:1])) is None


def ckpt_model(run, spec):
    """The model of a run's last checkpoint (its last step's weights, whichever the run kept)."""
    abstract = eqx.filter_eval_shape(init_state, spec, kind_of(spec), shapes_of(spec), make_optimizer(spec.training))
    like = (abstract[0], abstract[1], jax.eval_shape(jax.random.key_data, abstract[2]))
    (model, _, _), step = ckpt.load_checkpoint(ckpt.latest_checkpoint(run / rd.CHECKPOINT_DIR), like, spec=spec)
    assert step == spec.training.steps
    return model


def test_restarts_that_did_better_are_not_undone(tmp_path, monkeypatch):
    spec = _stuck_spec()
    _stuck_then_worse(monkeypatch, spec, 0.5)  # a tie keeps the last attempt
    res = train(spec, out=tmp_path / "run", progress=False)
    state = recovery.read_state(res.run_dir)
    assert state.continues is None and [h.reason for h in state.history] == [recovery.STUCK]
    assert res.model.cfg.relaxation.tau_inductor != spec.relaxation.tau_inductor


def test_a_run_killed_while_continuing_resumes_bit_identically(continued, tmp_path, monkeypatch):
    spec, res, _ = continued
    _stuck_then_worse(monkeypatch, spec, 0.2)
    # Step 10 of attempt 0 is trained only in its continuation (it was abandoned at step 8).
    interrupt_training(monkeypatch, spec, tmp_path / "r", derive_seed(spec.seed, "train", 9))
    assert recovery.read_state(tmp_path / "r").continues == 0
    resumed = train(spec, out=tmp_path / "r", resume=True, progress=False)
    assert resumed.fingerprint == res.fingerprint
    assert _losses(tmp_path / "r") == _losses(res.run_dir)


def test_a_run_killed_while_moving_the_attempts_files_finishes_the_moves_on_resume(continued, tmp_path):
    spec, res, _ = continued
    run = tmp_path / "run"
    shutil.copytree(res.run_dir, run)
    # Undo the restore half-way: attempt 0's metrics back in its archive, the record not yet marked restored.
    (run / recovery.ATTEMPTS_DIR / "0").mkdir()
    (run / rd.METRICS_FILE).rename(run / recovery.ATTEMPTS_DIR / "0" / rd.METRICS_FILE)
    state = recovery.read_state(run)
    recovery.write_state(run, dataclasses.replace(state, restored=False))
    recovery.restore_attempt(run, 1, 0, (rd.METRICS_FILE, rd.HEALTH_FILE, rd.CHECKPOINT_DIR))
    assert (run / rd.METRICS_FILE).exists() and not (run / recovery.ATTEMPTS_DIR / "0").exists()
    assert (run / recovery.ATTEMPTS_DIR / "1" / rd.METRICS_FILE).exists()  # the archive was not touched again


def test_a_continue_record_is_checked(tmp_path):
    run = tmp_path
    stuck = recovery.Restart(0, 8, recovery.STUCK, "s")
    cont = recovery.Restart(1, 12, recovery.CONTINUED, "c")
    good = recovery.RestartState(2, (stuck, cont), continues=0, restored=True)
    recovery.write_state(run, good)
    assert recovery.read_state(run) == good
    # A record without the key reads as before (files of runs that never continued).
    recovery.write_state(run, recovery.RestartState(1, (stuck,)))
    assert "continues" not in (run / recovery.RESTARTS_FILE).read_text()
    for bad in (dict(continues=1), dict(continues=True), dict(continues=-1), dict(restored="yes")):
        data = json.loads(json.dumps({"format": "nlic-restarts", "version": 1, "attempt": 2,
                                      "history": [dataclasses.asdict(stuck), dataclasses.asdict(cont)],
                                      "continues": 0, "restored": True} | bad))
        (run / recovery.RESTARTS_FILE).write_text(json.dumps(data))
        with pytest.raises(CheckpointError, match="not a valid nlic restart record"):
            recovery.read_state(run)
