"""The compiler: spec tree -> validated `Spec` -> equinox modules -> compiled functions."""

from nlic.compiler.kinds import MODEL_KINDS, Batch, ModelKind, Shapes, Solution
from nlic.compiler.registry import Registry
from nlic.compiler.spec import SPEC_VERSION, IntRange, Schedule, Spec

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
]
