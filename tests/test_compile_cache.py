"""Tests of the persistent compile cache: where it is (flags, environment), off means no files, a second compile in a
fresh process loads what the first wrote, an unusable folder only warns, and cached code trains the same weights."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from test_train import run_cli, tiny_text

from nlic.runtime import cli, compile_cache, numerics
from nlic.runtime.compile_cache import (
    DEFAULT,
    compile_cache_dir,
    default_cache_dir,
    describe_compile_cache,
    enable_compile_cache,
    resolve_cache_dir,
)


@pytest.fixture
def session_cache():
    """Puts the session's cache back after a test that moves or disables it in this process."""
    before = compile_cache_dir()
    yield
    enable_compile_cache(before)


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*-cache")) if folder.is_dir() else []


# --- where the cache is --------------------------------------------------------------------------------------


def test_default_folder_follows_nlic_cache_dir_then_xdg_then_home(tmp_path):
    home = str(tmp_path / "home")
    assert default_cache_dir({"HOME": home}) == Path(home) / ".cache" / "nlic" / "xla"
    assert default_cache_dir({"HOME": home, "XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/nlic/xla")
    assert default_cache_dir({"HOME": home, "XDG_CACHE_HOME": "rel"}) == Path(home) / ".cache" / "nlic" / "xla"
    assert default_cache_dir({"HOME": home, "XDG_CACHE_HOME": "/xdg", "NLIC_CACHE_DIR": "/mine"}) == Path("/mine")


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no", " off "])
def test_environment_turns_it_off(value):
    assert resolve_cache_dir(DEFAULT, {"NLIC_COMPILE_CACHE": value, "HOME": "/h"}) is None


def test_flag_beats_environment_beats_default(tmp_path):
    env = {"HOME": "/h", "NLIC_CACHE_DIR": "/dir"}
    assert resolve_cache_dir(DEFAULT, env) == Path("/dir")
    assert resolve_cache_dir(DEFAULT, {**env, "NLIC_COMPILE_CACHE": "/moved"}) == Path("/moved")
    assert resolve_cache_dir(DEFAULT, {**env, "NLIC_COMPILE_CACHE": "on"}) == Path("/dir")
    off = {**env, "NLIC_COMPILE_CACHE": "off"}
    assert resolve_cache_dir(tmp_path / "flag", off) == tmp_path / "flag"  # --compile-cache DIR
    assert resolve_cache_dir(None, {**env, "NLIC_COMPILE_CACHE": "/moved"}) is None  # --no-compile-cache


def test_cli_flags_reach_enable_compile_cache(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli, "enable_compile_cache", calls.append)
    missing = str(tmp_path / "missing.yaml")
    assert cli.main(["--compile-cache", str(tmp_path / "c"), "compile", missing]) == 2
    assert cli.main(["--no-compile-cache", "compile", missing]) == 2
    assert cli.main(["compile", missing]) == 2
    assert calls == [str(tmp_path / "c"), None, DEFAULT]
    assert cli.main(["validate", missing]) == 2 and len(calls) == 3  # commands that never compile create nothing
    with pytest.raises(SystemExit) as e:
        cli.main(["--compile-cache", "x", "--no-compile-cache", "compile", missing])
    assert e.value.code == 2


def test_enable_is_idempotent_and_off_turns_jax_cache_off(tmp_path, session_cache):
    first = enable_compile_cache(tmp_path / "a")
    stats = compile_cache.compile_cache_stats()
    assert first == tmp_path / "a" and enable_compile_cache(tmp_path / "a") == first
    assert compile_cache.compile_cache_stats() is stats  # nothing was reset
    assert jax.config.jax_compilation_cache_dir == str(first)
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == oct(0o700)  # others cannot plant code in it
    assert enable_compile_cache(None) is None and compile_cache_dir() is None
    assert jax.config.jax_compilation_cache_dir is None and not jax.config.jax_enable_compilation_cache
    assert describe_compile_cache() == "compile cache: off"


def test_off_writes_nothing(tmp_path, session_cache):
    enable_compile_cache(tmp_path)
    jax.jit(lambda x: x * 3 + 1)(jnp.arange(5.0)).block_until_ready()
    written = _entries(tmp_path)
    assert written  # on: even a function this small is written (MIN_COMPILE_SECONDS = 0)
    enable_compile_cache(None)
    jax.jit(lambda x: x * 5 - 2)(jnp.arange(7.0)).block_until_ready()
    assert _entries(tmp_path) == written and sorted(tmp_path.iterdir()) == written


def test_prune_deletes_the_least_recently_used_entries_and_nothing_else(tmp_path):
    for i in range(5):
        entry = tmp_path / f"jit_f-{i}-cache"
        entry.write_bytes(b"x" * 100)
        os.utime(entry, (1000 + i, 1000 + i))
    (tmp_path / "notes.txt").write_bytes(b"y" * 1000)  # a user's folder may hold other files
    assert compile_cache._prune(tmp_path, 500) == 0  # within the bound: nothing to do
    assert compile_cache._prune(tmp_path, 300) == 3  # down to 3/4 of the bound, oldest first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jit_f-3-cache", "jit_f-4-cache", "notes.txt"]


def test_unusable_folder_warns_once_and_leaves_the_cache_off(tmp_path, capsys, session_cache):
    (tmp_path / "file").write_text("")
    bad = tmp_path / "file" / "cache"  # under a regular file: cannot be created, even by root
    assert enable_compile_cache(bad) is None and enable_compile_cache(bad) is None
    err = capsys.readouterr().err
    assert err.count("warning: cannot use the compile cache") == 1 and str(bad) in err


def test_isa_cap_is_not_claimed_once_jax_has_started(monkeypatch):
    jnp.zeros(1).block_until_ready()  # this process's backend exists: XLA_FLAGS cannot change its code any more
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("XLA_FLAGS", "--xla_something=1")
    monkeypatch.delenv("NLIC_CPU_ISA", raising=False)
    with pytest.warns(RuntimeWarning, match="not capped at AVX2"):
        assert numerics.cap_cpu_isa() is None
    assert os.environ["XLA_FLAGS"] == "--xla_something=1"  # env.json and the cache key tell the truth
    env = {"XLA_FLAGS": ""}  # another process's environment: it starts its own backend
    assert numerics.cap_cpu_isa(env) == "AVX2" and env["XLA_FLAGS"] == "--xla_cpu_max_isa=AVX2"


# --- the CLI, in fresh processes -------------------------------------------------------------------------------


def _compile(tmp_path: Path, cache: Path) -> tuple[float, str, str]:
    r = run_cli(tmp_path, "compile", "spec.yaml", "--no-write", env={"NLIC_COMPILE_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr
    seconds = float(re.search(r"total ([\d.]+) s", r.stdout).group(1))  # tracing and compiling, imports excluded
    return seconds, r.stdout, r.stderr


def _traces(folder: Path) -> list[Path]:
    return sorted(folder.glob("nlic-trace-*-cache")) if folder.is_dir() else []


def test_second_compile_in_a_fresh_process_loads_the_first_ones_functions_and_traces(tmp_path):
    (tmp_path / "spec.yaml").write_text(tiny_text(steps=2))
    cache = tmp_path / "cache"
    cold, out, _ = _compile(tmp_path, cache)
    written, traces = _entries(cache), _traces(cache)
    n = len(written) - len(traces)  # jax's executables
    assert n >= 3 and len(traces) >= 3
    assert f"compile cache: {cache} (0 loaded, {n} written; traces: 0 loaded, {len(traces)} written)" in out
    used = [p.stat().st_mtime for p in written]
    warm, out, log = _compile(tmp_path, cache)
    assert f"compile cache: {cache} ({n} loaded, 0 written; traces: {len(traces)} loaded, 0 written)" in out
    assert _entries(cache) == written and "from the trace store" in log
    assert all(p.stat().st_mtime > t for p, t in zip(written, used))  # marked as used: pruned last
    assert warm < 0.5 * cold, (cold, warm)


def test_code_loaded_from_the_cache_trains_the_same_weights(tmp_path):
    (tmp_path / "spec.yaml").write_text(tiny_text(steps=2))
    cache = tmp_path / "cache"
    fingerprints = []
    for i in range(2):  # compiled (and written), then loaded
        r = run_cli(tmp_path, "train", "spec.yaml", "--out", f"run{i}", "--no-progress",
                    env={"NLIC_COMPILE_CACHE": str(cache)})
        assert r.returncode == 0, r.stderr
        fingerprints.append(json.loads((tmp_path / f"run{i}" / "model.json").read_text())["fingerprint"])
        if i == 0:
            written = _entries(cache)
            assert _traces(cache)  # the train step's
    assert written and _entries(cache) == written  # the second run traced and compiled nothing new
    assert fingerprints[0] == fingerprints[1]


# Imports nlic, shows jax's cache settings, then runs the CLI: one process for two checks (each costs seconds).
IMPORT_THEN_CLI = """\
import sys, jax, nlic.compiler, nlic.runtime
print("jax cache:", jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
from nlic.runtime.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_importing_nlic_enables_nothing_and_an_unusable_folder_only_warns(tmp_path):
    (tmp_path / "spec.yaml").write_text("name: tiny\ntask: {family: shift, params: {split: shift_l, length: 12}}\n")
    (tmp_path / "file").write_text("")
    env = {**os.environ, "NLIC_COMPILE_CACHE": str(tmp_path / "file" / "c")}  # under a file: unusable, even by root
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    r = subprocess.run([sys.executable, "-c", IMPORT_THEN_CLI, "data", "show", "spec.yaml", "-n", "1"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("jax cache: None 1.0\n")  # importing changed nothing; only the CLI turns it on
    assert r.stderr.count("warning") == 1 and "cannot use the compile cache" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stdout.splitlines()) > 1  # the command's own output
