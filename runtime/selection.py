"""Keeping a run's best weights: a late blow-up does not cost the language the run had learned.

At a constant learning rate a run can lose a working language in its last few hundred steps: `specs/minimal/
shift_p.yaml` at seed 1 had ID accuracy 1.00 at steps 2000 and 2500 and 0.04 at step 3000, its end (benchmarks/
README, "The minimal specs over seeds"). With `training.keep: best` (the default) every evaluation point also scores
the model's discrete programs (the `none` search, as training's ID/OOD evaluation does) on a fixed *selection
sample* of the training split: `eval.tasks` tasks drawn with `derive_seed(seed, "select")`. The evaluation splits
are never read, so choosing among a run's weights does not peek at the tasks it is scored on.

The weights of the evaluation point with the highest selection accuracy (the latest of equals, so a run that ends at
its best keeps its last weights, bit for bit) are checkpointed under `checkpoints/best/` and become the run's
`model.eqx`. The selection rows are in `metrics.jsonl` as `{"step", "split": "selection", "from": <train split>,
"accuracy", "spec_fit", "tasks"}`; `model.json` names the step whose weights it holds (`weights_step`).

Across restarts (`nlic.runtime.recovery`) the same holds for the whole run: each abandoned attempt keeps its selection
rows and best checkpoint under `attempts/<k>/`, all attempts score the same selection sample, and an abandoned
attempt's best point that beats every point of the last attempt (strictly: ties keep the last attempt's) gives the
run its weights (`best_abandoned`; `model.json`'s `weights_attempt` names the attempt). A restart is a fresh draw,
not always a better one: on `specs/minimal/comp_i.yaml` with `model.inductor.offsets` at seed 2 the second attempt
was abandoned at ID 0.88 and the third ended near 0.5 (benchmarks/README, "Keeping the best attempt").

Everything is a function of the rows: a killed run resumes with its rows up to the checkpoint, replays the same
steps, and rewrites the same best weights, so it ends with the same model as one never interrupted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nlic.compiler import families as task_api
from nlic.compiler.seeds import derive_seed
from nlic.runtime import checkpoint as ckpt
from nlic.runtime import run_dir as rd

__all__ = ["SELECTION_SPLIT", "BEST_DIR", "Best", "keeps_best", "selection_tasks", "best_abandoned"]

SELECTION_SPLIT = "selection"
"""The `split` of a metrics row that scores the selection sample (its `from`: the training split's name)."""

BEST_DIR = "best"
"""Folder under `checkpoints/` holding the best weights so far (one checkpoint file)."""


def keeps_best(spec: Any) -> bool:
    """Whether the run keeps its best weights: `training.keep: best` and evaluation points to choose among."""
    tr = spec.training
    return tr.keep == "best" and int(tr.eval_every) > 0


def selection_tasks(spec: Any) -> Any:
    """The fixed selection sample: `eval.tasks` tasks of the training split, drawn with `derive_seed(seed,
    "select")` (the spec's own seed, for every restart attempt)."""
    return task_api.sample_split(spec, spec.task.train_split, int(spec.eval.tasks),
                                 seed=derive_seed(int(spec.seed), "select"))


class Best:
    """The best evaluation point of one attempt so far, from its selection rows."""

    def __init__(self, run: Path, rows: Sequence[Mapping[str, Any]] = ()):
        self.folder = Path(run) / rd.CHECKPOINT_DIR / BEST_DIR
        self.step: int | None = None
        self.accuracy: float | None = None
        self.last: float | None = None  # the latest point's accuracy
        for row in rows:
            if row.get("split") == SELECTION_SPLIT and isinstance(row.get("step"), int):
                self.note(row["step"], row.get("accuracy"))

    def note(self, step: int, accuracy: float | None) -> bool:
        """Record the point `step`; True when it is the new best (its weights must be saved)."""
        self.last = None if accuracy is None else float(accuracy)
        if self.last is None:
            return False
        if self.accuracy is None or self.last >= self.accuracy:
            self.step, self.accuracy = int(step), self.last
            return True
        return False

    def save(self, state: Any, *, step: int, spec: Any) -> None:
        """Checkpoint `state` (model, optimiser state, key data) as the best so far (atomic, one file kept)."""
        ckpt.save_checkpoint(self.folder, state, step=step, spec=spec, keep=1)

    def saved(self) -> Path | None:
        """The best point's checkpoint file; None when no point was scored or its file is not the one written."""
        if self.step is None:
            return None
        path = ckpt.latest_checkpoint(self.folder)
        if path is None or path.name != ckpt.checkpoint_name(self.step):
            return None
        return path

    def earlier(self, final_step: int) -> Path | None:
        """The checkpoint to keep instead of the final weights: the best point's, when it is not the last step;
        None when the last weights are the best (or no point was scored)."""
        if self.step is None or self.step == int(final_step):
            return None
        return self.saved()  # None cannot happen in a run nlic wrote: the best point's file is written with its row


def best_abandoned(run: Path, attempts: int | Iterable[int], than: float | None, *,
                   resumable: bool = False) -> tuple[int, Best, Path] | None:
    """The abandoned attempt (of `attempts`: a count for `0..attempts-1`, or the attempts' numbers; archived under
    `attempts/<k>/`) whose best point scored more than `than` on the selection sample (None: any score), with that
    point and a file: its best point's checkpoint, or with `resumable` its latest checkpoint (to train on from,
    `nlic.runtime.recovery.continuation`). The highest score wins, the earliest attempt among equals. None when no
    abandoned attempt beats `than` (or none has the file)."""
    found: tuple[int, Best, Path] | None = None
    for k in (range(attempts) if isinstance(attempts, int) else attempts):
        archived = Path(run) / rd.ATTEMPTS_DIR / str(k)
        b = Best(archived, rd.read_metrics(archived))
        if b.accuracy is None or (than is not None and b.accuracy <= than):
            continue
        if found is not None and b.accuracy <= (found[1].accuracy or 0.0):
            continue
        path = ckpt.latest_checkpoint(archived / rd.CHECKPOINT_DIR) if resumable else b.saved()
        if path is not None:
            found = (int(k), b, path)
    return found
