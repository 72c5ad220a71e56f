"""The compiler: spec tree -> validated `Spec` -> equinox modules -> compiled functions."""

from nlic.compiler.kinds import MODEL_KINDS, Batch, ModelKind, Shapes, Solution
from nlic.compiler.printer import format_spec, spec_hash
from nlic.compiler.registry import Registry
from nlic.compiler.spec import SPEC_VERSION, IntRange, Schedule, Spec
from nlic.compiler.validate import load_spec, parse_spec

__all__ = [
    "MODEL_KINDS",
    "Batch",
    "IntRange",
    "ModelKind",
    "Registry",
    "SPEC_VERSION",
    "Schedule",
    "Shapes",
    "Solution",
    "Spec",
    "format_spec",
    "load_spec",
    "parse_spec",
    "spec_hash",
]
