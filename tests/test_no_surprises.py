"""One name, one task; nothing silently replaced.

`ood-0000` is one task in `nlic data show`, `nlic data export`, `nlic solve RUN ood` and `nlic eval` (all read the
split's evaluation sample, `evaluation_tasks`); every command whose output exists refuses with exit 2, the path
and the flag that overrides it, or writes under a name that says what differs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from nlic.compiler import derive_seed, evaluation_tasks, format_spec, load_spec, parse_spec
from nlic.compiler.families import codec_of, sample_split
from nlic.compiler.spec import SearchSpec
from nlic.grammar.errors import ArtifactError
from nlic.runtime.build import check_build_dir
from nlic.runtime.commands.data import format_task
from nlic.runtime.evaluate import evaluate
from nlic.runtime.solve import output_stem
from test_solve_run import SPEC as SOLVE_SPEC, _cli, _rows

# test_solve_run's tiny run, under another name and with the cheapest search.
SPEC = SOLVE_SPEC.replace("name: tiny_shift", "name: tiny").replace(
    "search: {method: prior, starts: 4,", "search: {method: none, starts: 2,")


def _same_tasks(a, b) -> bool:
    return a.ids == b.ids and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in (
        "inputs", "outputs", "pair_mask", "query_inputs", "query_outputs", "has_target"))


def _refused(result: tuple[int, str, str], path: Path, flag: str) -> None:
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err and str(path) in err and flag in err, err


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, spec_path):
    """`nlic eval --seeds 0,1` over the spec (0 training steps), the tasks its solves saw recorded."""
    d = tmp_path_factory.mktemp("surprises")
    seen: dict[tuple[int, str], object] = {}
    module = sys.modules["nlic.runtime.evaluate"]  # `nlic.runtime.evaluate` the attribute is the function
    real = module.solve

    def recording(spec, model, tasks, **kw):
        seen[(spec.seed, tasks.ids[0].split("-")[0])] = tasks
        return real(spec, model, tasks, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "solve", recording)
        code, _, err = _cli("eval", spec_path, "--seeds", "0,1", "--methods", "none", "--budgets", "0",
                            "--steps", "0", "--no-flops", "--quiet", "--runs", d / "runs", "--out", d / "res")
    assert code == 0, err
    return {"dir": d, "spec": spec_path, "runs": d / "runs", "eval_tasks": seen}


@pytest.fixture(scope="module")
def solved(world):
    """`nlic solve runs/tiny-seed0 ood`: the spec's own search, so `programs/ood.nlp`."""
    run = world["runs"] / "tiny-seed0"
    code, stdout, err = _cli("solve", run, "ood")
    assert code == 0, err
    return run


# --- one name, one task -------------------------------------------------------------------------------------


def test_evaluation_sample_is_derived_once_and_its_prefixes_agree():
    spec = parse_spec(SPEC)
    full = evaluation_tasks(spec, "ood")
    assert full.ids == tuple(f"ood-{i:04d}" for i in range(6))
    assert _same_tasks(evaluation_tasks(spec, "ood", 3), full.take(slice(0, 3)))
    # What `nlic train` evaluated before there was one function for it.
    assert _same_tasks(full, sample_split(spec, "ood", 6, seed=derive_seed(spec.seed, "eval", "ood")))
    assert not _same_tasks(evaluation_tasks(spec, "ood", seed=1), full)
    assert len(evaluation_tasks(spec, "ood", 9)) == 9  # above eval.tasks: a larger sample


def test_ood_0000_is_one_task_in_show_export_solve_and_eval(world, solved):
    spec = load_spec(world["spec"])
    codec = codec_of(spec)
    tasks = evaluation_tasks(spec, "ood")

    # data show: the first tasks of the same sample.
    code, stdout, err = _cli("data", "show", world["spec"], "--split", "ood", "-n", "2", "--color", "never")
    assert code == 0, err
    assert format_task(tasks, 0, codec) in stdout and format_task(tasks, 1, codec) in stdout

    # data export: the file of ood-0000.
    out = world["dir"] / "exported"
    code, _, err = _cli("data", "export", world["spec"], "--split", "ood", "--out", out)
    assert code == 0, err
    assert sorted(p.stem for p in out.iterdir()) == list(tasks.ids)
    exported = json.loads((out / "ood-0000.json").read_text())
    assert exported["test"] == [{"input": codec.decode(tasks.query_inputs[0]),
                                 "output": codec.decode(tasks.query_outputs[0])}]
    assert exported["train"][0] == {"input": codec.decode(tasks.inputs[0, 0]),
                                    "output": codec.decode(tasks.outputs[0, 0])}

    # nlic solve runs/tiny-seed0 ood: its predictions name the same task.
    rows = _rows(solved / "programs" / "ood.predictions.jsonl")
    assert [r["id"] for r in rows] == list(tasks.ids)
    assert rows[0]["input"] == exported["test"][0]["input"] and rows[0]["target"] == exported["test"][0]["output"]

    # nlic eval scored seed 0 on the same sample, seed 1 on its own run's sample.
    assert _same_tasks(world["eval_tasks"][(0, "ood")], tasks)
    assert _same_tasks(world["eval_tasks"][(0, "id")], evaluation_tasks(spec, "id"))
    assert _same_tasks(world["eval_tasks"][(1, "ood")], evaluation_tasks(spec, "ood", seed=1))
    assert not _same_tasks(world["eval_tasks"][(1, "ood")], tasks)


def test_solve_n_takes_the_first_tasks_of_the_sample(world, solved, tmp_path):
    preds = tmp_path / "three.predictions.jsonl"
    code, _, err = _cli("solve", solved, "ood", "-n", "3", "--out", tmp_path / "three.nlp", "--predictions", preds)
    assert code == 0, err
    full = _rows(solved / "programs" / "ood.predictions.jsonl")
    assert [(r["id"], r["input"]) for r in _rows(preds)] == [(r["id"], r["input"]) for r in full[:3]]


def test_eval_data_seed_feeds_the_same_derivation(world):
    seen = {}
    module = sys.modules["nlic.runtime.evaluate"]
    real = module.solve

    def recording(spec, model, tasks, **kw):
        seen[spec.seed] = tasks
        return real(spec, model, tasks, **kw)

    spec = load_spec(world["spec"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "solve", recording)
        evaluate([spec], splits=["ood"], seeds=(0, 1), budgets=[0], steps=0, methods=["none"],
                 runs=world["runs"], data_seed=7, flops=False, log=None)
    want = evaluation_tasks(spec, "ood", seed=7)
    assert _same_tasks(seen[0], want) and _same_tasks(seen[1], want)


# --- nothing silently replaced ------------------------------------------------------------------------------


def test_solve_refuses_its_own_output_unless_forced(solved):
    program = solved / "programs" / "ood.nlp"
    before = program.read_text()
    _refused(_cli("solve", solved, "ood"), program, "--force")
    assert program.read_text() == before
    code, _, err = _cli("solve", solved, "ood", "--force")
    assert code == 0, err
    assert program.read_text() == before  # the same search again: the same programs


def test_another_search_writes_under_its_own_name(solved):
    programs = solved / "programs"
    before = (programs / "ood.nlp").read_text()
    code, _, err = _cli("solve", solved, "ood", "--search", "prior", "--starts", "3")
    assert code == 0, err
    assert "ood.prior-s3.nlp" in err
    assert (programs / "ood.prior-s3.nlp").is_file() and (programs / "ood.prior-s3.predictions.jsonl").is_file()
    assert (programs / "ood.nlp").read_text() == before
    _refused(_cli("solve", solved, "ood", "--search", "prior", "--starts", "3"), programs / "ood.prior-s3.nlp",
             "--force")


def test_output_stem_names_what_differs():
    own = SearchSpec(method="gradient", starts=16, steps=50)
    assert output_stem("ood", own, own, 0, 0) == "ood"
    assert output_stem("ood", own, SearchSpec(method="prior", starts=16, steps=50), 0, 0) == "ood.prior"
    assert output_stem("ood", own, SearchSpec(method="gradient", starts=8, steps=10), 0, 0) == "ood.gradient-s8-k10"
    assert output_stem("ood", own, own, 3, 0) == "ood.seed3"


def test_train_refuses_a_run_with_results(world):
    run = world["runs"] / "tiny-seed0"
    model = (run / "model.eqx").read_bytes()
    code, _, err = _cli("train", world["spec"], "--out", run, "--no-progress")
    assert code == 2 and str(run) in err and "--resume" in err and "--force" in err and "Traceback" not in err
    assert (run / "model.eqx").read_bytes() == model


def test_eval_refuses_existing_results_before_training(world, tmp_path):
    results = world["dir"] / "res" / "results.csv"
    before = results.read_text()
    runs = tmp_path / "runs"
    _refused(_cli("eval", world["spec"], "--steps", "0", "--runs", runs, "--out", world["dir"] / "res"), results,
             "--force")
    assert results.read_text() == before and not runs.exists()  # nothing trained


def test_compile_never_writes_a_build_into_a_training_run(spec_path, tmp_path):
    """`nlic compile OTHER.yaml --out RUN --force` took the run for a build of another spec and replaced the spec.yaml
    it was trained with: every later solve said 'the model was trained for another spec'."""
    spec = load_spec(spec_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text("name: locked\n")
    (run / "model.json").write_text("{}\n")
    for force in (False, True):
        with pytest.raises(ArtifactError, match=r"is a training run \(model.json\); a build would replace the "
                                                "spec.yaml it was trained with") as e:
            check_build_dir(spec, run, force=force)
        assert e.value.render().startswith(f"{run}: error:")
    _refused(_cli("compile", spec_path, "--out", run, "--force"), run, "--out DIR")
    assert (run / "spec.yaml").read_text() == "name: locked\n"

def test_compile_refuses_a_build_of_another_spec(spec_path, tmp_path):
    spec = load_spec(spec_path)
    build = tmp_path / "build"
    build.mkdir()
    (build / "spec.yaml").write_text("name: other\n")
    (build / "summary.json").write_text("{}\n")
    (build / "notes.txt").write_text("mine\n")
    with pytest.raises(ArtifactError, match="another spec") as e:
        check_build_dir(spec, build)
    assert str(build) in e.value.render() and "--force" in e.value.render()
    _refused(_cli("compile", spec_path, "--out", build), build, "--force")  # before compiling anything
    assert (build / "spec.yaml").read_text() == "name: other\n"
    # --force removes exactly the old build files; a rebuild of the same spec replaces nothing.
    assert sorted(p.name for p in check_build_dir(spec, build, force=True)) == ["spec.yaml", "summary.json"]
    (build / "spec.yaml").write_text(format_spec(spec, syntax="yaml"))
    assert check_build_dir(spec, build) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(ArtifactError, match="is a file"):
        check_build_dir(spec, tmp_path / "file", force=True)


def test_data_export_refuses_a_non_empty_directory(spec_path, tmp_path):
    out = tmp_path / "tasks"
    out.mkdir()
    (out / "ood-0000.json").write_text("precious\n")
    _refused(_cli("data", "export", spec_path, "--split", "ood", "--out", out, "-n", "2"), out, "--force")
    assert (out / "ood-0000.json").read_text() == "precious\n"
    code, _, err = _cli("data", "export", spec_path, "--split", "ood", "--out", out, "-n", "2", "--force")
    assert code == 0, err
    assert json.loads((out / "ood-0000.json").read_text())["test"]


def test_fmt_out_refuses_an_existing_file_and_in_place_rewrites(spec_path, tmp_path):
    out = tmp_path / "canon.yaml"
    out.write_text("precious\n")
    _refused(_cli("fmt", spec_path, "--out", out), out, "--force")
    assert out.read_text() == "precious\n"
    code, _, err = _cli("fmt", spec_path, "--out", out, "--force")
    assert code == 0, err
    canonical = out.read_text()

    mine = tmp_path / "mine.yaml"
    mine.write_text(SPEC + "# a comment\n")
    code, _, err = _cli("fmt", mine, "--check")
    assert code == 1 and "--in-place" in err
    code, stdout, err = _cli("fmt", mine, "--in-place")
    assert code == 0 and stdout == "", err
    assert mine.read_text() == canonical and sorted(p.name for p in tmp_path.iterdir()) == ["canon.yaml", "mine.yaml"]
    assert _cli("fmt", mine, "--check")[0] == 0

    for flags, where in ((("--in-place", "--out", tmp_path / "x.yaml"), "--in-place"),
                         (("--in-place", "--to", "nls"), "--to")):
        code, _, err = _cli("fmt", mine, *flags)
        assert code == 2 and where in err and "Traceback" not in err, err
    assert mine.read_text() == canonical and not (tmp_path / "x.yaml").exists()


def test_fmt_in_place_through_a_link_rewrites_the_file_it_names(tmp_path):
    """`nlic fmt link.yaml --in-place` replaced the link by a canonical copy and left the spec it named as it was."""
    real, link = tmp_path / "real.yaml", tmp_path / "link.yaml"
    real.write_text(SPEC + "# a comment\n")
    link.symlink_to(real.name)
    code, _, err = _cli("fmt", link, "--in-place")
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == real.name
    assert "# a comment" not in real.read_text() and _cli("fmt", real, "--check")[0] == 0
