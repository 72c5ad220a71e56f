"""Every spec in `specs/` through one smoke path at tiny sizes: validate, build, lower the training step and the
search (trace to StableHLO); and, for a representative set (every spec with NLIC_FULL_SMOKE=1), XLA-compile,
train, solve, print the programs, re-parse them and replay them. Kind, family, language and search method are
kept; only sizes shrink. The full path costs about a minute per spec on the 2-core CI machine, lowering seconds.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_without_exedec

from nlic.compiler import load_spec
from nlic.compiler.families import sample_split, shapes_of
from nlic.compiler.identity import fingerprint
from nlic.compiler.kinds import MODEL_KINDS, kind_of
from nlic.compiler.lower import compile_spec
from nlic.compiler.validate import ignored_fields, replace_at, value_at
from nlic.grammar.program import format_programs, parse_programs
from nlic.runtime.replay import Language, execute_programs, program_file
from nlic.runtime.run_dir import load_run
from nlic.runtime.solve import solve
from nlic.runtime.train import train

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").rglob("*") if p.suffix in (".yaml", ".nls"))
# One NLI spec per family whose data pipeline differs, and the one baseline with discrete programs.
FULL = {"shift_l.yaml", "pattern.yaml", "baselines/shift_l_dlpn.yaml"}


def _name(p: Path) -> str:
    return str(p.relative_to(ROOT / "specs"))


def shrink(spec):
    """The same spec with tiny sizes and budgets (seconds to compile and run on a CPU); the fields its kind does not
    read keep their values (training refuses them changed, as validation does)."""
    m = spec.model
    tiny = dict(layers=1, width=16, heads=2, mlp_ratio=1)
    small = dataclasses.replace(
        spec,
        model=dataclasses.replace(
            m,
            inductor=dataclasses.replace(m.inductor, head_hidden=16, **tiny),
            executor=dataclasses.replace(m.executor, **tiny),
            latent=dataclasses.replace(m.latent, dim=8),
        ),
        training=dataclasses.replace(spec.training, steps=2, batch=4, log_every=1, eval_every=0, checkpoint_every=0),
        search=dataclasses.replace(spec.search, starts=2, steps=2, batch=4, depth=min(spec.search.depth, 1)),
        eval=dataclasses.replace(spec.eval, tasks=4),
    )
    for name in ignored_fields(small):
        small = replace_at(small, name, value_at(spec, name))
    return small


def test_specs_are_found():
    names = {p.name for p in SPECS}
    assert {"shift_l.yaml", "shift_p.yaml", "comp_i.yaml", "deepcoder.yaml", "pattern.yaml"} <= names
    assert any(p.parent.name == "baselines" for p in SPECS)


@pytest.mark.parametrize("path", SPECS, ids=_name)
def test_spec_lowers(path):
    """Build the model and trace the training loss and the spec's search at the spec's (shrunk) shapes."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    spec = shrink(load_spec(path))
    if spec.task.family == "deepcoder":
        skip_without_exedec()
    kind = kind_of(spec)
    model = kind.build(spec, shapes_of(spec), key=jax.random.key(0))
    batch = sample_split(spec, spec.task.train_split, spec.training.batch, seed=0).batch()
    loss = jax.jit(lambda m, b, t, k: kind.loss(m, b, t, key=k)[0])
    loss.lower(model, batch, jnp.float32(0.5), jax.random.key(1))
    split = [s for s in spec.eval.splits if s != spec.task.train_split][-1]
    query = sample_split(spec, split, spec.search.batch, seed=1).batch()
    search = eqx.filter_jit(lambda m, b, k: kind.solve(m, b, spec.search, key=k))
    search.lower(model, query, jax.random.key(2))


@pytest.mark.parametrize(
    "path", [p for p in SPECS if os.environ.get("NLIC_FULL_SMOKE") or _name(p) in FULL], ids=_name
)
def test_spec_smoke_path(path, tmp_path):
    spec = shrink(load_spec(path))
    kind = MODEL_KINDS.get(spec.model.kind)

    summary = compile_spec(spec).summary
    assert summary["parameters"]["total"] > 0
    assert summary["functions"]["train_step"]["flops"] > 0

    run = train(spec, out=tmp_path / "run", progress=False)
    assert run.step == 2 and np.isfinite(run.metrics["loss"])
    spec2, model = load_run(tmp_path / "run")
    assert spec2 == spec

    split = [s for s in spec.eval.splits if s != spec.task.train_split][-1]
    tasks = sample_split(spec, split, 3, seed=1)
    result = solve(spec, model, tasks, seed=0)
    assert result.programs.shape == (3, spec.language.max_length)
    assert result.outputs.shape == tasks.query_outputs.shape

    if not kind.discrete_programs:
        return
    lang = Language.of(spec, fingerprint(spec, model))
    text = format_programs(program_file(lang, result.ids, result.programs))
    parsed = parse_programs(text, "smoke.nlp")
    assert format_programs(parsed) == text
    replayed = execute_programs(spec, model, parsed.array(list(result.ids), spec.language.max_length),
                                tasks.query_inputs)
    np.testing.assert_array_equal(replayed, result.outputs)
