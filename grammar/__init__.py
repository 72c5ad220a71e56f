"""Front ends of nlic: the `.lark` grammars (specs, programs), their parsers, and the error hierarchy."""

from nlic.grammar.errors import (
    ArtifactError,
    CheckpointError,
    DataError,
    Diagnostic,
    Loc,
    NlicError,
    ProgramError,
    ProgramSyntaxError,
    SpecError,
    did_you_mean,
)

__all__ = [
    "ArtifactError",
    "CheckpointError",
    "DataError",
    "Diagnostic",
    "Loc",
    "NlicError",
    "ProgramError",
    "ProgramSyntaxError",
    "SpecError",
    "did_you_mean",
]
