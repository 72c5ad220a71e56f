"""The training runtime: one jitted, batch-sharded train step of any `ModelKind`, driven by the spec's schedule.

Handles the run directory (metrics, periodic ID/OOD evaluation, atomic checkpoints, exact resume, final weights).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from nlic.compiler.kinds import Batch, ModelKind
from nlic.grammar.errors import CheckpointError, DataError, Loc, SpecError
from nlic.runtime import checkpoint as ckpt
from nlic.runtime import run_dir as rd
from nlic.runtime.progress import Progress

__all__ = [
    "TrainResult",
    "train",
    "default_run_dir",
    "derive_seed",
    "lr_schedule",
    "make_optimizer",
    "make_train_step",
    "init_state",
    "device_mesh",
    "shard_batch",
    "pad_batch",
    "replicate",
    "evaluate",
]

KEEP_CHECKPOINTS = 3


class TrainResult(NamedTuple):
    """What `train` returns.

    Attributes:
        model: the trained model (replicated over the devices).
        step: optimiser steps done.
        metrics: the last training metrics row (step, loss, the kind's terms, grad_norm, lr, tasks_per_s).
        run_dir: where everything was written.
    """

    model: Any
    step: int
    metrics: dict[str, float]
    run_dir: Path


# --- seeds, optimiser -----------------------------------------------------------------------------------------


def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed for `parts` (e.g. ("train", step)), a pure function of the spec's seed: exact resume."""
    text = json.dumps([int(seed), *[str(p) for p in parts]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def lr_schedule(training: Any) -> Callable[[Any], Any]:
    """Learning rate at an optimiser count: linear warm-up to `lr.at(0)`, then `training.lr` over the rest.

    Works on jnp arrays (inside the optimiser) and on Python ints (for logging, without device work).
    """
    warmup, steps, sched = int(training.warmup), int(training.steps), training.lr

    def lr(count: Any) -> Any:
        if isinstance(count, (int, float)):
            t = min(max((count - warmup) / max(steps - warmup - 1, 1), 0.0), 1.0)
            return float(sched.at(t)) * (min(1.0, (count + 1.0) / warmup) if warmup > 0 else 1.0)
        count = jnp.asarray(count, jnp.float32)
        t = jnp.clip((count - warmup) / max(steps - warmup - 1, 1), 0.0, 1.0)
        value = jnp.asarray(sched.at(t), jnp.float32)
        if warmup > 0:
            value = value * jnp.minimum(1.0, (count + 1.0) / warmup)
        return value

    return lr


def make_optimizer(training: Any) -> optax.GradientTransformation:
    """The `optax.chain` of the spec: global-norm clipping (when clip > 0), then adamw, adam or sgd."""
    lr = lr_schedule(training)
    parts = []
    if training.clip > 0:
        parts.append(optax.clip_by_global_norm(training.clip))
    if training.optimizer == "adamw":
        parts.append(optax.adamw(lr, weight_decay=training.weight_decay))
    elif training.optimizer == "adam":
        parts.append(optax.adam(lr))
    elif training.optimizer == "sgd":
        parts.append(optax.sgd(lr))
    else:
        raise SpecError(f"unknown optimizer '{training.optimizer}'", loc=Loc("training.optimizer"),
                        hint="expected one of: adam, adamw, sgd")
    return optax.chain(*parts)


# --- sharding -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mesh(devices: tuple[Any, ...]) -> Mesh:
    return Mesh(np.asarray(devices), ("batch",))


def device_mesh() -> Mesh:
    """A 1-D mesh over every visible device, axis "batch"."""
    return _mesh(tuple(jax.devices()))


def shard_batch(batch: Any, mesh: Mesh | None = None) -> Any:
    """Place a `Batch` (or any pytree of arrays with a leading task axis) split over the devices.

    The number of tasks must be a multiple of the device count; `pad_batch` makes it one.

    Raises:
        DataError: the task count does not divide over the devices.
    """
    mesh = mesh or device_mesh()
    n = len(jax.tree_util.tree_leaves(batch)[0])
    if n % mesh.size:
        raise DataError(
            f"a batch of {n} tasks does not split evenly over {mesh.size} devices",
            hint=f"use a multiple of {mesh.size} tasks, or pad with nlic.runtime.train.pad_batch",
        )
    return jax.device_put(batch, NamedSharding(mesh, P("batch")))


def pad_batch(batch: Any, multiple: int | None = None) -> tuple[Any, int]:
    """Pad the task axis to a multiple of `multiple` (default: the device count) by repeating the last task.

    Returns:
        The padded batch and the original task count (slice results with `[:n]`).
    """
    multiple = multiple or jax.device_count()
    n = len(jax.tree_util.tree_leaves(batch)[0])
    extra = (-n) % multiple
    if extra == 0:
        return batch, n
    pad = lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)], axis=0)  # noqa: E731
    return jax.tree_util.tree_map(pad, batch), n


def replicate(tree: Any, mesh: Mesh | None = None) -> Any:
    """Copy every array of `tree` (model, optimiser state) to all devices."""
    mesh = mesh or device_mesh()
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.device_put(arrays, NamedSharding(mesh, P())), static)


# --- the step -------------------------------------------------------------------------------------------------


def make_train_step(kind: ModelKind, optim: optax.GradientTransformation, *, max_traces: int | None = None) -> Callable:
    """The jitted step `(model, opt_state, batch, t, step, key) -> (model, opt_state, loss, metrics, grad_norm)`.

    `t` (progress in [0, 1]) and `step` are arrays and the step's key is `fold_in(key, step)` inside jit, so one
    trace serves the whole run; `max_traces` makes a second trace an error (tests).
    """

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=max_traces)
    def train_step(model, opt_state, batch: Batch, t, step, key):
        k = jax.random.fold_in(key, step)

        def objective(m):
            return kind.loss(m, batch, t, key=k)

        (loss, metrics), grads = eqx.filter_value_and_grad(objective, has_aux=True)(model)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        model = eqx.apply_updates(model, updates)
        return model, opt_state, loss, metrics, optax.tree.norm(grads)

    return train_step


def get_kind(spec: Any) -> ModelKind:
    """The registered `ModelKind` of `spec.model.kind` (importing `nlic.compiler.models.<kind>` if needed)."""
    from nlic.compiler.lower import kind_of

    return kind_of(spec)


def init_state(spec: Any, kind: ModelKind, shapes: Any, optim: optax.GradientTransformation) -> tuple[Any, Any, Any]:
    """`(model, opt_state, train_key)` at step 0, all from `spec.seed`."""

    # One compiled function instead of one small compilation per initialiser op (seconds on a busy CPU).
    @eqx.filter_jit
    def init(seed):
        init_key, train_key = jax.random.split(jax.random.key(seed))
        model = kind.build(spec, shapes, key=init_key)
        return model, optim.init(eqx.filter(model, eqx.is_inexact_array)), train_key

    return init(jnp.asarray(spec.seed, jnp.uint32))


@functools.lru_cache(maxsize=8)
def _cached_train_step(kind: ModelKind, training: Any) -> Callable:
    # Runs of the same kind and training section in one process (`nlic eval`) share one compiled step.
    return make_train_step(kind, make_optimizer(training))


# --- evaluation -----------------------------------------------------------------------------------------------


def evaluate(spec: Any, model: Any, tasks: Any) -> dict[str, Any]:
    """Accuracy of the cheap `none` search (the inductor's discrete program, no search) on `tasks`."""
    from nlic.runtime.solve import solve

    search = dataclasses.replace(spec.search, method="none")
    result = solve(spec, model, tasks, search=search, seed=derive_seed(spec.seed, "eval-search"))
    return {
        "accuracy": None if result.accuracy is None else float(result.accuracy),  # None: no task has a target
        "spec_fit": float(np.mean(result.spec_fit)) if len(result.spec_fit) else None,
        "tasks": int(np.sum(result.has_target)),
    }


# --- the loop -------------------------------------------------------------------------------------------------


def default_run_dir(spec: Any) -> Path:
    """`runs/<spec.name>`."""
    return Path("runs") / spec.name


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def train(
    spec: Any,
    *,
    out: Path | None = None,
    steps: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
    force: bool = False,
) -> TrainResult:
    """Train `spec`'s model, writing a run directory.

    Args:
        spec: the validated spec.
        out: run directory (default `runs/<spec.name>`).
        steps: override of `training.steps` (part of the locked spec, so resume with the same value).
        resume: continue from the latest checkpoint of `out` (starts at step 0 if there is none yet).
        progress: show progress on stderr (None: bar on a TTY, plain lines otherwise).
        force: delete the results already in `out` and start over.

    Returns:
        The trained model, step count, last metrics row and run directory.

    Raises:
        CheckpointError: `out` holds results and neither `resume` nor `force` was given; its checkpoint is
            corrupt or belongs to another spec.
        SpecError: the batch does not split over the devices, or the spec's kind/task is unknown.
    """
    from nlic.runtime import tasks as task_api

    if steps is not None:
        spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, steps=int(steps)))
    tr = spec.training
    kind = get_kind(spec)
    shapes = task_api.shapes_of(spec)
    mesh = device_mesh()
    if tr.batch % mesh.size:
        raise SpecError(
            f"training.batch = {tr.batch} does not split over the {mesh.size} visible devices",
            loc=Loc("training.batch"), hint=f"use a multiple of {mesh.size}",
        )
    eval_sets = {}
    if tr.eval_every > 0:
        # Fixed evaluation tasks for the whole run, so accuracy curves compare like with like.
        for split in spec.eval.splits:
            seed = derive_seed(spec.seed, "eval", split)
            eval_sets[split] = task_api.sample_split(spec, split, spec.eval.tasks, seed=seed)

    run = Path(out) if out is not None else default_run_dir(spec)
    resuming = rd.prepare(run, resume=resume, force=force)
    optim = make_optimizer(tr)
    start = 0
    ckdir = run / rd.CHECKPOINT_DIR
    path = ckpt.latest_checkpoint(ckdir) if resuming else None
    if path is not None:
        # Shapes only: a mismatched checkpoint is refused before anything is initialised or compiled.
        abstract = eqx.filter_eval_shape(init_state, spec, kind, shapes, optim)
        like = (abstract[0], abstract[1], jax.eval_shape(jax.random.key_data, abstract[2]))
        (model, opt_state, saved_key), start = ckpt.load_checkpoint(path, like, spec=spec)
        train_key = jax.random.wrap_key_data(saved_key)
    else:
        if resuming:
            _check_same_spec(run, spec)
        model, opt_state, train_key = init_state(spec, kind, shapes, optim)
    if resuming:
        rd.truncate_metrics(run, start)
    if not resuming or not (run / rd.SPEC_FILE).exists():
        rd.write_spec(run, spec)
    rd.write_env(run)

    model, opt_state = replicate((model, opt_state), mesh)
    key_data = np.asarray(jax.random.key_data(train_key))
    step_fn = _cached_train_step(kind, tr)
    lr_at = lr_schedule(tr)
    total = tr.steps
    bar = Progress(total, start=start, enabled=progress)
    verb = "resuming" if start else "training"
    bar.message(f"{verb} {spec.name} ({kind.name}) in {run} from step {start} of {total}")

    state = (model, opt_state, start)  # replaced in one assignment per step: always a consistent triple
    last_row: dict[str, float] = {}
    last_ckpt = start if resuming else -1
    t_log, tasks_since = time.perf_counter(), 0

    def save(s: tuple[Any, Any, int]) -> None:
        nonlocal last_ckpt
        if s[2] != last_ckpt:
            ckpt.save_checkpoint(ckdir, (s[0], s[1], key_data), step=s[2], spec=spec,
                                 keep=KEEP_CHECKPOINTS)
            last_ckpt = s[2]

    try:
        for step in range(start, total):
            seed = derive_seed(spec.seed, "train", step)
            tasks = task_api.sample_split(spec, spec.task.train_split, tr.batch, seed=seed)
            batch = shard_batch(tasks.batch(), mesh)
            t = jnp.asarray(step / max(total - 1, 1), jnp.float32)
            model, opt_state, loss, metrics, gnorm = step_fn(
                state[0], state[1], batch, t, jnp.asarray(step, jnp.int32), train_key
            )
            state = (model, opt_state, step + 1)
            done = step + 1
            tasks_since += tr.batch
            is_last = done == total
            if step == start and not is_last:
                # tasks/s measures training, not the first step's compilation.
                jax.block_until_ready(loss)
                t_log, tasks_since = time.perf_counter(), 0
            if done % tr.log_every == 0 or is_last:
                now = time.perf_counter()
                rate = tasks_since / max(now - t_log, 1e-9) if tasks_since else None  # JSON null, not NaN
                last_row = {"step": done, "loss": float(loss), **_floats(metrics), "grad_norm": float(gnorm),
                            "lr": float(lr_at(step)), "tasks_per_s": rate}
                rd.append_metrics(run, last_row)
                t_log, tasks_since = now, 0
                bar.update(done, last_row["loss"], last_row["tasks_per_s"], force=True)
            elif bar.due():
                bar.update(done, float(loss))
            if tr.eval_every > 0 and (done % tr.eval_every == 0 or is_last):
                for split, ts in eval_sets.items():
                    row = {"step": done, "split": split, **evaluate(spec, model, ts)}
                    rd.append_metrics(run, row)
                    acc = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
                    bar.message(f"step {done}: {split} accuracy {acc} ({row['tasks']} tasks)")
                t_log, tasks_since = time.perf_counter(), 0  # evaluation time is not training throughput
            if tr.checkpoint_every > 0 and done % tr.checkpoint_every == 0:
                save(state)
        save(state)
    except KeyboardInterrupt:
        bar.close()
        save(state)
        bar.message(f"interrupted: checkpoint of step {state[2]} saved in {ckdir}; continue with --resume")
        raise
    finally:
        bar.close()

    model = state[0]
    fp = rd.save_model(run, spec, model, step=state[2])
    if kind.execute is not None:
        rd.save_executor_weights(run, model)
    bar.message(f"done: {state[2]} steps, language {fp}, results in {run}")
    return TrainResult(model=model, step=state[2], metrics=last_row, run_dir=run)


def _check_same_spec(run: Path, spec: Any) -> None:
    """Before restarting a run that has no checkpoint yet, make sure it is the same spec."""
    meta = run / rd.SPEC_FILE
    if not meta.exists():
        return
    from nlic.compiler import format_spec

    if meta.read_text() != format_spec(spec, syntax="yaml"):
        raise CheckpointError(
            "this run directory was started with another spec", loc=Loc(str(meta)),
            hint="resume with the same spec (and --steps), or start a new run with --out or --force",
        )
