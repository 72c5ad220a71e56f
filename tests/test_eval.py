"""`nlic eval` and `nlic.runtime.evaluate`: training or reusing runs, identical tasks, CSV, table, plot, FLOPs."""

import csv
import dataclasses
import math

import pytest

from nlic.compiler.spec import SearchSpec, Spec
from nlic.grammar.errors import SpecError
from nlic.runtime.cli import main
from nlic.runtime.evaluate import Row, evaluate, methods_of, results_markdown, search_plan

TINY = """version: 1
name: {name}
task:
  family: shift
  params: {{split: shift_l, length: 12, alphabet: 4}}
  pairs: 2
language: {{{language}max_length: 3}}
model:
  kind: {kind}
  inductor: {{layers: 1, width: 16, heads: 2, mlp_ratio: 1}}
  executor: {{layers: 1, width: 16, heads: 2, mlp_ratio: 1}}
{latent}training: {{steps: 3, batch: 4, warmup: 0, log_every: 1, eval_every: 0, checkpoint_every: 0}}
search: {{method: {method}, {budget}lr: 0.1, batch: 4}}
eval: {{tasks: 4, splits: [id, ood]}}
"""


def tiny(name, kind, method):
    """A tiny spec of `kind`, with only the fields that kind reads (validation refuses the others)."""
    return TINY.format(name=name, kind=kind, method=method,
                       language="length: 2, " if kind != "lpn" else "",
                       latent="  latent: {dim: 4}\n" if kind == "lpn" else "",
                       budget={"in_context": "", "lpn": "steps: 2, "}.get(kind, "starts: 2, steps: 2, "))


def write_specs(tmp_path):
    paths = []
    for name, kind, method in (("tiny_ic", "in_context", "none"), ("tiny_lpn", "lpn", "gradient")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(tiny(name, kind, method))
        paths.append(str(path))
    return paths


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_eval_writes_csv_table_and_plot_and_reuses_runs(tmp_path, capsys):
    specs = write_specs(tmp_path)
    out, runs = tmp_path / "res", tmp_path / "runs"
    # --steps 0: the runs are written (and reused below) without compiling a train step; training itself is
    # tested in test_train.py and test_baselines.py.
    argv = ["eval", *specs, "--seeds", "0,1", "--budgets", "0,1", "--tasks", "4", "--steps", "0",
            "--out", str(out), "--runs", str(runs)]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert "model trained" in first.err
    # The budgets apply to lpn's gradient search; in_context has none alone: one line says so.
    assert "nlic eval: note: --budgets do not apply to tiny_ic (in_context: scored with none at budget 0 only)\n" \
        in first.err

    rows = read_rows(out / "results.csv")
    # in_context: none; lpn: none and gradient@1; x 2 seeds x 2 splits.
    assert len(rows) == (1 + 2) * 2 * 2
    assert {(r["spec"], r["search"], r["budget"]) for r in rows} == {
        ("tiny_ic", "none", "0"), ("tiny_lpn", "none", "0"), ("tiny_lpn", "gradient", "1")
    }
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0
        assert r["n"] == "4" and r["split"] in ("id", "ood") and r["task"] == "shift_l"
        assert float(r["flops"]) > 0
    flops = {(r["spec"], r["search"]): float(r["flops"]) for r in rows}
    assert flops[("tiny_lpn", "gradient")] > flops[("tiny_lpn", "none")]  # search costs compute
    # The runs were trained with the --steps override, one per seed.
    names = sorted(p.name for p in runs.iterdir())
    assert names == ["tiny_ic-seed0", "tiny_ic-seed1", "tiny_lpn-seed0", "tiny_lpn-seed1"]

    table = (out / "results.md").read_text()
    assert "| method | shift_l ID | shift_l OOD | test FLOPs/task |" in table
    assert "| lpn gradient (1) |" in table and "| in_context none |" in table
    assert sum(line.count(" ± ") for line in table.splitlines() if line.startswith("| ")) == 3 * 2
    png = (out / "budget.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert table in first.out  # the table is printed too

    # A second run reuses the trained runs (same spec hash) and, deterministic, gives the same accuracies.
    assert main([*argv[:-4], "--out", str(tmp_path / "res2"), "--runs", str(runs), "--no-flops"]) == 0
    second = capsys.readouterr()
    assert "model reused" in second.err and "model trained" not in second.err
    again = read_rows(tmp_path / "res2" / "results.csv")
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]
    assert all(math.isnan(float(r["flops"])) for r in again)

    # Without 0 among the budgets in_context is not scored at all; the note says so, --quiet or not.
    assert main(["eval", *specs, "--budgets", "1", "--tasks", "4", "--steps", "0", "--runs", str(runs),
                 "--out", str(tmp_path / "res5"), "--no-flops", "--quiet"]) == 0
    assert capsys.readouterr().err == "nlic eval: note: --budgets do not apply to tiny_ic (in_context: not scored: " \
        "none runs at budget 0 only)\n"
    assert {(r["spec"], r["search"]) for r in read_rows(tmp_path / "res5" / "results.csv")} == {("tiny_lpn", "gradient")}

    # Another search budget is the same training: the run is reused, not retrained.
    edited = tmp_path / "edited"
    edited.mkdir()
    text = (tmp_path / "tiny_lpn.yaml").read_text().replace("starts: 2, steps: 2", "starts: 3, steps: 4")
    (edited / "tiny_lpn.yaml").write_text(text)
    model = (runs / "tiny_lpn-seed0" / "model.eqx").read_bytes()
    assert main(["eval", str(edited / "tiny_lpn.yaml"), "--seeds", "0", "--budgets", "0", "--tasks", "4",
                 "--steps", "0", "--runs", str(runs), "--out", str(tmp_path / "res4"), "--no-flops"]) == 0
    assert "model reused" in capsys.readouterr().err
    assert (runs / "tiny_lpn-seed0" / "model.eqx").read_bytes() == model

    # --steps 1 is another spec (the training budget is part of it): the finished run is not overwritten.
    model = (runs / "tiny_ic-seed0" / "model.eqx").read_bytes()
    argv = ["eval", specs[0], "--steps", "1", "--runs", str(runs), "--out", str(tmp_path / "res3"), "--quiet"]
    assert main(argv) == 2
    assert "--retrain" in capsys.readouterr().err
    assert (runs / "tiny_ic-seed0" / "model.eqx").read_bytes() == model
    assert not (tmp_path / "res3").exists()


def test_eval_reports_user_errors_with_exit_2(tmp_path, capsys):
    specs = write_specs(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny("bad", "lpn", "gradient").replace("pairs: 2", "pairs: 2\n  pears: 3"))
    assert main(["eval", specs[0], str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "pears" in err and "Traceback" not in err
    assert main(["eval", specs[0], "--seeds", "0,x"]) == 2
    assert "--seeds: error: 'x' is not an integer" in capsys.readouterr().err
    assert main(["eval", specs[1], "--methods", "gradiant"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["eval", specs[0], specs[0]]) == 2  # two specs named alike would share run directories
    assert "named 'tiny_ic'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_budgets_no_spec_can_use_are_refused_before_training(tmp_path, capsys):
    specs = write_specs(tmp_path)
    out, runs = tmp_path / "res", tmp_path / "runs"
    assert main(["eval", specs[0], "--budgets", "0,10,100", "--out", str(out), "--runs", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err == "--budgets: error: budgets 10, 100 apply to no search evaluated here (in_context: none; none runs " \
        "once, at budget 0) (drop them, or add a spec whose model kind searches with a budget: dlpn, lpn, nli, ttt)\n"
    # lpn has searches that take a budget; --methods leaves them out.
    assert main(["eval", specs[1], "--methods", "none", "--budgets", "5", "--out", str(out), "--runs", str(runs)]) == 2
    assert "(lpn: none; none runs once, at budget 0) (drop them, or add to --methods a search that takes one " \
        "(e.g. gradient))" in capsys.readouterr().err
    assert not out.exists() and not runs.exists()  # nothing trained
    with pytest.raises(SpecError, match="budgets 3 apply to no search evaluated here"):
        evaluate([dataclasses.replace(Spec(), model=dataclasses.replace(Spec().model, kind="in_context"))],
                 budgets=[0, 3], runs=runs)


def test_unknown_splits_and_a_file_as_out_or_runs_are_refused_before_training(tmp_path, capsys):
    """`--splits bogus` trained (or reused) every run, then ended in 'error: task family 'shift' has no split
    'bogus'' with no location; `--out results.csv` (a file) trained and scored everything, then failed writing;
    `--runs FILE` said 'cannot write the run directory' and that the run 'is reused only when it was trained from
    the same spec'. All are refused before anything trains."""
    specs = write_specs(tmp_path)
    out, runs, a_file = tmp_path / "res", tmp_path / "runs", tmp_path / "results.csv"
    a_file.write_text("mine\n")
    assert main(["eval", *specs, "--splits", "ood,bogus", "--out", str(out), "--runs", str(runs)]) == 2
    assert capsys.readouterr().err == (
        "--splits: error: spec 'tiny_ic': task family 'shift' has no split 'bogus' (expected one of: id, ood, train)\n"
        "--splits: error: spec 'tiny_lpn': task family 'shift' has no split 'bogus' (expected one of: id, ood, "
        "train)\n")
    assert main(["eval", specs[0], "--out", str(a_file), "--runs", str(runs)]) == 2
    assert capsys.readouterr().err == (f"{a_file}: error: a file is in the way of the results directory (write the "
                                       "results elsewhere with --out DIR)\n")
    assert main(["eval", specs[0], "--out", str(a_file / "sub"), "--runs", str(runs)]) == 2
    assert f"{a_file}: error: the results directory {a_file / 'sub'} would be inside this file" in \
        capsys.readouterr().err
    assert main(["eval", specs[0], "--out", str(out), "--runs", str(a_file)]) == 2
    assert capsys.readouterr().err == (f"{a_file}: error: a file is in the way of the directory of the runs (train "
                                       "elsewhere with --runs DIR)\n")
    assert not out.exists() and not runs.exists() and a_file.read_text() == "mine\n"  # nothing trained

def test_kind_qualified_methods_apply_to_that_kind_only(tmp_path):
    methods = ("none", "nli:enumerate", "lpn:gradient", "ttt:gradient", "gradient")
    assert methods_of(methods, "nli") == ("none", "enumerate", "gradient")
    assert methods_of(methods[:4], "nli") == ("none", "enumerate")
    assert methods_of(methods[:4], "lpn") == ("none", "gradient")
    assert methods_of(methods[:4], "in_context") == ("none",)
    # A kind or method no spec here has: the located error, before any training.
    with pytest.raises(SpecError, match="no model kind here has the search method 'lpn:enumerate'"):
        evaluate([Spec()], methods=["lpn:enumerate"], runs=tmp_path)


def test_search_plan_and_table_layout():
    spec = Spec(search=SearchSpec(steps=7, starts=5))
    plan = search_plan(spec, ("none", "prior", "gradient"), ("none", "gradient", "prior"), [0, 10, 100])
    assert [(m, b) for m, b, _ in plan] == [
        ("none", 0), ("prior", 10), ("prior", 100), ("gradient", 10), ("gradient", 100)
    ]
    assert plan[1][2].starts == 10 and plan[4][2].steps == 100 and plan[4][2].method == "gradient"
    default = search_plan(spec, ("none", "gradient"), ("none", "gradient"), None)
    assert [(m, b, s.steps) for m, b, s in default] == [("none", 0, 7), ("gradient", 7, 7)]
    assert search_plan(spec, ("prior",), ("none", "gradient"), None) == []  # unsupported modes are skipped
    # An enumeration's budget is the programs it may try (it spends no gradient step): labelled and set as such.
    enum = search_plan(Spec(search=SearchSpec(programs=5000)), ("enumerate",), ("enumerate",), None)
    assert [(m, b, s.programs) for m, b, s in enum] == [("enumerate", 5000, 5000)]
    assert [s.programs for _, _, s in search_plan(spec, ("enumerate",), ("enumerate",), [0, 300])] == [300]

    def row(**kw):
        base = dict(spec="a", kind="lpn", task="shift_l", search="none", budget=0, seed=0, split="id",
                    accuracy=1.0, n=10, seconds=0.1, flops=2e6)
        return Row(**{**base, **kw})

    rows = [row(), row(seed=1, accuracy=0.5), row(split="ood", accuracy=0.0), row(task="comp_i", spec="b")]
    table = results_markdown(rows).splitlines()
    assert table[0] == "| method | shift_l ID | shift_l OOD | comp_i ID | test FLOPs/task |"
    # lpn on shift_l (spec a) and on comp_i (spec b) is one row: one method, two task groups.
    assert table[2] == "| lpn none | 0.75 ± 0.25 | 0.00 ± 0.00 | 1.00 ± 0.00 | 2e+06 |"
    # Two specs of one kind on the same task are told apart by name.
    two = results_markdown([row(), row(spec="c", accuracy=0.0)]).splitlines()
    assert two[2].startswith("| a none |") and two[3].startswith("| c none |")
    assert dataclasses.asdict(rows[0])["flops"] == 2e6
