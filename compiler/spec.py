"""The validated spec: frozen dataclasses with documented defaults, the single source of truth of the schema.

Both front ends (YAML and the native `.nls` syntax) parse into a located tree which `nlic.compiler.validate`
checks against these classes; every field's `metadata["doc"]` is its user documentation, and its default makes
a minimal spec about five lines long. Field names here are the keys users write.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from typing import Any, Literal

from nlic.compiler.kinds import AUTO_SEARCH, default_search

__all__ = [
    "SPEC_VERSION",
    "Schedule",
    "IntRange",
    "TaskSpec",
    "LanguageSpec",
    "InductorSpec",
    "ExecutorSpec",
    "LatentSpec",
    "ModelSpec",
    "RelaxationSpec",
    "TrainingSpec",
    "SearchSpec",
    "EvalSpec",
    "Spec",
    "SECTIONS",
    "ROW_GRID_DEFAULTS",
    "tree_nodes",
    "field_range",
    "field_names",
    "field_types",
    "is_section",
]

SPEC_VERSION = 1


def _f(default: Any, doc: str, **meta: Any) -> Any:
    """A dataclass field with a default and user documentation (`min`, `max`, `choices` in metadata)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use tuples")
    if dataclasses.is_dataclass(default) and not isinstance(default, type):
        return dataclasses.field(default_factory=lambda: default, metadata={"doc": doc, **meta})
    return dataclasses.field(default=default, metadata={"doc": doc, **meta})


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A scalar that changes over a run, written `exp(8 -> 0.5)`, `linear(1 -> 0)`, `cosine(1 -> 0)` or
    `const(0.5)` (a bare number means const). `t` runs from 0 (first step) to 1 (last step)."""

    kind: Literal["const", "linear", "exp", "cosine"]
    start: float
    end: float

    def at(self, t: Any) -> Any:
        """Value at fraction `t` in [0, 1] (Python float or jnp array; returns the same kind)."""
        if self.kind == "const":
            return self.start + 0.0 * t
        if self.kind == "linear":
            return self.start + (self.end - self.start) * t
        if self.kind == "exp":
            return self.start * (self.end / self.start) ** t
        if self.kind == "cosine":
            import numpy as np

            cos = (np.cos(np.pi * t) if isinstance(t, (int, float)) else _jcos(t))
            return self.end + 0.5 * (self.start - self.end) * (1 + cos)
        raise ValueError(self.kind)

    def __str__(self) -> str:
        if self.kind == "const":
            return f"const({_num(self.start)})"
        return f"{self.kind}({_num(self.start)} -> {_num(self.end)})"


def _jcos(t: Any) -> Any:
    import jax.numpy as jnp

    return jnp.cos(jnp.pi * t)


def _num(x: float) -> str:
    """Canonical text of a number: integers without a dot, others in shortest repr."""
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int) or (isinstance(x, float) and math.isfinite(x) and x == int(x) and abs(x) < 1e15):
        return str(int(x))
    return repr(float(x))


@dataclasses.dataclass(frozen=True)
class IntRange:
    """An inclusive integer range, written `1..5`."""

    lo: int
    hi: int

    def __str__(self) -> str:
        return f"{self.lo}..{self.hi}"

    def values(self) -> range:
        return range(self.lo, self.hi + 1)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    family: str = _f("shift", "Task family.", registry="family")
    params: tuple[tuple[str, Any], ...] = _f(
        (), "Family parameters (a mapping; each family documents and checks its own keys, e.g. shift: "
        "split: shift_l, length: 20, alphabet: 10)."
    )
    pairs: int = _f(4, "Specification pairs per task (m); each task also has one held-out query pair.", min=1, max=64)
    train_split: str = _f("train", "Split the model is trained on.")
    colours: Literal["as_is", "canonical"] = _f(
        "as_is", "Grid tasks: canonical renumbers each task's colours by their role (the inputs' colours 1, 2, ... by "
        "mean run length, then count; colours only the outputs hold from the top down), so that a rule with colour "
        "arguments (recolour to a new colour) is the same program in every task; predictions, data output and "
        "replay are mapped back to the task's own colours. as_is: the colours as the data hold them.",
        quiet_default=True,
    )

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)


@dataclasses.dataclass(frozen=True)
class LanguageSpec:
    vocab: int = _f(16, "Codebook size K, including the skip token.", min=2, max=4096)
    length: int = _f(6, "Program length T (token slots) during training.", min=1, max=256)
    max_length: int = _f(12, "Maximum program length for search and replay (>= length).", min=1, max=1024)
    skip_token: int = _f(0, "Id of the skip (no-op) token.", min=0)
    values: int = _f(0, "Data alphabet size V the executor reads; 0 = inferred from the task (must be >= the task's).", min=0, max=65536)


@dataclasses.dataclass(frozen=True)
class InductorSpec:
    layers: int = _f(2, "Transformer layers of the per-pair encoder.", min=1, max=48)
    width: int = _f(32, "Model width D of the inductor.", min=4, max=4096)
    heads: int = _f(4, "Attention heads (must divide width).", min=1, max=64)
    mlp_ratio: int = _f(2, "Hidden size of each transformer MLP as a multiple of width.", min=1, max=16)
    head_hidden: int = _f(64, "Hidden size of the shared slot MLP that maps slot embeddings to codebook logits.", min=1)
    relations: bool = _f(
        True, "nli and dlpn (whose encoder is the NLI inductor): add each position's value-equality pattern against "
        "the other datum (y_j == x_i for all i) to the pair embedding, so cross-position relations (moves, reversals) "
        "are visible before any attention is learned.",
    )
    offsets: bool = _f(
        False, "nli and dlpn: add each position's value-equality pattern at every relative offset (y_j == x_(j+d) "
        "and x_i == y_(i+d) for d in -(L-1)..L-1) to the pair embedding: a move by k looks the same wherever the "
        "moved object sits, which `relations` (absolute positions) hides on sparse data such as 1-D ARC rows (a "
        "supervised inductor told grid1d moves apart at chance without it, at 1.00 with it).",
    )
    head_init: Literal["random", "zero"] = _f(
        "zero", "nli and dlpn: initial output layer of the slot MLP: random, or zero (every token starts equally "
        "likely in every slot, so no token is ahead before the data has spoken).", choices=("random", "zero"),
    )
    value_pairs: bool = _f(
        True, "nli and dlpn: add an embedding of each position's value pair (x_i, y_i) to the output datum (the "
        "product of an input-value and an output-value embedding), so value maps (y_i = f(x_i): increments, "
        "complements) are visible before attention has learned to pair x_i with y_i, as `relations` makes moves "
        "visible.",
    )
    positions: Literal["sequence", "datum"] = _f(
        "datum", "nli and dlpn: attention positions of the per-pair encoder: the index in the concatenated "
        "[slots, input, output] sequence, or the position within the datum (input and output share them, so offset 0 "
        "pairs x_i with y_i and offset k a move by k; slots have none).", choices=("sequence", "datum"),
    )


@dataclasses.dataclass(frozen=True)
class ExecutorSpec:
    layers: int = _f(1, "Transformer layers of the shared step network.", min=1, max=48)
    width: int = _f(32, "Width D of the executor (value and code embeddings).", min=4, max=4096)
    heads: int = _f(4, "Attention heads of the step network (must divide width).", min=1, max=64)
    mlp_ratio: int = _f(2, "Hidden size of each step-network MLP as a multiple of width.", min=1, max=16)
    conditioning: Literal["add", "film"] = _f(
        "film", "How the token embedding enters the step network: added to every position, or FiLM.",
        choices=("add", "film"),
    )
    routing: bool = _f(
        True, "Let the token also choose where each position reads from: its code adds a per-head bias over "
        "relative offsets to the step network's attention (data movement such as shifts becomes one token). "
        "Baseline decoders get the same bias from their latent (lpn, dlpn) or mean context token (in_context, ttt).",
    )
    mirrors: bool = _f(
        True, "With routing, the code also biases attention by the sum of the two positions, so mirror images "
        "(reverse) are one token too.",
    )
    residual_gate: bool = _f(
        True, "nli: the token's code also scales each position's residual stream (per channel) before attention "
        "adds what it read, so a token can overwrite a position with a value moved from elsewhere instead of "
        "adding to it (starts at scale 1: off until learned).",
    )
    anchors: bool = _f(
        False, "With routing, the token's code also picks two positions per head by their content (a soft "
        "pointer, e.g. a dot or a block's end) and biases attention by offsets measured from them, so a move by a "
        "distance read from the row (to a dot, to an edge) or a mirror around a dot is one token (starts flat: off "
        "until learned). Baseline decoders get the same from their code, as with routing.",
        quiet_default=True,
    )


@dataclasses.dataclass(frozen=True)
class LatentSpec:
    dim: int = _f(32, "Latent size (lpn; dlpn's latent is language.length tokens of the codebook).", min=1)
    beta: float = _f(1e-4, "KL weight of the Gaussian latent (lpn).", min=0.0, max=1e4)
    inner_steps: int = _f(0, "Gradient steps on the latent inside training (LPN 'Grad N'), stop-gradient.", min=0, max=100)
    inner_lr: float = _f(0.1, "Learning rate of the inner latent steps in training.", min=0.0, max=1e3)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    kind: str = _f("nli", "Model kind. A field it does not read (an LPN's relaxation, say) set to another value "
                   "than its default is an error.", registry="kind")
    inductor: InductorSpec = _f(InductorSpec(), "Program inductor (encoder) architecture.")
    executor: ExecutorSpec = _f(ExecutorSpec(), "Interpreter (decoder) architecture.")
    latent: LatentSpec = _f(LatentSpec(), "Latent settings of the LPN-family baselines.")


_TEMPERATURE = {"above_zero": "all", "max": 1e4,
                "above_zero_hint": "a temperature of 0 divides by zero: end at a small positive value such as 0.1"}
"""Bounds of a Gumbel-Softmax temperature schedule (`above_zero`: every value above 0; see validate)."""


@dataclasses.dataclass(frozen=True)
class RelaxationSpec:
    tau_inductor: Schedule = _f(Schedule("exp", 4.0, 0.5), "Inductor Gumbel-Softmax temperature over training.",
                               **_TEMPERATURE)
    tau_executor: Schedule = _f(Schedule("exp", 2.0, 0.5), "Interpreter Gumbel-Softmax temperature over training.",
                               **_TEMPERATURE)
    straight_through: bool = _f(False, "Hard one-hot tokens forward, soft gradients backward.")
    hard_states: bool = _f(
        False,
        "Interpreter: the value state passed from one step to the next is one-hot in the forward pass (straight-"
        "through: soft gradients backward); the output stays soft for the loss. Closes the gap between relaxed "
        "and discrete execution (a state that keeps information off its argmax).",
    )
    reg_weight: float = _f(0.0, "lambda_reg: weight of the reuse regulariser (expected distinct tokens per batch).", min=0.0, max=1e4)
    diversity: float = _f(
        0.0, "nli: weight of the token-diversity term, minus the mutual information between a batch's tasks and each "
        "slot's token (the entropy of the batch's mean token distribution less the mean entropy of each task's, "
        "`nli.model.loss`): the inductor is paid for telling tasks apart, against a codebook that collapses to one "
        "or two tokens while the interpreter learns the output's average. Experimental: on DeepCoder's single "
        "operations 0.5 kept 30 of 48 tokens in use and the loss rose, the accuracy no better (benchmarks/README.md). "
        "0: off.",
        min=0.0, max=100.0, quiet_default=True,
    )
    inductor_gumbel: bool = _f(True, "Add Gumbel noise to the inductor's token logits (ablation: false).")
    executor_gumbel: bool = _f(True, "Add Gumbel noise to the interpreter's value logits (ablation: false).")
    skip: bool = _f(True, "Use the skip token as a gated no-op (ablation: false).")
    skip_from: float = _f(
        0.0, "Fraction of training before which the inductor may not write the skip token (nli): every slot holds an "
        "operator, so the interpreter learns what tokens do before copying the input wins on data where most cells "
        "do not change (grid1d: 1-2 of 16 tokens and all skip without it). 0: from the start.", min=0.0, max=0.9,
    )
    value_bottleneck: bool = _f(True, "Executor state is a distribution over values (ablation: false = continuous).")
    recurrent: bool = _f(True, "Apply the step network once per token (ablation: false = one non-recurrent pass).")
    discrete_program: bool = _f(True, "Programs are codebook tokens (ablation: false = continuous program vectors).")


@dataclasses.dataclass(frozen=True)
class TrainingSpec:
    steps: int = _f(3000, "Optimiser steps.", min=0, max=10_000_000)
    batch: int = _f(16, "Tasks per batch.", min=1, max=65536)
    optimizer: Literal["adamw", "adam", "sgd"] = _f("adamw", "Optimiser.", choices=("adamw", "adam", "sgd"))
    lr: Schedule = _f(Schedule("const", 2e-3, 2e-3), "Learning rate (after warm-up).", min=0.0, max=10.0, above_zero="start",
                      above_zero_hint="a learning rate of 0 does not train, and one below 0 climbs the loss")
    warmup: int = _f(20, "Linear learning-rate warm-up steps.", min=0)
    lr_drop_at: float = _f(
        0.0, "Fraction of the steps from which the learning rate is multiplied by lr_drop (on top of training.lr and "
        "the warm-up), so that a run keeps what it learned: late in training a rare noise draw can give a gradient "
        "1000x the usual, whose clipped step at the full rate throws the model off (`training-unstable`). The steps "
        "before it are unchanged, bit for bit, and no attempt is abandoned for a restart from it on. 0: never.",
        min=0.0, max=1.0, quiet_default=True,
    )
    lr_drop: float = _f(0.25, "Factor of the learning rate from training.lr_drop_at on.", min=0.0, max=1.0,
                         quiet_default=True)
    rollback: int = _f(
        0, "Times an attempt may go back to its best evaluation point when its ID accuracy falls after a loss spike "
        "(training-unstable): it reloads that point's weights and optimiser state and trains on from there with the "
        "learning rate times training.lr_drop once more (a later lr_drop_at is brought forward to it; "
        "`nlic.runtime.rollback`). Needs keep: best. 0: never.",
        min=0, max=100, quiet_default=True,
    )
    curriculum: float = _f(
        0.0, "Fraction of the steps over which the training tasks grow from the task family's easiest to its own "
        "distribution, in equal stages (deepcoder: programs of length 1, then up to 2, ... up to the split's "
        "longest; the family's `curriculum`); the evaluation points' selection sample stays the full distribution. "
        "Families without one refuse it. 0: off.",
        min=0.0, max=1.0, quiet_default=True,
    )
    weight_decay: float = _f(0.0, "AdamW weight decay.", min=0.0, max=1e3)
    clip: float = _f(1.0, "Global-norm gradient clipping (0 disables).", min=0.0, max=1e9)
    skip_spikes: float = _f(
        0.0, "Skip the update of a step whose gradient norm (before clipping) is more than this many times the "
        "running geometric mean of the accepted steps' norms (after the first 50 steps): a rare draw of the "
        "relaxation's noise late in training can give a gradient 1000x the usual, whose clipped direction throws "
        "the model off (`training-unstable`). Experimental: on grid1d, replayed from before a fall, 10 held one run "
        "and 30 another; from scratch, 10 skipped 1138 of 3000 updates of the id suite, which diverged. 0: never.",
        min=0.0, quiet_default=True,
    )
    log_every: int = _f(50, "Steps between metric rows.", min=1)
    eval_every: int = _f(500, "Steps between ID/OOD evaluations (0 disables).", min=0)
    checkpoint_every: int = _f(500, "Steps between checkpoints (0: only at the end).", min=0)
    restarts: int = _f(
        2,
        "Fresh starts allowed when a health check fails before the probe point (id-accuracy-stuck: before the "
        "last token split, where later; `nlic.runtime.recovery`), paid in steps: abandoned attempts may use this "
        "many times the last step an attempt may be abandoned at, so attempts abandoned early buy more (at most "
        "twice this many restarts). After "
        "a language that never formed (collapse, all skip, relaxation gap, plateau) the same seed with the "
        "inductor temperature's start doubled, after other warnings a derived seed; 0: never restart. With "
        "keep: best, an attempt abandoned as stuck that the last attempt did not beat on the selection sample "
        "then continues to the end from its last checkpoint.",
        min=0, max=1000,
    )
    probe: float = _f(
        0.5,
        "Fraction of the steps up to which an attempt with a health warning is abandoned for a fresh start (one "
        "whose language is stuck on part of the tasks, id-accuracy-stuck: up to the last token split, "
        "split_until, where that is later).",
        min=0.0, max=1.0,
    )
    split_until: float = _f(
        0.67,
        "nli: up to this fraction of the steps, at every evaluation point, the token shared by the largest group "
        "of unsolved tasks of the selection sample (>= 3 tasks with one program) is split: the group is divided by "
        "which of two fitted codes reconstructs each task better, and one side moves to an unused token with its "
        "code (`nlic.compiler.models.nli.split`); 0: never. Needs eval_every > 0.",
        min=0.0, max=1.0,
    )
    keep: Literal["best", "last"] = _f(
        "best", "Which weights the run keeps: those of the evaluation point, of any restart attempt, whose discrete "
        "programs solve the most of a fixed sample of the training split (the latest of equals; an abandoned "
        "attempt's only if it beats every point of the last; `nlic.runtime.selection`), or the last step's. The "
        "evaluation splits are never read to choose. Needs eval_every > 0 (else: last).",
        choices=("best", "last"),
    )


def tree_nodes(width: int, depth: int) -> int:
    """Programs of up to `depth` tokens over `width` tokens, the empty one included (the enumeration's tree)."""
    return sum(width**i for i in range(depth + 1))


DEEPENED_METHODS = ("enumerate", "cascade")
"""Search methods `search.deepen` applies to."""


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    method: str = _f(
        "auto", "Test-time search method (each model kind has its own); auto: the kind's default (nli: cascade; "
        "lpn, dlpn, ttt: gradient; in_context: none). A loaded spec holds the method auto stood for.",
        registry="method",
    )
    starts: int = _f(16, "Parallel starting points (gradient) or programs sampled (prior).", min=1, max=1_000_000)
    steps: int = _f(50, "Gradient steps per start (gradient, lpn search, ttt fine-tuning).", min=0, max=100_000)
    lr: float = _f(0.1, "Learning rate of the test-time optimiser.", min=0.0, max=1e3)
    init_noise: float = _f(3.0, "Standard deviation of the noise added to the inductor's embedding for extra starts.", min=0.0, max=1e3)
    tau_inductor: Schedule = _f(Schedule("exp", 2.0, 0.5), "Inductor temperature during search.",
                               **_TEMPERATURE)
    tau_executor: Schedule = _f(Schedule("exp", 1.0, 0.5), "Interpreter temperature during search.",
                               **_TEMPERATURE)
    select: Literal["likelihood", "exact"] = _f(
        "exact", "Keep the start whose discrete program fits the spec best (exact matches, then likelihood), "
        "or the one with the highest soft likelihood.", choices=("likelihood", "exact"),
    )
    depth: int = _f(
        6, "Longest program (non-skip tokens) the enumerate search tries exhaustively, cut to the greatest length "
        "whose programs (every one up to it) number at most `programs`: 15 tokens reach depth 4, 23 or 31 depth 3, "
        "a branch of 3 depth 6. With deepen, `nlic solve` then enumerates over only the language's tokens in use "
        "(those the inductor writes on 256 training tasks) as deep as the same budget allows, up to this depth "
        "(Shift-P seed 1: 3 of 15 tokens, depth 6).", min=0, max=64,
    )
    programs: int = _f(
        100_000, "Most programs one enumeration tries per task (every program of up to `depth` tokens over the "
        "branch's tokens, the empty one included); it bounds the depth, and with it the enumeration's time and "
        "memory. Comp-I (15 tokens): depth 4's 54,241 programs write the compositions of two positional "
        "primitives that depth 3 misses.", min=1, max=1_000_000,
    )
    branch: int = _f(
        0, "Tokens the enumerate search tries at each position: the task's `branch` most probable non-skip tokens "
        "under the inductor (0 = every token). Fewer tokens reach deeper programs at the same cost.", min=0,
    )
    deepen: bool = _f(
        True, "enumerate and cascade: search depth 1, 2, ... `depth` in turn, each over only the tasks that no "
        "shallower search solved (cascade's gradient search then runs on the rest). A task ends at the first depth "
        "that fits its spec exactly, so the cost falls with the share of tasks short programs solve. Other methods "
        "ignore it (and depth).",
    )
    grow: bool = _f(
        True, "gradient and cascade: every start after the first also writes 1, 2, ... copies of the program's "
        "likeliest operator into its skip slots (spread over the starts), so that programs longer than the "
        "inductor's are within reach: a slot saturated at the skip token gets almost no gradient.",
    )
    length: int = _f(
        0, "Program slots the NLI's prior, gradient and cascade searches work on: the inductor's language.length "
        "slots plus skip slots to grow into (0 = language.max_length). A gradient step costs in proportion to it, "
        "so a language whose programs are short searches faster with fewer slots; found programs are padded with "
        "the skip token to language.max_length. Every NLI search (none alone) also runs the inductor's program "
        "as trained, its language.length tokens.", min=0, max=4096,
    )
    batch: int = _f(
        1, "Tasks solved at once. A gradient search runs until the last task of its batch fits its spec, so one task "
        "at a time stops soonest (Comp-I, 16 starts: 0.2 s/task against 20 at 16 tasks); enumeration costs the same "
        "per task either way.", min=1,
    )

    def slots(self, length: int, max_length: int) -> int:
        """Slots the search works on for a language of `length` trained and `max_length` allowed slots (a value
        outside [length, max_length], e.g. from a command-line override, is clamped into it)."""
        return max(length, min(self.length or max_length, max_length))

    def branch_width(self, vocab: int) -> int:
        """Tokens the enumerate search tries per position in a language of `vocab` tokens (skip excluded)."""
        return min(self.branch or vocab - 1, vocab - 1)

    def enumeration_depth(self, vocab: int, max_length: int) -> int:
        """The depth an enumeration runs to in a language of `vocab` tokens and `max_length` slots: `depth`, cut to
        `max_length` and to the greatest depth whose programs (a full tree, the empty program included) number at
        most `programs`."""
        width, depth = self.branch_width(vocab), min(self.depth, max_length)
        while depth > 0 and tree_nodes(width, depth) > self.programs:
            depth -= 1
        return depth

    def fitted(self, vocab: int, max_length: int) -> SearchSpec:
        """This search with `depth` cut to `enumeration_depth` (every enumerating caller runs this one)."""
        return dataclasses.replace(self, depth=self.enumeration_depth(vocab, max_length))

    def stages(self) -> tuple[SearchSpec, ...]:
        """The searches `solve` runs in turn, each on the tasks no earlier one solved: this search itself, or with
        `deepen` enumerate at depth 1, 2, ..., `depth` (then, for cascade, gradient search from the inductor)."""
        if not self.deepen or self.method not in DEEPENED_METHODS:
            return (self,)
        stages = [dataclasses.replace(self, method="enumerate", depth=d, deepen=False) for d in range(1, self.depth + 1)]
        if self.method == "cascade" and self.steps > 0:
            stages.append(dataclasses.replace(self, method="gradient", deepen=False))
        return tuple(stages)


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    tasks: int = _f(100, "Tasks per evaluation split.", min=1, max=1_000_000)
    splits: tuple[str, ...] = _f(("id", "ood"), "Splits evaluated by train/solve/eval. Not written, for a family "
                                 "without both: those of the two it has, else its splits but task.train_split.")


@dataclasses.dataclass(frozen=True)
class Spec:
    version: int = _f(SPEC_VERSION, "Spec format version.", min=1, max=SPEC_VERSION)
    name: str = _f("nlic", "Name of the spec (used for run and build directory names).")
    seed: int = _f(0, "Seed of every random choice (data, init, noise).", min=0, max=2**31 - 1)
    task: TaskSpec = _f(TaskSpec(), "Task family or data files, and its splits.")
    language: LanguageSpec = _f(LanguageSpec(), "The program language: codebook size and program lengths.")
    model: ModelSpec = _f(ModelSpec(), "Model kind and architecture.")
    relaxation: RelaxationSpec = _f(RelaxationSpec(), "Relaxation, regularisation and ablation switches.")
    training: TrainingSpec = _f(TrainingSpec(), "Training schedule.")
    search: SearchSpec = _f(SearchSpec(), "Test-time search budget.")
    eval: EvalSpec = _f(EvalSpec(), "Evaluation.")

    def __post_init__(self) -> None:
        # `search.method: auto` becomes the kind's own method here, so that everything downstream (and the printed,
        # locked and fingerprinted spec) holds a concrete method. An unknown kind keeps `auto`; validation reports it.
        if self.search.method == AUTO_SEARCH and (method := default_search(self.model.kind)) is not None:
            object.__setattr__(self, "search", dataclasses.replace(self.search, method=method))


SECTIONS = tuple(f.name for f in dataclasses.fields(Spec))


def field_range(cls: type, name: str) -> tuple[Any, Any]:
    """The documented bounds (`min`, `max`; None where open) of field `name` of spec section `cls`, for values
    that reach a spec from elsewhere (command-line overrides) and must keep to the same limits."""
    meta = {f.name: f for f in dataclasses.fields(cls)}[name].metadata
    return meta.get("min"), meta.get("max")


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each field of spec section `cls` (the annotations are strings here)."""
    return typing.get_type_hints(cls, globals())


def is_section(tp: Any) -> bool:
    """Whether a field type is a section of further fields (a schedule or range is one value)."""
    return dataclasses.is_dataclass(tp) and tp not in (Schedule, IntRange)


@functools.cache
def field_names(section: str = "") -> tuple[str, ...]:
    """The dotted names of every field under `section` ('' for the whole spec; e.g. 'model.inductor'), sections
    walked into, schedules and ranges as one field each, in schema order."""
    cls: Any = Spec
    for part in filter(None, section.split(".")):
        cls = field_types(cls)[part]
    out: list[str] = []

    def walk(c: type, prefix: str) -> None:
        for f in dataclasses.fields(c):
            tp = field_types(c)[f.name]
            if is_section(tp):
                walk(tp, f"{prefix}{f.name}.")
            else:
                out.append(prefix + f.name)

    walk(cls, f"{section}." if section else "")
    return tuple(out)


ROW_GRID_DEFAULTS: tuple[tuple[str, Any, bool], ...] = (
    ("task.colours", "canonical", False),
    ("model.executor.layers", 2, False),
    ("training.steps", 6000, False),
    ("model.inductor.offsets", True, True),
    ("relaxation.skip_from", 0.15, True),
    ("training.lr_drop_at", 0.5, True),
    ("training.rollback", 1, True),
    ("training.restarts", 0, True),
    ("search.method", "enumerate", True),
    ("search.programs", 5000, True),
)
"""The defaults of a spec whose task data are one-row grids of colours (the `grid1d` family, or `files` whose
every input and output is a one-row ARC grid), as (dotted field, value, NLI only): the configuration
`specs/grid1d.yaml` measured, each value there with its reason. The schema's own defaults were measured on the shift
family, and on one-row grids they learn nothing (a user's 1000 exported grid1d tasks through `files`, vocab 24: ID
0.00 at steps 500-1000, restarted; benchmarks/README.md, "A user's own one-row grids"). A field the spec writes keeps
its value; the last column marks values only the NLI was measured with (a baseline keeps the schema's default)."""
