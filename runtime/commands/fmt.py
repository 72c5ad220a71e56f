"""`nlic fmt FILE [--to yaml|nls] [--out FILE | --in-place]`: print a spec as canonical text, or convert its syntax.

Data paths stay as the user wrote them; comments are not kept (`--comments` documents every field instead);
`--out` and `--in-place` write atomically (a temporary file renamed over the target); `--out` refuses a file that
exists unless `--force`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nlic.compiler.printer import SYNTAXES, format_spec
from nlic.compiler.spec import ROW_GRID_DEFAULTS
from nlic.compiler.validate import load_spec, parse_spec, read_spec_text, syntax_of, value_at
from nlic.grammar.errors import Loc, SpecError, escape
from nlic.runtime.files import atomic_write
from nlic.runtime.outputs import refuse_existing

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="FILE", help="spec file (.yaml, .yml or .nls)")
    parser.add_argument("--to", choices=SYNTAXES, help="output syntax (default: that of --out, else of FILE)")
    parser.add_argument("--out", metavar="FILE", help="write here instead of stdout (atomically; a new file)")
    parser.add_argument("--in-place", action="store_true",
                        help="rewrite FILE in canonical form (atomically; its comments are not kept)")
    parser.add_argument("--force", action="store_true", help="let --out overwrite a file that exists")
    parser.add_argument("--comments", action="store_true", help="document every field with a comment")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if FILE is not already in canonical form")


def _check_flags(args: argparse.Namespace) -> None:
    if args.in_place and (args.out or args.check):
        flag = "--out" if args.out else "--check"
        raise SpecError(f"--in-place and {flag} contradict each other", loc=Loc("--in-place"), hint="drop one")
    own = syntax_of(args.spec)
    if args.in_place and args.to and own not in (None, args.to):
        raise SpecError(f"--in-place cannot rewrite {args.spec} in another syntax (--to {args.to})",
                        loc=Loc("--to"), hint=f"convert with --out FILE.{args.to} instead")


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    # --in-place through a link rewrites the file it names: replacing the link itself left the file as it was and
    # the link a copy.
    target = os.path.realpath(args.spec) if args.in_place else args.out
    syntax = args.to or (syntax_of(target) if target else None) or syntax_of(args.spec)
    if args.out and syntax_of(args.out) not in (None, syntax):
        raise SpecError(f"--out {args.out} has the extension of another syntax than --to {syntax}",
                        loc=Loc(args.out), hint=f"name the output file .{syntax}")
    # Paths as written: the canonical text of a user's file must stay readable and portable.
    spec = load_spec(args.spec, resolve_paths=False)
    text = format_spec(spec, syntax, comments=args.comments)
    # A field left out takes its data's default where that differs from the schema's (`ROW_GRID_DEFAULTS`): one
    # the file writes at the schema's default is written out, not left out, so that the text means what it did.
    again = parse_spec(text, args.spec, syntax, base_dir=Path(args.spec).resolve().parent, resolve_paths=False)
    differs = frozenset(n for n, _, _ in ROW_GRID_DEFAULTS if value_at(again, n) != value_at(spec, n))
    if differs:
        text = format_spec(spec, syntax, comments=args.comments, keep=differs)
    if args.check:
        same = read_spec_text(args.spec) == text
        if not same:
            print(escape(f"{args.spec}: not in canonical form (run nlic fmt {args.spec} --in-place)"), file=sys.stderr)
        return 0 if same else 1
    if args.out:
        if Path(args.out).is_dir():
            raise SpecError("--out is a directory", loc=Loc(args.out), hint="give a file name")
        refuse_existing([args.out], force=args.force, error=SpecError,
                        hint=f"add --force to overwrite it, or --in-place to rewrite {args.spec} itself"
                        if Path(args.out).resolve() == Path(args.spec).resolve() else "add --force to overwrite it")
    if target:
        atomic_write(target, text)
    else:
        sys.stdout.write(text)
    return 0
