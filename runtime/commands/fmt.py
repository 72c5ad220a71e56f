"""`nlic fmt FILE [--to yaml|nls] [--out FILE]`: print a spec as canonical text, or convert its syntax.

Data paths stay as the user wrote them; comments are not kept (`--comments` documents every field instead);
`--out` writes atomically (a temporary file renamed over the target).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlic.compiler.printer import SYNTAXES, format_spec
from nlic.compiler.validate import load_spec, syntax_of
from nlic.grammar.errors import Loc, SpecError
from nlic.runtime.files import atomic_write

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="FILE", help="spec file (.yaml, .yml or .nls)")
    parser.add_argument("--to", choices=SYNTAXES, help="output syntax (default: that of --out, else of FILE)")
    parser.add_argument("--out", metavar="FILE", help="write here instead of stdout (atomically)")
    parser.add_argument("--comments", action="store_true", help="document every field with a comment")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if FILE is not already in canonical form")


def run(args: argparse.Namespace) -> int:
    syntax = args.to or (syntax_of(args.out) if args.out else None) or syntax_of(args.spec)
    if args.out and syntax_of(args.out) not in (None, syntax):
        raise SpecError(f"--out {args.out} has the extension of another syntax than --to {syntax}",
                        loc=Loc(args.out), hint=f"name the output file .{syntax}")
    # Paths as written: the canonical text of a user's file must stay readable and portable.
    spec = load_spec(args.spec, resolve_paths=False)
    text = format_spec(spec, syntax, comments=args.comments)
    if args.check:
        with open(args.spec, encoding="utf-8-sig") as fh:
            same = fh.read() == text
        if not same:
            print(f"{args.spec}: not in canonical form (run nlic fmt {args.spec} --out {args.spec})", file=sys.stderr)
        return 0 if same else 1
    if args.out:
        if Path(args.out).is_dir():
            raise SpecError("--out is a directory", loc=Loc(args.out), hint="give a file name")
        atomic_write(args.out, text)
    else:
        sys.stdout.write(text)
    return 0
