"""The `benchmarks/` scripts share the CLI's error policy: bad input is a located message and exit code 2."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("args", [
    ["lpn_pattern.py", "--run", "no/such/run"],
    ["lpn_pattern.py", "--spec", "no/such/spec.yaml"],
    ["search.py", "no/such/run"],
    ["speed.py", "no/such/spec.yaml"],
    ["robustness.py", "no/such/spec.yaml"],
    ["grid1d_probes.py", "no/such/spec.yaml", "--probe", "inductor"],
    ["grid1d_rules.py", "no/such/spec.yaml", "id", "p.jsonl"],
    ["health_scan.py", "no/such/run"],
    ["replay.py", "no/such/run", "--from", "1500"],
    ["deepcoder.py", "--spec", "no/such/spec.yaml", "--splits", "NONE"],
    ["deepcoder.py", "--splits", "NONE,no/such"],
    ["deepcoder.py", "--kinds", "nli,no/such"],
    ["deepcoder_probes.py", "--spec", "no/such/spec.yaml"],
    ["deepcoder_probes.py", "--probe", "data", "--splits", "no/such"],
    ["grid1d_rules.py", str(BENCH.parent / "specs" / "grid1d_comp.yaml"), "id", "no/such/p.jsonl"],
    ["robustness.py", str(BENCH.parent / "specs" / "minimal" / "comp_i.yaml"), "--seeds", "no/such"],
], ids=lambda a: " ".join(a))
def test_bad_input_exits_2_without_a_traceback(args, tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / args[0]), *args[1:]], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "no/such" in r.stderr and "error:" in r.stderr


def test_replay_names_the_checkpoints_a_run_has(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "spec.yaml").write_text((BENCH.parent / "specs" / "minimal" / "shift_l.yaml").read_text())
    (run / "checkpoints" / "step_00000500.eqx").write_bytes(b"")
    r = subprocess.run([sys.executable, str(BENCH / "replay.py"), str(run), "--from", "1500"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no checkpoint at that step" in r.stderr and "step_00000500.eqx" in r.stderr
    r = subprocess.run([sys.executable, str(BENCH / "replay.py"), str(run), "--from", "500"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "error:" in r.stderr  # an empty checkpoint


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


TINY_GRID1D = """
version: 1
name: tiny_grid1d
task: {family: grid1d, params: {suite: comp, min_length: 8, max_length: 10}, pairs: 3}
language: {vocab: 8, length: 2, max_length: 4}
model:
  inductor: {layers: 1, width: 8, heads: 2, head_hidden: 8, offsets: true}
  executor: {layers: 1, width: 8, heads: 2}
training: {batch: 4}
"""


def test_grid1d_probe_cell_kinds():
    sys.path.insert(0, str(BENCH))
    import grid1d_probes

    x = np.array([[1, 1, 0, 0, 2, 10]])
    y = np.array([[0, 1, 1, 0, 2, 10]])  # the block moves right by one; the dot (2) stays; PAD at the end
    assert grid1d_probes.cell_kinds(x, y).tolist() == [[2, 1, 0, 3, 1, 4]]


@pytest.mark.parametrize("probe", ["inductor", "executor"])
def test_grid1d_probes_train_and_print_per_rule_accuracy(probe, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_GRID1D)
    r = subprocess.run([sys.executable, str(BENCH / "grid1d_probes.py"), str(spec), "--probe", probe, "--steps", "2",
                        "--cells"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith(f"{probe} step ")]
    assert [line.split()[2] for line in lines] == ["0", "1"]
    assert "flip:" in lines[-1] and "accuracy" in lines[-1]
    assert "ground-truth tokens in a vocab of 8" in r.stdout
    # --cells: the executor's wrong answers by rule and kind of cell (after 2 steps, every rule has some)
    assert ("  move: " in r.stdout and "cells wrong where arrives" in r.stdout) == (probe == "executor")
    # Not an NLI spec of grid1d: a message and exit 2.
    other = BENCH.parent / "specs" / "minimal" / "shift_l.yaml"
    r = subprocess.run([sys.executable, str(BENCH / "grid1d_probes.py"), str(other), "--probe", probe],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "not an NLI spec of the grid1d family" in r.stderr


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


def test_deepcoder_breakdown_groups_the_shipped_tests(capsys):
    from conftest import skip_without_exedec

    skip_without_exedec()
    sys.path.insert(0, str(BENCH))
    import deepcoder
    from nlic.compiler import load_spec
    from nlic.compiler.families.deepcoder import find_data_dir, load_test_tasks

    spec = load_spec(BENCH.parent / "specs" / "deepcoder.yaml")  # LENGTH_GENERALIZATION: length-5 tests
    tasks = load_test_tasks(str(find_data_dir()), "LENGTH_GENERALIZATION")[:40]
    correct = [i % 4 == 0 for i in range(40)]
    by = deepcoder.breakdown(spec, [t[0] for t in tasks], correct)
    assert by["length"] == {"5": [10, 40]}
    assert sum(n for _, n in by["output"].values()) == 40 and set(by["output"]) <= {"int", "list"}
    assert sum(n for _, n in by["shape"].values()) == 40
    # A task counts once under each operation it uses.
    for op, (solved, n) in by["op"].items():
        uses = [ok for t, ok in zip(tasks, correct) if op in {s.op for s in t[1].statements}]
        assert (solved, n) == (sum(uses), len(uses))
    deepcoder.print_breakdown({"LENGTH_GENERALIZATION": {"nli": {"rows": [{"config": "none", "by": by}]}}})
    out = capsys.readouterr().out
    assert "LENGTH_GENERALIZATION nli [none]" in out and "length: 5 0.25 (40)" in out


def test_deepcoder_probe_tasks_run_their_programs():
    import random

    sys.path.insert(0, str(BENCH))
    import deepcoder_probes
    from nlic.compiler.families.deepcoder import _primitives

    prims = _primitives()
    xs, ys, qx, qy, progs = deepcoder_probes.tasks(random.Random(0), 20, 2, 2)
    assert xs.shape == (20, 2, 12) and qx.shape == (20, 12) and progs.shape == (20, 2)
    assert (progs >= 1).all() and (progs <= len(prims)).all()  # 0 is the skip token
    for i in range(20):
        x = np.concatenate([xs[i], qx[i][None]])
        y = prims[progs[i, 1] - 1](prims[progs[i, 0] - 1](x))
        assert (y == np.concatenate([ys[i], qy[i][None]])).all() and not (y == x).all(-1).any()


def test_deepcoder_probes_refuse_other_specs(tmp_path):
    other = BENCH.parent / "specs" / "minimal" / "shift_l.yaml"
    r = subprocess.run([sys.executable, str(BENCH / "deepcoder_probes.py"), "--spec", str(other)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "not an NLI spec of the deepcoder family" in r.stderr


def test_deepcoder_data_probe_compares_each_sampler_with_the_shipped_tests(capsys):
    from conftest import skip_without_exedec

    skip_without_exedec()
    sys.path.insert(0, str(BENCH))
    import deepcoder_probes

    assert deepcoder_probes.main(["--probe", "data", "--tasks", "20", "--splits", "none,compose_new_op"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and
            "---" not in line][1:]
    assert [r[0] for r in rows] == ["| NONE"] * 3 + ["| COMPOSE_NEW_OP"] * 3 and {r[1] for r in rows} == {"shipped tests", "exedec", "forward"}
    assert all(r[2] == "0.00" for r in rows if r[1] == "shipped tests")  # each split against itself
