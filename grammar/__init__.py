"""Front ends of nlic: the `.lark` grammars (specs, programs) and their parsers, plus the base layer every package
uses: the error hierarchy (`errors.py`), bounded file reading (`reading.py`) and the generic `Registry`."""

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
    escape,
)
from nlic.grammar.reading import (
    MAX_DATA_BYTES,
    MAX_JSON_DEPTH,
    MAX_NUMBER_DIGITS,
    MAX_PROGRAM_BYTES,
    MAX_SPEC_BYTES,
    loads_json,
    read_bytes,
    read_text,
)
from nlic.grammar.registry import Registry
from nlic.grammar.spec_parser import parse_expression, parse_nls
from nlic.grammar.tree import Document
from nlic.grammar.yaml_front import parse_yaml

__all__ = [
    "ArtifactError",
    "CheckpointError",
    "DataError",
    "Diagnostic",
    "Document",
    "Loc",
    "NlicError",
    "ProgramError",
    "ProgramSyntaxError",
    "Registry",
    "SpecError",
    "did_you_mean",
    "escape",
    "loads_json",
    "read_bytes",
    "read_text",
    "MAX_DATA_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_DIGITS",
    "MAX_PROGRAM_BYTES",
    "MAX_SPEC_BYTES",
    "parse_expression",
    "parse_nls",
    "parse_yaml",
]

from nlic.grammar.program import (  # noqa: E402
    FORMAT_VERSION,
    ProgramFile,
    format_programs,
    load_programs,
    parse_programs,
)

__all__ += ["FORMAT_VERSION", "ProgramFile", "format_programs", "load_programs", "parse_programs"]
