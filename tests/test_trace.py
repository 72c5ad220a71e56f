"""Execution traces: `nli.trace` (the state after every token), its export in a build directory, `replay(...,
trace=True)` and `nlic run --trace` / `--trace-out`, on tiny trained models."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_solve_run import SPEC, _cli, _rows

from nlic.compiler import parse_spec
from nlic.compiler.families import shapes_of
from nlic.compiler.kinds import MODEL_KINDS, kind_of
from nlic.compiler.lower import CompiledSpec, export_executor, export_trace, format_summary
from nlic.compiler.models.nli import build as build_nli, execute, trace
from nlic.grammar.errors import ArtifactError
from nlic.grammar.program import load_programs
from nlic.runtime import traces
from nlic.runtime.build import TRACE_FILE, load_artifact, write_build
from nlic.runtime.files import seal, write_sealed
from nlic.runtime.replay import replay, trace_programs
from nlic.runtime.run_dir import load_run
from nlic.runtime.train import train

X = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
HAND = ('nlic-programs 1\nlanguage "tiny_shift"\nvocab 6 skip t0 max_length 6\n\nalias t1 = step\n\n'
        'program six = step step t2 step step step\nprogram one = t3\nprogram "odd/$ id" = t4 step\n'
        "program none =\n")


# --- a tiny trained run, and the jittable trace on it ---------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("trace")
    # test_solve_run's spec, trained long and fast enough (40 steps, lr 0.01) for its tokens to change values.
    text = SPEC.replace("training: {steps: 2, batch: 8, warmup: 1, log_every: 1,",
                        "training: {steps: 40, batch: 8, warmup: 1, lr: const(0.01), log_every: 10,")
    assert text != SPEC
    train(parse_spec(text, str(d / "tiny.yaml")), out=d / "run", progress=False)
    hand = d / "hand.nlp"
    hand.write_text(HAND)
    inputs = d / "in.jsonl"
    rows = (("six", X), ("one", X[::-1]), ("odd/$ id", X), ("six", X[::-1]), ("none", X))
    inputs.write_text("".join(json.dumps({"id": i, "input": x}) + "\n" for i, x in rows))
    return d / "run"


def _with_relaxation(spec, model, **relax):
    """The trained weights under another executor semantics (the ablations change no parameter of the executor)."""
    spec = dataclasses.replace(spec, relaxation=dataclasses.replace(spec.relaxation, **relax))
    like = jax.eval_shape(lambda: build_nli(spec, shapes_of(spec), key=jax.random.key(0)))
    return spec, jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), jax.tree_util.tree_leaves(model))


@pytest.mark.parametrize("relax", [{}, {"value_bottleneck": False}, {"recurrent": False}],
                         ids=["bottleneck", "hidden", "non_recurrent"])
def test_trace_ends_at_the_executed_output_and_skips_repeat(run_dir, relax):
    spec, model = _with_relaxation(*load_run(run_dir), **relax)
    skip, K = spec.language.skip_token, spec.language.vocab
    rng = np.random.default_rng(1)
    programs = rng.integers(1, K, (8, spec.language.max_length)).astype(np.int32)
    programs[:, [1, 4]] = skip  # skips inside the programs
    programs[:2, 3:] = skip  # and as padding
    x = rng.integers(0, model.cfg.values, (8, model.cfg.positions)).astype(np.int32)
    values, probs = trace(model, programs, x)
    T, L = programs.shape[1], x.shape[1]
    assert values.shape == probs.shape == (8, T + 1, L) and values.dtype == jnp.int32 and probs.dtype == jnp.float32
    values, probs = np.asarray(values), np.asarray(probs)
    np.testing.assert_array_equal(values[:, -1], np.asarray(execute(model, programs, x)))
    np.testing.assert_array_equal(values[:, 0], x)
    # Row 0 is certain; every other probability is that of the likeliest of V values.
    assert np.all(probs[:, 0] == 1.0) and np.all((probs >= 1.0 / model.cfg.values - 1e-6) & (probs <= 1.0 + 1e-6))
    for b, k in zip(*np.nonzero(programs == skip)):
        np.testing.assert_array_equal(values[b, k + 1], values[b, k])
        np.testing.assert_array_equal(probs[b, k + 1], probs[b, k])
    # Row k is the output of the program's first k tokens (padded with skips: the same shapes, compiled once).
    for k in (2, 5):
        prefix = np.where(np.arange(T) < k, programs, skip)
        np.testing.assert_array_equal(values[:, k], np.asarray(execute(model, prefix, x)))
    assert np.any(values[:, 1:] != values[:, :1]), "the trained tokens should change some values"
    assert np.any(probs[:, 1:] < 0.9)


# --- run directory, program files, build directory -------------------------------------------------------------


@pytest.fixture(scope="module")
def build(run_dir):
    spec, model = load_run(run_dir)
    kind, shapes = kind_of(spec), shapes_of(spec)
    blob, meta = export_executor(spec, kind, model, shapes)
    tblob, tmeta = export_trace(spec, kind, model, shapes)
    out = run_dir.parent / "build"
    write_build(CompiledSpec(spec=spec, kind=kind, summary={}, model=model, executor=blob, executor_meta=meta,
                             trace=tblob, trace_meta=tmeta), out)
    return out


def _check_trace(rows, pf):
    for row in rows:
        steps = row["trace"]
        tokens = pf.get(row["id"]).tokens
        assert [s["step"] for s in steps] == list(range(len(tokens) + 1))
        assert steps[0]["token"] is None and steps[0]["tokens"] == steps[0]["values"] == row["input"]
        assert [s["token"] for s in steps[1:]] == [pf.token_name(t) for t in tokens]
        assert steps[-1]["values"] == row["output"] and steps[-1]["tokens"] == row["output"]
        assert all(0.0 < p <= 1.0 and round(p, 4) == p for s in steps for p in s["probs"])


def test_replay_trace_of_a_hand_written_file(run_dir, build):
    hand, inputs = run_dir.parent / "hand.nlp", run_dir.parent / "in.jsonl"
    pf = load_programs(hand)
    plain = replay(run_dir, hand, [inputs])
    rows = replay(run_dir, hand, [inputs], trace=True)
    assert [{k: v for k, v in r.items() if k != "trace"} for r in rows] == plain
    _check_trace(rows, pf)
    assert [s["token"] for s in rows[0]["trace"]] == [None, "step", "step", "t2", "step", "step", "step"]
    assert len(rows[-1]["trace"]) == 1  # the empty program: its input only
    # The exported trace gives the same steps (probabilities to within float noise of another compilation).
    art_rows = replay(run_dir, hand, [inputs], trace=True, artifact=build)
    assert [{k: v for k, v in r.items() if k != "trace"} for r in art_rows] == plain
    for a, b in zip(art_rows, rows):
        assert [s["tokens"] for s in a["trace"]] == [s["tokens"] for s in b["trace"]]
        np.testing.assert_allclose([s["probs"] for s in a["trace"]], [s["probs"] for s in b["trace"]], atol=2e-4)


def test_replay_trace_of_a_solved_file(run_dir, build, tmp_path):
    out, preds = tmp_path / "ood.nlp", tmp_path / "ood.jsonl"
    code, _, stderr = _cli("solve", run_dir, "ood", "--search", "none", "-n", "5", "--out", out,
                           "--predictions", preds)
    assert code == 0, stderr
    pf = load_programs(out)
    for artifact in (None, build):
        rows = replay(run_dir, out, [preds], trace=True, artifact=artifact)
        _check_trace(rows, pf)
        assert [r["output"] for r in rows] == [r["output"] for r in _rows(preds)]


def test_artifact_trace_pads_with_repeating_skips(run_dir, build):
    art = load_artifact(build)
    w = art.load_weights(run_dir / "executor_weights.npz")
    # Five rows, as the replays above: the exported functions compile once per batch size.
    progs = np.array([[1, 2], [3, 1], [2, 2], [5, 4], [1, 1]], np.int32)
    xs = np.array([X, X[::-1], X, X[::-1], X], np.int32)
    values, probs = art.trace(w, progs, xs)
    assert values.shape == probs.shape == (5, art.meta["max_length"] + 1, len(X))
    np.testing.assert_array_equal(values[:, -1], art.run(w, progs, xs))
    assert np.all(values[:, 3:] == values[:, 2:3]) and np.all(probs[:, 3:] == probs[:, 2:3])
    spec, model = load_run(run_dir)
    v, p = trace_programs(spec, model, np.pad(progs, ((0, 0), (0, 4))), xs)
    np.testing.assert_array_equal(values, v)
    np.testing.assert_allclose(probs, p, atol=1e-5)


def test_old_or_damaged_builds_refuse_a_trace_but_still_replay(run_dir, build, tmp_path):
    hand, inputs = run_dir.parent / "hand.nlp", run_dir.parent / "in.jsonl"
    old = tmp_path / "old"
    shutil.copytree(build, old)
    (old / TRACE_FILE).unlink()
    code, stdout, stderr = _cli("run", "--artifact", old, run_dir, hand, "--inputs", inputs)
    assert code == 0, stderr
    assert [json.loads(line) for line in stdout.splitlines()] == replay(run_dir, hand, [inputs])
    code, stdout, stderr = _cli("run", "--artifact", old, run_dir, hand, "--inputs", inputs, "--trace")
    assert code == 2 and stdout == "" and "Traceback" not in stderr
    assert f"{old}: error: the build has no exported trace (trace.jaxexport is missing" in stderr
    assert "re-run `nlic compile" in stderr
    with pytest.raises(ArtifactError, match="no exported trace"):
        load_artifact(old).trace(load_artifact(old).weights(), [[1]], [X])
    # A flipped byte, and a trace sealed for another executor.
    blob = bytearray((build / TRACE_FILE).read_bytes())
    blob[-100] ^= 1
    (old / TRACE_FILE).write_bytes(bytes(blob))
    code, _, stderr = _cli("run", "--artifact", old, run_dir, hand, "--inputs", inputs, "--trace")
    assert code == 2 and "trace is truncated or corrupt" in stderr and str(old / TRACE_FILE) in stderr
    header = json.loads((build / TRACE_FILE).read_bytes().split(b"\n", 1)[0])
    payload = (build / TRACE_FILE).read_bytes().split(b"\n", 1)[1]
    fields = {k: v for k, v in header.items() if k not in ("format", "version", "sha256", "bytes", "header_sha256")}
    write_sealed(old / TRACE_FILE, payload, seal(payload, format="nlic-trace", version=1,
                                                 **{**fields, "executor_sha256": "0" * 64}))
    code, _, stderr = _cli("run", "--artifact", old, run_dir, hand, "--inputs", inputs, "--trace")
    assert code == 2 and "was exported with another executor" in stderr


# --- the command line ------------------------------------------------------------------------------------------


def test_cli_trace_prints_a_table_per_input(run_dir):
    hand, inputs = run_dir.parent / "hand.nlp", run_dir.parent / "in.jsonl"
    code, stdout, stderr = _cli("run", run_dir, hand, "--inputs", inputs, "--trace")
    assert code == 0, stderr
    blocks = stdout.strip("\n").split("\n\n")
    rows = replay(run_dir, hand, [inputs], trace=True)
    assert len(blocks) == len(rows)
    first = blocks[0].splitlines()
    assert first[0] == "six: step step t2 step step step"
    assert first[1].split()[:3] == ["step", "token", "values"]
    assert [line.split()[:2] for line in first[2:-1]] == [[str(k), t] for k, t in enumerate(
        ["input", "step", "step", "t2", "step", "step", "step"])]
    for line, step in zip(first[2:-1], rows[0]["trace"]):
        cells = line.split()[2 : 2 + len(X)]
        assert [int(c.rstrip("?")) for c in cells] == step["tokens"]
        assert [c.endswith("?") for c in cells] == [p < 0.9 for p in step["probs"]]
    assert first[-1] == f"output: {json.dumps(rows[0]['output'])}"
    assert blocks[2].startswith("odd/$ id: t4 step") and blocks[-1].startswith("none: (empty program)")


def test_format_trace_marks_low_confidence_positions():
    row = {"id": "a\x1b", "output": [1, 2], "trace": [
        {"step": 0, "token": None, "values": [1, 2], "tokens": [1, 2], "probs": [1.0, 1.0]},
        {"step": 1, "token": "shift", "values": [1, 2], "tokens": [1, 12], "probs": [0.95, 0.5123]},
    ]}
    lines = traces.format_trace(row).splitlines()
    assert lines[0] == "a\\x1b: shift"
    assert lines[2] == "   0  input   1   2"
    assert lines[3] == "   1  shift   1  12?  #1=12 (0.51)"
    many = {**row, "trace": [{**row["trace"][1], "tokens": [3] * 6, "probs": [0.5, 0.4, 0.3, 0.2, 0.6, 0.95]}]}
    assert traces.format_trace(many).splitlines()[2].endswith("  5/6 below 0.9, lowest #3=3 (0.20)")


def test_cli_trace_out_writes_json_and_heat_maps_and_refuses_to_overwrite(run_dir, tmp_path):
    hand, inputs = run_dir.parent / "hand.nlp", run_dir.parent / "in.jsonl"
    d, plain = tmp_path / "traces", tmp_path / "out.jsonl"
    code, stdout, stderr = _cli("run", run_dir, hand, "--inputs", inputs, "--trace-out", d, "--out", plain)
    assert code == 0, stderr
    assert stdout == "" and "wrote" in stderr and "5 traces" in stderr
    rows = replay(run_dir, hand, [inputs], trace=True)
    doc = json.loads((d / "trace.json").read_text())
    assert doc["version"] == 1 and doc["rows"] == rows
    assert _rows(plain) == [{k: v for k, v in r.items() if k != "trace"} for r in rows]
    assert sorted(p.name for p in d.iterdir()) == ["none.png", "odd_id.png", "one.png", "six-2.png", "six.png",
                                                   "trace.json"]
    assert all((d / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in ("six.png", "odd_id.png"))
    # Again: refused before any work, nothing replaced; --force overwrites; --trace and --trace-out combine.
    before = (d / "trace.json").read_bytes()
    (d / "six.png").write_bytes(b"mine")
    code, stdout, stderr = _cli("run", run_dir, hand, "--inputs", inputs, "--trace-out", d)
    assert code == 2 and stdout == "" and "Traceback" not in stderr
    assert f"{d / 'trace.json'}: error: the trace file already exists; refusing to replace it" in stderr
    assert "--force" in stderr and (d / "six.png").read_bytes() == b"mine"
    (d / "trace.json").unlink()
    code, _, stderr = _cli("run", run_dir, hand, "--inputs", inputs, "--trace-out", d)
    assert code == 2 and f"{d / 'six.png'}: error: the trace file already exists" in stderr
    code, stdout, stderr = _cli("run", run_dir, hand, "--inputs", inputs, "--trace-out", d, "--force", "--trace")
    assert code == 0, stderr
    assert stdout.startswith("six: step") and (d / "trace.json").read_bytes() == before
    assert (d / "six.png").read_bytes()[:4] == b"\x89PNG"
    # A file where the directory should be.
    code, _, stderr = _cli("run", run_dir, hand, "--inputs", inputs, "--trace-out", plain, "--force")
    assert code == 2 and "the trace directory is a file" in stderr


def test_heat_maps_are_capped_and_named_safely(tmp_path, monkeypatch):
    rows = [{"id": i, "trace": []} for i in ["a", "A", "../x", ".hidden", "", "a", "é"]]
    _, pngs = traces.trace_paths(rows, tmp_path)
    assert [p.name for p in pngs] == ["a.png", "A-2.png", "_x.png", "hidden.png", "input.png", "a-3.png", "_.png"]
    assert all(p.parent == tmp_path for p in pngs)
    assert len(traces.trace_paths([{"id": str(i)} for i in range(100)], tmp_path)[1]) == traces.MAX_PLOTS
    monkeypatch.setattr(traces, "MAX_PLOTS", 1)
    step = {"step": 0, "token": None, "values": [1], "tokens": [1], "probs": [1.0]}
    said = []
    json_path, pngs = traces.write_traces([{"id": "p", "input": [1], "output": [1], "trace": [step]}] * 3,
                                          tmp_path / "t", log=said.append)
    assert [p.name for p in pngs] == ["p.png"] and json_path.is_file()
    assert "2 more inputs not drawn (at most 1 heat maps)" in said[-1]


def test_bad_inputs_keep_their_errors_with_trace(run_dir, tmp_path):
    hand = run_dir.parent / "hand.nlp"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "six", "input": X}) + "\n" + '{"id": 1, "input": [0, 1]}\n')
    code, stdout, stderr = _cli("run", run_dir, hand, "--inputs", bad, "--trace", "--trace-out", tmp_path / "t")
    assert code == 2 and stdout == "" and stderr.startswith(f"{bad}:2: error:")
    bad.write_text(json.dumps({"id": "six", "input": [9] * 12}) + "\n")
    code, _, stderr = _cli("run", run_dir, hand, "--inputs", bad, "--trace")
    assert code == 2 and stderr.startswith(f"{bad}:1: error:") and "outside the alphabet" in stderr
    bad.write_text(json.dumps({"id": "sx", "input": X}) + "\n")
    code, _, stderr = _cli("run", run_dir, hand, "--inputs", bad, "--trace")
    assert code == 2 and "no program 'sx'" in stderr and "did you mean 'six'" in stderr
    assert "Or run every input with one program: --program ID" in stderr
    assert not (tmp_path / "t").exists()


def test_kind_without_trace_is_a_clear_error(run_dir, monkeypatch):
    replay_module = sys.modules["nlic.runtime.replay"]
    real = replay_module.kind_of
    monkeypatch.setattr(replay_module, "kind_of", lambda spec: dataclasses.replace(real(spec), trace=None))
    hand, inputs = run_dir.parent / "hand.nlp", run_dir.parent / "in.jsonl"
    code, _, stderr = _cli("run", run_dir, hand, "--inputs", inputs, "--trace")
    assert code == 2 and "model kind 'nli' has no execution trace" in stderr


def test_nli_kind_exports_a_trace_and_the_summary_shows_it():
    assert MODEL_KINDS.get("nli").trace is trace
    summary = {"name": "s", "kind": "nli", "spec_hash": "h", "shapes": {"length": 1, "values": 2, "pairs": 3},
               "backend": "cpu", "devices": 1, "parameters": {"total": 1}, "total_s": 1.0,
               "functions": {"export": {"compile_s": 0.5}, "export_trace": {"compile_s": 0.25}}}
    assert "export trace (jax.export, symbolic batch): 0.25s" in format_summary(summary)
