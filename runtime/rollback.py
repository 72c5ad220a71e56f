"""Rollback: a run whose language falls apart after a loss spike goes back to its best weights and trains on from
there at a lower learning rate (`training.rollback`).

Late in training a rare draw of the relaxation's noise can give a gradient far off course; its step throws the model
off what it had learned, and the run's ID accuracy falls (`training-unstable`: a fall after a loss spike). A fixed
`training.lr_drop_at` prevents that only where it comes before the spike: on the grid1d id suite it came in time for
seed 0 (its spike without a drop had come at step 3300) and too late for seed 1, whose best point was step 2500 (ID
0.75), its spike at step 2750 and the drop at 3000: it fell to 0.18 and ended at 0.58. Replayed from its step-2500
checkpoint at the dropped rate (`benchmarks/replay.py RUN --from 2500 --lr-drop 0.25`) it held 0.76-0.80 (benchmarks/
README.md, "Rollback on a fall after a loss spike").

With `training.rollback: N`, at an evaluation point where `training-unstable` fires (and only there: a fall without a
spike, such as grid1d seed 0's 0.64 -> 0.38 -> 0.68 at steps 1500-2500, is a language reorganising and recovers), the
run goes back to the weights and optimiser state of its best evaluation point (`training.keep: best`'s, on the
selection sample) and trains on from that step with the learning rate multiplied by `training.lr_drop` once more
than it was there (`rolled_back_spec`: a drop already in effect at that step is compounded, a later one is brought
forward to it). At most N times per attempt.

The run's files say what happened: `rollbacks.json` (the record, written before training goes on), the abandoned
steps' metrics and checkpoints under `rollbacks/<k>/`, `metrics.jsonl` cut back to the step gone back to, and the
record in `health.json` with a line after the verdict.

Everything is a function of the metrics rows and checkpoints, as a resume is: a run goes back by resuming from a
checkpoint of the step it goes back to, so one killed at any moment and resumed ends bit-identical to one never
interrupted. A run killed before the record is written resumes where it was and falls at the same step again (the
same steps, the same draws); after it, resumes at the lower rate.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlic.compiler.optim import drop_factor, drop_step
from nlic.grammar.errors import CheckpointError
from nlic.runtime import checkpoint as ckpt
from nlic.runtime import health
from nlic.runtime import run_dir as rd
from nlic.runtime.files import atomic_write, writing

__all__ = [
    "UNSTABLE",
    "Rollback",
    "rolled_back_spec",
    "factor_after",
    "rollback_reason",
    "read_rollbacks",
    "write_rollbacks",
    "go_back",
    "note",
]

UNSTABLE = "training-unstable"
"""The warning a run rolls back for (`health`'s fall after a loss spike)."""

_FORMAT = "nlic-rollbacks"
_VERSION = 1
_MAX = 1000
_THEN = "then continue with `nlic train --resume`"


@dataclasses.dataclass(frozen=True)
class Rollback:
    """One rollback: the evaluation point where the fall was seen (`step`), the step whose weights the run went back
    to (`to`), the warning and its summary, and the learning-rate factor from `to` on (relative to `training.lr`)."""

    step: int
    to: int
    reason: str
    summary: str
    factor: float


def factor_after(training: Any, to: int, drop: float) -> float:
    """The learning-rate factor (of `training.lr`) from step `to` on after going back there: `drop` times the factor
    `training`'s schedule has at `to`."""
    return drop_factor(training, to) * float(drop)


def _gone_back(training: Any, to: int, drop: float) -> Any:
    """`training` whose rate from step `to` on is `drop` times that in effect at `to` (the steps before `to`, never
    trained again, keep nothing of their schedule but the warm-up and `training.lr`, which the new one shares)."""
    factor = factor_after(training, to, drop)
    steps = int(training.steps)
    at = to / steps
    if drop_step(dataclasses.replace(training, lr_drop_at=at)) != to:  # cannot happen for steps <= 10^7
        raise ValueError(f"step {to} of {steps} is not a drop step")
    return dataclasses.replace(training, lr_drop_at=at, lr_drop=factor)


def rolled_back_spec(trains: Any, rollbacks: Sequence[Rollback]) -> Any:
    """The spec an attempt trains on after `rollbacks` (in order): each moves the learning-rate drop to the step it
    went back to, at `training.lr_drop` times the factor in effect there. The spec itself when there are none, so a
    run that never rolls back trains exactly as before."""
    if not rollbacks:
        return trains
    training, drop = trains.training, float(trains.training.lr_drop)
    for r in rollbacks:
        training = _gone_back(training, int(r.to), drop)
    return dataclasses.replace(trains, training=training)


def rollback_reason(rows: Sequence[Mapping[str, Any]], *, step: int, spec: Any,
                    discrete: bool) -> health.HealthWarning | None:
    """The `training-unstable` warning that fires at evaluation point `step` on `rows` (the attempt's metrics up to
    it), or None."""
    found = health.check_health(rows, total_steps=spec.training.steps, discrete=discrete, spec=spec, since=step - 1)
    for w in found:
        if w.id == UNSTABLE and w.step == step:
            return w
    return None


def read_rollbacks(run: Path) -> tuple[Rollback, ...]:
    """The rollbacks of the attempt in `run` (none when it has no record).

    Raises:
        CheckpointError: the record is unreadable, or not a valid rollback record.
    """
    path = Path(run) / rd.ROLLBACKS_FILE
    data = rd.read_record(path, what="rollback record", format=_FORMAT, version=_VERSION)
    if data is None:
        return ()
    bad = rd.invalid_record(path, "rollback record")
    items = data.get("rollbacks")
    if not isinstance(items, list) or len(items) > _MAX:
        raise bad
    out: list[Rollback] = []
    for item in items:
        if not isinstance(item, dict):
            raise bad
        step, to, factor = item.get("step"), item.get("to"), item.get("factor")
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (step, to))
        # Each went back from a later point than the one before it went back to: the run trained past it.
        if not (ints and 0 < to < step and (not out or step > out[-1].to)
                and isinstance(item.get("reason"), str) and isinstance(item.get("summary"), str)
                and isinstance(factor, (int, float)) and not isinstance(factor, bool)
                and math.isfinite(factor) and 0 <= factor <= 1):
            raise bad
        out.append(Rollback(step, to, item["reason"], item["summary"], float(factor)))
    return tuple(out)


def write_rollbacks(run: Path, rollbacks: Sequence[Rollback]) -> None:
    """Write `rollbacks.json` atomically."""
    data = {"format": _FORMAT, "version": _VERSION, "rollbacks": [dataclasses.asdict(r) for r in rollbacks]}
    with writing("rollback record", error=CheckpointError, then=_THEN):
        atomic_write(Path(run) / rd.ROLLBACKS_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n")


def go_back(run: Path, *, record: Rollback, number: int, best_file: Path) -> Path:
    """Process 0: set the run directory back to step `record.to` (rollback `number`, 0-based, of this attempt), and
    return the checkpoint to resume from.

    In this order, each step safe to repeat, so a run killed between any two resumes into the same result:
    1. the checkpoint of step `to` becomes the latest one: the periodic checkpoint of that step where the run still
       has it (the state the run trained on from, after any token split at that point), else the best point's
       (`best_file`, copied: the weights scored there);
    2. the checkpoints of later steps and a copy of `metrics.jsonl` move to `rollbacks/<number>/`;
    3. `rollbacks.json` records it (from here a resume trains at the lower rate);
    4. `metrics.jsonl` is cut back to step `to`.
    """
    run, to = Path(run), int(record.to)
    ckdir = run / rd.CHECKPOINT_DIR
    own = ckdir / ckpt.checkpoint_name(to)
    dest = run / rd.ROLLBACKS_DIR / str(int(number))
    with writing("rollback", error=CheckpointError, then=_THEN):
        if not own.exists():
            data = Path(best_file).read_bytes()
            atomic_write(own, data)
        atomic_write(ckdir / ckpt.LATEST, own.name + "\n")
        dest.mkdir(parents=True, exist_ok=True)
        for path in ckpt.list_checkpoints(ckdir):
            if ckpt.checkpoint_step(path) > to:
                (dest / rd.CHECKPOINT_DIR).mkdir(exist_ok=True)
                target = dest / rd.CHECKPOINT_DIR / path.name
                target.unlink(missing_ok=True)
                path.rename(target)
        metrics = run / rd.METRICS_FILE
        if metrics.exists():
            shutil.copyfile(metrics, dest / rd.METRICS_FILE)
    previous = read_rollbacks(run)[:number]
    write_rollbacks(run, (*previous, record))
    rd.truncate_metrics(run, to)
    return own


def note(rollbacks: Sequence[Rollback]) -> str | None:
    """The line that follows the verdict of a run that rolled back (None otherwise): the verdict reads the metrics
    from the step gone back to, so the fall that caused it is named here."""
    if not rollbacks:
        return None
    parts = [f"at step {r.step} to step {r.to}'s weights, learning rate x{r.factor:g} from there" for r in rollbacks]
    times = "once" if len(parts) == 1 else f"{len(parts)} times"
    return f"note: rolled back {times} after a fall with a loss spike ({UNSTABLE}): " + "; ".join(parts) + \
        " (rollbacks.json; the abandoned steps in rollbacks/)"
