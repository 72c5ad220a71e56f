"""Reproducible CPU numerics: the same spec and seed train the same weights on any x86-64 machine.

XLA compiles CPU code for the host's instruction set, and AVX-512 code rounds differently from AVX2 code, so two
machines with the same versions trained different languages from one seed (measured: capping this AVX2 machine at
AVX or SSE4.2 changes a tiny run's fingerprint; capping it at AVX2 does not). nlic therefore caps XLA's CPU code at
AVX2 on x86-64, which every x86-64 server of the last decade has, unless `NLIC_CPU_ISA` names another level
(`native` lifts the cap) or `XLA_FLAGS` already sets `--xla_cpu_max_isa`. It must run before jax creates its CPU
client, which `nlic.runtime` ensures by calling it on import.
"""

from __future__ import annotations

import os
import platform

__all__ = ["CPU_ISA_DEFAULT", "cap_cpu_isa"]

CPU_ISA_DEFAULT = "AVX2"
_X86 = ("x86_64", "amd64", "i686", "x86")


def cap_cpu_isa(environ: dict[str, str] | None = None) -> str | None:
    """Add `--xla_cpu_max_isa=<level>` to `XLA_FLAGS` (x86 only); returns the level set, or None.

    Args:
        environ: the environment to change (default `os.environ`; subprocesses inherit the flag).
    """
    env = os.environ if environ is None else environ
    level = env.get("NLIC_CPU_ISA", CPU_ISA_DEFAULT).strip()
    flags = env.get("XLA_FLAGS", "")
    if not level or level.lower() == "native" or "--xla_cpu_max_isa" in flags:
        return None
    if platform.machine().lower() not in _X86:
        return None
    env["XLA_FLAGS"] = f"{flags} --xla_cpu_max_isa={level}".strip()
    return level
