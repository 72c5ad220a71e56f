"""The D-LPN baseline (`dlpn`): LPN with a Gumbel-Softmax discrete latent read by the non-recurrent decoder.

Its latent is a program of T codebook tokens, so it can be searched (none / prior / gradient), executed with
hard tokens and written as text like NLI's programs; unlike NLI it is decoded in one pass, not step by step.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from nlic.compiler.kinds import Batch, ModelKind, Shapes, Solution
from nlic.compiler.models.in_context import (
    BACKBONE_READS,
    Decoder,
    check_method,
    held_out_masks,
    masked_mean,
    sequence_nll,
    with_query_pair,
)
from nlic.compiler.models.lpn import latent_solution, pool
from nlic.compiler.models.nli import Inductor, NLIConfig, relax_tokens
from nlic.compiler.models.nli.model import codebook_usage
from nlic.compiler.ranking import best_index, clip_loglik
from nlic.compiler.spec import RelaxationSpec, SearchSpec, Spec, field_names

__all__ = ["DLPN", "DLPN_KIND", "build_dlpn", "dlpn_loss", "dlpn_solve", "dlpn_execute"]


class DLPN(eqx.Module):
    """LPN with a discrete latent: T slots over a codebook of K tokens, read by the non-recurrent LPN decoder.

    The decoder always reads `max_length` slots; slots past the program are the skip token, in training too,
    so that searched and replayed programs of any length up to `max_length` are in distribution.
    """

    encoder: Inductor
    codes: Float[Array, "K D"]
    proj: eqx.nn.Linear
    decoder: Decoder
    slots: int = eqx.field(static=True)
    max_length: int = eqx.field(static=True)
    skip: int = eqx.field(static=True)
    relaxation: RelaxationSpec = eqx.field(static=True)

    def __init__(self, spec: Spec, shapes: Shapes, *, key: PRNGKeyArray):
        k1, _, k3, k4, k5 = jax.random.split(key, 5)  # k2 was the separate head's key; keys stay as they were
        lang = spec.language
        self.slots, self.max_length, self.skip = lang.length, max(lang.max_length, lang.length), lang.skip_token
        self.relaxation = spec.relaxation
        # The encoder is NLI's inductor (per-pair transformer, its `relations` and `positions` options, slot MLP
        # to codebook logits), so D-LPN and NLI differ only in how the program is executed.
        self.encoder = Inductor(spec, NLIConfig.of(spec, shapes), key=k1)
        width = spec.model.executor.width
        self.codes = jax.random.normal(k3, (lang.vocab, width))
        self.proj = eqx.nn.Linear(self.max_length * width, width, key=k5)
        film = spec.model.executor.conditioning == "film"
        self.decoder = Decoder(spec, shapes.values, film=film, length=shapes.length, key=k4)

    def pad(self, z: Float[Array, "T K"]) -> Float[Array, "Tmax K"]:
        """Pad soft or one-hot tokens with the skip token up to `max_length` slots."""
        extra = jax.nn.one_hot(jnp.full((self.max_length - z.shape[0],), self.skip), z.shape[1], dtype=z.dtype)
        return jnp.concatenate([z, extra], axis=0)

    def decode(self, z: Float[Array, "Tmax K"], x: Int[Array, " L"]) -> Float[Array, "L V"]:
        """Logits of y given input x and a (soft or one-hot) program of `max_length` slots: the slots' code
        vectors, concatenated in order and projected, condition the decoder as LPN's latent does."""
        return self.decoder(x, None, self.proj((z @ self.codes).reshape(-1)))

    def spec_nll(self, z: Float[Array, "Tmax K"], xs: Array, ys: Array, mask: Array) -> Float[Array, ""]:
        nll, _ = sequence_nll(jax.vmap(self.decode, in_axes=(None, 0))(z, xs), ys)
        return masked_mean(nll, mask)


def _dlpn_task_loss(model: DLPN, xs, ys, mask, tau, key):
    emb = jax.vmap(model.encoder.encode)(xs, ys)  # [P, T, D]
    ctx = held_out_masks(mask)
    logits = model.encoder.head(pool(ctx, emb))  # [P, T, K]
    z = relax_tokens(logits, tau, model.relaxation, key=key)
    nll, exact = sequence_nll(jax.vmap(model.decode)(jax.vmap(model.pad)(z), xs), ys)
    # log P(token k never used at slot j) over this task's held-out pairs; summed over tasks in the batch.
    never = (jnp.log1p(-jax.nn.softmax(logits, axis=-1) + 1e-6) * mask[:, None, None]).sum(axis=0)
    return masked_mean(nll, mask), masked_mean(exact, mask), never, jnp.argmax(logits, axis=-1)


def dlpn_loss(model: DLPN, batch: Batch, t: Float[Array, ""], *, key: PRNGKeyArray):
    """Leave-one-out NLL through Gumbel-Softmax programs, plus lambda_reg * expected distinct tokens in the batch.

    Metrics: loss, nll, reg, pair_accuracy (of the relaxed programs), tau, and the codebook's tokens_in_use,
    codebook_perplexity and skip_fraction (`nlic.compiler.models.nli.model.codebook_usage`).
    """
    xs, ys, mask = with_query_pair(batch)
    tau = model.relaxation.tau_inductor.at(t)
    keys = jax.random.split(key, xs.shape[0])
    nll, exact, never, hard = jax.vmap(_dlpn_task_loss, in_axes=(None, 0, 0, 0, None, 0))(
        model, xs, ys, mask, tau, keys
    )
    reg = (1.0 - jnp.exp(never.sum(axis=0))).sum()
    loss = nll.mean() + model.relaxation.reg_weight * reg
    # Health signals of the codebook (argmax tokens of the real pairs' T slots; nothing flows back from them).
    weights = jnp.broadcast_to(mask[..., None], hard.shape).astype(jnp.float32)
    usage = jax.lax.stop_gradient(codebook_usage(hard, weights, model.codes.shape[0], model.skip))
    return loss, {"loss": loss, "nll": nll.mean(), "reg": reg, "pair_accuracy": exact.mean(), "tau": tau, **usage}


def _scores(model: DLPN, zs: Float[Array, "S Tmax K"], xs, ys, mask) -> tuple[Array, Array]:
    """Spec exact-match fraction and mean log-likelihood of S candidate programs."""

    def one(z):
        nll, exact = sequence_nll(jax.vmap(model.decode, in_axes=(None, 0))(z, xs), ys)
        return masked_mean(exact, mask), -masked_mean(nll, mask)

    return jax.vmap(one)(zs)


def _select(fit: Array, loglik: Array, select: str) -> Array:
    """Index of the best candidate: most exact matches then highest likelihood, or highest likelihood."""
    if select == "likelihood":
        return jnp.argmax(clip_loglik(loglik))
    return best_index(fit, loglik)


DLPN_METHODS = ("none", "prior", "gradient")


def dlpn_solve(model: DLPN, batch: Batch, search: SearchSpec, *, key: PRNGKeyArray) -> Solution:
    """`none`: argmax program of the pooled encoder; `prior`: best of `starts` sampled programs; `gradient`:
    Adam on the pooled slot embeddings from `starts` noisy starts through annealed Gumbel-Softmax tokens."""
    check_method("dlpn", search, DLPN_METHODS)
    vocab = model.codes.shape[0]
    tau_end = search.tau_inductor.at(1.0)
    hot = lambda logits: jax.nn.one_hot(jnp.argmax(logits, axis=-1), vocab)  # noqa: E731

    def infer(xs, ys, mask, key):
        pooled = pool(mask[None, :], jax.vmap(model.encoder.encode)(xs, ys))[0]  # [T, D]
        logits = model.encoder.head(pooled)
        if search.method == "prior":
            samples = jax.random.categorical(key, logits, shape=(search.starts, *logits.shape[:1]))
            samples = samples.at[0].set(jnp.argmax(logits, axis=-1))  # the mode is always a candidate
            zs = jax.vmap(model.pad)(jax.nn.one_hot(samples, vocab))
            fit, loglik = _scores(model, zs, xs, ys, mask)
            best = zs[_select(fit, loglik, search.select)]
            return best, best
        if search.method == "gradient" and search.steps > 0:
            k_init, k_run = jax.random.split(key)
            noise = search.init_noise * jax.random.normal(k_init, (search.starts, *pooled.shape))
            starts = pooled[None] + noise.at[0].set(0.0)  # the encoder's own embedding is start 0
            ends = jax.vmap(_descend, in_axes=(None, 0, None, None, None, None, 0))(
                model, starts, xs, ys, mask, search, jax.random.split(k_run, search.starts)
            )
            end_logits = model.encoder.head(ends)  # [S, T, K]
            hard = jax.vmap(model.pad)(hot(end_logits))
            soft = jax.vmap(model.pad)(jax.nn.softmax(end_logits / tau_end, axis=-1))
            # One scoring pass over both candidate sets (one decoder call site keeps compilation short).
            fit, loglik = _scores(model, jnp.concatenate([hard, soft], axis=0), xs, ys, mask)
            i = _select(fit[: search.starts], loglik[search.starts :], search.select)
            return hard[i], soft[i]
        return model.pad(hot(logits)), model.pad(jax.nn.softmax(logits / tau_end, axis=-1))

    keys = jax.random.split(key, batch.inputs.shape[0])
    hard, soft = jax.vmap(infer)(batch.inputs, batch.outputs, batch.pair_mask, keys)
    sol = latent_solution(model, model.decode, hard, batch, soft_zs=soft)
    return sol._replace(programs=jnp.argmax(hard, axis=-1).astype(jnp.int32))


def _descend(model: DLPN, e: Array, xs, ys, mask, search: SearchSpec, key: PRNGKeyArray) -> Array:
    """Adam on one start's slot embeddings, fresh Gumbel noise and an annealed temperature at every step."""
    optim = optax.adam(search.lr)
    steps = search.steps

    def objective(e, tau, key):
        z = relax_tokens(model.encoder.head(e), tau, model.relaxation, key=key)
        return model.spec_nll(model.pad(z), xs, ys, mask)

    def step(carry, i):
        e, state = carry
        tau = search.tau_inductor.at(i / jnp.maximum(steps - 1, 1))
        grad = jax.grad(objective)(e, tau, jax.random.fold_in(key, i))
        updates, state = optim.update(grad, state, e)
        return (optax.apply_updates(e, updates), state), None

    (e, _), _ = jax.lax.scan(step, (e, optim.init(e)), jnp.arange(steps, dtype=jnp.float32))
    return e


def dlpn_execute(model: DLPN, programs: Int[Array, "B Tmax"], inputs: Int[Array, "B L"]) -> Int[Array, "B L"]:
    """Run discrete programs (token ids, padded with the skip token to `max_length`) on inputs."""
    programs = jnp.asarray(programs, jnp.int32)
    pad = model.max_length - programs.shape[1]
    if pad > 0:
        programs = jnp.concatenate([programs, jnp.full((programs.shape[0], pad), model.skip, jnp.int32)], axis=1)
    z = jax.nn.one_hot(programs, model.codes.shape[0])
    return jnp.argmax(jax.vmap(model.decode)(z, jnp.asarray(inputs, jnp.int32)), axis=-1).astype(jnp.int32)


def build_dlpn(spec: Spec, shapes: Shapes, *, key: PRNGKeyArray) -> DLPN:
    """Build the D-LPN model (T = language.length slots over K = language.vocab codes)."""
    return DLPN(spec, shapes, key=key)


DLPN_KIND = ModelKind(
    name="dlpn",
    build=build_dlpn,
    loss=dlpn_loss,
    solve=eqx.filter_jit(dlpn_solve),
    search_methods=DLPN_METHODS,
    execute=eqx.filter_jit(dlpn_execute),
    discrete_programs=True,
    default_search="gradient",
    # The NLI's inductor and language; of the relaxation, what the inductor's token relaxation reads; no
    # model.latent (the latent is language.length tokens of the codebook).
    reads=BACKBONE_READS | set(field_names("model.inductor")) | set(field_names("language"))
    | {f"relaxation.{f}" for f in ("tau_inductor", "straight_through", "inductor_gumbel", "reg_weight")}
    | {f"search.{f}" for f in ("starts", "steps", "lr", "init_noise", "tau_inductor", "select")},
)
