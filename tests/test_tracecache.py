"""Tests of the trace store (`nlic.compiler.tracecache`): a stored trace lowers to code that computes the same, the
key separates what differs, a damaged entry is traced afresh, and the stored train step gives `make_train_step`'s
bits, traced or loaded."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import TOY, leaves_of, tiny_spec

from nlic.compiler import tracecache
from nlic.compiler.families import sample_split, shapes_of
from nlic.compiler.kinds import MODEL_KINDS
from nlic.compiler.optim import StoredTrainStep, init_state, make_optimizer, make_train_step


class DictStore:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.entries.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.entries[key] = value


@pytest.fixture
def store():
    before = tracecache.trace_store()
    s = DictStore()
    tracecache.set_trace_store(s)
    yield s
    tracecache.set_trace_store(before)


def _f(x, y, scale):
    return {"out": x * scale + jnp.sum(y), "first": x[0]}, "a static output"


ARGS = (jnp.arange(3.0), jnp.ones((2, 2)), 2.0)


def _run(low: tracecache.Lowered, args) -> list[np.ndarray]:
    leaves = jax.tree_util.tree_leaves(eqx.filter(args, eqx.is_array))
    return [np.asarray(a) for a in low.lowered.compile()(*[leaves[i] for i in low.kept])]


def test_a_stored_trace_is_loaded_and_computes_the_same(store):
    first = tracecache.lower("f", _f, ARGS, outline=lambda out: sorted(out[0]))
    again = tracecache.lower("f", _f, ARGS, outline=lambda out: pytest.fail("traced again"))
    assert (first.loaded, again.loaded) == (False, True) and len(store.entries) == 1
    assert first.info == again.info == ["first", "out"]
    want = [np.asarray(jnp.arange(3.0)[0]), np.asarray(jnp.arange(3.0) * 2 + 4)]  # leaves in key order
    for got in (_run(first, ARGS), _run(again, ARGS)):
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("other", [
    ("f", (jnp.arange(3.0), jnp.ones((2, 2)), 3.0), ()),          # another static value
    ("f", (jnp.arange(4.0), jnp.ones((2, 2)), 2.0), ()),          # another shape
    ("f", (jnp.arange(3, dtype=jnp.int32), jnp.ones((2, 2)), 2.0), ()),  # another dtype
    ("f", ARGS, ("another spec",)),                                # the caller's parts
    ("g", ARGS, ()),                                               # another name
])
def test_what_differs_is_not_loaded(store, other):
    tracecache.lower("f", _f, ARGS)
    name, args, parts = other
    assert not tracecache.lower(name, _f, args, parts=parts).loaded
    assert len(store.entries) == 2


def test_a_damaged_or_foreign_entry_is_traced_afresh_and_replaced(store):
    tracecache.lower("f", _f, ARGS)
    (key,) = store.entries
    good = store.entries[key]
    for bad in (b"", b"junk", good[:len(good) // 2], good[:40] + b"\xff" * 64 + good[104:]):
        store.entries[key] = bad
        low = tracecache.lower("f", _f, ARGS)
        assert not low.loaded and store.entries[key] != bad  # replaced by a fresh trace, which loads next time
        assert tracecache.lower("f", _f, ARGS).loaded
        assert np.array_equal(_run(low, ARGS)[1], np.asarray(jnp.arange(3.0) * 2 + 4))


def test_unread_arguments_are_dropped_and_keys_pass_as_their_data(store):
    def g(key, unused, x):
        return jax.random.normal(key, x.shape) + x, jax.random.split(key)[0]

    args = (jax.random.key(3), jnp.zeros(5), jnp.ones(4))
    for loaded in (False, True):
        low = tracecache.lower("g", g, args)
        assert low.loaded == loaded and low.kept == (0, 2)
        values, key = low.lowered.compile()(jax.random.key_data(args[0]), args[2])
        want, want_key = g(*args)
        assert np.array_equal(values, want) and np.array_equal(key, jax.random.key_data(want_key))


def test_without_a_store_nothing_is_kept():
    before = tracecache.trace_store()
    tracecache.set_trace_store(None)
    try:
        assert not tracecache.lower("f", _f, ARGS).loaded
        assert not tracecache.lower("f", _f, ARGS).loaded
    finally:
        tracecache.set_trace_store(before)


def test_the_stored_train_step_gives_make_train_steps_bits_traced_or_loaded(store):
    spec = tiny_spec()
    kind = MODEL_KINDS.get(TOY)
    optim = make_optimizer(spec.training)
    start = init_state(spec, kind, shapes_of(spec), optim)
    batches = [sample_split(spec, "train", 8, seed=s).batch() for s in range(4)]

    def train(step):
        model, opt, key = start
        for i, batch in enumerate(batches):
            model, opt, loss, metrics, gnorm = step(model, opt, batch, jnp.asarray(i / 3, jnp.float32),
                                                    jnp.asarray(i, jnp.int32), key)
        return leaves_of(model) + leaves_of(opt) + [np.asarray(loss), np.asarray(gnorm)], sorted(metrics)

    want, names = train(make_train_step(kind, optim))
    traced, loaded = StoredTrainStep(kind, optim, spec.training, max_traces=1), StoredTrainStep(kind, optim,
                                                                                                spec.training)
    for step, was_loaded in ((traced, 0), (loaded, 1)):
        got, got_names = train(step)
        assert step.loaded == was_loaded and got_names == names
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_an_outline_the_caller_refuses_is_traced_afresh(store):
    tracecache.lower("f", _f, ARGS, outline=lambda out: {"n": 2})
    (key,) = store.entries
    store.entries[key] = store.entries[key].replace(b'{"n": 2}', b'{"n": 3}')  # same length: a valid header
    low = tracecache.lower("f", _f, ARGS, outline=lambda out: {"n": 2}, check=lambda info: info["n"] == 2)
    assert not low.loaded and low.info == {"n": 2}
    assert tracecache.lower("f", _f, ARGS, check=lambda info: info["n"] == 2).loaded


def test_what_jax_export_refuses_compiles_as_a_plain_jit_and_is_not_stored(store):
    seen = []

    def with_callback(x, y):
        jax.debug.callback(lambda v: seen.append(float(v)), x[0])  # a host callback: jax.export refuses it
        return x * 2

    args = (jnp.arange(3.0), jnp.zeros(2))
    low = tracecache.lower("cb", with_callback, args)
    assert not low.loaded and low.kept == (0, 1) and not store.entries
    out = low.lowered.compile()(*args)
    assert np.array_equal(out[0], np.arange(3.0) * 2) and seen == [0.0]
    with pytest.raises(TypeError):  # an error of the function itself still reaches the caller
        tracecache.lower("bad", lambda x: x @ jnp.ones((5, 5)), (jnp.ones(3),))


def test_a_compile_from_the_store_builds_the_same_initial_model(store):
    from nlic.compiler import compile_spec

    spec = tiny_spec()
    logs: list[list[str]] = [[], []]
    models = [leaves_of(compile_spec(spec, log=logs[i].append).model) for i in range(2)]
    assert "from the trace store" not in " ".join(logs[0])
    assert "(init, train_step, search, executor from the trace store)" in " ".join(logs[1])
    assert all(np.array_equal(a, b) for a, b in zip(*models, strict=True))


def test_an_initialiser_template_that_does_not_match_its_trace_is_refused():
    from nlic.compiler.lower import _state_rebuilder

    template = (jax.ShapeDtypeStruct((3,), jnp.float32), jax.ShapeDtypeStruct((), jax.random.key(0).dtype))
    assert _state_rebuilder(template, [jax.ShapeDtypeStruct((3,), jnp.float32),
                                       jax.ShapeDtypeStruct((2,), jnp.uint32)]) is not None
    for outs in ([jax.ShapeDtypeStruct((3,), jnp.float32)],
                 [jax.ShapeDtypeStruct((4,), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.uint32)],
                 [jax.ShapeDtypeStruct((3,), jnp.float16), jax.ShapeDtypeStruct((2,), jnp.uint32)]):
        assert _state_rebuilder(template, outs) is None


def test_a_template_that_does_not_match_is_made_by_tracing_the_initialiser(store, monkeypatch):
    from nlic.compiler import compile_spec, lower

    spec = tiny_spec()
    want = leaves_of(compile_spec(spec).model)
    monkeypatch.setattr(lower, "_state_template", lambda *a: (jax.ShapeDtypeStruct((1,), jnp.float32),))
    got = leaves_of(compile_spec(spec).model)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
