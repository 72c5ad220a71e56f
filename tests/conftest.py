"""Shared test setup: strict JAX flags, CPU only, and a `getkey` fixture. nlic is imported late, in the tests."""

import os
import tempfile

from nlic.compiler.families.deepcoder import find_data_dir
from nlic.grammar.errors import DataError

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests run tiny models whose wall time is almost all XLA compilation; cheaper code generation roughly halves it
# (measured on the train/solve tests). Subprocesses started by tests inherit this.
_FAST = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FAST).strip()
# One persistent compilation cache for the whole session, shared with CLI subprocesses: many tests build the same
# tiny models, and identical programs then compile once.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="nlic-test-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """Returns a function giving a fresh, deterministic PRNG key at every call."""
    state = {"key": jax.random.key(0)}

    def _getkey():
        state["key"], sub = jax.random.split(state["key"])
        return sub

    return _getkey


def skip_without_exedec():
    """The ExeDec DeepCoder test folder; skips the calling test when it cannot be found (it lives outside the
    repository)."""

    try:
        return find_data_dir()
    except DataError as e:
        pytest.skip(f"ExeDec data not available: {e}")
