"""Task data: the TaskSet contract, the built-in families (shift, deepcoder, pattern, string_rules), user files.

Importing this package registers every family in `FAMILIES`; `sample_split` / `load_tasks` are the entry points.
"""

from nlic.runtime.tasks import deepcoder, files, pattern, shift, string_rules  # noqa: F401  (registers the families)
from nlic.runtime.tasks.api import codec_of, family_of, load_tasks, params_of, sample_split, shapes_of
from nlic.runtime.tasks.base import FAMILIES, Codec, Family, TaskSet
from nlic.runtime.tasks.codecs import GridCodec, SequenceCodec
from nlic.runtime.tasks.files import export_tasks, read_tasks

__all__ = [
    "FAMILIES",
    "Codec",
    "Family",
    "GridCodec",
    "SequenceCodec",
    "TaskSet",
    "codec_of",
    "export_tasks",
    "family_of",
    "load_tasks",
    "params_of",
    "read_tasks",
    "sample_split",
    "shapes_of",
]
