"""Execution traces of discrete NLI programs: the interpreter's state decoded after every token.

The same hard-token semantics as `NLI.run_hard` (what replay runs), step by step, so that a trace's last row is
exactly the program's output; `nlic run --trace` and the exported trace of `nlic compile` are built on it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from nlic.compiler.models.nli.model import NLI

__all__ = ["trace"]


def _decode(lp: Float[Array, "L V"]) -> tuple[Int[Array, " L"], Float[Array, " L"]]:
    """Likeliest value per position and its probability, from log-probabilities."""
    arg = jnp.argmax(lp, axis=-1)
    return arg, jnp.exp(jnp.take_along_axis(lp, arg[:, None], axis=-1)[:, 0])


def _trace_one(
    model: NLI, tokens: Int[Array, " T"], x: Int[Array, " L"]
) -> tuple[Int[Array, "T L"], Float[Array, "T L"]]:
    """States after each of the T tokens of one program run on one input (rows 1..T of the trace).

    Every branch repeats `NLI.run_hard`'s computation of its carry operation for operation (the extra outputs
    only read it), so the last row equals `run_hard`'s output bit for bit.
    """
    r = model.cfg.relaxation
    ex = model.executor
    V = model.cfg.values
    codes = ex.code_embed[tokens]
    is_skip = tokens == model.cfg.skip_token
    vals0 = x.astype(jnp.int32)
    probs0 = jnp.ones(x.shape, jnp.float32)

    if not r.recurrent:
        # One pass conditioned on the summed codes: row k is that pass over the program's first k tokens (the
        # mask of the last row is all ones, so it is run_hard's sum exactly).
        live = 1.0 - is_skip.astype(codes.dtype)
        steps = jnp.arange(tokens.shape[0])

        def prefix(carry, inp):
            vals, probs = carry
            k, s = inp
            code = jnp.einsum("t,td->d", live * (steps <= k).astype(codes.dtype), codes)
            v, p = _decode(jax.nn.log_softmax(ex.logits(ex.apply(ex.value_embed[x], code)), axis=-1))
            out = (jnp.where(s, vals, v.astype(jnp.int32)), jnp.where(s, probs, p))
            return out, out

        _, rows = jax.lax.scan(prefix, (vals0, probs0), (steps, is_skip))
        return rows

    if r.value_bottleneck:

        def step(carry, inp):
            pi, vals, probs = carry
            code, s = inp
            n = ex.step_logits(pi, code)
            arg = jnp.argmax(n, axis=-1)
            p = jnp.take_along_axis(jax.nn.softmax(n, axis=-1), arg[:, None], axis=-1)[:, 0]
            pi = jnp.where(s, pi, jax.nn.one_hot(arg, V))
            vals, probs = jnp.where(s, vals, arg.astype(jnp.int32)), jnp.where(s, probs, p)
            return (pi, vals, probs), (vals, probs)

        _, rows = jax.lax.scan(step, (jax.nn.one_hot(x, V), vals0, probs0), (codes, is_skip))
        return rows

    def step_h(carry, inp):
        h, vals, probs = carry
        code, s = inp
        h = jnp.where(s, h, ex.apply(h, code))
        v, p = _decode(jax.nn.log_softmax(ex.logits(h), axis=-1))
        vals, probs = jnp.where(s, vals, v.astype(jnp.int32)), jnp.where(s, probs, p)
        return (h, vals, probs), (vals, probs)

    _, rows = jax.lax.scan(step_h, (ex.value_embed[x], vals0, probs0), (codes, is_skip))
    return rows


def trace(
    model: NLI, programs: Int[ArrayLike, "B T"], inputs: Int[ArrayLike, "B L"]
) -> tuple[Int[Array, "B T+1 L"], Float[Array, "B T+1 L"]]:
    """Run discrete programs token by token and decode the interpreter's state after every token.

    Jitted, one trace per shape; `lax.scan` over the program's tokens, `vmap` over the batch.

    Args:
        model: the NLI model.
        programs: int [B, T] token ids (padded with the skip token).
        inputs: int [B, L] encoded inputs.

    Returns:
        `(values, probs)`, int32 and float32 [B, T+1, L]: row 0 is the input (probability 1), row k the state
        after token k: with the value bottleneck, the argmax value of that step and its softmax probability;
        without it, the decoded hidden state; without recurrence (ablation), the one pass over the first k
        tokens. A skip token repeats the row before it. Row T equals `execute(model, programs, inputs)`.
    """
    return _trace(model, jnp.asarray(programs, jnp.int32), jnp.asarray(inputs, jnp.int32))


@eqx.filter_jit
def _trace(
    model: NLI, programs: Int[Array, "B T"], inputs: Int[Array, "B L"]
) -> tuple[Int[Array, "B T+1 L"], Float[Array, "B T+1 L"]]:
    def one(tokens, x):
        vals, probs = _trace_one(model, tokens, x)
        first_v = x.astype(jnp.int32)[None]
        first_p = jnp.ones((1,) + x.shape, jnp.float32)
        return jnp.concatenate([first_v, vals]), jnp.concatenate([first_p, probs.astype(jnp.float32)])

    return jax.vmap(one)(programs, inputs)
