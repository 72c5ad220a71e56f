"""Task families: the TaskSet contract, the built-in families and users' own files, registered in `FAMILIES` here.

A family fixes a spec's data shapes and splits, which validation and lowering need; `sample_split`,
`evaluation_tasks` and `load_tasks` are the entry points for training, solving and evaluation.
"""

from nlic.compiler.families.api import (
    canonical_colours_of as canonical_colours_of,
    coloured as coloured,
    codec_of as codec_of,
    curriculum_spec as curriculum_spec,
    evaluation_tasks as evaluation_tasks,
    family_of as family_of,
    load_tasks as load_tasks,
    params_of as params_of,
    sample_split as sample_split,
    shapes_of as shapes_of,
    unknown_splits as unknown_splits,
)
from nlic.compiler.families.base import FAMILIES as FAMILIES, Codec as Codec, Family as Family, TaskSet as TaskSet
from nlic.compiler.families.codecs import GridCodec as GridCodec, SequenceCodec as SequenceCodec
from nlic.compiler.families.deepcoder import DEEPCODER
from nlic.compiler.families.files import FILES, read_tasks as read_tasks
from nlic.compiler.families.grid1d import GRID1D
from nlic.compiler.families.pattern import PATTERN
from nlic.compiler.families.shift import SHIFT
from nlic.compiler.families.string_rules import STRING_RULES

__all__ = [
    "FAMILIES",
    "Codec",
    "Family",
    "GridCodec",
    "SequenceCodec",
    "TaskSet",
    "canonical_colours_of",
    "coloured",
    "codec_of",
    "curriculum_spec",
    "evaluation_tasks",
    "family_of",
    "load_tasks",
    "params_of",
    "unknown_splits",
    "read_tasks",
    "sample_split",
    "shapes_of",
]

for _family in (DEEPCODER, FILES, GRID1D, PATTERN, SHIFT, STRING_RULES):
    FAMILIES.register(_family.name, _family)
