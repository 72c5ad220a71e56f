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
3. An unused token (in no program of the sample) becomes a copy of it: the same code in the interpreter, so both
   execute alike at first, and in the inductor's output layer the same row plus a direction that separates the
   group: from the tasks the token serves and solves to the group when there are such tasks, else along the
   group's own principal axis. The new token's bias is set so that the group's half on that side of the midpoint
   writes the new token, and lowered where needed so that it wins no slot the old token did not hold. Training
   then lets each code specialise on its own tasks.

Deterministic: a function of the weights and the sample (no random draw), so a resumed run splits the same way.
"""

from __future__ import annotations

import collections
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nlic.compiler.kinds import Batch

__all__ = ["Split", "split_merged_token"]

_GAP = 3.0
"""Logit margin (new token over old) at the middle of the side of the group that moves to the new token."""


@dataclasses.dataclass(frozen=True)
class Split:
    """What a split did: the token split (`old`), the token that became its copy (`new`), the program and size of the
    unsolved group, and how the group was divided (`from the solved tasks it serves` or `principal axis`)."""

    old: int
    new: int
    program: tuple[int, ...]
    tasks: int
    how: str

    def summary(self) -> str:
        text = " ".join(f"t{t}" for t in self.program)
        return f"t{self.old} -> t{self.new} ({self.tasks} unsolved tasks share the program `{text}`; {self.how})"


@eqx.filter_jit
def _programs(model, batch: Batch):
    pooled = jax.vmap(model.pooled_slots)(batch.inputs, batch.outputs, batch.pair_mask)
    programs = jnp.argmax(jax.vmap(model.token_logits)(pooled), axis=-1)
    solved = jnp.all(model.execute(programs, batch.query_input) == batch.query_output, axis=-1)
    hidden = jax.vmap(jax.vmap(lambda v: jax.nn.gelu(model.inductor.head.fc1(v))))(pooled)  # B T H
    return programs, solved, hidden


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

    bad = np.stack([feature(i) for i in range(len(progs)) if has[i] and not solved[i] and progs[i] == group])
    good = [feature(i) for i in range(len(progs)) if has[i] and solved[i] and old in progs[i]]
    if good:
        direction = bad.mean(0) - np.mean(good, axis=0)
        mid = 0.5 * float((bad @ direction).mean() + (np.stack(good) @ direction).mean())
        how = "from the solved tasks it serves"
    else:
        _, _, vt = np.linalg.svd(bad - bad.mean(0), full_matrices=False)
        direction = vt[0] * np.sign(vt[0][np.argmax(np.abs(vt[0]))])  # a fixed sign: deterministic
        mid = float(np.median(bad @ direction))
        how = "principal axis"
    proj = bad @ direction
    scale = _GAP / max(abs(float(proj.mean()) - mid), float(proj.std()), 1e-6)
    fc2 = model.inductor.head.fc2
    w_new = np.asarray(fc2.weight[old], np.float64) + direction * scale / 2
    b_new = float(fc2.bias[old]) - mid * scale / 2
    # Only where the old token is written may the new one win: lower its bias until it stays a margin below the
    # winner at every other (task, slot) of the sample (the slot MLP is shared by all slots).
    logits = hidden @ np.asarray(fc2.weight, np.float64).T + np.asarray(fc2.bias, np.float64)
    elsewhere = (programs != old) & has[:, None]
    if elsewhere.any():
        over = (hidden @ w_new + b_new) - np.delete(logits, new, axis=-1).max(-1) + 1.0
        b_new -= max(0.0, float(over[elsewhere].max()))
    w = fc2.weight.at[new].set(jnp.asarray(w_new, fc2.weight.dtype))
    b = fc2.bias.at[new].set(b_new)
    code = model.executor.code_embed.at[new].set(model.executor.code_embed[old])
    model = eqx.tree_at(lambda m: (m.inductor.head.fc2.weight, m.inductor.head.fc2.bias, m.executor.code_embed),
                        model, (w, b, code))
    return model, Split(old=old, new=new, program=group, tasks=int(n), how=how)
