"""The test-time training (TTT) baseline: the in-context model, fine-tuned on each task's spec pairs.

Fine-tuning uses the leave-one-out loss over the spec pairs (Adam, `search.steps` steps at `search.lr`), runs
on a per-task copy of the weights vmapped over tasks, and never modifies the stored model.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

from nlic.compiler.kinds import Batch, ModelKind, Solution
from nlic.compiler.models.in_context import (
    IN_CONTEXT,
    InContext,
    build_in_context,
    check_method,
    in_context_logits,
    in_context_loss,
    loo_task_loss,
    solution_from_logits,
    with_query_slot,
)
from nlic.compiler.spec import SearchSpec

__all__ = ["TTT", "fine_tune", "ttt_solve"]

METHODS = ("none", "gradient", "ttt")


def fine_tune(model: InContext, xs: Array, ys: Array, mask: Array, search: SearchSpec) -> InContext:
    """A copy of `model` fine-tuned on one task's spec pairs with the leave-one-out loss.

    Args:
        model: the trained in-context model (left unchanged).
        xs, ys: int [m, L] spec pairs; mask: bool [m], the real ones.
        search: `steps` Adam steps at learning rate `lr`.

    Returns:
        The fine-tuned model (same structure).
    """
    params, static = eqx.partition(model, eqx.is_inexact_array)
    optim = optax.adam(search.lr)

    # Each spec pair is predicted from the others with the query's slot as padding too: the slot count of training.
    xs_q, ys_q, mask_q = with_query_slot(xs, ys, mask)

    def loss_fn(p):
        nll, _ = loo_task_loss(eqx.combine(p, static), xs_q, ys_q, mask_q, mask_q)
        return nll

    def step(carry, _):
        p, state = carry
        grads = jax.grad(loss_fn)(p)
        updates, state = optim.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, optim.init(params)), None, length=search.steps)
    return eqx.combine(params, static)


def ttt_solve(model: InContext, batch: Batch, search: SearchSpec, *, key: PRNGKeyArray) -> Solution:
    """`none`: the in-context prediction; `gradient` (alias `ttt`): fine-tune per task first, then predict."""
    del key
    check_method("ttt", search, METHODS)
    if search.method == "none" or search.steps == 0:
        query, loo = in_context_logits(model, batch)
        return solution_from_logits(query, loo, batch, model.max_length)

    def one(xs, ys, mask, xq):
        tuned = fine_tune(model, xs, ys, mask, search)
        sub = Batch(xs[None], ys[None], mask[None], xq[None], jnp.zeros_like(xq)[None])
        query, loo = in_context_logits(tuned, sub)
        return query[0], loo[0]

    query, loo = jax.vmap(one)(batch.inputs, batch.outputs, batch.pair_mask, batch.query_input)
    return solution_from_logits(query, loo, batch, model.max_length)


TTT = ModelKind(
    name="ttt",
    build=build_in_context,
    loss=in_context_loss,
    solve=eqx.filter_jit(ttt_solve),
    search_methods=("none", "gradient"),  # `ttt` is accepted as an alias of `gradient`
    default_search="gradient",
    reads=IN_CONTEXT.reads | {"search.steps", "search.lr"},
)
