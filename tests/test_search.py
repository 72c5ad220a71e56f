"""Tests of NLI test-time search and the `solve` API: discrete outputs, exact scoring, tracing, determinism."""

import dataclasses
import importlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_nli import setup, tiny_spec

from nlic.compiler.families import TaskSet
from nlic.compiler.models.nli import execute, spec_scores
from nlic.compiler.models.nli.model import _pair_loglik, pad_program
from nlic.compiler.models.nli.search import (
    SEARCH_METHODS,
    _arguments,
    _enumerate_best,
    _grown,
    _likely_tokens,
    _slots,
    _statics,
    _tasks,
    enumeration_capacity,
    search_cost,
)
from nlic.compiler.ranking import best_index, better
from nlic.compiler.kinds import MODEL_KINDS
from nlic.compiler.spec import SearchSpec
from nlic.grammar.errors import SpecError
from nlic.runtime.solve import solve


def _search(**kw):
    base = dict(starts=3, steps=3, depth=2, batch=4, init_noise=1.0, deepen=False, grow=False)
    base.update(kw)
    return SearchSpec(**base)


@pytest.fixture(scope="module")
def model_tasks():
    spec = tiny_spec()
    model, tasks = setup(spec, n=6, split="ood")
    return spec, model, tasks


@pytest.mark.parametrize("method", ["none", "prior", "gradient", "enumerate", "cascade"])
def test_methods_return_discrete_programs_scored_exactly(model_tasks, method):
    spec, model, tasks = model_tasks
    res = solve(spec, model, tasks, search=_search(method=method))
    n, Tmax = len(tasks), spec.language.max_length
    assert res.programs.shape == (n, Tmax) and res.outputs.shape == tasks.query_outputs.shape
    assert res.programs.min() >= 0 and res.programs.max() < spec.language.vocab
    # The reported outputs are those of the discrete program, and spec_fit is its exact fit.
    np.testing.assert_array_equal(execute(model, res.programs, tasks.query_inputs), res.outputs)
    b = tasks.batch()
    for i in range(n):
        fit, _ = spec_scores(model, jnp.asarray(res.programs[i]), b.inputs[i], b.outputs[i], b.pair_mask[i])
        assert float(fit) == pytest.approx(float(res.spec_fit[i]))
    assert res.correct.dtype == bool and res.accuracy == pytest.approx(res.correct.mean())
    assert res.seconds > 0


def test_the_likelihood_ranking_programs_counts_every_step_they_commit(model_tasks):
    """`spec_scores`' likelihood is the last step's of the target plus the path before it (`NLI.run_hard_path`):
    the confidence of every value an earlier step committed to, so that of two programs that both fit, one through
    an unreliable token loses (Comp-I seed 11: a token right on 85% of inputs won such ties on the last step's
    likelihood alone, and 12 of 100 OOD tasks were answered wrong). Enumeration's tree scores programs the same."""
    spec, model, tasks = model_tasks
    skip = spec.language.skip_token
    x = jnp.asarray(tasks.inputs[0, 0])
    ex, V = model.executor, model.cfg.values

    def committed(tokens):  # by hand: each non-skip step's mean log-probability of the values it commits to
        pi, out = jax.nn.one_hot(x, V), []
        for t in tokens:
            if t != skip:
                lp = jax.nn.log_softmax(ex.step_logits(pi, ex.code_embed[t]), axis=-1)
                out.append(float(lp.max(axis=-1).mean()))
                pi = jax.nn.one_hot(jnp.argmax(lp, axis=-1), V)
        return out

    for tokens in ([3], [3, skip, 5], [skip, 4, 4, 2, skip]):
        vals, lp, path = model.run_hard_path(jnp.asarray(tokens), x)
        np.testing.assert_array_equal(vals, model.run_hard(jnp.asarray(tokens), x)[0])
        assert float(path) == pytest.approx(sum(committed(tokens)[:-1]), rel=1e-5, abs=1e-6)
    b = tasks.batch()
    res = solve(spec, model, tasks, search=_search(method="enumerate", depth=2))
    for i in range(len(tasks)):
        fit, ll = spec_scores(model, jnp.asarray(res.programs[i]), b.inputs[i], b.outputs[i], b.pair_mask[i])
        assert (float(fit), float(ll)) == pytest.approx((float(res.spec_fit[i]), float(res.spec_loglik[i])),
                                                         rel=1e-5, abs=1e-6)


def test_enumerate_finds_a_planted_program(model_tasks):
    """Outputs made by a 2-token program are solved exactly (spec fit 1) by depth-2 enumeration."""
    spec, model, tasks = model_tasks
    n, m, L = tasks.inputs.shape
    prog = np.full((n, spec.language.max_length), spec.language.skip_token)
    prog[:, 0], prog[:, 1] = 3, 5
    outs = np.stack([np.asarray(execute(model, prog, tasks.inputs[:, j])) for j in range(m)], axis=1)
    q = np.asarray(execute(model, prog, tasks.query_inputs))
    planted = dataclasses.replace(tasks, outputs=outs, query_outputs=q)
    assert isinstance(planted, TaskSet)
    res = solve(spec, model, planted, search=_search(method="enumerate"))
    assert np.all(res.spec_fit == 1.0)
    assert res.accuracy == 1.0
    none = solve(spec, model, planted, search=_search(method="none"))
    assert none.spec_fit.mean() <= res.spec_fit.mean()


@pytest.mark.parametrize(
    "base, better",
    [(dict(method="none"), dict(method="gradient", starts=4, steps=5)),
     (dict(method="enumerate"), dict(method="cascade", starts=2, steps=3))],
    ids=["gradient>=none", "cascade>=enumerate"],
)
def test_search_never_worse_on_spec_than_what_it_starts_from(model_tasks, base, better):
    spec, model, tasks = model_tasks
    a = solve(spec, model, tasks, search=_search(**base))
    b = solve(spec, model, tasks, search=_search(**better))
    assert np.all(b.spec_fit >= a.spec_fit - 1e-6)


def test_solve_deterministic_and_padded_batches(model_tasks):
    spec, model, tasks = model_tasks
    s = _search(method="gradient", batch=4)  # 6 tasks: a full batch and a padded one
    a = solve(spec, model, tasks, search=s, seed=3)
    b = solve(spec, model, tasks, search=s, seed=3)
    np.testing.assert_array_equal(a.programs, b.programs)
    np.testing.assert_array_equal(a.spec_loglik, b.spec_loglik)
    # Solving a task alone or inside a batch gives the same program for the deterministic method.
    c = solve(spec, model, tasks.take([5]), search=_search(method="none", batch=4))
    d = solve(spec, model, tasks, search=_search(method="none", batch=4))
    np.testing.assert_array_equal(c.programs[0], d.programs[5])


def test_one_trace_per_search_spec(model_tasks):
    spec, model, tasks = model_tasks
    batch = tasks.take(slice(0, 4)).batch()
    for method in ("none", "gradient", "enumerate"):
        run = SEARCH_METHODS.get(method).run
        counted = eqx.debug.assert_max_traces(run.batched.__wrapped__, max_traces=1)
        jitted = eqx.filter_jit(counted)
        s = _search(method=method)

        for seed, lr in ((0, 0.1), (1, 0.3)):  # a new learning rate is an array: no re-trace
            hyper = {"lr": jnp.asarray(lr), "init_noise": jnp.asarray(1.0)}
            jitted(model, batch, _statics(dataclasses.replace(s, lr=lr)), hyper, jax.random.key(seed))


def test_unknown_method_is_a_spec_error(model_tasks):
    spec, model, tasks = model_tasks
    with pytest.raises(SpecError, match="gradient"):
        solve(spec, model, tasks, search=_search(method="gradiant"))


def test_solve_without_targets(model_tasks):
    spec, model, tasks = model_tasks
    blind = dataclasses.replace(tasks, has_target=np.zeros(len(tasks), bool))
    res = solve(spec, model, blind, search=_search(method="none"))
    assert res.accuracy is None and not res.correct.any()


def test_enumerate_branch_restricts_tokens_and_all_tokens_is_the_default(model_tasks):
    """branch = K-1 is plain enumeration; a smaller branch enumerates only the task's likeliest tokens."""
    spec, model, tasks = model_tasks
    K = spec.language.vocab
    full = solve(spec, model, tasks, search=_search(method="enumerate", depth=2))
    same = solve(spec, model, tasks, search=_search(method="enumerate", depth=2, branch=K - 1))
    np.testing.assert_array_equal(full.programs, same.programs)
    narrow = solve(spec, model, tasks, search=_search(method="enumerate", depth=3, branch=2))
    assert narrow.programs.shape == full.programs.shape
    every = jnp.asarray([k for k in range(K) if k != spec.language.skip_token], jnp.int32)
    task = jax.tree.map(lambda a: a[0], _tasks(tasks.batch()))
    likely = set(np.asarray(_likely_tokens(model, task, every, 2)).tolist())
    # The likeliest tokens: largest probability in any slot of any single pair's program, skip excluded.
    prob = np.asarray(jax.nn.softmax(jax.vmap(model.token_logits)(model.pair_slots(task.inputs, task.outputs)), -1))
    score = prob.max(axis=(0, 1))
    score[spec.language.skip_token] = -1.0
    assert likely == set(np.argsort(-score)[:2].tolist())


def test_cascade_compiles_under_jit(model_tasks):
    """`nlic compile` lowers the search with abstract inputs: no Python decision may depend on a traced value."""
    spec, model, tasks = model_tasks
    batch = tasks.take(slice(0, 2)).batch()
    s = _search(method="cascade", starts=2, steps=2)
    jax.jit(lambda m, b, k: tuple(SEARCH_METHODS.get("cascade").run(m, b, s, key=k))).lower(
        model, batch, jax.random.key(0)
    )


def test_deepen_stages_and_shortest_programs(model_tasks):
    """`deepen` runs enumerate at depth 1, 2, ... on the tasks still unsolved (then gradient, for cascade): it solves
    every planted task the full enumeration solves, deterministically."""

    s = _search(method="cascade", depth=3, deepen=True)
    assert [(st.method, st.depth) for st in s.stages()] == [("enumerate", 1), ("enumerate", 2), ("enumerate", 3),
                                                           ("gradient", 3)]
    assert _search(method="enumerate", depth=2).stages() == (_search(method="enumerate", depth=2),)
    assert len(_search(method="gradient", deepen=True).stages()) == 1  # only enumerate and cascade deepen

    spec, model, tasks = model_tasks
    n, m, L = tasks.inputs.shape
    skip = spec.language.skip_token
    prog = np.full((n, spec.language.max_length), skip)
    prog[:, 0] = 3
    prog[n // 2 :, 1] = 5  # half the tasks need two tokens (unless one token happens to do the same)
    outs = np.stack([np.asarray(execute(model, prog, tasks.inputs[:, j])) for j in range(m)], axis=1)
    planted = dataclasses.replace(tasks, outputs=outs, query_outputs=np.asarray(execute(model, prog, tasks.query_inputs)))
    full = solve(spec, model, planted, search=_search(method="enumerate"))
    deep = solve(spec, model, planted, search=_search(method="enumerate", deepen=True))
    assert np.all(full.spec_fit == 1.0) and np.all(deep.spec_fit == 1.0)
    np.testing.assert_array_equal(execute(model, deep.programs, planted.query_inputs), deep.outputs)
    a = solve(spec, model, planted, search=_search(method="cascade", deepen=True), seed=1)
    b = solve(spec, model, planted, search=_search(method="cascade", deepen=True), seed=1)
    np.testing.assert_array_equal(a.programs, b.programs)


def test_deepen_keeps_the_best_stage_on_unsolved_tasks(model_tasks):
    """On tasks no stage solves exactly, the deepened search's fit equals the best of its stages' fits."""
    spec, model, tasks = model_tasks
    deep = solve(spec, model, tasks, search=_search(method="enumerate", deepen=True))
    stages = [solve(spec, model, tasks, search=st) for st in _search(method="enumerate", deepen=True).stages()]
    np.testing.assert_allclose(deep.spec_fit, np.max([r.spec_fit for r in stages], axis=0))


def test_exact_ties_are_broken_by_likelihood_in_float32():
    """Programs that reproduce the spec equally well are ranked by likelihood, however close: folding both into
    one float32 score (fit * 1e6 + ll) lost differences below ~0.06 and kept whichever exact program came first."""
    import jax.numpy as jnp

    fit = jnp.asarray([1.0, 1.0, 0.75, 1.0], jnp.float32)
    ll = jnp.asarray([-7.5e-4, -4.8e-5, 0.0, -jnp.nan], jnp.float32)
    assert int(best_index(fit, ll)) == 1
    assert bool(better(fit[1], ll[1], fit[0], ll[0])) and not bool(better(fit[0], ll[0], fit[1], ll[1]))
    assert bool(better(fit[0], ll[0], fit[2], ll[2]))  # more exact pairs beat any likelihood
    assert not bool(better(fit[3], ll[3], fit[0], ll[0]))  # NaN likelihood never wins
    assert int(best_index(jnp.asarray([0.5, 0.5]), jnp.asarray([-jnp.inf, -jnp.inf]))) == 0


def test_grow_starts_span_longer_programs_of_the_likeliest_operator(model_tasks):
    """`search.grow`: start 0 is the inductor's own embedding; start s writes the likeliest operator slot into the
    first ceil(s * free / (S - 1)) skip slots, so the starts' programs run up to every slot in use (a slot saturated
    at skip gets almost no gradient, so descent alone rarely lengthens a program)."""

    spec, model, tasks = model_tasks
    b = tasks.batch()
    skip = spec.language.skip_token
    e0 = model.extend_slots(model.pooled_slots(b.inputs[0], b.outputs[0], b.pair_mask[0]))
    n = 5
    grown = _grown(model, e0, jnp.zeros((n,) + e0.shape))  # no noise: the programs are exact
    progs = np.asarray(jnp.argmax(jax.vmap(model.token_logits)(grown), axis=-1))
    base = progs[0]
    np.testing.assert_array_equal(base, np.asarray(jnp.argmax(model.token_logits(e0), axis=-1)))
    free = int((base == skip).sum())
    used = [(p != skip).sum() for p in progs]
    assert used[0] == len(base) - free
    assert used == sorted(used) and used[-1] == len(base)  # lengths grow with s, the last start fills every slot
    for p in progs[1:]:  # only skip slots change, and they change to one operator
        changed = p != base
        assert np.all(base[changed] == skip) and len(set(p[changed].tolist())) <= 1
    grad = _search(method="gradient", starts=4, steps=3, grow=True)

    res = solve(spec, model, tasks, search=grad)
    none = solve(spec, model, tasks, search=_search(method="none"))
    assert np.all(res.spec_fit >= none.spec_fit - 1e-6)


@pytest.mark.parametrize("method", ["none", "prior", "gradient", "cascade"])
def test_search_length_works_on_fewer_slots_and_pads_to_max_length(model_tasks, method):
    """`search.length`: the search's programs use only the first `length` slots (the rest is skip, so the padded
    program means the same), each is scored exactly, and a gradient search costs in proportion to the slots."""

    spec, model, tasks = model_tasks
    lang = spec.language
    short = _search(method=method, length=lang.length)
    res = solve(spec, model, tasks, search=short)
    assert res.programs.shape == (len(tasks), lang.max_length)
    if method != "cascade":  # enumeration's repetitions may still use every slot
        assert np.all(res.programs[:, lang.length:] == lang.skip_token)
    np.testing.assert_array_equal(execute(model, res.programs, tasks.query_inputs), res.outputs)
    # A length outside [language.length, max_length] (a command-line override, say) is clamped into it.
    assert dataclasses.replace(short, length=1).slots(lang.length, lang.max_length) == lang.length
    assert dataclasses.replace(short, length=99).slots(lang.length, lang.max_length) == lang.max_length
    if method == "gradient":
        full = search_cost(model, dataclasses.replace(short, length=0))
        assert search_cost(model, short) == -(-full * lang.length // lang.max_length)


@pytest.mark.parametrize("method", ["none", "gradient", "enumerate", "cascade"])
def test_every_search_runs_the_inductors_program_as_trained(method):
    """Where no slot writes skip (grid1d's `t7 t7 t7 t7 tX tY`), the search's extra slots copy a slot that writes a
    token, so the argmax program of `search.length` slots repeats it. Every search still runs the inductor's own
    `language.length` tokens: `none` returns them, and the others solve tasks that program solves."""
    spec = tiny_spec(skip=False)  # the no-skip ablation: no slot ever writes skip
    model, tasks = setup(spec, n=6, split="ood")
    lang = spec.language

    def programs(ts):  # the inductor's own programs, and those of the search's `max_length` slots
        b = ts.batch()
        one = [jax.tree.map(lambda a, i=i: a[i], _tasks(b)) for i in range(len(ts))]
        own = np.stack([np.asarray(jnp.argmax(model.token_logits(model.pooled_slots(t.inputs, t.outputs, t.mask)),
                                              axis=-1)) for t in one])
        wide = np.stack([np.asarray(jnp.argmax(model.token_logits(_slots(model, t, _search())), axis=-1)) for t in one])
        return np.asarray(pad_program(jnp.asarray(own, jnp.int32), lang.max_length, lang.skip_token)), wide

    planted = tasks
    for _ in range(6):  # outputs of the inductor's program for the pairs it sees: a fixed point in a few rounds
        own, wide = programs(planted)
        outs = np.stack([np.asarray(execute(model, own, tasks.inputs[:, j])) for j in range(tasks.inputs.shape[1])], 1)
        planted = dataclasses.replace(tasks, outputs=outs, query_outputs=np.asarray(execute(model, own, tasks.query_inputs)))
    assert np.array_equal(programs(planted)[0], own)
    assert np.all(wide[:, lang.length:] != lang.skip_token)  # the extended program repeats a token
    res = solve(spec, model, planted, search=_search(method=method, depth=1, steps=0 if method != "cascade" else 3))
    assert np.all(res.spec_fit == 1.0) and res.accuracy == 1.0
    if method == "none":
        np.testing.assert_array_equal(res.programs, own)


def _levels_reference(model, task, search):
    """The enumeration as written before its loop: one vectorised block per program length, unrolled, then the
    repetitions of every token."""
    cfg = model.cfg
    every = jnp.asarray([k for k in range(cfg.vocab) if k != cfg.skip_token], jnp.int32)
    width = search.branch_width(cfg.vocab)
    ops = every if width == every.shape[0] else _likely_tokens(model, task, every, width)
    w = task.mask.astype(jnp.float32)
    n = jnp.maximum(w.sum(), 1.0)

    def scores(vals, lp, path):  # path: the parents' (`NLI.run_hard_path`)
        exact = jnp.all(vals == task.outputs[None], axis=-1).astype(jnp.float32)
        ll = jax.vmap(jax.vmap(_pair_loglik))(lp, jnp.broadcast_to(task.outputs[None], vals.shape)) + path
        return (exact * w[None]).sum(-1) / n, (ll * w[None]).sum(-1) / n

    own = jnp.argmax(model.token_logits(model.pooled_slots(task.inputs, task.outputs, task.mask)), axis=-1)
    best = (pad_program(own.astype(jnp.int32), cfg.max_length, cfg.skip_token),
            *spec_scores(model, own, task.inputs, task.outputs, task.mask))
    slots = _slots(model, task, search)
    prog0 = jnp.argmax(model.token_logits(slots), axis=-1).astype(jnp.int32)
    fit0, ll0 = spec_scores(model, prog0, task.inputs, task.outputs, task.mask)
    wins = better(fit0, ll0, best[1], best[2])
    best = jax.tree.map(lambda a, b: jnp.where(wins, a, b), (pad_program(prog0, cfg.max_length, cfg.skip_token),
                                                            fit0, ll0), best)
    states, paths = task.inputs[None], jnp.zeros((1, task.inputs.shape[0]))
    for level in range(1, search.depth + 1):
        vals, lp = jax.vmap(lambda st: jax.vmap(lambda op: jax.vmap(lambda x: model.run_hard(op[None], x))(st))(ops))(
            states)
        vals, lp = vals.reshape((-1,) + vals.shape[2:]), lp.reshape((-1,) + lp.shape[2:])
        parents = jnp.repeat(paths, ops.shape[0], axis=0)
        fit, ll = scores(vals, lp, parents)
        idx = best_index(fit, ll)
        digits = (idx // (ops.shape[0] ** jnp.arange(level - 1, -1, -1))) % ops.shape[0]
        prog = pad_program(ops[digits][None], cfg.max_length, cfg.skip_token)[0]
        wins = better(fit[idx], ll[idx], best[1], best[2])
        best = jax.tree.map(lambda a, b: jnp.where(wins, a, b), (prog, fit[idx], ll[idx]), best)
        states, paths = vals, parents + lp.max(axis=-1).mean(axis=-1)

    def repeat(carry, k):  # every token repeated k times, after the levels (as `_enumerate_best` does)
        states, paths, best = carry
        vals, lp = jax.vmap(lambda st, op: jax.vmap(lambda x: model.run_hard(op[None], x))(st))(states, every)
        fit, ll = scores(vals, lp, paths)
        idx = best_index(fit, ll)
        prog = jnp.where(jnp.arange(cfg.max_length) < k, every[idx], cfg.skip_token).astype(jnp.int32)
        wins = better(fit[idx], ll[idx], best[1], best[2])
        best = jax.tree.map(lambda a, b: jnp.where(wins, a, b), (prog, fit[idx], ll[idx]), best)
        return (vals, paths + lp.max(axis=-1).mean(axis=-1), best), None

    reps0 = jnp.broadcast_to(task.inputs[None], (every.shape[0],) + task.inputs.shape)
    paths0 = jnp.zeros(reps0.shape[:2])
    return jax.lax.scan(repeat, (reps0, paths0, best), jnp.arange(1, cfg.max_length + 1))[0][2]


@pytest.mark.parametrize("depth, branch", [(0, 0), (1, 0), (3, 0), (4, 2)])
def test_enumeration_loop_matches_the_unrolled_levels(model_tasks, depth, branch):
    """The enumeration's one loop over chunks of the program tree, compiled for a deeper capacity with the depth an
    array, finds the program the level-by-level enumeration finds (ties: shorter first, then token order), on
    random and on planted tasks (several programs of each length fit them exactly)."""
    spec, model, tasks = model_tasks
    n, m, L = tasks.inputs.shape
    prog = np.full((n, spec.language.max_length), spec.language.skip_token)
    prog[:, 0], prog[n // 2:, 1] = 4, 2
    outs = np.stack([np.asarray(execute(model, prog, tasks.inputs[:, j])) for j in range(m)], axis=1)
    planted = dataclasses.replace(tasks, outputs=outs)
    s = _search(method="enumerate", depth=depth, branch=branch)
    static, hyper = _arguments(model, s, enumerates=True)
    assert static.depth == enumeration_capacity(s.branch_width(spec.language.vocab), depth, spec.language.max_length)
    assert static.depth >= depth
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), _tasks(tasks.batch()), _tasks(planted.batch()))
    want = jax.jit(jax.vmap(lambda t: _levels_reference(model, t, s)))(both)
    got = jax.jit(jax.vmap(lambda t, d: _enumerate_best(model, t, static, d)[0], in_axes=(0, None)))(both, hyper["depth"])
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))
    np.testing.assert_allclose(np.asarray(got[2]), np.asarray(want[2]), rtol=1e-5, atol=1e-6)
    same = np.all(np.asarray(got[0]) == np.asarray(want[0]), axis=-1)
    # Only a tie to float32 rounding may go the other way: a chunk of the tree executes its programs in a batch of
    # another shape than a whole level did, which can move a likelihood by an ulp.
    for i in np.flatnonzero(~same):
        task = jax.tree.map(lambda a: a[i], both)
        a = spec_scores(model, got[0][i], task.inputs, task.outputs, task.mask)
        b = spec_scores(model, want[0][i], task.inputs, task.outputs, task.mask)
        assert float(a[0]) == float(b[0]) and abs(float(a[1]) - float(b[1])) <= 1e-5 * max(1.0, abs(float(b[1])))
    assert same.sum() >= n  # most are the same program


def test_deepen_stages_share_one_compiled_enumeration(model_tasks):
    """`deepen`'s enumerate stages (depth 1, 2, 3) differ only in an array argument: one trace serves them all."""
    spec, model, tasks = model_tasks
    batch = tasks.take(slice(0, 4)).batch()
    jitted = eqx.filter_jit(eqx.debug.assert_max_traces(SEARCH_METHODS.get("enumerate").run.batched.__wrapped__,
                                                        max_traces=1))
    stages = _search(method="cascade", depth=3, deepen=True).stages()
    assert [st.depth for st in stages if st.method == "enumerate"] == [1, 2, 3]
    statics = {_arguments(model, st, enumerates=True)[0] for st in stages if st.method == "enumerate"}
    assert len(statics) == 1
    for st in stages:
        if st.method == "enumerate":
            jitted(model, batch, *_arguments(model, st, enumerates=True), jax.random.key(0))


def test_solve_runs_the_depth_that_fits_the_program_budget(model_tasks, monkeypatch):
    """`search.depth` is cut to `search.programs` (and the language's slots) before `deepen` makes its stages: no
    stage repeats a depth, and the result equals the search written at the fitted depth."""
    spec, model, tasks = model_tasks
    K = spec.language.vocab
    wide = _search(method="enumerate", depth=6, deepen=True, programs=1 + (K - 1) + (K - 1) ** 2)
    assert wide.enumeration_depth(K, spec.language.max_length) == 2
    solve_module = importlib.import_module("nlic.runtime.solve")  # `nlic.runtime.solve` is also the function
    monkeypatch.setattr(solve_module, "language_tokens", lambda *a: None)  # no enumeration over the tokens in use
    ran = []
    real = solve_module._solve_batches
    monkeypatch.setattr(solve_module, "_solve_batches", lambda k, m, t, s, *a, **kw: ran.append(s.depth) or real(
        k, m, t, s, *a, **kw))
    got = solve(spec, model, tasks, search=wide)
    assert ran and max(ran) == 2 and len(ran) == len(set(ran))  # stages 1, 2 (those tasks left), never 3..6
    want = solve(spec, model, tasks, search=dataclasses.replace(wide, depth=2))
    np.testing.assert_array_equal(got.programs, want.programs)
    assert search_cost(model, wide) == search_cost(model, dataclasses.replace(wide, depth=2))


def test_an_enumeration_over_the_tokens_in_use_reaches_deeper(model_tasks, monkeypatch):
    """After the enumerations over every token (cut to depth 2 by `search.programs` here), `solve` enumerates over
    the language's tokens in use as deep as the same budget allows (up to the written depth): a 4-token program
    over 2 of them is found, and replays."""
    spec, model, tasks = model_tasks
    K, Tmax = spec.language.vocab, spec.language.max_length
    n, m, _ = tasks.inputs.shape
    prog = np.full((n, Tmax), spec.language.skip_token)
    prog[:, :4] = [3, 5, 5, 3]
    outs = np.stack([np.asarray(execute(model, prog, tasks.inputs[:, j])) for j in range(m)], axis=1)
    planted = dataclasses.replace(tasks, outputs=outs, query_outputs=np.asarray(execute(model, prog, tasks.query_inputs)))
    budget = 1 + (K - 1) + (K - 1) ** 2
    search = _search(method="enumerate", depth=4, deepen=True, programs=budget)
    solve_module = importlib.import_module("nlic.runtime.solve")
    tokens = solve_module.language_tokens(spec, MODEL_KINDS.get("nli"), model)
    assert tokens and all(0 <= t < K and t != spec.language.skip_token for t in tokens)
    monkeypatch.setattr(solve_module, "language_tokens", lambda *a: (3, 5))
    _, fitted, stages = solve_module._plan(spec, dataclasses.replace(search, method="cascade"), model, "solve")
    assert fitted.depth == 2
    assert [(st.search.method, st.search.depth, st.tokens) for st in stages] == [
        ("enumerate", 1, None), ("enumerate", 2, None), ("enumerate", 4, (3, 5)), ("gradient", 2, None)]
    assert [st.key_index for st in stages] == [1000, 1001, solve_module.LIVE_KEY, 1002]  # the others' keys kept
    assert stages[2].label(4) == " [enumerate depth 4 over the 2 tokens in use]"
    nli = MODEL_KINDS.get("nli")
    found = nli.solve(model, planted.batch(), stages[2].search, key=jax.random.key(0), tokens=(3, 5))
    assert np.all(np.asarray(found.spec_fit) == 1.0)
    with pytest.raises(ValueError, match="search.branch"):
        nli.solve(model, planted.batch(), stages[2].search, key=jax.random.key(0), tokens=(3, 5, 7))
    res = solve(spec, model, planted, search=search)
    assert np.all(res.spec_fit == 1.0) and res.accuracy == 1.0
    np.testing.assert_array_equal(execute(model, res.programs, tasks.query_inputs), res.outputs)
    live = solve_module._live_stage(search.fitted(K, Tmax), search, K, Tmax, (3, 5))
    assert (live.search.depth, live.search.branch, live.tokens) == (4, 2, (3, 5))
    assert solve_module._live_stage(search.fitted(K, Tmax), search, K, Tmax, tuple(range(1, K))) is None  # all in use
    assert solve_module._live_stage(search.fitted(K, Tmax), search, K, Tmax, (3,)) is None  # repetitions cover one


def test_an_enumeration_over_one_token_ends(model_tasks):
    """`branch: 1` (one token a position) enumerates that token's repetitions: the loop over the program tree
    takes one program a chunk instead of growing its chunk forever."""
    spec, model, tasks = model_tasks
    res = solve(spec, model, tasks, search=_search(method="enumerate", depth=3, branch=1))
    assert res.programs.shape == (len(tasks), spec.language.max_length)


def test_solve_names_the_budget_each_method_spends(model_tasks):
    """`nlic solve`'s first line states what the search spends: an enumeration's depth (cut to `search.programs`),
    not the gradient starts it never runs."""
    from nlic.runtime.solve import _budget_text

    spec, model, _ = model_tasks
    kind = MODEL_KINDS.get("nli")
    text = {m: _budget_text(kind, _search(method=m, depth=6, programs=200, deepen=True), model)
            for m in ("none", "prior", "gradient", "enumerate", "cascade")}
    depth = _search(depth=6, programs=200).fitted(spec.language.vocab, spec.language.max_length).depth
    assert text == {"none": "no search", "prior": "3 programs sampled", "gradient": "3 starts x 3 steps",
                    "enumerate": f"every program of up to {depth} tokens, shortest first",
                    "cascade": f"every program of up to {depth} tokens, shortest first, then 3 starts x 3 steps"}
