"""`nlic validate SPEC...`: check specs and report every error of each at once.

Prints one OK line per valid spec (name, kind, family, K, T); errors go to stderr as `path:line:col: error: ...`.
"""

from __future__ import annotations

import argparse
import sys

from nlic.compiler.families import codec_of
from nlic.compiler.identity import spec_hash
from nlic.compiler.validate import is_row_grid, load_spec
from nlic.grammar.errors import NlicError

__all__ = ["add_arguments", "run", "summary"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (.yaml, .yml or .nls)")


def summary(path: str, spec) -> str:
    """The one-line description of a valid spec; for one-row grid data, that the fields it leaves out take the
    grid defaults (`ROW_GRID_DEFAULTS`)."""
    grids = "; one-row grids: fields left out take the grid defaults, see nlic fmt --comments" \
        if is_row_grid(codec_of(spec)) else ""
    return (
        f"ok {path}: {spec.name} (kind {spec.model.kind}, family {spec.task.family}, "
        f"K={spec.language.vocab}, T={spec.language.length}, hash {spec_hash(spec)[:12]}{grids})"
    )


def run(args: argparse.Namespace) -> int:
    """Validate every spec, even after a failing one; exit 2 if any failed."""
    failed = None
    for path in args.specs:
        try:
            spec = load_spec(path)
        except NlicError as e:
            if len(args.specs) == 1:
                raise  # the CLI prints it and exits 2 (or shows the traceback under --debug)
            print(e.render(), file=sys.stderr)
            failed = e
            continue
        print(summary(path, spec))
    return 2 if failed is not None else 0
