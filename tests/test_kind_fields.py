"""Fields a model kind does not read: `ModelKind.reads` is checked against what each kind's build, loss and search
read (a spec that records every field read), and a spec that sets such a field is refused, located."""

import dataclasses
import importlib
import types

import jax
import jax.numpy as jnp
import pytest

from nlic.compiler import MODEL_KINDS, format_spec, parse_spec
from nlic.compiler.kinds import Batch, Shapes, kind_reads
from nlic.compiler.spec import (
    ExecutorSpec, InductorSpec, LanguageSpec, LatentSpec, ModelSpec, SearchSpec, Spec, TaskSpec, field_names,
)
from nlic.compiler.validate import ignored_fields
from nlic.grammar.errors import SpecError

FIELDS = frozenset(field_names())
L, V, M = 6, 4, 3


class Recorded:
    """A spec section that records the dotted name of every field read through it (sections read through it are
    recorded too, methods run on it, so `search.fitted()` records what it reads)."""

    def __init__(self, obj, prefix, seen):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_seen", seen)

    def __getattr__(self, name):
        value = getattr(type(self._obj), name, None)
        if isinstance(value, types.FunctionType):
            return types.MethodType(value, self)
        value = getattr(self._obj, name)
        full = self._prefix + name
        if full in FIELDS:
            self._seen.add(full)
        elif dataclasses.is_dataclass(value) and any(f.startswith(full + ".") for f in FIELDS):
            return Recorded(value, full + ".", self._seen)
        return value

    @property
    def __class__(self):  # passes the runtime type checks of the functions it is given to
        return type(self._obj)

    def __hash__(self):
        return hash(self._obj)

    def __eq__(self, other):
        return self._obj == (other._obj if isinstance(other, Recorded) else other)


@pytest.fixture
def recording(monkeypatch):
    """`dataclasses.replace` of a recorded section gives a recorded section."""
    replace = dataclasses.replace

    def recorded_replace(obj, **changes):
        if isinstance(obj, Recorded):
            return Recorded(replace(obj._obj, **changes), obj._prefix, obj._seen)
        return replace(obj, **changes)

    monkeypatch.setattr(dataclasses, "replace", recorded_replace)


def tiny(kind):
    small = dict(layers=1, width=8, heads=2, mlp_ratio=1)
    return Spec(
        task=TaskSpec(pairs=M), language=LanguageSpec(vocab=4, length=2, max_length=3),
        model=ModelSpec(kind=kind, inductor=InductorSpec(**small, head_hidden=8),
                        executor=ExecutorSpec(**small, anchors=True), latent=LatentSpec(dim=4, inner_steps=1)),
        search=SearchSpec(starts=2, steps=2, programs=8, depth=1),
    )


def batch():
    x = jax.random.randint(jax.random.key(0), (2, M + 1, L), 0, V)
    return Batch(x[:, :M], jnp.roll(x[:, :M], 1, axis=-1), jnp.ones((2, M), bool), x[:, M], jnp.roll(x[:, M], 1, -1))


@pytest.mark.parametrize("name", sorted(MODEL_KINDS.names()))
def test_a_kind_reads_no_field_its_reads_leave_out(name, recording):
    """Traced (shapes only), a kind's build, loss and every search method read only fields in `ModelKind.reads`;
    for the baselines, every field in it is read there too (the NLI's search fields are read by the runtime's
    stages, which this does not trace)."""
    kind, seen = MODEL_KINDS.get(name), set()
    if kind.reads is None:  # reads every field (a kind another test registered)
        pytest.skip(f"{name} declares no reads")
    spec = Recorded(tiny(name), "", seen)
    model = kind.build(spec, Shapes(length=L, values=V, pairs=M), key=jax.random.key(0))
    jax.eval_shape(lambda m, b: kind.loss(m, b, jnp.asarray(0.5), key=jax.random.key(1)), model, batch())
    for method in kind.search_methods:
        search = Recorded(dataclasses.replace(tiny(name).search, method=method), "search.", seen)
        extra = {"tokens": (1, 2, 3)} if "enumerate" in kind.search_methods else {}
        jax.eval_shape(lambda m, b: kind.solve(m, b, search, key=jax.random.key(2), **extra), model, batch())
    assert seen, "nothing recorded: the recording spec is not read through"
    assert not {n for n in seen if not kind_reads(kind, n)}, f"{name} reads fields its ModelKind.reads leaves out"
    if name != "nli":
        runtime = {"search.method", "search.batch"}  # read by `nlic solve` for every kind
        assert kind.reads - runtime <= seen, f"{name} declares fields it never reads: {sorted(kind.reads - seen)}"


LPN = """\
version: 1
name: x
model:
  kind: lpn
  inductor: {width: 32, relations: false}
relaxation:
  tau_inductor: exp(8 -> 0.5)
  reg_weight: 0
search: {method: gradient, depth: 2}
language: {max_length: 3}
"""


def test_fields_the_kind_does_not_read_are_refused_located_all_at_once():
    with pytest.raises(SpecError) as e:
        parse_spec(LPN, "lpn.yaml")
    out = e.value.render()
    # relations (default true) and tau_inductor and depth are set to other values; reg_weight 0 is the default
    for where, name, value in (("5:36", "model.inductor.relations", "false"),
                               ("7:17", "relaxation.tau_inductor", "exp(8 -> 0.5)"),
                               ("9:35", "search.depth", "2")):
        assert f"lpn.yaml:{where}: error: model kind 'lpn' does not read {name}: its value {value} would be " \
               "ignored" in out, out
    assert "model kinds that read it: dlpn, nli" in out  # relations and tau_inductor
    assert "reg_weight" not in out and out.count("error:") == 3
    # max_length 3 is below the default language.length (6), which LPN does not read: no error about it
    assert "max_length" not in out


def test_a_spec_the_kind_reads_all_of_passes_and_prints_to_text_that_passes():
    fixed = LPN.replace(", relations: false", "").replace("exp(8 -> 0.5)", "exp(4 -> 0.5)").replace(", depth: 2", "")
    spec = parse_spec(fixed, "lpn.yaml")
    assert ignored_fields(spec) == []
    for name in sorted(MODEL_KINDS.names()):  # every kind's canonical text (every field written) validates
        text = format_spec(dataclasses.replace(spec, model=dataclasses.replace(spec.model, kind=name),
                                               language=LanguageSpec(), search=SearchSpec()))
        assert parse_spec(text, f"{name}.yaml").model.kind == name  # raises on a field refused


def test_a_runs_locked_spec_with_such_fields_still_loads():
    """An earlier version accepted them: the spec a run locked is read as it was (they change nothing)."""
    spec = parse_spec(LPN, "spec.yaml", kind_fields=False)
    assert ignored_fields(spec) == ["model.inductor.relations", "relaxation.tau_inductor", "search.depth"]


def test_every_field_is_read_by_some_kind():
    unread = [n for n in FIELDS if not any(kind_reads(MODEL_KINDS.get(k), n) for k in MODEL_KINDS.names())]
    assert not unread


IN_CONTEXT = """\
version: 1
name: ic
task: {family: shift, params: {split: shift_l, length: 12, alphabet: 4}, pairs: 2}
language: {length: 2, max_length: 3}
model:
  kind: in_context
  inductor: {layers: 1, width: 16, heads: 2, mlp_ratio: 1}
  executor: {layers: 1, width: 16, heads: 2, mlp_ratio: 1}
training: {steps: 0, batch: 4, warmup: 0, eval_every: 0, checkpoint_every: 0}
eval: {tasks: 4, splits: [id]}
"""


def test_training_a_spec_built_in_python_refuses_fields_its_kind_does_not_read(tmp_path, monkeypatch):
    """The Python API refuses what validation refuses in a file, naming the field and the kind; a run an earlier
    version locked with such a field still resumes."""
    train_module = importlib.import_module("nlic.runtime.train")  # the module (the package exports its function)
    spec = parse_spec(IN_CONTEXT, "ic.yaml")
    bad = dataclasses.replace(spec, search=dataclasses.replace(spec.search, steps=7, lr=0.5))
    assert ignored_fields(bad) == ["search.steps", "search.lr"]
    for resume in (False, True):  # resume=True of a directory without a run starts one: refused alike
        with pytest.raises(SpecError) as e:
            train_module.train(bad, out=tmp_path / "run", resume=resume, progress=False)
        out = e.value.render()
        # (a kind another test registers may be listed too)
        assert "search.steps: error: model kind 'in_context' does not read search.steps: its value 7 would be " \
               "ignored (remove it; model kinds that read it: dlpn, lpn, nli" in out, out
        assert "search.lr: error: model kind 'in_context' does not read search.lr: its value 0.5" in out
        assert not (tmp_path / "run").exists()  # refused before the run directory is made
    assert train_module.train(spec, out=tmp_path / "ok", progress=False).step == 0

    monkeypatch.setattr(train_module, "check_kind_fields", lambda spec: None)  # an earlier nlic locks the run
    train_module.train(bad, out=tmp_path / "old", progress=False)
    monkeypatch.undo()
    assert "steps: 7" in (tmp_path / "old" / "spec.yaml").read_text()
    assert train_module.train(bad, out=tmp_path / "old", resume=True, progress=False).step == 0
    with pytest.raises(SpecError, match="does not read search.steps"):  # not resumed: a new run is refused
        train_module.train(bad, out=tmp_path / "old", force=True, progress=False)
