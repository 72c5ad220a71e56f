"""Shared test setup: CPU only, strict JAX flags, run-time type checks of nlic, and a `getkey` fixture.

nlic is imported here only after the environment is set and jaxtyping's import hook is installed, so that every
nlic function the tests call has its annotations (jaxtyping shapes included) checked by beartype, as equinox's own
test suite does.
"""

import os
import tempfile

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
from jaxtyping import install_import_hook  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# Every nlic module imported from here on is checked; int is a float (PEP 484's numeric tower), as in Python.
_hook = install_import_hook("nlic", "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))")
import nlic.compiler  # noqa: E402,F401  (the whole package: nothing of nlic is imported before this line)
import nlic.runtime  # noqa: E402,F401
from nlic.compiler.families.deepcoder import find_data_dir  # noqa: E402
from nlic.grammar.errors import DataError  # noqa: E402

_hook.uninstall()


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
