"""Tests of the NLI model kind: shapes and masks, exact skip semantics, tracing, determinism, and learning."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nlic.compiler.families import sample_split, shapes_of
from nlic.compiler.kinds import MODEL_KINDS
from nlic.compiler.models import nli
from nlic.compiler.models.nli import build, execute, loss, solve
from nlic.compiler.models.nli.model import offset_pattern
from nlic.compiler.spec import ExecutorSpec, InductorSpec, IntRange, LanguageSpec, ModelSpec, RelaxationSpec, Schedule, SearchSpec, Spec, TaskSpec, TrainingSpec
from nlic.runtime.solve import solve as solve_tasks


def _range(lo, hi):
    return IntRange(lo, hi)


_SHIFT_PARAMS = (("split", "shift_l"), ("length", 8), ("alphabet", 5), ("train_shifts", _range(1, 2)),
                 ("ood_shifts", _range(3, 4)))


def tiny_spec(**relax):
    return Spec(
        task=TaskSpec(family="shift", params=_SHIFT_PARAMS, pairs=3),
        language=LanguageSpec(vocab=6, length=3, max_length=6),
        model=ModelSpec(
            inductor=InductorSpec(layers=1, width=16, heads=2, mlp_ratio=1, head_hidden=16, positions="sequence",
                                  head_init="random", value_pairs=False),
            executor=ExecutorSpec(layers=1, width=16, heads=2, mlp_ratio=1, routing=False, mirrors=False,
                                  residual_gate=False),
        ),
        training=TrainingSpec(split_until=0.0),
        # the defaults before 2026-12-03 (inductor, executor and training: before 2026-12-04), which these tests were
        # written against
        relaxation=RelaxationSpec(**{"tau_inductor": Schedule("exp", 8.0, 0.5), "reg_weight": 0.01, **relax}),
    )


def jloss(model, batch, t, *, key):
    return _jloss(model, batch, t, key)


@eqx.filter_jit
def _jloss(model, batch, t, key):
    return loss(model, batch, t, key=key)


def setup(spec, n=4, split="train", seed=0):
    model = build(spec, shapes_of(spec), key=jax.random.key(spec.seed))
    tasks = sample_split(spec, split, n, seed=seed)
    return model, tasks


def test_kind_is_registered():
    kind = MODEL_KINDS.get("nli")
    assert kind is nli.NLI_KIND and kind.discrete_programs and kind.execute is not None
    assert {"none", "prior", "gradient"} <= set(kind.search_methods)


def test_loss_shapes_metrics_and_mask():
    spec = tiny_spec()
    model, tasks = setup(spec)
    batch = tasks.batch()
    t = jnp.asarray(0.3)
    value, metrics = jloss(model, batch, t, key=jax.random.key(1))
    assert value.shape == () and bool(jnp.isfinite(value))
    assert set(metrics) == {"nll", "reg", "token_mi", "tokens_in_use", "codebook_perplexity", "skip_fraction", "tau_e", "tau_d",
                            "id_accuracy", "relaxed_accuracy"}
    assert float(metrics["tau_e"]) == pytest.approx(spec.relaxation.tau_inductor.at(0.3), rel=1e-5)
    assert 0 < float(metrics["reg"]) <= spec.language.vocab * spec.language.length
    # A masked-out pair must not influence the loss: scramble its data.
    mask = batch.pair_mask.at[:, -1].set(False)
    masked = batch._replace(pair_mask=mask)
    scrambled = masked._replace(
        inputs=masked.inputs.at[:, -1].set((masked.inputs[:, -1] + 1) % 5),
        outputs=masked.outputs.at[:, -1].set((masked.outputs[:, -1] + 3) % 5),
    )
    a, _ = jloss(model, masked, t, key=jax.random.key(1))
    b, _ = jloss(model, scrambled, t, key=jax.random.key(1))
    assert float(a) == pytest.approx(float(b), rel=1e-5, abs=1e-6)
    assert float(a) != pytest.approx(float(value), rel=1e-6)


def test_diversity_rewards_telling_tasks_apart():
    """relaxation.diversity subtracts weight x token_mi (the tasks/token mutual information, in [0, log K])."""
    t, key = jnp.asarray(0.3), jax.random.key(1)
    model, tasks = setup(tiny_spec(), n=8)
    batch = tasks.batch()
    off, m_off = jloss(model, batch, t, key=key)
    mi = float(m_off["token_mi"])
    assert 0.0 <= mi <= np.log(tiny_spec().language.vocab) + 1e-5
    model2, _ = setup(tiny_spec(diversity=0.5), n=8)  # the same weights (same seed); only the weight differs
    on, m_on = jloss(model2, batch, t, key=key)
    assert float(m_on["token_mi"]) == pytest.approx(mi, rel=1e-5)
    assert float(on) == pytest.approx(float(off) - 0.5 * mi, rel=1e-5, abs=1e-6)


def test_skip_is_exact_noop(getkey):
    spec = tiny_spec()
    model, tasks = setup(spec)
    skip = spec.language.skip_token
    K = spec.language.vocab
    rng = np.random.default_rng(0)
    body = rng.integers(1, K, (4, 3))
    plain = np.concatenate([body, np.full((4, 3), skip)], axis=1)  # length 6 = max_length
    spread = np.full((4, 6), skip)
    spread[:, [0, 2, 5]] = body  # same tokens, skips in between
    x = jnp.asarray(tasks.query_inputs)
    a = execute(model, plain, x)
    b = execute(model, spread, x)
    c = execute(model, body, x)  # shorter program, no padding at all
    long = np.concatenate([plain, np.full((4, 10), skip)], axis=1)  # longer than max_length: same scan
    d = execute(model, long, x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(a, d)
    # An all-skip program is the identity.
    np.testing.assert_array_equal(execute(model, np.full((4, 6), skip), x), x)
    assert a.shape == x.shape and a.dtype == jnp.int32 or a.dtype == jnp.int64


def test_soft_run_with_one_hot_tokens_matches_hard_run():
    spec = tiny_spec()
    model, tasks = setup(spec)
    K = spec.language.vocab
    prog = jnp.asarray([2, 0, 4, 1, 0, 0])
    x = jnp.asarray(tasks.query_inputs[0])
    codes, gate = model.codes(jax.nn.one_hot(prog, K))
    soft = model.run_soft(codes, gate, x, jnp.asarray(1e-3), key=jax.random.key(0), noise=False)
    hard, _ = model.run_hard(prog, x)
    np.testing.assert_array_equal(jnp.argmax(soft, -1), hard)


def test_routing_lets_one_token_move_data():
    """With routing, a token's code biases attention by relative offset: a code that selects offset -1 (and +7
    for the wrap-around) in every head, and a step network whose attention copies values, is a cyclic shift."""

    spec = tiny_spec()
    ex = dataclasses.replace(spec.model.executor, routing=True)
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, executor=ex))
    model = build(spec, shapes_of(spec), key=jax.random.key(0))
    block = model.executor.step.blocks[0]
    assert block.route is not None and not bool(jnp.any(block.route.weight)), "routing starts at zero"
    L, D, V = 8, 16, 5
    H, R = block.attn.rel_bias.shape
    assert R == 2 * L - 1
    # Hand-set weights: attention reads only the routing bias and copies the value embedding; no MLP, no residual
    # preference (the readout sees the attended value far above the position's own).
    table = jnp.full((H, R), -50.0).at[:, L - 1 - 1].set(50.0).at[:, L - 1 + L - 1].set(50.0)
    route = eqx.tree_at(lambda m: (m.weight, m.bias), block.route, (jnp.zeros_like(block.route.weight), table.reshape(-1)))
    qkv = block.attn.qkv
    w = jnp.zeros_like(qkv.weight).at[2 * D:].set(jnp.eye(D) * 10.0)
    attn = eqx.tree_at(lambda a: (a.qkv.weight, a.qkv.bias, a.rel_bias, a.out.weight, a.out.bias), block.attn,
                       (w, jnp.zeros_like(qkv.bias), jnp.zeros((H, R)), jnp.eye(D), jnp.zeros(D)))
    mlp = eqx.tree_at(lambda m: (m.fc2.weight, m.fc2.bias), block.mlp, (jnp.zeros_like(block.mlp.fc2.weight), jnp.zeros(D)))
    norm = eqx.nn.LayerNorm(D, use_weight=False, use_bias=False)
    block = eqx.tree_at(lambda b: (b.route, b.attn, b.mlp, b.film), block, (route, attn, mlp, None),
                        is_leaf=lambda x: x is None)
    step = eqx.tree_at(lambda s: (s.blocks, s.norm), model.executor.step, ((block,), norm))
    value = jnp.eye(V, D) * 3.0
    executor = eqx.tree_at(lambda e: (e.step, e.value_embed, e.pos_embed, e.readout.weight, e.readout.bias),
                           model.executor, (step, value, jnp.zeros((L, D)), value, jnp.zeros(V)))
    model = eqx.tree_at(lambda m: m.executor, model, executor)
    x = jnp.asarray(sample_split(spec, "train", 4, seed=0).query_inputs)
    prog = jnp.asarray([1, 0, 0, 0, 0, 0])
    out = jax.vmap(lambda xi: model.run_hard(prog, xi)[0])(x)
    np.testing.assert_array_equal(out, jnp.roll(x, 1, axis=-1))


def test_datum_positions_and_mirrors_build_train_and_keep_skip_exact():
    spec = tiny_spec()
    m = spec.model
    m = dataclasses.replace(m, inductor=dataclasses.replace(m.inductor, positions="datum"),
                            executor=dataclasses.replace(m.executor, routing=True, mirrors=True))
    spec = dataclasses.replace(spec, model=m)
    model, tasks = setup(spec)
    assert model.inductor.datum_positions and model.executor.step.blocks[0].mirror
    value, metrics = jloss(model, tasks.batch(), jnp.asarray(0.5), key=jax.random.key(0))
    assert bool(jnp.isfinite(value)) and metrics["nll"].shape == ()
    x = jnp.asarray(tasks.query_inputs)
    skip = np.full((4, spec.language.max_length), spec.language.skip_token)
    np.testing.assert_array_equal(execute(model, skip, x), x)
    # The mirror table has one entry per position sum (0 .. 2L-2), as many as relative offsets.
    route = model.executor.step.blocks[0].route
    H, R = model.executor.step.blocks[0].attn.rel_bias.shape
    assert route.weight.shape[0] == 2 * H * R


def _with_anchors(spec, **executor):
    ex = dataclasses.replace(spec.model.executor, routing=True, anchors=True, **executor)
    return dataclasses.replace(spec, model=dataclasses.replace(spec.model, executor=ex))


def test_anchors_start_flat_and_leave_every_other_weight_as_it_was():
    """`anchors` adds modules from keys of their own and zero bias tables: the model computes what it computed
    without them (same loss, same discrete runs) until the tables are learned, and gradients reach the anchors."""
    plain = _with_anchors(tiny_spec(), mirrors=True)
    plain = dataclasses.replace(plain, model=dataclasses.replace(
        plain.model, executor=dataclasses.replace(plain.model.executor, anchors=False)))
    anchored = _with_anchors(tiny_spec(), mirrors=True)
    (m0, tasks), (m1, _) = setup(plain), setup(anchored)
    block = m1.executor.step.blocks[0]
    assert block.anchor_table is not None and not bool(jnp.any(block.anchor_table.weight))
    assert m0.executor.step.blocks[0].anchor_table is None
    batch = tasks.batch()
    v0, _ = jloss(m0, batch, jnp.asarray(0.4), key=jax.random.key(3))
    v1, _ = jloss(m1, batch, jnp.asarray(0.4), key=jax.random.key(3))
    assert float(v0) == pytest.approx(float(v1), rel=1e-5, abs=1e-6)
    x = jnp.asarray(tasks.query_inputs)
    prog = np.tile(np.arange(anchored.language.max_length) % anchored.language.vocab, (4, 1))
    np.testing.assert_array_equal(execute(m0, prog, x), execute(m1, prog, x))
    grads = eqx.filter_grad(lambda m: jloss(m, batch, jnp.asarray(0.4), key=jax.random.key(3))[0])(m1)
    table = grads.executor.step.blocks[0].anchor_table.weight
    assert bool(jnp.all(jnp.isfinite(table))) and bool(jnp.any(table != 0))


def test_anchors_let_one_token_mirror_around_a_dot_wherever_it_sits():
    """An anchor placed by content (the cell holding value 2, the dot) and a bias table over the anchored sum
    (j - a) + (i - a) = 0 make one token a mirror around the dot, at every dot position: what the position-sum
    mirror table (one fixed centre per code) cannot be."""
    spec = _with_anchors(tiny_spec(), mirrors=False)
    model = build(spec, shapes_of(spec), key=jax.random.key(0))
    block = model.executor.step.blocks[0]
    L, D, V, A = 8, 16, 5, 8
    H = block.attn.heads
    R2 = 4 * L - 3
    # Anchor keys read the dot's value channel, the code's query weights it by 40: both anchors of every head land on
    # the dot. Table 1 (the anchored sum) peaks at 0; table 0 is flat.
    key_w = jnp.zeros((H * 2 * A, D)).at[::A, 2].set(1.0)
    query_b = jnp.zeros(H * 2 * A).at[::A].set(40.0)
    tables = jnp.zeros((H, 2, R2)).at[:, 1, :].set(-50.0).at[:, 1, 2 * L - 2].set(50.0)
    akey = eqx.tree_at(lambda m: (m.weight, m.bias), block.anchor_key, (key_w, jnp.zeros(H * 2 * A)))
    aquery = eqx.tree_at(lambda m: (m.weight, m.bias), block.anchor_query,
                         (jnp.zeros_like(block.anchor_query.weight), query_b))
    atable = eqx.tree_at(lambda m: m.bias, block.anchor_table, tables.reshape(-1))
    qkv = block.attn.qkv
    w = jnp.zeros_like(qkv.weight).at[2 * D:].set(jnp.eye(D) * 10.0)
    attn = eqx.tree_at(lambda a: (a.qkv.weight, a.qkv.bias, a.rel_bias, a.out.weight, a.out.bias), block.attn,
                       (w, jnp.zeros_like(qkv.bias), jnp.zeros_like(block.attn.rel_bias), jnp.eye(D), jnp.zeros(D)))
    mlp = eqx.tree_at(lambda m: (m.fc2.weight, m.fc2.bias), block.mlp, (jnp.zeros_like(block.mlp.fc2.weight), jnp.zeros(D)))
    norm = eqx.nn.LayerNorm(D, use_weight=False, use_bias=False)
    block = eqx.tree_at(lambda b: (b.anchor_key, b.anchor_query, b.anchor_table, b.attn, b.mlp, b.film), block,
                        (akey, aquery, atable, attn, mlp, None), is_leaf=lambda x: x is None)
    step = eqx.tree_at(lambda s: (s.blocks, s.norm), model.executor.step, ((block,), norm))
    value = jnp.eye(V, D) * 3.0
    executor = eqx.tree_at(lambda e: (e.step, e.value_embed, e.pos_embed, e.readout.weight, e.readout.bias),
                           model.executor, (step, value, jnp.zeros((L, D)), value, jnp.zeros(V)))
    model = eqx.tree_at(lambda m: m.executor, model, executor)
    prog = jnp.asarray([1, 0, 0, 0, 0, 0])
    for row in ([1, 3, 0, 2, 0, 0, 0, 0], [0, 0, 4, 1, 2, 0, 0, 0], [0, 0, 0, 0, 3, 2, 0, 4]):
        x = jnp.asarray(row)
        p = row.index(2)
        out = np.asarray(model.run_hard(prog, x)[0])
        inside = [i for i in range(L) if 0 <= 2 * p - i < L]
        np.testing.assert_array_equal(out[inside], np.asarray(row)[[2 * p - i for i in inside]])


@pytest.mark.parametrize("n", [1, 2, 7, 8])
def test_reshaped_attention_biases_equal_the_gathered_ones(n):
    """`anchors` lays the per-sequence offset (Toeplitz) and sum (Hankel) biases out by reshapes, not a gather: the
    same attention on every length up to the span."""
    from nlic.compiler.models.layers import Attention

    k1, k2, k3, k4 = jax.random.split(jax.random.key(n), 4)
    attn = Attention(16, 2, span=8, key=k1)
    x = jax.random.normal(k2, (n, 16))
    offset, mirror = jax.random.normal(k3, (2, 15)), jax.random.normal(k4, (2, 15))
    for biases in ((None, None), (offset, None), (offset, mirror)):
        np.testing.assert_allclose(attn(x, None, *biases, reshaped=True), attn(x, None, *biases), rtol=1e-6, atol=1e-6)


def test_skip_from_keeps_the_skip_token_out_of_early_programs():
    plain = tiny_spec()
    late = tiny_spec(skip_from=0.5)
    model, tasks = setup(plain)
    early, _ = setup(late)
    batch = tasks.batch()

    def to_skip(m):  # a head biased towards skip: without skip_from every slot holds it
        fc2 = m.inductor.head.fc2
        return eqx.tree_at(lambda m: m.inductor.head.fc2.bias, m, fc2.bias.at[plain.language.skip_token].add(50.0))

    model, early = to_skip(model), to_skip(early)
    _, m0 = jloss(model, batch, jnp.asarray(0.3), key=jax.random.key(0))
    assert float(m0["skip_fraction"]) == 1.0
    _, m1 = jloss(early, batch, jnp.asarray(0.3), key=jax.random.key(0))
    assert float(m1["skip_fraction"]) == 0.0
    # From skip_from on, the loss is the plain one.
    v0, _ = jloss(model, batch, jnp.asarray(0.7), key=jax.random.key(0))
    v1, _ = jloss(early, batch, jnp.asarray(0.7), key=jax.random.key(0))
    assert float(v0) == float(v1)


def test_offset_relations_see_a_move_wherever_the_block_sits():
    spec = tiny_spec()
    on = dataclasses.replace(spec, model=dataclasses.replace(
        spec.model, inductor=dataclasses.replace(spec.model.inductor, offsets=True)))
    base, _ = setup(spec)
    model, tasks = setup(on)
    # A key of its own: turning the option on leaves every other initial weight as it was.
    assert eqx.tree_equal(eqx.tree_at(lambda m: (m.inductor.offset_x, m.inductor.offset_y), model, (None, None)),
                          base)
    L = shapes_of(spec).length
    assert model.inductor.offset_y.weight.shape == (spec.model.inductor.width, 2 * L - 1)
    value, _ = jloss(model, tasks.batch(), jnp.asarray(0.5), key=jax.random.key(0))
    assert bool(jnp.isfinite(value))

    # The feature is the equality pattern at each relative offset d = -(L-1)..L-1 (column d + L - 1): a block
    # moved right by 2 shows the same row pattern wherever it sits.
    x1 = jnp.array([0, 3, 3, 0, 0, 0, 0, 0][:L])
    y1 = jnp.array([0, 0, 0, 3, 3, 0, 0, 0][:L])
    p1 = np.asarray(offset_pattern(y1, x1))
    p2 = np.asarray(offset_pattern(jnp.roll(y1, 2), jnp.roll(x1, 2)))
    assert p1.shape == (L, 2 * L - 1)
    assert p1[3, L - 1 - 2] and p1[4, L - 1 - 2] and not p1[3, L - 1]  # output cells 3, 4 come from 2 to the left
    np.testing.assert_array_equal(p1[3], p2[5])
    np.testing.assert_array_equal(p1[4], p2[6])
    assert not p1[0, : L - 1].any()  # nothing left of the datum's first cell
    # The embedding reads it: without the offset weights it differs.
    without = eqx.tree_at(lambda m: (m.inductor.offset_x, m.inductor.offset_y), model, (None, None))
    assert not np.allclose(model.inductor.encode(x1, y1), without.inductor.encode(x1, y1))


@pytest.mark.parametrize(
    "relax",
    [
        dict(discrete_program=False, straight_through=True),
        dict(recurrent=False, executor_gumbel=False, inductor_gumbel=False),
        dict(value_bottleneck=False, skip=False, reg_weight=0.0),
    ],
)
def test_ablations_build_and_run(relax):
    spec = tiny_spec(**relax)
    model, tasks = setup(spec)
    value, _ = jloss(model, tasks.batch(), jnp.asarray(0.5), key=jax.random.key(0))
    assert bool(jnp.isfinite(value))
    sol = solve(model, tasks.batch(), SearchSpec(method="prior", starts=2), key=jax.random.key(0))
    assert sol.programs.shape == (4, spec.language.max_length)
    assert execute(model, sol.programs, tasks.batch().query_input).shape == (4, 8)
    if not spec.relaxation.skip:
        # Without a skip token the inductor never writes it inside the trained length.
        assert not bool(jnp.any(sol.programs[:, : spec.language.length] == spec.language.skip_token))


def test_one_trace_train_step_and_execute():
    spec = tiny_spec()
    model, tasks = setup(spec)
    opt = optax.adamw(jnp.asarray(1e-3))
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(model, state, batch, t, key):
        (value, metrics), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model, batch, t, key=key)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state, value

    batch = tasks.batch()
    for i in range(3):
        model, state, _ = step(model, state, batch, jnp.asarray(i / 2, jnp.float32), jax.random.key(i))

    run = eqx.filter_jit(eqx.debug.assert_max_traces(execute, max_traces=1))
    progs = np.zeros((4, 6), np.int32)
    run(model, progs, batch.query_input)
    run(model, progs + 1, batch.query_input)


def test_execute_exports():
    from jax import export

    spec = tiny_spec()
    model, tasks = setup(spec)
    fn = jax.jit(lambda p, x: model.execute(p, x))
    progs = jnp.asarray(np.random.default_rng(0).integers(0, 6, (4, 6)), jnp.int32)
    x = jnp.asarray(tasks.query_inputs)
    exp = export.export(fn)(jax.ShapeDtypeStruct(progs.shape, jnp.int32), jax.ShapeDtypeStruct(x.shape, jnp.int32))
    restored = export.deserialize(exp.serialize())
    np.testing.assert_array_equal(restored.call(progs, x), model.execute(progs, x))


def test_loss_deterministic_given_key():
    spec = tiny_spec()
    model, tasks = setup(spec)
    model2, _ = setup(spec)
    a, _ = jloss(model, tasks.batch(), jnp.asarray(0.1), key=jax.random.key(3))
    b, _ = jloss(model2, tasks.batch(), jnp.asarray(0.1), key=jax.random.key(3))
    c, _ = jloss(model2, tasks.batch(), jnp.asarray(0.1), key=jax.random.key(4))
    assert float(a) == float(b)
    assert float(a) != float(c)


def test_tiny_shift_learns_beyond_copying():
    """A tiny Shift-L model trained for a few hundred steps: loss falls and its discrete programs beat copying."""
    spec = tiny_spec(tau_inductor=Schedule("exp", 4.0, 0.5), tau_executor=Schedule("exp", 2.0, 0.5), reg_weight=0.0)
    spec = dataclasses.replace(
        spec,
        task=dataclasses.replace(spec.task, params=(("split", "shift_l"), ("length", 6), ("alphabet", 4),
                                                    ("train_shifts", _range(1, 2)), ("ood_shifts", _range(3, 4)))),
        training=TrainingSpec(steps=300, batch=16),
    )
    model, _ = setup(spec)
    steps = spec.training.steps
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(3e-3))
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, state, batch, t, key):
        (value, metrics), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model, batch, t, key=key)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state, metrics["nll"]

    data = sample_split(spec, "train", steps * 16, seed=1)
    nlls = []
    for i in range(steps):
        batch = data.take(slice(16 * i, 16 * (i + 1))).batch()
        model, state, nll = step(model, state, batch, jnp.asarray(i / (steps - 1), jnp.float32), jax.random.key(i))
        nlls.append(float(nll))
    assert np.mean(nlls[-20:]) < np.mean(nlls[:20]) - 0.3
    test = sample_split(spec, "id", 64, seed=2)

    res = solve_tasks(spec, model, test, search=SearchSpec(method="none", batch=32))
    copy = float(np.all(test.query_inputs == test.query_outputs, axis=-1).mean())
    assert res.accuracy is not None and res.accuracy > copy + 0.75  # a constant program scores about 0.5



def test_hard_states_make_relaxed_execution_follow_the_discrete_program():
    """With `hard_states`, a relaxed run of one-hot tokens (no noise) carries one-hot value states from step to
    step, so its output's argmax is exactly what `execute` (the discrete semantics) computes; gradients still
    flow (straight-through)."""
    spec = tiny_spec(hard_states=True)
    model, tasks = setup(spec, n=8)
    rng = np.random.default_rng(0)
    K, T = spec.language.vocab, spec.language.max_length
    progs = jnp.asarray(rng.integers(0, K, (8, T)), jnp.int32)
    x = jnp.asarray(tasks.query_inputs)

    def relaxed(prog, xi):
        codes, gate = model.codes(jax.nn.one_hot(prog, K), None)
        return model.run_soft(codes, gate, xi, jnp.asarray(0.5), key=jax.random.key(0), noise=False)

    lp = jax.vmap(relaxed)(progs, x)
    np.testing.assert_array_equal(jnp.argmax(lp, -1), execute(model, progs, x))
    assert bool(jnp.all(jnp.isfinite(lp)))

    def nll(m):
        codes, gate = m.codes(jax.nn.one_hot(progs[0], K), None)
        out = m.run_soft(codes, gate, x[0], jnp.asarray(0.5), key=jax.random.key(0), noise=True)
        return -jnp.take_along_axis(out, x[0][:, None], axis=-1).mean()

    grads = eqx.filter_grad(nll)(model)
    g = jax.tree_util.tree_leaves(eqx.filter(grads.executor, eqx.is_inexact_array))
    assert any(float(jnp.abs(leaf).sum()) > 0 for leaf in g)
    value, _ = jloss(model, tasks.batch(), jnp.asarray(0.5), key=jax.random.key(0))
    assert bool(jnp.isfinite(value))
