"""The Latent Program Network baseline (`lpn`): a Gaussian program latent searched by gradient at test time.

Each pair is encoded to a latent, latents are mean-pooled (leave-one-out in training) and a non-recurrent decoder
conditioned on the pooled latent predicts y from x; `dlpn` reuses the pooling and the decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from nlic.compiler.kinds import Batch, ModelKind, Shapes, Solution
from nlic.compiler.models.in_context import (
    BACKBONE_READS,
    Decoder,
    PairEncoder,
    check_method,
    held_out_masks,
    masked_mean,
    sequence_nll,
    with_query_pair,
)
from nlic.compiler.spec import LatentSpec, SearchSpec, Spec, field_names

__all__ = [
    "LPN",
    "LPN_KIND",
    "build_lpn",
    "latent_search",
    "latent_solution",
    "lpn_loss",
    "lpn_solve",
    "pool",
]


def pool(ctx: Bool[Array, "J P"], x: Float[Array, "P ..."]) -> Float[Array, "J ..."]:
    """Mean of the rows of x selected by each row of `ctx` (leave-one-out pooling when ctx is `held_out_masks`)."""
    w = ctx.astype(x.dtype)
    w = w / jnp.maximum(w.sum(axis=1, keepdims=True), 1.0)
    return jnp.tensordot(w, x, axes=1)


class LPN(eqx.Module):
    """Pair encoder -> Gaussian latent (mean, log-variance); decoder conditioned on the latent (FiLM or added)."""

    encoder: PairEncoder
    head: eqx.nn.Linear
    proj: eqx.nn.Linear
    decoder: Decoder
    latent: LatentSpec = eqx.field(static=True)
    max_length: int = eqx.field(static=True)

    def __init__(self, spec: Spec, shapes: Shapes, *, key: PRNGKeyArray):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.latent = spec.model.latent
        self.max_length = spec.language.max_length
        self.encoder = PairEncoder(spec, shapes.values, 1, key=k1)
        self.head = eqx.nn.Linear(spec.model.inductor.width, 2 * self.latent.dim, key=k2)
        self.proj = eqx.nn.Linear(self.latent.dim, spec.model.executor.width, key=k3)
        film = spec.model.executor.conditioning == "film"
        self.decoder = Decoder(spec, shapes.values, film=film, length=shapes.length, key=k4)

    def encode(self, xs: Int[Array, "P L"], ys: Int[Array, "P L"]) -> tuple[Float[Array, "P d"], Float[Array, "P d"]]:
        """Per-pair latent mean and log-variance."""
        h = jax.vmap(lambda x, y: self.head(self.encoder(x, y)[0]))(xs, ys)
        mean, logvar = jnp.split(h, 2, axis=-1)
        return mean, logvar

    def decode(self, z: Float[Array, " d"], x: Int[Array, " L"]) -> Float[Array, "L V"]:
        """Logits of y given input x and latent z."""
        return self.decoder(x, None, self.proj(z))

    def spec_nll(self, z: Float[Array, " d"], xs: Array, ys: Array, mask: Array) -> Float[Array, ""]:
        """Mean NLL of the real pairs under latent z (the objective of latent search)."""
        nll, _ = sequence_nll(jax.vmap(self.decode, in_axes=(None, 0))(z, xs), ys)
        return masked_mean(nll, mask)


def _others(p: int) -> np.ndarray:
    """Row j: the indices of the p - 1 pairs other than j, in order."""
    return np.array([[i for i in range(p) if i != j] for j in range(p)], dtype=np.int32).reshape(p, p - 1)


def _lpn_task_loss(model: LPN, xs, ys, mask, key):
    mean, logvar = model.encode(xs, ys)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
    kl = 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar).sum(axis=-1)
    zs = pool(held_out_masks(mask), z)
    # "Grad N" training: a few ascent steps on each pooled latent over its context pairs. The gradient is a
    # constant (stop-gradient), so the encoder learns to land where one step helps, without second order terms.
    # Each held-out pair's latent is scored on the P - 1 others only (gathered), not on all P with the held-out
    # one masked: P (P - 1) decoder passes per step instead of P^2 (20 instead of 25 at P = 5).
    others = _others(xs.shape[0])
    for _ in range(model.latent.inner_steps):
        grads = jax.vmap(jax.grad(model.spec_nll))(zs, xs[others], ys[others], mask[others])
        zs = zs - model.latent.inner_lr * jax.lax.stop_gradient(grads)
    nll, exact = sequence_nll(jax.vmap(model.decode)(zs, xs), ys)
    return masked_mean(nll, mask), masked_mean(kl, mask), masked_mean(exact, mask)


def lpn_loss(model: LPN, batch: Batch, t: Float[Array, ""], *, key: PRNGKeyArray):
    """Leave-one-out reconstruction NLL of every pair from the pooled latent of the others, plus beta * KL."""
    del t
    xs, ys, mask = with_query_pair(batch)
    keys = jax.random.split(key, xs.shape[0])
    nll, kl, exact = jax.vmap(_lpn_task_loss, in_axes=(None, 0, 0, 0, 0))(model, xs, ys, mask, keys)
    loss = nll.mean() + model.latent.beta * kl.mean()
    return loss, {"loss": loss, "nll": nll.mean(), "kl": kl.mean(), "pair_accuracy": exact.mean()}


def latent_search(
    model: LPN, z0: Float[Array, " d"], xs: Array, ys: Array, mask: Array, search: SearchSpec
) -> tuple[Float[Array, " d"], Float[Array, ""], Float[Array, ""]]:
    """Adam descent of the spec NLL over the latent, keeping the best latent seen along the trajectory.

    Returns:
        (best latent, its spec NLL, the spec NLL of `z0`); the best is never worse than the start.
    """
    optim = optax.adam(search.lr)
    objective = jax.value_and_grad(lambda z: model.spec_nll(z, xs, ys, mask))

    def step(carry, _):
        z, state, best_z, best = carry
        loss, grad = objective(z)
        better = loss < best
        best_z = jnp.where(better, z, best_z)
        best = jnp.where(better, loss, best)
        updates, state = optim.update(grad, state, z)
        return (optax.apply_updates(z, updates), state, best_z, best), None

    start = model.spec_nll(z0, xs, ys, mask)
    carry = (z0, optim.init(z0), z0, start)
    (z, _, best_z, best), _ = jax.lax.scan(step, carry, None, length=search.steps)
    final = model.spec_nll(z, xs, ys, mask)  # the last update has not been scored inside the scan
    best_z = jnp.where(final < best, z, best_z)
    return best_z, jnp.minimum(final, best), start


def latent_solution(model: Any, decode: Callable, zs: Array, batch: Batch, soft_zs: Array | None = None) -> Solution:
    """Solution of a latent kind from one latent per task: outputs and spec fit from `zs`, likelihood and soft
    outputs from `soft_zs` (default: `zs`).

    Args:
        model: the model (for `max_length`).
        decode: `decode(z, x) -> logits [L, V]`.
        zs, soft_zs: one latent per task, leading axis B.
        batch: the tasks.
    """
    both = zs[:, None] if soft_zs is None else jnp.stack([zs, soft_zs], axis=1)

    def fit(z, xs, ys, mask, xq):
        nll, exact = sequence_nll(jax.vmap(decode, in_axes=(None, 0))(z, xs), ys)
        return masked_mean(exact, mask), -masked_mean(nll, mask), jnp.argmax(decode(z, xq), axis=-1)

    per_task = jax.vmap(fit, in_axes=(0, None, None, None, None))
    spec_fit, loglik, outputs = jax.vmap(per_task)(
        both, batch.inputs, batch.outputs, batch.pair_mask, batch.query_input
    )
    return Solution(
        programs=jnp.zeros((zs.shape[0], model.max_length), jnp.int32),
        outputs=outputs[:, 0].astype(jnp.int32),
        spec_fit=spec_fit[:, 0],
        spec_loglik=loglik[:, -1],
        soft_outputs=outputs[:, -1].astype(jnp.int32),
    )


LPN_METHODS = ("none", "gradient")


def lpn_solve(model: LPN, batch: Batch, search: SearchSpec, *, key: PRNGKeyArray) -> Solution:
    """`none`: decode with the mean of the encoder means; `gradient`: Adam on the latent (best along the way)."""
    del key
    check_method("lpn", search, LPN_METHODS)

    def infer(xs, ys, mask):
        mean, _ = model.encode(xs, ys)
        z = pool(mask[None, :], mean)[0]
        if search.method == "gradient" and search.steps > 0:
            z, _, _ = latent_search(model, z, xs, ys, mask, search)
        return z

    zs = jax.vmap(infer)(batch.inputs, batch.outputs, batch.pair_mask)
    return latent_solution(model, model.decode, zs, batch)


def build_lpn(spec: Spec, shapes: Shapes, *, key: PRNGKeyArray) -> LPN:
    """Build the LPN model (latent settings from `spec.model.latent`)."""
    return LPN(spec, shapes, key=key)


LPN_KIND = ModelKind(
    name="lpn", build=build_lpn, loss=lpn_loss, solve=eqx.filter_jit(lpn_solve), search_methods=LPN_METHODS,
    default_search="gradient",
    reads=BACKBONE_READS | set(field_names("model.latent")) | {"search.steps", "search.lr"},
)
