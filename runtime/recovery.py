"""Recovery from a bad start: a run that fails its health checks early starts again, annealing more slowly or from a
derived seed.

Training is a draw: the same spec learns a working language at one seed and not at another (Comp-I: seeds 0, 1, 2
reach ID 1.00, 0.00 and 0.86). A failing run shows it early, in its health checks (`nlic.runtime.health`: Comp-I
seed 1's plateau with no discrete program solving anything fires at step 600 of 3000, seed 0's run raises
nothing). So up to `training.probe` of the way through a run, a health warning ends the attempt and training
starts over: `training.restarts` times, and more where attempts abandoned early left steps unspent
(`abandon_until`). After the probe step only a language still stuck on part of the tasks
(`id-accuracy-stuck`) ends an attempt, up to the last token split (`training.split_until`, the in-run remedy for
it; `last_step`); the last attempt runs to the end whatever its health.

A restart applies the fix its warning names where that fix is the schedule (`attempt_spec`): after a warning of a
language that never formed (`SLOWER_ANNEAL`: a codebook collapse, all slots at skip, a relaxation gap, a plateau
with no discrete program solving anything) the next attempt keeps its seed and anneals the inductor's temperature
from twice the start (`exp(4 -> 0.5)` becomes `exp(8 -> 0.5)`, the paper's schedule; the end stays; a second such
warning in a row also derives the seed: the slower anneal did not help at this one); after any other
warning (a NaN, a language stuck on part of the tasks: `id-accuracy-stuck`, ...) it starts from the next derived
seed (`attempt_seed`). Measured on `specs/minimal/shift_p.yaml` seed 4: five attempts at `exp(4 -> 0.5)` (the seed
and four derived ones) all sat on the same plateau (one token in one slot, ID 0.00; abandoned at step 800 or 1000),
and so did a derived seed at `exp(8 -> 0.5)` until step 1000, when the plateau check abandons it; the spec's own
seed at `exp(8 -> 0.5)` left the plateau by step 750 and ended at ID 1.00, OOD 1.00 (benchmarks/README, "Keeping the
best weights; restarts that anneal more slowly").

Everything is a function of the spec and seed: the same spec and seed restart at the same steps and end with the
same weights, and a killed run resumes into the same attempt (its number is in `restarts.json`, written before the
attempt's first file) and ends bit-identical. Attempt 0 uses the spec's own seed, so a run that never restarts has
exactly the weights it had before recovery existed.

The run directory keeps each abandoned attempt's metrics and health record under `attempts/<k>/`.

A restart is a draw, and it can lose: an attempt abandoned with its language stuck on part of the tasks may have been
better than every one after it, and still learning (grid1d comp, seed 0: abandoned at ID 0.72 at step 2000, the
restarts reached 0.60 and 0.54; the same attempt without restarts reached 0.82 at step 3000). So when the last
attempt ends and an attempt abandoned as stuck (`STUCK`) scored more on the selection sample than every point of
it, that attempt is continued to the end from its last checkpoint (`continuation`, `restore_attempt`): the last
attempt is archived like the others, the stuck one's files come back to the run directory, and it trains on with
no further restart, exactly as it would have without restarts (a resume). The run then keeps the best weights of
all its attempts as before. A run whose restarts did better is unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlic.compiler.optim import drop_step
from nlic.compiler.seeds import derive_seed
from nlic.grammar.errors import CheckpointError
from nlic.runtime import health, selection
from nlic.runtime.files import atomic_write, writing
from nlic.runtime.run_dir import ATTEMPTS_DIR, RESTARTS_FILE, invalid_record, read_record

__all__ = [
    "SLOWER_ANNEAL",
    "attempt_spec",
    "RESTARTS_FILE",
    "ATTEMPTS_DIR",
    "Restart",
    "RestartState",
    "attempt_seed",
    "probe_step",
    "abandon_until",
    "steps_spent",
    "restart_reason",
    "last_step",
    "STUCK",
    "read_state",
    "write_state",
    "archive_attempt",
    "CONTINUED",
    "continuation",
    "continued_note",
    "restore_attempt",
]

_FORMAT = "nlic-restarts"
_VERSION = 1
_MAX_RESTARTS = 1000


@dataclasses.dataclass(frozen=True)
class Restart:
    """One abandoned attempt: its number, the step it stopped at and why (a warning id or `probe-accuracy`)."""

    attempt: int
    step: int
    reason: str
    summary: str


@dataclasses.dataclass(frozen=True)
class RestartState:
    """Which attempt a run is in, and the attempts it abandoned (or set aside: `CONTINUED`).

    `continues`: the abandoned attempt the run went back to and trains to the end (None: the run is in attempt
    `attempt`); `restored`: its files are back in the run directory (a run killed while moving them finishes the
    moves on `--resume`)."""

    attempt: int = 0
    history: tuple[Restart, ...] = ()
    continues: int | None = None
    restored: bool = False

    def after(self, restart: Restart) -> RestartState:
        return RestartState(self.attempt + 1, (*self.history, restart))

    @property
    def training(self) -> int:
        """The attempt whose model the run trains now."""
        return self.attempt if self.continues is None else self.continues


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed attempt `attempt` trains from: the spec's own for attempt 0, a derived one after."""
    return int(seed) if attempt == 0 else derive_seed(int(seed), "restart", int(attempt))


SLOWER_ANNEAL = frozenset({"codebook-collapse", "all-skip", "relaxation-gap", "plateau-no-discrete"})
"""Warnings whose restart anneals the inductor's temperature from twice the start (their fix names it)."""

STUCK = "id-accuracy-stuck"
"""The warning that may also end an attempt after the probe step, up to the last token split (`last_step`)."""

CONTINUED = "continued"
"""The reason recorded for the last attempt when the run goes back to continue a better stuck one
(`continuation`)."""

RESEED_AND_SLOWER = frozenset({STUCK})
"""Warnings whose restart does both: a derived seed and the slower anneal. A language stuck on part of the tasks
(Comp-I seed 4: the value primitives solved, no positional one) stayed stuck from its own seed and from two derived
ones at the same anneal (ID 0.48 at step 1500), and from its own seed annealed from 8 (0.48 at step 1000); the first
derived seed annealed from 8 solved the ID tasks by step 1500 (benchmarks/README.md)."""


def attempt_spec(spec: Any, attempt: int, reasons: Sequence[str]) -> Any:
    """The spec attempt `attempt` trains, from the reasons (warning ids, in order) of the attempts abandoned before
    it: the spec itself for attempt 0; after, the inductor temperature's start doubled once for each reason in
    `SLOWER_ANNEAL` or `RESEED_AND_SLOWER`, and the seed derived once for each reason not in `SLOWER_ANNEAL`, and
    once for each `SLOWER_ANNEAL` reason right after another (the slower anneal did not help at this seed:
    `attempt_seed`): every attempt differs from the ones before it in what the warning blamed.

    Comp-I with the defaults, seeds 12 and 13 (measured): their own seed sat on the same plateau at three
    temperatures (exp(4), exp(8), exp(16) -> 0.5) and collapsed to all skip at four (up to exp(32)); with a derived
    seed from the second such restart on, seed 13's third attempt (exp(16)) solved ID 1.00 at step 1500.

    A pure function of the spec and the restart record, so a resumed attempt rebuilds the same model and schedule.
    """
    if attempt == 0:
        return spec
    slower = sum(1 for r in reasons[:attempt] if r in SLOWER_ANNEAL or r in RESEED_AND_SLOWER)
    # A language that never formed again after a slower anneal: the seed is what failed, too.
    again = sum(1 for a, b in zip(reasons[:attempt], reasons[1:attempt]) if a in SLOWER_ANNEAL and b in SLOWER_ANNEAL)
    reseeded = sum(1 for r in reasons[:attempt] if r not in SLOWER_ANNEAL) + again
    relax = spec.relaxation
    if slower:
        s = relax.tau_inductor
        tau = dataclasses.replace(s, start=s.start * 2.0 ** slower,
                                  end=s.end * 2.0 ** slower if s.kind == "const" else s.end)
        relax = dataclasses.replace(relax, tau_inductor=tau)
    return dataclasses.replace(spec, seed=attempt_seed(spec.seed, reseeded), relaxation=relax)


def probe_step(training: Any) -> int:
    """The last step at which an attempt may be abandoned (`training.probe` of `training.steps`); 0: never."""
    if int(training.restarts) <= 0:
        return 0
    return int(round(float(training.probe) * int(training.steps)))


def last_step(probe: int, split_until: int, drop: int | None = None) -> int:
    """The last step at which an attempt may be abandoned: the probe step (0: never), or the last token split
    (`training.split_until` of the steps) where that is later, for `STUCK` alone; in either case before `drop`, the
    first step at a dropped learning rate (`training.lr_drop_at`; `nlic.compiler.optim.drop_step`), where given.

    From the drop on a run keeps what it learned: grid1d comp seed 1 (measured) was abandoned stuck at ID 0.72 at
    step 1500, the drop's step, and its next attempts reached 0.21; the same attempt run on with the drop kept
    0.70-0.75 and solved ID 0.91, OOD 0.59 with its search.

    Token splitting is the in-run remedy for a language stuck on part of the tasks; a language still stuck after
    the last split had its chance will not move (Comp-I seed 4 on an AMD EPYC: ID 0.09, 0.34, 0.48 at steps
    500-1500, still gaining at the probe step, then 0.48 at every evaluation to step 3000 through the splits at
    steps 1500 and 2000), so it starts over while a restart can still act.
    """
    end = 0 if probe <= 0 else max(probe, split_until)
    return end if drop is None else min(end, drop - 1)


MAX_ATTEMPTS_PER_RESTART = 2
"""At most this many restarts per `training.restarts` (a run's restarts: 2 x restarts at most), however few steps
they spend: each restart after a language that never formed doubles the inductor temperature's start."""


def steps_spent(history: Sequence[Restart]) -> int:
    """The training steps of the attempts a run abandoned (not counting the one set aside to continue another,
    `CONTINUED`: it is the last)."""
    return sum(int(h.step) for h in history if h.reason != CONTINUED)


def abandon_until(training: Any, attempt: int, spent: int, last: int) -> int:
    """The last step at which attempt `attempt` may be abandoned, after the attempts before it spent `spent` steps;
    0: never (it runs to the end). `last`: the last step at which any attempt may be (`last_step`).

    Restarts are paid in steps: the abandoned attempts of a run may use `training.restarts` x `last` steps in all,
    at most `MAX_ATTEMPTS_PER_RESTART` x `training.restarts` of them. So the first `restarts` attempts may always be
    abandoned up to `last`, as when restarts were a count, and a run never trains longer than that count allowed
    (`restarts` x `last` + `training.steps` steps); what attempts abandoned early (a language that never formed, at
    step 350 or 600 of 3000) leave unspent buys one more attempt. Comp-I seed 5 with the defaults abandoned its
    first two attempts at steps 600 and 350, and its third, stuck at ID 0.33 from step 500, had to run to the end;
    a fourth attempt, a derived seed, solved ID 1.00 and OOD 1.00 (benchmarks/README.md).
    """
    restarts = int(training.restarts)
    if attempt >= MAX_ATTEMPTS_PER_RESTART * restarts or last <= 0:
        return 0
    return max(0, min(last, restarts * last - int(spent)))


def restart_reason(
    rows: Sequence[Mapping[str, Any]], *, step: int, probe: int, spec: Any, discrete: bool, split_until: int = 0
) -> tuple[str, str] | None:
    """Why the attempt whose metrics rows are `rows` should end at `step` (the first warning's id and summary), or
    None: any warning of the checks that run during training (but `health.NO_RESTART`'s), up to the probe step;
    after it, up to the last token split (`split_until`, a step; 0: none), `STUCK` alone (`last_step`).

    An accuracy threshold at the probe step was considered and left out: on a hard task (DeepCoder's ID accuracy
    is 0.07-0.24 after a full run) it would abandon every healthy attempt.
    """
    if step > last_step(probe, split_until, drop_step(spec.training)):
        return None
    found = health.check_health(rows, total_steps=spec.training.steps, discrete=discrete, spec=spec,
                                stuck_until=split_until)
    for w in found:
        if w.id in health.NO_RESTART:
            continue
        if w.step <= probe or w.id == STUCK:
            return w.id, w.summary
    return None


def read_state(run: Path) -> RestartState:
    """The run's restart state (attempt 0 with no history when it has none yet).

    Raises:
        CheckpointError: the file is unreadable, not a restart record, or names an impossible attempt.
    """
    path = Path(run) / RESTARTS_FILE
    data = read_record(path, what="restart record", format=_FORMAT, version=_VERSION)
    if data is None:
        return RestartState()
    bad = invalid_record(path, "restart record")
    attempt, history = data.get("attempt"), data.get("history")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or not 0 <= attempt <= _MAX_RESTARTS \
            or not isinstance(history, list) or len(history) != attempt:
        raise bad
    out = []
    for k, h in enumerate(history):
        if not (isinstance(h, dict) and h.get("attempt") == k and isinstance(h.get("step"), int)
                and isinstance(h.get("reason"), str) and isinstance(h.get("summary"), str)):
            raise bad
        out.append(Restart(k, h["step"], h["reason"], h["summary"]))
    continues, restored = data.get("continues"), data.get("restored", False)
    if continues is not None and (not isinstance(continues, int) or isinstance(continues, bool)
                                  or not 0 <= continues < attempt or out[continues].reason != STUCK
                                  or out[-1].reason != CONTINUED) or not isinstance(restored, bool):
        raise bad
    return RestartState(attempt, tuple(out), continues, restored)


def write_state(run: Path, state: RestartState) -> None:
    """Write `restarts.json` atomically (before the attempt it names writes anything)."""
    data: dict[str, Any] = {"format": _FORMAT, "version": _VERSION, "attempt": state.attempt,
                            "history": [dataclasses.asdict(h) for h in state.history]}
    if state.continues is not None:  # absent otherwise: the files of runs that never continue stay as they were
        data["continues"], data["restored"] = state.continues, state.restored
    with writing("restart record", error=CheckpointError, then="then continue with `nlic train --resume`"):
        atomic_write(Path(run) / RESTARTS_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n")


def archive_attempt(run: Path, attempt: int, names: Sequence[str]) -> Path:
    """Move the attempt's files `names` (metrics, health record, checkpoint folder) under `attempts/<attempt>/`.

    Each move is a rename; a file already moved (a run killed half-way through archiving) is skipped, so archiving
    again is safe.
    """
    dest = Path(run) / ATTEMPTS_DIR / str(int(attempt))
    with writing("archive of an abandoned attempt", error=CheckpointError,
                 then="then continue with `nlic train --resume`"):
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            src = Path(run) / name
            if not src.exists():
                continue
            target = dest / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            src.rename(target)
    return dest


def continuation(run: Path, history: Sequence[Restart], than: float | None) -> tuple[int, float] | None:
    """The abandoned attempt to continue when the last one ends (module docstring), with its best selection score:
    of the attempts abandoned as stuck (`STUCK`) whose archive holds a checkpoint to resume, the one whose best point
    scored more than `than` (the last attempt's best; strictly: ties keep the last attempt), the highest score
    winning and the earliest among equals (`selection.best_abandoned`, the rule that picks kept weights). None: no
    such attempt, or `than` is None (no selection scores: nothing to compare).
    """
    if than is None:
        return None
    found = selection.best_abandoned(run, [h.attempt for h in history if h.reason == STUCK], than, resumable=True)
    return None if found is None else (found[0], float(found[1].accuracy))


def continued_note(state: RestartState) -> str | None:
    """The line that follows the verdict of a run that continued an abandoned attempt (None otherwise): the verdict
    judges that attempt, whose stuck warning names restarts as its fix, and they were tried."""
    if state.continues is None:
        return None
    k = state.continues
    later = len(state.history) - 1 - k
    after = "the attempt after it" if later == 1 else f"the {later} attempts after it"
    return (f"note: attempt {k + 1} (abandoned as stuck) was continued to the end: {after} ended below it "
            "(restarts.json, attempts/)")


def restore_attempt(run: Path, last: int, attempt: int, names: Sequence[str]) -> None:
    """Archive the last attempt's files `names` under `attempts/<last>/` and move the abandoned attempt `attempt`'s
    back into the run directory, where it trains on. Renames only, and safe to repeat: a run killed half-way
    through is finished by the next call (`nlic train --resume`)."""
    archive_attempt(run, last, names)
    source = Path(run) / ATTEMPTS_DIR / str(int(attempt))
    with writing("restore of an abandoned attempt", error=CheckpointError,
                 then="then continue with `nlic train --resume`"):
        for name in names:
            src, target = source / name, Path(run) / name
            if src.exists() and not target.exists():
                src.rename(target)
        if source.is_dir() and not any(source.iterdir()):
            source.rmdir()
