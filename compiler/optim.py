"""Optimisation: the learning-rate schedule, the spec's optimiser (an `optax.chain`), the initial training state
and the train step, the one `nlic compile` compiles and reports and `nlic train` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from nlic.compiler.kinds import Batch, ModelKind
from nlic.grammar.errors import Loc
from nlic.grammar.registry import Registry

__all__ = [
    "OPTIMIZERS",
    "init_fn",
    "init_state",
    "lr_schedule",
    "make_optimizer",
    "make_train_step",
    "train_step_fn",
]

OPTIMIZERS: Registry[Callable[..., optax.GradientTransformation]] = Registry("optimizer")
"""`training.optimizer` name -> `factory(lr, training) -> optax.GradientTransformation`."""
OPTIMIZERS.register("adamw", lambda lr, training: optax.adamw(lr, weight_decay=training.weight_decay))
OPTIMIZERS.register("adam", lambda lr, training: optax.adam(lr))
OPTIMIZERS.register("sgd", lambda lr, training: optax.sgd(lr))


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
    """The `optax.chain` of the spec: global-norm clipping (when clip > 0), then the named optimiser.

    Raises:
        SpecError: `training.optimizer` is not in `OPTIMIZERS` (listing the known names).
    """
    factory = OPTIMIZERS.get(training.optimizer, loc=Loc("training.optimizer"))
    parts = [optax.clip_by_global_norm(training.clip)] if training.clip > 0 else []
    return optax.chain(*parts, factory(lr_schedule(training), training))


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
