"""`nlic run`: replay a program file on new inputs, with the trained model or with the exported executor.

The file is checked against the run's language first (fingerprint, vocabulary, skip token, maximum length).
`--trace` prints the interpreter's state after every token instead of the outputs; `--trace-out DIR` writes the
traces as `trace.json` and one heat map per input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlic.grammar.errors import DataError, escape
from nlic.runtime.files import atomic_write
from nlic.runtime.outputs import refuse_existing
from nlic.runtime.replay import jsonl, replay
from nlic.runtime.traces import LOW_CONFIDENCE, MAX_PLOTS, check_trace_dir, format_trace, write_traces

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
    parser.add_argument(
        "--trace", action="store_true",
        help="print, for each input, the state after every token (step, token, the likeliest value per position; "
        f"values with a probability below {LOW_CONFIDENCE:g} are listed with it) instead of the JSONL outputs",
    )
    parser.add_argument(
        "--trace-out", metavar="DIR",
        help=f"write DIR/trace.json (every input with its trace) and a heat map per input, DIR/<id>.png (at most "
        f"{MAX_PLOTS})",
    )
    parser.add_argument("--force", action="store_true",
                        help="overwrite an --out FILE or trace files in --trace-out DIR that exist")


def run(args: argparse.Namespace) -> int:
    if args.out:  # before replaying: a refusal costs nothing; never over the programs or inputs it reads
        refuse_existing([args.out], force=args.force, reads=[args.programs, *args.inputs], error=DataError,
                        hint="add --force to overwrite it, or write elsewhere with --out FILE")
    if args.trace_out:
        check_trace_dir(args.trace_out, force=args.force)  # before replaying: a refusal costs nothing
    traced = bool(args.trace or args.trace_out)
    rows = replay(args.run_dir, args.programs, args.inputs, program=args.program, artifact=args.artifact,
                  trace=traced, progress=True)
    plain = [{k: v for k, v in r.items() if k != "trace"} for r in rows]
    if args.trace_out:
        write_traces(rows, args.trace_out, force=args.force, log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.out:
        atomic_write(Path(args.out), jsonl(plain))
        print(escape(f"wrote {len(rows)} outputs to {args.out}"), file=sys.stderr)
    if args.trace:
        sys.stdout.write("\n".join(format_trace(r) for r in rows))
        sys.stdout.flush()
    elif not args.out:
        sys.stdout.write(jsonl(plain))
        sys.stdout.flush()
    return 0
