"""`nlic compile SPEC [--out DIR]`: validate, build and XLA-compile a spec; print parameters, FLOPs and memory.

With `--out` (default build/<spec name>) also write the locked spec, summary.json and the exported executor; a
directory holding a build of another spec is refused unless --force (rebuilding the same spec rewrites it).
Compiled functions are kept in the compile cache (`nlic.runtime.compile_cache`), whose folder the output names.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nlic.compiler import compile_spec, format_summary, load_spec
from nlic.runtime.build import EXPORT_META_FILE, check_build_dir, write_build
from nlic.runtime.compile_cache import describe_compile_cache, resolve_cache_dir

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = resolve_cache_dir()
    parser.epilog = (f"Compiled functions are cached in {'(off)' if where is None else where}, so that compiling "
                     "the same spec again loads them instead; move or turn it off with "
                     "nlic --compile-cache DIR / --no-compile-cache or NLIC_COMPILE_CACHE=DIR / =off.")
    parser.add_argument("spec", metavar="SPEC", help="spec file (.yaml, .yml or .nls)")
    parser.add_argument("--out", metavar="DIR", help="build directory (default: build/<spec name>)")
    parser.add_argument("--no-write", action="store_true", help="compile and print the summary only")
    parser.add_argument("--force", action="store_true", help="replace a build of another spec in --out")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--optimize", action="store_true",
                        help="full XLA code generation, as training compiles (slower; estimates within 0.1%%)")


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    spec = load_spec(args.spec)
    out = None if args.no_write else (Path(args.out) if args.out else Path("build") / spec.name)
    if out is not None:
        check_build_dir(spec, out, force=args.force)  # before compiling: a refusal costs nothing
    compiled = compile_spec(spec, log=lambda s: print(s, file=sys.stderr, flush=True), optimize=args.optimize)
    summary = compiled.summary
    if out is not None:
        write_build(compiled, out, force=args.force)
    summary["total_s"] = round(time.perf_counter() - t0, 3)  # including spec loading and imports
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        print(describe_compile_cache(), file=sys.stderr)  # stdout holds JSON only
    else:
        print(format_summary(summary))
        print(describe_compile_cache())
        if out is not None:
            print(f"wrote {out}/ (spec.yaml, summary.json" + (", executor.jaxexport, executor.json, weights.npz)"
                                                               if (out / EXPORT_META_FILE).exists() else ")"))
    return 0
