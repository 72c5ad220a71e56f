"""The `nlic` command line: one subcommand per module in `nlic.runtime.commands`, one error policy.

User errors (`NlicError`, missing files) print `path:line:col: error: message (hint)` and exit 2 without a
traceback; `--debug` shows tracebacks.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import errno
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import jax

from nlic.grammar.errors import NlicError, escape
from nlic.runtime import distributed
from nlic.runtime.commands import COMMANDS
from nlic.runtime.compile_cache import DEFAULT, enable_compile_cache, resolve_cache_dir

__all__ = ["main", "guarded", "COMMANDS"]

_NO_COMPILING = frozenset({"validate", "fmt"})  # commands that never compile: no cache folder to create


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlic", description="Compiler and runtime for neural program languages.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    where = resolve_cache_dir()
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--compile-cache", metavar="DIR",
                       help="keep compiled functions in DIR, so that the next compile of a spec loads them "
                            f"(now: {'off' if where is None else where}; env NLIC_COMPILE_CACHE=DIR or =off)")
    cache.add_argument("--no-compile-cache", action="store_true", help="compile everything afresh, write no cache")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_run=module.run)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nlic` console script; returns the exit code."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # what `--processes N` hands to the processes it launches (`nlic.runtime.distributed`)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    debug = args.debug or bool(os.environ.get("NLIC_DEBUG"))

    def run() -> int:
        if args.command not in _NO_COMPILING:
            enable_compile_cache(None if args.no_compile_cache else args.compile_cache or DEFAULT)
        return args._run(args)

    try:
        code = guarded(run, debug=debug)
    except Exception:
        if jax.distributed.is_initialized():
            traceback.print_exc()
            distributed.exit_now(1)
        raise
    if code and jax.distributed.is_initialized():
        distributed.exit_now(code)  # not jax's exit handler, which would wait for the others, then abort
    return code


_OS_HINTS = {
    errno.ENOSPC: "free some space, or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EDQUOT: "over the disk quota: free some space, or write elsewhere",
}


@contextlib.contextmanager
def _interrupts_reach_the_command() -> Any:
    """Deliver a Ctrl-C that lands in a garbage-collector callback (jax runs one at every collection) or in a
    `__del__` to the command's own code: Python would print it as "Exception ignored in ..." with a traceback and
    let the command run on to its end. Here it is raised again where the command runs, a moment later
    (`_thread.interrupt_main` from a timer thread: called at once it would raise inside this hook, where Python
    ignores it again); one that lands in such a callback again comes back here. A command that ends before the
    timer fires (a busy machine) is interrupted at its end: the interrupt is never lost, nor raised after it."""
    previous = sys.unraisablehook
    timers: list[threading.Timer] = []

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous(unraisable)
            return
        while True:
            try:
                again = threading.Timer(0.01, _thread.interrupt_main)
                again.daemon = True
                timers.append(again)
                again.start()
                return
            except KeyboardInterrupt:  # it came back before this hook returned: once more, later
                continue

    sys.unraisablehook = hook
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        sys.unraisablehook = previous
        for t in timers:  # a timer that fired has made its interrupt pending: raised here, at the next bytecode
            t.cancel()
            t.join()
        if timers and not interrupted:
            raise KeyboardInterrupt


def guarded(fn: Callable[[], Any], *, debug: bool = False) -> int:
    """Run `fn()` and return its exit code: bad input (an `NlicError`, a missing or unreadable path) prints its
    located message and gives 2, never a traceback; Ctrl-C gives 130, a closed pipe 0; `debug` re-raises instead.

    The `nlic` commands and the `benchmarks/` scripts (`sys.exit(guarded(main))`) share it.
    """
    try:
        with _interrupts_reach_the_command():
            return int(fn() or 0)
    except NlicError as e:
        if debug:
            raise
        print(e.render(), file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        if debug:
            raise
        where = e.filename if e.filename is not None else ""
        print(escape(f"{where}: error: {e.strerror or e} (check the path)"), file=sys.stderr)
        return 2
    except BrokenPipeError:  # an OSError too: `nlic ... | head` is not an error
        return 0
    except OSError as e:  # a full disk, a read-only file system...: the system's words, located, exit 2
        if debug:
            raise
        # No file name: standard output (`nlic run ... > /dev/full`); no ": error:" with nothing before it.
        where = f"{e.filename}: " if e.filename is not None else ""
        hint = _OS_HINTS.get(e.errno, "check the path and the disk")
        print(escape(f"{where}error: {e.strerror or e} ({hint})"), file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if not getattr(e, "reported", False):  # training says where its checkpoint is, and prints no second line
            print("interrupted", file=sys.stderr)
        return 130
    except (MemoryError, jax.errors.JaxRuntimeError) as e:
        # Out of memory (numpy's MemoryError, XLA's RESOURCE_EXHAUSTED) is what asking for too much gives: a
        # batch, a search or a task set larger than this machine holds. Other runtime errors are bugs: re-raised.
        if debug or (isinstance(e, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" not in str(e)):
            raise
        print(escape(f"error: out of memory ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}) "
                     "(ask for less at once: fewer tasks (-n), fewer search starts (--starts), a smaller "
                     "training.batch or model)"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
