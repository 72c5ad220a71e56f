"""`nlic run`: replay a program file on new inputs, with the trained model or with the exported executor.

The file is checked against the run's language first (fingerprint, vocabulary, skip token, maximum length).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlic.runtime.files import atomic_write
from nlic.runtime.replay import jsonl, replay

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a trained run directory (the --out of nlic train)")
    parser.add_argument("programs", metavar="PROGRAMS", help="a program file (.nlp), e.g. written by nlic solve")
    parser.add_argument(
        "--inputs", action="append", required=True, metavar="FILE",
        help="JSONL of {\"id\": program id, \"input\": value} ('-' reads stdin), an ARC-style task file (.json, "
        "run with the program named like the file) or a directory of them; repeat for several",
    )
    parser.add_argument("--program", metavar="ID", help="run every input with this program (ids in inputs optional)")
    parser.add_argument("--out", metavar="FILE", help="write the JSONL outputs here (default: standard output)")
    parser.add_argument(
        "--artifact", metavar="BUILD_DIR",
        help="replay with the executor exported by `nlic compile` and RUN_DIR/executor_weights.npz, "
        "without building the model from Python code",
    )


def run(args: argparse.Namespace) -> int:
    rows = replay(args.run_dir, args.programs, args.inputs, program=args.program, artifact=args.artifact)
    text = jsonl(rows)
    if args.out:
        atomic_write(Path(args.out), text)
        print(f"wrote {len(rows)} outputs to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0
