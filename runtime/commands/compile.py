"""`nlic compile SPEC [--out DIR]`: validate, build and XLA-compile a spec; print parameters, FLOPs and memory.

With `--out` (default build/<spec name>) also write the locked spec, summary.json and the exported executor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file (.yaml, .yml or .nls)")
    parser.add_argument("--out", metavar="DIR", help="build directory (default: build/<spec name>)")
    parser.add_argument("--no-write", action="store_true", help="compile and print the summary only")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--optimize", action="store_true",
                        help="full XLA code generation, as training compiles (slower; same FLOP/memory estimates)")


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from nlic.compiler import load_spec
    from nlic.compiler.lower import compile_spec, format_summary

    t0 = time.perf_counter()
    spec = load_spec(args.spec)
    out = None if args.no_write else (Path(args.out) if args.out else Path("build") / spec.name)
    summary = compile_spec(spec, out=out, log=lambda s: print(s, file=sys.stderr, flush=True), optimize=args.optimize)
    summary["total_s"] = round(time.perf_counter() - t0, 3)  # including spec loading and imports
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(format_summary(summary))
        if out is not None:
            print(f"wrote {out}/ (spec.yaml, summary.json" + (", executor.jaxexport, executor.json, weights.npz)"
                                                               if (out / "executor.json").exists() else ")"))
    return 0
