"""The pattern (LPN Pattern) and string_rules (LPN string manipulation) families, and the shared codecs."""

import numpy as np
import pytest

from nlic.compiler.families import FAMILIES, GridCodec, SequenceCodec, codec_of, family_of, sample_split, shapes_of
from nlic.compiler.families.pattern import generate as generate_pattern
from nlic.compiler.families.string_rules import apply, generate as generate_rules, run_programs
from nlic.compiler.spec import Spec, TaskSpec
from nlic.grammar.errors import DataError, Loc


def _spec(family, pairs=3, **params):
    return Spec(task=TaskSpec(family=family, params=tuple(params.items()), pairs=pairs))


@pytest.mark.parametrize("family", ["pattern", "string_rules"])
def test_deterministic_per_seed_and_split(family):
    spec = _spec(family)
    for split in family_of(spec).splits({}):
        a, b = sample_split(spec, split, 32, seed=9), sample_split(spec, split, 32, seed=9)
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.query_outputs, b.query_outputs)
        assert not np.array_equal(a.inputs, sample_split(spec, split, 32, seed=10).inputs)
        assert a.inputs.dtype == np.int32 and a.pair_mask.all() and a.has_target.all()


def test_pattern_tasks():
    spec = _spec("pattern", pairs=4)
    s = shapes_of(spec)
    assert (s.length, s.values) == (100, 10)
    params = {}
    for split, density in (("train", 0.5), ("id", 0.5), ("ood_weak", 0.75), ("ood_strong", 1.0), ("ood", 1.0)):
        ts, pats = generate_pattern(params, split, 400, 4, seed=0)
        assert abs((pats > 0).mean() - density) < 0.03, split
        assert pats.min() >= 0 and pats.max() <= 9
        x = np.concatenate([ts.inputs, ts.query_inputs[:, None]], 1).reshape(400, 5, 10, 10)
        y = np.concatenate([ts.outputs, ts.query_outputs[:, None]], 1).reshape(400, 5, 10, 10)
        assert (x.sum((2, 3)) == 1).all() and set(np.unique(x)) == {0, 1}
        for i in (0, 17, 399):
            for j in range(5):
                r, c = np.argwhere(x[i, j] == 1)[0]
                assert r <= 6 and c <= 6
                expect = np.zeros((10, 10), int)
                expect[r:r + 4, c:c + 4] = pats[i]
                assert np.array_equal(y[i, j], expect)
    assert "\x1b[48;5;" in codec_of(spec).render(sample_split(spec, "ood", 1, seed=0).outputs[0, 0], color=True)


def test_pattern_params():
    fam = FAMILIES.get("pattern")
    diags = fam.check_params({"size": 12, "density": 1.5, "colour": 3}, {"density": Loc("p", 4, 2)}, Loc("p"))
    text = "\n".join(map(str, diags))
    assert "p:4:2: error: 'density' = 1.5 is out of range" in text and "unknown parameter 'colour'" in text
    assert "does not fit" in "\n".join(map(str, fam.check_params({"size": 12}, {}, Loc("p"))))


def test_string_rules_semantics():
    one = lambda v: np.array([v])  # noqa: E731
    x = np.array([[3, 1, 4, 4, 0]])
    # rule 1 (drop_right), k=2, m=1: 3-1>=2 -> 2; 4-0>=2 at i=3 -> 3; left to right, in place
    assert apply(x, one(1), one(2), one(1), one(2), one(0)).tolist() == [[2, 1, 4, 3, 0]]
    # rule 5 (neighbours) with sum: the in-place sweep sees the rewritten left neighbour (i=2: 2 + 4)
    assert apply(x, one(5), one(1), one(1), one(2), one(0)).tolist() == [[3, 2, 1, 1, 0]]
    # rule 2 (scale_equal), n=3: x[i-1] == x[i+1] -> min(3x, 4)
    assert apply(np.array([[1, 1, 1, 2]]), one(2), one(1), one(1), one(3), one(0)).tolist() == [[1, 3, 1, 2]]
    # kind 0 is no rule
    assert apply(x, one(0), one(1), one(1), one(2), one(0)).tolist() == x.tolist()


def test_string_rules_splits_are_disjoint():
    params = {}
    counts = {}
    for split in ("train", "id", "ood", "ood_compose"):
        ts, progs = generate_rules(params, split, 300, 3, seed=2)
        kind = progs["kind"]
        live = (kind > 0).sum(1)
        both = ((kind == 1).any(1) & (kind == 4).any(1))
        counts[split] = (live.min(), live.max(), both.mean())
        xs = np.concatenate([ts.inputs, ts.query_inputs[:, None]], 1)
        ys = np.concatenate([ts.outputs, ts.query_outputs[:, None]], 1)
        assert np.array_equal(run_programs(progs, xs), ys)
        assert not (xs == ys).all(axis=(1, 2)).any()  # no identity tasks
        assert xs.max() <= 4 and ys.max() <= 4 and xs.shape[-1] == 10
    assert counts["train"][:2] == (3, 5) and counts["train"][2] == 0 and counts["id"][2] == 0
    assert counts["ood"][:2] == (6, 8)
    assert counts["ood_compose"][2] == 1 and counts["ood_compose"][1] <= 5


def test_string_rules_params():
    fam = FAMILIES.get("string_rules")
    assert "must be longer" in str(fam.check_params({"ood_rules": "4..6"}, {}, Loc("s"))[0])
    assert "range" in str(fam.check_params({"rules": "three"}, {}, Loc("s"))[0])
    ts = sample_split(_spec("string_rules", length=6, rules="1..2", ood_rules="3..3"), "ood", 4, seed=0)
    assert ts.inputs.shape == (4, 3, 6)


def test_sequence_and_grid_codecs():
    s = SequenceCodec(length=5, values=4, pad=3)
    assert s.encode([0, 2]).tolist() == [0, 2, 3, 3, 3] and s.decode(s.encode([0, 2])) == [0, 2]
    with pytest.raises(DataError, match="outside the alphabet 0..2"):
        s.encode([3])
    with pytest.raises(DataError, match="exactly 5"):
        SequenceCodec(5, 3).encode([1, 2])
    g = GridCodec(2, 3, 10)
    assert g.decode(g.encode([[1, 2, 3], [4, 5, 6]])) == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(DataError, match="2x2 grid, the model reads exactly 2x3"):
        g.encode([[1, 2], [3, 4]])
    with pytest.raises(DataError, match="rows of different lengths"):
        g.encode([[1, 2, 3], [4]])
    assert g.render(g.encode([[1, 2, 3], [4, 5, 6]])) == "1 2 3\n4 5 6"
