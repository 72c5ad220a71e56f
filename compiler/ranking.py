"""Ranking candidate programs or latents by how well they fit a task's spec: shared by every search.

A candidate is better when it reproduces more spec pairs exactly, then when its likelihood is higher. The two
are compared as a pair, never folded into one float: in float32, `fit * 1e6 + ll` cannot tell log-likelihoods
-7e-4 and -5e-5 apart, and such ties between exact programs are what the likelihood decides (a less reliable
token repeated 7 times against a reliable one).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

__all__ = ["LL_FLOOR", "clip_loglik", "better", "best_index"]

LL_FLOOR = -1e6
"""Log-likelihoods are clipped here, so that -inf or NaN never wins or blocks a comparison."""


def clip_loglik(ll: Float[Array, "..."]) -> Float[Array, "..."]:
    """`ll` with NaN and anything below `LL_FLOOR` mapped to `LL_FLOOR` (and nothing above 0)."""
    return jnp.clip(jnp.nan_to_num(ll, nan=LL_FLOOR), LL_FLOOR, 0.0)


def better(
    fit: Float[Array, "..."], ll: Float[Array, "..."], fit0: Float[Array, "..."], ll0: Float[Array, "..."]
) -> Bool[Array, "..."]:
    """Whether (fit, ll) beats (fit0, ll0) lexicographically: more of the spec reproduced exactly, then a higher
    likelihood."""
    return (fit > fit0) | ((fit == fit0) & (clip_loglik(ll) > clip_loglik(ll0)))


def best_index(fit: Float[Array, " N"], ll: Float[Array, " N"]) -> Int[Array, ""]:
    """Index of the lexicographically best (fit, ll) candidate; the first one among exact ties."""
    return jnp.argmax(jnp.where(fit == fit.max(), clip_loglik(ll), -jnp.inf))
