"""Reproducible CPU numerics: the same spec and seed train the same weights on any x86-64 machine.

XLA compiles CPU code for the host's instruction set, and AVX-512 code rounds differently from AVX2 code, so two
machines with the same versions trained different languages from one seed (measured: capping this AVX2 machine at
AVX or SSE4.2 changes a tiny run's fingerprint; capping it at AVX2 does not). nlic therefore caps XLA's CPU code at
AVX2 on x86-64, which every x86-64 server of the last decade has, unless `NLIC_CPU_ISA` names another level
(`native` lifts the cap) or `XLA_FLAGS` already sets `--xla_cpu_max_isa`. It must run before jax creates its CPU
client, which `nlic.runtime` ensures by calling it on import; if jax ran code before that import, the cap cannot
apply any more, so it is not written into `XLA_FLAGS` either (a warning says so): `env.json` and the compile
cache's key (`runtime/compile_cache.py`, which hashes `XLA_FLAGS`) then describe the code XLA really generates.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings

__all__ = ["CPU_ISA_DEFAULT", "cap_cpu_isa"]

CPU_ISA_DEFAULT = "AVX2"
_X86 = ("x86_64", "amd64", "i686", "x86")


def cap_cpu_isa(environ: dict[str, str] | None = None) -> str | None:
    """Add `--xla_cpu_max_isa=<level>` to `XLA_FLAGS` (x86 only); returns the level set, or None.

    Args:
        environ: the environment to change (default `os.environ`; subprocesses inherit the flag). For
            `os.environ`, nothing is set (and a warning is given) when this process's jax backend already exists.
    """
    env = os.environ if environ is None else environ
    level = env.get("NLIC_CPU_ISA", CPU_ISA_DEFAULT).strip()
    flags = env.get("XLA_FLAGS", "")
    if not level or level.lower() == "native" or "--xla_cpu_max_isa" in flags:
        return None
    if platform.machine().lower() not in _X86:
        return None
    if environ is None and _backend_started():
        warnings.warn(f"jax's CPU backend started before nlic.runtime was imported, so XLA's CPU code is not capped at "
                      f"{level} and trained weights may differ from other machines' (import nlic.runtime before "
                      "running jax code)", RuntimeWarning, stacklevel=3)
        return None
    env["XLA_FLAGS"] = f"{flags} --xla_cpu_max_isa={level}".strip()
    return level


def _backend_started() -> bool:
    """Whether this process's jax already created its backends (which read `XLA_FLAGS` once, when created)."""
    bridge = sys.modules.get("jax._src.xla_bridge")  # not imported: jax cannot have started
    started = getattr(bridge, "backends_are_initialized", None)
    return bool(started()) if callable(started) else False
