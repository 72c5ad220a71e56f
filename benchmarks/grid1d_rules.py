"""Accuracy per hidden rule of a `grid1d` predictions file: which rules (and compositions) a run solves.

`nlic solve RUN SPLIT --predictions FILE` scores each task of the split's evaluation sample; the family knows each
task's hidden program (`grid1d.generate` with the same seed), so the rows can be grouped by it: `move` by its amount
(`move2`), a composition as `first+second`.

Usage:
    python benchmarks/grid1d_rules.py SPEC SPLIT PREDICTIONS [--seed N]

SPEC is the run's spec (`RUN/spec.yaml`), SPLIT the split solved (id, ood, ood_comp, ...), PREDICTIONS the file
`nlic solve` wrote (JSONL rows with "id" and "correct"); `--seed` as given to `nlic solve --seed` (default the
spec's seed). Prints one line per rule: solved / tasks.

Measured (benchmarks/README.md, "Canonical colours"): grid1d_comp with canonical colours solves recolour 13/13 (0/13
without) and moves 2/17.
"""

from __future__ import annotations

import argparse
import collections
import sys

from nlic.compiler import load_spec
from nlic.compiler.families.grid1d import Step, generate
from nlic.compiler.seeds import derive_seed
from nlic.grammar.errors import DataError, Loc
from nlic.grammar.reading import MAX_DATA_BYTES, loads_json, read_text
from nlic.runtime.cli import guarded

__all__ = ["main", "rule_name"]


def rule_name(steps: tuple[Step, ...]) -> str:
    """A task's hidden program as one word: `flip`, `move2`, `recolour+move1`."""
    return "+".join(s.rule + (str(dict(s.args)["k"]) if s.rule == "move" else "") for s in steps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("spec")
    ap.add_argument("split")
    ap.add_argument("predictions")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    spec = load_spec(args.spec)
    if spec.task.family != "grid1d":
        raise DataError(f"task family '{spec.task.family}' is not grid1d", loc=Loc(args.spec),
                        hint="give the spec of a grid1d run")
    text = read_text(args.predictions, limit=MAX_DATA_BYTES, what="predictions file", error=DataError)
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row = loads_json(line, path=f"{args.predictions}:{n}", error=DataError)
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("correct"), bool):
            raise DataError("expected a row of nlic solve's predictions with \"id\" and \"correct\"",
                            loc=Loc(args.predictions, n), hint="solve a split with known outputs, e.g. id or ood")
        rows.append(row)
    if not rows:
        raise DataError("no predictions", loc=Loc(args.predictions), hint="give the file nlic solve --predictions wrote")
    seed = int(spec.seed if args.seed is None else args.seed)
    n = max(len(rows), int(spec.eval.tasks))
    _, programs = generate(dict(spec.task.params), args.split, n, int(spec.task.pairs),
                           seed=derive_seed(seed, "eval", args.split))
    want = [f"{args.split}-{i:04d}" for i in range(len(rows))]
    got = [r["id"] for r in rows]
    if got != want:
        raise DataError(f"the rows are not the tasks {want[0]}..{want[-1]} of split '{args.split}' in order",
                        loc=Loc(args.predictions), hint="give the split that nlic solve solved, without --tasks FILE")
    per: dict[str, list[bool]] = collections.defaultdict(list)
    for row, steps in zip(rows, programs):
        per[rule_name(steps)].append(row["correct"])
    solved = sum(sum(v) for v in per.values())
    print(f"{spec.name} {args.split}: {solved}/{len(rows)} = {solved / len(rows):.2f}")
    width = max(len(k) for k in per)
    for name, ok in sorted(per.items()):
        print(f"  {name:<{width}}  {sum(ok)}/{len(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
