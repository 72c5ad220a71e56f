"""Injected faults: a full disk or a read-only directory while training writes, and damaged sealed files.

Faults are injected in-process at the one place nlic creates files (`nlic.runtime.files`' temp files): ENOSPC
comes from the kernel (the temp file writes to /dev/full), EROFS as the kernel raises it when a file is created.
`benchmarks/faults.py` does the same with real tmpfs mounts, SIGKILL and random damage.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from test_train import tiny_spec, tiny_text

from nlic.compiler.families import shapes_of
from nlic.compiler.kinds import kind_of
from nlic.compiler.lower import CompiledSpec, export_executor
from nlic.compiler.optim import init_state, make_optimizer
from nlic.grammar.errors import ArtifactError, CheckpointError
from nlic.runtime import checkpoint as ck
from nlic.runtime import files
from nlic.runtime import run_dir as rd
from nlic.runtime.build import WEIGHTS_FILE, WEIGHTS_SHA256, load_artifact, write_build
from nlic.runtime.cli import main

STEPS, CKPT = 6, 2


class FailingTemp:
    """Stands in for `tempfile` in `nlic.runtime.files`: temp files whose name starts with `prefix` fail."""

    def __init__(self, prefix: str, code: int):
        self.prefix, self.code, self.hits = prefix, code, 0

    def mkstemp(self, *, prefix: str, suffix: str, dir: Path) -> tuple[int, str]:
        if not prefix.startswith(self.prefix):
            return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        self.hits += 1
        if self.code == errno.EROFS:  # creating the file is what a read-only file system refuses
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, prefix + "XXXX" + suffix))
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name  # the kernel's own ENOSPC, at the write


def _train(capsys, spec_file: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = main(["train", str(spec_file), "--out", str(out), "--no-progress", *extra])
    return code, capsys.readouterr().err


def _result(run: Path) -> tuple[bytes, bytes, str, list]:
    """What must come out the same: model bytes, executor weights bytes, fingerprint, (step, loss) rows."""
    rows = [(r["step"], r["loss"]) for r in rd.read_metrics(run) if "loss" in r]
    return ((run / rd.MODEL_FILE).read_bytes(), (run / rd.EXECUTOR_WEIGHTS_FILE).read_bytes(),
            json.loads((run / rd.MODEL_META_FILE).read_text())["fingerprint"], rows)


def _temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every faulty run must end equal to."""
    d = tmp_path_factory.mktemp("faults")
    spec_file = d / "tiny.yaml"
    spec_file.write_text(tiny_text(steps=STEPS, ckpt=CKPT))
    assert main(["train", str(spec_file), "--out", str(d / "ref"), "--no-progress"]) == 0
    return spec_file, _result(d / "ref")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full for a real ENOSPC")
@pytest.mark.parametrize("fail, code, what, where", [
    (".step_00000004.eqx.", errno.ENOSPC, "checkpoint: no space left on the device", "checkpoints/step_00000004.eqx"),
    (".model.eqx.", errno.EROFS, "model: the file system is read-only", "model.eqx"),
    (".model.json.", errno.ENOSPC, "model: no space left on the device", "model.json"),
], ids=["enospc-checkpoint", "erofs-model", "enospc-model-header"])
def test_a_failed_write_stops_with_a_located_error_and_resume_ends_identical(
        reference, tmp_path, monkeypatch, capsys, fail, code, what, where):
    spec_file, expected = reference
    run = tmp_path / "run"
    fault = FailingTemp(fail, code)
    monkeypatch.setattr(files, "tempfile", fault)
    status, err = _train(capsys, spec_file, run)
    assert fault.hits == 1
    assert status == 2 and "Traceback" not in err
    assert f"{run / where}: error: cannot write the {what}" in err and "--resume" in err
    # The previous checkpoint is intact, `latest` did not move past it, and no temp file is left.
    ckdir = run / rd.CHECKPOINT_DIR
    intact = "step_00000002.eqx" if "checkpoint" in what else f"step_{STEPS:08d}.eqx"
    assert (ckdir / ck.LATEST).read_text().strip() == intact
    assert ck.read_header(ckdir / intact)["step"] == ck.checkpoint_step(intact)
    assert _temp_files(ckdir) == [] and _temp_files(run) == []

    monkeypatch.setattr(files, "tempfile", tempfile)
    status, err = _train(capsys, spec_file, run, "--resume")
    assert status == 0, err
    assert _result(run) == expected


def test_a_failed_metrics_append_is_located(reference, tmp_path, monkeypatch, capsys):
    spec_file, _ = reference

    def full(path, mode="r", *args, **kwargs):
        if mode == "a":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(rd, "open", full, raising=False)
    status, err = _train(capsys, spec_file, tmp_path / "run")
    assert status == 2 and "Traceback" not in err
    assert f"{tmp_path / 'run' / 'metrics.jsonl'}: error: cannot write the metrics: no space left" in err


def test_a_read_only_run_directory_is_refused_before_training(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny.yaml").write_text(tiny_text(steps=STEPS, ckpt=CKPT))

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    status, err = _train(capsys, tmp_path / "tiny.yaml", tmp_path / "run")
    assert status == 2 and "Traceback" not in err
    assert f"{tmp_path / 'run'}: error: cannot write the run directory: the file system is read-only" in err


def test_atomic_write_names_the_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    monkeypatch.setattr(files, "tempfile", FailingTemp(".f.bin.", errno.ENOSPC))
    with pytest.raises(OSError) as e:
        files.atomic_write(target, b"new" * 1000)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert target.read_bytes() == b"old" and _temp_files(tmp_path) == []
    # What a killed process leaves behind is swept by the next write of the same kind.
    (tmp_path / ".step_00000002.eqx.abc.tmp").write_bytes(b"partial")
    (tmp_path / ".notes.txt.abc.tmp").write_bytes(b"not ours")
    files.remove_temp_files(tmp_path, ("step_*.eqx", "latest"))
    assert _temp_files(tmp_path) == [".notes.txt.abc.tmp"]


# --- sealed headers and the build's weights -----------------------------------------------------------------


def _flip(data: bytes, at: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[at] ^= 1 << bit
    return bytes(b)


def test_every_byte_of_a_sealed_header_is_checked(tmp_path):
    spec = tiny_spec()
    state = {"w": np.arange(6, dtype=np.float32)}
    path = ck.save_checkpoint(tmp_path, state, step=3, spec=spec)
    data = path.read_bytes()
    header = json.loads(data[: data.index(b"\n")])
    assert header[files.HEADER_SHA256] == files.header_digest(header)
    # The spec copy in the header is read only to explain a mismatch: without the header checksum a change
    # there, or in the step, would load silently.
    for at in (data.index(b'"name": "tiny"') + 9, data.index(b'"step": 3') + 8):  # tiny -> uiny, 3 -> 2
        path.write_bytes(_flip(data, at))
        with pytest.raises(CheckpointError, match="header is corrupt") as e:
            ck.load_checkpoint(path, state, spec=spec)
        assert str(path) in e.value.render() and e.value.diagnostics[0].hint
    # A damaged name of the checksum key does not pass the header off as one from before sealed headers.
    at = data.index(files.HEADER_SHA256.encode())
    path.write_bytes(_flip(data, at, 5))
    with pytest.raises(CheckpointError, match="header is corrupt"):
        ck.load_checkpoint(path, state, spec=spec)
    # A checkpoint written before headers were sealed still loads.
    old = {k: v for k, v in header.items() if k != files.HEADER_SHA256}
    path.write_bytes(json.dumps(old, sort_keys=True).encode() + data[data.index(b"\n"):])
    loaded, step = ck.load_checkpoint(path, state, spec=spec)
    assert step == 3 and np.array_equal(loaded["w"], state["w"])


def test_a_side_header_must_read_back_byte_for_byte(tmp_path):
    blob, meta = tmp_path / "x.bin", tmp_path / "x.json"
    files.write_sealed(blob, b"payload", files.seal(b"payload", format="t", version=1, n=1.5), header_path=meta)
    read = lambda: files.read_sealed(blob, format="t", version=1, error=CheckpointError, what="x",  # noqa: E731
                                     hint="rewrite it", header_path=meta)
    assert read()[0]["n"] == 1.5
    text = meta.read_bytes()
    # Truncating the last newline or re-indenting parses to the same JSON; a sealed file still refuses it.
    for other in (text[:-1], json.dumps(json.loads(text)).encode()):
        meta.write_bytes(other)
        with pytest.raises(CheckpointError, match="header is corrupt") as e:
            read()
        assert str(meta) in e.value.render()


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A build directory of the tiny spec (its exported executor and initial weights; no AOT compilation)."""
    spec = tiny_spec()
    kind = kind_of(spec)
    model, _, _ = init_state(spec, kind, shapes_of(spec), make_optimizer(spec.training))
    blob, meta = export_executor(spec, kind, model, shapes_of(spec))
    out = tmp_path_factory.mktemp("build") / "b"
    write_build(CompiledSpec(spec=spec, kind=kind, summary={}, model=model, executor=blob, executor_meta=meta), out)
    return out


def test_damaged_build_weights_are_refused_by_checksum(build, tmp_path):
    import shutil

    d = tmp_path / "b"
    shutil.copytree(build, d)
    data = (d / WEIGHTS_FILE).read_bytes()
    art = load_artifact(d)
    assert art.meta[WEIGHTS_SHA256] == hashlib.sha256(data).hexdigest()
    good = art.weights()
    # Within an array's bytes a flip still reads as a valid .npz of the right shapes: only the checksum sees it.
    leaf = np.asarray(good[-1])
    at = data.rindex(leaf.tobytes()) + leaf.nbytes // 2
    for damaged in (_flip(data, at), data[: len(data) // 2], b""):
        (d / WEIGHTS_FILE).write_bytes(damaged)
        with pytest.raises(ArtifactError, match="weights.npz is truncated or corrupt") as e:
            load_artifact(d).weights()
        assert str(d / WEIGHTS_FILE) in e.value.render() and e.value.diagnostics[0].hint
    (d / WEIGHTS_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing weights.npz"):
        load_artifact(d).weights()
    # A build written before the checksum (no `weights_sha256`) loads, checked by shape only.
    (d / WEIGHTS_FILE).write_bytes(data)
    meta = json.loads((d / "executor.json").read_text())
    old = {k: v for k, v in meta.items() if k not in (WEIGHTS_SHA256, files.HEADER_SHA256)}
    (d / "executor.json").write_text(json.dumps(old))
    assert all(np.array_equal(a, b) for a, b in zip(load_artifact(d).weights(), good, strict=True))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_full_standard_output_is_an_error_without_an_empty_location(tmp_path, monkeypatch, capsys):
    """`nlic validate SPEC > /dev/full` printed ': error: No space left on device ...': a location of nothing."""
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ntask: {family: shift, params: {split: shift_l}}\n")
    full = open("/dev/full", "w", buffering=1)
    monkeypatch.setattr("sys.stdout", full)
    assert main(["validate", str(spec)]) == 2
    monkeypatch.undo()
    try:
        full.close()  # flushes what is left: the same error again
    except OSError:
        pass
    assert capsys.readouterr().err == "error: No space left on device (free some space, or write elsewhere)\n"


def test_ctrl_c_that_lands_in_a_garbage_collector_callback_still_stops_the_command(capsys):
    """A Ctrl-C raised inside jax's garbage-collector callback (or any `__del__`) was printed by Python as
    'Exception ignored in: <function _xla_gc_callback ...> Traceback ... KeyboardInterrupt' and `nlic solve` ran
    on to the end, exit 0. `guarded` hands it to the command: 'interrupted', exit 130."""
    import time

    from nlic.runtime.cli import guarded

    class InterruptedWhileCollected:
        def __del__(self):
            raise KeyboardInterrupt

    def command() -> int:
        InterruptedWhileCollected()  # collected at once: its __del__ raises where Python only reports it
        for _ in range(2000):  # ~2 s if the interrupt were lost
            time.sleep(0.001)
        return 0

    assert guarded(command) == 130
    assert capsys.readouterr().err == "interrupted\n"

    def quick() -> int:  # ends before the timer fires (or on a machine too busy to run it): interrupted at its end
        InterruptedWhileCollected()
        return 0

    assert guarded(quick) == 130
    assert capsys.readouterr().err == "interrupted\n"
    time.sleep(0.05)  # no interrupt is left to come after the command

    def reported() -> int:  # training printed "interrupted: checkpoint of step ... saved": no bare second line
        e = KeyboardInterrupt()
        e.reported = True
        raise e

    assert guarded(reported) == 130
    assert capsys.readouterr().err == ""
