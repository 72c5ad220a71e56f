"""The overwrite policy of every nlic command: an output that exists is replaced only when the user says so.

Commands check their targets before they do any work, so a refusal costs nothing and leaves every file as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from nlic.grammar.errors import CheckpointError, Diagnostic, Loc, NlicError

__all__ = ["refuse_existing", "refuse_file_in_the_way"]


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file (the same resolved path, or links to one existing file)."""
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_existing(
    paths: Iterable[str | os.PathLike[str]],
    *,
    force: bool,
    hint: str,
    error: type[NlicError] = CheckpointError,
    what: str = "file",
    reads: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Raise `error` naming every path of `paths` that exists, unless `force`; a directory or a special file (a
    device, pipe or socket) where a file is to be written, a file where its directory would be, two outputs that
    name one file, and an output that is one of the command's inputs are refused even with `force`.

    Args:
        paths: the files a command is about to write.
        force: the user asked to overwrite (`--force`).
        hint: how to fix it, in the command's own flags (e.g. "add --force to overwrite it, or --out FILE").
        error: the `NlicError` subclass of the command's domain.
        what: the noun in the message ("file", "build file", "results file").
        reads: the files the command reads ("-", standard input, is skipped).

    Raises:
        error: one diagnostic per path in the way, all at once.
    """
    diagnostics = []
    outputs = [Path(p) for p in paths]
    inputs = [Path(p) for p in reads if str(p) != "-"]
    for i, p in enumerate(outputs):
        if any(_same(p, q) for q in outputs[:i]):
            diagnostics.append(Diagnostic(Loc(str(p)), f"two outputs of this command are this one {what}",
                                          "give each output its own file name"))
        elif any(_same(p, q) for q in inputs):
            diagnostics.append(Diagnostic(Loc(str(p)), f"the output {what} is also an input of this command; "
                                          "refusing to write over it", "write the output elsewhere"))
    if diagnostics:
        raise error(diagnostics=diagnostics)
    blocked: set[Path] = set()
    for p in dict.fromkeys(outputs):
        above = _file_above(p.parent)
        if above is not None:  # found only when writing, after the work: `nlic solve --out spec.yaml/x.nlp`
            if above not in blocked:  # once for a file in the way of several outputs
                blocked.add(above)
                diagnostics.append(Diagnostic(Loc(str(above)), f"the output {what} {p} would be inside this file",
                                              "give a path in a directory"))
        elif p.is_dir():
            diagnostics.append(Diagnostic(Loc(str(p)), f"a directory is in the way of an output {what}",
                                          "give a file name"))
        elif p.exists() and not p.is_file():
            # A device, pipe or socket: an atomic write would rename a regular file over it (as root, over
            # /dev/null itself), and writing into it is not saving a result.
            diagnostics.append(Diagnostic(Loc(str(p)), f"the output {what} is a device, pipe or socket, not a "
                                          "regular file; refusing to replace it", "give the name of a regular file"))
        elif p.exists() and not force:
            diagnostics.append(Diagnostic(Loc(str(p)), f"the {what} already exists; refusing to replace it", hint))
    if diagnostics:
        raise error(diagnostics=diagnostics)


def refuse_file_in_the_way(
    directory: str | os.PathLike[str], *, what: str, hint: str, error: type[NlicError] = CheckpointError
) -> None:
    """Raise `error` when `directory`, or the nearest of its parents that exists, is not a directory: a command
    would find out only when it writes there, after its work (`nlic eval --out results.csv` trained every run).

    Args:
        directory: a directory a command is about to create or write into.
        what: its noun in the message ("results directory").
        hint: how to fix it, in the command's own flags.
    """
    path = Path(directory)
    above = _file_above(path)
    if above is not None:
        message = (f"a file is in the way of the {what}" if above == path
                   else f"the {what} {path} would be inside this file")
        raise error(message, loc=Loc(str(above)), hint=hint)


def _file_above(path: Path) -> Path | None:
    """`path`, or the nearest of its parents that exists, when that is not a directory (else None)."""
    above = path
    while not above.exists() and above != above.parent:
        above = above.parent
    return above if above.exists() and not above.is_dir() else None
