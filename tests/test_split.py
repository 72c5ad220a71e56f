"""Token splitting (`training.split_until`, `nlic.compiler.models.nli.split`): which token splits, into what, that it
is deterministic, and that a killed run resumes through a split to the same weights."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from conftest import interrupt_training
from nlic.compiler import parse_spec
from nlic.compiler.families import sample_split, shapes_of
from nlic.compiler.models.nli import build, split_merged_token
from nlic.compiler.seeds import derive_seed
from nlic.runtime import train

SPEC = """\
version: 1
name: split
seed: 2
task: {family: shift, params: {split: comp_i, length: 8, alphabet: 5}, pairs: 3}
language: {vocab: 8, length: SLOTS, max_length: 5}
model:
  inductor: {layers: 1, width: 16, heads: 2, head_hidden: 16, head_init: random}   # zero: a fresh model writes skip only
  executor: {width: 16, heads: 2}
training: {steps: STEPS, batch: 8, warmup: 2, log_every: 2, eval_every: 2, checkpoint_every: 2, restarts: 0,
           split_until: 1.0}
search: {method: none}
eval: {tasks: 12, splits: [id]}
"""


def spec_of(steps=6, slots=3):
    return parse_spec(SPEC.replace("STEPS", str(steps)).replace("SLOTS", str(slots)), "split.yaml")


def programs(model, batch):
    pooled = jax.vmap(model.pooled_slots)(batch.inputs, batch.outputs, batch.pair_mask)
    return np.asarray(jnp.argmax(jax.vmap(model.token_logits)(pooled), axis=-1))


def fresh(slots=1):
    # One slot: every task of a fresh model writes the same token there, so the whole sample is one group.
    spec = spec_of(slots=slots)
    model = build(spec, shapes_of(spec), key=jax.random.key(0))
    tasks = sample_split(spec, "train", 24, seed=1)
    return model, tasks


def switched_on(model):
    """`model` with the interpreter's conditioning paths (zero at init: a fresh token's code changes nothing) drawn
    at random, so that each token's code changes what it computes."""
    leaves, tree = jax.tree_util.tree_flatten(model.executor)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    leaves = [0.3 * jax.random.normal(k, a.shape, a.dtype)
              if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating) and not jnp.any(a) else a
              for k, a in zip(keys, leaves, strict=True)]
    return eqx.tree_at(lambda m: m.executor, model, jax.tree_util.tree_unflatten(tree, leaves))


def test_a_fresh_model_splits_its_one_program_along_the_group():
    model, tasks = fresh()
    b = tasks.batch()
    before = programs(model, b)
    new_model, info = split_merged_token(model, b, tasks.has_target)
    assert info is not None and info.tasks >= 3 and info.old in info.program and info.new != model.cfg.skip_token
    assert info.new not in before  # an unused token takes the split
    ex0, ex1 = model.executor.code_embed, new_model.executor.code_embed
    np.testing.assert_array_equal(np.delete(np.asarray(ex1), info.new, 0), np.delete(np.asarray(ex0), info.new, 0))
    after = programs(new_model, b)
    moved = (after == info.new).any(-1)
    assert moved.sum() == info.writes <= info.moved < info.tasks  # the group is divided, not moved whole
    assert 0 < info.moved
    assert set(after.ravel()) <= set(before.ravel()) | {info.new}


def test_the_new_code_is_fitted_to_the_tasks_that_move_to_it():
    model, tasks = fresh()
    model = switched_on(model)
    b = tasks.batch()
    new_model, info = split_merged_token(model, b, tasks.has_target)
    assert info is not None and 0 < info.moved <= info.tasks
    assert info.after < info.before  # the moving tasks are reconstructed better by their own code
    ex0, ex1 = np.asarray(model.executor.code_embed), np.asarray(new_model.executor.code_embed)
    assert not np.allclose(ex1[info.new], ex0[info.old])
    np.testing.assert_array_equal(np.delete(ex1, info.new, 0), np.delete(ex0, info.new, 0))  # no other code moves
    assert f"{info.moved} move to the new token" in info.summary()


def test_the_new_token_takes_no_slot_the_old_one_did_not_hold():
    # Three slots of a fresh model look alike to the slot MLP: no direction separates the group's slot from the
    # others, so the new token wins nowhere rather than in a slot the old token never held.
    model, tasks = fresh(slots=3)
    b = tasks.batch()
    before = programs(model, b)
    new_model, info = split_merged_token(model, b, tasks.has_target)
    assert info is not None
    after = programs(new_model, b)
    assert not ((after == info.new) & (before != info.old)).any()
    assert info.summary().startswith(f"t{info.old} -> t{info.new} (")


def test_split_is_deterministic_and_refuses_small_groups_and_full_codebooks():
    model, tasks = fresh()
    b = tasks.batch()
    m1, i1 = split_merged_token(model, b, tasks.has_target)
    m2, i2 = split_merged_token(model, b, tasks.has_target)
    assert i1 == i2
    for x, y in zip(jax.tree_util.tree_leaves(m1), jax.tree_util.tree_leaves(m2), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    same, none = split_merged_token(model, b, tasks.has_target, min_group=10_000)
    assert none is None and same is model
    # No task with a target: nothing is known to be unsolved.
    assert split_merged_token(model, b, np.zeros(len(tasks), bool))[1] is None


def test_training_records_its_splits_and_resumes_through_them_bit_identically(tmp_path, monkeypatch):
    spec = spec_of(steps=6)
    full = train(spec, out=tmp_path / "full", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    splits = [r for r in rows if "token_split" in r]
    assert splits and all(r["step"] in (2, 4) for r in splits)  # evaluation points, never the last step
    # Killed while drawing the 4th step's batch (after the split at step 2; Ctrl-C saves step 3): the resumed run
    # makes step 4's split itself and ends with the same weights.
    interrupt_training(monkeypatch, spec, tmp_path / "cut", derive_seed(spec.seed, "train", 3))
    res = train(spec, out=tmp_path / "cut", resume=True, progress=False)
    assert res.fingerprint == full.fingerprint


def test_codes_are_fitted_on_the_group_alone_as_on_the_whole_sample_with_the_others_weighted_zero():
    # The split fits its codes on the group's tasks gathered into a padded batch (fast: the sample's other tasks
    # weigh nothing); that must fit the same code as the whole sample with zero weights elsewhere, and the padding
    # must weigh nothing either.
    from nlic.compiler.models.nli import split as S

    model, tasks = fresh(slots=2)
    model = switched_on(model)
    batch = tasks.batch()
    progs = programs(model, batch)
    members = np.array([1, 4, 5, 9, 17])  # 5 tasks: padded to 8
    sub, sub_progs, n = S._gather(batch, progs, members)
    assert n == 5 and sub.inputs.shape[0] == S._bucket(5, len(progs)) == 8
    # Powers of two, at least 8, never beyond the sample (a group of 65-100 of 100 tasks is not padded to 128).
    assert [S._bucket(k, 100) for k in (1, 8, 9, 16, 17, 64, 65, 100)] == [8, 8, 16, 16, 32, 64, 100, 100]
    assert [S._bucket(k, 6) for k in (1, 5, 6)] == [6, 6, 6]
    old = jnp.asarray(int(progs[members[0], 0]), jnp.int32)
    code = model.executor.code_embed[int(old)]
    whole = S._fit_code(model, batch, jnp.asarray(progs), old, code, jnp.asarray(S._weight(len(progs), members)))
    alone = S._fit_code(model, sub, sub_progs, old, code, jnp.asarray(S._weight(8, np.arange(5))))
    assert not np.allclose(np.asarray(whole), np.asarray(code))  # the fit moved the code
    np.testing.assert_allclose(np.asarray(alone), np.asarray(whole), rtol=1e-4, atol=1e-5)
    loss_whole, grad_whole = S._with_code(model, batch, jnp.asarray(progs), old, code)
    loss_sub, grad_sub = S._with_code(model, sub, sub_progs, old, code)
    np.testing.assert_allclose(np.asarray(loss_sub)[:n], np.asarray(loss_whole)[members], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(grad_sub)[:n], np.asarray(grad_whole)[members], rtol=1e-4, atol=1e-6)


def test_where_the_row_alone_cannot_separate_the_sides_the_inductor_is_taught_the_split():
    # The slots of a fresh model look much alike to the slot MLP, so the fitted row alone leaves moving tasks on the
    # old token (the guard keeps the new one below it there). Taught, the whole inductor makes more of them write the
    # new token at once, only in the slot that held the old one, and every other task keeps its program.
    model, tasks = fresh(slots=3)
    model = switched_on(model)
    b = tasks.batch()
    before = programs(model, b)
    untaught, i0 = split_merged_token(model, b, tasks.has_target, teach=False)
    assert i0 is not None and i0.writes < i0.moved and not i0.taught
    taught, info = split_merged_token(model, b, tasks.has_target)
    assert info.taught and "the inductor taught the split" in info.summary()
    assert (info.old, info.new, info.moved) == (i0.old, i0.new, i0.moved)
    after = programs(taught, b)
    writes = (after == info.new).any(-1)
    assert writes.sum() == info.writes and i0.writes < info.writes <= info.moved
    assert not ((after == info.new) & (before != info.old)).any()  # only where the old token was
    np.testing.assert_array_equal(np.where(after == info.new, info.old, after)[~writes], before[~writes])
    # The interpreter is not what teaching changes: the codes are those of the untaught split.
    np.testing.assert_array_equal(np.asarray(taught.executor.code_embed), np.asarray(untaught.executor.code_embed))
