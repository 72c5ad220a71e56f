"""The shift family and the spec-level task helpers (family_of, shapes_of, sample_split)."""

import dataclasses

import numpy as np
import pytest

from nlic.compiler.families import FAMILIES, family_of, sample_split, shapes_of
from nlic.compiler.families.shift import PRIMITIVES, generate
from nlic.compiler.spec import IntRange, Spec, TaskSpec
from nlic.grammar.errors import Loc, SpecError


def _spec(**params):
    return Spec(task=TaskSpec(family="shift", params=tuple(params.items()), pairs=3))


def _shift_of(x, y):
    """Every k with y == x cyclically shifted right by k."""
    return {k for k in range(len(x)) if np.array_equal(np.roll(x, k), y)}


def test_shapes_and_family():
    spec = _spec(length=12, alphabet=7)
    assert family_of(spec) is FAMILIES.get("shift")
    s = shapes_of(spec)
    assert (s.length, s.values, s.pairs) == (12, 7, 3)
    wider = dataclasses.replace(spec, language=dataclasses.replace(spec.language, values=16))
    assert shapes_of(wider).values == 16


def test_language_values_too_small_is_a_spec_error():
    spec = _spec()
    spec = dataclasses.replace(spec, language=dataclasses.replace(spec.language, values=5))
    with pytest.raises(SpecError, match="smaller than the task's alphabet"):
        shapes_of(spec)


@pytest.mark.parametrize("split", ["train", "id", "ood"])
def test_deterministic_per_seed(split):
    spec = _spec(split="comp_i")
    a, b, c = (sample_split(spec, split, 16, seed=s) for s in (5, 5, 6))
    for f in ("inputs", "outputs", "query_inputs", "query_outputs"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.inputs, c.inputs)
    assert a.inputs.dtype == np.int32 and a.inputs.shape == (16, 3, 20) and a.pair_mask.all()


def test_train_and_id_streams_differ():
    spec = _spec()
    assert not np.array_equal(sample_split(spec, "train", 8, seed=0).inputs, sample_split(spec, "id", 8, seed=0).inputs)


@pytest.mark.parametrize(
    "suite,train,ood", [("shift_l", range(1, 6), range(6, 11)), ("shift_p", range(6, 11), range(1, 6))]
)
def test_shift_splits_are_disjoint(suite, train, ood):
    spec = _spec(split=suite)
    for split, allowed in (("train", train), ("id", train), ("ood", ood)):
        ts = sample_split(spec, split, 200, seed=1)
        seen = set()
        for i in range(len(ts)):
            ks = set.intersection(*(
                _shift_of(ts.inputs[i, j], ts.outputs[i, j]) for j in range(3)
            ), _shift_of(ts.query_inputs[i], ts.query_outputs[i]))
            assert ks & set(allowed), (split, ks)
            seen |= ks & set(allowed)
        assert seen == set(allowed)  # every amount occurs in 200 tasks


def test_shift_range_overrides_and_errors():
    spec = _spec(train_shifts="2..3", ood_shifts=IntRange(7, 7))
    ts = sample_split(spec, "ood", 10, seed=0)
    assert all(7 in _shift_of(ts.inputs[i, 0], ts.outputs[i, 0]) for i in range(10))
    fam = FAMILIES.get("shift")
    locs = {"ood_shifts": Loc("s.yaml", 4, 3), "lenght": Loc("s.yaml", 5, 3), "alphabet": Loc("s.yaml", 6, 3)}
    diags = fam.check_params({"lenght": 20, "alphabet": "ten", "ood_shifts": "1..5"}, locs, Loc("s.yaml", 2, 1))
    msgs = [str(d) for d in diags]
    assert any("s.yaml:5:3" in m and "did you mean 'length'" in m for m in msgs)
    assert any("s.yaml:6:3" in m and "must be an integer" in m for m in msgs)
    assert any("s.yaml:4:3" in m and "overlap" in m for m in msgs)  # reported together with the key errors
    diags = fam.check_params({"ood_shifts": "1..5"}, locs, Loc("s.yaml", 2, 1))
    assert len(diags) == 1 and "overlap" in diags[0].message and diags[0].loc == Loc("s.yaml", 4, 3)
    assert fam.check_params({"split": "comp_j"}, {}, Loc("s.yaml"))[0].hint == "did you mean 'comp_i'?"


def test_comp_i_programs():
    params = {"split": "comp_i", "length": 20, "alphabet": 10}
    ts, progs = generate(params, "ood", 300, 3, seed=0)
    assert len(PRIMITIVES) >= 6
    assert all(len(p) == 2 and p[0] != p[1] for p in progs)
    assert len(set(progs)) == 30
    for i in (0, 7, 42):
        f, g = progs[i]
        x = ts.inputs[i, 0]
        assert np.array_equal(PRIMITIVES[f][1](PRIMITIVES[g][1](x, 10), 10), ts.outputs[i, 0])
    _, train_progs = generate(params, "train", 100, 3, seed=0)
    assert all(len(p) == 1 for p in train_progs)
    # No ood composition behaves like a single primitive on these inputs (the split really is new).
    ts1, _ = generate(params, "ood", 60, 3, seed=2)
    for i in range(60):
        xs = np.concatenate([ts1.inputs[i], ts1.query_inputs[i][None]])
        ys = np.concatenate([ts1.outputs[i], ts1.query_outputs[i][None]])
        assert not any(np.array_equal(f(xs, 10), ys) for _, f in PRIMITIVES)


def test_unknown_split_and_family():
    with pytest.raises(SpecError, match="no split 'odd'") as e:
        sample_split(_spec(), "odd", 4, seed=0)
    assert "ood" in e.value.diagnostics[0].hint
    with pytest.raises(SpecError, match="unknown task family"):
        family_of(Spec(task=TaskSpec(family="shfit")))


def test_fast_enough_for_training():
    import time

    spec = _spec(split="comp_i")
    t = time.perf_counter()
    for s in range(20):
        sample_split(spec, "train", 64, seed=s)
    assert (time.perf_counter() - t) / 20 < 0.05
