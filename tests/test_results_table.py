"""The README's results table is generated from benchmarks/results.json, and the README stays a product page.

Fast and jax-free: the script is stdlib only, loaded from its file; the CLI runs in a plain subprocess."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "results_table.py"
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def results_table():
    spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30)


def test_readme_table_is_the_scripts_output(results_table):
    table = results_table.render(results_table.load(ROOT / "benchmarks" / "results.json"))
    assert results_table.extract_block(README.read_text(encoding="utf-8")) == table


def test_check_passes_on_the_readme(results_table, capsys):
    assert results_table.main(["--check", str(README)]) == 0, capsys.readouterr().err


def test_readme_is_at_most_15000_bytes():
    size = README.stat().st_size
    assert size <= 15_000, f"README.md is {size} bytes; move measurement detail to benchmarks/README.md"


def test_malformed_json_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": [', encoding="utf-8")
    proc = _run("--json", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr


@pytest.mark.parametrize("data", [{}, [], {"splits": "x", "rows": 1, "test_flops_per_task": {}}])
def test_wrong_shape_exits_2_with_a_message(tmp_path, data, results_table, capsys):
    path = tmp_path / "shape.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert results_table.main(["--json", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err


def test_check_reports_a_stale_table_and_write_fixes_it(tmp_path, results_table, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{results_table.BEGIN}\n| stale |\n{results_table.END}\n\ntail\n", encoding="utf-8")
    assert results_table.main(["--check", str(readme)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert results_table.main(["--write", str(readme)]) == 0
    assert results_table.main(["--check", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# x\n\n") and text.endswith(f"{results_table.END}\n\ntail\n")


def test_missing_markers_exit_2(tmp_path, results_table, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n", encoding="utf-8")
    assert results_table.main(["--check", str(readme)]) == 2
    assert "results-table:begin" in capsys.readouterr().err
