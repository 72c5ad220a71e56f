"""The persistent compile cache: compiled functions and their traces kept on disk, so that a second `nlic compile`
or `nlic train` of a spec loads its train step and search instead of tracing and compiling them again.

Two kinds of entries share the folder: jax's compiled executables (below) and nlic's traces
(`nlic-trace-<key>-cache`: serialised `jax.export`s of the functions `nlic.compiler.tracecache` lowers, keyed by
the spec, the argument shapes, nlic's source and the library versions). Measured on the idle 2-core machine, a warm
`nlic compile specs/shift_l.yaml --no-write` took 3.5 s instead of 7 s (10 s cold), its compile phase 1.2 s.

The `nlic` commands turn it on at start-up (`runtime/cli.py`); importing nlic does not touch jax's configuration,
so a library user calls `enable_compile_cache()` to get it. Where it lives, first match wins:

1. `nlic --no-compile-cache` (off) or `nlic --compile-cache DIR`;
2. `NLIC_COMPILE_CACHE`: `off`, `0`, `false` or `no` turn it off, a path moves it (`on`, `1`, `true`: the default);
3. `NLIC_CACHE_DIR`;
4. `$XDG_CACHE_HOME/nlic/xla` (an absolute `XDG_CACHE_HOME` only, as the XDG spec asks), else `~/.cache/nlic/xla`.

JAX's cache key hashes the optimised StableHLO, the jax/jaxlib version, the backend, the compile options (so
`nlic compile`'s fast code generation and training's full one are distinct entries) and `XLA_FLAGS` as the
environment holds it when the key is made, which includes nlic's CPU instruction-set cap (`runtime/numerics.py`).
XLA refuses to load an entry compiled for CPU features the host lacks; jax then compiles afresh.

Entries are jax's own format (`<module>-<sha256>-cache`, interchangeable with `jax_compilation_cache_dir`), but
written atomically: a process killed while writing leaves no torn entry behind (jax writes in place), and a
damaged entry that jax could not load is replaced by the next compile instead of being kept forever. Past
`MAX_CACHE_BYTES` the least recently used entries are deleted; deleting the whole folder is always safe too. Anyone who can write to the cache can make nlic run code of their choosing, so it is
created owner-only (mode 0700).
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import jax
from jax._src import compilation_cache as _jax_cache  # the file cache jax uses (pinned version: constraints.txt)
from jax._src.compilation_cache_interface import CacheInterface
from jax.experimental.compilation_cache import compilation_cache as _jax_cache_api

from nlic.compiler import tracecache
from nlic.grammar.errors import NlicError, escape
from nlic.grammar.reading import read_bytes
from nlic.runtime.files import atomic_write

__all__ = [
    "CACHE_DIR_ENV",
    "CACHE_ENV",
    "DEFAULT",
    "MAX_CACHE_BYTES",
    "MIN_COMPILE_SECONDS",
    "OFF_VALUES",
    "CacheStats",
    "compile_cache_dir",
    "compile_cache_stats",
    "default_cache_dir",
    "describe_compile_cache",
    "enable_compile_cache",
    "resolve_cache_dir",
]

CACHE_ENV = "NLIC_COMPILE_CACHE"
"""`off`/`0`/`false`/`no` turn the cache off; a path moves it; `on`/`1`/`true` or empty keep the default."""
CACHE_DIR_ENV = "NLIC_CACHE_DIR"
"""The cache folder, when `NLIC_COMPILE_CACHE` names none."""
OFF_VALUES = ("off", "0", "false", "no")
_ON_VALUES = ("", "on", "1", "true", "yes")

MIN_COMPILE_SECONDS = 0.0
"""Functions that compile faster than this are not written (jax's default: 1 s). 0 caches every compile, the small
initialiser and eager functions too: measured on a tiny spec, a warm `nlic train` then took 8.4 s of CPU instead of
10.0 s, for 9 entries instead of 3 (1.2 MB either way)."""

MAX_CACHE_BYTES = 2 << 30
"""The cache's size bound: when `enable_compile_cache` finds more, it deletes the least recently used entries (those
of other jax or nlic versions among them) down to three quarters of it. A spec's functions take 1-10 MB."""

_MAX_ENTRY_BYTES = 4 << 30  # a compiled executable is megabytes; anything larger is not an entry jax wrote
_SUFFIX = "-cache"  # jax's entry names: `<module>-<sha256>-cache`; nothing else in the folder is touched


class _Default(enum.Enum):
    DEFAULT = "default"


DEFAULT = _Default.DEFAULT
"""`enable_compile_cache`'s default argument: the folder the environment names (or none when it turns it off)."""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The cache folder when neither flag nor `NLIC_COMPILE_CACHE` names one.

    Args:
        environ: the environment to read (default `os.environ`).

    Returns:
        `$NLIC_CACHE_DIR`, else `$XDG_CACHE_HOME/nlic/xla`, else `~/.cache/nlic/xla`; None when there is no
        home directory to put it in.
    """
    env = os.environ if environ is None else environ
    if env.get(CACHE_DIR_ENV, "").strip():
        return Path(env[CACHE_DIR_ENV].strip()).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "nlic" / "xla"
    home = env.get("HOME", "").strip()
    if not home:
        try:
            home = str(Path.home())
        except (RuntimeError, KeyError):  # no HOME and no password entry (some containers)
            return None
    return Path(home) / ".cache" / "nlic" / "xla"


def resolve_cache_dir(
    path: str | os.PathLike[str] | None | _Default = DEFAULT, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The folder `enable_compile_cache(path)` uses, or None for no cache (nothing is created or checked).

    Args:
        path: a folder (a flag's value: it beats the environment), None (off) or `DEFAULT` (the environment:
            `NLIC_COMPILE_CACHE`, then `default_cache_dir`).
        environ: the environment to read (default `os.environ`).
    """
    if path is None:
        return None
    if path is not DEFAULT:
        return Path(os.fspath(path)).expanduser().absolute()
    env = os.environ if environ is None else environ
    value = env.get(CACHE_ENV, "").strip()
    if _off_in(env):
        return None
    if value.lower() in _ON_VALUES:
        found = default_cache_dir(env)
        return None if found is None else found.absolute()
    return Path(value).expanduser().absolute()


def _off_in(environ: Mapping[str, str]) -> bool:
    return environ.get(CACHE_ENV, "").strip().lower() in OFF_VALUES


class CacheStats:
    """What this process's compile cache did: entries loaded, compiles that found none, entries written.

    Attributes:
        hits: entries read (a function loaded instead of compiled).
        misses: lookups that found no entry (a compile followed).
        writes: entries written.
        write_errors: entries that could not be written (the first one warns; writing then stops).
    """

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self.write_errors = 0


class _AtomicFileCache(CacheInterface):
    """jax's file cache (same names, same bytes) with atomic writes and bounded reads.

    jax's `LRUCache` writes an entry in place, so a process killed mid-write leaves a torn entry that jax then
    fails to load at every later run and never replaces (its `put` skips existing keys).
    """

    def __init__(self, path: Path, stats: CacheStats, *, prefix: str = "", limit: int = _MAX_ENTRY_BYTES) -> None:
        self._path = path
        self.stats = stats
        self._prefix = prefix  # `_TRACE_PREFIX`: the same store holds `tracecache`'s traces
        self._limit = limit
        self._writable = True
        self._lock = threading.Lock()  # `nlic compile` compiles on several threads

    def _file(self, key: str) -> Path:
        return self._path / f"{self._prefix}{key}{_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        try:
            data = read_bytes(self._file(key), limit=self._limit, what="compile cache entry",
                              error=NlicError, streams=False)
        except NlicError:  # missing (the usual miss), unreadable or not a file: compile instead
            with self._lock:
                self.stats.misses += 1
            return None
        with self._lock:
            self.stats.hits += 1
        with contextlib.suppress(OSError):  # its time of last use, for `_prune` (a read-only cache keeps the old one)
            os.utime(self._file(key))
        return data

    def put(self, key: str, value: bytes) -> None:
        # Called after a miss, or after jax failed to load the entry found: replace it either way.
        if not self._writable:
            return
        try:
            atomic_write(self._file(key), value)
        except OSError as e:
            with self._lock:
                self.stats.write_errors += 1
                first, self._writable = self._writable, False
            if first:
                _warn(f"cannot write to the compile cache {self._path}: {e.strerror or e}; not writing more entries "
                      f"in this run (free some space, or move the cache: NLIC_COMPILE_CACHE=DIR or =off)")
            return
        with self._lock:
            self.stats.writes += 1


_TRACE_PREFIX = "nlic-trace-"  # `tracecache`'s entries: serialised exports (0.1-2 MB), pruned with jax's
_MAX_TRACE_BYTES = 256 << 20


_state: dict[str, object] = {"path": None, "stats": CacheStats(), "traces": None}
_warned: set[str] = set()


def _warn(message: str) -> None:
    """Print `nlic: warning: message` on stderr, once per message and process."""
    if message in _warned:
        return
    _warned.add(message)
    print(escape(f"nlic: warning: {message}"), file=sys.stderr, flush=True)


def _usable(path: Path) -> str | None:
    """Creates `path` (owner-only) and checks that a file can be written in it; returns why not, or None."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return e.strerror or str(e)
    return None


def _prune(path: Path, max_bytes: int) -> int:
    """Deletes the least recently used entries of the cache in `path` until they hold at most 3/4 of `max_bytes`,
    when they hold more than `max_bytes`; returns how many were deleted."""
    entries = []
    with contextlib.suppress(OSError), os.scandir(path) as it:
        for e in it:
            if e.name.endswith(_SUFFIX) and e.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    st = e.stat(follow_symlinks=False)
                    entries.append((st.st_mtime, st.st_size, e.path))
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return 0
    deleted = 0
    for _, size, name in sorted(entries):
        if total <= max_bytes * 3 // 4:
            break
        with contextlib.suppress(OSError):  # another process may have deleted it already
            os.unlink(name)
            deleted += 1
        total -= size
    return deleted


def _install(path: Path | None) -> None:
    """Points jax at `path` (None: no persistent cache) and hands it nlic's atomic file cache."""
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
        jax.config.update("jax_compilation_cache_dir", None)
    else:
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    # jax decides once per process whether the cache is used and opens it once: start over with the new setting.
    _jax_cache_api.reset_cache()
    if path is not None and hasattr(_jax_cache, "_cache") and hasattr(_jax_cache, "_cache_initialized"):
        stats = CacheStats()
        _state["stats"] = stats
        with _jax_cache._cache_initialized_mutex:
            _jax_cache._cache = _AtomicFileCache(path, stats)
            _jax_cache._cache_initialized = True
    traces = (None if path is None
              else _AtomicFileCache(path, CacheStats(), prefix=_TRACE_PREFIX, limit=_MAX_TRACE_BYTES))
    tracecache.set_trace_store(traces)
    _state["traces"] = traces
    _state["path"] = path


def enable_compile_cache(path: str | os.PathLike[str] | None | _Default = DEFAULT) -> Path | None:
    """Turn on jax's persistent compilation cache in nlic's folder (or turn it off); idempotent.

    Every compile of this process is then looked up there first and written there after (see the module
    docstring for the key). The `nlic` commands call it at start-up.

    Args:
        path: the folder; None turns the cache off (jax's own cache too); `DEFAULT`: the folder the environment
            names (`NLIC_COMPILE_CACHE`, `NLIC_CACHE_DIR`, `XDG_CACHE_HOME`, `~/.cache/nlic/xla`), or off.

    Returns:
        The folder in use, or None when the cache is off. A folder that cannot be created or written to prints
        one warning on stderr and leaves the cache off: nothing else fails.
    """
    target = resolve_cache_dir(path)
    if target is None and path is DEFAULT and not _off_in(os.environ):
        _warn("no home folder for the compile cache; compiling without it (set NLIC_COMPILE_CACHE=DIR)")
    if target is not None:
        why = _usable(target)
        if why is not None:
            _warn(f"cannot use the compile cache {target}: {why}; compiling without it "
                  f"(use a writable folder: nlic --compile-cache DIR or NLIC_COMPILE_CACHE=DIR; =off turns it off)")
            target = None
    wanted = None if target is None else str(target)
    if target != _state["path"] or jax.config.jax_compilation_cache_dir != wanted:  # changed, here or elsewhere
        if target is not None:
            _prune(target, MAX_CACHE_BYTES)
        _install(target)
    return target


def compile_cache_dir() -> Path | None:
    """The folder `enable_compile_cache` set in this process, or None (never enabled, off, or unusable)."""
    path = _state["path"]
    return path if isinstance(path, Path) else None


def compile_cache_stats() -> CacheStats:
    """Hits, misses and writes of the compile cache since `enable_compile_cache` last changed it."""
    stats = _state["stats"]
    assert isinstance(stats, CacheStats)
    return stats


def describe_compile_cache() -> str:
    """One line for command output: where the cache is and what this process found and wrote in it."""
    path = compile_cache_dir()
    if path is None:
        return "compile cache: off"
    s = compile_cache_stats()
    t = _state["traces"]
    traces = (f"; traces: {t.stats.hits} loaded, {t.stats.writes} written"
              if isinstance(t, _AtomicFileCache) and (t.stats.hits or t.stats.writes) else "")
    return escape(f"compile cache: {path} ({s.hits} loaded, {s.writes} written{traces})")
