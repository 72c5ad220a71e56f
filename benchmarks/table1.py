"""Reproduce the NLI paper's Table 1 on the shift suite: NLI and the four baselines, ID and OOD, one `nlic eval`.

Usage: `python benchmarks/table1.py [--splits shift_l,shift_p,comp_i] [--seeds 0,1,2] [--steps N] [--tasks N]
[--budgets 0,50] [--out results/table1] [--force]`; prints the markdown table (also in OUT/results.md, with CSV and plot).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlic.runtime.cli import main as nlic
from nlic.runtime.cli import guarded

__all__ = ["main", "spec_paths"]

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("ttt", "lpn", "dlpn")
"""Baselines per split. The in-context row is the `ttt` spec's `none` row: TTT is the in-context model (same
kind of network, same training) fine-tuned per task, so one trained model gives both rows and halves their cost;
`specs/baselines/*_in_context.yaml` train the same network on their own (`--in-context-spec` adds them)."""


def spec_paths(splits: list[str], *, in_context: bool = False) -> list[str]:
    """The NLI spec and the baseline specs of each shift split, in table order."""
    kinds = ("in_context", *KINDS) if in_context else KINDS
    paths = []
    for split in splits:
        paths.append(str(ROOT / "specs" / f"{split}.yaml"))
        paths.extend(str(ROOT / "specs" / "baselines" / f"{split}_{kind}.yaml") for kind in kinds)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="shift_l,shift_p,comp_i", help="shift splits (default: all three)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (default: 0,1,2 as in the paper)")
    parser.add_argument("--steps", type=int, help="override training.steps of every spec (default: the specs')")
    parser.add_argument("--tasks", type=int, help="tasks per split (default: the specs' eval.tasks = 100)")
    parser.add_argument("--budgets", default="0,50", help="search budgets (default: 0,50 = no search and the specs')")
    parser.add_argument("--out", default="results/table1", help="results directory")
    parser.add_argument("--runs", default="runs", help="parent of the run directories (reused when specs match)")
    parser.add_argument("--force", action="store_true", help="replace results already in --out")
    parser.add_argument("--in-context-spec", action="store_true",
                        help="also train the separate in_context specs (their 'none' row equals ttt's)")
    args = parser.parse_args(argv)

    command = ["eval", *spec_paths([s.strip() for s in args.splits.split(",") if s.strip()], in_context=args.in_context_spec),
               "--seeds", args.seeds, "--budgets", args.budgets, "--out", args.out, "--runs", args.runs]
    if args.steps is not None:
        command += ["--steps", str(args.steps)]
    if args.tasks is not None:
        command += ["--tasks", str(args.tasks)]
    if args.force:
        command.append("--force")
    print("nlic " + " ".join(command), file=sys.stderr, flush=True)
    return nlic(command)


if __name__ == "__main__":
    sys.exit(guarded(main))  # bad input: the located message and exit code 2, not a traceback
