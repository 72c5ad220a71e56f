"""Tests of the training runtime: optimiser, one trace, run directory, resume after SIGKILL, sharding.

A tiny stand-in model kind (`toy_h_train`, registered on import) keeps compilation to a second; the data are
the real `shift` family at a small size.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nlic.compiler.identity import fingerprint
from nlic.compiler.kinds import MODEL_KINDS, ModelKind, Solution
import nlic.compiler.families as tasks
from nlic.compiler import parse_spec
from nlic.compiler.families import sample_split, shapes_of
from nlic.compiler.optim import init_state, lr_schedule, make_optimizer, make_train_step
from nlic.compiler.seeds import derive_seed
from nlic.compiler.spec import Schedule
from nlic.grammar.errors import CheckpointError, DataError
from nlic.runtime import run_dir as rd
from nlic.runtime.checkpoint import checkpoint_step
from nlic.runtime.progress import Progress
from nlic.runtime.train import pad_batch, replicate, shard_batch, train
from conftest import interrupt_training

TOY = "toy_h_train"
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


# --- a tiny stand-in kind: a recurrent executor over soft tokens, an inductor reading pair statistics ----------


class Toy(eqx.Module):
    induce: eqx.nn.Linear
    values: jax.Array
    codes: jax.Array
    mix: eqx.nn.Linear
    out: eqx.nn.Linear
    slots: int = eqx.field(static=True)
    vocab: int = eqx.field(static=True)
    max_length: int = eqx.field(static=True)
    skip: int = eqx.field(static=True)

    def __init__(self, spec, shapes, *, key):
        k = jax.random.split(key, 5)
        d = spec.model.executor.width
        self.slots, self.vocab = spec.language.length, spec.language.vocab
        self.max_length, self.skip = spec.language.max_length, spec.language.skip_token
        self.induce = eqx.nn.Linear(2 * shapes.length * shapes.values, self.slots * self.vocab, key=k[0])
        self.values = jax.random.normal(k[1], (shapes.values, d)) * 0.5
        self.codes = jax.random.normal(k[2], (self.vocab, d)) * 0.5
        self.mix = eqx.nn.Linear(d, d, key=k[3])
        self.out = eqx.nn.Linear(d, shapes.values, key=k[4])

    def logits(self, x, y, mask):
        v = self.values.shape[0]
        feat = jnp.concatenate([jax.nn.one_hot(x, v), jax.nn.one_hot(y, v)], -1).reshape(x.shape[0], -1)
        w = mask.astype(jnp.float32)
        pooled = (w[:, None] * feat).sum(0) / jnp.maximum(w.sum(), 1.0)
        return self.induce(pooled).reshape(self.slots, self.vocab)

    def run(self, z, x):
        h = self.values[x]

        def step(h, zt):
            g = zt[self.skip]
            new = h + jnp.tanh(jax.vmap(self.mix)(h) + (zt @ self.codes)[None, :])
            return g * h + (1 - g) * new, None

        h, _ = jax.lax.scan(step, h, z)
        return jax.vmap(self.out)(h)


def _loss(model, batch, t, *, key):
    def one(x, y, mask, qx, qy, k):
        logits = model.logits(x, y, mask)
        z = jax.nn.softmax((logits + jax.random.gumbel(k, logits.shape)) / (1.0 + t), -1)
        logp = jax.nn.log_softmax(model.run(z, qx), -1)
        return -jnp.take_along_axis(logp, qy[:, None], -1).mean()

    keys = jax.random.split(key, batch.inputs.shape[0])
    nll = jax.vmap(one)(batch.inputs, batch.outputs, batch.pair_mask, batch.query_input, batch.query_output, keys).mean()
    return nll, {"nll": nll, "t": jnp.asarray(t, jnp.float32)}


def _execute(model, programs, inputs):
    def one(p, x):
        return jnp.argmax(model.run(jax.nn.one_hot(p, model.vocab), x), -1).astype(jnp.int32)

    return jax.vmap(one)(jnp.asarray(programs, jnp.int32), jnp.asarray(inputs, jnp.int32))


@eqx.filter_jit
def _solve(model, batch, search, *, key):
    progs = jnp.argmax(jax.vmap(model.logits)(batch.inputs, batch.outputs, batch.pair_mask), -1)
    progs = jnp.pad(progs, ((0, 0), (0, model.max_length - model.slots)), constant_values=model.skip).astype(jnp.int32)
    out = _execute(model, progs, batch.query_input)
    b, m, length = batch.inputs.shape
    spec_out = _execute(model, jnp.repeat(progs, m, 0), batch.inputs.reshape(b * m, length)).reshape(b, m, length)
    fit = (jnp.all(spec_out == batch.outputs, -1) * batch.pair_mask).sum(1) / jnp.maximum(batch.pair_mask.sum(1), 1)
    return Solution(progs, out, fit.astype(jnp.float32), jnp.zeros(b), out)


if TOY not in MODEL_KINDS:
    MODEL_KINDS.register(TOY, ModelKind(name=TOY, build=Toy, loss=_loss, solve=_solve, search_methods=("none",),
                                        execute=_execute, discrete_programs=True))

TINY_YAML = f"""\
version: 1
name: tiny
seed: 3
task:
  family: shift
  params: {{split: shift_l, length: 12, alphabet: 5}}
  pairs: 3
language: {{vocab: 6, length: 3, max_length: 5}}
model:
  kind: {TOY}
  executor: {{layers: 1, width: 16, heads: 2}}
training: {{steps: STEPS, batch: 8, warmup: 2, log_every: 2, eval_every: 0, checkpoint_every: CKPT}}
search: {{method: none, batch: 4}}
eval: {{tasks: 8}}
"""


def tiny_text(steps: int = 6, ckpt: int = 2) -> str:
    return TINY_YAML.replace("STEPS", str(steps)).replace("CKPT", str(ckpt))


def tiny_spec(steps: int = 6, ckpt: int = 2):
    return parse_spec(tiny_text(steps, ckpt), "tiny.yaml")


def leaves_of(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


# --- optimiser and step ---------------------------------------------------------------------------------------


def test_lr_schedule_warms_up_then_follows_the_spec():
    import dataclasses

    tr = dataclasses.replace(tiny_spec().training, steps=12, warmup=4, lr=Schedule("linear", 1.0, 0.0))
    lr = lr_schedule(tr)
    got = [float(lr(i)) for i in range(12)]
    assert got[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert got[4] == pytest.approx(1.0) and got[11] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(got[3:], got[4:]))


def test_lr_drop_scales_the_rate_from_its_step_on_and_leaves_the_steps_before_alone():
    import dataclasses

    from nlic.compiler.optim import drop_step

    plain = dataclasses.replace(tiny_spec().training, steps=20, warmup=4, lr=Schedule("cosine", 1.0, 0.1))
    dropped = dataclasses.replace(plain, lr_drop_at=0.5, lr_drop=0.25)
    assert drop_step(plain) is None and drop_step(dropped) == 10
    a, b = lr_schedule(plain), lr_schedule(dropped)
    for i in range(20):
        want = a(i) * (0.25 if i >= 10 else 1.0)
        assert b(i) == pytest.approx(want)  # Python ints (logging)
        assert float(b(jnp.asarray(i))) == pytest.approx(want, rel=1e-6)  # arrays (inside the optimiser)
        if i < 10:
            assert float(b(jnp.asarray(i))) == float(a(jnp.asarray(i)))  # bit for bit before the drop


def test_train_step_traces_once_and_learns():
    spec = tiny_spec()
    kind = MODEL_KINDS.get(TOY)
    optim = make_optimizer(spec.training)
    model, opt, key = init_state(spec, kind, shapes_of(spec), optim)
    model, opt = replicate((model, opt))
    step = make_train_step(kind, optim, max_traces=1)
    batch = shard_batch(sample_split(spec, "train", 8, seed=0).batch())
    losses = []
    for i in range(6):
        # Same batch every step: the loss must go down; t changes every step without re-tracing.
        model, opt, loss, metrics, gnorm = step(model, opt, batch, jnp.asarray(i / 5, jnp.float32), jnp.asarray(i), key)
        losses.append(float(loss))
        assert float(metrics["t"]) == pytest.approx(i / 5)
        assert np.isfinite(float(gnorm)) and float(gnorm) > 0
    assert eqx.debug.get_num_traces(step) == 1  # noqa: attribute of the assert_max_traces wrapper via filter_jit
    assert losses[-1] < losses[0]


def test_pad_batch_and_shard_batch():
    x = {"a": jnp.arange(6).reshape(3, 2)}
    padded, n = pad_batch(x, 4)
    assert n == 3 and padded["a"].shape == (4, 2) and np.array_equal(padded["a"][3], x["a"][2])
    assert pad_batch(x, 3)[0] is x
    if jax.device_count() > 1:  # pragma: no cover - only with several devices
        with pytest.raises(DataError, match="does not split evenly"):
            shard_batch({"a": jnp.zeros((jax.device_count() + 1, 2))})
    assert shard_batch(padded)["a"].shape == (4, 2)


# --- run directory --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run (4 steps, checkpoints every 2, evaluation every 2) shared by the run-directory tests."""
    import dataclasses

    spec = tiny_spec(steps=4, ckpt=2)
    spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, eval_every=2))
    run = tmp_path_factory.mktemp("trained") / "run"
    return spec, train(spec, out=run, progress=False)


def test_train_writes_a_complete_run_directory(trained):
    spec, res = trained
    run = res.run_dir
    assert res.step == 4
    assert set(res.metrics) >= {"step", "loss", "nll", "grad_norm", "lr", "tasks_per_s"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "split" not in r] == [2, 4]
    env = json.loads((run / "env.json").read_text())
    assert env["backend"] == "cpu" and env["device_count"] >= 1 and "jax" in env["versions"]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000004.eqx"
    # The exported executor's weights: every array leaf, in tree order, loadable without pickle.
    with np.load(run / "executor_weights.npz", allow_pickle=False) as z:
        saved = [z[k] for k in sorted(z.files)]
    assert all(np.array_equal(a, b) for a, b in zip(saved, leaves_of(res.model), strict=True))
    spec2, model2 = rd.load_run(run)
    assert spec2 == spec
    assert fingerprint(spec2, model2) == fingerprint(spec, res.model)
    assert len(fingerprint(spec, res.model)) == 16


def test_evaluation_rows_have_split_and_accuracy(trained):
    rows = [json.loads(line) for line in (trained[1].run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "split" in r]
    # Each evaluation point: the spec's splits, then the training-split sample the kept weights are chosen on.
    assert [(r["step"], r["split"]) for r in evals] == [(2, "id"), (2, "ood"), (2, "selection"),
                                                        (4, "id"), (4, "ood"), (4, "selection")]
    assert all(0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["spec_fit"] <= 1.0 and r["tasks"] == 8 for r in evals)


def test_existing_results_are_never_overwritten_without_resume_or_force(trained, tmp_path):
    import shutil

    spec, res = trained
    run = tmp_path / "run"
    shutil.copytree(res.run_dir, run)
    before = (run / "model.eqx").read_bytes()
    with pytest.raises(CheckpointError, match="already holds results") as e:
        train(spec, out=run, progress=False)
    assert "--resume" in e.value.render() and "--out" in e.value.render()
    assert (run / "model.eqx").read_bytes() == before
    # --force starts over, removing exactly the files a run writes.
    (run / "notes.txt").write_text("mine")
    assert rd.prepare(run, resume=False, force=True) is False
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "notes.txt"]
    assert list((run / "checkpoints").iterdir()) == []


def test_a_project_folder_that_is_no_run_is_never_started_over(tmp_path, capsys):
    """`nlic train spec.yaml --out . --force` in a project folder took the user's own spec.yaml and data.json (an
    ARC task file) for a run's results: it deleted data.json and replaced spec.yaml by the canonical locked spec.
    Without --force the message even advised it; with --resume: 'data.json: error: not a valid nlic data record'."""
    from nlic.runtime.cli import main

    (tmp_path / "spec.yaml").write_text("name: mine\ntask: {family: shift, params: {split: shift_l}}  # notes\n")
    (tmp_path / "data.json").write_text('{"train": []}\n')
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    for flags in ([], ["--resume"], ["--force"]):
        assert main(["train", str(tmp_path / "spec.yaml"), "--out", str(tmp_path), *flags]) == 2
        assert capsys.readouterr().err.endswith(
            f"{tmp_path}: error: the directory is not a training run, but holds spec.yaml, data.json, which a run "
            "would replace (give the run a directory of its own with --out DIR; --force does not override this)\n")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before


def test_a_run_killed_before_its_first_step_is_still_a_run(tmp_path):
    """A run killed while its first step compiles holds only what `open_run` wrote (env.json first, then spec.yaml):
    it is a run, so --resume and --force still take it (the check above must not refuse it)."""
    from nlic.runtime import run_dir as rd

    spec = parse_spec(tiny_text(), "tiny.yaml")
    run = tmp_path / "run"
    assert rd.prepare(run, resume=False, force=False) is False
    rd.write_env(run)
    rd.write_spec(run, spec)
    assert rd.prepare(run, resume=True, force=False) is True
    assert rd.prepare(run, resume=False, force=True) is False and not (run / rd.SPEC_FILE).exists()

def test_skip_spikes_leaves_a_spiking_step_out_and_nothing_else():
    import optax

    from nlic.compiler.optim import SPIKE_WARMUP, skip_spikes

    opt = skip_spikes(optax.adam(0.1), 10.0)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    plain = optax.adam(0.1)
    plain_state = plain.init(params)
    grads = {"w": jnp.full(3, 0.1)}
    for _ in range(SPIKE_WARMUP + 5):
        u, state = opt.update(grads, state, params)
        v, plain_state = plain.update(grads, plain_state, params)
        np.testing.assert_array_equal(u["w"], v["w"])  # accepted steps: exactly the wrapped optimiser's
    # 100x the running norm: no update, the moments and step count as they were.
    u, spiked = opt.update({"w": jnp.full(3, 10.0)}, state, params)
    assert not np.any(np.asarray(u["w"])) and int(spiked.skipped) == 1
    assert all(bool(jnp.all(a == b)) for a, b in zip(jax.tree_util.tree_leaves(spiked.inner),
                                                     jax.tree_util.tree_leaves(state.inner)))
    # 5x is not a spike at factor 10; a non-finite gradient is passed on (nan-loss reports it).
    u, after = opt.update({"w": jnp.full(3, 0.5)}, spiked, params)
    assert np.all(np.asarray(u["w"]) != 0) and int(after.skipped) == 1
    _, nan = opt.update({"w": jnp.full(3, jnp.nan)}, spiked, params)
    assert int(nan.skipped) == 1
    # The first steps are always taken, however large.
    fresh = opt.init(params)
    u, fresh = opt.update({"w": jnp.full(3, 1e6)}, fresh, params)
    assert np.all(np.asarray(u["w"]) != 0) and int(fresh.skipped) == 0


def test_skip_spikes_that_never_fires_trains_as_before_and_resumes_bit_identically(tmp_path, monkeypatch):
    base = tiny_spec(steps=6, ckpt=2)
    guarded = parse_spec(tiny_text(6, 2).replace("checkpoint_every: 2", "checkpoint_every: 2, skip_spikes: 1000"),
                         "tiny.yaml")
    assert guarded.training.skip_spikes == 1000
    plain = train(base, out=tmp_path / "plain", progress=False)
    full = train(guarded, out=tmp_path / "full", progress=False)
    for a, b in zip(leaves_of(plain.model), leaves_of(full.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # the same updates; XLA fuses them differently
    rows = [r for r in rd.read_metrics(tmp_path / "full") if "loss" in r]
    assert rows and all(r["skipped_updates"] == 0 for r in rows)
    assert all("skipped_updates" not in r for r in rd.read_metrics(tmp_path / "plain"))
    interrupt_training(monkeypatch, guarded, tmp_path / "run", derive_seed(guarded.seed, "train", 3))
    res = train(guarded, out=tmp_path / "run", resume=True, progress=False)
    for a, b in zip(leaves_of(res.model), leaves_of(full.model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_leaves_a_checkpoint_that_resumes_exactly(trained, tmp_path, monkeypatch):
    spec, full = trained
    interrupt_training(monkeypatch, spec, tmp_path / "run", derive_seed(spec.seed, "train", 3))
    # Checkpoints every 2 steps, interrupted during step 4: the interrupt handler saved step 3.
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_00000003.eqx"
    res = train(spec, out=tmp_path / "run", resume=True, progress=False)
    assert res.step == 4
    for a, b in zip(leaves_of(res.model), leaves_of(full.model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_progress_bar_on_a_tty_and_plain_lines_elsewhere(monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    tty = Tty()
    bar = Progress(10, stream=tty)
    bar.update(1, 2.5, 100.0, force=True)
    bar.update(5, 1.25, 100.0, force=True)
    bar.close()
    assert tty.getvalue().startswith("\r[") and "step 5/10" in tty.getvalue() and "ETA" in tty.getvalue()
    plain = io.StringIO()
    bar = Progress(10, stream=plain)
    bar.update(5, 1.25, 100.0, force=True)
    assert "\r" not in plain.getvalue() and plain.getvalue().endswith("\n") and "loss 1.2500" in plain.getvalue()
    monkeypatch.setenv("CI", "1")
    ci = Tty()
    Progress(10, stream=ci).update(5, 1.0, force=True)
    assert "\r" not in ci.getvalue()
    quiet = io.StringIO()
    Progress(10, stream=quiet, enabled=False).update(5, 1.0, force=True)
    assert quiet.getvalue() == ""


def test_load_run_refuses_missing_and_corrupt_runs(trained, tmp_path):
    import shutil

    with pytest.raises(CheckpointError, match="no such run directory"):
        rd.load_run(tmp_path / "nothing")
    run = tmp_path / "run"
    shutil.copytree(trained[1].run_dir, run)
    locked = (run / "spec.yaml").read_text()
    (run / "spec.yaml").write_text(locked.replace("max_length: 5", "max_length: 6"))
    with pytest.raises(CheckpointError, match="language.max_length: 5 != 6"):
        rd.load_run(run)
    (run / "spec.yaml").write_text(locked)
    data = bytearray((run / "model.eqx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run / "model.eqx").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt") as e:
        rd.load_run(run)
    assert "model.eqx" in e.value.render()
    (run / "model.json").write_text("{")
    with pytest.raises(CheckpointError, match="corrupt model metadata"):
        rd.load_run(run)


def cache_env(tmp_path: Path) -> dict[str, str]:
    """CPU, and a persistent compilation cache shared by a test's subprocesses (each would compile the same step)."""
    return {"JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


# --- the CLI, resume after SIGKILL --------------------------------------------------------------------------


DRIVER = """\
import os, sys, time
sys.path.insert(0, {tests!r})
import test_train  # registers the stand-in kind

import nlic.compiler.families as tasks
from nlic.runtime.cli import main
if os.environ.get("SLOW_STEP"):  # slow data make a window to kill the run between checkpoints
    fast = tasks.sample_split
    tasks.sample_split = lambda *a, **k: (time.sleep(float(os.environ["SLOW_STEP"])), fast(*a, **k))[1]
sys.exit(main(sys.argv[1:]))
"""


def run_cli(tmp_path: Path, *args: str, env: dict | None = None, wait: bool = True):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(tests=str(TESTS)))
    e = {**os.environ, **cache_env(tmp_path), **(env or {})}
    cmd = [sys.executable, str(driver), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp_path, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=tmp_path, env=e, capture_output=True, text=True, timeout=120)


def test_cli_train_resume_after_sigkill_reaches_the_same_weights(tmp_path):
    steps = 40
    (tmp_path / "spec.yaml").write_text(tiny_text(steps=steps, ckpt=5))
    # A slow step (sleep in the data path) gives time to kill the run between checkpoints.
    slow = {"SLOW_STEP": "0.05"}
    p = run_cli(tmp_path, "train", "spec.yaml", "--out", "killed", env=slow, wait=False)
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.time() + 90
    while time.time() < deadline and not (latest.exists() and latest.read_text().strip() >= "step_00000010"):
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert latest.exists(), p.stderr.read()
    killed_at = checkpoint_step(latest.read_text().strip())
    assert 0 < killed_at < steps, "the run finished before it was killed; the test proves nothing"
    assert not (tmp_path / "killed" / "model.eqx").exists()

    # Without --resume the run directory is protected.
    r = run_cli(tmp_path, "train", "spec.yaml", "--out", "killed")
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr

    # Nor can another spec resume it: the error names what differs.
    (tmp_path / "other.yaml").write_text(tiny_text(steps=steps, ckpt=5).replace("seed: 3", "seed: 4"))
    r = run_cli(tmp_path, "train", "other.yaml", "--out", "killed", "--resume")
    assert r.returncode == 2 and "seed: 3 != 4" in r.stderr and "Traceback" not in r.stderr

    r = run_cli(tmp_path, "train", "spec.yaml", "--out", "killed", "--resume")
    assert r.returncode == 0, r.stderr
    assert f"from step {killed_at}" in r.stderr
    r = run_cli(tmp_path, "train", "spec.yaml", "--out", "full")
    assert r.returncode == 0, r.stderr
    assert "full" in r.stdout  # says where it writes

    a = rd.load_executor_weights(tmp_path / "killed" / "executor_weights.npz")
    b = rd.load_executor_weights(tmp_path / "full" / "executor_weights.npz")
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    ma = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ma] == [r["step"] for r in mb]  # rows after the checkpoint were not duplicated
    assert [r["loss"] for r in ma] == [r["loss"] for r in mb]


def test_cli_train_user_errors_exit_2(tmp_path):
    (tmp_path / "bad.yaml").write_text(tiny_text().replace("batch: 8", "batchh: 8"))
    r = run_cli(tmp_path, "train", "bad.yaml")
    assert r.returncode == 2 and "bad.yaml:" in r.stderr and "batchh" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()


# --- sharding -------------------------------------------------------------------------------------------------


SHARD = """\
import json, sys
sys.path.insert(0, {tests!r})
import jax, jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np
import test_train

from nlic.compiler.families import sample_split, shapes_of
from nlic.compiler.optim import init_state, make_optimizer, make_train_step
from nlic.runtime.train import replicate, shard_batch
spec = test_train.tiny_spec()
kind = test_train.MODEL_KINDS.get(test_train.TOY)
optim = make_optimizer(spec.training)
out = {{"devices": jax.device_count()}}
for name, devices in (("one", jax.devices()[:1]), ("all", jax.devices())):
    mesh = Mesh(np.asarray(devices), ("batch",))
    model, opt, key = init_state(spec, kind, shapes_of(spec), optim)
    model, opt = replicate((model, opt), mesh)
    step = make_train_step(kind, optim, max_traces=1)
    losses = []
    for i in range(5):
        batch = shard_batch(sample_split(spec, "train", 8, seed=i).batch(), mesh)
        model, opt, loss, _, _ = step(model, opt, batch, jnp.asarray(i / 4, jnp.float32), jnp.asarray(i), key)
        losses.append(float(loss))
    out[name] = {{"losses": losses, "shards": len(batch.inputs.sharding.device_set),
                 "model_devices": len(jax.tree_util.tree_leaves(model)[0].sharding.device_set)}}
print(json.dumps(out))
"""


def test_sharded_training_matches_one_device(tmp_path):
    script = tmp_path / "shard.py"
    script.write_text(SHARD.format(tests=str(TESTS)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    assert out["all"]["shards"] == 4 and out["all"]["model_devices"] == 4  # batch split, model replicated
    assert out["one"]["shards"] == 1
    np.testing.assert_allclose(out["all"]["losses"], out["one"]["losses"], rtol=1e-4, atol=1e-5)


def test_training_check_runs_the_program_training_runs(monkeypatch):
    """Training's ID check (`quick_accuracy`, the `none` search) runs the inductor's `language.length` tokens, not the
    search's `max_length` slots: extended slots copy the slot most like skip, and where no slot writes skip (grid1d's
    `t7 t7 t7 t7 tX tY`) they repeated a token, so the check read 0.22 where the trained programs solved 0.67."""
    import types

    train_module = sys.modules["nlic.runtime.train"]
    seen = []

    def fake_solve(spec, model, tasks, *, search, seed):
        seen.append(search)
        return types.SimpleNamespace(accuracy=1.0, spec_fit=np.ones(1), has_target=np.ones(1, bool))

    monkeypatch.setattr(train_module, "solve", fake_solve)
    spec = tiny_spec()
    assert spec.language.length == 3 and spec.language.max_length == 5
    train_module.quick_accuracy(spec, None, None)
    (search,) = seen
    assert search.method == "none" and search.slots(spec.language.length, spec.language.max_length) == 3
