"""`nlic validate` and `nlic fmt` as a user runs them: every malformed spec in tests/data/bad_specs/ is reported
with its expected located messages, exit code 2 and no traceback; fmt prints and writes canonical text."""

import subprocess
import sys
from pathlib import Path

import pytest

from nlic import grammar
from nlic.compiler import format_spec, load_spec

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).parent / "data" / "bad_specs"
BAD_SPECS = sorted(p for p in BAD.iterdir() if p.suffix in (".yaml", ".nls"))


def nlic(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "nlic.runtime.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def expectations(path):
    """`LINE:COL message fragment` lines of NAME.EXT.expected (`#` starts a comment)."""
    out = []
    for line in (path.parent / (path.name + ".expected")).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pos, fragment = line.split(" ", 1)
            out.append((pos, fragment))
    return out


@pytest.fixture(scope="module")
def batch_run():
    """One `nlic validate` over all bad specs (a process per file would cost a JAX import each)."""
    return nlic("validate", *(p.relative_to(ROOT) for p in BAD_SPECS))


def test_there_are_enough_bad_specs_in_both_syntaxes():
    assert len(BAD_SPECS) >= 30
    assert sum(p.suffix == ".nls" for p in BAD_SPECS) >= 10
    assert all((p.parent / (p.name + ".expected")).exists() for p in BAD_SPECS)


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.name)
def test_bad_spec_is_reported_where_expected(path, batch_run):
    assert batch_run.returncode == 2
    assert "Traceback" not in batch_run.stderr + batch_run.stdout
    shown = str(path.relative_to(ROOT))
    assert f"ok {shown}" not in batch_run.stdout
    lines = [line for line in batch_run.stderr.splitlines() if line.startswith(shown + ":")]
    assert lines, f"no diagnostic for {shown}"
    for pos, fragment in expectations(path):
        prefix = f"{shown}:{pos}: error: "
        assert any(line.startswith(prefix) and fragment in line for line in lines), (pos, fragment, lines)


def test_a_file_with_several_errors_reports_all_of_them():
    r = nlic("validate", BAD / "many_errors.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == ""
    expected = expectations(BAD / "many_errors.yaml")
    assert len(expected) >= 5
    errors = [line for line in r.stderr.splitlines() if ": error: " in line]
    assert len(errors) == len(expected)
    for (pos, fragment), line in zip(expected, errors):
        assert line.startswith(f"{BAD / 'many_errors.yaml'}:{pos}: error: ") and fragment in line


def test_binary_spec_alone_exits_2_without_traceback():
    r = nlic("validate", BAD / "binary.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.startswith(f"{BAD / 'binary.yaml'}:2:1: error: the file contains NUL bytes")


def test_validate_prints_a_one_line_summary():
    r = nlic("validate", "specs/shift_l.yaml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok specs/shift_l.yaml: shift_l (kind nli, family shift, K=8, T=6, hash ")
    assert len(r.stdout.splitlines()) == 1


def test_fmt_converts_and_writes_atomically(tmp_path):
    out = tmp_path / "shift_l.nls"
    r = nlic("fmt", "specs/shift_l.yaml", "--to", "nls", "--out", out)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert out.read_text().startswith("version 1\nname shift_l\n")
    assert [p.name for p in tmp_path.iterdir()] == ["shift_l.nls"]  # no temporary file left behind

    assert load_spec(out) == load_spec(ROOT / "specs" / "shift_l.yaml")
    assert out.read_text() == format_spec(load_spec(out), "nls")  # what --check compares against
    # The hand-written example is not canonical: --check flags it and writes nothing.
    check = nlic("fmt", "specs/shift_l.nls", "--check")
    assert check.returncode == 1 and check.stdout == "" and "not in canonical form" in check.stderr


def test_fmt_of_a_bad_spec_leaves_the_output_untouched(tmp_path):
    out = tmp_path / "keep.yaml"
    out.write_text("precious\n")
    r = nlic("fmt", BAD / "unknown_key.yaml", "--out", out)
    assert r.returncode == 2 and "unknown key 'sed'" in r.stderr
    assert out.read_text() == "precious\n"


def test_fmt_keeps_relative_data_paths_as_written(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.jsonl").write_text(
        '{"id": "a", "train": [{"input": [1], "output": [1]}], "test": [{"input": [2], "output": [2]}]}\n')
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ntask:\n  family: files\n  params: {train: data/t.jsonl}\neval: {splits: [train]}\n")
    r = nlic("fmt", spec, "--to", "nls", cwd=ROOT / "specs")  # not the spec's directory
    assert r.returncode == 0, r.stderr
    assert "train \"data/t.jsonl\"" in r.stdout


def test_installed_package_works_from_outside_the_source_tree(tmp_path):
    """The CLI runs from any folder: `nlic` is the installed package (the source tree has no `nlic/` folder), and
    the grammars ship as package data."""

    spec = tmp_path / "mine.yaml"
    spec.write_text((ROOT / "specs" / "shift_l.yaml").read_text())
    r = nlic("validate", spec.name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok mine.yaml: shift_l ")
    assert list(Path(grammar.__file__).parent.glob("*.lark")), "grammars are installed as package data"
