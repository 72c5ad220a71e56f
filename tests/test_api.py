"""The public Python API: each package's `__all__` resolves, and the README's Python session runs as written."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest

import nlic.compiler
import nlic.grammar
import nlic.runtime

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("package", [nlic.grammar, nlic.compiler, nlic.runtime], ids=lambda p: p.__name__)
def test_every_public_name_resolves(package):
    assert len(set(package.__all__)) == len(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None, name


def test_runtime_api_has_the_promised_entry_points():
    for name in ("train", "solve", "solve_to_files", "replay", "load_run", "load_artifact", "write_build", "evaluate"):
        assert name in nlic.runtime.__all__
    for name in ("load_spec", "parse_spec", "compile_spec", "kind_of", "FAMILIES", "MODEL_KINDS", "make_train_step"):
        assert name in nlic.compiler.__all__


def readme_session() -> str:
    text = README.read_text()
    block = re.search(r"<!-- python-session -->\n```python\n(.*?)```\n<!-- /python-session -->", text, re.S)
    assert block, "README.md lost its marked Python session"
    return block.group(1)


def test_readme_python_session_runs_as_written(tmp_path):
    code = readme_session()
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(README), "exec"), {"__name__": "readme_session"})  # noqa: S102 (our own README)
    finally:
        os.chdir(cwd)
    lines = out.getvalue().splitlines()
    fingerprint, accuracy = lines[0].split()
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint) and 0.0 <= float(accuracy) <= 1.0
    assert len(lines) == 1 + 4 + 1
    assert all(re.fullmatch(r"ood-\d{4}( t\d+)*", line) for line in lines[1:5])
    output = json.loads(lines[5])  # the printed list of ints is JSON
    assert isinstance(output, list) and len(output) == 12 and all(0 <= v < 5 for v in output)
    assert (tmp_path / "runs" / "api_tour" / "programs" / "ood.none.nlp").is_file()  # not the spec's search


def test_public_functions_are_type_checked_in_the_tests():
    """conftest.py imports nlic under jaxtyping's import hook with beartype: a wrong argument type is an error at
    the call, not somewhere deep inside."""
    from jaxtyping import TypeCheckError

    with pytest.raises(TypeCheckError):
        nlic.compiler.spec_hash("not a spec")
