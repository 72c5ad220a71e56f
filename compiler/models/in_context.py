"""The in-context baseline: per-pair encodings concatenated as the decoder's context, predicting y* directly.

Also the shared parts of every baseline kind (pair encoder, conditioned decoder, leave-one-out helpers), which
`ttt`, `lpn` and `dlpn` reuse so that all baselines run on the same backbone at the same sizes as NLI.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from nlic.compiler.kinds import Batch, ModelKind, Shapes, Solution
from nlic.compiler.models.layers import Transformer, sinusoidal_positions
from nlic.compiler.spec import SearchSpec, Spec, field_names
from nlic.grammar.errors import Loc, SpecError, did_you_mean

__all__ = [
    "PairEncoder",
    "Decoder",
    "InContext",
    "IN_CONTEXT",
    "with_query_pair",
    "with_query_slot",
    "held_out_masks",
    "sequence_nll",
    "check_method",
    "build_in_context",
    "in_context_loss",
    "in_context_solve",
    "in_context_logits",
    "solution_from_logits",
    "masked_mean",
    "loo_task_loss",
]


class PairEncoder(eqx.Module):
    """Encodes one (x, y) pair into `queries` embeddings: learned query tokens prepended to the embedded pair.

    Attributes:
        values: data alphabet size V.
    """

    embed: eqx.nn.Embedding
    segment: Float[Array, "2 D"]
    query: Float[Array, "Q D"]
    body: Transformer
    values: int = eqx.field(static=True)

    def __init__(self, spec: Spec, values: int, queries: int, *, key: PRNGKeyArray):
        ind = spec.model.inductor
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.values = values
        self.embed = eqx.nn.Embedding(values, ind.width, key=k1)
        self.segment = 0.02 * jax.random.normal(k2, (2, ind.width))
        self.query = 0.02 * jax.random.normal(k3, (queries, ind.width))
        self.body = Transformer(ind.layers, ind.width, ind.heads, ind.mlp_ratio, key=k4)

    def __call__(self, x: Int[Array, " L"], y: Int[Array, " L"]) -> Float[Array, "Q D"]:
        length, width = x.shape[0], self.query.shape[1]
        pos = sinusoidal_positions(length, width)
        hx = jax.vmap(self.embed)(x) + pos + self.segment[0][None, :]
        hy = jax.vmap(self.embed)(y) + pos + self.segment[1][None, :]
        h = self.body(jnp.concatenate([self.query, hx, hy], axis=0))
        return h[: self.query.shape[0]]


class Decoder(eqx.Module):
    """Predicts per-position value logits of y from x, given context tokens and an optional conditioning vector.

    The context tokens (width of the executor) are prepended to the embedded input; `cond` enters as FiLM when
    the decoder was built with `film=True` and is added to every input position otherwise.

    With `model.executor.routing` (as in the NLI specs of the shift suite) the decoder's attention also gets a
    per-head bias over relative offsets between input positions chosen by a code, exactly as NLI's step network
    gets one from each token: the code is `route` when given, else `cond` (the latent of `lpn`/`dlpn`; for
    `in_context`/`ttt` the mean token of the real context pairs, passed as one or the other);
    `model.executor.mirrors` adds a bias over position sums, and `anchors` one over offsets measured from two
    positions the code picks by content. Context tokens then carry no position, so offsets are those within the
    datum (and anchors are input positions).
    """

    embed: eqx.nn.Embedding
    segment: Float[Array, "2 D"]
    body: Transformer
    out: eqx.nn.Linear
    film: bool = eqx.field(static=True)
    routing: bool = eqx.field(static=True)

    def __init__(self, spec: Spec, values: int, *, film: bool, length: int, key: PRNGKeyArray):
        ex = spec.model.executor
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.film = film
        self.routing = ex.routing
        self.embed = eqx.nn.Embedding(values, ex.width, key=k1)
        self.segment = 0.02 * jax.random.normal(k2, (2, ex.width))
        self.body = Transformer(
            ex.layers, ex.width, ex.heads, ex.mlp_ratio, film=film,
            route_span=length if ex.routing else 0, mirror=ex.routing and ex.mirrors,
            anchors=ex.routing and ex.anchors, key=k3,
        )
        self.out = eqx.nn.Linear(ex.width, values, key=k4)

    def __call__(
        self,
        x: Int[Array, " L"],
        context: Float[Array, "C D"] | None = None,
        cond: Float[Array, " D"] | None = None,
        route: Float[Array, " D"] | None = None,
    ) -> Float[Array, "L V"]:
        """`route`: the routing code (default `cond`); ignored without routing."""
        length, width = x.shape[0], self.segment.shape[1]
        h = jax.vmap(self.embed)(x) + sinusoidal_positions(length, width) + self.segment[1][None, :]
        if cond is not None and not self.film:
            h = h + cond[None, :]
        body_cond = cond if self.film else None
        positions = None
        if self.routing:
            route = cond if route is None else route
            if route is None:
                raise ValueError("a routing decoder needs a routing code or a conditioning vector")
            if self.film and cond is not None and route is not cond:
                raise ValueError("a FiLM decoder routes by its conditioning vector; pass cond or route, not both")
            body_cond = route
            positions = jnp.arange(length)
            if context is not None:
                positions = jnp.concatenate([jnp.full((context.shape[0],), -1), positions])
        if context is not None:
            h = jnp.concatenate([context + self.segment[0][None, :], h], axis=0)
        h = self.body(h, body_cond, positions)
        return jax.vmap(self.out)(h[h.shape[0] - length :])


def with_query_pair(batch: Batch) -> tuple[Int[Array, "B P L"], Int[Array, "B P L"], Bool[Array, "B P"]]:
    """The m spec pairs followed by the query pair (P = m + 1), and which of them are real.

    Training holds out each of the P pairs in turn, so the model always sees m context slots of which the
    held-out one is padding, exactly as at test time (where the query slot is the padding one).
    """
    xs = jnp.concatenate([batch.inputs, batch.query_input[:, None, :]], axis=1)
    ys = jnp.concatenate([batch.outputs, batch.query_output[:, None, :]], axis=1)
    mask = jnp.concatenate([batch.pair_mask, jnp.ones_like(batch.pair_mask[:, :1])], axis=1)
    return xs, ys, mask


def with_query_slot(
    xs: Int[Array, "m L"], ys: Int[Array, "m L"], mask: Bool[Array, " m"]
) -> tuple[Int[Array, "P L"], Int[Array, "P L"], Bool[Array, " P"]]:
    """The m spec pairs plus an empty slot where the query pair would be (P = m + 1, the new slot masked out).

    Training reads P = m + 1 context slots with the held-out one as padding; at test time the query is the
    held-out pair, so its slot must be there as padding too, or the decoder reads one slot fewer than it was
    trained on (for in_context and ttt, whose decoder reads every slot's tokens).
    """
    return (
        jnp.concatenate([xs, xs[:1]], axis=0),
        jnp.concatenate([ys, ys[:1]], axis=0),
        jnp.concatenate([mask, jnp.zeros_like(mask[:1])], axis=0),
    )


def held_out_masks(mask: Bool[Array, " P"]) -> Bool[Array, "P P"]:
    """Row j: the context pairs when pair j is held out (every real pair except j)."""
    eye = jnp.eye(mask.shape[0], dtype=bool)
    return mask[None, :] & ~eye


def sequence_nll(logits: Float[Array, "... L V"], y: Int[Array, "... L"]) -> tuple[Array, Array]:
    """Mean negative log-likelihood over positions, and whether the argmax reproduces y exactly."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0].mean(axis=-1)
    exact = (jnp.argmax(logits, axis=-1) == y).all(axis=-1)
    return nll, exact


def masked_mean(values: Array, mask: Array) -> Array:
    """Mean of `values` where `mask` holds (0 when it holds nowhere)."""
    mask = mask.astype(values.dtype)
    return (values * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def check_method(kind: str, search: SearchSpec, methods: tuple[str, ...]) -> None:
    """Raise a `SpecError` at `search.method` naming the supported methods when it is not one of them."""
    if search.method not in methods:
        raise SpecError(
            f"model kind '{kind}' has no search method '{search.method}'",
            loc=Loc("search.method"),
            hint=did_you_mean(search.method, methods),
        )


class InContext(eqx.Module):
    """Pair encoder + decoder reading the m pair encodings (C tokens each) as context.

    Attributes:
        slots: C, context tokens per pair (spec.language.length, like NLI's program slots).
        max_length: width of the (all-zero) program array in a `Solution`.
    """

    encoder: PairEncoder
    proj: eqx.nn.Linear
    pad: Float[Array, " D"]
    slot: Float[Array, "C D"]
    decoder: Decoder
    slots: int = eqx.field(static=True)
    max_length: int = eqx.field(static=True)

    def __init__(self, spec: Spec, shapes: Shapes, *, key: PRNGKeyArray):
        k1, k2, k3, k4, k5 = jax.random.split(key, 5)
        width = spec.model.executor.width
        self.slots = spec.language.length
        self.max_length = spec.language.max_length
        self.encoder = PairEncoder(spec, shapes.values, self.slots, key=k1)
        self.proj = eqx.nn.Linear(spec.model.inductor.width, width, key=k2)
        self.pad = 0.02 * jax.random.normal(k3, (width,))
        self.slot = 0.02 * jax.random.normal(k4, (self.slots, width))
        # Without routing the decoder reads the context by attention only (no conditioning vector). With routing it
        # is conditioned on the pooled context as LPN's decoder is on its latent: routing bias, and FiLM when
        # `conditioning: film`.
        ex = spec.model.executor
        film = ex.routing and ex.conditioning == "film"
        self.decoder = Decoder(spec, shapes.values, film=film, length=shapes.length, key=k5)

    def encode(self, xs: Int[Array, "P L"], ys: Int[Array, "P L"]) -> Float[Array, "P C D"]:
        """Per-pair context tokens (in the decoder's width)."""
        enc = jax.vmap(self.encoder)(xs, ys)
        return jax.vmap(jax.vmap(self.proj))(enc) + self.slot[None, :, :]

    def predict(self, enc: Float[Array, "P C D"], ctx: Bool[Array, " P"], x: Int[Array, " L"]) -> Float[Array, "L V"]:
        """Logits of y for input x given the encodings of the pairs selected by `ctx` (others are padding).

        With routing, the decoder's routing code (and FiLM vector, with `conditioning: film`) is the mean token of
        the selected pairs (padding excluded)."""
        tokens = jnp.where(ctx[:, None, None], enc, self.pad[None, None, :])
        route = None
        if self.decoder.routing:
            w = ctx.astype(enc.dtype)[:, None, None]
            route = (w * enc).sum(axis=(0, 1)) / jnp.maximum(w.sum() * enc.shape[1], 1.0)
        if self.decoder.film:
            return self.decoder(x, tokens.reshape(-1, tokens.shape[-1]), cond=route)
        return self.decoder(x, tokens.reshape(-1, tokens.shape[-1]), route=route)


def build_in_context(spec: Spec, shapes: Shapes, *, key: PRNGKeyArray) -> InContext:
    """Build the in-context model (also the starting point of TTT)."""
    return InContext(spec, shapes, key=key)


def loo_task_loss(model: InContext, xs: Array, ys: Array, mask: Array, targets: Array) -> tuple[Array, Array]:
    """Leave-one-out loss of one task: each pair with `targets` True is predicted from the other real pairs."""
    enc = model.encode(xs, ys)
    ctx = held_out_masks(mask)
    logits = jax.vmap(model.predict, in_axes=(None, 0, 0))(enc, ctx, xs)
    nll, exact = sequence_nll(logits, ys)
    return masked_mean(nll, targets), masked_mean(exact, targets)


def in_context_loss(model: InContext, batch: Batch, t: Float[Array, ""], *, key: PRNGKeyArray):
    """Mean leave-one-out NLL over the spec pairs and the query pair of every task."""
    del t, key  # deterministic model, no schedule
    xs, ys, mask = with_query_pair(batch)
    nll, exact = jax.vmap(loo_task_loss, in_axes=(None, 0, 0, 0, 0))(model, xs, ys, mask, mask)
    loss = nll.mean()
    return loss, {"loss": loss, "nll": loss, "pair_accuracy": exact.mean()}


def in_context_logits(model: InContext, batch: Batch) -> tuple[Float[Array, "B L V"], Float[Array, "B m L V"]]:
    """Query logits from all spec pairs, and leave-one-out logits of every spec pair (for spec fit)."""

    def one(xs, ys, mask, xq):
        m = xs.shape[0]
        xs, ys, mask = with_query_slot(xs, ys, mask)  # the query's slot is padding, as in training
        enc = model.encode(xs, ys)
        query = model.predict(enc, mask, xq)
        loo = jax.vmap(model.predict, in_axes=(None, 0, 0))(enc, held_out_masks(mask)[:m], xs[:m])
        return query, loo

    return jax.vmap(one)(batch.inputs, batch.outputs, batch.pair_mask, batch.query_input)


def solution_from_logits(
    query: Float[Array, "B L V"], loo: Float[Array, "B m L V"], batch: Batch, max_length: int
) -> Solution:
    """A `Solution` of a kind without discrete programs: spec fit and likelihood from per-pair predictions."""
    nll, exact = sequence_nll(loo, batch.outputs)
    mask = batch.pair_mask.astype(jnp.float32)
    count = jnp.maximum(mask.sum(axis=1), 1.0)
    outputs = jnp.argmax(query, axis=-1).astype(jnp.int32)
    return Solution(
        programs=jnp.zeros((query.shape[0], max_length), jnp.int32),
        outputs=outputs,
        spec_fit=(exact * mask).sum(axis=1) / count,
        spec_loglik=-(nll * mask).sum(axis=1) / count,
        soft_outputs=outputs,
    )


def in_context_solve(model: InContext, batch: Batch, search: SearchSpec, *, key: PRNGKeyArray) -> Solution:
    """Predict the query output from the spec pairs; spec fit is leave-one-out over the spec pairs."""
    del key
    check_method("in_context", search, ("none",))
    query, loo = in_context_logits(model, batch)
    return solution_from_logits(query, loo, batch, model.max_length)


BACKBONE_READS = frozenset(
    {f"model.inductor.{f}" for f in ("layers", "width", "heads", "mlp_ratio")}
    | set(field_names("model.executor")) - {"model.executor.residual_gate"}
    | {"language.max_length", "search.method", "search.batch"}
)
"""The spec fields every baseline reads (`ModelKind.reads`): the pair encoder's size, the decoder (all of
`model.executor` but the NLI's residual gate), the output's program width, and the search's method and batch."""

IN_CONTEXT = ModelKind(
    name="in_context",
    build=build_in_context,
    loss=in_context_loss,
    solve=eqx.filter_jit(in_context_solve),
    search_methods=("none",),
    reads=BACKBONE_READS | {"language.length"},  # context tokens per pair
)
