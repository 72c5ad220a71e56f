"""Shared building blocks of every model kind: a pre-norm transformer encoder with optional FiLM conditioning.

NLI's inductor and step network and the baselines' encoders and decoders are all built from `Transformer`, so
that comparisons use the same backbone at the same sizes.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["MLP", "Block", "Transformer", "sinusoidal_positions"]


def sinusoidal_positions(length: int, width: int) -> Float[Array, "L D"]:
    """Fixed sinusoidal position embeddings (no parameters, any length)."""
    pos = jnp.arange(length, dtype=jnp.float32)[:, None]
    i = jnp.arange(width // 2, dtype=jnp.float32)[None, :]
    angle = pos / (10000.0 ** (2 * i / width))
    emb = jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)
    if width % 2:
        emb = jnp.concatenate([emb, jnp.zeros((length, 1))], axis=-1)
    return emb


class MLP(eqx.Module):
    """Two-layer GELU MLP applied to the last axis."""

    fc1: eqx.nn.Linear
    fc2: eqx.nn.Linear

    def __init__(self, d_in: int, d_hidden: int, d_out: int, *, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        self.fc1 = eqx.nn.Linear(d_in, d_hidden, key=k1)
        self.fc2 = eqx.nn.Linear(d_hidden, d_out, key=k2)

    def __call__(self, x: Float[Array, "... d_in"]) -> Float[Array, "... d_out"]:
        f = lambda v: self.fc2(jax.nn.gelu(self.fc1(v)))  # noqa: E731
        for _ in range(x.ndim - 1):
            f = jax.vmap(f)
        return f(x)


class Block(eqx.Module):
    """Pre-norm self-attention + MLP block; `cond` (width D) adds a FiLM scale/shift after each norm."""

    norm1: eqx.nn.LayerNorm
    attn: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    mlp: MLP
    film: eqx.nn.Linear | None

    def __init__(self, width: int, heads: int, mlp_ratio: int, *, film: bool, key: PRNGKeyArray):
        k1, k2, k3 = jax.random.split(key, 3)
        self.norm1 = eqx.nn.LayerNorm(width)
        self.attn = eqx.nn.MultiheadAttention(heads, width, key=k1)
        self.norm2 = eqx.nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio * width, width, key=k2)
        if film:
            lin = eqx.nn.Linear(width, 4 * width, key=k3)
            # Start as identity modulation: zero weights, so scale = 1 and shift = 0 at init.
            lin = eqx.tree_at(lambda m: (m.weight, m.bias), lin, (jnp.zeros_like(lin.weight), jnp.zeros_like(lin.bias)))
            self.film = lin
        else:
            self.film = None

    def __call__(self, x: Float[Array, "N D"], cond: Float[Array, " D"] | None = None) -> Float[Array, "N D"]:
        h = jax.vmap(self.norm1)(x)
        if self.film is not None and cond is not None:
            s1, b1, s2, b2 = jnp.split(self.film(cond), 4)
            h = h * (1 + s1)[None, :] + b1[None, :]
        x = x + self.attn(h, h, h)
        h = jax.vmap(self.norm2)(x)
        if self.film is not None and cond is not None:
            h = h * (1 + s2)[None, :] + b2[None, :]
        return x + self.mlp(h)


class Transformer(eqx.Module):
    """A stack of `Block`s with a final LayerNorm. Bidirectional (no mask): sequences are sets of positions."""

    blocks: tuple[Block, ...]
    norm: eqx.nn.LayerNorm

    def __init__(self, layers: int, width: int, heads: int, mlp_ratio: int, *, film: bool = False, key: PRNGKeyArray):
        keys = jax.random.split(key, layers)
        self.blocks = tuple(Block(width, heads, mlp_ratio, film=film, key=k) for k in keys)
        self.norm = eqx.nn.LayerNorm(width)

    def __call__(self, x: Float[Array, "N D"], cond: Float[Array, " D"] | None = None) -> Float[Array, "N D"]:
        for block in self.blocks:  # a handful of layers, unrolled at trace time (not program steps)
            x = block(x, cond)
        return jax.vmap(self.norm)(x)
