"""What the capacity probes share (`grid1d_probes.py`, `deepcoder_probes.py`): the supervised losses that train one
half of an NLI when the answer is told, and their Adam step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from nlic.compiler.models.nli.model import _pair_loglik

__all__ = ["first_slot_logits", "inductor_loss", "executor_loss", "adam_step"]


def first_slot_logits(m: Any, xs: Any, ys: Any, mask: Any) -> Any:
    """The inductor's token logits of the first program slot, per task: [B, K] from pairs [B, P, L] and mask [B, P]."""
    return jax.vmap(lambda x, y, k: m.token_logits(m.pooled_slots(x, y, k))[0])(xs, ys, mask)


def inductor_loss(m: Any, xs: Any, ys: Any, mask: Any, target: Any) -> Any:
    """Cross-entropy of the first slot's token against `target` int [B]."""
    logp = jax.nn.log_softmax(first_slot_logits(m, xs, ys, mask))
    return -jnp.take_along_axis(logp, target[:, None], -1).mean()


def executor_loss(m: Any, programs: Any, xs: Any, ys: Any, key: Any, tau: Any, vocab: int) -> Any:
    """Training's reconstruction loss of the interpreter running the given token `programs` int [B, T] on every
    pair [B, P, L], at executor temperature `tau`, with its Gumbel noise."""
    def one(p: Any, x: Any, y: Any, k: Any) -> Any:
        codes, gate = m.codes(jax.nn.one_hot(p, vocab))
        return _pair_loglik(m.run_soft(codes, gate, x, tau, key=k, noise=True), y)

    B, P = xs.shape[:2]
    keys = jax.random.split(key, B * P).reshape(B, P)
    return -jax.vmap(lambda p, x, y, k: jax.vmap(lambda *a: one(p, *a))(x, y, k))(programs, xs, ys, keys).mean()


def adam_step(loss: Callable[..., Any], lr: float, model: Any) -> tuple[Callable[..., Any], Any]:
    """A jitted `step(model, state, batch, key, tau) -> (model, state, loss value)` of Adam on `loss(model, batch,
    key, tau)`, and the optimiser's first state."""
    opt = optax.adam(lr)

    @eqx.filter_jit
    def step(m: Any, st: Any, b: tuple[Any, ...], key: Any, tau: Any) -> Any:
        value, grads = eqx.filter_value_and_grad(loss)(m, b, key, tau)
        updates, st = opt.update(grads, st, eqx.filter(m, eqx.is_inexact_array))
        return eqx.apply_updates(m, updates), st, value

    return step, opt.init(eqx.filter(model, eqx.is_inexact_array))
