"""The contract every model kind implements, and the registry of kinds.

A model kind (nli, lpn, dlpn, in_context, ttt) is a `ModelKind` value: pure functions over an equinox module.
The runtime (training, solve, eval, compile) is written against this contract only, so a new kind is one
registered value. All functions are jittable; per-step scalars enter as arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from jaxtyping import Array, Bool, Float, Int

from nlic.grammar.errors import Loc
from nlic.grammar.registry import Registry

__all__ = [
    "Shapes", "Batch", "Solution", "ModelKind", "MODEL_KINDS", "AUTO_SEARCH", "kind_of", "default_search",
    "search_method_names", "KIND_FIELDS", "kind_reads",
]


@dataclasses.dataclass(frozen=True)
class Shapes:
    """Static data shapes a model is built for (hashable).

    Attributes:
        length: L, positions per datum (inputs and outputs are padded to the same length).
        values: V, size of the data alphabet (every position holds a value in [0, V)).
        pairs: m, specification pairs per task.
    """

    length: int
    values: int
    pairs: int


class Batch(NamedTuple):
    """Tasks as the models read them (jnp arrays). B tasks, m spec pairs, L positions."""

    inputs: Int[Array, "B m L"]
    outputs: Int[Array, "B m L"]
    pair_mask: Bool[Array, "B m"]
    query_input: Int[Array, "B L"]
    query_output: Int[Array, "B L"]


class Solution(NamedTuple):
    """What every search method returns for a batch of tasks.

    Attributes:
        programs: discrete program token ids, padded with the skip token to the maximum program length
            (all zeros for kinds without discrete programs).
        outputs: prediction for the query input made with the *discrete* program (or the kind's own prediction
            for kinds without discrete programs).
        spec_fit: fraction of the task's valid spec pairs the discrete program reproduces exactly.
        spec_loglik: mean log-likelihood of the spec outputs under the selected (soft) program.
        soft_outputs: prediction made with the soft program (equal to `outputs` where there is none).
    """

    programs: Int[Array, "B T"]
    outputs: Int[Array, "B L"]
    spec_fit: Float[Array, " B"]
    spec_loglik: Float[Array, " B"]
    soft_outputs: Int[Array, "B L"]


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """One model kind, as values (strategies), not a subclass.

    Attributes:
        name: registry name (`model.kind` in the spec).
        build: `build(spec, shapes, *, key) -> model` builds the equinox module.
        loss: `loss(model, batch, t, *, key) -> (scalar, metrics)`; `t` in [0, 1] is training progress as a
            float array (temperature schedules are evaluated from it inside jit).
        solve: `solve(model, batch, search_spec, *, key) -> Solution`; dispatches on `search_spec.method`. Kinds
            that enumerate (`search_methods` has `enumerate`) also take `tokens=`, the tokens to enumerate over.
        search_methods: names of the search methods this kind supports.
        execute: `execute(model, programs, inputs) -> outputs` runs discrete programs with hard tokens; None for
            kinds without discrete programs.
        discrete_programs: whether programs can be written as text.
        trace: `trace(model, programs, inputs) -> (values, probs)` runs discrete programs token by token and
            decodes the state after every token: int32 and float32 [B, T+1, L], row 0 the input (probability
            1), row k the likeliest value per position after token k and its probability, a skip token
            repeating the row before; row T equals `execute`'s output. None for kinds that cannot show their
            steps (`nlic run --trace` and the exported trace need it).
        default_search: the search method `search.method: auto` (the default) stands for in this kind.
        split: `split(model, batch, has_target) -> (model, Split | None)` gives the largest group of unsolved
            tasks sharing one program a token of its own (`training.split_until`); None for kinds without a
            codebook to split.
        reads: the spec fields among `KIND_FIELDS` that the kind's build, loss, search and training read (dotted
            names); None: every one of them. A spec that sets another to a value other than its default is
            refused, located, instead of training with the value ignored (`nlic.compiler.validate`).
            `tests/test_kind_fields.py` traces every kind with a spec that records what is read, so the list
            cannot leave out a field the kind reads.
    """

    name: str
    build: Callable[..., Any]
    loss: Callable[..., tuple[Float[Array, ""], dict[str, Array]]]
    solve: Callable[..., Solution]
    search_methods: tuple[str, ...]
    execute: Callable[..., Int[Array, "B L"]] | None = None
    discrete_programs: bool = False
    trace: Callable[..., tuple[Array, Array]] | None = None
    default_search: str = "none"
    split: Callable[..., tuple[Any, Any]] | None = None
    reads: frozenset[str] | None = None


MODEL_KINDS: Registry[ModelKind] = Registry("model kind")
"""Filled by `nlic.compiler.models` (imported by `nlic.compiler`), so a lookup never finds it empty."""


def kind_of(spec: Any) -> ModelKind:
    """The registered `ModelKind` of `spec.model.kind`.

    Raises:
        SpecError: no such kind (listing the registered ones).
    """
    return MODEL_KINDS.get(spec.model.kind, loc=Loc("model.kind"))


def search_method_names() -> list[str]:
    """Every search method some registered kind offers (each kind's own are `ModelKind.search_methods`), and
    `auto` (each kind's `default_search`)."""
    return sorted({AUTO_SEARCH} | {m for name in MODEL_KINDS for m in MODEL_KINDS.get(name).search_methods})


KIND_FIELDS = ("language.", "model.inductor.", "model.executor.", "model.latent.", "relaxation.", "search.",
               "training.split_until")
"""Spec fields (dotted names, or section prefixes ending in '.') that only some model kinds read: the scope of
`ModelKind.reads`. Every other field (task, training, eval) means the same for every kind."""


def kind_reads(kind: ModelKind, name: str) -> bool:
    """Whether model kind `kind` reads spec field `name` (dotted): every field outside `KIND_FIELDS` is read."""
    in_scope = any(name.startswith(p) if p.endswith(".") else name == p for p in KIND_FIELDS)
    return kind.reads is None or not in_scope or name in kind.reads


AUTO_SEARCH = "auto"
"""`search.method` value standing for the model kind's own default search (`ModelKind.default_search`)."""


def default_search(kind: str) -> str | None:
    """The search method `auto` stands for in model kind `kind`; None for a kind not registered."""
    return MODEL_KINDS.get(kind).default_search if kind in MODEL_KINDS else None
