"""Tests of `nlic compile`: the summary, the build directory, and the exported executor replayed without model code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_train import TOY, cache_env, run_cli, tiny_spec, tiny_text

from nlic.compiler.kinds import MODEL_KINDS
from nlic.grammar.errors import ArtifactError, DataError, ProgramError
from nlic.compiler.families import shapes_of
from nlic.compiler.identity import weight_leaves
from nlic.compiler.lower import compile_spec, format_summary
from nlic.compiler.optim import init_state, make_optimizer
from nlic.runtime.build import load_artifact, write_build


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "tiny"
    compiled = compile_spec(tiny_spec())
    write_build(compiled, out)
    return out, compiled.summary


def test_summary_reports_parameters_flops_memory_and_times(build):
    out, summary = build
    assert summary["kind"] == TOY and summary["shapes"] == {"length": 12, "values": 5, "pairs": 3}
    params = summary["parameters"]
    assert set(params) == {"induce", "values", "codes", "mix", "out", "total"}
    assert params["values"] == 5 * 16 and params["codes"] == 6 * 16
    assert params["total"] == sum(v for k, v in params.items() if k != "total")
    for name in ("train_step", "search", "executor"):
        f = summary["functions"][name]
        assert f["flops"] > 0 and f["compile_s"] > 0 and f["memory"]["argument_size"] > 0
    # A training step (forward + backward over 8 tasks) costs more than running one program on one datum.
    assert summary["functions"]["train_step"]["flops"] > summary["functions"]["executor"]["flops"]
    assert json.loads((out / "summary.json").read_text())["spec_hash"] == summary["spec_hash"]
    assert {p.name for p in out.iterdir()} == {"spec.yaml", "summary.json", "executor.jaxexport", "executor.json",
                                               "weights.npz"}


def test_format_summary_is_readable(build):
    text = format_summary(build[1])
    assert "parameters:" in text and "train_step" in text and "FLOPs" in text and text.splitlines()[-1].startswith("total")


def test_weights_are_the_initial_weights_of_training(build):
    spec = tiny_spec()
    model, _, _ = init_state(spec, MODEL_KINDS.get(TOY), shapes_of(spec), make_optimizer(spec.training))
    saved = load_artifact(build[0]).weights()
    for a, b in zip(saved, weight_leaves(model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# Replays a build directory with jax alone: no nlic import, so no model code (the toy kind is not even registered
# in that process). What `nlic.runtime.Artifact.run` does, minus its checks.
REPLAY = """\
import json, sys
from pathlib import Path
import jax, jax.numpy as jnp
import numpy as np

d = Path(sys.argv[1])
meta = json.loads((d / "executor.json").read_text())
exported = jax.export.deserialize(bytearray((d / "executor.jaxexport").read_bytes()))
with np.load(d / "weights.npz", allow_pickle=False) as z:
    w = [jnp.asarray(z[f"leaf_{i:05d}"]) for i in range(len(z.files))]
rng = np.random.default_rng(0)
progs = rng.integers(0, meta["vocab"], (3, meta["max_length"])).astype(np.int32)
xs = rng.integers(0, meta["values"], (3, meta["length"])).astype(np.int32)
run = lambda p, x: np.asarray(exported.call(w, jnp.asarray(p), jnp.asarray(x))).tolist()
short = np.pad(progs[:, :2], ((0, 0), (0, meta["max_length"] - 2)), constant_values=meta["skip_token"])
print(json.dumps({"three": run(progs, xs), "one": run(progs[:1], xs[:1]), "short": run(short, xs),
                  "progs": progs.tolist(), "xs": xs.tolist(),
                  "nlic_imported": any(m.split(".")[0] == "nlic" for m in sys.modules)}))
"""


def test_exported_executor_replays_without_model_code(build, tmp_path):
    import jax.numpy as jnp

    script = tmp_path / "replay.py"
    script.write_text(REPLAY)
    r = subprocess.run([sys.executable, str(script), str(build[0])], env={**os.environ, **cache_env(tmp_path)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["nlic_imported"] is False
    assert np.asarray(got["one"]).tolist() == got["three"][:1]

    # The same programs through the model code, with the weights from the build directory.

    spec = tiny_spec()
    kind = MODEL_KINDS.get(TOY)
    model, _, _ = init_state(spec, kind, shapes_of(spec), make_optimizer(spec.training))
    progs, xs = jnp.asarray(got["progs"]), jnp.asarray(got["xs"])
    np.testing.assert_array_equal(np.asarray(kind.execute(model, progs, xs)), got["three"])
    padded = jnp.pad(progs[:, :2], ((0, 0), (0, spec.language.max_length - 2)), constant_values=spec.language.skip_token)
    np.testing.assert_array_equal(np.asarray(kind.execute(model, padded, xs)), got["short"])
    assert load_artifact(build[0]).spec_hash == json.loads((build[0] / "summary.json").read_text())["spec_hash"]


def test_bad_calls_are_refused(build):
    art = load_artifact(build[0])
    w = art.weights()
    progs = np.zeros((2, 3), np.int32)
    xs = np.zeros((2, art.meta["length"]), np.int32)
    with pytest.raises(ArtifactError, match="weight arrays given"):
        art.run(w[:-1], progs, xs)
    with pytest.raises(ArtifactError, match="weight 0 is"):
        art.run([np.zeros((1, 1), np.float32)] + w[1:], progs, xs)
    with pytest.raises(ProgramError, match="tokens must lie in"):
        art.run(w, progs + art.meta["vocab"], xs)
    with pytest.raises(ProgramError, match="longer than"):
        art.run(w, np.zeros((2, art.meta["max_length"] + 1), np.int32), xs)
    with pytest.raises(DataError, match="length"):
        art.run(w, progs, xs[:, :-1])
    with pytest.raises(DataError, match="values must lie"):
        art.run(w, progs, xs + art.meta["values"])


@pytest.mark.parametrize("damage, message", [
    ("flip", "checksum mismatch"),
    ("no-meta", "executor.json is missing"),
    ("bad-meta", "corrupt executor metadata"),
    ("version", "format version 7"),
    ("no-dir", "no such build directory"),
])
def test_damaged_artifacts_are_refused(build, tmp_path, damage, message):
    import shutil

    d = tmp_path / "b"
    shutil.copytree(build[0], d)
    if damage == "flip":
        blob = bytearray((d / "executor.jaxexport").read_bytes())
        blob[len(blob) // 2] ^= 0x01
        (d / "executor.jaxexport").write_bytes(bytes(blob))
    elif damage == "no-meta":
        (d / "executor.json").unlink()
    elif damage == "bad-meta":
        (d / "executor.json").write_text("{not json")
    elif damage == "version":
        meta = json.loads((d / "executor.json").read_text())
        (d / "executor.json").write_text(json.dumps({**meta, "version": 7}))
    else:
        d = tmp_path / "missing"
    with pytest.raises(ArtifactError, match=message) as e:
        load_artifact(d)
    assert e.value.diagnostics[0].hint and str(d) in e.value.render()


def test_cli_compile(tmp_path):
    (tmp_path / "spec.yaml").write_text(tiny_text())
    r = run_cli(tmp_path, "compile", "spec.yaml", "--out", "b")
    assert r.returncode == 0, r.stderr
    assert "parameters:" in r.stdout and "train_step" in r.stdout and "total" in r.stdout
    assert (tmp_path / "b" / "executor.jaxexport").exists()
    r = run_cli(tmp_path, "compile", "missing.yaml")
    assert r.returncode == 2 and "missing.yaml" in r.stderr and "Traceback" not in r.stderr



