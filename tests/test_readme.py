"""The outputs the README's tour shows are real: each block marked `<!-- readme-output: COMMAND -->` is what
COMMAND prints, up to lines `...`, which stand for any number of lines left out.

Files the commands read come from blocks marked `<!-- readme-file: NAME -->` and from tests/data/readme/. The
program listing of a trained run is checked when NLIC_README_RUN names the run directory of the README's first
command (training it takes minutes, so CI skips it).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from nlic.runtime.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DATA = ROOT / "tests" / "data" / "readme"
BLOCK = re.compile(r"<!-- readme-(output|file): (.+?) -->\n```[a-z]*\n(.*?)```", re.S)


def blocks(kind: str) -> dict[str, str]:
    return {m.group(2): m.group(3) for m in BLOCK.finditer(README.read_text()) if m.group(1) == kind}


def matches(shown: list[str], real: list[str]) -> bool:
    """Whether `shown` is `real` with runs of lines replaced by `...` lines."""
    if not shown:
        return not real
    if shown[0] == "...":
        return any(matches(shown[1:], real[i:]) for i in range(len(real) + 1))
    return bool(real) and shown[0] == real[0] and matches(shown[1:], real[1:])


def test_the_readme_marks_its_outputs():
    assert {"nlic fmt tiny.yaml --to nls", "nlic validate bad.yaml", "cat runs/shift_l/programs/ood.nlp"} <= set(
        blocks("output"))
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"]) and not matches(["a", "d"], ["a", "b", "d"])


@pytest.mark.parametrize("command", [c for c in blocks("output") if c.startswith("nlic ")])
def test_readme_output_is_what_the_command_prints(command, tmp_path, capsys, monkeypatch):
    for name, text in blocks("file").items():
        (tmp_path / name).write_text(text)
    for path in DATA.iterdir():
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.chdir(tmp_path)
    main(shlex.split(command)[1:])
    captured = capsys.readouterr()
    shown = [line for line in blocks("output")[command].splitlines() if not line.startswith("$ ")]
    real = (captured.out + captured.err).splitlines()
    assert matches(shown, real), "\n".join(real)


def test_readme_program_listing_is_the_first_commands_output():
    run = os.environ.get("NLIC_README_RUN")
    if not run:
        pytest.skip("set NLIC_README_RUN to the run directory of the README's first command")
    shown = blocks("output")["cat runs/shift_l/programs/ood.nlp"].splitlines()
    assert matches(shown, (Path(run) / "programs" / "ood.nlp").read_text().splitlines())


def test_ci_runs_exactly_the_readmes_test_command():
    lines = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert len(lines) == 2 and "nlic train" in lines[0] and "pytest" in lines[1]
    assert lines[1] in (ROOT / ".ci" / "run").read_text().splitlines()
