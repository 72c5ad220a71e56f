"""The NLI model kind: the model (`model.py`), its test-time search methods (`search.py`) and its execution traces
(`trace.py`), as one `ModelKind`."""

from nlic.compiler.kinds import Batch, ModelKind, Solution
from nlic.compiler.models.nli.model import (
    NLI as NLI,
    Executor as Executor,
    Inductor as Inductor,
    NLIConfig as NLIConfig,
    build as build,
    execute as execute,
    loss as loss,
    pad_program as pad_program,
    relax_tokens as relax_tokens,
    spec_scores as spec_scores,
)
from nlic.compiler.models.nli.search import (
    SEARCH_METHODS as SEARCH_METHODS,
    SearchMethod as SearchMethod,
    search_cost as search_cost,
)
from nlic.compiler.models.nli.split import Split as Split, split_merged_token as split_merged_token
from nlic.compiler.models.nli.trace import trace as trace
from nlic.compiler.spec import SearchSpec, field_names

__all__ = [
    "NLI",
    "NLI_KIND",
    "SEARCH_METHODS",
    "Executor",
    "Inductor",
    "NLIConfig",
    "SearchMethod",
    "Split",
    "build",
    "execute",
    "loss",
    "pad_program",
    "relax_tokens",
    "search_cost",
    "solve",
    "spec_scores",
    "split_merged_token",
    "trace",
]


def solve(model: NLI, batch: Batch, search: SearchSpec, *, key, tokens=None) -> Solution:
    """Induce and search a discrete program per task with the search method `search.method`; `tokens`: the tokens
    an enumeration tries (as many as `search.branch`; default: the task's likeliest, or all)."""
    return SEARCH_METHODS.get(search.method).run(model, batch, search, key=key, tokens=tokens)


NLI_KIND = ModelKind(
    name="nli",
    build=build,
    loss=loss,
    solve=solve,
    search_methods=tuple(SEARCH_METHODS.names()),
    execute=execute,
    discrete_programs=True,
    trace=trace,
    default_search="cascade",
    split=split_merged_token,
    reads=frozenset(field_names()) - set(field_names("model.latent")),
)
