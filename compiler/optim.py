"""Optimisation: the learning-rate schedule, the spec's optimiser (an `optax.chain`), the initial training state
and the train step, the one `nlic compile` compiles and reports and `nlic train` runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from nlic.compiler import tracecache
from nlic.compiler.kinds import Batch, ModelKind
from nlic.grammar.errors import Loc
from nlic.grammar.registry import Registry

__all__ = [
    "OPTIMIZERS",
    "SPIKE_DECAY",
    "SPIKE_WARMUP",
    "SkipSpikesState",
    "StoredTrainStep",
    "init_fn",
    "init_state",
    "drop_step",
    "drop_factor",
    "lr_schedule",
    "make_optimizer",
    "make_train_step",
    "skip_spikes",
    "skipped_steps",
    "state_like",
    "traced_code",
    "train_step_fn",
]

OPTIMIZERS: Registry[Callable[..., optax.GradientTransformation]] = Registry("optimizer")
"""`training.optimizer` name -> `factory(lr, training) -> optax.GradientTransformation`."""
OPTIMIZERS.register("adamw", lambda lr, training: optax.adamw(lr, weight_decay=training.weight_decay))
OPTIMIZERS.register("adam", lambda lr, training: optax.adam(lr))
OPTIMIZERS.register("sgd", lambda lr, training: optax.sgd(lr))


def lr_schedule(training: Any) -> Callable[[Any], Any]:
    """Learning rate at an optimiser count: linear warm-up to `lr.at(0)`, then `training.lr` over the rest, times
    `training.lr_drop` from step `drop_step(training)` on.

    Works on jnp arrays (inside the optimiser) and on Python ints (for logging, without device work).
    """
    warmup, steps, sched = int(training.warmup), int(training.steps), training.lr
    drop_at, drop = drop_step(training), float(training.lr_drop)

    def lr(count: Any) -> Any:
        if isinstance(count, (int, float)):
            t = min(max((count - warmup) / max(steps - warmup - 1, 1), 0.0), 1.0)
            value = float(sched.at(t)) * (min(1.0, (count + 1.0) / warmup) if warmup > 0 else 1.0)
            return value * drop_factor(training, count)
        count = jnp.asarray(count, jnp.float32)
        t = jnp.clip((count - warmup) / max(steps - warmup - 1, 1), 0.0, 1.0)
        value = jnp.asarray(sched.at(t), jnp.float32)
        if warmup > 0:
            value = value * jnp.minimum(1.0, (count + 1.0) / warmup)
        if drop_at is not None:  # absent from the graph otherwise, so runs without it keep their bits
            value = jnp.where(count >= drop_at, value * drop, value)
        return value

    return lr


def drop_factor(training: Any, count: float) -> float:
    """The factor `training.lr_drop_at` puts on the learning rate at optimiser count `count`: `training.lr_drop` from
    `drop_step` on, else 1."""
    at = drop_step(training)
    return float(training.lr_drop) if at is not None and count >= at else 1.0


def drop_step(training: Any) -> int | None:
    """The first step (0-based optimiser count) trained at the dropped rate (`training.lr_drop_at`), or None."""
    at = float(training.lr_drop_at)
    if at <= 0:
        return None
    return int(round(at * int(training.steps)))


class SkipSpikesState(NamedTuple):
    """`skip_spikes`' state: the wrapped optimiser's, the running mean of the accepted steps' log gradient norms,
    how many steps were accepted and how many skipped."""

    inner: Any
    log_norm: jax.Array
    accepted: jax.Array
    skipped: jax.Array


SPIKE_WARMUP = 50
"""Steps `skip_spikes` always accepts first (their norms start its running mean)."""
SPIKE_DECAY = 0.98
"""Decay of that running mean per accepted step (about the last 50 steps)."""


def skip_spikes(inner: optax.GradientTransformation, factor: float) -> optax.GradientTransformation:
    """`inner`, but a step whose gradient norm exceeds `factor` times the running geometric mean of the accepted
    steps' norms changes nothing: no update, and `inner`'s state (moments, step count) stays as it was. A
    non-finite norm is passed on (the `nan-loss` check reports it). Deterministic: a function of the gradients."""

    def init(params: Any) -> SkipSpikesState:
        zero = jnp.zeros([], jnp.int32)
        return SkipSpikesState(inner.init(params), jnp.zeros([], jnp.float32), zero, zero)

    def update(grads: Any, state: SkipSpikesState, params: Any = None) -> tuple[Any, SkipSpikesState]:
        norm = optax.tree.norm(grads)
        log_norm = jnp.log(jnp.maximum(norm, 1e-30))
        ok = ((state.accepted < SPIKE_WARMUP) | (log_norm <= state.log_norm + jnp.log(factor))
              | ~jnp.isfinite(norm))
        updates, new_inner = inner.update(grads, state.inner, params)
        updates = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), updates)
        new_inner = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_inner, state.inner)
        mean = jnp.where(state.accepted == 0, log_norm, SPIKE_DECAY * state.log_norm + (1 - SPIKE_DECAY) * log_norm)
        mean = jnp.where(ok & jnp.isfinite(norm), mean, state.log_norm)
        return updates, SkipSpikesState(new_inner, mean, state.accepted + ok.astype(jnp.int32),
                                        state.skipped + (~ok).astype(jnp.int32))

    return optax.GradientTransformation(init, update)


def skipped_steps(opt_state: Any) -> Any:
    """The number of updates `skip_spikes` skipped so far (None for an optimiser without it)."""
    return opt_state.skipped if isinstance(opt_state, SkipSpikesState) else None


def make_optimizer(training: Any) -> optax.GradientTransformation:
    """The `optax.chain` of the spec: global-norm clipping (when clip > 0), then the named optimiser; wrapped in
    `skip_spikes` when `training.skip_spikes` > 0.

    Raises:
        SpecError: `training.optimizer` is not in `OPTIMIZERS` (listing the known names).
    """
    factory = OPTIMIZERS.get(training.optimizer, loc=Loc("training.optimizer"))
    parts = [optax.clip_by_global_norm(training.clip)] if training.clip > 0 else []
    chain = optax.chain(*parts, factory(lr_schedule(training), training))
    return skip_spikes(chain, training.skip_spikes) if training.skip_spikes > 0 else chain


def train_step_fn(kind: ModelKind, optim: optax.GradientTransformation) -> Callable[..., Any]:
    """The train step as a plain function `(model, opt_state, batch, t, step, key) -> (model, opt_state, loss,
    metrics, grad_norm)`: what `make_train_step` jits and `compile_spec` lowers.

    `t` (progress in [0, 1]) and `step` are arrays and the step's key is `fold_in(key, step)` inside, so one
    trace serves a whole run.
    """

    def train_step(model, opt_state, batch: Batch, t, step, key):
        k = jax.random.fold_in(key, step)

        def objective(m):
            return kind.loss(m, batch, t, key=k)

        (loss, metrics), grads = eqx.filter_value_and_grad(objective, has_aux=True)(model)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        model = eqx.apply_updates(model, updates)
        return model, opt_state, loss, metrics, optax.tree.norm(grads)

    return train_step


def make_train_step(kind: ModelKind, optim: optax.GradientTransformation, *, max_traces: int | None = None) -> Callable:
    """`train_step_fn` jitted; `max_traces` makes a second trace an error (tests)."""
    return eqx.filter_jit(eqx.debug.assert_max_traces(train_step_fn(kind, optim), max_traces=max_traces))


def traced_code(kind: ModelKind, optimizer: str | None = None) -> list[Callable[..., Any]]:
    """The functions a kind's traces run, and the named optimiser's factory: `tracecache` hashes their source files
    where they lie outside nlic (a user's own kind or optimiser)."""
    code = [f for f in (getattr(kind, field.name) for field in dataclasses.fields(kind)) if callable(f)]
    if optimizer is not None and optimizer in OPTIMIZERS:
        code.append(OPTIMIZERS.get(optimizer))
    return code


class StoredTrainStep:
    """`train_step_fn` compiled through `tracecache.lower`: a process that finds the step's trace in the trace store
    (the compile cache's folder) skips tracing it, and one that finds its compiled code in the compile cache skips
    XLA too. Same arguments and results as `make_train_step`'s function, and the same bits (the code XLA compiles is
    that of the same jaxpr); for one device: sharded arguments take `make_train_step`.

    One compiled function per argument signature (a token split that grows the model compiles another).

    Args:
        kind, optim: as `train_step_fn`.
        training: the spec's `training` section (its text enters the trace's key with the model's structure).
        max_traces: a second trace or load is an error (tests).
    """

    def __init__(self, kind: ModelKind, optim: optax.GradientTransformation, training: Any, *,
                 max_traces: int | None = None):
        self._fn = train_step_fn(kind, optim)
        self._parts = (f"train_step {kind.name}", tracecache.describe(training))
        self._code = traced_code(kind, training.optimizer)
        self._compiled: dict[Any, tuple[Any, tracecache.Lowered]] = {}
        self._max_traces = max_traces
        self.loaded = 0  # signatures whose trace came from the store (tests, logs)

    def __call__(self, model, opt_state, batch, t, step, key):
        args = (model, opt_state, batch, t, step, key)
        dyn, static = eqx.partition(args, eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten(dyn)
        # As `eqx.filter_jit`'s cache: the arrays' structure and shapes, and the static values (a function or a
        # Python number held by the model) by equality.
        s_leaves, s_def = jax.tree_util.tree_flatten(static)
        signature = (treedef, tuple((x.shape, x.dtype) for x in leaves), s_def, tuple(s_leaves))
        entry = self._compiled.get(signature)
        if entry is None:
            if self._max_traces is not None and len(self._compiled) >= self._max_traces:
                raise RuntimeError(f"the train step was traced {len(self._compiled) + 1} times (at most "
                                   f"{self._max_traces})")
            low = tracecache.lower("train_step", self._fn, args, parts=self._parts, code=self._code,
                                   outline=_outline_step, check=_step_outline_ok)
            self.loaded += low.loaded
            entry = (low.lowered.compile(), low)
            self._compiled[signature] = entry
        compiled, low = entry
        flat = [jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x for x in leaves]
        out = compiled(*[flat[i] for i in low.kept])
        return _rebuild_step(out, model, opt_state, low.info)


def _outline_step(out: Any) -> dict[str, Any]:
    model, opt_state, _loss, metrics, _gnorm = out
    if not all(eqx.is_array(v) for v in metrics.values()):
        raise TypeError("a stored train step needs metrics as a flat dict of arrays")
    return {"model": len(jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))),
            "opt_state": len(jax.tree_util.tree_leaves(eqx.filter(opt_state, eqx.is_array))),
            "metrics": sorted(metrics)}


def _step_outline_ok(info: Any) -> bool:
    return (isinstance(info, dict) and all(isinstance(info.get(k), int) for k in ("model", "opt_state"))
            and isinstance(info.get("metrics"), list) and all(isinstance(m, str) for m in info["metrics"]))


def _rebuild_step(out: list[Any], model: Any, opt_state: Any, info: Any) -> tuple[Any, Any, Any, Any, Any]:
    """The train step's `(model, opt_state, loss, metrics, grad_norm)` from its flat outputs."""
    parts = []
    at = 0
    for tree, n in ((model, info["model"]), (opt_state, info["opt_state"])):
        arrays, static = eqx.partition(tree, eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten(arrays)
        if len(leaves) != n:
            raise RuntimeError(f"stored train step returns {n} leaves where the state has {len(leaves)}")
        parts.append(eqx.combine(jax.tree_util.tree_unflatten(treedef, out[at:at + n]), static))
        at += n
    names = info["metrics"]
    loss, values, gnorm = out[at], out[at + 1:at + 1 + len(names)], out[at + 1 + len(names)]
    return parts[0], parts[1], loss, dict(zip(names, values, strict=True)), gnorm


def init_fn(spec: Any, kind: ModelKind, shapes: Any, optim: optax.GradientTransformation) -> Callable[[Any], Any]:
    """`init(seed) -> (model, opt_state, train_key)`: the training state at step 0 (what `init_state` jits)."""

    def init(seed):
        init_key, train_key = jax.random.split(jax.random.key(seed))
        model = kind.build(spec, shapes, key=init_key)
        return model, optim.init(eqx.filter(model, eqx.is_inexact_array)), train_key

    return init


def init_state(spec: Any, kind: ModelKind, shapes: Any, optim: optax.GradientTransformation) -> tuple[Any, Any, Any]:
    """`(model, opt_state, train_key)` at step 0, all from `spec.seed`."""
    # One compiled function instead of one small compilation per initialiser op (seconds on a busy CPU).
    return eqx.filter_jit(init_fn(spec, kind, shapes, optim))(jnp.asarray(spec.seed, jnp.uint32))


def state_like(spec: Any, kind: ModelKind, shapes: Any, optim: optax.GradientTransformation) -> tuple[Any, Any, Any]:
    """The shapes and dtypes of `init_state`'s `(model, opt_state, key data)`, nothing initialised or compiled: the
    structure a checkpoint is read into (`nlic.runtime.checkpoint.load_checkpoint`)."""
    abstract = eqx.filter_eval_shape(init_state, spec, kind, shapes, optim)
    return (abstract[0], abstract[1], jax.eval_shape(jax.random.key_data, abstract[2]))
