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
