"""The compiler: spec text -> validated `Spec` -> model kind and task family -> compiled functions.

Importing it fills the registries (`MODEL_KINDS`, `FAMILIES`, `OPTIMIZERS`, the NLI's `SEARCH_METHODS`). Nothing
in it writes files; `nlic.runtime` does.
"""

from nlic.compiler.families import (
    FAMILIES as FAMILIES,
    Codec as Codec,
    Family as Family,
    TaskSet as TaskSet,
    codec_of as codec_of,
    evaluation_tasks as evaluation_tasks,
    family_of as family_of,
    load_tasks as load_tasks,
    sample_split as sample_split,
    shapes_of as shapes_of,
)
from nlic.compiler.identity import (
    fingerprint as fingerprint,
    spec_data as spec_data,
    spec_diff as spec_diff,
    spec_hash as spec_hash,
)
from nlic.compiler.kinds import (
    MODEL_KINDS as MODEL_KINDS,
    Batch as Batch,
    ModelKind as ModelKind,
    Shapes as Shapes,
    Solution as Solution,
    kind_of as kind_of,
)
from nlic.compiler.lower import (
    CompiledSpec as CompiledSpec,
    abstract_model as abstract_model,
    compile_spec as compile_spec,
    count_parameters as count_parameters,
    format_summary as format_summary,
)
from nlic.compiler.models import NLI_KIND as NLI_KIND
from nlic.compiler.models.nli import SEARCH_METHODS as SEARCH_METHODS
from nlic.compiler.optim import (
    OPTIMIZERS as OPTIMIZERS,
    init_state as init_state,
    make_optimizer as make_optimizer,
    make_train_step as make_train_step,
)
from nlic.compiler.printer import format_spec as format_spec
from nlic.compiler.seeds import derive_seed as derive_seed
from nlic.compiler.spec import SPEC_VERSION as SPEC_VERSION, IntRange as IntRange, Schedule as Schedule, Spec as Spec
from nlic.compiler.validate import load_spec as load_spec, parse_spec as parse_spec
from nlic.grammar.registry import Registry as Registry

__all__ = [
    "FAMILIES",
    "MODEL_KINDS",
    "NLI_KIND",
    "OPTIMIZERS",
    "SEARCH_METHODS",
    "SPEC_VERSION",
    "Batch",
    "Codec",
    "CompiledSpec",
    "Family",
    "IntRange",
    "ModelKind",
    "Registry",
    "Schedule",
    "Shapes",
    "Solution",
    "Spec",
    "TaskSet",
    "abstract_model",
    "codec_of",
    "compile_spec",
    "count_parameters",
    "derive_seed",
    "evaluation_tasks",
    "family_of",
    "fingerprint",
    "format_spec",
    "format_summary",
    "init_state",
    "kind_of",
    "load_spec",
    "load_tasks",
    "make_optimizer",
    "make_train_step",
    "parse_spec",
    "sample_split",
    "shapes_of",
    "spec_data",
    "spec_diff",
    "spec_hash",
]
