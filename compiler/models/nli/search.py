"""Test-time program search for NLI models (method.md section 4): a registry of search methods, each a value.

Every method returns a discrete program per task, scored exactly with hard tokens on the spec pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from nlic.compiler.kinds import Batch, Solution
from nlic.compiler.models.nli.model import NLI, _pair_loglik, pad_program, relax_tokens, spec_scores
from nlic.compiler.ranking import best_index, better
from nlic.grammar.registry import Registry
from nlic.compiler.spec import SearchSpec, tree_nodes

__all__ = ["ENUMERATION_CHUNK", "ENUMERATION_NODES", "SearchMethod", "SEARCH_METHODS", "Task", "enumeration_capacity",
           "search_cost"]


class Task(eqx.Module):
    """One task's spec pairs and query input (the per-task view every method is vmapped over); built for a whole
    batch at once (leading `*batch` axes), then vmapped."""

    inputs: Int[Array, "*batch m L"]
    outputs: Int[Array, "*batch m L"]
    mask: Bool[Array, "*batch m"]
    query: Int[Array, "*batch L"]


@dataclasses.dataclass(frozen=True)
class SearchMethod:
    """A search strategy.

    Attributes:
        name: registry name (`search.method`).
        run: `run(model, batch, search, *, key) -> Solution` (jitted inside; one trace per static search spec).
        cost: `cost(model, search) -> int`, program executions on one spec pair per task (the budget measure).
        doc: one line for help texts.
    """

    name: str
    run: Callable[..., Solution]
    cost: Callable[[NLI, SearchSpec], int]
    doc: str


SEARCH_METHODS: Registry[SearchMethod] = Registry("search method")

def _soft_spec_loglik(
    model: NLI, slots: Float[Array, "T D"], task: Task, tau_e: Array, tau_d: Array, *, key: PRNGKeyArray, noise: bool
) -> Float[Array, ""]:
    """Mean log-likelihood of the valid spec pairs under the soft program of slot embeddings `slots`."""
    k1, k2 = jax.random.split(key)
    z = relax_tokens(model.token_logits(slots), tau_e, model.cfg.relaxation, key=k1, noise=noise)
    codes, gate = model.codes(z, slots)
    keys = jax.random.split(k2, task.inputs.shape[0])
    ll = jax.vmap(lambda x, y, k: _pair_loglik(model.run_soft(codes, gate, x, tau_d, key=k, noise=noise), y))(
        task.inputs, task.outputs, keys
    )
    w = task.mask.astype(ll.dtype)
    return (w * ll).sum() / jnp.maximum(w.sum(), 1.0)


def _soft_predict(model: NLI, slots: Float[Array, "T D"], x: Int[Array, " L"], tau_e: Array, tau_d: Array) -> Int[Array, " L"]:
    """Query prediction of the noise-free soft program."""
    z = relax_tokens(model.token_logits(slots), tau_e, model.cfg.relaxation, key=jax.random.key(0), noise=False)
    codes, gate = model.codes(z, slots)
    return jnp.argmax(model.run_soft(codes, gate, x, tau_d, key=jax.random.key(0), noise=False), axis=-1)


def _end_temps(search: SearchSpec) -> tuple[Array, Array]:
    one = jnp.ones((), jnp.float32)
    return jnp.asarray(search.tau_inductor.at(one), jnp.float32), jnp.asarray(search.tau_executor.at(one), jnp.float32)


def _discrete_outputs(model: NLI, program: Int[Array, " T"], task: Task) -> Int[Array, " L"]:
    out = model.run_hard(program, task.query)[0]
    if model.program_proj is not None:  # continuous-program ablation: tokens are not the program
        return jnp.zeros_like(out)
    return out


def _slots(model: NLI, task: Task, search: SearchSpec) -> Float[Array, "S D"]:
    """The pooled slot embeddings padded to the search's `search.slots` slots (see `NLI.extend_slots`)."""
    cfg = model.cfg
    return model.extend_slots(model.pooled_slots(task.inputs, task.outputs, task.mask),
                              search.slots(cfg.length, cfg.max_length))


def _tasks(batch: Batch) -> Task:
    return Task(batch.inputs, batch.outputs, batch.pair_mask, batch.query_input)


def _statics(search: SearchSpec) -> SearchSpec:
    """The search spec with array-valued hyper-parameters zeroed, so that changing them does not re-trace."""
    return dataclasses.replace(search, lr=0.0, init_noise=0.0)


def _arguments(model: NLI, search: SearchSpec, *, enumerates: bool) -> tuple[SearchSpec, dict[str, Array]]:
    """The static search spec and the array hyper-parameters a search method's jitted function takes."""
    hyper = {"lr": jnp.asarray(search.lr, jnp.float32), "init_noise": jnp.asarray(search.init_noise, jnp.float32)}
    static = _statics(search)
    if enumerates:
        cfg = model.cfg
        hyper["depth"] = jnp.asarray(search.depth, jnp.int32)
        static = dataclasses.replace(
            static, depth=enumeration_capacity(search.branch_width(cfg.vocab), search.depth, cfg.max_length))
    return static, hyper


def _runner(per_task: Callable[..., tuple], *, enumerates: bool = False) -> Callable[..., Solution]:
    """Wrap a per-task search function into a jitted, task-vmapped `run(model, batch, search, *, key, tokens=None)`.

    For methods that `enumerates`, the depth is an array (`hyper["depth"]`) and the static search spec holds the
    depth the enumeration is compiled for (`enumeration_capacity`): `deepen`'s stages share one compiled function.
    Their `search.depth` is cut to `search.programs` first (`SearchSpec.fitted`), and `tokens` (as many as
    `search.branch`) replaces each task's likeliest tokens as the ones enumerated (`nlic.runtime.solve` passes the
    language's tokens in use); the other methods ignore it.
    """

    @eqx.filter_jit
    def batched(model, batch, search, hyper, key):
        keys = jax.random.split(key, batch.inputs.shape[0])
        return jax.vmap(lambda task, k: per_task(model, task, search, hyper, k))(_tasks(batch), keys)

    def run(model: NLI, batch: Batch, search: SearchSpec, *, key: PRNGKeyArray,
            tokens: Sequence[int] | None = None) -> Solution:
        static, hyper = _arguments(model, search.fitted(model.cfg.vocab, model.cfg.max_length) if enumerates else search,
                                   enumerates=enumerates)
        if enumerates and tokens is not None:  # the tokens to enumerate over (as many as search.branch)
            if len(tokens) != static.branch_width(model.cfg.vocab):
                raise ValueError(f"{len(tokens)} tokens to enumerate over, but search.branch is {static.branch}")
            hyper["ops"] = jnp.asarray(tokens, jnp.int32)
        prog, out, fit, ll, soft = batched(model, batch, static, hyper, key)
        prog = pad_program(prog, model.cfg.max_length, model.cfg.skip_token)  # searched on search.slots slots
        if model.program_proj is not None:
            out = soft
        return Solution(programs=prog, outputs=out, spec_fit=fit, spec_loglik=ll, soft_outputs=soft)

    run.batched = batched  # exposed for trace-count tests
    return run


def _inductor_program(model: NLI, task: Task, pooled: Float[Array, "T D"]) -> tuple[Int[Array, " Tmax"],
                                                                                    Float[Array, ""], Float[Array, ""]]:
    """The inductor's own program: the argmax tokens of its `language.length` pooled slots (`pooled`, the task's
    `NLI.pooled_slots`; the program training runs), padded with skip to `max_length`, with its exact fit and hard
    likelihood on the spec pairs.

    Every NLI search tries it. The search's extra slots (`search.length`, `NLI.extend_slots`) copy the slot most
    like skip; where no slot writes skip (grid1d's `t7 t7 t7 t7 tX tY`) those copies repeat a token, and a search
    that tried only the extended program never ran the one the inductor wrote (grid1d: 0.67 of ID tasks answered
    by this program, 0.60 by an enumeration without it)."""
    cfg = model.cfg
    prog = jnp.argmax(model.token_logits(pooled), axis=-1).astype(jnp.int32)
    fit, ll = spec_scores(model, prog, task.inputs, task.outputs, task.mask)  # skip padding is an exact no-op
    return pad_program(prog, cfg.max_length, cfg.skip_token), fit, ll


# --------------------------------------------------------------------------------------------------- none
def _none(model: NLI, task: Task, search: SearchSpec, hyper: dict, key: PRNGKeyArray) -> tuple:
    """The inductor's program (`_inductor_program`), and the soft program of the same `language.length` slots."""
    slots = model.pooled_slots(task.inputs, task.outputs, task.mask)
    prog, fit, _ = _inductor_program(model, task, slots)
    tau_e, tau_d = _end_temps(search)
    ll = _soft_spec_loglik(model, slots, task, tau_e, tau_d, key=key, noise=False)
    return prog, _discrete_outputs(model, prog, task), fit, ll, _soft_predict(model, slots, task.query, tau_e, tau_d)


# -------------------------------------------------------------------------------------------------- prior
def _prior(model: NLI, task: Task, search: SearchSpec, hyper: dict, key: PRNGKeyArray) -> tuple:
    cfg = model.cfg
    slots = model.pooled_slots(task.inputs, task.outputs, task.mask)
    logits = model.token_logits(slots)  # T K
    sampled = jax.random.categorical(key, logits, axis=-1, shape=(search.starts - 1, cfg.length))
    progs = jnp.concatenate([jnp.argmax(logits, -1)[None], sampled], axis=0).astype(jnp.int32)
    n_slots = search.slots(cfg.length, cfg.max_length)
    progs = pad_program(progs, n_slots, cfg.skip_token)
    fit, ll = jax.vmap(lambda p: spec_scores(model, p, task.inputs, task.outputs, task.mask))(progs)
    best = best_index(fit, ll)
    prog = progs[best]
    tau_e, tau_d = _end_temps(search)
    ext = model.extend_slots(slots, n_slots)
    soft_ll = _soft_spec_loglik(model, ext, task, tau_e, tau_d, key=key, noise=False)
    return prog, _discrete_outputs(model, prog, task), fit[best], soft_ll, _soft_predict(model, ext, task.query, tau_e, tau_d)


# ----------------------------------------------------------------------------------------------- gradient
def _grown(model: NLI, e0: Float[Array, "Tmax D"], noise: Float[Array, "S Tmax D"]) -> Float[Array, "S Tmax D"]:
    """`search.grow`: the starts `e0 + noise`, except that start s >= 1 has the likeliest operator slot's embedding
    in the first g_s skip slots of the inductor's program, g_s = ceil(s * free / (S - 1)) for `free` skip slots, so
    the starts span every longer program of that operator; start 0 keeps the inductor's own program."""
    skip = model.cfg.skip_token
    n = noise.shape[0]
    prob = jax.nn.softmax(model.token_logits(e0), axis=-1)  # Tmax K
    is_skip = jnp.argmax(prob, axis=-1) == skip
    op_prob = prob.at[:, skip].set(0.0).max(axis=-1)
    src = jnp.argmax(op_prob - 2.0 * is_skip)  # a slot whose argmax is an operator, else the likeliest one
    free = is_skip.sum()
    rank = jnp.cumsum(is_skip)  # 1-based rank of each skip slot
    grow = jnp.ceil(jnp.arange(n) * free / max(n - 1, 1))  # [S]; 0 for start 0
    fill = is_skip[None, :] & (rank[None, :] <= grow[:, None])  # S Tmax
    return jnp.where(fill[..., None], e0[src][None, None, :], e0[None]) + noise


def _gradient_core(
    model: NLI, task: Task, search: SearchSpec, hyper: dict, key: PRNGKeyArray, seed_best: tuple | None = None,
    slots: Float[Array, "S D"] | None = None,
) -> tuple:
    """Adam on the pooled slot embeddings from `starts` points (all starts in one vectorised loop).

    Every step re-checks each start's argmax program exactly on the spec and keeps the best one seen; the loop
    stops early once some start's discrete program reproduces every spec pair. `seed_best` (a program found
    by another method, with its fit and likelihood) counts as start 0's best from the beginning, so a task it
    already solves costs no gradient step. `slots`: the task's `_slots`, where the caller has them.

    Returns:
        Final slot embeddings [starts, search slots, D] and each start's best discrete program (padded to
        max_length), exact fit and hard likelihood.
    """
    e0 = _slots(model, task, search) if slots is None else slots  # S D: search.slots slots
    k_init, k_run = jax.random.split(key)
    noise = jax.random.normal(k_init, (search.starts,) + e0.shape) * hyper["init_noise"]
    noise = noise.at[0].set(0.0)  # the inductor's own embedding is always one of the starts
    starts = _grown(model, e0, noise) if search.grow and search.starts > 1 else e0[None] + noise
    opt = optax.adam(hyper["lr"])
    steps = search.steps
    denom = max(steps - 1, 1)

    def evaluate(e):  # programs padded to max_length, so that a seed_best of any method fits beside them
        prog = jnp.argmax(model.token_logits(e), axis=-1).astype(jnp.int32)
        fit, ll = spec_scores(model, prog, task.inputs, task.outputs, task.mask)
        return pad_program(prog, model.cfg.max_length, model.cfg.skip_token), fit, ll

    def objective(e, t, k):
        tau_e = jnp.asarray(search.tau_inductor.at(t), jnp.float32)
        tau_d = jnp.asarray(search.tau_executor.at(t), jnp.float32)
        return -_soft_spec_loglik(model, e, task, tau_e, tau_d, key=k, noise=True)

    def update(e, state, best, t, k):
        g = jax.grad(objective)(e, t, k)
        upd, state = opt.update(g, state, e)
        e = optax.apply_updates(e, upd)
        prog, fit, ll = evaluate(e)
        wins = better(fit, ll, best[1], best[2])
        best = jax.tree.map(lambda new, old: jnp.where(wins, new, old), (prog, fit, ll), best)
        return e, state, best

    def cond(carry):
        i, _, _, best = carry
        return (i < steps) & ~jnp.any(best[1] >= 1.0)

    def body(carry):
        i, e, state, best = carry
        t = i.astype(jnp.float32) / denom
        keys = jax.random.split(jax.random.fold_in(k_run, i), search.starts)
        e, state, best = jax.vmap(update, in_axes=(0, 0, 0, None, 0))(e, state, best, t, keys)
        return i + 1, e, state, best

    best0 = jax.vmap(evaluate)(starts)
    if seed_best is not None:
        wins = better(seed_best[1], seed_best[2], best0[1][0], best0[2][0])
        best0 = jax.tree.map(lambda b, s: b.at[0].set(jnp.where(wins, s, b[0])), best0, seed_best)
    state0 = jax.vmap(opt.init)(starts)
    _, finals, _, (progs, fits, lls) = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), starts, state0, best0))
    return finals, progs, fits, lls


def _pick(model: NLI, task: Task, search: SearchSpec, finals, progs, fits, lls, key) -> tuple:
    """Choose a start by `search.select` and produce the Solution row."""
    tau_e, tau_d = _end_temps(search)
    soft_lls = jax.vmap(lambda e: _soft_spec_loglik(model, e, task, tau_e, tau_d, key=key, noise=False))(finals)
    if search.select == "exact":
        best = best_index(fits, lls)
        prog, fit = progs[best], fits[best]
    else:
        best = jnp.argmax(soft_lls)
        prog = jnp.argmax(model.token_logits(finals[best]), axis=-1).astype(jnp.int32)
        fit, _ = spec_scores(model, prog, task.inputs, task.outputs, task.mask)
        prog = pad_program(prog, model.cfg.max_length, model.cfg.skip_token)
    e = finals[best]
    return prog, _discrete_outputs(model, prog, task), fit, soft_lls[best], _soft_predict(model, e, task.query, tau_e, tau_d)


def _gradient(model: NLI, task: Task, search: SearchSpec, hyper: dict, key: PRNGKeyArray) -> tuple:
    k1, k2 = jax.random.split(key)
    slots = _slots(model, task, search)  # the pooled slots, then the copies `extend_slots` adds
    finals, progs, fits, lls = _gradient_core(model, task, search, hyper, k1, slots=slots,
                                              seed_best=_inductor_program(model, task, slots[:model.cfg.length]))
    return _pick(model, task, search, finals, progs, fits, lls, k2)


# ---------------------------------------------------------------------------------------------- enumerate
def _likely_tokens(model: NLI, task: Task, every: Int[Array, " N"], n: int) -> Int[Array, " n"]:
    """The `n` non-skip tokens the inductor finds most likely for this task: the largest probability each token
    gets in any slot of the program induced from any single spec pair (per-pair programs see more of an unseen
    task's parts than the pooled one does)."""
    slots = model.pair_slots(task.inputs, task.outputs)  # m T D
    prob = jax.nn.softmax(jax.vmap(model.token_logits)(slots), axis=-1)  # m T K
    prob = jnp.where(task.mask[:, None, None], prob, 0.0).max(axis=(0, 1))[every]
    return every[jax.lax.top_k(prob, n)[1]]


ENUMERATION_NODES = 4096
"""Programs (tree nodes) whose states one enumeration buffer holds: an enumeration of depth d is compiled for the
deepest depth >= d whose programs fit (at most `language.max_length`), with d itself an array, so that the stages
of a `deepen` search (depth 1, 2, ...) share one compiled function."""

ENUMERATION_CHUNK = 64
"""Programs one iteration of the enumeration loop executes at most: the children of b^k programs of one length
(b tokens), the largest such chunk, or of one program where b^2 exceeds it."""


def _chunk_parents(width: int) -> int:
    """Programs of one level whose children one iteration of the enumeration loop runs: the largest power of
    `width` whose children (b^k * b) and theirs fit `ENUMERATION_CHUNK`, or 1 (one token: one program a level)."""
    parents = 1
    while width > 1 and parents * width * width <= ENUMERATION_CHUNK:
        parents *= width
    return parents


def enumeration_chunks(width: int, depth: int) -> int:
    """Iterations of the enumeration loop for programs of up to `depth` tokens over `width` tokens (each runs the
    children of at most `ENUMERATION_CHUNK` programs): XLA's cost analysis counts the loop body once, so a FLOP
    count of the search scales its body by this."""
    parents = _chunk_parents(width)
    return sum(-(-width**lev // parents) for lev in range(max(int(depth), 0)))


def enumeration_capacity(width: int, depth: int, max_length: int) -> int:
    """The depth an enumeration of `depth` tokens over `width` tokens is compiled for (see `ENUMERATION_NODES`)."""
    cap = depth
    while cap < max_length and tree_nodes(width, cap + 1) <= ENUMERATION_NODES:
        cap += 1
    return cap


def _enumerate_best(model: NLI, task: Task, search: SearchSpec, depth: Int[Array, ""] | int | None = None,
                    ops: Int[Array, " b"] | None = None) -> tuple:
    """Exhaustive search over every program of up to `depth` (default `search.depth`, which bounds it) non-skip
    tokens (`ops`, whose number `search.branch` must equal, or the task's `search.branch` likeliest tokens, or
    all), every repetition of one token up to `max_length`, the inductor's own program (`_inductor_program`) and the
    argmax program of the search's slots, all scored exactly with hard tokens.

    Programs sharing a prefix share its execution: the programs form a tree in breadth-first order (program q's
    children, q followed by each token, are programs b*q + 1 ... b*q + b), whose states are computed one chunk of
    parents at a time in one loop, so the cost is sum_i b^i single steps (b = branch, or K-1) rather than i times
    that, and one loop body is compiled whatever the depth; each program's path likelihood (`NLI.run_hard_path`) is
    its parent's plus its own step's, so it scores as `spec_scores` does. Ties go to the earliest program in that
    order (the shortest, then the first in token order), then to the inductor's program before all.
    """
    cfg = model.cfg
    every = jnp.asarray([k for k in range(cfg.vocab) if k != cfg.skip_token], jnp.int32)
    width = search.branch_width(cfg.vocab)
    if ops is None:
        ops = every if width == every.shape[0] else _likely_tokens(model, task, every, width)
    w = task.mask.astype(jnp.float32)
    n = jnp.maximum(w.sum(), 1.0)
    depth = search.depth if depth is None else depth

    bottleneck = cfg.relaxation.recurrent and cfg.relaxation.value_bottleneck  # `NLI.run_hard_path`

    def scores(vals, lp, path):  # vals [N, m, L], lp [N, m, L, V], path [N, m]: the parents' (`NLI.run_hard_path`)
        exact = jnp.all(vals == task.outputs[None], axis=-1).astype(jnp.float32)
        ll = jax.vmap(jax.vmap(_pair_loglik))(lp, jnp.broadcast_to(task.outputs[None], vals.shape)) + path
        return (exact * w[None]).sum(-1) / n, (ll * w[None]).sum(-1) / n

    def extended(path, lp):  # a child's path: its parent's and the values its own step committed to
        return path + lp.max(axis=-1).mean(axis=-1) if bottleneck else path

    slots = _slots(model, task, search)  # the pooled slots, then the copies `extend_slots` adds
    best = _inductor_program(model, task, slots[:cfg.length])
    prog0 = jnp.argmax(model.token_logits(slots), axis=-1).astype(jnp.int32)  # the search's slots: may repeat a token
    fit0, ll0 = spec_scores(model, prog0, task.inputs, task.outputs, task.mask)
    wins = better(fit0, ll0, best[1], best[2])
    best = jax.tree.map(lambda a, b: jnp.where(wins, a, b), (pad_program(prog0, cfg.max_length, cfg.skip_token),
                                                            fit0, ll0), best)

    def one_step(x, op):
        vals, lp = model.run_hard(op[None], x)
        return vals, lp

    # The tree of programs up to `search.depth` tokens, breadth first; `starts[i]`: the first program of i tokens.
    # Each level's parents go in chunks of `parents` programs (all of one level, computed by an earlier chunk);
    # the last chunk of a level also reads programs past it, whose children are ignored and written over later.
    cap = search.depth
    starts = [tree_nodes(width, i - 1) if i else 0 for i in range(cap + 2)]
    parents = _chunk_parents(width)
    chunk_start, chunk_end, chunks = [], [], [0]  # chunks[d]: chunks of the levels before d (`enumeration_chunks`)
    for lev in range(cap):
        for c in range(-(-width**lev // parents)):
            chunk_start.append(starts[lev] + c * parents)
            chunk_end.append(starts[lev + 2])  # children at or past it have parents past this level
        chunks.append(len(chunk_start))
    powers = jnp.asarray([width**i for i in range(cap + 1)], jnp.int32)
    first_of = jnp.asarray(starts, jnp.int32)
    depth = jnp.clip(jnp.asarray(depth, jnp.int32), 0, cap)

    def program_of(q):
        """Program q of the tree: its length i and the base-b digits of q - starts[i], first token first."""
        length = jnp.sum(q >= first_of[1:cap + 1])
        j = jnp.arange(cfg.max_length)
        digit = ((q - first_of[length]) // powers[jnp.clip(length - 1 - j, 0, cap)]) % width
        return jnp.where(j < length, ops[digit], cfg.skip_token).astype(jnp.int32)

    def level(c, carry):
        states, paths, best = carry
        start = jnp.asarray(chunk_start, jnp.int32)[c]
        st = jax.lax.dynamic_slice_in_dim(states, start, parents)  # [parents, m, L]
        pp = jnp.repeat(jax.lax.dynamic_slice_in_dim(paths, start, parents), width, axis=0)  # [parents * b, m]
        vals, lp = jax.vmap(lambda s: jax.vmap(lambda op: jax.vmap(lambda x: one_step(x, op))(s))(ops))(st)
        vals = vals.reshape((-1,) + vals.shape[2:])
        lp = lp.reshape((-1,) + lp.shape[2:])
        first = start * width + 1
        states = jax.lax.dynamic_update_slice_in_dim(states, vals, first, axis=0)
        paths = jax.lax.dynamic_update_slice_in_dim(paths, extended(pp, lp), first, axis=0)
        fit, ll = scores(vals, lp, pp)
        fit = jnp.where(first + jnp.arange(fit.shape[0]) < jnp.asarray(chunk_end, jnp.int32)[c], fit, -1.0)
        idx = best_index(fit, ll)
        wins = better(fit[idx], ll[idx], best[1], best[2])
        best = jax.tree.map(lambda a, b: jnp.where(wins, a, b), (program_of(first + idx), fit[idx], ll[idx]), best)
        return states, paths, best

    if cap > 0:
        size = width * (starts[cap] + parents) + 1  # every chunk's parents and children fit
        states = jnp.zeros((size,) + task.inputs.shape, task.inputs.dtype).at[0].set(task.inputs)  # 0: empty program
        paths = jnp.zeros((size, task.inputs.shape[0]), jnp.float32)  # the empty program's path: nothing committed
        _, _, best = jax.lax.fori_loop(0, jnp.asarray(chunks, jnp.int32)[depth], level, (states, paths, best))

    # Repetitions t^n of every token (not only the likeliest) up to max_length: learned primitives are reused
    # (shift by 8 = 8 x "shift by 1"), so long programs of one repeated token are likely and cost only (K-1)
    # steps per length.
    def repeat(carry, n):
        states, paths, best = carry
        vals, lp = jax.vmap(lambda st, op: jax.vmap(lambda x: one_step(x, op))(st))(states, every)
        fit, ll = scores(vals, lp, paths)
        idx = best_index(fit, ll)
        prog = jnp.where(jnp.arange(cfg.max_length) < n, every[idx], cfg.skip_token).astype(jnp.int32)
        wins = better(fit[idx], ll[idx], best[1], best[2])
        best = jax.tree.map(lambda a, b: jnp.where(wins, a, b), (prog, fit[idx], ll[idx]), best)
        return (vals, extended(paths, lp), best), None

    reps0 = jnp.broadcast_to(task.inputs[None], (every.shape[0],) + task.inputs.shape)
    paths0 = jnp.zeros(reps0.shape[:2], jnp.float32)
    (_, _, best), _ = jax.lax.scan(repeat, (reps0, paths0, best), jnp.arange(1, cfg.max_length + 1))
    return best, slots


def _enumerate(model: NLI, task: Task, search: SearchSpec, hyper: dict, key: PRNGKeyArray) -> tuple:
    # No soft program is searched: the likelihood reported is the found program's hard-token one.
    (prog, fit, ll), slots = _enumerate_best(model, task, search, hyper.get("depth"), hyper.get("ops"))
    tau_e, tau_d = _end_temps(search)
    return prog, _discrete_outputs(model, prog, task), fit, ll, _soft_predict(model, slots, task.query, tau_e, tau_d)


def _cascade(model: NLI, task: Task, search: SearchSpec, hyper: dict, key: PRNGKeyArray) -> tuple:
    """`enumerate`, then `gradient` seeded with its best program: a task enumeration solves costs no gradient
    step (the loop over a batch ends as soon as every task in it is solved). The exact fit decides."""
    k1, k2 = jax.random.split(key)
    found, slots = _enumerate_best(model, task, search, hyper.get("depth"), hyper.get("ops"))
    finals, progs, fits, lls = _gradient_core(model, task, search, hyper, k1, seed_best=found, slots=slots)
    picked = _pick(model, task, search, finals, progs, fits, lls, k2)
    prog, fit, ll, soft = picked[0], picked[2], picked[3], picked[4]
    keep = fit >= found[1]  # enumeration's program stays unless gradient search fits the spec as well
    prog = jnp.where(keep, prog, found[0])
    enumerated = jnp.all(prog == found[0])  # then its likelihood is the hard-token one, as in `enumerate`
    return prog, _discrete_outputs(model, prog, task), jnp.maximum(fit, found[1]), jnp.where(enumerated, found[2], ll), soft


def _cost_none(model: NLI, search: SearchSpec) -> int:
    return 1


def _cost_prior(model: NLI, search: SearchSpec) -> int:
    return search.starts


def _cost_gradient(model: NLI, search: SearchSpec) -> int:
    # A soft forward + backward pass counts as 3 executions, plus one hard check per step (upper bound: the
    # loop stops early once the spec is solved); an execution of search.slots slots is that fraction of one.
    cfg = model.cfg
    runs = search.starts * (1 + 4 * search.steps) * search.slots(cfg.length, cfg.max_length)
    return -(-runs // cfg.max_length)


def _cost_enumerate(model: NLI, search: SearchSpec) -> int:
    # Level i runs one step for each of b^i programs (b = branch or K-1); an execution is max_length steps.
    k = model.cfg.vocab - 1
    b = search.branch_width(model.cfg.vocab)
    steps = sum(b**i for i in range(1, search.depth + 1)) + k * model.cfg.max_length
    return 1 + -(-steps // model.cfg.max_length)


def _cost_cascade(model: NLI, search: SearchSpec) -> int:
    return _cost_enumerate(model, search) + _cost_gradient(model, search)


def search_cost(model: NLI, search: SearchSpec) -> int:
    """Program executions (on one spec pair, max_length steps) one task's search costs."""
    return SEARCH_METHODS.get(search.method).cost(model, search.fitted(model.cfg.vocab, model.cfg.max_length))


SEARCH_METHODS.register("none", SearchMethod("none", _runner(_none), _cost_none, "argmax program of the inductor"))
SEARCH_METHODS.register(
    "prior", SearchMethod("prior", _runner(_prior), _cost_prior, "sample `starts` programs from the inductor, keep the best")
)
SEARCH_METHODS.register(
    "gradient",
    SearchMethod("gradient", _runner(_gradient), _cost_gradient, "Adam on pooled slot embeddings from `starts` points"),
)
SEARCH_METHODS.register(
    "enumerate",
    SearchMethod("enumerate", _runner(_enumerate, enumerates=True), _cost_enumerate, "every program of up to `depth` tokens, and every token repeated"),
)
SEARCH_METHODS.register(
    "cascade",
    SearchMethod("cascade", _runner(_cascade, enumerates=True), _cost_cascade, "enumerate, then gradient where that fails"),
)
