"""`nlic train SPEC [--out DIR] [--steps N] [--resume] [--force]`: train a spec's model into a run directory.

Existing results are never overwritten without `--resume` or `--force`; Ctrl-C leaves a consistent checkpoint.
The run ends with its health verdict on stderr (`verdict: healthy`, or the check that failed and what to change;
`health.json` in the run directory), with or without `--no-progress`. `--processes N` trains as N local processes,
`--coordinator ...` / `--distributed` joins a multi-process run (`nlic.runtime.distributed`): process 0 writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlic.compiler import load_spec
from nlic.runtime import distributed
from nlic.runtime.flags import check_flag
from nlic.runtime.train import default_run_dir, train

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file (.yaml, .yml or .nls)")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<spec name>)")
    parser.add_argument("--steps", type=int, metavar="N", help="override training.steps (recorded in the locked spec)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    group.add_argument("--force", action="store_true", help="delete the run directory's results and start over")
    parser.add_argument("--no-progress", action="store_true",
                        help="print no progress (metrics are still written, and the verdict printed)")
    distributed.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    launched = distributed.join_or_launch(args, args.argv)
    if launched is not None:
        return launched
    spec = load_spec(args.spec)
    check_flag(args.steps, "--steps", "training.steps")
    out = Path(args.out) if args.out else default_run_dir(spec)
    main = distributed.is_main()
    if main:
        print(f"nlic train: writing {out}", flush=True)
    result = train(spec, out=out, steps=args.steps, resume=args.resume, force=args.force,
                   progress=False if args.no_progress else None)
    if not main:
        return 0
    loss = result.metrics.get("loss")
    tail = f", final loss {loss:.4f}" if loss is not None else ""
    print(f"nlic train: {result.step} steps{tail}; model in {out / 'model.eqx'}", flush=True)
    if args.no_progress and result.verdict is not None:
        # Progress printed it already otherwise; the verdict is a result, not progress.
        print(result.verdict.line(), file=sys.stderr, flush=True)
        for note in result.notes:
            print(note, file=sys.stderr, flush=True)
    return 0
