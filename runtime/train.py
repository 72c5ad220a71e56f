"""The training runtime: one jitted, batch-sharded train step of any `ModelKind`, driven by the spec's schedule.

Handles the run directory (metrics, periodic ID/OOD evaluation, atomic checkpoints, exact resume, final weights) and
the run's health checks (`health.py`: warnings as they fire, a verdict at the end, both in `health.json`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from nlic.compiler import families as task_api
from nlic.compiler.identity import fingerprint
from nlic.compiler.kinds import ModelKind, kind_of
from nlic.compiler.optim import (
    StoredTrainStep,
    drop_step,
    init_state,
    lr_schedule,
    make_optimizer,
    make_train_step,
    skipped_steps,
    state_like,
)
from nlic.compiler.printer import format_spec
from nlic.compiler.seeds import derive_seed
from nlic.compiler.validate import check_kind_fields
from nlic.grammar.errors import CheckpointError, DataError, Loc, SpecError
from nlic.grammar.reading import MAX_SPEC_BYTES, read_text
from nlic.runtime import checkpoint as ckpt
from nlic.runtime import distributed, health, recovery, rollback, selection
from nlic.runtime import run_dir as rd
from nlic.runtime.files import atomic_write, writing
from nlic.runtime.flags import check_flag
from nlic.runtime.progress import Progress
from nlic.runtime.solve import solve

__all__ = [
    "TrainResult",
    "train",
    "default_run_dir",
    "device_mesh",
    "shard_batch",
    "pad_batch",
    "replicate",
    "inductor_solve",
    "quick_accuracy",
    "step_inputs",
]

KEEP_CHECKPOINTS = 3


class TrainResult(NamedTuple):
    """What `train` returns.

    Attributes:
        model: the trained model (replicated over the devices).
        step: optimiser steps done.
        metrics: the last training metrics row (step, loss, the kind's terms, grad_norm, lr, tasks_per_s; None
            for a value that is not finite).
        run_dir: where everything was written.
        fingerprint: the trained language's fingerprint (spec and weights; `nlic.compiler.fingerprint`).
        spec: the spec trained (with `steps` applied).
        verdict: the run's health verdict (`nlic.runtime.health`; also in the run directory's `health.json`).
        notes: the lines that follow the verdict: an abandoned attempt continued to the end
            (`recovery.continued_note`), the rollbacks (`rollback.note`).
    """

    model: Any
    step: int
    metrics: dict[str, float | None]
    run_dir: Path
    fingerprint: str
    spec: Any
    verdict: health.Verdict | None = None
    notes: tuple[str, ...] = ()


# --- sharding -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mesh(devices: tuple[Any, ...]) -> Mesh:
    return Mesh(np.asarray(devices), ("batch",))


def device_mesh() -> Mesh:
    """A 1-D mesh over every visible device, axis "batch" (in a multi-process run, every process's devices)."""
    return _mesh(tuple(jax.devices()))


def shard_batch(batch: Any, mesh: Mesh | None = None) -> Any:
    """Place a `Batch` (or any pytree of arrays with a leading task axis) split over the devices.

    The number of tasks must be a multiple of the device count; `pad_batch` makes it one. On a mesh over several
    processes, every process passes the same whole batch and places only its own devices' rows.

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
    sharding = NamedSharding(mesh, P("batch"))
    if not sharding.is_fully_addressable:  # other processes' devices: device_put cannot reach them
        return distributed.global_array(batch, sharding)
    return jax.device_put(batch, sharding)


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
    """Copy every array of `tree` (model, optimiser state) to all devices (of every process, for a mesh over
    several processes: each passes the same values)."""
    mesh = mesh or device_mesh()
    sharding = NamedSharding(mesh, P())
    if not sharding.is_fully_addressable:
        return distributed.global_array(tree, sharding)
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.device_put(arrays, sharding), static)


# --- the step -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _cached_train_step(kind: ModelKind, training: Any, one_device: bool = True) -> Callable:
    # Runs of the same kind and training section in one process (`nlic eval`) share one compiled step. On one
    # device the step's trace is kept in the compile cache's folder (`StoredTrainStep`): a second run of the spec
    # neither traces nor compiles it. Sharded over several devices or processes it is jitted as usual.
    optim = make_optimizer(training)
    return StoredTrainStep(kind, optim, training) if one_device else make_train_step(kind, optim)


# --- evaluation -----------------------------------------------------------------------------------------------


def inductor_solve(spec: Any, model: Any, tasks: Any) -> Any:
    """The cheap `none` search on `tasks` (the inductor's discrete program, no search): what training's check reads.

    The program is the one training runs: `language.length` tokens. Since 2026-12-07 the `none` search itself runs
    those (`search.length` no longer applies to it), so the slot count set here changes nothing; it keeps the check
    pinned to the trained length. Before 2026-12-06 the check ran `search.length` slots (by default
    `language.max_length`), whose extra slots copy the slot most like skip; where no slot writes skip (grid1d's
    `t7 t7 t7 t7 tX tY`) they repeated a token the inductor wrote once, and on grid1d the check read ID 0.22 where
    the inductor's programs solved 0.67 (the same weights), misleading keep-best, the restarts and the verdict."""
    search = dataclasses.replace(spec.search, method="none", length=spec.language.length)
    return solve(spec, model, tasks, search=search, seed=derive_seed(spec.seed, "eval-search"))


def quick_accuracy(spec: Any, model: Any, tasks: Any) -> dict[str, Any]:
    """Accuracy of `inductor_solve` on `tasks`: training's own check (`nlic eval` / `evaluate` is the benchmark)."""
    result = inductor_solve(spec, model, tasks)
    return {
        "accuracy": None if result.accuracy is None else float(result.accuracy),  # None: no task has a target
        "spec_fit": float(np.mean(result.spec_fit)) if len(result.spec_fit) else None,
        "tasks": int(np.sum(result.has_target)),
    }


# --- the loop -------------------------------------------------------------------------------------------------


def _progress(spec: Any, step: int) -> float:
    """Training progress of step `step` in [0, 1]: the `t` of the schedules and of the curriculum."""
    return step / max(spec.training.steps - 1, 1)


def step_inputs(spec: Any, seed: int, step: int) -> tuple[Any, Any]:
    """Training step `step`'s tasks (the whole batch, drawn from `seed`: the attempt's) and its progress `t` in
    [0, 1], as `nlic train` feeds them to the train step; a pure function of its arguments, so a resumed run or a
    replay (`benchmarks/replay.py`) draws what the run did."""
    t = _progress(spec, step)
    tasks = task_api.sample_split(task_api.curriculum_spec(spec, t), spec.task.train_split, spec.training.batch,
                                  seed=derive_seed(seed, "train", step))
    return tasks, jnp.asarray(t, jnp.float32)


def curriculum_stage(spec: Any, step: int) -> str:
    """What the curriculum (`training.curriculum`) changes in the task of training step `step`: the overridden
    `task.params` as `key: value` text, or "" (the task's own distribution)."""
    if spec.training.curriculum <= 0:
        return ""
    own, now = dict(spec.task.params), dict(task_api.curriculum_spec(spec, _progress(spec, step)).task.params)
    return ", ".join(f"{k}: {v}" for k, v in sorted(now.items()) if own.get(k) != v)


def _split_until(kind: ModelKind, training: Any) -> int:
    """The last step at whose evaluation point a token may be split (`training.split_until`, `ModelKind.split`);
    0: never (the kind has no codebook to split, or there are no evaluation points)."""
    if kind.split is None or training.eval_every <= 0:
        return 0
    return int(training.split_until * training.steps)


def default_run_dir(spec: Any) -> Path:
    """`runs/<spec.name>`."""
    return Path("runs") / spec.name


def _finite(value: Any) -> float | None:
    """A metric as a float, or None (JSON null) when it is NaN or infinite: `metrics.jsonl` stays JSON that nlic
    reads back on resume, and the health checks see the divergence."""
    x = float(value)
    return x if math.isfinite(x) else None


def _floats(metrics: dict[str, Any]) -> dict[str, float | None]:
    return {k: _finite(v) for k, v in metrics.items()}


class _Health:
    """The health checks of one run as it trains: each warning printed once, when it first fires, and kept with
    the verdict in `health.json` (`nlic.runtime.health`)."""

    def __init__(self, run: Path, spec: Any, kind: ModelKind, bar: Progress, rows: list[dict[str, Any]], start: int,
                 restarts: tuple[dict[str, Any], ...] = (), stuck_until: int = 0,
                 rollbacks: tuple[dict[str, Any], ...] = (), announce: bool = True):
        self.run, self.spec, self.bar = run, spec, bar
        self.restarts = restarts  # the attempts abandoned before this one (`recovery`), for health.json
        self.rollbacks = rollbacks  # this attempt's rollbacks (`rollback`), for health.json
        self.announce = announce  # False while re-reading the rows of a run that just rolled back (printed before)
        self.discrete = kind.discrete_programs
        self.stuck_until = stuck_until  # the last token split: `id-accuracy-stuck` watches up to it (0: half the run)
        self.rows = rows  # every metrics row so far (a resumed run's rows up to its checkpoint first)
        self.checked = -1
        self.warnings: list[health.HealthWarning] = []
        self.id_accuracy: float | None = None  # of the last evaluation point, for the progress line
        for row in rows:
            self._note_eval(row)
        # A resumed run reports again what fired before its checkpoint, so its terminal shows the whole story.
        self.check(start)
        self.announce = True
        self._write(start, None)

    def _note_eval(self, row: dict[str, Any]) -> None:
        if row.get("split") == health.ID_SPLIT and row.get("accuracy") is not None:
            self.id_accuracy = float(row["accuracy"])

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._note_eval(row)

    def signals(self, row: dict[str, Any]) -> str | None:
        return health.signal_text(row, vocab=self.spec.language.vocab, id_accuracy=self.id_accuracy)

    def check(self, step: int) -> None:
        """Run the checks on the rows up to `step` (all of them logged); print and record new warnings."""
        found = health.check_health(self.rows, total_steps=self.spec.training.steps, discrete=self.discrete,
                                    spec=self.spec, since=self.checked, stuck_until=self.stuck_until)
        self.checked = step
        self._report(found, step)

    def _report(self, found: list[health.HealthWarning], step: int) -> None:
        known = {w.id for w in self.warnings}
        new = [w for w in found if w.id not in known]
        for w in new if self.announce else ():
            self.bar.message(w.text())
        self.warnings.extend(new)
        if new:
            self._write(step, None)

    def finish(self, step: int, kept_step: int | None = None) -> health.Verdict:
        """The verdict of the finished run: every check over all its rows, the end-of-run ones too (a pure
        function of the rows and of the step whose weights it keeps, `kept_step`, so a resumed run and an
        uninterrupted one get the same)."""
        found = health.check_health(self.rows, total_steps=self.spec.training.steps, discrete=self.discrete,
                                    spec=self.spec, final=True, stuck_until=self.stuck_until)
        self._report(found, step)
        self.warnings = found
        verdict = health.verdict_of(self.rows, found, spec=self.spec, kept_step=kept_step)
        self._write(step, verdict)
        return verdict

    def _write(self, step: int, verdict: health.Verdict | None) -> None:
        text = health.health_record(self.warnings, step=step, total_steps=self.spec.training.steps, verdict=verdict,
                                    restarts=self.restarts, rollbacks=self.rollbacks)
        with writing("health record", error=CheckpointError, then="then continue with `nlic train --resume`"):
            atomic_write(self.run / rd.HEALTH_FILE, text)


def train(
    spec: Any,
    *,
    out: str | os.PathLike[str] | None = None,
    steps: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
    force: bool = False,
) -> TrainResult:
    """Train `spec`'s model, writing a run directory.

    In a multi-process run (`nlic.runtime.distributed.initialize` first), every process calls it with the same
    arguments: the mesh spans all processes' devices, each process samples the step's batch and places its own
    rows, and process 0 alone writes the run directory (the others load its checkpoint on `resume`, from a file
    system they share). Every process returns the trained model (its own copy) and fingerprint.

    Args:
        spec: the validated spec.
        out: run directory (default `runs/<spec.name>`).
        steps: override of `training.steps` (part of the locked spec, so resume with the same value).
        resume: continue from the latest checkpoint of `out` (starts at step 0 if there is none yet). A `files`
            spec naming the run's data at their place relative to it (a project folder moved or copied with its
            runs) resumes it as the spec the run locked (`run_dir.with_locked_data`).
        progress: show progress on stderr (None: bar on a TTY, plain lines otherwise).
        force: delete the results already in `out` and start over.

    Returns:
        The trained model, step count, last metrics row and run directory.

    Raises:
        CheckpointError: `out` holds results and neither `resume` nor `force` was given; its checkpoint is
            corrupt or belongs to another spec; a file cannot be written (a full disk, a read-only or forbidden
            directory: the checkpoints already written stay intact, and `resume` continues from the last).
        SpecError: the batch does not split over the devices, the spec's kind/task is unknown, or the spec sets a
            field its kind does not read (`check_kind_fields`; a spec file's validation refuses them too), except on
            `resume` of a run whose locked spec has them (an earlier version accepted them, and they change nothing).
        DistributedError: in a multi-process run, another process stopped (or process 0 could not prepare the
            run directory).
    """
    if steps is not None:
        check_flag(steps, "--steps", "training.steps")
        spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, steps=int(steps)))
    run = Path(out) if out is not None else default_run_dir(spec)
    if not (resume and (run / rd.SPEC_FILE).exists()):
        # A `Spec` built in Python skipped the validator. Resumed, the spec must equal the one the run locked (the
        # checkpoint or `_check_same_spec` refuses another), which an earlier version may have locked with them.
        check_kind_fields(spec)
    if resume:  # a project folder moved with its runs names the run's data anew: the locked spec's paths read them
        spec = rd.with_locked_data(run, spec)
    tr = spec.training
    kind = kind_of(spec)
    shapes = task_api.shapes_of(spec)
    mesh = device_mesh()
    if tr.batch % mesh.size:
        where = f" of {distributed.process_count()} processes" if distributed.is_distributed() else ""
        raise SpecError(
            f"training.batch = {tr.batch} does not split over the {mesh.size} visible devices{where}",
            loc=Loc("training.batch"), hint=f"use a multiple of {mesh.size}",
        )
    # In a multi-process run every process computes every step; process 0 alone evaluates, checks health and
    # writes (the others wait for it at the next step's gradient reduction).
    main = distributed.is_main()
    eval_sets = {}
    if tr.eval_every > 0 and main:
        # Fixed evaluation tasks for the whole run, so accuracy curves compare like with like: each split's
        # evaluation sample, the tasks `nlic solve RUN SPLIT` solves and `nlic data show` prints under one id.
        for split in spec.eval.splits:
            eval_sets[split] = task_api.evaluation_tasks(spec, split)
    # The training-split sample the run's best weights are chosen on (`selection`), never an evaluation split.
    # Token splitting reads the same sample, on every process (each applies the split to its own copy).
    select_set = (selection.selection_tasks(spec)
                  if (selection.keeps_best(spec) and main) or _split_until(kind, tr) else None)

    optim = make_optimizer(tr)
    ckdir = run / rd.CHECKPOINT_DIR
    loaded: dict[str, Any] = {}

    def load(path: Path, trains: Any) -> tuple[Any, int]:
        # Shapes only: a mismatched checkpoint is refused before anything is initialised or compiled. The model
        # takes the configuration of the spec its attempt trains (`recovery.attempt_spec`); the file is checked
        # against the run's spec.
        return ckpt.load_checkpoint(path, state_like(trains, kind, shapes, optim), spec=spec)

    def open_run() -> tuple[bool, str | None, int, list[str], bool, list[dict[str, Any]], int]:
        """Prepare the run directory (process 0 alone); returns whether it resumes, the checkpoint to load, the
        attempt (`recovery`) it trains, the reasons of the attempts abandoned before it, whether that attempt is
        an abandoned one continued to the end (`recovery.continuation`), the attempt's rollbacks (`rollback`) and
        the steps the abandoned attempts spent (`recovery.steps_spent`)."""
        resuming = rd.prepare(run, resume=resume, force=force)
        state = recovery.read_state(run) if resuming else recovery.RestartState()
        if state.continues is not None and not state.restored:  # killed while moving the attempts' files
            recovery.restore_attempt(run, state.attempt - 1, state.continues, _ATTEMPT_FILES)
            state = dataclasses.replace(state, restored=True)
            recovery.write_state(run, state)
        path = ckpt.latest_checkpoint(ckdir) if resuming else None
        reasons = [h.reason for h in state.history]
        went = rollback.read_rollbacks(run) if resuming else ()
        if path is not None:
            loaded["state"] = load(path, recovery.attempt_spec(spec, state.training, reasons))
        elif resuming:
            _check_same_spec(run, spec)
        if resuming:
            rd.truncate_metrics(run, loaded["state"][1] if path is not None else 0)
        rd.write_env(run)  # first: it marks the directory as a run's (`RUN_MARKERS`) if nothing else is written
        if not resuming or not (run / rd.SPEC_FILE).exists():
            with writing("locked spec", error=CheckpointError, then="then continue with `nlic train --resume`"):
                rd.write_spec(run, spec)
            rd.write_data(run, spec)  # where a files task's data are relative to the run, and their digest
        return (resuming, None if path is None else str(path), state.training, reasons, state.continues is not None,
                [dataclasses.asdict(r) for r in went], recovery.steps_spent(state.history))

    resuming, path, attempt, reasons, final, went, spent = distributed.share_from_main("prepare-run", open_run)
    rollbacks = tuple(rollback.Rollback(**r) for r in went)  # every process: the attempt's schedule depends on them
    history = recovery.read_state(run).history if (main and resuming) else ()
    reasons = tuple(reasons)  # every process: what each abandoned attempt stopped for (`recovery.attempt_spec`)
    probe = recovery.probe_step(tr)
    just_rolled = False
    while True:
        trains = rollback.rolled_back_spec(recovery.attempt_spec(spec, attempt, reasons), rollbacks)
        try:
            return _train_attempt(
                spec, trains, kind, shapes, optim, mesh, run, eval_sets, progress=progress, main=main,
                attempt=attempt, history=history, reasons=reasons, probe=probe, resuming=resuming,
                checkpoint=None if path is None else (loaded["state"] if main else load(Path(path), trains)),
                select_set=select_set, load=lambda p: load(p, trains), final=final, rollbacks=rollbacks,
                just_rolled=just_rolled, spent=spent,
            )
        except _Rollback as r:
            # Back to the best point: resumed from its checkpoint like a killed run, at the lower rate.
            rollbacks, resuming, path, just_rolled = (*rollbacks, r.record), True, r.path, True
            if main:  # a rollback changes the schedule, not the state's shapes: the attempt's spec reads it
                loaded["state"] = load(Path(path), trains)
            continue
        except _Restart as r:
            attempt, history, resuming, path, spent = attempt + 1, r.history, False, None, spent + r.step
            reasons, rollbacks = (*reasons, r.reason), ()
        except _Continue as c:
            # Back to an abandoned attempt that beat the last one: its files are in the run directory again, and it
            # resumes from its last checkpoint like a killed run (its rows after that checkpoint are dropped).
            attempt, history, resuming, path, final = c.attempt, c.history, True, c.path, True
            reasons = (*reasons, recovery.CONTINUED)
            # The continued attempt's rollbacks came back with its files.
            rollbacks = tuple(rollback.Rollback(**r) for r in distributed.share_from_main(
                f"continue-rollbacks-{attempt}",
                lambda: [dataclasses.asdict(r) for r in rollback.read_rollbacks(run)]))
            if main:
                loaded["state"] = load(Path(path), recovery.attempt_spec(spec, attempt, reasons))
                rd.truncate_metrics(run, loaded["state"][1])


_ATTEMPT_FILES = (rd.METRICS_FILE, rd.HEALTH_FILE, rd.CHECKPOINT_DIR, rd.ROLLBACKS_FILE, rd.ROLLBACKS_DIR)
"""An attempt's own files: what an abandoned attempt's archive holds (`recovery.archive_attempt`)."""


class _Continue(Exception):
    """The last attempt ended below an abandoned stuck one, which continues to the end (`recovery.continuation`;
    raised after the files are moved and the record written)."""

    def __init__(self, attempt: int, path: str, history: tuple[Any, ...]):
        super().__init__("continue")
        self.attempt = attempt  # the attempt that continues (every process)
        self.path = path  # its last checkpoint (every process)
        self.history = history  # the restart record (process 0)


class _Rollback(Exception):
    """The attempt goes back to its best point (`rollback`; raised after the run directory is set back)."""

    def __init__(self, record: rollback.Rollback, path: str):
        super().__init__("rollback")
        self.record = record  # every process
        self.path = path  # the checkpoint to resume from (every process)


class _Restart(Exception):
    """An attempt was abandoned (`recovery`); the next one starts (raised after its record is written)."""

    def __init__(self, reason: str, history: tuple[Any, ...], step: int):
        super().__init__("restart")
        self.reason = reason  # the warning id it was abandoned for (every process knows it)
        self.step = step  # the step it was abandoned at (every process)
        self.history = history  # the restart record (process 0)


def _train_attempt(spec, trains, kind, shapes, optim, mesh, run, eval_sets, *, progress, main, attempt, history,
                   reasons, probe, resuming, checkpoint, select_set, load, final=False, rollbacks=(),
                   just_rolled=False, spent=0) -> TrainResult:
    """One attempt of `train`: from its checkpoint (or its seed's initial state) to the end, or to a restart.

    `spec` is the run's (its files, evaluation and checks); `trains` the attempt's (`recovery.attempt_spec`: its
    seed and schedule), which the model is built from. `final`: an abandoned attempt continued to the end
    (`recovery.continuation`), which neither restarts nor hands over to another. `rollbacks`: the attempt's so
    far (`rollback`; `trains` has their schedule); `just_rolled`: it resumes from the point it went back to.
    `spent`: the steps of the attempts abandoned before it (`recovery.abandon_until`).
    """
    tr = spec.training
    ckdir = run / rd.CHECKPOINT_DIR
    seed = trains.seed
    start = 0
    if checkpoint is not None:
        (model, opt_state, saved_key), start = checkpoint
        train_key = jax.random.wrap_key_data(saved_key)
    else:
        # Attempt 0 is the spec's own seed: a run that never restarts has the weights it always had.
        model, opt_state, train_key = init_state(trains, kind, shapes, optim)

    model, opt_state = replicate((model, opt_state), mesh)
    key_data = np.asarray(jax.random.key_data(train_key))
    # The attempt's schedule: the spec's, or after a rollback its learning rate dropped from the step gone back to.
    step_fn = _cached_train_step(kind, trains.training, mesh.size == 1 and not distributed.is_distributed())
    lr_at = lr_schedule(trains.training)
    total = tr.steps
    bar = Progress(total, start=start, enabled=progress if main else False)
    verb = "resuming" if start else "training"
    procs = f" as {distributed.process_count()} processes" if distributed.is_distributed() else ""
    tau = trains.relaxation.tau_inductor
    split_until = _split_until(kind, tr)
    # The last step this attempt may be abandoned at: restarts are paid in steps (`recovery.abandon_until`).
    budget_last = recovery.last_step(probe, split_until, drop_step(tr))
    until = 0 if final else recovery.abandon_until(tr, attempt, spent, budget_last)
    which = (f", attempt {attempt + 1} (seed {seed}"
             + (f", relaxation.tau_inductor {tau}" if tau != spec.relaxation.tau_inductor else "")
             + (f"; may restart up to step {until}" if until else "; the last") + ")"
             if attempt else "")
    if final:
        which = f", attempt {attempt + 1} continued to the end (seed {seed}; no later attempt beat it)"
    if rollbacks:
        which += (f", rolled back {len(rollbacks)} of at most {tr.rollback} time{'s' * (tr.rollback > 1)}: "
                  f"learning rate x{rollbacks[-1].factor:g} from step {rollbacks[-1].to}")
    bar.message(f"{verb} {spec.name} ({kind.name}) in {run} from step {start} of {total}{procs}{which}")
    restarts = tuple(dataclasses.asdict(h) for h in history)
    # Rows of a resumed run up to its checkpoint (truncated above); a new run has none.
    rows = rd.read_metrics(run) if (resuming and main) else []
    went = tuple(dataclasses.asdict(r) for r in rollbacks)
    # The checks name the values this attempt trains with in their fixes: a restart's slower anneal (the start line
    # says so), not the spec's, which an earlier attempt already tried.
    checks = (_Health(run, dataclasses.replace(spec, relaxation=trains.relaxation), kind, bar, rows, start, restarts,
                      stuck_until=split_until, rollbacks=went, announce=not just_rolled) if main else None)
    keeping = selection.keeps_best(spec)
    best = selection.Best(run, rows) if main and keeping else None
    may_restart = until > 0  # 0 without a probe step (`recovery.last_step`)

    abandoned: list[tuple[Any, ...]] = []  # process 0: the history `decide` recorded when it abandons the attempt
    rolls_left = int(tr.rollback) - len(rollbacks) if keeping else 0
    rolling: list[int] = []  # process 0: the step a rollback is setting the run directory back from

    def roll_back(done: int) -> list[Any] | None:
        """Process 0: whether to go back at `done` (`rollback`); if so, set the run directory back and return
        [the record, the checkpoint to resume from]."""
        warning = rollback.rollback_reason(checks.rows, step=done, spec=spec, discrete=kind.discrete_programs)
        if warning is None:
            return None
        to, best_file = best.step, best.saved()
        if to is None or to >= done or best_file is None:
            bar.message(f"warning: no earlier best point to roll back to at step {done} (training.rollback)")
            return None
        factor = rollback.factor_after(trains.training, to, tr.lr_drop)
        record = rollback.Rollback(done, to, warning.id, warning.summary, factor)
        bar.close()
        bar.message(f"rollback at step {done}: {warning.id}: {warning.summary}\n  going back to step {to} (the "
                    f"best evaluation point) to train on with the learning rate x{factor:g} (training.rollback: "
                    f"{len(rollbacks) + 1} of {tr.rollback})")
        rolling.append(done)  # from here a Ctrl-C must not checkpoint step `done`: a resume redoes the rollback
        own = rollback.go_back(run, record=record, number=len(rollbacks), best_file=best_file)
        return [dataclasses.asdict(record), str(own)]

    def decide(done: int) -> str | None:
        """Process 0: whether to abandon this attempt at `done`; if so, archive it and record the next one."""
        reason = recovery.restart_reason(checks.rows, step=done, probe=probe, spec=spec,
                                         discrete=kind.discrete_programs, split_until=split_until)
        if reason is None:
            return None
        record = recovery.Restart(attempt, done, reason[0], reason[1])
        bar.close()
        following_spec = recovery.attempt_spec(spec, attempt + 1, (*reasons, reason[0]))
        slower = following_spec.relaxation.tau_inductor
        bar.message(f"restart: attempt {attempt + 1} abandoned at step {done} ({reason[0]}: {reason[1]}); "
                    f"starting over from seed {following_spec.seed}"
                    + (f" with relaxation.tau_inductor {slower}" if slower != tau else ""))
        recovery.archive_attempt(run, attempt, _ATTEMPT_FILES)
        following = recovery.RestartState(attempt, tuple(history)).after(record)
        recovery.write_state(run, following)
        abandoned.append(following.history)
        with writing("checkpoint folder", error=CheckpointError, then="then continue with `nlic train --resume`"):
            ckdir.mkdir(exist_ok=True)
        return reason[0]

    # A stuck language restarts up to the last split, and nothing restarts once the learning rate has dropped.
    last_restart = min(until, recovery.last_step(probe, split_until, drop_step(trains.training)))
    split_batch = select_set.batch() if split_until else None  # `train` built the sample on every process

    def split_token(s: tuple[Any, Any, int], done: int) -> tuple[Any, Any, int]:
        """Every process: `s` with the largest unsolved group's token split (after this point's evaluation and
        best-weights record, before its checkpoint: a resumed run continues from the split weights)."""
        began = time.perf_counter()
        new, info = kind.split(distributed.local_copy(s[0]), split_batch, select_set.has_target)
        if info is None:
            return s
        if main:
            rd.append_metrics(run, {"step": done, "token_split": info.summary()})
            bar.message(f"step {done}: token split {info.summary()} in {time.perf_counter() - began:.0f} s")
        return (replicate(new, mesh), s[1], s[2])

    state = (model, opt_state, start)  # replaced in one assignment per step: always a consistent triple
    last_row: dict[str, float | None] = {}
    last_ckpt = start if resuming else -1
    t_log, tasks_since = time.perf_counter(), 0
    stage: str | None = None  # the curriculum stage last announced

    def save(s: tuple[Any, Any, int]) -> None:
        nonlocal last_ckpt
        if main and s[2] != last_ckpt:
            ckpt.save_checkpoint(ckdir, (s[0], s[1], key_data), step=s[2], spec=spec,
                                 keep=KEEP_CHECKPOINTS)
            last_ckpt = s[2]

    try:
        for step in range(start, total):
            # Every process samples the step's whole batch (cheap, and the same losses as one process at this
            # batch) and places its own rows.
            tasks, t = step_inputs(spec, seed, step)
            if main and spec.training.curriculum > 0:
                now = curriculum_stage(spec, step)
                if now != stage:
                    bar.message(f"curriculum from step {step}: training tasks with {now}" if now else
                                f"curriculum over from step {step}: the task's own training tasks")
                    stage = now
            batch = shard_batch(tasks.batch(), mesh)
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
            logged = done % tr.log_every == 0 or is_last
            evaluated = tr.eval_every > 0 and (done % tr.eval_every == 0 or is_last)
            decides = may_restart and done <= last_restart and (logged or evaluated)
            rolls = rolls_left > 0 and evaluated and not is_last
            splits_here = split_until > 0 and evaluated and not is_last and done <= split_until
            if not main:
                if rolls:
                    back = distributed.share_from_main(f"rollback-{attempt}-{done}", lambda: None)
                    if back is not None:
                        raise _Rollback(rollback.Rollback(**back[0]), back[1])
                if splits_here:
                    state = split_token(state, done)
                if decides:
                    why = distributed.share_from_main(f"restart-{attempt}-{done}", lambda: None)
                    if why is not None:
                        raise _Restart(why, (), done)  # process 0 archived the attempt and keeps its record
                continue
            if logged:
                now = time.perf_counter()
                rate = tasks_since / max(now - t_log, 1e-9) if tasks_since else None  # JSON null, not NaN
                last_row = {"step": done, "loss": _finite(loss), **_floats(metrics), "grad_norm": _finite(gnorm),
                            "lr": float(lr_at(step)), "tasks_per_s": rate}
                skipped = skipped_steps(opt_state)
                if skipped is not None:  # `training.skip_spikes`: the updates skipped so far
                    last_row["skipped_updates"] = int(skipped)
                rd.append_metrics(run, last_row)
                checks.add(last_row)
                t_log, tasks_since = now, 0
                bar.update(done, last_row["loss"], last_row["tasks_per_s"], force=True,
                           signals=checks.signals(last_row))
            elif bar.due():
                bar.update(done, float(loss))
            if evaluated:
                here = distributed.local_copy(model)  # this process's copy: evaluation is process 0's alone
                for split, ts in eval_sets.items():
                    row = {"step": done, "split": split, **quick_accuracy(spec, here, ts)}
                    rd.append_metrics(run, row)
                    checks.add(row)
                    acc = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
                    bar.message(f"step {done}: {split} accuracy {acc} ({row['tasks']} tasks)")
                if best is not None:
                    row = {"step": done, "split": selection.SELECTION_SPLIT, "from": spec.task.train_split,
                           **quick_accuracy(spec, here, select_set)}
                    rd.append_metrics(run, row)  # before the weights: a resumed run re-scores a point it lacks
                    if best.note(done, row["accuracy"]):
                        best.save((state[0], state[1], key_data), step=done, spec=spec)
                if rolls:  # before a token split here, which going back would undo
                    back = distributed.share_from_main(f"rollback-{attempt}-{done}", lambda: roll_back(done))
                    if back is not None:
                        raise _Rollback(rollback.Rollback(**back[0]), back[1])
                if splits_here:
                    state = split_token(state, done)
                t_log, tasks_since = time.perf_counter(), 0  # evaluation time is not training throughput
            if logged or evaluated:
                checks.check(done)  # after the step's every row: the checks at `done` see all of them
            if decides and distributed.share_from_main(f"restart-{attempt}-{done}", lambda: decide(done)):
                raise _Restart(abandoned[-1][-1].reason, abandoned[-1], done)
            if tr.checkpoint_every > 0 and done % tr.checkpoint_every == 0:
                save(state)
        if not main:
            jax.block_until_ready(state[0])  # the last step's reduction, before waiting for process 0 below
        save(state)
    except KeyboardInterrupt as e:
        bar.close()
        if rolling:  # the latest checkpoint is one before the fall: --resume trains to it, and goes back again
            bar.message(f"interrupted while rolling back from step {rolling[0]}; continue with --resume")
            e.reported = bar.enabled  # type: ignore[attr-defined]  # `guarded` adds no bare "interrupted"
            raise
        save(state)
        if main:
            bar.message(f"interrupted: checkpoint of step {state[2]} saved in {ckdir}; continue with --resume")
            e.reported = bar.enabled  # type: ignore[attr-defined]
        raise
    except jax.errors.JaxRuntimeError as e:
        if distributed.is_distributed():  # a collective failed: another process stopped
            raise distributed.lost_peer(f"training step {state[2] + 1}", e) from None
        raise
    finally:
        bar.close()

    if keeping and not final and attempt > 0:  # attempts were abandoned: did one of them beat this one?
        went_back: list[tuple[Any, ...]] = []  # process 0: the new restart history
        back = distributed.share_from_main(
            f"continue-{attempt}", lambda: _go_back(run, history, best, attempt, state[2], bar, went_back))
        if back is not None:
            raise _Continue(int(back[0]), str(back[1]), went_back[-1] if main else ())
    weights_step, weights_attempt = state[2], attempt
    if keeping:
        # Every process takes process 0's choice and loads the same file (a file system they share, as on resume).
        chosen = distributed.share_from_main(f"keep-best-{attempt}",
                                             lambda: _choose_best(best, state[2], bar, run, attempt, len(history)))
        if chosen is not None:
            try:
                (kept, _, _), weights_step = load(Path(chosen[0]))
            except CheckpointError as e:
                if int(chosen[1]) == attempt:
                    raise  # this attempt's own best file: refused, as before
                # A damaged file of an abandoned attempt must not cost the run its own weights: it keeps its last.
                if main:
                    bar.message(f"warning: {e.render()}; keeping the last step's weights")
            else:
                weights_attempt = int(chosen[1])
                state = (replicate(kept, mesh), state[1], state[2])
    model = distributed.local_copy(state[0])
    fp, verdict, notes = None, None, ()
    if main:
        fp = rd.save_model(run, spec, model, step=state[2], weights_step=weights_step,
                           weights_attempt=weights_attempt)
        if kind.execute is not None:
            rd.save_executor_weights(run, model)
        verdict = checks.finish(state[2], kept_step=weights_step if weights_attempt == attempt else None)
        bar.message(f"done: {state[2]} steps, language {fp}, results in {run}")
        bar.message(verdict.line())
        # The verdict judges a continued attempt, whose stuck warning's fix (restarts) was tried; it reads the rows
        # from the step a rollback went back to, so the fall is told here.
        notes = tuple(n for n in (recovery.continued_note(recovery.read_state(run)) if final else None,
                                  rollback.note(rollbacks)) if n)
        for note in notes:
            bar.message(note)
    else:
        fp = fingerprint(spec, model)
    distributed.barrier("train-done")  # the run directory is complete when train returns, on every process
    return TrainResult(model=model, step=state[2], metrics=last_row, run_dir=run, fingerprint=fp, spec=spec,
                       verdict=verdict, notes=notes)


def _go_back(run: Path, history: Sequence[Any], best: selection.Best, attempt: int, done: int, bar: Progress,
             went_back: list[tuple[Any, ...]]) -> list[Any] | None:
    """Process 0, at the end of the last attempt: when an attempt abandoned as stuck beat it on the selection
    sample (`recovery.continuation`), archive this attempt, move that one's files back, record it (the new restart
    history appended to `went_back`), and return [its number, its last checkpoint]; else None."""
    found = recovery.continuation(run, history, best.accuracy)
    if found is None:
        return None
    k, score = found
    summary = (f"attempt {k + 1}, abandoned stuck, solved {score:.2f} of the selection sample at best, this attempt "
               f"{best.accuracy or 0.0:.2f}: attempt {k + 1} continues to the end")
    record = recovery.Restart(attempt, done, recovery.CONTINUED, summary)
    state = recovery.RestartState(attempt + 1, (*history, record), continues=k)
    recovery.write_state(run, state)  # before the moves: a run killed during them finishes them on --resume
    recovery.restore_attempt(run, attempt, k, _ATTEMPT_FILES)
    recovery.write_state(run, dataclasses.replace(state, restored=True))
    path = ckpt.latest_checkpoint(run / rd.CHECKPOINT_DIR)
    if path is None:  # `continuation` found one: only a damaged archive gets here
        raise CheckpointError(f"the checkpoints of attempt {k + 1} are missing from {run / rd.CHECKPOINT_DIR}",
                              loc=Loc(str(run)), hint="start the run over with --force")
    bar.message(f"restart: {summary} (from {path.name})")
    went_back.append(state.history)
    return [k, str(path)]


def _choose_best(best: selection.Best, final: int, bar: Progress, run: Path, attempt: int,
                 archived: int) -> list[Any] | None:
    """Process 0: the checkpoint whose weights the run keeps instead of its last (`selection`), with the attempt
    that wrote it, or None: an abandoned attempt's best point (of the `archived` attempts under `attempts/`) if it
    beats every point of this one, else this attempt's best point."""
    try:
        other = selection.best_abandoned(run, archived, best.accuracy)
    except CheckpointError as e:  # a damaged archive must not cost the run its own weights
        bar.message(f"warning: the abandoned attempts' records are unreadable ({e.render()}); keeping this "
                    "attempt's best weights")
        other = None
    if other is not None:
        k, b, path = other
        bar.message(f"keeping the weights of attempt {k + 1}'s step {b.step}: its discrete programs solve "
                    f"{b.accuracy:.2f} of the training-split selection sample, this attempt's best "
                    f"{best.accuracy or 0.0:.2f} (training.keep: best; the attempt is in {path.parents[2]})")
        return [str(path), k]
    path = best.earlier(final)
    if path is not None:
        bar.message(f"keeping the weights of step {best.step}: its discrete programs solve {best.accuracy:.2f} of "
                    f"the training-split selection sample, step {final}'s {best.last or 0.0:.2f} "
                    "(training.keep: best)")
    elif best.step is not None and best.step != final:
        bar.message(f"warning: the best weights (step {best.step}) are missing from {best.folder}; keeping the "
                    "last step's")
    return None if path is None else [str(path), attempt]


def _check_same_spec(run: Path, spec: Any) -> None:
    """Before restarting a run that has no checkpoint yet, make sure it is the same spec."""
    meta = run / rd.SPEC_FILE
    if not meta.exists():
        return
    locked = read_text(meta, limit=MAX_SPEC_BYTES, what="locked spec", error=CheckpointError)
    if locked != format_spec(spec, syntax="yaml"):
        raise CheckpointError(
            "this run directory was started with another spec", loc=Loc(str(meta)),
            hint="resume with the same spec (and --steps), or start a new run with --out or --force",
        )
