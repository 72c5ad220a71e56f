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


def test_robustness_trains_scores_and_writes_its_rows(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_health import TINY_NLI

    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_NLI.replace("REG", "0.0").replace("STEPS", "4").replace("eval_every: 0", "eval_every: 2"))
    r = subprocess.run([sys.executable, str(BENCH / "robustness.py"), str(spec), "--seeds", "1", "--tasks", "4",
                        "--runs", str(tmp_path / "runs"), "--target", "tiny_health=0.5"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "tiny_health seed 1: solving 4 id tasks (none search)" in r.stderr  # progress on stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| tiny_health | ")]
    assert rows[0].startswith("| tiny_health | 1 | ")  # printed as measured
    assert "0/1 >= 0.50" in r.stdout  # the per-spec summary against its target
    import json

    data = json.loads((tmp_path / "runs" / "robustness.json").read_text())
    assert [(row["spec"], row["seed"], row["model"]) for row in data["rows"]] == [("tiny_health", 1, "trained")]
    assert all(row["verdict"] for row in data["rows"])


def test_speed_compile_alternates_a_baseline_with_this_installation(monkeypatch, capsys):
    sys.path.insert(0, str(BENCH))
    import speed

    calls = []

    def fake(spec, cache, python=None):
        calls.append((Path(spec).name, python))
        return {"wall_s": 2.0 if python else 1.0, "cpu_s": 1.0, "compile_s": 0.5, "loaded": 0, "written": 4}

    monkeypatch.setattr(speed, "_compile_once", fake)
    spec = BENCH.parent / "specs" / "shift_l.yaml"
    rows = speed.compile_times([spec], baseline="/old/venv/bin/python", rounds=2)
    # Per round and spec: the baseline cold and warm, then this installation cold and warm.
    assert calls == [("shift_l.yaml", "/old/venv/bin/python")] * 2 + [("shift_l.yaml", None)] * 2 + \
        [("shift_l.yaml", "/old/venv/bin/python")] * 2 + [("shift_l.yaml", None)] * 2
    assert [(r["side"], r["cache"]) for r in rows[:4]] == [("baseline", "cold"), ("baseline", "warm"),
                                                           ("this", "cold"), ("this", "warm")]
    out = capsys.readouterr().out
    assert "sum of cold wall seconds: baseline 4.0, this 2.0 (x0.50)" in out
