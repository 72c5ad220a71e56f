"""Mining a learned language: frequent token n-grams of solved programs, chosen greedily by the tokens they save,
named by probing (`shift3 = t1 t2`), and written as macros (`alias NAME = t1 t2`) into shorter program files.

Programs are abbreviated as `nlic.grammar.program.format_programs` writes them: at each position the longest
macro whose tokens follow, else the token. Macros only change how a file is written, never what a program does.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nlic.grammar.program import Alias, Macro, ProgramFile
from nlic.runtime.inspection import NAMED, TokenSeq, agreements, closest

__all__ = [
    "MinedMacro",
    "SplitSaving",
    "Mining",
    "ngram_counts",
    "abbreviate",
    "abbreviated_length",
    "select_macros",
    "unique_name",
    "name_macros",
    "token_aliases",
    "mined_file",
]


@dataclasses.dataclass(frozen=True)
class MinedMacro:
    """One proposed macro.

    Attributes:
        name: its name in program files (a primitive's where it agrees on >= `NAMED` of the probes, else `m<i>`).
        tokens: the n-gram.
        uses: how often the abbreviated programs (all inspected splits) use it.
        saved: tokens it saves there (uses x (n - 1)).
        primitive: the closest ground-truth primitive (None without primitives), `agreement` its rate.
        consistency: fraction of probes where the n-gram as one program equals its tokens run one after the other
            (1.0: it behaves as the composition of its tokens' functions).
    """

    name: str
    tokens: TokenSeq
    uses: int
    saved: int
    primitive: str | None
    agreement: float | None
    consistency: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "tokens": list(self.tokens), "uses": self.uses, "saved": self.saved,
                "primitive": self.primitive,
                "agreement": None if self.agreement is None else round(self.agreement, 4),
                "consistency": round(self.consistency, 4)}


@dataclasses.dataclass(frozen=True)
class SplitSaving:
    """Tokens of one split's programs before and after abbreviation by the mined macros.

    Attributes:
        split: the split.
        before, after: tokens of its programs, written out and abbreviated.
        library: tokens of the macro bodies its abbreviated programs use (what the definitions cost).
        file: the mined program file, if written.
        bytes_before, bytes_after: sizes of the program file's canonical text without and with the mined aliases.
    """

    split: str
    before: int
    after: int
    file: str | None = None
    library: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    @property
    def shorter(self) -> float:
        """Fraction of program tokens saved (0 for an empty split); the definitions are not counted."""
        return 1.0 - self.after / self.before if self.before else 0.0

    @property
    def shorter_with_library(self) -> float:
        """Fraction of tokens saved when the macro definitions count too (the description length)."""
        return 1.0 - (self.after + self.library) / self.before if self.before else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "before": self.before, "after": self.after, "shorter": round(self.shorter, 4),
                "library": self.library, "shorter_with_library": round(self.shorter_with_library, 4),
                "bytes_before": self.bytes_before, "bytes_after": self.bytes_after, "file": self.file}


@dataclasses.dataclass(frozen=True)
class Mining:
    """What `--mine` found: macros ranked by tokens saved, token aliases, and the savings per split."""

    macros: tuple[MinedMacro, ...]
    aliases: tuple[tuple[int, str], ...]
    splits: tuple[SplitSaving, ...]

    def to_json(self) -> dict[str, Any]:
        return {"macros": [m.to_json() for m in self.macros],
                "aliases": [{"token": t, "name": n} for t, n in self.aliases],
                "splits": [s.to_json() for s in self.splits]}


def ngram_counts(programs: Iterable[Sequence[int]], *, max_n: int) -> Counter[TokenSeq]:
    """Occurrences (overlapping) of every n-gram with 2 <= n <= max_n in the programs."""
    counts: Counter[TokenSeq] = Counter()
    for p in programs:
        p = tuple(p)
        for n in range(2, min(max_n, len(p)) + 1):
            for i in range(len(p) - n + 1):
                counts[p[i : i + n]] += 1
    return counts


def abbreviate(tokens: Sequence[int], macros: Sequence[TokenSeq]) -> list[int | TokenSeq]:
    """`tokens` written with `macros`, as `format_programs` does: at each position the longest macro that follows
    (of equal ones, the first), else the token. Items are token ids or the macros used."""
    tokens = tuple(tokens)
    by_first: dict[int, list[TokenSeq]] = {}
    for m in sorted(dict.fromkeys(macros), key=len, reverse=True):  # stable: equal lengths keep their order
        by_first.setdefault(m[0], []).append(m)
    out: list[int | TokenSeq] = []
    i = 0
    while i < len(tokens):
        hit = next((m for m in by_first.get(tokens[i], ()) if tokens[i : i + len(m)] == m), None)
        out.append(hit if hit is not None else tokens[i])
        i += len(hit) if hit is not None else 1
    return out


def abbreviated_length(programs: Mapping[TokenSeq, int], macros: Sequence[TokenSeq]) -> int:
    """Total words of the programs (each counted with its multiplicity) written with `macros`."""
    return sum(len(abbreviate(p, macros)) * w for p, w in programs.items())


def select_macros(programs: Sequence[Sequence[int]], *, max_macros: int = 8, max_n: int | None = None,
                  min_saved: int = 2, shortlist: int = 24) -> list[TokenSeq]:
    """Greedily choose n-grams (n >= 2) that shorten the programs most, one at a time.

    Each round scores the `shortlist` n-grams with the most overlapping occurrences x (n - 1) by the description
    length with the macros so far plus that n-gram (the programs' total length written with them, plus each
    macro's body once), and keeps the best one if it saves at least `min_saved` tokens. Deterministic: ties go to the shorter n-gram, then the smaller token ids.

    Args:
        programs: the solved programs (token ids, no skip).
        max_macros: most macros chosen.
        max_n: longest n-gram (default: the longest program).
        min_saved: fewest tokens a new macro must save, its definition counted.
        shortlist: candidates scored exactly per round.

    Returns:
        The chosen n-grams, in the order chosen.
    """
    weights = Counter(tuple(p) for p in programs)
    if not weights:
        return []
    max_n = max(len(p) for p in weights) if max_n is None else max_n
    counts: Counter[TokenSeq] = Counter()
    for p, w in weights.items():
        for g, c in ngram_counts([p], max_n=max_n).items():
            counts[g] += c * w
    candidates = [g for g, c in counts.items() if c >= 2]
    chosen: list[TokenSeq] = []

    def cost(macros: list[TokenSeq]) -> int:
        # Description length: the programs written with the macros, plus each macro's definition once.
        return abbreviated_length(weights, macros) + sum(len(m) for m in macros)

    length = cost(chosen)
    while len(chosen) < max_macros:
        pool = sorted((g for g in candidates if g not in chosen),
                      key=lambda g: (-counts[g] * (len(g) - 1), len(g), g))[:shortlist]
        scored = sorted(((cost(chosen + [g]), len(g), g) for g in pool))
        if not scored or length - scored[0][0] < min_saved:
            break
        length, _, best = scored[0]
        chosen.append(best)
    return chosen


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`... : the first not in `taken` (which it is added to)."""
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def token_aliases(names: Mapping[int, str], taken: set[str] | None = None) -> tuple[tuple[int, str], ...]:
    """(token, unique name) for tokens named by a primitive, in token order; names get `_2`... where repeated."""
    taken = set() if taken is None else taken
    return tuple((t, unique_name(names[t], taken)) for t in sorted(names))


def name_macros(macros: Sequence[TokenSeq], outputs: np.ndarray, sequential: np.ndarray,
                primitive_outputs: np.ndarray, primitive_names: Sequence[str], programs: Sequence[Sequence[int]],
                taken: set[str], *, singles: int | None = None) -> tuple[MinedMacro, ...]:
    """Name and score the chosen macros; ranked by tokens saved (then as chosen).

    Args:
        macros: the chosen n-grams.
        outputs: int [M, N, L] each macro run as one program on the probes.
        sequential: int [M, N, L] each macro run one token at a time (`run_sequentially`).
        primitive_outputs: int [P, N, L] the family's primitives (then compositions of two) on the probes,
            `primitive_names` their names.
        programs: the programs the macros abbreviate (uses and savings are counted there).
        taken: names already used (token aliases); the macros' names are added.
        singles: how many of the names are single primitives, preferred where one agrees (`closest`).
    """
    uses: Counter[TokenSeq] = Counter()
    for p in programs:
        uses.update(item for item in abbreviate(p, macros) if isinstance(item, tuple))
    scores = agreements(outputs, primitive_outputs) if len(primitive_names) else np.zeros((len(macros), 0))
    found = []
    for i, m in enumerate(macros):
        primitive, rate = closest(scores[i], primitive_names, singles)
        consistency = float(np.all(outputs[i] == sequential[i], axis=-1).mean()) if outputs.shape[1] else 0.0
        found.append((m, primitive, rate, consistency))
    ranked = sorted(range(len(found)), key=lambda i: (-uses[found[i][0]] * (len(found[i][0]) - 1), i))
    out = []
    generated = 0
    for i in ranked:
        m, primitive, rate, consistency = found[i]
        if primitive is not None and rate is not None and rate >= NAMED:
            name = unique_name(primitive, taken)
        else:
            generated += 1
            while f"m{generated}" in taken:
                generated += 1
            name = unique_name(f"m{generated}", taken)
        out.append(MinedMacro(name, m, uses[m], uses[m] * (len(m) - 1), primitive, rate, consistency))
    return tuple(out)


def mined_file(pf: ProgramFile, macros: Sequence[MinedMacro], aliases: Sequence[tuple[int, str]]) -> ProgramFile:
    """`pf` with the token aliases and the macros that its programs use (in rank order); programs unchanged.

    Raises:
        ProgramError: a name is not valid in a program file (see `ProgramFile.with_macros`).
    """
    used = [m for m in macros if any(m.tokens == item for p in pf.programs
                                     for item in abbreviate(p.tokens, [x.tokens for x in macros]))]
    with_aliases = dataclasses.replace(pf, aliases=tuple(Alias(t, n) for t, n in sorted(aliases)), macros=())
    return with_aliases.with_macros([Macro(m.name, m.tokens) for m in used])
