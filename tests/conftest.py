"""Shared test setup: CPU only, strict JAX flags, run-time type checks of nlic, and a `getkey` fixture.

nlic is imported here only after the environment is set and jaxtyping's import hook is installed, so that every
nlic function the tests call has its annotations (jaxtyping shapes included) checked by beartype, as equinox's own
test suite does.
"""

import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests run tiny models whose wall time is almost all XLA compilation; cheaper code generation roughly halves it
# (measured on the train/solve tests). Subprocesses started by tests inherit this.
_FAST = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true --xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FAST).strip()
# One compile cache for the whole session, never the user's (~/.cache/nlic/xla): made here in the pytest process
# that loads this file first (the xdist controller, whose workers inherit the variable) and deleted when it ends.
# The CLI subprocesses of the tests use it too. Many tests build the same tiny models, which then compile once.
_OWN_CACHE = None
if "NLIC_COMPILE_CACHE" not in os.environ:
    _OWN_CACHE = os.environ["NLIC_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="nlic-test-compile-cache-")

import jax  # noqa: E402
import pytest  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# Every nlic module imported from here on is checked; int is a float (PEP 484's numeric tower), as in Python.
_hook = install_import_hook("nlic", "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))")
import nlic.compiler  # noqa: E402,F401  (the whole package: nothing of nlic is imported before this line)
import nlic.runtime  # noqa: E402,F401
import nlic.compiler.families as _families  # noqa: E402
from nlic.compiler.families.deepcoder import find_data_dir  # noqa: E402
from nlic.runtime.train import train as _train  # noqa: E402
from nlic.grammar.errors import DataError  # noqa: E402

_hook.uninstall()
nlic.runtime.enable_compile_cache()  # in-process compiles too (importing nlic enables nothing by itself)


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


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


def interrupt_training(monkeypatch, spec, out, batch_seed: int) -> None:
    """`train(spec, out=out)` stopped by Ctrl-C while it draws the training batch of seed `batch_seed` (e.g.
    `derive_seed(spec.seed, "train", k)` for step k); the batch sampler is restored afterwards."""
    real = _families.sample_split

    def interrupt(spec_, split, n, *, seed):
        if split == "train" and seed == batch_seed:
            raise KeyboardInterrupt
        return real(spec_, split, n, seed=seed)

    monkeypatch.setattr(_families, "sample_split", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _train(spec, out=out, progress=False)
    monkeypatch.setattr(_families, "sample_split", real)


# The tiny NLI of the grid1d end-to-end tests (test_tasks_grid1d, test_colours): one shape, L = 12, V = 11, so
# each compiles from the cache the first one filled.
TINY_GRID1D_MODEL = """
language: {vocab: 6, length: 3, max_length: 6, values: 11}
model:
  kind: nli
  inductor: {layers: 1, width: 16, heads: 2, head_hidden: 16}
  executor: {layers: 1, width: 16, heads: 2, routing: true}
training: {steps: 2, batch: 4, warmup: 1, log_every: 1, eval_every: 0, checkpoint_every: 0}
search: {method: none, batch: 8}
"""
