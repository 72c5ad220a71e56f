"""Training health: named warnings computed from a run's metrics rows, and the one-line verdict a run ends with.

Pure functions over the rows `nlic train` writes to `metrics.jsonl`; training calls them as it logs, prints each
warning once when it first fires, and keeps the warnings and the verdict in the run directory's `health.json`.

Every check is causal: whether and at which step it fires depends only on the rows up to that step, so a run
checked as it goes, checked once at its end, or killed and resumed with `--resume` gets the same warnings and
the same verdict. The verdict is the first warning a run did not outgrow: one about the way there (a collapse, a
plateau, a stuck language) that later ID evaluations left behind (`PARTIAL_ACCURACY` reached after it; for a stuck
language, a gain of `STALL_GAIN` over its best before the warning that solved `GREW_SHARE` of what was unsolved)
is reported as `healthy (recovered from ...)`;
a language that stalled is named before the stuck point on its way there (`_headline`).
Checks read the signals a row has and skip the ones it lacks, so each model kind gets the checks that apply to it:
the codebook checks need `tokens_in_use` / `codebook_perplexity` / `skip_fraction` (NLI, D-LPN), the others only the
loss and an accuracy.

The signals: in training rows `loss` (and `nll`), `grad_norm`, `tokens_in_use`, `codebook_perplexity`,
`skip_fraction`, `id_accuracy` (the NLI's discrete argmax program on each training task's query pair) or
`pair_accuracy` (the baselines' own prediction), `relaxed_accuracy` (the NLI's same programs run with soft value
states: its excess over `id_accuracy` is the relaxation gap), `skipped_updates` (`training.skip_spikes`: the updates
left out so far); in evaluation rows (`{"split": "id", "accuracy": ...}`, every
`training.eval_every` steps) the accuracy of the discrete programs found without search.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nlic.compiler.optim import drop_step
from nlic.grammar.errors import CheckpointError, Loc
from nlic.grammar.reading import MAX_HEADER_BYTES, loads_json, read_text

__all__ = [
    "HEALTH_FORMAT",
    "HEALTH_VERSION",
    "COLLAPSE_TOKENS",
    "COLLAPSE_PERPLEXITY",
    "COLLAPSE_PATIENCE",
    "ALL_SKIP_FRACTION",
    "ALL_SKIP_PATIENCE",
    "SOLVED_ACCURACY",
    "ZERO_ACCURACY",
    "PLATEAU_WINDOW",
    "PLATEAU_MIN_ROWS",
    "PLATEAU_IMPROVEMENT",
    "ACCURACY_DROP",
    "RELAXATION_GAP",
    "RELAXATION_GAP_PATIENCE",
    "FINAL_ID_ACCURACY",
    "ID_SPLIT",
    "CHECK_IDS",
    "UNRECOVERABLE",
    "NO_RESTART",
    "UNSTABLE_DROP",
    "UNSTABLE_DROP_SHARE",
    "SPIKE_FACTOR",
    "HealthWarning",
    "Verdict",
    "check_health",
    "verdict_of",
    "health_record",
    "signal_text",
    "read_health",
]

HEALTH_FORMAT = "nlic-health"
HEALTH_VERSION = 1

# --- thresholds -----------------------------------------------------------------------------------------------
# Chosen so that the shipped healthy run (specs/shift_l.yaml, seed 0: 1 token, all slots skip at step 50, then 2
# tokens, perplexity about 1.5, loss flat at 2.3-2.4 and no task solved until step 350 of 3000) raises none,
# while a codebook driven to one token (relaxation.reg_weight 1.0) raises `codebook-collapse`.

COLLAPSE_TOKENS = 1
"""`codebook-collapse`: at most this many distinct argmax tokens in the batch's program slots..."""
COLLAPSE_PERPLEXITY = 1.15
"""...or a usage perplexity at most this (one token in about 98% of the slots; Shift-L's lowest after step 50:
1.57)..."""
COLLAPSE_PATIENCE = 3
"""...in this many logged rows in a row (a fresh inductor writes one token everywhere for its first steps)."""
ALL_SKIP_FRACTION = 0.99
"""`all-skip`: at least this fraction of the program slots at the skip token..."""
ALL_SKIP_PATIENCE = 3
"""...in this many logged rows in a row (Shift-L starts all-skip, for one row)."""
SOLVED_ACCURACY = 0.5
"""A degenerate codebook (one token, all skip) that still solves this fraction of the tasks is not reported."""
ZERO_ACCURACY = 0.1
"""`plateau-no-discrete`: an accuracy below this counts as none (1 of a 16-task batch solved by chance is 0.06)."""
PLATEAU_WINDOW = 0.2
"""`plateau-no-discrete`: the window is this fraction of the run's steps (Shift-L's initial plateau is 0.1)..."""
PLATEAU_MIN_ROWS = 4
"""...or the last this many logged rows if the window holds fewer (a short run that logs rarely)..."""
PLATEAU_IMPROVEMENT = 0.05
"""...in which the best loss of its second half improved on its first half's by less than this fraction."""
ACCURACY_DROP = 0.5
"""`id-accuracy-drop`: the ID evaluation accuracy fell this far below the best it had reached."""
RELAXATION_GAP = 0.3
"""`relaxation-gap`: the training batch's argmax programs solve at least this much more of the tasks when run with
soft value states (`relaxed_accuracy`) than run discretely (`id_accuracy`)..."""
RELAXATION_GAP_PATIENCE = 3
"""...in this many logged rows in a row (Comp-I seed 1: 0.9 against 0.0 at once; a healthy run's gap is 0)."""
FINAL_ID_ACCURACY = 0.1
"""`id-accuracy-low-at-end`: a finished run whose last ID accuracy is below this (Comp-I seed 1 ends at 0.06)."""
PARTIAL_ACCURACY = 0.9
"""`id-accuracy-stalled`: a finished run whose last ID accuracy is below this (and at least `FINAL_ID_ACCURACY`)..."""
STALL_GAIN = 0.05
"""...and whose best ID accuracy over the second half of the run beat the first half's best by less than this
(Comp-I seed 2 with the defaults: 0.30, 0.54, 0.55, 0.54, 0.54, 0.54 at steps 500-3000)..."""
STALL_MIN_EVALS = 4
"""...over at least this many ID evaluations (fewer say nothing about a trend)."""
STUCK_MIN_EVALS = 3
"""`id-accuracy-stuck`: in the first half of a run (or up to its last token split, where that is later:
`check_health`'s `stuck_until`), an ID evaluation (the third or a later one) that gained under
`STALL_GAIN` on every evaluation before it, at an accuracy between `ZERO_ACCURACY` and `PARTIAL_ACCURACY` (Comp-I
seed 4 with token splitting: 0.15, 0.48, 0.49 at steps 500-1500, then 0.49 to the end; a healthy Comp-I run gains
at every point until it solves the tasks: 0.16, 0.65, 0.91, 1.00)."""
GREW_SHARE = 1.0 / 3.0
"""The share of the tasks unsolved at a stuck warning's best that a language must go on to solve to have outgrown
the warning (`_grew_past`): grid1d id seed 0 went 0.64 -> 0.80-0.83 (0.44-0.53 of the unsolved), Comp-I seed 12
0.33 -> 0.50 (0.25)."""
UNSTABLE_DROP = 0.1
"""`training-unstable`: an ID evaluation at least this far below the best before it (and at least
`UNSTABLE_DROP_SHARE` of that best)..."""
UNSTABLE_DROP_SHARE = 1 / 3
"""...(grid1d id suite, seed 0: 0.46 at step 2000, 0.37, then 0.12 at step 3000)..."""
SPIKE_FACTOR = 3.0
"""...with a training row since that best whose loss (`nll`, else `loss`) is at least this many times the median
of the rows logged between the evaluation before the best and the best (that run, logging every 50 steps: a median
of 0.21 before, 1.03 at step 2550). On 91 recorded runs and attempts it fired only on the 14 whose ID fell after a
loss spike (benchmarks/README.md, "Late falls with a loss spike")."""
ID_SPLIT = "id"
"""The evaluation split whose accuracy is the in-distribution one."""

_ORDER = ("nan-loss", "codebook-collapse", "all-skip", "relaxation-gap", "plateau-no-discrete",
          "plateau-zero-accuracy", "id-accuracy-drop", "training-unstable", "id-accuracy-stuck",
          "id-accuracy-low-at-end", "id-accuracy-stalled")
CHECK_IDS: tuple[str, ...] = _ORDER
"""Every warning id, in the order warnings of the same step are reported."""
UNRECOVERABLE = frozenset({"nan-loss", "id-accuracy-low-at-end", "id-accuracy-stalled"})
"""Warnings that stay a finished run's verdict whatever its later accuracy (a non-finite loss; the end-of-run
checks, which judge the end itself)."""
NO_RESTART = frozenset({"training-unstable"})
"""Warnings that never restart an attempt (`nlic.runtime.recovery`): a fresh start does not make the updates
smaller, and the best weights before it are kept (`training.keep: best`)."""


@dataclasses.dataclass(frozen=True)
class HealthWarning:
    """One named warning.

    Attributes:
        id: the stable id (one of `CHECK_IDS`).
        step: the step it fired at (the first at which its condition held).
        summary: what was seen, with its numbers (`1 of 8 tokens in use, perplexity 1.00`).
        evidence: the numbers behind `summary`, by name.
        cause: the likely cause.
        fix: what to change: spec fields and values to try.
    """

    id: str
    step: int
    summary: str
    evidence: Mapping[str, Any] = dataclasses.field(hash=False)
    cause: str
    fix: str

    def text(self) -> str:
        """Two lines for the terminal: what fired and where, then cause and fix."""
        return f"health warning: {self.id} at step {self.step}: {self.summary}\n  likely cause: {self.cause}; " \
               f"try: {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "step": self.step, "summary": self.summary, "evidence": dict(self.evidence),
                "cause": self.cause, "fix": self.fix}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The end of a run's health report.

    Attributes:
        status: `healthy`, `unhealthy` (some check fired) or `unchecked` (no training step was logged).
        warnings: every warning that fired, by step.
    """

    status: str
    warnings: tuple[HealthWarning, ...] = ()
    recovered: tuple[HealthWarning, ...] = ()
    recovery: str = ""
    after_kept: tuple[HealthWarning, ...] = ()
    kept: str = ""

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    @property
    def failed(self) -> str | None:
        """The id of the first check that failed (None when healthy)."""
        return self.warnings[0].id if self.warnings else None

    def line(self) -> str:
        """`verdict: healthy`, or the first failed check with its step, evidence and fix (and the others' ids).

        A healthy run whose early warnings it outgrew says so: `verdict: healthy (recovered from
        id-accuracy-stuck at step 1500: ID accuracy 1.00 at step 2500)`."""
        if not self.warnings:
            if self.status == "unchecked":
                return "verdict: unchecked (no training step was logged)"
            notes = []
            if self.recovered:
                what = ", ".join(f"{w.id} at step {w.step}" for w in self.recovered)
                notes.append(f"recovered from {what}: {self.recovery}")
            if self.after_kept:
                what = ", ".join(f"{w.id} at step {w.step}" for w in self.after_kept)
                notes.append(f"{self.kept}; training then went on to {what}")
            return "verdict: healthy" + (f" ({'; '.join(notes)})" if notes else "")
        w = self.warnings[0]
        rest = sorted({x.id for x in self.warnings[1:]} - {w.id})
        more = f" (also: {', '.join(rest)})" if rest else ""
        return f"verdict: {w.id} (step {w.step}: {w.summary}): try {w.fix}{more}"


# --- the history ----------------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """A row's value as a float; None when missing or not a number (JSON null: a non-finite value)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclasses.dataclass(frozen=True)
class _History:
    train: tuple[Mapping[str, Any], ...]  # training rows (a `loss` key), by step
    evals: tuple[tuple[int, float], ...]  # (step, accuracy) of the ID evaluation rows, by step
    total: int
    discrete: bool
    spec: Any
    stuck_until: float  # the last step at which `id-accuracy-stuck` may fire

    def accuracy(self, row: Mapping[str, Any]) -> float | None:
        """The in-distribution accuracy a training row carries: of discrete programs, or the kind's own."""
        acc = _num(row.get("id_accuracy"))
        if acc is None and not self.discrete:
            acc = _num(row.get("pair_accuracy"))
        return acc

    def accuracy_at(self, row: Mapping[str, Any]) -> float | None:
        """`accuracy(row)`, else that of the last ID evaluation up to the row's step (D-LPN's training rows carry
        no discrete accuracy)."""
        acc = self.accuracy(row)
        if acc is None:
            before = [a for s, a in self.evals if s <= row["step"]]
            acc = before[-1] if before else None
        return acc

    def evals_in(self, lo: int, hi: int) -> list[float]:
        """ID evaluation accuracies at steps in (lo, hi]."""
        return [a for s, a in self.evals if lo < s <= hi]


def _history(rows: Sequence[Mapping[str, Any]], total: int, discrete: bool, spec: Any,
             stuck_until: int = 0) -> _History:
    train = [r for r in rows if "split" not in r and "loss" in r and isinstance(r.get("step"), int)]
    evals = [(r["step"], float(r["accuracy"])) for r in rows
             if r.get("split") == ID_SPLIT and isinstance(r.get("step"), int) and _num(r.get("accuracy")) is not None]
    train.sort(key=lambda r: r["step"])
    evals.sort(key=lambda e: e[0])
    total = max(int(total), 1)
    return _History(tuple(train), tuple(evals), total, discrete, spec,
                    max(total / 2, stuck_until))


# --- fix hints ------------------------------------------------------------------------------------------------


def _field(spec: Any, path: str) -> Any:
    obj = spec
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _now(spec: Any, path: str) -> str:
    value = _field(spec, path)
    return "" if value is None else f" (now {value})"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _slower(spec: Any) -> str:
    """A slower anneal of the inductor temperature than the spec's: the start doubled, as a restart does
    (`nlic.runtime.recovery.attempt_spec`)."""
    s = _field(spec, "relaxation.tau_inductor")
    if s is None or not hasattr(s, "kind"):
        return "anneal relaxation.tau_inductor more slowly (a higher start and end temperature)"
    if s.kind == "const":
        return f"a higher relaxation.tau_inductor (now {s}; e.g. const({_fmt(2 * s.start)}))"
    return f"anneal relaxation.tau_inductor more slowly (now {s}; e.g. {s.kind}({_fmt(2 * s.start)} -> " \
           f"{_fmt(s.end)}))"


def _lr(spec: Any, factor: float, word: str) -> str:
    s = _field(spec, "training.lr")
    if s is None or not hasattr(s, "start"):
        return f"{word} training.lr"
    return f"{word} training.lr (now {s}; e.g. {_fmt(s.start * factor)})"


# --- the checks -----------------------------------------------------------------------------------------------
# Each check returns its first firing at a step > `since` (None if it does not fire there), looking only at rows
# up to the step it fires at.


def _runs(h: _History, since: int, patience: int, bad: Callable[[Mapping[str, Any]], bool]) -> int | None:
    """Index of the first training row after `since` that ends `patience` consecutive rows where `bad` holds."""
    streak = 0
    for i, row in enumerate(h.train):
        streak = streak + 1 if bad(row) else 0
        if streak >= patience and row["step"] > since:
            return i
    return None


def _loss(row: Mapping[str, Any]) -> float | None:
    """A training row's loss (`nll`, else `loss`); None when missing or not finite."""
    x = _num(row.get("nll", row.get("loss")))
    return x if x is not None and math.isfinite(x) else None


def _unsolved(h: _History, row: Mapping[str, Any]) -> bool:
    acc = h.accuracy_at(row)
    return acc is None or acc < SOLVED_ACCURACY


def _check_nan(h: _History, since: int) -> HealthWarning | None:
    for row in h.train:
        if row["step"] <= since:
            continue
        bad = [k for k in ("loss", "nll", "grad_norm") if k in row and
               (_num(row[k]) is None or not math.isfinite(float(row[k])))]
        if bad:
            clip = _field(h.spec, "training.clip")
            if clip == 0:
                fix = _lr(h.spec, 1 / 3, "lower") + "; set training.clip to 1.0 (now 0: no clipping)"
            else:
                fix = _lr(h.spec, 1 / 3, "lower") + "; a smaller training.clip" + _now(h.spec, "training.clip")
            return HealthWarning(
                "nan-loss", row["step"], f"{', '.join(bad)} not finite",
                {"keys": bad, "loss": _num(row.get("loss"))},
                "training diverged (an update too large for the model: learning rate or gradient scale)", fix)
    return None


def _is_all_skip(h: _History, row: Mapping[str, Any]) -> bool:
    skip = _num(row.get("skip_fraction"))
    return skip is not None and skip >= ALL_SKIP_FRACTION and _unsolved(h, row)


def _check_all_skip(h: _History, since: int) -> HealthWarning | None:
    i = _runs(h, since, ALL_SKIP_PATIENCE, lambda r: _is_all_skip(h, r))
    if i is None:
        return None
    row = h.train[i]
    skip = float(row["skip_fraction"])
    routing = _field(h.spec, "model.executor.routing")
    fix = _slower(h.spec)
    if routing is False:
        fix += "; model.executor.routing: true (now false), so that one token can move data"
    reg = _field(h.spec, "relaxation.reg_weight")
    if isinstance(reg, (int, float)) and reg > 0:
        fix += f"; relaxation.reg_weight 0 (now {reg})"
    if _field(h.spec, "relaxation.skip_from") == 0:
        fix += ("; where most of each output is its input (sparse grids), relaxation.skip_from: 0.15 (now 0), so "
                "that tokens learn an effect before skip is allowed")
    return HealthWarning(
        "all-skip", row["step"], f"{skip:.0%} of the program slots are skip, for {ALL_SKIP_PATIENCE} logged steps",
        {"skip_fraction": skip, "rows": ALL_SKIP_PATIENCE, "accuracy": h.accuracy_at(row)},
        "every program is empty (the identity): the interpreter is never used, copying the input is all the model "
        "found (no token's effect has paid off yet, or exploration stopped too early)", fix)


def _is_collapsed(h: _History, row: Mapping[str, Any]) -> bool:
    tokens, ppl = _num(row.get("tokens_in_use")), _num(row.get("codebook_perplexity"))
    if tokens is None and ppl is None:
        return False
    few = (tokens is not None and tokens <= COLLAPSE_TOKENS) or (ppl is not None and ppl <= COLLAPSE_PERPLEXITY)
    return few and _unsolved(h, row)


def _check_collapse(h: _History, since: int) -> HealthWarning | None:
    i = _runs(h, since, COLLAPSE_PATIENCE, lambda r: _is_collapsed(h, r))
    if i is None:
        return None
    row = h.train[i]
    tokens, ppl = _num(row.get("tokens_in_use")), _num(row.get("codebook_perplexity"))
    vocab = _field(h.spec, "language.vocab")
    parts = []
    if tokens is not None:
        n = int(tokens)
        parts.append(f"{n} token{'' if n == 1 else 's'} in use" if vocab is None else f"{n} of {vocab} tokens in use")
    if ppl is not None:
        parts.append(f"perplexity {ppl:.2f}")
    skip = _num(row.get("skip_fraction"))
    if skip is not None and skip >= ALL_SKIP_FRACTION:
        parts.append("all skip")
    reg = _field(h.spec, "relaxation.reg_weight")
    fixes = [f"relaxation.reg_weight 0 (now {reg})"] if isinstance(reg, (int, float)) and reg > 0 else []
    fixes.append(_slower(h.spec))
    fixes.append("a larger language.vocab" + _now(h.spec, "language.vocab"))
    if _field(h.spec, "model.inductor.offsets") is False:
        fixes.append("where tasks move objects on sparse rows or grids, model.inductor.offsets: true (now false), so "
                     "the inductor sees a move wherever the object sits")
    return HealthWarning(
        "codebook-collapse", row["step"], ", ".join(parts),
        {"tokens_in_use": tokens, "codebook_perplexity": ppl, "skip_fraction": skip, "rows": COLLAPSE_PATIENCE,
         "accuracy": h.accuracy_at(row)},
        "the inductor writes the same token in (almost) every slot of every task, so programs carry nothing about "
        "the task (a token-count regulariser, or a temperature annealed before the codebook spread out)",
        "; ".join(fixes))


def _gap(row: Mapping[str, Any]) -> float | None:
    relaxed, discrete = _num(row.get("relaxed_accuracy")), _num(row.get("id_accuracy"))
    if relaxed is None or discrete is None or discrete >= SOLVED_ACCURACY:
        return None
    return relaxed - discrete


def _check_relaxation_gap(h: _History, since: int) -> HealthWarning | None:
    i = _runs(h, since, RELAXATION_GAP_PATIENCE, lambda r: (_gap(r) or 0.0) >= RELAXATION_GAP)
    if i is None:
        return None
    row = h.train[i]
    relaxed, discrete = float(row["relaxed_accuracy"]), float(row["id_accuracy"])
    hard = _field(h.spec, "relaxation.hard_states")
    fix = "relaxation.hard_states: true (now false)" if hard is False else "relaxation.hard_states: true"
    return HealthWarning(
        "relaxation-gap", row["step"],
        f"the batch's programs solve {relaxed:.2f} with soft value states but {discrete:.2f} run discretely, "
        f"for {RELAXATION_GAP_PATIENCE} logged steps",
        {"relaxed_accuracy": relaxed, "id_accuracy": discrete, "rows": RELAXATION_GAP_PATIENCE},
        "the interpreter passes information from one token to the next through value states that are not "
        "one-hot (mass off the argmax), which the discrete program, one value per position, loses",
        fix + "; then " + _slower(h.spec))


def _check_plateau(h: _History, since: int) -> HealthWarning | None:
    window = max(PLATEAU_WINDOW * h.total, 1.0)
    for i, row in enumerate(h.train):
        s = row["step"]
        if s <= since or s < window:
            continue
        rows = [r for r in h.train[: i + 1] if r["step"] > s - window]
        if len(rows) < PLATEAU_MIN_ROWS:  # a short run logging rarely: the last rows, however many steps they span
            rows = list(h.train[max(i + 1 - PLATEAU_MIN_ROWS, 0): i + 1])
        losses = [_loss(r) for r in rows]
        if len(rows) < PLATEAU_MIN_ROWS or any(x is None for x in losses):
            continue
        accs = [a for a in (h.accuracy(r) for r in rows) if a is not None] + h.evals_in(int(s - window), s)
        if not accs or max(accs) >= ZERO_ACCURACY:
            continue
        half = len(losses) // 2
        first, second = min(losses[:half]), min(losses[half:])  # type: ignore[type-var]
        gain = (first - second) / max(abs(first), 1e-8)
        if gain >= PLATEAU_IMPROVEMENT:
            continue
        evidence = {"from_step": rows[0]["step"], "loss_first_half": first, "loss_second_half": second,
                    "improvement": gain, "max_accuracy": max(accs)}
        summary = (f"loss {first:.4g} -> {second:.4g} ({-gain:+.1%}) over steps {rows[0]['step']}-{s}, "
                   f"accuracy at most {max(accs):.2f}")
        steps = _field(h.spec, "training.steps")
        if h.discrete:
            return HealthWarning(
                "plateau-no-discrete", s, summary, evidence,
                "the loss stopped improving while no discrete program solves a task: the relaxed programs the loss "
                "rewards are not ones the discrete interpreter runs (a temperature annealed too fast), or the "
                "optimiser is stuck",
                f"{_slower(h.spec)}; {_lr(h.spec, 3.0, 'raise')}; more training.steps"
                + ("" if steps is None else f" (now {steps})"))
        return HealthWarning(
            "plateau-zero-accuracy", s, summary, evidence,
            "the loss stopped improving while no task is solved: the model is not learning the task family",
            f"{_lr(h.spec, 3.0, 'raise')} (or lower it if the loss is noisy); a wider model.executor.width"
            + _now(h.spec, "model.executor.width") + "; more training.steps"
            + ("" if steps is None else f" (now {steps})"))
    return None


def _check_drop(h: _History, since: int) -> HealthWarning | None:
    best = -1.0
    best_step = 0
    for s, acc in h.evals:
        if s > since and best - acc >= ACCURACY_DROP:
            return HealthWarning(
                "id-accuracy-drop", s, f"ID accuracy fell from {best:.2f} (step {best_step}) to {acc:.2f}"
                + ("; the run keeps its best weights (training.keep: best)"
                   if _field(h.spec, "training.keep") == "best" and (_field(h.spec, "training.eval_every") or 0) > 0
                   else ""),
                {"best": best, "best_step": best_step, "accuracy": acc},
                "training became unstable after the language worked (updates too large late in training)",
                f"{_drop(h.spec, best_step)}; {_lr(h.spec, 1 / 3, 'lower')}, or decay it (e.g. lr: cosine(... -> 0)); "
                "a smaller training.clip" + _now(h.spec, "training.clip"))
        if acc > best:
            best, best_step = acc, s
    return None


def _drop(spec: Any, best_step: int | None = None) -> str:
    """The `training.lr_drop_at` advice: set it, or, where it is set, drop earlier or further. `best_step`: the best
    evaluation before the fall; where the drop came after it, the fraction that drops at it is named (grid1d id,
    seed 1, measured: best at step 2500, a loss spike at 2750, the drop at 3000 too late; replayed from step 2500 at
    the dropped rate, it held ID 0.76-0.80 to step 4000)."""
    at, drop = _field(spec, "training.lr_drop_at"), _field(spec, "training.lr_drop")
    now_step = drop_step(spec.training) if at else None
    if now_step is not None and best_step and now_step > best_step:
        earlier = math.floor(100 * best_step / int(spec.training.steps)) / 100
        if earlier > 0:
            at_best = drop_step(dataclasses.replace(spec.training, lr_drop_at=earlier))
            return (f"training.lr_drop_at: {earlier:g} (now {at}: the drop at step {now_step} came after the fall; "
                    f"{earlier:g} drops at step {at_best}, by the best evaluation, step {best_step})")
    if at:
        return (f"drop the learning rate earlier or further (training.lr_drop_at now {at}, training.lr_drop now "
                f"{drop})")
    now = "" if at is None else " (now 0: never)"
    return (f"training.lr_drop_at: 0.5{now}: the second half of the run at a quarter of the learning rate, the first "
            "half unchanged")


def _rollback(spec: Any) -> str:
    """The `training.rollback` advice (`nlic.runtime.rollback`): go back to the best point at the fall."""
    n = _field(spec, "training.rollback")
    if n is None:
        return ""
    if n:
        return f"; more training.rollback (now {n}: each fall after a spike goes back once)"
    return ("; training.rollback: 1 (now 0): at such a fall the run goes back to its best point and trains on at "
            "training.lr_drop times the rate (it needs training.keep: best)")


def _unstable_fix(spec: Any, best_step: int | None = None) -> str:
    return (f"{_drop(spec, best_step)}{_rollback(spec)}; a learning rate that decays over the run "
            f"(training.lr{_now(spec, 'training.lr')}; "
            "e.g. cosine(0.002 -> 0.0002)); a smaller training.clip" + _now(spec, "training.clip")
            + "; training.skip_spikes" + _now(spec, "training.skip_spikes") + " leaves such steps out, but is experimental: it held some grid1d "
            "runs and made another diverge (benchmarks/README.md)")


def _check_unstable(h: _History, since: int) -> HealthWarning | None:
    best, best_step, base_from = -1.0, 0, -1
    for k, (s, acc) in enumerate(h.evals):
        drop = best - acc
        if s > since and best > 0 and drop >= max(UNSTABLE_DROP, UNSTABLE_DROP_SHARE * best):
            base = [x for x in (_loss(r) for r in h.train if base_from < r["step"] <= best_step) if x is not None]
            spikes = [(r["step"], _loss(r)) for r in h.train if best_step < r["step"] <= s]
            if base:
                median = sorted(base)[len(base) // 2]
                high = [(st, x) for st, x in spikes if x is not None and x >= SPIKE_FACTOR * max(median, 1e-8)]
                if high:
                    first, peak = high[0], max(high, key=lambda e: e[1])
                    norms = [g for g in (_num(r.get("grad_norm")) for r in h.train if best_step < r["step"] <= s)
                             if g is not None]
                    evidence = {"best": best, "best_step": best_step, "accuracy": acc, "loss_median": median,
                                "first_spike_step": first[0], "peak_loss": peak[1], "peak_step": peak[0],
                                "spikes": len(high), "max_grad_norm": max(norms) if norms else None}
                    keep = _field(h.spec, "training.keep") == "best" and (_field(h.spec, "training.eval_every") or 0) > 0
                    return HealthWarning(
                        "training-unstable", s,
                        f"ID accuracy fell from {best:.2f} (step {best_step}) to {acc:.2f} as the loss spiked: "
                        f"{peak[1]:.3g} at step {peak[0]} against a median of {median:.3g} before "
                        f"({len(high)} logged row{'s' * (len(high) > 1)} above {SPIKE_FACTOR:g}x, the first at step "
                        f"{first[0]})" + ("; the run keeps its best weights (training.keep: best)" if keep else ""),
                        evidence,
                        "rare updates far off course: late in training a few draws of the relaxation's noise give "
                        "gradients hundreds of times the usual (grid1d: up to 5,000 against a median of 1.5), and "
                        "each such step, clipped but in its own direction, throws the model off what it had learned",
                        _unstable_fix(h.spec, best_step))
        if acc > best:
            best, best_step = acc, s
            base_from = h.evals[k - 1][0] if k > 0 else -1
    return None


def _check_final(h: _History, since: int) -> HealthWarning | None:
    if not h.train:
        return None
    last = h.train[-1]
    step = max(int(last["step"]), h.evals[-1][0] if h.evals else 0)
    if step <= since:
        return None
    if h.evals:
        acc, where = h.evals[-1][1], "at the last evaluation"
    else:
        acc, where = h.accuracy(last), "on the last training batch"
    if acc is None or acc >= FINAL_ID_ACCURACY:
        return None
    steps = _field(h.spec, "training.steps")
    return HealthWarning(
        "id-accuracy-low-at-end", step, f"ID accuracy {acc:.2f} {where}",
        {"accuracy": acc, "source": "evaluation" if h.evals else "training batch"},
        "the trained model solves (almost) no in-distribution task"
        + (" with its discrete programs: a broken language" if h.discrete else ""),
        "more training.steps" + ("" if steps is None else f" (now {steps})")
        + "; another seed (some languages fail at some seeds); see the other warnings for the cause")


def _check_stalled(h: _History, since: int) -> HealthWarning | None:
    if len(h.evals) < STALL_MIN_EVALS or not h.train:
        return None
    step = max(int(h.train[-1]["step"]), h.evals[-1][0])
    acc = h.evals[-1][1]
    if step <= since or not FINAL_ID_ACCURACY <= acc < PARTIAL_ACCURACY:
        return None
    half = max(step, h.total) / 2
    first = [a for s, a in h.evals if s <= half]
    second = [a for s, a in h.evals if s > half]
    if not first or not second or max(second) - max(first) >= STALL_GAIN or max(first) >= PARTIAL_ACCURACY:
        return None  # gaining, or a language that had formed (a fall from there is a drop, not a stall)
    unstable = _check_unstable(h, int(half))
    if unstable is not None:
        return None  # the second half fell with a loss spike: `training-unstable` names that cause
    evidence = {"accuracy": acc, "best_first_half": max(first), "best_second_half": max(second),
                "half_step": int(half)}
    summary = (f"ID accuracy {acc:.2f} at the end: at most {max(second):.2f} after step {int(half)} against "
               f"{max(first):.2f} before (the second half of training gained under {STALL_GAIN})")
    if h.discrete:
        return HealthWarning(
            "id-accuracy-stalled", step, summary, evidence,
            "training settled on a language that covers only part of the tasks: the programs it induces solve "
            "some of them, and no token does what the rest need (often two operations share one token; "
            "`nlic inspect RUN` shows what each token does)",
            f"a later training.split_until{_now(h.spec, 'training.split_until')} (token splitting gives "
            f"operations that share a token tokens of their own; 0 turns it off); {_slower(h.spec)}; more "
            f"language.vocab{_now(h.spec, 'language.vocab')}; a wider model.executor.width"
            f"{_now(h.spec, 'model.executor.width')}; another seed")
    steps = _field(h.spec, "training.steps")
    return HealthWarning(
        "id-accuracy-stalled", step, summary, evidence,
        "the model stopped improving over the second half of training with tasks still unsolved",
        f"a larger model; {_lr(h.spec, 1 / 3, 'lower')}; more training.steps"
        + ("" if steps is None else f" (now {steps})"))


def _check_stuck(h: _History, since: int) -> HealthWarning | None:
    if not h.discrete:
        return None
    for k in range(STUCK_MIN_EVALS - 1, len(h.evals)):
        s, acc = h.evals[k]
        if s <= since or s > h.stuck_until:
            continue
        before = max(a for _, a in h.evals[:k])
        if not ZERO_ACCURACY <= acc < PARTIAL_ACCURACY or acc - before >= STALL_GAIN:
            continue
        prev = h.evals[k - 1][0]
        return HealthWarning(
            "id-accuracy-stuck", s,
            f"ID accuracy {acc:.2f} at step {s}, {before:.2f} at best before (no gain of {STALL_GAIN} since step "
            f"{prev}), with {1 - acc:.2f} of the tasks unsolved",
            {"accuracy": acc, "best_before": before, "since_step": prev},
            "the language covers part of the tasks and stopped growing early: no token does what the rest need, and "
            "token splitting did not give them one (often several operations share one token while the inductor's "
            "features do not yet tell them apart)",
            f"more training.restarts{_now(h.spec, 'training.restarts')} (each restarts from a derived seed annealed "
            f"from twice the start; Comp-I seed 5 was solved by its fourth attempt); another seed; {_slower(h.spec)}; "
            f"more language.vocab{_now(h.spec, 'language.vocab')}")
    return None


# (check, whether it runs only on a finished run); a check may return one of several ids (the plateau's depends
# on the kind).
_CHECKS: tuple[tuple[Callable[[_History, int], HealthWarning | None], bool], ...] = (
    (_check_nan, False),
    (_check_collapse, False),
    (_check_all_skip, False),
    (_check_relaxation_gap, False),
    (_check_plateau, False),
    (_check_drop, False),
    (_check_unstable, False),
    (_check_stuck, False),
    (_check_final, True),
    (_check_stalled, True),
)


def check_health(
    rows: Sequence[Mapping[str, Any]],
    *,
    total_steps: int,
    discrete: bool = True,
    spec: Any = None,
    final: bool = False,
    since: int = -1,
    stuck_until: int = 0,
) -> list[HealthWarning]:
    """The warnings `rows` raise, each at the first step its condition held, ordered by step.

    Args:
        rows: metrics rows (training and evaluation rows, as `metrics.jsonl` holds them; other rows are ignored).
        total_steps: the run's `training.steps` (plateau windows are a fraction of it).
        discrete: whether the kind's accuracy is that of discrete programs (NLI, D-LPN; their training rows'
            `pair_accuracy` is not, so it is not read).
        spec: the run's spec, to name current values in the fixes (None: fields named without values).
        final: the run has finished: also the end-of-run checks.
        since: report only firings at steps after this one (rows before it are still read): what a caller that
            checked up to `since` already knows is not recomputed.
        stuck_until: the last step at which `id-accuracy-stuck` may fire, where later than half the run: the last
            token split (`training.split_until`), the in-run remedy for a stuck language, so that a language still
            stuck after it is seen while a restart can still act (`nlic.runtime.recovery`). 0: half the run.

    Returns:
        At most one warning per id: its first firing after `since`.
    """
    h = _history(rows, total_steps, discrete, spec, stuck_until)
    found = []
    for check, at_end in _CHECKS:
        if at_end and not final:
            continue
        w = check(h, since)
        if w is not None:
            found.append(w)
    found.sort(key=lambda w: (w.step, _ORDER.index(w.id)))
    return found


def verdict_of(rows: Sequence[Mapping[str, Any]], warnings: Sequence[HealthWarning], *, spec: Any = None,
               kept_step: int | None = None) -> Verdict:
    """The verdict of a finished run from its rows and the warnings `check_health(..., final=True)` gave.

    A warning about the way there (every check but `UNRECOVERABLE`) that the run outgrew is not its verdict: when
    an ID evaluation after the warning's step reached `PARTIAL_ACCURACY` (the last one; with `training.keep: best`,
    the one whose weights the run keeps: `kept_step`'s, else the best), the run is healthy, recovered from it.
    (Comp-I seed 5 with `model.inductor.offsets`: ID 0.17 at steps 500-1500, `id-accuracy-stuck`, then 0.51 and
    1.00 at 2000-2500.)
    So is an `id-accuracy-stuck` whose claim, a language that stopped growing, that evaluation refutes: it gained
    `STALL_GAIN` over the best before the warning (`_grew_past`); the line names the accuracy reached.

    `kept_step`: the step of this attempt whose weights a `training.keep: best` run keeps (None: another attempt's,
    or unknown). Where its ID evaluation reached `PARTIAL_ACCURACY`, warnings that fired after it (the end-of-run
    checks included) judge training the run did not keep: the run is healthy, and the line names them (Shift-P
    seed 1 on an AMD EPYC: ID 1.00 at steps 1000-2500, step 2500 kept, then `codebook-collapse` at step 2850 and
    ID 0.00 at 3000).
    """
    ordered = tuple(sorted(warnings, key=lambda w: (w.step, _ORDER.index(w.id))))
    evals = _history(rows, 1, True, spec).evals
    keep_best = _field(spec, "training.keep") == "best"
    after_kept: tuple[HealthWarning, ...] = ()
    kept = ""
    at_kept = [a for s, a in evals if s == kept_step]
    if keep_best and at_kept and at_kept[-1] >= PARTIAL_ACCURACY:
        # The weights the run keeps came before these warnings: what training did after them is not the run's.
        after_kept = tuple(w for w in ordered if w.step > kept_step)
        ordered = tuple(w for w in ordered if w.step <= kept_step)
        kept = f"the weights of step {kept_step} kept, at ID accuracy {at_kept[-1]:.2f}"
    failed, recovered, recovery = [], [], ""
    for w in ordered:
        after = [(s, a) for s, a in evals if s > w.step]
        if w.id in UNRECOVERABLE or not after:
            failed.append(w)
            continue
        # The evaluation whose weights the run keeps: the last; with keep: best, the kept step where known, else the
        # best after the warning.
        kept_eval = [e for e in after if e[0] == kept_step]
        if not keep_best:
            s, a = after[-1]
        elif kept_eval:
            s, a = kept_eval[-1]
        else:
            s, a = max(after, key=lambda e: (e[1], -e[0]))
        if a < PARTIAL_ACCURACY and not _grew_past(w, a, max(e[1] for e in after)):
            failed.append(w)
            continue
        recovered.append(w)
        recovery = f"ID accuracy {a:.2f} at step {s}"
    if failed:
        return Verdict("unhealthy", _headline(failed))
    if not any("split" not in r and "loss" in r for r in rows):
        return Verdict("unchecked")
    return Verdict("healthy", recovered=tuple(recovered), recovery=recovery, after_kept=after_kept, kept=kept)


def _headline(failed: Sequence[HealthWarning]) -> tuple[HealthWarning, ...]:
    """The failed checks in the order the verdict names them: by step, except that `id-accuracy-stalled`, which
    describes where the run ended, comes before an `id-accuracy-stuck` it follows. The stuck point is then one
    evaluation on the way to the stall (grid1d id seed 3: stuck at step 2500 on a one-point fall from 0.70 to 0.55,
    then 0.70-0.73 to step 6000, stalled): its numbers are not the run's result, the stall's are."""
    ids = [w.id for w in failed]
    if "id-accuracy-stalled" not in ids or "id-accuracy-stuck" not in ids:
        return tuple(failed)
    stalled = failed[ids.index("id-accuracy-stalled")]
    first_stuck = ids.index("id-accuracy-stuck")
    rest = [w for w in failed if w is not stalled]
    return (*rest[:first_stuck], stalled, *rest[first_stuck:])


def _grew_past(w: HealthWarning, accuracy: float, best_after: float) -> bool:
    """Whether `accuracy`, the run's result after `w` fired, refutes a warning that the language stopped growing:
    `w` is `id-accuracy-stuck`, `accuracy` gained `STALL_GAIN` over the best before it, and the run did not fall
    from a better point since (`best_after`, the best evaluation after `w`: a run that keeps its last weights).
    (grid1d id, seed 0, `restarts: 0`, measured: 0.64 at step 1500, 0.38 at 2000 (the warning), then 0.68, 0.75,
    0.82-0.83 at steps 2500-6000: a language that went on growing; Comp-I seed 4's, 0.49 from step 1500 to the end,
    stays stuck.) The gain must also solve `GREW_SHARE` of what was unsolved at that best: Comp-I seed 12's last
    attempt, 0.33 at steps 1500-2000 (the warning), then 0.50 to the end, gained 0.17 and still left three quarters
    of the unsolved tasks unsolved, and was called healthy.)"""
    best_before = w.evidence.get("best_before") if w.id == "id-accuracy-stuck" else None
    return (isinstance(best_before, (int, float)) and accuracy >= best_before + STALL_GAIN
            and accuracy - best_before >= GREW_SHARE * (1.0 - best_before) - 1e-9
            and accuracy > best_after - STALL_GAIN)


def health_record(
    warnings: Sequence[HealthWarning], *, step: int, total_steps: int, verdict: Verdict | None,
    restarts: Sequence[Mapping[str, Any]] = (), rollbacks: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The text of `health.json`: the warnings so far and, once the run has finished, its verdict.

    `{"format": "nlic-health", "version": 1, "step", "steps", "finished", "verdict": "healthy" | "unchecked" |
    <the first failed check's id> | null while running, "line": the verdict line | null, "recovered": [the ids of
    the warnings a healthy run outgrew], "after_kept": [the ids of the warnings that fired after the weights a
    healthy run keeps], "warnings": [{"id",
    "step", "summary", "evidence", "cause", "fix"}, ...], "restarts": [{"attempt", "step", "reason", "summary"},
    ...]}` (the attempts abandoned before this one, `nlic.runtime.recovery`), and where the attempt rolled back,
    `"rollbacks": [{"step", "to", "reason", "summary", "factor"}, ...]` (`nlic.runtime.rollback`).
    """
    data = {
        "format": HEALTH_FORMAT,
        "version": HEALTH_VERSION,
        "step": int(step),
        "steps": int(total_steps),
        "finished": verdict is not None,
        "verdict": None if verdict is None else (verdict.failed or verdict.status),
        "line": None if verdict is None else verdict.line(),
        "recovered": [] if verdict is None else [w.id for w in verdict.recovered],
        "after_kept": [] if verdict is None else [w.id for w in verdict.after_kept],
        "warnings": [_clean(w.as_dict()) for w in warnings],
        "restarts": [_clean(dict(r)) for r in restarts],
    }
    if rollbacks:  # absent otherwise: the records of runs that never roll back stay as they were
        data["rollbacks"] = [_clean(dict(r)) for r in rollbacks]
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"


def _clean(value: Any) -> Any:
    """JSON null for non-finite numbers (evidence read from rows other than training's own may hold them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def read_health(path: str | Path) -> dict[str, Any]:
    """Read a `health.json` (bounded, located errors).

    Raises:
        CheckpointError: the file is missing, too large, not JSON, or not a health record of this version.
    """
    path = Path(path)
    text = read_text(path, limit=MAX_HEADER_BYTES, what="health record", error=CheckpointError)
    data = loads_json(text, path=str(path), error=CheckpointError)
    if not isinstance(data, dict) or data.get("format") != HEALTH_FORMAT:
        raise CheckpointError("not an nlic health record", loc=Loc(str(path)),
                              hint="health.json is written by `nlic train`; re-run `nlic train --resume`")
    if data.get("version") != HEALTH_VERSION:
        raise CheckpointError(f"health record version {data.get('version')!r}, this nlic reads {HEALTH_VERSION}",
                              loc=Loc(str(path)), hint="re-run `nlic train --resume` to rewrite it")
    return data


# --- the progress line ----------------------------------------------------------------------------------------


def signal_text(row: Mapping[str, Any], *, vocab: int | None = None, id_accuracy: float | None = None) -> str | None:
    """The health signals of a training row for the progress line (`tok 5/8 ppl 4.2 skip 0.31 id 0.97`); None
    when the row has none (kinds without a codebook, before an evaluation).

    `id_accuracy`: the ID accuracy of the last evaluation point, if any.
    """
    parts = []
    tokens = _num(row.get("tokens_in_use"))
    if tokens is not None:
        parts.append(f"tok {int(tokens)}" + ("" if vocab is None else f"/{vocab}"))
    ppl = _num(row.get("codebook_perplexity"))
    if ppl is not None:
        parts.append(f"ppl {ppl:.1f}")
    skip = _num(row.get("skip_fraction"))
    if skip is not None:
        parts.append(f"skip {skip:.2f}")
    if id_accuracy is not None:
        parts.append(f"id {id_accuracy:.2f}")
    return " ".join(parts) or None
