"""What a learned language's tokens mean, by probing: run every token, pair (and triple) on probe inputs, name each
by the family's closest ground-truth primitive, describe it by the positions it moves and the values it maps, and
group sequences that behave identically; plus token usage in solved programs. Pure functions over an executor.

An executor is any `(programs int [n, T] padded with skip, inputs int [n, L]) -> outputs int [n, L]` function: the
trained model's hard execution (`model_executor`), or a fake one whose semantics a test controls.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nlic.compiler.families import TaskSet, family_of, params_of, sample_split
from nlic.compiler.families.base import Primitive
from nlic.compiler.seeds import derive_seed
from nlic.grammar.errors import DataError, Loc
from nlic.runtime.replay import execute_programs

__all__ = [
    "NAMED",
    "Executor",
    "TokenSeq",
    "Description",
    "TokenMeaning",
    "PairTable",
    "Semantics",
    "model_executor",
    "family_primitives",
    "probe_inputs",
    "probe_sequences",
    "run_sequences",
    "run_sequentially",
    "primitive_outputs",
    "compose_primitives",
    "composition",
    "compositions",
    "candidate_outputs",
    "agreements",
    "closest",
    "describe",
    "alias_classes",
    "token_usage",
    "length_histogram",
    "analyze",
    "sequence_text",
]

NAMED = 0.99
"""Agreement on the probes from which a token (or sequence) is named by its closest primitive."""

Executor = Callable[[np.ndarray, np.ndarray], np.ndarray]
TokenSeq = tuple[int, ...]
"""A token sequence (no skip tokens); () is the empty program, the identity."""

_MAX_OFFSETS = 256  # longer data: only the shifts by -1, 0, 1 are tried as position rules (cost is L^2)


_ROWS = 1024  # execute_programs' largest chunk: calls padded to a multiple of it all run one compiled shape


_BLOCK = 16 * _ROWS  # rows per progress report


def model_executor(spec: Any, model: Any, *, log: Callable[[str], None] | None = None) -> Executor:
    """The trained model's hard execution (`nlic.runtime.replay.execute_programs`) as an `Executor`.

    Every call is padded to a multiple of 1024 rows, so that calls of any size run the executor compiled once
    per program width.

    Args:
        spec, model: the run's spec and trained model.
        log: called with a progress line every 16384 rows of a long call (at most one every 2 s).
    """

    def execute(programs: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        programs, inputs = np.asarray(programs, np.int32), np.asarray(inputs, np.int32)
        n = len(programs)
        pad = -n % _ROWS if n else 0
        if pad:
            programs = np.concatenate([programs, np.repeat(programs[:1], pad, 0)])
            inputs = np.concatenate([inputs, np.repeat(inputs[:1], pad, 0)])
        parts, t0, shown = [], time.perf_counter(), time.perf_counter()
        for start in range(0, len(programs), _BLOCK):
            parts.append(execute_programs(spec, model, programs[start : start + _BLOCK], inputs[start : start + _BLOCK]))
            done = min(start + _BLOCK, n)
            if log is not None and done < n and time.perf_counter() - shown >= 2.0:
                shown = time.perf_counter()
                log(f"probe: {done}/{n} runs, {shown - t0:.1f}s")
        return np.concatenate(parts)[:n] if parts else np.zeros((0, inputs.shape[-1]), np.int32)

    return execute


def family_primitives(spec: Any) -> tuple[Primitive, ...]:
    """The ground-truth primitives of the spec's family (its optional `primitives` method), () if it has none."""
    family = family_of(spec)
    method = getattr(family, "primitives", None)
    return tuple(method(params_of(spec))) if method is not None else ()


def sequence_text(seq: Sequence[int], names: Mapping[int, str] | None = None) -> str:
    """`t1 t2` (or the tokens' names), `(empty)` for the empty program."""
    if not seq:
        return "(empty)"
    return " ".join((names or {}).get(t, f"t{t}") for t in seq)


# --- probe inputs and sequences ----------------------------------------------------------------------------------


def _unique_rows(rows: np.ndarray) -> np.ndarray:
    """Rows in first-seen order, without repeats."""
    _, first = np.unique(rows, axis=0, return_index=True)
    return rows[np.sort(first)]


def _task_inputs(tasks: TaskSet) -> np.ndarray:
    spec_inputs = tasks.inputs[np.asarray(tasks.pair_mask, bool)]
    return np.concatenate([spec_inputs.reshape(-1, tasks.inputs.shape[-1]), tasks.query_inputs]).astype(np.int32)


def probe_inputs(spec: Any, n: int, *, fallback: Sequence[TaskSet] = (), seed: int | None = None) -> np.ndarray:
    """Up to n distinct encoded inputs of the spec's training split (the data the language was trained on).

    A family without that split (a `files` spec that only solves) gives the inputs of `fallback`, the user's tasks.

    Args:
        spec: the run's spec.
        n: how many probe inputs.
        fallback: task sets whose inputs are used when the family has no training split.
        seed: seed of the draw (default: derived from the spec's seed).

    Returns:
        int32 [m, L] with m <= n (fewer where the data hold fewer distinct inputs).

    Raises:
        DataError: there are no inputs at all.
    """
    family = family_of(spec)
    split = str(spec.task.train_split)
    base = int(spec.seed if seed is None else seed)
    if split in family.splits(params_of(spec)):
        count = max(1, math.ceil(n / (int(spec.task.pairs) + 1))) + 1
        while True:  # more tasks where inputs repeat (a tiny alphabet, a small data set), within bounds
            found = _unique_rows(_task_inputs(sample_split(spec, split, count, seed=derive_seed(base, "inspect", split))))
            if len(found) >= n or count >= 64 * n:
                break
            count *= 4
        rows = [found]
    else:
        rows = [_task_inputs(t) for t in fallback if len(t)]
    if not rows or not sum(len(r) for r in rows):
        raise DataError("no inputs to probe the language with", loc=Loc(f"task.params ({split})"),
                        hint="give the spec a training split, or inspect a split that has tasks")
    return _unique_rows(np.concatenate(rows))[:n]


def probe_sequences(vocab: int, skip: int, *, length: int = 2, focus: Sequence[int] | None = None) -> tuple[TokenSeq, ...]:
    """Every non-skip token alone, every ordered pair of them, and every sequence of 3 to `length` tokens of `focus`
    (default: all non-skip tokens), shortest first.

    Args:
        vocab, skip: the language's K and skip token.
        length: longest sequence.
        focus: the tokens longer sequences are made of (e.g. those the programs use: K^3 sequences of every
            token cost much and mostly pair unused tokens).
    """
    tokens = [t for t in range(vocab) if t != skip]
    longer = tokens if focus is None else [t for t in dict.fromkeys(int(t) for t in focus) if t != skip]
    out = [(a,) for a in tokens] + ([(a, b) for a in tokens for b in tokens] if length >= 2 else [])
    layer: list[TokenSeq] = [(a, b) for a in longer for b in longer]
    for _ in range(3, length + 1):
        layer = [s + (t,) for s in layer for t in longer]
        out += layer
    return tuple(out)


def _matrix(sequences: Sequence[TokenSeq], skip: int, width: int) -> np.ndarray:
    m = np.full((len(sequences), width), skip, np.int32)
    for i, s in enumerate(sequences):
        m[i, : len(s)] = s
    return m


def run_sequences(execute: Executor, sequences: Sequence[TokenSeq], inputs: np.ndarray, *, skip: int,
                  width: int | None = None) -> np.ndarray:
    """Outputs of every sequence on every input, in one batched call of `execute`.

    Args:
        execute: the executor.
        sequences: token sequences (the empty one is the identity and is not executed).
        inputs: int [N, L] probe inputs.
        skip: the skip token (pads the programs).
        width: program width T (default: the longest sequence); one width means one compiled executor.

    Returns:
        int32 [S, N, L].
    """
    inputs = np.asarray(inputs, np.int32)
    n, L = inputs.shape
    out = np.empty((len(sequences), n, L), np.int32)
    live = [i for i, s in enumerate(sequences) if s]
    for i, s in enumerate(sequences):
        if not s:
            out[i] = inputs
    if live:
        width = max(len(sequences[i]) for i in live) if width is None else width
        programs = np.repeat(_matrix([sequences[i] for i in live], skip, width), n, axis=0)
        result = np.asarray(execute(programs, np.tile(inputs, (len(live), 1))), np.int32)
        out[live] = result.reshape(len(live), n, L)
    return out


def run_sequentially(execute: Executor, sequences: Sequence[TokenSeq], inputs: np.ndarray, *, skip: int,
                     width: int) -> np.ndarray:
    """Outputs of each sequence run one token at a time, each token on the previous token's hard output.

    Where this equals running the sequence as one program, the sequence behaves as the composition of its tokens'
    functions on data (the executor carries no hidden state across tokens that changes the result).

    Returns:
        int32 [S, N, L].
    """
    inputs = np.asarray(inputs, np.int32)
    n, L = inputs.shape
    state = np.repeat(inputs[None], len(sequences), axis=0)
    for step in range(max((len(s) for s in sequences), default=0)):
        # Every sequence runs at every step (the same batch shape each time); finished ones keep their state.
        steps = [(s[step],) if len(s) > step else () for s in sequences]
        programs = np.repeat(_matrix(steps, skip, width), n, axis=0)
        result = np.asarray(execute(programs, state.reshape(-1, L)), np.int32).reshape(len(sequences), n, L)
        live = [i for i, s in enumerate(sequences) if len(s) > step]
        state[live] = result[live]
    return state


# --- primitives and agreement --------------------------------------------------------------------------------------


def primitive_outputs(primitives: Sequence[Primitive], inputs: np.ndarray) -> np.ndarray:
    """int32 [P, N, L]: each primitive on the probe inputs (rows of -1 where it is undefined)."""
    inputs = np.asarray(inputs, np.int32)
    if not primitives:
        return np.zeros((0, *inputs.shape), np.int32)
    return np.stack([p(inputs) for p in primitives])


def compose_primitives(first: Primitive, second: Primitive, inputs: np.ndarray) -> np.ndarray:
    """`second` after `first` on int [N, L] inputs; undefined (-1 rows) where either step is."""
    inputs = np.asarray(inputs, np.int32)
    mid = first(inputs)
    bad = (mid < 0).any(axis=-1)
    out = second(np.where(bad[:, None], inputs, mid))
    out[bad] = -1
    return out


def _then(x: np.ndarray, first: Primitive, second: Primitive) -> np.ndarray:
    return compose_primitives(first, second, x)


def composition(first: Primitive, second: Primitive) -> Primitive:
    """The primitive `first` then `second`, named `<first>_<second>` and described `first then second`."""
    return Primitive(f"{first.name}_{second.name}", functools.partial(_then, first=first, second=second),
                     f"{first.name} then {second.name}")


_MAX_COMPOSED = 4096  # compositions tried at most (P^2 of them: the DeepCoder DSL's 38 ops give 1444)
_MAX_COMPOSED_VALUES = 1 << 26  # and at most this many output values in all (256 MiB)


def _pairs_of(primitives: Sequence[Primitive], inputs: np.ndarray) -> list[tuple[int, int, Primitive]]:
    base = [i for i, p in enumerate(primitives) if p.name != "identity"]
    count = len(base) ** 2
    if not base or count > _MAX_COMPOSED or count * np.asarray(inputs).size > _MAX_COMPOSED_VALUES:
        return []
    names = {p.name for p in primitives}
    out = []
    for i in base:
        for j in base:
            c = composition(primitives[i], primitives[j])
            if c.name not in names:
                names.add(c.name)
                out.append((i, j, c))
    return out


def compositions(primitives: Sequence[Primitive], inputs: np.ndarray) -> tuple[Primitive, ...]:
    """Every ordered pair `a then b` of the primitives (identity left out), where their number and outputs on
    `inputs` stay within bounds (none otherwise): what names a token that does two primitives' work."""
    return tuple(c for _, _, c in _pairs_of(primitives, inputs))


def candidate_outputs(primitives: Sequence[Primitive], inputs: np.ndarray, *,
                      compose: bool = True) -> tuple[tuple[Primitive, ...], np.ndarray]:
    """The primitives, then (with `compose`) their `compositions`, and all their outputs int32 [P, N, L] on the
    inputs; each composition reuses its first primitive's outputs (half the work of running it afresh)."""
    inputs = np.asarray(inputs, np.int32)
    single = primitive_outputs(primitives, inputs)
    pairs = _pairs_of(primitives, inputs) if compose else []
    if not pairs:
        return tuple(primitives), single
    composed = np.empty((len(pairs), *inputs.shape), np.int32)
    for k, (i, j, _) in enumerate(pairs):
        mid = single[i]
        bad = (mid < 0).any(axis=-1)
        composed[k] = primitives[j](np.where(bad[:, None], inputs, mid))
        composed[k][bad] = -1
    return tuple(primitives) + tuple(c for _, _, c in pairs), np.concatenate([single, composed])


def _row_ids(*arrays: np.ndarray) -> list[np.ndarray]:
    """For int arrays [..., N, L]: int ids [..., N], equal exactly where two rows (of any of the arrays) are equal."""
    flat = [np.ascontiguousarray(a, np.int32).reshape(-1, a.shape[-1]) for a in arrays]
    rows = np.concatenate(flat) if flat else np.zeros((0, 0), np.int32)
    if rows.shape[-1] == 0:
        ids = np.zeros(len(rows), np.int64)
    else:
        _, ids = np.unique(rows.view(np.dtype((np.void, 4 * rows.shape[-1]))).ravel(), return_inverse=True)
    out, at = [], 0
    for a in arrays:
        n = int(np.prod(a.shape[:-1]))
        out.append(ids.reshape(-1)[at : at + n].reshape(a.shape[:-1]))
        at += n
    return out


def agreements(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """float [S, P]: for each sequence and target, the fraction of probes whose outputs are identical.

    Args:
        outputs: int [S, N, L].
        targets: int [P, N, L].
    """
    outputs, targets = np.asarray(outputs), np.asarray(targets)
    out = np.zeros((len(outputs), len(targets)), np.float64)
    if outputs.shape[1] == 0 or not len(outputs) or not len(targets):
        return out
    a, b = _row_ids(outputs, targets)  # [S, N], [P, N]
    step = max(1, (1 << 24) // max(1, b.size))  # bounded memory: step x P x N comparisons at a time
    for start in range(0, len(a), step):
        out[start : start + step] = (a[start : start + step, None, :] == b[None]).mean(axis=-1)
    return out


def closest(scores: np.ndarray, names: Sequence[str], singles: int | None = None) -> tuple[str | None, float | None]:
    """The best-agreeing name of one row of `agreements` (the first on ties), or (None, None) without names.

    With `singles`, the first `singles` names (single primitives) win whenever one of them agrees on `NAMED` of
    the probes; the others (compositions) only name what no single primitive does.
    """
    if not len(names):
        return None, None
    if singles is not None and singles > 0:
        best = int(np.argmax(scores[:singles]))
        if scores[best] >= NAMED or singles >= len(names):
            return names[best], float(scores[best])
    best = int(np.argmax(scores))
    return names[best], float(scores[best])


# --- descriptions --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Description:
    """The best rule `y[i] = f(x[src(i)])` found for a sequence on the probes: a cyclic position rule and a value map.

    Attributes:
        offset: d: output position i reads input position (i - d) mod L (of the mirrored input when `mirrored`).
        mirrored: the input is read back to front first.
        value_map: (input value, output value) for every value seen at a source position.
        agreement: fraction of probes the rule reproduces exactly.
        text: e.g. `position i <- i-3, value v -> v+1 mod 10 on 97% of probes`.
    """

    offset: int
    mirrored: bool
    value_map: tuple[tuple[int, int], ...]
    agreement: float
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "mirrored": self.mirrored, "value_map": [list(p) for p in self.value_map],
                "agreement": round(self.agreement, 4), "text": self.text}


def _value_map(src: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source values seen and, for each, its most frequent output value (smallest on ties)."""
    s, v = src.ravel().astype(np.int64), y.ravel().astype(np.int64)
    span = int(max(v.max(initial=0), 0)) + 1
    keys, counts = np.unique(s * span + v, return_counts=True)
    ks, kv = keys // span, keys % span
    order = np.lexsort((kv, -counts, ks))  # per source value: most frequent output first, then the smallest
    ks, kv = ks[order], kv[order]
    first = np.ones(len(ks), bool)
    first[1:] = ks[1:] != ks[:-1]
    return ks[first], kv[first]


def _position_text(offset: int, mirrored: bool, L: int) -> str:
    if not mirrored:
        if offset == 0:
            return "positions kept"
        d = offset if offset <= L // 2 else offset - L
        return f"position i <- i{-d:+d} (mod {L})"
    c = (L - 1 + offset) % L
    return f"position i <- {L - 1}-i (reversed)" if c == L - 1 else f"position i <- ({c}-i) mod {L}"


def _values_text(keys: np.ndarray, vals: np.ndarray, values: int) -> str:
    if len(keys) == 0:
        return "no values"
    if np.array_equal(keys, vals):
        return "values kept"
    if len(set(vals.tolist())) == 1 and len(keys) > 1:
        return f"every value -> {int(vals[0])}"
    V = int(values)
    for c in range(1, V):
        if np.array_equal((keys + c) % V, vals):
            return f"value v -> v+{c} mod {V}" if c <= V // 2 else f"value v -> v-{V - c} mod {V}"
    if np.array_equal(V - 1 - keys, vals):
        return f"value v -> {V - 1}-v"
    for c in range(2, V):
        if np.array_equal((keys * c) % V, vals):
            return f"value v -> {c}*v mod {V}"
    pairs = [f"{int(k)}->{int(v)}" for k, v in zip(keys, vals) if k != v]
    shown = " ".join(pairs[:12]) + (" ..." if len(pairs) > 12 else "")
    return f"values {shown}"


def describe(inputs: np.ndarray, outputs: np.ndarray, values: int) -> Description:
    """The cyclic position rule (optionally mirrored) and value map that reproduce most probes.

    Tried: every offset d (all L of them up to L = 256, else -1, 0, 1), read forwards and backwards; for each, the
    value map taking every source value to its most frequent output. Ties go to kept values, then forwards, then
    the smallest move.

    Args:
        inputs: int [N, L] probe inputs.
        outputs: int [N, L] the sequence's outputs on them.
        values: V, the data alphabet (for `v+1 mod V` texts).
    """
    x, y = np.asarray(inputs), np.asarray(outputs)
    n, L = x.shape
    offsets = range(L) if L <= _MAX_OFFSETS else sorted({0, 1 % L, (L - 1) % L})
    best: tuple[tuple[float, ...], Description] | None = None
    for mirrored in (False, True):
        base = x[:, ::-1] if mirrored else x
        for d in offsets:
            src = np.roll(base, d, axis=-1)
            keys, vals = _value_map(src, y)
            pred = vals[np.searchsorted(keys, src)] if n else src  # every source value is a key
            rate = float(np.all(pred == y, axis=-1).mean()) if n else 0.0
            kept = np.array_equal(keys, vals)
            moved = min(d, L - d)
            rank = (rate, kept, not mirrored, -moved)
            if best is None or rank > best[0]:
                text = f"{_position_text(d, mirrored, L)}, {_values_text(keys, vals, values)} on {rate:.0%} of probes"
                pairs = tuple((int(k), int(v)) for k, v in zip(keys, vals))
                best = (rank, Description(int(d), mirrored, pairs, rate, text))
    assert best is not None
    return best[1]


# --- results -------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TokenMeaning:
    """What one token does on the probes.

    Attributes:
        token: the token id.
        skip: whether it is the skip token (an exact no-op, never executed).
        primitive: the closest ground-truth primitive (None when the family has none).
        agreement: that primitive's agreement on the probes (None likewise).
        description: the best position/value rule.
        equals: other single tokens that behave identically on every probe.
        text: the primitive in words (`shift1 then complement`, `Map (*2)`, else its name).
    """

    token: int
    skip: bool
    primitive: str | None
    agreement: float | None
    description: Description
    equals: tuple[int, ...] = ()
    text: str | None = None

    @property
    def named(self) -> bool:
        """Whether the primitive agrees on at least `NAMED` of the probes."""
        return self.agreement is not None and self.agreement >= NAMED

    @property
    def meaning(self) -> str:
        """The primitive's name when named; else the position/value rule where it fits `NAMED` of the probes;
        else `unnamed`, with the closest primitive where that agrees on at least half of them."""
        if self.skip:
            return "skip (no-op)"
        if self.named:
            return str(self.text or self.primitive)
        if self.description.agreement >= NAMED:
            return self.description.text
        if self.agreement is not None and self.agreement >= 0.5:
            return f"unnamed (closest {self.text or self.primitive})"
        return "unnamed"


@dataclasses.dataclass(frozen=True)
class PairTable:
    """Every ordered pair `a b` of non-skip tokens (a runs first); arrays are [k, k] over `tokens`.

    Attributes:
        tokens: row and column tokens.
        composed: agreement of `a b` with the composition of a's and b's primitives (NaN unless both are named).
        primitive: the primitive closest to `a b` (None without primitives), and `primitive_agreement` its rate.
        single: the single token (the skip token for the identity) closest to `a b`, `single_agreement` its rate.
    """

    tokens: tuple[int, ...]
    composed: np.ndarray
    primitive: tuple[tuple[str | None, ...], ...]
    primitive_agreement: np.ndarray
    single: np.ndarray
    single_agreement: np.ndarray

    @property
    def score(self) -> np.ndarray:
        """The heat map value: `composed` where both tokens are named, else `single_agreement`."""
        return np.where(np.isnan(self.composed), self.single_agreement, self.composed)


@dataclasses.dataclass(frozen=True)
class Semantics:
    """Everything probing found (see `analyze`).

    Attributes:
        inputs: int [N, L] probe inputs.
        sequences: the probed sequences; `outputs` int [S, N, L] their outputs.
        tokens: one `TokenMeaning` per token, in id order.
        pairs: the pair table.
        classes: equivalence classes (two members or more) of sequences identical on every probe, each sorted
            shortest first, classes in the order of their first member.
        primitives: names of the family's primitives, in order.
        sequence_primitive: per sequence, its closest primitive (or composition of two) and agreement.
        realized: per primitive that some probed sequence (not the empty one) agrees with on `NAMED` of the probes,
            those sequences, shortest first: how the language writes it.
        candidates: the primitives and compositions sequences were named by; `candidate_outputs` int [P, N, L]
            their outputs on the probes (the first `len(primitives)` are the primitives).
    """

    inputs: np.ndarray
    sequences: tuple[TokenSeq, ...]
    outputs: np.ndarray
    tokens: tuple[TokenMeaning, ...]
    pairs: PairTable
    classes: tuple[tuple[TokenSeq, ...], ...]
    primitives: tuple[str, ...]
    sequence_primitive: tuple[tuple[str | None, float | None], ...]
    realized: tuple[tuple[str, tuple[TokenSeq, ...]], ...] = ()
    candidates: tuple[Primitive, ...] = ()
    candidate_outputs: np.ndarray | None = None

    def index(self, seq: Sequence[int]) -> int:
        """Position of a probed sequence in `sequences`."""
        return self._index[tuple(seq)]

    @functools.cached_property
    def _index(self) -> dict[TokenSeq, int]:
        return {s: i for i, s in enumerate(self.sequences)}


def _order(seq: TokenSeq) -> tuple[int, TokenSeq]:
    return len(seq), seq


def alias_classes(sequences: Sequence[TokenSeq], outputs: np.ndarray) -> tuple[tuple[TokenSeq, ...], ...]:
    """Groups of two or more sequences whose outputs are identical on every probe, each sorted shortest first.

    Args:
        sequences: the sequences (include () to find those equal to the identity).
        outputs: int [S, N, L] their outputs.
    """
    groups: dict[bytes, list[TokenSeq]] = {}
    outputs = np.ascontiguousarray(outputs, np.int32)
    for seq, out in zip(sequences, outputs):
        groups.setdefault(out.tobytes(), []).append(tuple(seq))
    classes = [tuple(sorted(g, key=_order)) for g in groups.values() if len(g) > 1]
    return tuple(sorted(classes, key=lambda c: _order(c[0])))


def token_usage(programs: Sequence[Sequence[int]], vocab: int) -> np.ndarray:
    """int [vocab]: how often each token occurs in the programs."""
    counts = np.zeros(vocab, np.int64)
    for p in programs:
        for t in p:
            counts[int(t)] += 1
    return counts


def length_histogram(programs: Sequence[Sequence[int]]) -> dict[int, int]:
    """Program length -> number of programs of that length (sorted by length)."""
    return dict(sorted(Counter(len(p) for p in programs).items()))


# --- the analysis --------------------------------------------------------------------------------------------------


def analyze(execute: Executor, inputs: np.ndarray, *, vocab: int, skip: int, values: int,
            primitives: Sequence[Primitive] = (), length: int = 2, focus: Sequence[int] | None = None,
            compose: bool = True) -> Semantics:
    """Probe a language: every token, every ordered pair, and every sequence of up to `length` tokens of `focus`.

    All sequences run in one batched call of `execute` with one program width. A sequence is named by the
    primitive it agrees with most, or, where no primitive agrees on `NAMED` of the probes and `compose`, by the
    composition of two primitives it agrees with most (`shift1_complement`: shift1 then complement).

    Args:
        execute: the executor.
        inputs: int [N, L] probe inputs.
        vocab, skip: the language's K and skip token.
        values: V of the data (for descriptions).
        primitives: the family's ground-truth primitives (may be empty).
        length: longest probed sequence (at least 2).
        focus: the tokens sequences longer than 2 are made of (default: every non-skip token).
        compose: also name by compositions of two primitives (`compositions`).

    Returns:
        A `Semantics`.
    """
    inputs = np.asarray(inputs, np.int32)
    probed = probe_sequences(vocab, skip, length=max(2, length), focus=focus)
    sequences = ((),) + probed
    outputs = run_sequences(execute, sequences, inputs, skip=skip, width=max(2, length))
    single_names = tuple(p.name for p in primitives)
    candidates, targets = candidate_outputs(primitives, inputs, compose=compose)
    names = tuple(p.name for p in candidates)
    scores = agreements(outputs, targets)
    sequence_primitive = tuple(closest(row, names, len(single_names)) for row in scores)
    by_name = {p.name: p for p in candidates}
    index = {s: i for i, s in enumerate(sequences)}

    def out(seq: TokenSeq) -> np.ndarray:
        return outputs[index[seq]]

    singles = [(t,) if t != skip else () for t in range(vocab)]
    ids = _row_ids(outputs)[0]  # [S, N]: equal rows, equal ids
    meanings = []
    for t, seq in enumerate(singles):
        name, rate = sequence_primitive[index[seq]]
        same = tuple(u for u in range(vocab) if u != t and u != skip and t != skip
                     and np.array_equal(ids[index[seq]], ids[index[(u,)]]))
        text = by_name[name].description or name if name is not None else None
        meanings.append(TokenMeaning(t, t == skip, name, rate, describe(inputs, out(seq), values), same, text))

    tokens = tuple(t for t in range(vocab) if t != skip)
    k = len(tokens)
    composed = np.full((k, k), np.nan)
    prim_names: list[list[str | None]] = [[None] * k for _ in range(k)]
    prim_rate = np.full((k, k), np.nan)
    single = np.full((k, k), skip, np.int64)
    single_rate = np.zeros((k, k))
    token_rows = [index[s] for s in singles]  # the skip token's row is the empty program's: the identity
    pair_rows = np.array([[index[(a, b)] for b in tokens] for a in tokens]).reshape(-1)
    rates = (ids[pair_rows][:, None, :] == ids[token_rows][None]).mean(axis=-1).reshape(k, k, vocab)
    for i, a in enumerate(tokens):
        for j, b in enumerate(tokens):
            name, rate = sequence_primitive[index[(a, b)]]
            prim_names[i][j] = name
            prim_rate[i, j] = np.nan if rate is None else rate
            best = int(np.argmax(rates[i, j]))
            single[i, j], single_rate[i, j] = best, rates[i, j, best]
            ma, mb = meanings[a], meanings[b]
            if ma.named and mb.named:
                target = compose_primitives(by_name[str(ma.primitive)], by_name[str(mb.primitive)], inputs)
                composed[i, j] = agreements(out((a, b))[None], target[None])[0, 0]
    pairs = PairTable(tokens, composed, tuple(tuple(r) for r in prim_names), prim_rate, single, single_rate)

    classes = alias_classes(sequences, outputs)
    realized = []
    for p, name in enumerate(single_names):
        hits = [i for i in range(1, len(sequences)) if scores[i, p] >= NAMED]
        if hits:
            realized.append((name, tuple(sequences[i] for i in sorted(hits, key=lambda i: _order(sequences[i])))))
    return Semantics(inputs, sequences, outputs, tuple(meanings), pairs, classes, single_names, sequence_primitive,
                     tuple(realized), candidates, targets)
