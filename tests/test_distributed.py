"""Multi-process training and solving (`nlic.runtime.distributed`): 2 local CPU processes on the loopback address.

One tiny stand-in kind (the `toy_h_train` model of test_train, with a search that draws per-task noise from its key,
so that solving depends on how tasks are batched and keyed) keeps each process's compilation to a second; most of
the time is the processes' start-up. The runs of the module: one process in this process (the reference), then two
processes (`--processes 2`) killed after a checkpoint, resumed, and solved.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
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

import test_train
from nlic.compiler import parse_spec
from nlic.compiler.kinds import MODEL_KINDS, ModelKind, Solution
from nlic.runtime import checkpoint as ck
from nlic.runtime import run_dir as rd
from nlic.runtime.cli import main
from nlic.runtime.distributed import launch
from nlic.runtime.solve import solve_to_files
from nlic.runtime.train import train

TESTS = Path(__file__).resolve().parent
KIND = "toy_h_dist"
STEPS = 20


@eqx.filter_jit
def _noisy_solve(model, batch, search, *, key):
    """test_train's search with Gumbel noise from one key per task (`split(key, batch)`, as the real searches)."""
    logits = jax.vmap(model.logits)(batch.inputs, batch.outputs, batch.pair_mask)
    keys = jax.random.split(key, logits.shape[0])
    noisy = logits + jax.vmap(lambda k: jax.random.gumbel(k, logits.shape[1:]))(keys)
    progs = jnp.argmax(noisy, -1)
    progs = jnp.pad(progs, ((0, 0), (0, model.max_length - model.slots)), constant_values=model.skip).astype(jnp.int32)
    out = test_train._execute(model, progs, batch.query_input)
    b, m, length = batch.inputs.shape
    spec_out = test_train._execute(model, jnp.repeat(progs, m, 0), batch.inputs.reshape(b * m, length))
    fit = (jnp.all(spec_out.reshape(b, m, length) == batch.outputs, -1) * batch.pair_mask).sum(1)
    fit = fit / jnp.maximum(batch.pair_mask.sum(1), 1)
    return Solution(progs, out, fit.astype(jnp.float32), jnp.max(noisy, (1, 2)), out)


if KIND not in MODEL_KINDS:
    MODEL_KINDS.register(KIND, ModelKind(name=KIND, build=test_train.Toy, loss=test_train._loss, solve=_noisy_solve,
                                         search_methods=("none",), execute=test_train._execute,
                                         discrete_programs=True))

SPEC_TEXT = test_train.tiny_text(steps=STEPS, ckpt=5).replace(test_train.TOY, KIND).replace("log_every: 2",
                                                                                            "log_every: 1")

# test_train's driver, registering this file's stand-in kind instead.
DRIVER = test_train.DRIVER.replace("import test_train  # registers", "import test_distributed  # registers")
assert "import test_distributed" in DRIVER


def nlic(tmp: Path, *args: str, env: dict | None = None, wait: bool = True):
    """`nlic ARGS` through a driver that registers the stand-in kind, in `tmp`."""
    driver = tmp / "driver.py"
    driver.write_text(DRIVER.format(tests=str(TESTS)))
    cmd = [sys.executable, str(driver), *args]
    e = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=tmp, env=e, capture_output=True, text=True, timeout=120)


def losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "split" not in r]


def children(pid: int) -> dict[int, int]:
    """Process id (NLIC_PROCESS_ID) -> pid of the processes `pid` launched."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        ids = [v.split(b"=", 1)[1] for v in env if v.startswith(b"NLIC_PROCESS_ID=")]
        if ids:
            found[int(ids[0])] = int(child)
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The reference run (1 process, here), and a 2-process run killed (SIGKILL of process 1) after a checkpoint,
    then resumed with 2 processes."""
    tmp = tmp_path_factory.mktemp("dist")
    (tmp / "spec.yaml").write_text(SPEC_TEXT)
    one = train(parse_spec(SPEC_TEXT, "spec.yaml"), out=tmp / "one", progress=False)

    t0 = time.monotonic()
    p = nlic(tmp, "train", "spec.yaml", "--out", "two", "--processes", "2", env={"SLOW_STEP": "0.15"}, wait=False)
    latest = tmp / "two" / "checkpoints" / "latest"
    pids: dict[int, int] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and p.poll() is None:
        if latest.exists() and latest.read_text().strip() >= "step_00000005.eqx":
            pids = children(p.pid)
            break
        time.sleep(0.05)
    assert set(pids) == {0, 1}, p.communicate()
    os.kill(pids[1], signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure this test exists for
        p.kill()
        raise AssertionError("the launcher hung after one of its processes was killed") from None
    killed = {"code": p.returncode, "stderr": err, "seconds": time.monotonic() - killed_at,
              "latest": latest.read_text().strip(), "total": time.monotonic() - t0}

    resumed = nlic(tmp, "train", "spec.yaml", "--out", "two", "--processes", "2", "--resume")
    return {"tmp": tmp, "one": one, "killed": killed, "resumed": resumed}


def test_a_killed_process_stops_the_run_with_a_message_naming_it(runs):
    k = runs["killed"]
    assert k["code"] != 0 and k["seconds"] < 60
    assert "process 1" in k["stderr"] and "SIGKILL" in k["stderr"] and "--resume" in k["stderr"], k["stderr"]
    assert "Traceback" not in k["stderr"]
    step = ck.checkpoint_step(k["latest"])
    assert 5 <= step < STEPS, "the run finished before it was killed; the test proves nothing"


def test_two_processes_resume_and_train_the_same_losses_as_one(runs):
    r, tmp = runs["resumed"], runs["tmp"]
    assert r.returncode == 0, r.stderr
    assert re.search(r"resuming tiny .* from step \d+ of 20 as 2 processes", r.stderr), r.stderr
    two, one = losses(tmp / "two"), losses(tmp / "one")
    assert [s for s, _ in two] == list(range(1, STEPS + 1))  # every step once: rows after the checkpoint dropped
    assert [s for s, _ in one] == [s for s, _ in two]
    np.testing.assert_allclose([x for _, x in two], [x for _, x in one], rtol=1e-5)
    a = rd.load_executor_weights(tmp / "two" / "executor_weights.npz")
    b = rd.load_executor_weights(tmp / "one" / "executor_weights.npz")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_process_0_alone_writes(runs):
    r, tmp = runs["resumed"], runs["tmp"]
    run = tmp / "two"
    assert r.stdout.count("nlic train: writing") == 1 and r.stdout.count("final loss") == 1, r.stdout
    assert "[process 1]" not in r.stdout  # the other processes' lines go to stderr, prefixed
    env = json.loads((run / "env.json").read_text())
    assert env["process_count"] == 2 and env["device_count"] == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "latest", "step_00000010.eqx", "step_00000015.eqx", "step_00000020.eqx"]
    assert not [p for p in run.rglob("*.tmp")]
    assert json.loads((run / "health.json").read_text())["verdict"] is not None
    spec, _ = rd.load_run(run)
    assert spec.training.steps == STEPS


def test_two_processes_solve_to_the_same_files_as_one(runs, tmp_path):
    tmp = runs["tmp"]
    # 20 tasks in batches of 8: 3 batches over 2 processes, the last one padded, each with its own key.
    solve_to_files(tmp / "one", "ood", n=20, out=tmp_path / "one.nlp")
    r = nlic(tmp, "solve", "one", "ood", "-n", "20", "--out", str(tmp_path / "two.nlp"), "--processes", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("accuracy:") == 1
    assert (tmp_path / "two.nlp").read_bytes() == (tmp_path / "one.nlp").read_bytes()
    one = (tmp_path / "one.predictions.jsonl").read_bytes()
    assert (tmp_path / "two.predictions.jsonl").read_bytes() == one


def _launch(code: str, processes: int = 2) -> tuple[int, str, float]:
    """`launch` of `python -c CODE` (which reads its NLIC_PROCESS_ID), with its stderr."""
    err = io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stderr(err):
        rc = launch([sys.executable, "-c", "import os, sys, time; i = int(os.environ['NLIC_PROCESS_ID']); " + code],
                    processes, grace_s=0.5)
    return rc, err.getvalue(), time.monotonic() - t0


def test_launcher_prefixes_the_other_processes_and_propagates_failures():
    rc, err, _ = _launch("print('hello', i, os.environ['NLIC_NUM_PROCESSES'], os.environ['NLIC_COORDINATOR'][:10])")
    assert rc == 0 and "[process 1] hello 1 2 127.0.0.1:" in err and "[process 0]" not in err, err
    # A user error every process meets (each printed it): its exit code, and no extra message.
    rc, err, _ = _launch("sys.exit(2)")
    assert rc == 2 and "error" not in err, err
    # One process fails: the others are stopped within the grace period, and the failure is named.
    rc, err, seconds = _launch("sys.exit(3) if i == 1 else time.sleep(60)")
    assert rc == 3 and "process 1" in err and "exited with code 3" in err and seconds < 30, err
    rc, err, _ = _launch("os.kill(os.getpid(), 9) if i == 0 else time.sleep(60)", processes=3)
    assert rc == 1 and "process 0" in err and "SIGKILL" in err, err


def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


@pytest.mark.parametrize("flags, message", [
    (["--coordinator", "localhost"], "'localhost' is not HOST:PORT"),
    (["--coordinator", "no-such-host.invalid:1234", "--num-processes", "2", "--process-id", "1"], "is unknown"),
    (["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"], "out of range for 2"),
    (["--processes", "0"], "--processes must be at least 1"),
    (["--processes", "2", "--process-id", "1"], "launches local processes itself"),
])
def test_bad_multi_process_flags_exit_2_before_joining(tmp_path, flags, message):
    (tmp_path / "spec.yaml").write_text(SPEC_TEXT)
    code, err = _cli("train", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "run"), *flags)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not jax.distributed.is_initialized() and not (tmp_path / "run").exists()
