"""Tests of NLI test-time search and the `solve` API: discrete outputs, exact scoring, tracing, determinism."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_nli import setup, tiny_spec


def _search(**kw):
    from nlic.compiler.spec import SearchSpec

    base = dict(starts=3, steps=3, depth=2, batch=4)
    base.update(kw)
    return SearchSpec(**base)


@pytest.fixture(scope="module")
def model_tasks():
    spec = tiny_spec()
    model, tasks = setup(spec, n=6, split="ood")
    return spec, model, tasks


@pytest.mark.parametrize("method", ["none", "prior", "gradient", "enumerate", "cascade"])
def test_methods_return_discrete_programs_scored_exactly(model_tasks, method):
    from nlic.compiler.models.nli import execute, spec_scores
    from nlic.runtime.solve import solve

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


def test_enumerate_finds_a_planted_program(model_tasks):
    """Outputs made by a 2-token program are solved exactly (spec fit 1) by depth-2 enumeration."""
    from nlic.compiler.models.nli import execute
    from nlic.runtime.solve import solve
    from nlic.runtime.tasks import TaskSet

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


def test_gradient_never_worse_than_none_on_spec(model_tasks):
    from nlic.runtime.solve import solve

    spec, model, tasks = model_tasks
    a = solve(spec, model, tasks, search=_search(method="none"))
    b = solve(spec, model, tasks, search=_search(method="gradient", starts=4, steps=5))
    assert np.all(b.spec_fit >= a.spec_fit - 1e-6)


def test_solve_deterministic_and_padded_batches(model_tasks):
    from nlic.runtime.solve import solve

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
    from nlic.runtime.search import SEARCH_METHODS

    spec, model, tasks = model_tasks
    batch = tasks.take(slice(0, 4)).batch()
    for method in ("none", "gradient", "enumerate"):
        run = SEARCH_METHODS.get(method).run
        counted = eqx.debug.assert_max_traces(run.batched.__wrapped__, max_traces=1)
        jitted = eqx.filter_jit(counted)
        s = _search(method=method)
        from nlic.runtime.search import _statics

        for seed, lr in ((0, 0.1), (1, 0.3)):  # a new learning rate is an array: no re-trace
            hyper = {"lr": jnp.asarray(lr), "init_noise": jnp.asarray(1.0)}
            jitted(model, batch, _statics(dataclasses.replace(s, lr=lr)), hyper, jax.random.key(seed))


def test_unknown_method_is_a_spec_error(model_tasks):
    from nlic.grammar.errors import SpecError
    from nlic.runtime.solve import solve

    spec, model, tasks = model_tasks
    with pytest.raises(SpecError, match="gradient"):
        solve(spec, model, tasks, search=_search(method="gradiant"))


def test_solve_without_targets(model_tasks):
    from nlic.runtime.solve import solve

    spec, model, tasks = model_tasks
    blind = dataclasses.replace(tasks, has_target=np.zeros(len(tasks), bool))
    res = solve(spec, model, blind, search=_search(method="none"))
    assert res.accuracy is None and not res.correct.any()
