"""The `benchmarks/` scripts share the CLI's error policy: bad input is a located message and exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("args", [
    ["lpn_pattern.py", "--run", "no/such/run"],
    ["lpn_pattern.py", "--spec", "no/such/spec.yaml"],
    ["search.py", "no/such/run"],
    ["speed.py", "no/such/spec.yaml"],
    ["robustness.py", "no/such/spec.yaml"],
    ["robustness.py", str(BENCH.parent / "specs" / "minimal" / "comp_i.yaml"), "--seeds", "no/such"],
], ids=lambda a: " ".join(a))
def test_bad_input_exits_2_without_a_traceback(args, tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / args[0]), *args[1:]], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "no/such" in r.stderr and "error:" in r.stderr
