"""Shared building blocks of every model kind: a pre-norm transformer with relative-position attention and
optional FiLM conditioning. NLI and every baseline are built from `Transformer`, so comparisons share one backbone.

Attention carries a learned relative-position bias per head (T5-style) whose table starts *sharp and random*
(std `rel_init`): each head attends to a few particular offsets from the first step. Measured on the shift
family, a per-pair transformer inductor with zero-initialised or absolute positions stayed at chance accuracy
for 700+ steps at classifying the shift of a pair, and learned it in ~200 steps with this init.

A conditioning code (an NLI token, a baseline's latent) may add to that bias: per relative offset (`route_span`),
per position sum (`mirror`), and per offset or sum measured from two positions the code picks by content
(`anchors`: a dot, a block's end), so that one code moves cells by a distance that the row itself holds.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

__all__ = ["MLP", "Attention", "Block", "Transformer", "anchored_tables", "sinusoidal_positions"]

_ANCHOR_WIDTH = 8  # width of the content match that places an anchor (`anchors`)


def sinusoidal_positions(length: int, width: int) -> Float[Array, "L D"]:
    """Fixed sinusoidal position embeddings (no parameters, any length)."""
    pos = jnp.arange(length, dtype=jnp.float32)[:, None]
    i = jnp.arange(width // 2, dtype=jnp.float32)[None, :]
    angle = pos / (10000.0 ** (2 * i / width))
    emb = jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)
    if width % 2:
        emb = jnp.concatenate([emb, jnp.zeros((length, 1))], axis=-1)
    return emb


def zeroed(linear: eqx.nn.Linear) -> eqx.nn.Linear:
    """`linear` with zero weights and bias: a conditioning path (or output layer) that starts switched off."""
    return eqx.tree_at(lambda m: (m.weight, m.bias), linear, (jnp.zeros_like(linear.weight), jnp.zeros_like(linear.bias)))


class MLP(eqx.Module):
    """Two-layer GELU MLP applied to the last axis."""

    fc1: eqx.nn.Linear
    fc2: eqx.nn.Linear

    def __init__(self, d_in: int, d_hidden: int, d_out: int, *, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        self.fc1 = eqx.nn.Linear(d_in, d_hidden, key=k1)
        self.fc2 = eqx.nn.Linear(d_hidden, d_out, key=k2)

    def __call__(self, x: Float[Array, "... d_in"]) -> Float[Array, "... d_out"]:
        f = lambda v: self.fc2(jax.nn.gelu(self.fc1(v)))  # noqa: E731
        for _ in range(x.ndim - 1):
            f = jax.vmap(f)
        return f(x)


class Attention(eqx.Module):
    """Multi-head self-attention with a learned relative-position bias per head.

    Positions are sequence indices unless given; tokens with position -1 (e.g. learned query tokens) get no bias.
    Offsets beyond `span` share the bias of the largest offset.
    """

    qkv: eqx.nn.Linear
    out: eqx.nn.Linear
    rel_bias: Float[Array, "H R"]
    heads: int = eqx.field(static=True)
    span: int = eqx.field(static=True)

    def __init__(self, width: int, heads: int, *, span: int = 256, rel_init: float = 3.0, key: PRNGKeyArray):
        if width % heads:
            raise ValueError(f"heads ({heads}) must divide width ({width})")
        k1, k2, k3 = jax.random.split(key, 3)
        self.qkv = eqx.nn.Linear(width, 3 * width, key=k1)
        self.out = eqx.nn.Linear(width, width, key=k2)
        self.rel_bias = rel_init * jax.random.normal(k3, (heads, 2 * span - 1))
        self.heads = heads
        self.span = span

    def __call__(
        self,
        x: Float[Array, "N D"],
        positions: Int[Array, " N"] | None = None,
        offset_bias: Float[Array, "H R"] | None = None,
        mirror_bias: Float[Array, "H R"] | None = None,
        *,
        reshaped: bool = False,
    ) -> Float[Array, "N D"]:
        """Args: x tokens; positions per token (-1: none); offset_bias an extra bias per head and relative offset
        (R = 2 * span - 1, offset o at index o + span - 1) and mirror_bias one per head and position sum
        (i + j at index i + j), both e.g. chosen by a conditioning code; reshaped: lay the biases out by reshapes,
        not a gather, where positions are 0..N-1 (the same values; for tables that differ per sequence)."""
        N, D = x.shape
        q, k, v = jnp.split(jax.vmap(self.qkv)(x), 3, axis=-1)
        q, k, v = (a.reshape(N, self.heads, D // self.heads) for a in (q, k, v))
        scores = jnp.einsum("nhd,mhd->hnm", q, k) / jnp.sqrt(jnp.asarray(D // self.heads, x.dtype))
        table = self.rel_bias if offset_bias is None else self.rel_bias + offset_bias
        if reshaped and positions is None and N <= self.span:
            # Positions 0..N-1: the bias is a Toeplitz (offset) and a Hankel (sum) matrix of the tables, laid out by
            # reshapes instead of an [H, N, N] gather (the same values; a gather per sequence is slow on CPU, and a
            # table that depends on the sequence, as `anchors` makes it, needs one per sequence). Not the default:
            # gradients sum in another order (1e-9 apart), and trained runs stay bit for bit as they were.
            bias = _toeplitz(table[:, self.span - N:self.span + N - 1])
            if mirror_bias is not None:
                bias = bias + _hankel(mirror_bias[:, :2 * N - 1])
        else:
            if positions is None:
                positions = jnp.arange(N)
            offset = jnp.clip(positions[None, :] - positions[:, None], 1 - self.span, self.span - 1) + self.span - 1
            has_pos = (positions[:, None] >= 0) & (positions[None, :] >= 0)
            bias = table[:, offset]
            if mirror_bias is not None:
                total = jnp.clip(positions[None, :] + positions[:, None], 0, mirror_bias.shape[1] - 1)
                bias = bias + mirror_bias[:, total]
            bias = jnp.where(has_pos[None], bias, 0.0)
        attn = jax.nn.softmax(scores + bias, axis=-1)
        return jax.vmap(self.out)(jnp.einsum("hnm,mhd->nhd", attn, v).reshape(N, D))


def _toeplitz(table: Float[Array, "H M"]) -> Float[Array, "H N N"]:
    """out[h, i, j] = table[h, j - i + N - 1] for M = 2N - 1: N + 1 copies of each row read with a stride of M - 1
    (each output row starts one entry earlier), by reshapes and slices."""
    H, M = table.shape
    N = (M + 1) // 2
    if N == 1:
        return table.reshape(H, 1, 1)
    flat = jnp.tile(table, (1, N + 1))[:, N - 1:N - 1 + N * (M - 1)]
    return flat.reshape(H, N, M - 1)[:, :, :N]


def _hankel(table: Float[Array, "H M"]) -> Float[Array, "H N N"]:
    """out[h, i, j] = table[h, i + j] for M = 2N - 1: copies of each row read with a stride of M + 1 (each output row
    starts one entry later), by reshapes and slices."""
    H, M = table.shape
    N = (M + 1) // 2
    flat = jnp.tile(table, (1, N + 1))[:, :N * (M + 1)]
    return flat.reshape(H, N, M + 1)[:, :, :N]


def _interpolate(table: Float[Array, " R"], at: Float[Array, "..."]) -> Float[Array, "..."]:
    """table read at fractional indices `at` (clipped to the table), linear between neighbouring entries."""
    at = jnp.clip(at, 0.0, table.shape[0] - 1.0)
    lo = jnp.clip(jnp.floor(at), 0, table.shape[0] - 2).astype(jnp.int32)
    w = at - lo
    return (1.0 - w) * table[lo] + w * table[lo + 1]


def anchored_tables(
    anchors: Float[Array, "H 2"], tables: Float[Array, "H 2 R2"], *, span: int
) -> tuple[Float[Array, "H R"], Float[Array, "H R"]]:
    """Bias of query i to key j from offsets measured from two soft anchor positions (a0, a1) per head: table 0 at
    (j - a0) - (i - a1) (a move by a distance between two things in the row: a block's end and a dot) and table 1
    at (j - a0) + (i - a1) (a mirror around a thing in the row); R2 = 4 * span - 3, value w at index w + 2 * span - 2,
    read between entries by linear interpolation (the anchors are continuous).

    The first is the relative offset j - i shifted by a1 - a0, the second the position sum i + j shifted by
    -(a0 + a1): both are returned as tables over the offset (R = 2 * span - 1, as `Attention`'s offset bias) and the
    sum (as its mirror bias), so attention adds them to those and no [H, N, N] interpolation is made."""
    centre = 2.0 * span - 2.0
    offsets = jnp.arange(1 - span, span, dtype=anchors.dtype)  # index o + span - 1
    sums = jnp.arange(2 * span - 1, dtype=anchors.dtype)  # index i + j
    shift = jax.vmap(_interpolate)(tables[:, 0], offsets[None, :] + (anchors[:, 1] - anchors[:, 0])[:, None] + centre)
    mirror = jax.vmap(_interpolate)(tables[:, 1], sums[None, :] - (anchors[:, 0] + anchors[:, 1])[:, None] + centre)
    return shift, mirror


class Block(eqx.Module):
    """Pre-norm self-attention + MLP block; `cond` (width D) adds a FiLM scale/shift after each norm."""

    norm1: eqx.nn.LayerNorm
    attn: Attention
    norm2: eqx.nn.LayerNorm
    mlp: MLP
    film: eqx.nn.Linear | None
    route: eqx.nn.Linear | None
    rgate: eqx.nn.Linear | None
    anchor_key: eqx.nn.Linear | None
    anchor_query: eqx.nn.Linear | None
    anchor_table: eqx.nn.Linear | None
    mirror: bool = eqx.field(static=True)

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_ratio: int,
        *,
        film: bool,
        rel_init: float = 3.0,
        route_span: int = 0,
        mirror: bool = False,
        residual_gate: bool = False,
        anchors: bool = False,
        key: PRNGKeyArray,
    ):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.norm1 = eqx.nn.LayerNorm(width)
        span = route_span or 256
        self.attn = Attention(width, heads, span=span, rel_init=rel_init, key=k1)
        if route_span:
            # cond -> bias per head and relative offset; zero at init, so routing is learned from the data.
            self.route = zeroed(eqx.nn.Linear(width, heads * (2 * span - 1) * (2 if mirror else 1), key=k4))
        else:
            self.route = None
        self.mirror = bool(route_span and mirror)
        if residual_gate:
            # cond -> a scale of the residual stream before attention adds what it read; zero at init (scale 1).
            self.rgate = zeroed(eqx.nn.Linear(width, width, key=jax.random.fold_in(k4, 1)))
        else:
            self.rgate = None
        if route_span and anchors:
            # cond -> a content query per head and anchor (attention over the positions' features picks a soft
            # position), and two bias tables per head over offsets measured from the anchors; the tables start at
            # zero, so the block is unchanged until they are learned. From keys of their own (folded in), so
            # turning the option on leaves every other initial weight as it was.
            ka, kq, kt = jax.random.split(jax.random.fold_in(k4, 2), 3)
            self.anchor_key = eqx.nn.Linear(width, heads * 2 * _ANCHOR_WIDTH, key=ka)
            self.anchor_query = eqx.nn.Linear(width, heads * 2 * _ANCHOR_WIDTH, key=kq)
            self.anchor_table = zeroed(eqx.nn.Linear(width, heads * 2 * (4 * span - 3), key=kt))
        else:
            self.anchor_key = self.anchor_query = self.anchor_table = None
        self.norm2 = eqx.nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio * width, width, key=k2)
        if film:
            # Start as identity modulation: zero weights, so scale = 1 and shift = 0 at init.
            self.film = zeroed(eqx.nn.Linear(width, 4 * width, key=k3))
        else:
            self.film = None

    def __call__(
        self, x: Float[Array, "N D"], cond: Float[Array, " D"] | None = None, positions: Int[Array, " N"] | None = None
    ) -> Float[Array, "N D"]:
        h = jax.vmap(self.norm1)(x)
        if self.film is not None and cond is not None:
            s1, b1, s2, b2 = jnp.split(self.film(cond), 4)
            h = h * (1 + s1)[None, :] + b1[None, :]
        route = mirror = None
        if self.route is not None and cond is not None:
            route = self.route(cond).reshape(self.attn.heads, 2 if self.mirror else 1, -1)
            route, mirror = route[:, 0], (route[:, 1] if self.mirror else None)
        if self.anchor_table is not None and cond is not None:
            shift, around = anchored_tables(*self._anchors(h, cond, positions), span=self.attn.span)
            route = shift if route is None else route + shift
            mirror = around if mirror is None else mirror + around
        a = self.attn(h, positions, route, mirror, reshaped=self.anchor_table is not None)
        if self.rgate is not None and cond is not None:
            x = x * (1 + self.rgate(cond))[None, :]  # a code may overwrite a position's content, not only add to it
        x = x + a
        h = jax.vmap(self.norm2)(x)
        if self.film is not None and cond is not None:
            h = h * (1 + s2)[None, :] + b2[None, :]
        return x + self.mlp(h)

    def _anchors(
        self, h: Float[Array, "N D"], cond: Float[Array, " D"], positions: Int[Array, " N"] | None
    ) -> tuple[Float[Array, "H 2"], Float[Array, "H 2 R2"]]:
        """Two soft positions per head (the content attention of the code's queries over the normed features) and
        the code's two anchored bias tables per head."""
        assert self.anchor_key is not None and self.anchor_query is not None and self.anchor_table is not None
        N, H = h.shape[0], self.attn.heads
        if positions is None:
            positions = jnp.arange(N)
        keys = jax.vmap(self.anchor_key)(h).reshape(N, H, 2, _ANCHOR_WIDTH)
        query = self.anchor_query(cond).reshape(H, 2, _ANCHOR_WIDTH)
        scores = jnp.einsum("hrd,nhrd->hrn", query, keys) / jnp.sqrt(jnp.asarray(_ANCHOR_WIDTH, h.dtype))
        scores = jnp.where(positions[None, None, :] >= 0, scores, -1e9)
        where = jnp.einsum("hrn,n->hr", jax.nn.softmax(scores, axis=-1), jnp.maximum(positions, 0).astype(h.dtype))
        return where, self.anchor_table(cond).reshape(H, 2, -1)


class Transformer(eqx.Module):
    """A stack of `Block`s with a final LayerNorm. Bidirectional (no mask): sequences are sets of positions."""

    blocks: tuple[Block, ...]
    norm: eqx.nn.LayerNorm

    def __init__(
        self,
        layers: int,
        width: int,
        heads: int,
        mlp_ratio: int,
        *,
        film: bool = False,
        rel_init: float = 3.0,
        route_span: int = 0,
        mirror: bool = False,
        residual_gate: bool = False,
        anchors: bool = False,
        key: PRNGKeyArray,
    ):
        """`route_span` > 0: each block's conditioning code also biases attention over relative offsets up to
        that span (sequences of at most `route_span` positions), and with `mirror` over position sums i + j.
        `residual_gate`: the code also scales each block's residual stream (per channel) before attention adds to
        it, so a code can overwrite a position with what it reads elsewhere. `anchors` (with route_span): the code
        also picks two soft positions per head by content and biases attention by offsets from them."""
        keys = jax.random.split(key, layers)
        self.blocks = tuple(
            Block(width, heads, mlp_ratio, film=film, rel_init=rel_init, route_span=route_span, mirror=mirror,
                  residual_gate=residual_gate, anchors=anchors, key=k)
            for k in keys
        )
        self.norm = eqx.nn.LayerNorm(width)

    def __call__(
        self, x: Float[Array, "N D"], cond: Float[Array, " D"] | None = None, positions: Int[Array, " N"] | None = None
    ) -> Float[Array, "N D"]:
        """Args: x tokens; cond FiLM vector (film blocks only); positions per token (-1: none; default index)."""
        for block in self.blocks:  # a handful of layers, unrolled at trace time (not program steps)
            x = block(x, cond, positions)
        return jax.vmap(self.norm)(x)
