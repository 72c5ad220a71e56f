"""Token splitting: give a group of tasks that share one failing program a token of its own.

A language that merges several primitives into one token never separates them by gradient alone: the inductor has
no better token to move the merged tasks to, since no other token's code has learned their operation, and no other
code learns it, since the inductor never picks that token for them (Comp-I: `shift1` and `shift2` written with the
same two tokens from step 1000 to 3000, or every positional primitive with the token of `complement`). Vector
quantisers meet the same dead end and leave it by splitting a code in two (the LBG algorithm); this is that step for
an NLI codebook:

1. Run the inductor's argmax program of every task of a fixed sample (training's selection sample) and group the
   tasks it does not solve by their program. The largest group (at least `min_group` tasks) is the merged one.
2. Its token used least across the sample is the one to split (the token the group does not share with others).
3. Divide the group in two, as k-means with the reconstruction loss as the distance: a code is fitted (from the
   old token's code, `_FIT_STEPS` Adam steps) to each side, and each round moves exactly the tasks the moving side's
   code reconstructs better. The first division follows the principal axis of the tasks' loss gradients with
   respect to the old code (tasks of one primitive pull it the same way). The side that stays keeps the old token
   and its code, which still serves the tasks it solves; a later split divides it again. A plain copy of the old
   code, as before 2026-12-04, left the inductor no reason to keep the moved tasks on the new token: with both
   codes alike, the moved half drifted back within 50 steps (Comp-I seed 2, `complement`, `double` and `inc` on
   one token).
4. An unused token (in no program of the sample) takes the moving side's code, and in the inductor's output layer a
   row fitted (from the old token's row, `_ROW_STEPS` Adam steps of cross-entropy, every other row fixed) so that
   the moving tasks write it and every other (task, slot) keeps its token; then its bias is lowered until it wins
   no slot of a solved task or one the old token does not hold, nor one of the group's side that stays. Where the
   inductor's features do not separate the two sides yet, the moving tasks' new logit stays a little below the old
   one: training's relaxed tokens still run the new code in part, and its lower loss pulls the tasks over.

Deterministic: a function of the weights and the sample (no random draw; a fixed number of fit steps), so a resumed
run splits the same way.
"""

from __future__ import annotations

import collections
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nlic.compiler.kinds import Batch
from nlic.compiler.models.nli.model import _pair_loglik

__all__ = ["Split", "split_merged_token"]

_MARGIN = 1.0
"""Logit margin by which the new token stays below the winner at every (task, slot) where the old token is not
written."""

_TIE = 1e-3
"""Logit margin by which the new token stays below the old one where the side of the group that stays writes it."""

_ROW_STEPS = 300
"""Adam steps that fit the new token's row of the inductor's output layer."""

_ROW_LR = 0.05
"""Step size of that fit."""


@dataclasses.dataclass(frozen=True)
class Split:
    """What a split did: the token split (`old`), the token that took part of its group (`new`), the program and size
    of the unsolved group, how many of its tasks moved to the new token (`moved`; `writes` of them write it in their
    argmax program at once), and their mean reconstruction loss under the old token's code (`before`) and under the
    new token's code, fitted to them (`after`)."""

    old: int
    new: int
    program: tuple[int, ...]
    tasks: int
    moved: int
    writes: int
    before: float
    after: float

    def summary(self) -> str:
        text = " ".join(f"t{t}" for t in self.program)
        return (f"t{self.old} -> t{self.new} ({self.tasks} unsolved tasks share the program `{text}`; {self.moved} "
                f"move to the new token ({self.writes} write it at once), whose code fitted to them takes their "
                f"loss {self.before:.3f} -> {self.after:.3f})")


_FIT_STEPS = 64
"""Adam steps that fit a side's code to its tasks (each side, each round of the division)."""

_ROUNDS = 3
"""Most rounds of the division (fit both sides' codes, move each task to the side whose code reconstructs it better)."""

_FIT_LR = 0.05
"""Step size of the code fit (Adam)."""


def _task_loss(model, old, code, program, inputs, outputs, mask):
    """A task's reconstruction NLL of its spec pairs under `program` (hard tokens, soft value states at temperature
    1, no noise), token `old`'s code replaced by `code`."""
    model = eqx.tree_at(lambda m: m.executor.code_embed, model, model.executor.code_embed.at[old].set(code))
    codes, gate = model.codes(jax.nn.one_hot(program, model.cfg.vocab, dtype=code.dtype))
    key = jax.random.key(0)  # unused: no noise

    def pair(x, y):
        return -_pair_loglik(model.run_soft(codes, gate, x, jnp.asarray(1.0, code.dtype), key=key, noise=False), y)

    w = mask.astype(code.dtype)
    return (jax.vmap(pair)(inputs, outputs) * w).sum() / jnp.maximum(w.sum(), 1.0)


@eqx.filter_jit
def _with_code(model, batch: Batch, programs, old, code):
    """Every task's loss (its argmax program) with token `old`'s code replaced by `code`, and each task's gradient
    of that loss with respect to `code`."""
    def one(p, xs, ys, m):
        return jax.value_and_grad(lambda c: _task_loss(model, old, c, p, xs, ys, m))(code)
    return jax.vmap(one)(programs, batch.inputs, batch.outputs, batch.pair_mask)


@eqx.filter_jit
def _fit_code(model, batch: Batch, programs, old, code, weight):
    """`code` after `_FIT_STEPS` Adam steps on the `weight`-weighted mean loss of the tasks (token `old` read as it)."""
    def total(c):
        losses = jax.vmap(lambda p, xs, ys, m: _task_loss(model, old, c, p, xs, ys, m))(
            programs, batch.inputs, batch.outputs, batch.pair_mask)
        return (losses * weight).sum() / jnp.maximum(weight.sum(), 1.0)

    opt = optax.adam(_FIT_LR)

    def step(carry, _):
        c, s = carry
        g = jax.grad(total)(c)
        u, s = opt.update(g, s, c)
        return (optax.apply_updates(c, u), s), None

    (c, _), _ = jax.lax.scan(step, (code, opt.init(code)), None, length=_FIT_STEPS)
    return c


@jax.jit
def _fit_row(hidden, logits, w, b, target, weight, new):
    """The new token's row (`w`, `b`: the old token's to start) of the inductor's output layer, fitted by
    `_ROW_STEPS` Adam steps so that the tokens `target` wins at every (task, slot) (cross-entropy, `weight`ed), every
    other token's logits (`logits`) fixed: the moving tasks write the new token, and no other slot does."""
    def loss(p):
        z = logits.at[..., new].set(hidden @ p[0] + p[1])
        ce = -jnp.take_along_axis(jax.nn.log_softmax(z, axis=-1), target[..., None], axis=-1)[..., 0]
        return (ce * weight).sum()

    opt = optax.adam(_ROW_LR)

    def step(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss)(p), s, p)
        return (optax.apply_updates(p, u), s), None

    p = (w, b)
    (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=_ROW_STEPS)
    return p


@eqx.filter_jit
def _programs(model, batch: Batch):
    pooled = jax.vmap(model.pooled_slots)(batch.inputs, batch.outputs, batch.pair_mask)
    programs = jnp.argmax(jax.vmap(model.token_logits)(pooled), axis=-1)
    solved = jnp.all(model.execute(programs, batch.query_input) == batch.query_output, axis=-1)
    hidden = jax.vmap(jax.vmap(lambda v: jax.nn.gelu(model.inductor.head.fc1(v))))(pooled)  # B T H
    return programs, solved, hidden


def _axis_side(x: np.ndarray) -> np.ndarray:
    """The rows of `x` above the median along its principal axis (a fixed sign: deterministic); none when the rows
    do not differ."""
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    proj = x @ (vt[0] * np.sign(vt[0][np.argmax(np.abs(vt[0]))]))
    return proj > np.median(proj)


def _weight(n: int, index: np.ndarray) -> np.ndarray:
    """Weights over n tasks: 1 at `index`, else 0."""
    w = np.zeros(n, np.float32)
    w[index] = 1.0
    return w


def _divide(model, batch: Batch, programs: np.ndarray, old: int, members: np.ndarray,
            features: np.ndarray) -> tuple[np.ndarray, jax.Array, float, float]:
    """Which of the group's tasks (`members`, indices into the batch) move to the new token, and its code.

    Two codes compete for the group's tasks, as in k-means with the reconstruction loss as the distance: one fitted
    (from the old code) to the tasks that move, one to the tasks that stay. The first division follows the principal
    axis of the tasks' loss gradients with respect to the old code (tasks of one primitive pull the code the same
    way), or of their `features` where the gradients do not differ (a code that changes nothing yet); each round
    then moves exactly the tasks the first code reconstructs better than the second. Neither side is ever empty.
    The tasks that stay keep the old token and its code (which serves the tasks it solves): a later split divides
    them again, so a token that merged three primitives gives one away at each split.

    Returns:
        (bool mask over `members`, the new code, the moving tasks' mean loss under the old code and under the new).
    """
    progs, old_i = jnp.asarray(programs), jnp.asarray(old, jnp.int32)  # traced: one compile for every token
    c_old = model.executor.code_embed[old]
    loss_old, grads = (np.asarray(a, np.float64) for a in _with_code(model, batch, progs, old_i, c_old))
    moving = _axis_side(grads[members])
    if not moving.any():
        moving = _axis_side(features)
    if not moving.any():  # the tasks look alike in every respect: the first half moves
        moving = np.arange(len(members)) < len(members) // 2
    for round_ in range(_ROUNDS):
        fitted = [_fit_code(model, batch, progs, old_i, c_old, jnp.asarray(_weight(len(programs), members[side])))
                  for side in (moving, ~moving)]
        loss_new, loss_stay = (np.asarray(_with_code(model, batch, progs, old_i, c)[0], np.float64) for c in fitted)
        better = loss_new[members] < loss_stay[members]
        if round_ == _ROUNDS - 1 or not better.any() or better.all() or (better == moving).all():
            break
        moving = better
    idx = members[moving]
    return moving, fitted[0], float(loss_old[idx].mean()), float(loss_new[idx].mean())


def split_merged_token(model, batch: Batch, has_target: np.ndarray, *, min_group: int = 3):
    """Split the token of the largest group of unsolved tasks that share a program (module docstring).

    Args:
        model: an NLI model (`nlic.compiler.models.nli.NLI`), weights on this process.
        batch: the sample's tasks.
        has_target: bool [B], tasks whose query output is known (the others are never counted).
        min_group: the smallest group worth a token.

    Returns:
        (model, Split) after a split; (model, None), unchanged, when no group reaches `min_group`, every token is
        in use, or the model has no tokens (the continuous-program ablation).
    """
    if model.program_proj is not None:  # the continuous-program ablation has no tokens to split
        return model, None
    programs, solved, hidden = (np.asarray(a) for a in _programs(model, batch))
    hidden = hidden.astype(np.float64)
    has = np.asarray(has_target, bool)
    skip, vocab = model.cfg.skip_token, model.cfg.vocab
    progs = [tuple(int(t) for t in p if t != skip) for p in programs]
    used = {t for p in progs for t in p}
    unused = [k for k in range(vocab) if k != skip and k not in used]
    groups = collections.Counter(p for p, ok, h in zip(progs, solved, has) if h and not ok and p)
    if not unused or not groups:
        return model, None
    group, n = min(groups.items(), key=lambda kv: (-kv[1], kv[0]))  # the largest; ties: the smallest program
    if n < min_group:
        return model, None
    freq = collections.Counter(t for p in progs for t in p)
    old = min(group, key=lambda t: (freq[t], t))
    new = unused[0]

    def feature(i: int) -> np.ndarray:  # the slot MLP's hidden layer at the task's first slot holding `old`
        return hidden[i, int(np.flatnonzero(programs[i] == old)[0])]

    members = np.flatnonzero([has[i] and not solved[i] and progs[i] == group for i in range(len(progs))])
    moving, code_new, before, after = _divide(model, batch, programs, old, members,
                                              np.stack([feature(int(i)) for i in members]))
    fc2 = model.inductor.head.fc2
    logits = hidden @ np.asarray(fc2.weight, np.float64).T + np.asarray(fc2.bias, np.float64)  # B T K
    target = programs.copy()
    moves = np.zeros(programs.shape, bool)
    moves[members[moving]] = programs[members[moving]] == old
    target[moves] = new
    valid = np.broadcast_to(has[:, None], programs.shape)
    weight = np.where(moves, 0.5 / max(int(moves.sum()), 1), 0.0) \
        + np.where(valid & ~moves, 0.5 / max(int((valid & ~moves).sum()), 1), 0.0)
    w_new, b_new = (np.asarray(a, np.float64) for a in _fit_row(
        jnp.asarray(hidden, jnp.float32), jnp.asarray(logits, jnp.float32), fc2.weight[old], fc2.bias[old],
        jnp.asarray(target, jnp.int32), jnp.asarray(weight, jnp.float32), jnp.asarray(new, jnp.int32)))
    b_new = float(b_new)
    # The new token may win only where a moving task writes the old one: lower its bias until it stays a margin below
    # the winner at every other (task, slot) of the sample, the solved tasks' programs kept whole (the slot MLP is
    # shared by all slots, and the inductor's features need not separate the group's sides yet).
    new_logit = hidden @ w_new + b_new
    others = np.delete(logits, new, axis=-1).max(-1)
    elsewhere = ((programs != old) | solved[:, None]) & valid
    margin = np.where(elsewhere, _MARGIN, _TIE)  # the group's side that stays: never above the old token
    guarded = valid & ~moves
    if guarded.any():
        lower = max(0.0, float((new_logit - others + margin)[guarded].max()))
        b_new, new_logit = b_new - lower, new_logit - lower
    # Where the features do not separate the sides yet, the moving tasks' new logit stays close below the old one:
    # under training's relaxed tokens they still run the new code in part, and its lower loss pulls them over.
    writes = ((new_logit > others) & moves).any(-1)
    w = fc2.weight.at[new].set(jnp.asarray(w_new, fc2.weight.dtype))
    b = fc2.bias.at[new].set(b_new)
    code = model.executor.code_embed.at[new].set(code_new)
    model = eqx.tree_at(lambda m: (m.inductor.head.fc2.weight, m.inductor.head.fc2.bias, m.executor.code_embed),
                        model, (w, b, code))
    return model, Split(old=old, new=new, program=group, tasks=int(n), moved=int(moving.sum()),
                        writes=int(writes.sum()), before=before, after=after)
