"""The DeepCoder DSL (interpreter, parser, sampler) and the `deepcoder` family on ExeDec's shipped test files."""

import dataclasses
import json
import random

import numpy as np
import pytest
from conftest import skip_without_exedec

from nlic.compiler.families import deepcoder_dsl as dsl
from nlic.compiler.families import FAMILIES, codec_of, sample_split, shapes_of
from nlic.compiler.families.deepcoder import DeepCoderCodec, INT, LIST, PAD, load_test_tasks
from nlic.compiler.seeds import derive_seed
from nlic.compiler.spec import IntRange, Spec, TaskSpec
from nlic.grammar.errors import DataError, Loc, SpecError


@pytest.fixture(scope="module")
def data_dir():
    return skip_without_exedec()


def _spec(pairs=2, **params):
    return Spec(task=TaskSpec(family="deepcoder", params=tuple(params.items()), pairs=pairs))


def test_reproduces_all_shipped_test_outputs(data_dir):
    count = 0
    for exp in dsl.EXPERIMENTS:
        lines = (data_dir / f"{exp}.jsonl").read_text().splitlines()
        assert len(lines) == 1000
        for line in lines:
            rec = json.loads(line)
            prog = dsl.parse_program(rec["program"])
            assert str(prog) == rec["program"]  # the printer round-trips ExeDec's text
            for text_in, text_out in zip(rec["inputs"], rec["outputs"]):
                names, values = dsl.parse_inputs(text_in)
                assert names == prog.inputs
                assert dsl.format_inputs(values, names) == text_in
                out = prog.run(values)
                assert out == dsl.parse_value(text_out), (rec["program"], text_in)
                assert dsl.format_value(out) == text_out
                count += 1
    assert count == 6 * 1000 * 3


def test_semantics_edge_cases():
    p = dsl.parse_program("x0 = INPUT | x1 = Map (/2) x0 | x2 = Scanl1 (-) x1")
    assert p.run([[-3, 5, 7]]) == [-2, -4, -7]  # floor division; scanl1 folds acc - x
    assert dsl.parse_program("x0 = INPUT | x1 = Filter (%2==1) x0").run([[-3, -2, 5]]) == [-3, 5]
    assert dsl.parse_program("x0 = INPUT | x1 = Head x0").run([[]]) is None
    assert dsl.parse_program("x0 = INPUT | x1 = INPUT | x2 = Access x1 x0").run([[1, 2], 2]) is None
    assert dsl.parse_program("x0 = INPUT | x1 = Map (**2) x0").run([[7, 8]]) is None  # 64 > 50 fails
    assert dsl.parse_program("x0 = INPUT | x1 = INPUT | x2 = Take x1 x0").run([[1, 2, 3], 2]) == [1, 2]
    assert dsl.parse_program("x0 = INPUT | x1 = INPUT | x2 = ZipWith (max) x0 x1").run([[1, 9], [4, 2, 7]]) == [4, 9]


@pytest.mark.parametrize("text,msg", [
    ("x0 = INPUT | x1 = Mapp (+1) x0", "unknown operation"),
    ("x0 = INPUT | x1 = Map (>0) x0", "needs a lambda"),
    ("x0 = INPUT | x1 = Map (+1) x3", "undefined variable"),
    ("x0 = INPUT | x1 = Reverse x0 | x2 = Take x1 x0", "expects int"),
    ("x0 = INPUT", "at least one statement"),
    ("x0 = INPUT | x1 = Sum x0 | x1 = Sum x0", "assigned twice"),
])
def test_parser_errors(text, msg):
    with pytest.raises(dsl.ParseError, match=msg):
        dsl.parse_program(text)


@pytest.mark.parametrize("sampler", dsl.SAMPLERS)
@pytest.mark.parametrize("exp", dsl.EXPERIMENTS)
def test_sampler_follows_the_split_rules(exp, sampler):
    rng = random.Random(0)
    for train in (True, False):
        for _ in range(40):
            prog, ins, outs = dsl.sample_program(rng, exp, train=train, num_examples=3, sampler=sampler)
            ops = [s.op for s in prog.statements]
            scans = [s.lam for s in prog.statements if s.op == "Scanl1"]
            assert [prog.run(x) for x in ins] == outs and len({str(o) for o in outs}) == 3
            assert all(dsl.valid_value(o) for o in outs)
            if exp == "NONE":
                assert 1 <= len(prog) <= 5
            elif exp == "LENGTH_GENERALIZATION":
                assert (len(prog) <= 4) if train else (len(prog) == 5)
            elif exp == "COMPOSE_DIFFERENT_CONCEPTS":
                mixed = any(o in dsl.FIRST_ORDER_AND_MAP for o in ops) and any(o in dsl.HIGHER_ORDER_NO_MAP for o in ops)
                assert 2 <= len(prog) <= 4 and mixed != train
            elif exp == "SWITCH_CONCEPT_ORDER":
                first, second = ((dsl.HIGHER_ORDER_NO_MAP, dsl.FIRST_ORDER_AND_MAP) if train
                                 else (dsl.FIRST_ORDER_AND_MAP, dsl.HIGHER_ORDER_NO_MAP))
                half = len(prog) // 2
                assert all(o in first for o in ops[:half]) and all(o in second for o in ops[half:])
            elif exp == "COMPOSE_NEW_OP":
                if train:
                    assert ops == ["Scanl1"] or "Scanl1" not in ops
                else:
                    assert "Scanl1" in ops and len(prog) >= 2
            elif exp == "ADD_OP_FUNCTIONALITY":
                if train:
                    assert set(scans) <= {"(-)", "(min)"}
                else:
                    assert set(scans) & {"(+)", "(*)", "(max)"}


@pytest.mark.parametrize("sampler", dsl.SAMPLERS)
def test_no_dead_code_and_deterministic(sampler):
    a = [str(dsl.sample_program(random.Random(3), "NONE", train=True, num_examples=3, sampler=sampler)[0])
         for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(1)
    for _ in range(50):
        prog = dsl.sample_program(rng, "NONE", train=True, num_examples=3, sampler=sampler)[0]
        toks = str(prog).split()
        assert all(toks.count(s.var) >= 2 for s in prog.statements[:-1])
    with pytest.raises(ValueError, match="unknown sampler"):
        dsl.sample_program(rng, "NONE", train=True, num_examples=3, sampler="uniform")


def test_deepcoder_chained_means_each_statement_reads_the_one_before():
    assert dsl.parse_program("x0 = INPUT | x1 = INPUT | x2 = Sort x0 | x3 = Take x1 x2").chained()
    assert dsl.parse_program("x0 = INPUT | x1 = Sort x0 | x2 = ZipWith (+) x1 x1").chained()
    assert not dsl.parse_program("x0 = INPUT | x1 = Sort x0 | x2 = Reverse x0 | x3 = ZipWith (+) x1 x2").chained()


def _shape(programs):
    """(share ending in an int, share whose statements each read the one before, share of Map/ZipWith/Scanl1)."""
    ops = [s.op for p in programs for s in p.statements]
    return (sum(dsl.OPERATIONS[p.statements[-1].op].out is int for p in programs) / len(programs),
            sum(p.chained() for p in programs) / len(programs),
            sum(o in ("Map", "ZipWith", "Scanl1") for o in ops) / len(ops))


def test_exedec_sampler_draws_programs_shaped_like_the_shipped_tests(data_dir):
    # NONE's test file is ExeDec's training distribution. Its programs: 8% end in an int, 67% chain every
    # statement onto the one before (the rest reuse an earlier variable: "diamonds"), 79% of their statements are
    # Map, ZipWith or Scanl1. The forward sampler gave 37%, 94% and 33%: a model trained on it met other programs.
    shipped = _shape([p for _, p, _, _ in load_test_tasks(str(data_dir), "NONE")])
    rng = random.Random(0)
    drawn = _shape([dsl.sample_program(rng, "NONE", train=True, num_examples=3)[0] for _ in range(300)])
    assert abs(drawn[0] - shipped[0]) < 0.08 and abs(drawn[1] - shipped[1]) < 0.1 and abs(drawn[2] - shipped[2]) < 0.15
    rng = random.Random(0)
    old = _shape([dsl.sample_program(rng, "NONE", train=True, num_examples=3, sampler="forward")[0]
                  for _ in range(300)])
    assert old[0] > 0.25 and old[1] > 0.85


def test_codec_round_trip():
    c = DeepCoderCodec()
    t = c.encode({"x0": [1, -50, 50], "x1": 3})
    assert t.tolist() == [LIST, 51, 0, 100, PAD, PAD, INT, 53, PAD, PAD, PAD, PAD]
    assert c.decode(t) == {"x0": [1, -50, 50], "x1": 3}
    assert c.decode(c.encode([])) == [] and c.decode(c.encode(-7)) == -7
    assert np.array_equal(c.encode("x0 = [ 1 -50 50 ] | x1 = 3"), t)
    assert c.render(t) == "x0 = [ 1 -50 50 ] | x1 = 3"
    for bad, msg in (([1] * 6, "at most 5"), ([51], "outside"), ({"y": 1}, "input names"), ([1.5], "int")):
        with pytest.raises(DataError, match=msg):
            c.encode(bad)


def test_family_splits(data_dir):
    spec = _spec(split="length_generalization", pool=32)
    assert (shapes_of(spec).length, shapes_of(spec).values) == (12, 104)
    codec = codec_of(spec)
    ood = sample_split(spec, "ood", 20, seed=0)
    tasks = load_test_tasks(str(data_dir), "LENGTH_GENERALIZATION")
    assert ood.ids[:2] == ("LENGTH_GENERALIZATION-0", "LENGTH_GENERALIZATION-1")
    assert ood.pair_mask.all() and len(ood) == 20
    for i in range(20):  # loo: examples 1, 2 are the spec, example 3 the query
        _, prog, ins, outs = tasks[i]
        assert codec.decode(ood.query_outputs[i]) == outs[2]
        assert codec.decode(ood.outputs[i, 1]) == outs[1]
        assert len(prog) == 5
    tr1, tr2 = sample_split(spec, "train", 16, seed=7), sample_split(spec, "train", 16, seed=7)
    assert np.array_equal(tr1.inputs, tr2.inputs)
    assert not np.array_equal(tr1.inputs, sample_split(spec, "train", 16, seed=8).inputs)
    idd = sample_split(spec, "id", 8, seed=1)
    assert np.array_equal(idd.query_outputs, sample_split(spec, "id", 8, seed=1).query_outputs)
    fresh = sample_split(_spec(pairs=3, split="NONE"), "ood", 10, seed=0)  # query: auto -> fresh
    nn = load_test_tasks(str(data_dir), "NONE")
    for i in range(10):
        _, prog, ins, outs = nn[i]
        assert [codec.decode(fresh.outputs[i, j]) for j in range(3)] == list(outs)
        q = codec.decode(fresh.query_inputs[i])
        q = list(q.values()) if isinstance(q, dict) else [q]
        assert prog.run(q) == codec.decode(fresh.query_outputs[i])


def test_missing_data_dir_is_a_data_error(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="no NONE.jsonl"):
        sample_split(_spec(data_dir=str(tmp_path)), "ood", 2, seed=0)
    monkeypatch.setenv("NLIC_EXEDEC_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere"):
        sample_split(_spec(), "ood", 2, seed=0)
    with pytest.raises(SpecError, match="pairs: 3"):
        sample_split(_spec(pairs=3, query="loo"), "ood", 2, seed=0)


def test_params_are_checked():
    fam = FAMILIES.get("deepcoder")
    diags = fam.check_params({"split": "COMPOSE_NEW_OPS", "qeury": "loo", "pool": -1},
                             {"split": Loc("s", 3, 5)}, Loc("s", 1, 1))
    text = "\n".join(map(str, diags))
    assert "s:3:5: error: 'split' has unknown value" in text and "COMPOSE_NEW_OP" in text
    assert "did you mean 'query'" in text and "'pool' = -1 is out of range" in text
    assert fam.check_params({"split": "none", "query": "fresh"}, {}, Loc("s")) == []


def test_lengths_keeps_training_programs_to_a_range():
    rng = random.Random(0)
    for _ in range(30):
        prog = dsl.sample_program(rng, "NONE", train=True, num_examples=3, lengths=(1, 2))[0]
        assert 1 <= len(prog) <= 2
    # COMPOSE_NEW_OP trains on Scanl1 alone at length 1: the other rule (lengths 2-4) drops out.
    for _ in range(10):
        prog = dsl.sample_program(rng, "COMPOSE_NEW_OP", train=True, num_examples=3, lengths=(1, 1))[0]
        assert [s.op for s in prog.statements] == ["Scanl1"]
    with pytest.raises(ValueError, match="lengths 1, 2, 3, 4"):
        dsl.sample_program(rng, "LENGTH_GENERALIZATION", train=True, num_examples=3, lengths=(5, 5))
    # Unset, the draws are those of before the parameter (same rng stream).
    a = dsl.sample_program(random.Random(5), "NONE", train=True, num_examples=3)[0]
    b = dsl.sample_program(random.Random(5), "NONE", train=True, num_examples=3, lengths=(1, 5))[0]
    assert str(a) == str(b)
    spec = _spec(pairs=3, split="NONE", pool=16, lengths="1..1")
    codec = codec_of(spec)
    for split in ("train", "id"):
        ts = sample_split(spec, split, 8, seed=0)
        assert len(ts) == 8 and all(codec.decode(y) is not None for y in ts.query_outputs)


def test_lengths_outside_the_split_are_a_located_error():
    fam = FAMILIES.get("deepcoder")
    diags = fam.check_params({"split": "LENGTH_GENERALIZATION", "lengths": "5..5"}, {"lengths": Loc("s", 4, 9)},
                             Loc("s", 1, 1))
    text = "\n".join(map(str, diags))
    assert "s:4:9: error: LENGTH_GENERALIZATION trains on programs of lengths 1, 2, 3, 4, none in 5..5" in text
    assert "choose lengths within 1..4" in text
    assert "out of bounds" in "\n".join(map(str, fam.check_params({"lengths": "0..2"}, {}, Loc("s"))))
    assert fam.check_params({"split": "NONE", "lengths": [1, 2]}, {}, Loc("s")) == []


def test_curriculum_grows_the_program_lengths_in_stages():
    fam = FAMILIES.get("deepcoder")
    stages = [fam.curriculum({"split": "NONE"}, s).get("lengths") for s in (0.0, 0.19, 0.2, 0.5, 0.99)]
    assert [(r.lo, r.hi) for r in stages[:-1]] == [(1, 1), (1, 1), (1, 2), (1, 3)]
    assert "lengths" not in fam.curriculum({"split": "NONE"}, 0.99)  # the last stage: the split's own tasks
    cut = fam.curriculum({"split": "NONE", "lengths": "2..3", "pool": 8}, 0.0)
    assert (cut["lengths"].lo, cut["lengths"].hi, cut["pool"]) == (2, 2, 8)
    assert fam.check_params(cut, {}, Loc("s")) == []  # what a stage yields is a valid params mapping


def test_curriculum_feeds_the_first_steps_easier_tasks():
    from nlic.compiler.families import curriculum_spec
    from nlic.compiler.spec import TrainingSpec
    from nlic.runtime.train import curriculum_stage, step_inputs

    spec = dataclasses.replace(_spec(pairs=3, split="NONE", pool=16), training=TrainingSpec(steps=11, batch=4,
                                                                                              curriculum=0.5))
    assert dict(curriculum_spec(spec, 0.05).task.params)["lengths"] == IntRange(1, 1)
    early = curriculum_spec(spec, 0.1)  # stage 0.2 of 5 lengths: the second
    assert dict(early.task.params)["lengths"] == IntRange(1, 2) and dict(spec.task.params).get("lengths") is None
    assert curriculum_spec(spec, 0.5) is spec and curriculum_spec(spec, 0.9) is spec
    off = dataclasses.replace(spec, training=TrainingSpec(steps=11, batch=4))
    assert curriculum_spec(off, 0.0) is off
    for step, same_as in ((1, early), (8, spec)):
        tasks, _ = step_inputs(spec, 3, step)
        want = sample_split(same_as, "train", 4, seed=derive_seed(3, "train", step))
        assert np.array_equal(tasks.outputs, want.outputs)
    assert not np.array_equal(step_inputs(spec, 3, 1)[0].outputs, step_inputs(off, 3, 1)[0].outputs)
    # What `nlic train` announces as the stages change.
    assert [curriculum_stage(spec, s) for s in (0, 1, 2, 5, 10)] == [
        "lengths: 1..1", "lengths: 1..2", "lengths: 1..3", "", ""]
    assert curriculum_stage(off, 0) == ""
