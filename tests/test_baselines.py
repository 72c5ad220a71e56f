"""The baseline model kinds (in_context, ttt, lpn, dlpn): compile, train, solve, and their search guarantees."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nlic.compiler.kinds import Batch, MODEL_KINDS, Shapes
from nlic.compiler.models.in_context import held_out_masks, in_context_logits, with_query_pair
from nlic.compiler.models.lpn import _others, latent_search, pool
from nlic.compiler.models.nli import Inductor
from nlic.compiler.spec import ExecutorSpec, InductorSpec, LanguageSpec, LatentSpec, ModelSpec, SearchSpec, Spec, TaskSpec
from nlic.grammar.errors import SpecError

KINDS = ("in_context", "ttt", "lpn", "dlpn")
L, V, M = 6, 4, 3


def tiny_spec(kind, **latent):
    small = dict(layers=1, width=16, heads=2, mlp_ratio=1)
    return Spec(
        task=TaskSpec(pairs=M),
        language=LanguageSpec(vocab=4, length=2, max_length=3),
        model=ModelSpec(
            kind=kind,
            inductor=InductorSpec(**small, head_hidden=16, positions="sequence"),
            executor=ExecutorSpec(**small, routing=False, mirrors=False),
            latent=LatentSpec(dim=4, **latent),
        ),
        search=SearchSpec(method="none", starts=8, steps=3, lr=0.05),
    )


def shift_batch(n, seed):
    """A local stand-in for the shift family: each task is a cyclic shift of L values by 1 or 2."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, size=(n, M + 1, L))
    k = rng.integers(1, 3, size=n)
    y = np.stack([np.roll(x[i], k[i], axis=-1) for i in range(n)])
    mask = np.ones((n, M), bool)
    mask[0, -1] = False  # one task with a padding pair
    return Batch(
        jnp.asarray(x[:, :M], jnp.int32), jnp.asarray(y[:, :M], jnp.int32), jnp.asarray(mask),
        jnp.asarray(x[:, M], jnp.int32), jnp.asarray(y[:, M], jnp.int32),
    )


def setup(kind_name, **latent):
    spec = tiny_spec(kind_name, **latent)
    kind = MODEL_KINDS.get(kind_name)
    model = kind.build(spec, Shapes(length=L, values=V, pairs=M), key=jax.random.key(0))
    return spec, kind, model


_TRAINED = {}


def trained(kind_name):
    """(spec, kind, model, losses, solve): each kind built and trained once per test session (compiles are slow)."""
    if kind_name in _TRAINED:
        return _TRAINED[kind_name]
    if kind_name == "ttt":  # the same build and loss as in_context: reuse its trained model, solve differently
        spec, _, model, losses, _ = trained("in_context")
        spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, kind="ttt"))
        kind = setup("ttt")[1]
        assert kind.loss is trained("in_context")[1].loss
        solve = eqx.filter_jit(eqx.debug.assert_max_traces(kind.solve, max_traces=len(kind.search_methods)))
        _TRAINED[kind_name] = (spec, kind, model, losses, solve)
        return _TRAINED[kind_name]
    # lpn trains with one inner latent step ("Grad 1"), so that path is compiled and trained too.
    spec, kind, model = setup(kind_name, **({"inner_steps": 1, "inner_lr": 0.5} if kind_name == "lpn" else {}))
    optim = optax.adam(1e-2)
    state = optim.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(model, state, batch, t, key):
        (loss, metrics), grads = eqx.filter_value_and_grad(kind.loss, has_aux=True)(model, batch, t, key=key)
        updates, state = optim.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state, loss, metrics

    batch = shift_batch(8, seed=0)
    losses = []
    for i in range(12):  # a fixed batch: the loss must fall when the model can fit it
        model, state, loss, metrics = step(model, state, batch, jnp.asarray(i / 11, jnp.float32), jax.random.key(i))
        losses.append(float(loss))
        assert all(np.isfinite(float(v)) for v in metrics.values())
    # One trace per search method: a new key or new data must not re-trace.
    solve = eqx.filter_jit(eqx.debug.assert_max_traces(kind.solve, max_traces=len(kind.search_methods)))
    _TRAINED[kind_name] = (spec, kind, model, losses, solve)
    return _TRAINED[kind_name]


@pytest.mark.parametrize("kind_name", KINDS)
def test_kind_trains_and_solves(kind_name):
    spec, kind, model, losses, solve = trained(kind_name)
    assert losses[-1] < losses[0] - 0.05, losses
    methods = [m for m in kind.search_methods if m != "ttt"]  # `ttt` is an alias of `gradient`
    for method in methods:
        search = dataclasses.replace(spec.search, method=method)
        for k in range(2):
            sol = solve(model, shift_batch(4, seed=1 + k), search, key=jax.random.key(k))
        assert sol.programs.shape == (4, spec.language.max_length)
        assert sol.outputs.shape == sol.soft_outputs.shape == (4, L)
        assert sol.outputs.dtype == jnp.int32
        assert ((sol.outputs >= 0) & (sol.outputs < V)).all()
        fit = np.asarray(sol.spec_fit)
        assert ((fit >= 0) & (fit <= 1)).all()
        assert (np.asarray(sol.spec_loglik) <= 0).all()


def test_unknown_search_method_is_a_spec_error():
    spec, kind, model, _, _ = trained("lpn")
    with pytest.raises(SpecError, match="prior") as e:
        kind.solve(model, shift_batch(2, 0), dataclasses.replace(spec.search, method="prior"), key=jax.random.key(0))
    assert "gradient" in e.value.render()  # the hint lists the supported methods


def test_ttt_never_modifies_stored_weights_and_fits_the_spec():
    spec, kind, model, _, solve = trained("ttt")
    before = [np.array(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]
    batch = shift_batch(4, seed=1)
    none = solve(model, batch, dataclasses.replace(spec.search, method="none"), key=jax.random.key(0))
    tuned = solve(model, batch, dataclasses.replace(spec.search, method="gradient"), key=jax.random.key(0))
    after = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, after, strict=True))
    # Fine-tuning on the leave-one-out loss raises the leave-one-out likelihood of the spec pairs.
    assert float(tuned.spec_loglik.mean()) > float(none.spec_loglik.mean())
    # The model is unchanged, so solving again without fine-tuning gives the same answer.
    again = solve(model, batch, dataclasses.replace(spec.search, method="none"), key=jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(again.spec_loglik), np.asarray(none.spec_loglik))


def test_lpn_search_never_worse_than_its_start():
    spec, kind, model, _, solve = trained("lpn")
    batch = shift_batch(4, seed=1)

    @eqx.filter_jit
    def run(model, batch, lr):  # a SearchSpec is static: one compile per learning rate
        search = dataclasses.replace(spec.search, method="gradient", lr=lr)

        def one(xs, ys, mask):
            mean, _ = model.encode(xs, ys)
            z0 = pool(mask[None, :], mean)[0]
            best, best_loss, start = latent_search(model, z0, xs, ys, mask, search)
            return best_loss, start, model.spec_nll(best, xs, ys, mask)

        return jax.vmap(one)(batch.inputs, batch.outputs, batch.pair_mask)

    for lr in (spec.search.lr, 100.0):  # a sane step, and one that overshoots
        best, start, rescored = run(model, batch, float(lr))
        assert (best <= start + 1e-6).all()
        np.testing.assert_allclose(rescored, best, rtol=1e-5, atol=1e-6)
        if lr < 1:
            assert (best < start).any()  # a small step along the gradient does improve some task
    # Through the kind's solve: gradient search never lowers the spec likelihood of the encoder's latent.
    none = solve(model, batch, dataclasses.replace(spec.search, method="none"), key=jax.random.key(0))
    grad = solve(model, batch, dataclasses.replace(spec.search, method="gradient"), key=jax.random.key(0))
    assert (grad.spec_loglik >= none.spec_loglik - 1e-5).all()


def test_lpn_inner_step_scores_each_held_out_latent_on_the_other_pairs_only():
    # The training inner step gathers the P - 1 other pairs of each held-out pair (P (P - 1) decodes); it must be
    # the same step as scoring all P pairs with the held-out one (and padding pairs) masked out.

    spec, _, model, _, _ = trained("lpn")
    xs, ys, mask = (a[0] for a in with_query_pair(shift_batch(2, seed=3)))  # task 0 has a padding pair
    assert not bool(mask.all())
    z = jax.random.normal(jax.random.key(1), (xs.shape[0], spec.model.latent.dim))
    ctx = held_out_masks(mask)
    zs = pool(ctx, z)
    masked = jax.vmap(jax.grad(model.spec_nll), in_axes=(0, None, None, 0))(zs, xs, ys, ctx)
    o = _others(xs.shape[0])
    assert all(j not in row for j, row in enumerate(o.tolist())) and o.shape == (xs.shape[0], xs.shape[0] - 1)
    gathered = jax.vmap(jax.grad(model.spec_nll))(zs, xs[o], ys[o], mask[o])
    np.testing.assert_allclose(gathered, masked, rtol=1e-5, atol=1e-7)


def test_dlpn_programs_replay_to_the_reported_outputs():
    spec, kind, model, _, solve = trained("dlpn")
    assert kind.discrete_programs and kind.execute is not None
    execute = eqx.filter_jit(kind.execute)
    batch = shift_batch(4, seed=1)
    for method in ("none", "prior"):
        sol = solve(model, batch, dataclasses.replace(spec.search, method=method), key=jax.random.key(1))
        progs = np.asarray(sol.programs)
        assert ((progs >= 0) & (progs < spec.language.vocab)).all()
        assert (progs[:, spec.language.length :] == spec.language.skip_token).all()  # padded with skip
        np.testing.assert_array_equal(np.asarray(execute(model, sol.programs, batch.query_input)), sol.outputs)
        # A program given without its skip padding runs the same.
        short = sol.programs[:, : spec.language.length]
        np.testing.assert_array_equal(np.asarray(kind.execute(model, short, batch.query_input)), sol.outputs)


def test_dlpn_decoder_reads_which_tokens_and_in_what_order():
    # The program conditions the decoder as LPN's latent does (its code vectors concatenated in order, projected):
    # different tokens, and the same tokens in another order, are different programs.
    spec, _, model, _, _ = trained("dlpn")  # trained: the conditioning starts as the identity
    x = jnp.arange(L) % V
    hot = lambda toks: model.pad(jax.nn.one_hot(jnp.asarray(toks), spec.language.vocab))  # noqa: E731
    a, b, swapped = (model.decode(hot(t), x) for t in ([1, 2], [3, 2], [2, 1]))
    assert not np.allclose(a, b, atol=1e-4)
    assert not np.allclose(a, swapped, atol=1e-4)


def test_dlpn_encoder_is_the_nli_inductor():
    # D-LPN and NLI differ only in how a program is executed: the same per-pair inductor, with its relation
    # features (`inductor.relations`) and positions, writes both programs.

    spec, _, model, _, _ = trained("dlpn")
    assert isinstance(model.encoder, Inductor) and spec.model.inductor.relations
    assert model.encoder.relation_x is not None
    x = jnp.arange(L) % V
    slots = model.encoder.encode(x, jnp.roll(x, 1))
    assert slots.shape == (spec.language.length, spec.model.inductor.width)
    assert model.encoder.head(slots).shape == (spec.language.length, spec.language.vocab)


def test_dlpn_prior_search_is_at_least_as_good_as_the_mode():
    spec, kind, model, _, solve = trained("dlpn")
    batch = shift_batch(4, seed=2)
    none = solve(model, batch, dataclasses.replace(spec.search, method="none"), key=jax.random.key(2))
    prior = solve(model, batch, dataclasses.replace(spec.search, method="prior"), key=jax.random.key(2))
    # The mode is one of the prior's candidates and candidates are ranked by spec fit first.
    assert (prior.spec_fit >= none.spec_fit).all()
    assert spec.search.select == "exact"


def test_kinds_are_registered():
    setup("in_context")

    assert set(KINDS) <= set(MODEL_KINDS.names())


@pytest.mark.parametrize("anchors", [False, True])
@pytest.mark.parametrize("kind_name", KINDS)
def test_routing_reaches_every_baseline_decoder(kind_name, anchors):
    """`model.executor.routing` (and `mirrors`, `anchors`) is not NLI-only: each baseline decoder gets the
    per-offset attention bias (and the anchored one) from its code, so a spec that turns it on trains those weights
    (a zero gradient would mean the option is silently ignored); a spec that leaves it off builds no route layers."""

    spec, kind, plain = setup(kind_name)
    ex = dataclasses.replace(spec.model.executor, routing=True, mirrors=True, anchors=anchors)
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, executor=ex))
    model = kind.build(spec, Shapes(length=L, values=V, pairs=M), key=jax.random.key(0))
    assert all(b.route is None and b.anchor_table is None for b in plain.decoder.body.blocks)
    blocks = model.decoder.body.blocks
    assert all(b.route is not None and b.mirror and (b.anchor_table is not None) == anchors for b in blocks)
    batch = shift_batch(4, seed=0)
    grads = eqx.filter_grad(lambda m: kind.loss(m, batch, jnp.asarray(0.0), key=jax.random.key(1))[0])(model)
    assert all(float(jnp.abs(b.route.weight).sum()) > 0 for b in grads.decoder.body.blocks)
    if anchors:
        assert all(float(jnp.abs(b.anchor_table.weight).sum()) > 0 for b in grads.decoder.body.blocks)


@pytest.mark.parametrize("routing", [False, True])
def test_in_context_reads_at_test_time_what_training_holds_out(routing):
    """At test time the query is the held-out pair: the decoder must read the same context slots as in training
    (m spec pairs plus the query's slot as padding), so the query prediction equals training's prediction of the
    query pair held out. A decoder reading one slot fewer scored ID 0.65 where training fit every pair."""

    spec, kind, model = setup("in_context")
    if routing:
        ex = dataclasses.replace(spec.model.executor, routing=True)
        spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, executor=ex))
        model = kind.build(spec, Shapes(length=L, values=V, pairs=M), key=jax.random.key(0))
    batch = shift_batch(3, seed=4)
    query, loo = in_context_logits(model, batch)
    xs, ys, mask = with_query_pair(batch)
    for b in range(3):
        enc = model.encode(xs[b], ys[b])
        ctx = held_out_masks(mask[b])
        held_query = model.predict(enc, ctx[M], xs[b, M])
        np.testing.assert_allclose(np.asarray(query[b]), np.asarray(held_query), atol=1e-5)
        # Spec fit: pair j predicted from the other spec pairs, the query's slot and j's own slot padding.
        ctx_j = ctx[0] & (jnp.arange(M + 1) < M)
        np.testing.assert_allclose(np.asarray(loo[b, 0]), np.asarray(model.predict(enc, ctx_j, xs[b, 0])), atol=1e-5)
