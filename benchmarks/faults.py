"""Injected faults: `nlic train` killed with SIGKILL at random points and resumed, a read-only and a full run
directory, and truncated or bit-flipped checkpoints, saved models and build artifacts.

(a) trains a tiny spec once uninterrupted through the CLI, then again killed (SIGKILL) --kills times at seeded
random steps, half of them at a checkpoint write, resuming with --resume after each kill; the final model.eqx,
executor_weights.npz, fingerprint and (step, loss) rows must equal the uninterrupted run's, byte for byte.
(b) read-only: the checkpoints directory, then the whole run directory, made read-only (a read-only bind mount
and a read-only tmpfs) under a run in progress and under a finished one: `nlic train --resume` must exit 2 with
a located message, the last checkpoint and the model must still load, and once writable the run must finish
equal to the uninterrupted one.
(c) full disk: the run directory on a tmpfs too small for the run: exit 2 with a located message, the last
checkpoint intact, no temp file left, and after the space is freed --resume finishes equal to the uninterrupted run.
(d) damage: --cases truncations (at random lengths) and --cases single-bit flips (random byte and bit) of each of
a checkpoint, model.eqx, model.json, executor.jaxexport, executor.json and weights.npz, each loaded with nlic's
loaders and counted: refused with a located error (expected), accepted identical, accepted different, or another
exception (a traceback). Every one of these files is sealed by a checksum, so anything accepted is a failure.

(b) and (c) mount tmpfs file systems, which needs root; elsewhere, or with --inject, the same faults are injected
in the training process instead (EROFS / ENOSPC from the kernel's /dev/full at nlic's file writes).
Exits 1 if any check fails.

Usage: python benchmarks/faults.py [--kills 10] [--cases 50] [--seed 0] [--out DIR] [--steps 60] [--inject]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from nlic.compiler import load_spec
from nlic.compiler.families import shapes_of
from nlic.compiler.kinds import kind_of
from nlic.compiler.optim import make_optimizer, state_like
from nlic.grammar.errors import NlicError
from nlic.runtime import checkpoint as ck
from nlic.runtime import run_dir as rd
from nlic.runtime.build import EXPORT_FILE, EXPORT_META_FILE, WEIGHTS_FILE, load_artifact
from nlic.runtime.cli import guarded

__all__ = ["main"]

# A shift task with a 1-layer, width-16 NLI: seconds per run, so that a run can be killed ten times.
SPEC = """\
version: 1
name: faults
seed: 0
task:
  family: shift
  params: {split: shift_l, length: 12, alphabet: 5}
  pairs: 3
language: {vocab: 6, length: 3, max_length: 5}
model:
  kind: nli
  inductor: {layers: 1, width: 16, heads: 2, head_hidden: 16}
  executor: {layers: 1, width: 16, heads: 2}
training: {steps: STEPS, batch: 8, warmup: 2, log_every: 1, eval_every: 0, checkpoint_every: 5}
search: {method: none}
eval: {tasks: 8}
"""

# The training process with faults injected where nlic creates files (`nlic.runtime.files`' temp files), for
# machines where tmpfs cannot be mounted: FAULT=erofs:PREFIX (creating the file fails, as on a read-only file
# system) or FAULT=enospc:PREFIX:SKIP (after SKIP such files, writes go to /dev/full: the kernel's ENOSPC).
DRIVER = """\
import errno, os, sys, tempfile
from nlic.runtime import files
from nlic.runtime.cli import main

kind, prefix, *rest = os.environ["FAULT"].split(":")
skip = [int(rest[0]) if rest else 0]


class Faulty:
    def mkstemp(self, *, prefix, suffix, dir):
        if not prefix.startswith(PREFIX) or (kind == "enospc" and skip[0] > 0):
            skip[0] -= prefix.startswith(PREFIX)
            return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        if kind == "erofs":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, prefix))
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name


PREFIX = prefix
files.tempfile = Faulty()
sys.exit(main(sys.argv[1:]))
"""

_STEP = re.compile(r"^\.?step_(\d{8})\.eqx(\..*\.tmp)?$")


# --- running `nlic train` -----------------------------------------------------------------------------------


class Trainer:
    """Runs `python -m nlic.runtime.cli train` on the spec in subprocesses sharing one compilation cache."""

    def __init__(self, out: Path, steps: int):
        self.out = out
        self.spec = out / "faults.yaml"
        self.spec.write_text(SPEC.replace("STEPS", str(steps)))
        self.steps = steps
        self.env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(out / "jax-cache"),
                    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
        self.env.setdefault("JAX_PLATFORMS", "cpu")  # bit-identical weights are a CPU promise
        self.driver = out / "driver.py"
        self.driver.write_text(DRIVER)

    def command(self, run: Path, resume: bool, fault: str | None = None, *extra: str) -> list[str]:
        head = [sys.executable, str(self.driver)] if fault else [sys.executable, "-m", "nlic.runtime.cli"]
        return [*head, "train", str(self.spec), "--out", str(run), "--no-progress",
                *(["--resume"] if resume else []), *extra]

    def run(self, run: Path, *, resume: bool, fault: str | None = None) -> subprocess.CompletedProcess:
        env = {**self.env, **({"FAULT": fault} if fault else {})}
        return subprocess.run(self.command(run, resume, fault), env=env, capture_output=True, text=True,
                              timeout=900)

    def start(self, run: Path, *, resume: bool) -> subprocess.Popen:
        return subprocess.Popen(self.command(run, resume), env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)


def result(run: Path) -> dict[str, Any]:
    """What must come out the same: the model's bytes, the executor weights' bytes, fingerprint, loss rows."""
    return {
        "model.eqx": hashlib.sha256((run / rd.MODEL_FILE).read_bytes()).hexdigest(),
        "executor_weights.npz": hashlib.sha256((run / rd.EXECUTOR_WEIGHTS_FILE).read_bytes()).hexdigest(),
        "fingerprint": json.loads((run / rd.MODEL_META_FILE).read_text())["fingerprint"],
        "rows": [(r["step"], r["loss"]) for r in rd.read_metrics(run) if "loss" in r],
    }


def same_as(run: Path, reference: dict[str, Any]) -> str:
    """'' when `run` ended equal to the reference, else what differs."""
    try:
        got = result(run)
    except (OSError, KeyError, ValueError) as e:
        return f"unreadable result ({e})"
    return ", ".join(k for k in reference if got[k] != reference[k])


def temp_files(*dirs: Path) -> list[str]:
    return [str(p) for d in dirs if d.is_dir() for p in d.iterdir() if p.name.endswith(".tmp")]


def latest_step(run: Path) -> int | None:
    """The step of the checkpoint `latest` names (checked: the file must load its header), None if none yet."""
    path = ck.latest_checkpoint(run / rd.CHECKPOINT_DIR)
    return None if path is None else int(ck.read_header(path)["step"])


def clean_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """'' when a run failed as it should (exit 2, a located message with `needles`, no traceback), else why not."""
    err = r.stderr.strip()
    if r.returncode != 2:
        return f"exit {r.returncode}"
    if "Traceback" in err:
        return "traceback"
    missing = [n for n in needles if n not in err]
    return f"message lacks {missing}" if missing else ""


# --- (a) SIGKILL and resume ---------------------------------------------------------------------------------


def _metrics_step(path: Path) -> int:
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return -1
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return -1


def _checkpoint_files(ckdir: Path) -> dict[str, int]:
    """name -> inode of the checkpoint files and their temp files."""
    try:
        return {e.name: e.inode() for e in os.scandir(ckdir) if _STEP.match(e.name)}
    except OSError:
        return {}


def kill_once(trainer: Trainer, run: Path, *, resume: bool, mode: str, target: int) -> dict[str, Any]:
    """Start a run and SIGKILL it: `step` when it logs step `target` or later; `write` as soon as a checkpoint
    of step `target` or later appears (its temp file while it is written, or the finished file)."""
    metrics, ckdir = run / rd.METRICS_FILE, run / rd.CHECKPOINT_DIR
    inode = metrics.stat().st_ino if metrics.exists() else None
    before = _checkpoint_files(ckdir)
    p = trainer.start(run, resume=resume)
    seen, fresh = "", inode is None
    t0 = time.perf_counter()
    while p.poll() is None:
        if mode == "step":
            # A resumed run rewrites metrics.jsonl (a new inode) before it logs: rows before that are stale.
            if not fresh:
                fresh = metrics.exists() and metrics.stat().st_ino != inode
            elif _metrics_step(metrics) >= target:
                seen = f"step {_metrics_step(metrics)} logged"
                break
        else:
            now = _checkpoint_files(ckdir)
            new = [n for n, i in now.items() if before.get(n) != i and int(_STEP.match(n).group(1)) >= target]
            if new:
                seen = "writing " + new[0] if new[0].endswith(".tmp") else new[0] + " written"
                break
        time.sleep(0.002)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait()
    err = p.stderr.read() if p.stderr else ""
    left = sorted(n for n in os.listdir(ckdir) if n.endswith(".tmp")) if ckdir.is_dir() else []
    names = sorted(n for n in _checkpoint_files(ckdir) if not n.endswith(".tmp"))
    return {"mode": mode, "target": target, "seen": seen or f"exited {p.returncode} first", "killed": seen != "",
            "latest": latest_step(run), "newest_file": names[-1] if names else None, "temp_left": len(left),
            "seconds": time.perf_counter() - t0, "stderr": err if p.returncode not in (0, -signal.SIGKILL) else ""}


def kills(trainer: Trainer, reference: dict[str, Any], n: int, rng: np.random.Generator) -> bool:
    run = trainer.out / "killed"
    # Steps 1 .. steps-2: a kill at the last step could come after the run has finished.
    targets = np.sort(rng.choice(np.arange(1, trainer.steps - 1), size=min(n, trainer.steps - 2), replace=False))
    modes = rng.permutation(["step", "write"] * ((len(targets) + 1) // 2))[: len(targets)]
    print(f"\n(a) SIGKILL at {len(targets)} random points of a {trainer.steps}-step run (checkpoint every 5), "
          f"resuming after each")
    print(f"{'kill':>4}  {'mode':5}  {'target':>6}  {'killed when':42}  {'latest ckpt':>11}  {'newest file':18}  "
          f"{'temp files':>10}")
    ok = True
    for i, (target, mode) in enumerate(zip(targets, modes)):
        k = kill_once(trainer, run, resume=i > 0, mode=str(mode), target=int(target))
        ok &= k["killed"] and not k["stderr"]
        print(f"{i + 1:>4}  {k['mode']:5}  {k['target']:>6}  {k['seen']:42}  {str(k['latest']):>11}  "
              f"{str(k['newest_file']):18}  {k['temp_left']:>10}")
        if k["stderr"]:
            print("      " + k["stderr"].strip().replace("\n", "\n      "))
    r = trainer.run(run, resume=True)
    if r.returncode != 0:
        print(f"final --resume failed (exit {r.returncode}):\n{r.stderr}")
        return False
    diff = same_as(run, reference)
    left = temp_files(run, run / rd.CHECKPOINT_DIR)
    print(f"final --resume: exit 0; model.eqx, executor_weights.npz, fingerprint and loss rows "
          f"{'identical to the uninterrupted run' if not diff else 'DIFFER: ' + diff}; temp files left: {len(left)}")
    return ok and not diff and not left


# --- (b) read-only, (c) full disk ---------------------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def can_mount(out: Path) -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = out / "mount-probe"
    probe.mkdir(exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
    except (subprocess.CalledProcessError, OSError):
        return False
    subprocess.run(["umount", str(probe)], check=False)
    return True


@contextlib.contextmanager
def tmpfs(where: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes mounted at `where` for the block (always unmounted after, with any bind mounts)."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        # Bind mounts inside first (a read-only checkpoints directory), then the tmpfs itself.
        for _ in range(3):
            if subprocess.run(["umount", str(where / "run" / rd.CHECKPOINT_DIR)], capture_output=True).returncode:
                break
        subprocess.run(["umount", "-l", str(where)], check=False)


def kill_after_checkpoint(trainer: Trainer, run: Path, step: int) -> int | None:
    """Train until the checkpoint of `step` is written, then SIGKILL: a run in progress."""
    kill_once(trainer, run, resume=False, mode="write", target=step)
    return latest_step(run)


def snapshot(run: Path) -> dict[str, str]:
    """sha256 of every file under `run` but temp files (a killed write's leftovers, swept by the next write)."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and not p.name.endswith(".tmp")}


def show(r: subprocess.CompletedProcess) -> None:
    """The last line of a run's stderr: the message a user sees."""
    lines = r.stderr.strip().splitlines()
    if lines:
        print("       " + lines[-1])


def check(label: str, problem: str) -> bool:
    print(f"  {'ok  ' if not problem else 'FAIL'} {label}{'' if not problem else ': ' + problem}")
    return not problem


def read_only(trainer: Trainer, reference: dict[str, Any], mount: bool) -> bool:
    ok = True
    how = "read-only bind mount / tmpfs remounted read-only" if mount else "EROFS injected in the training process"
    print(f"\n(b) read-only run directory ({how})")
    with tmpfs(trainer.out / "ro", 64 << 20) if mount else contextlib.nullcontext(trainer.out / "ro") as root:
        run = Path(root) / "run"
        ckdir = run / rd.CHECKPOINT_DIR
        at = kill_after_checkpoint(trainer, run, trainer.steps // 3)
        ok &= check(f"a run killed after its checkpoint of step {at}", "" if at else "no checkpoint")
        before = snapshot(ckdir)
        if mount:
            _mount("--bind", str(ckdir), str(ckdir))
            _mount("-o", "remount,bind,ro", str(ckdir))
        r = trainer.run(run, resume=True, fault=None if mount else "erofs:.step_")
        if mount:
            subprocess.run(["umount", str(ckdir)], check=True)
        ok &= check("checkpoints/ read-only: --resume trains to the next checkpoint, then exits 2 naming it",
                    clean_error(r, "cannot write the checkpoint: the file system is read-only",
                                str(ckdir / "step_"), "--resume"))
        show(r)
        ok &= check("checkpoints unchanged, the last one loads", "" if snapshot(ckdir) == before and
                    latest_step(run) == at else "changed")
        if mount:
            _mount("-o", "remount,ro", str(root))
        r = trainer.run(run, resume=True, fault=None if mount else "erofs:.")
        if mount:
            _mount("-o", "remount,rw", str(root))
        ok &= check("whole run directory read-only: --resume exits 2 before training",
                    clean_error(r, "the file system is read-only", str(run)))
        show(r)
        ok &= check("checkpoints unchanged", "" if snapshot(ckdir) == before else "changed")
        r = trainer.run(run, resume=True)
        ok &= check("writable again: --resume finishes identical to the uninterrupted run",
                    f"exit {r.returncode}: {r.stderr[-500:]}" if r.returncode else same_as(run, reference))
        # A finished run on a read-only file system: nothing can be written, everything still loads.
        done = snapshot(run)
        if mount:
            _mount("-o", "remount,ro", str(root))
        r = trainer.run(run, resume=True, fault=None if mount else "erofs:.")
        ok &= check("finished run read-only: --resume exits 2", clean_error(r, "read-only", str(run)))
        try:
            rd.load_run(run)
            loaded = ""
        except NlicError as e:
            loaded = e.render()
        ok &= check("its model still loads (nlic.runtime.load_run) and no file changed",
                    loaded or ("" if snapshot(run) == done else "changed"))
        if mount:
            _mount("-o", "remount,rw", str(root))
    return ok


def full_disk(trainer: Trainer, reference: dict[str, Any], mount: bool) -> bool:
    ok = True
    ref = trainer.out / "reference"
    page = 4096
    pages = lambda n: -(-n // page)  # noqa: E731
    ck_bytes = max(p.stat().st_size for p in ck.list_checkpoints(ref / rd.CHECKPOINT_DIR))
    small = sum(pages((ref / f).stat().st_size) for f in (rd.SPEC_FILE, rd.ENV_FILE, rd.METRICS_FILE))
    # Room for two checkpoints and a half: the third (step 15) cannot be written.
    size = (small + 2 * pages(ck_bytes) + pages(ck_bytes) // 2) * page
    how = f"a {size // 1024} KiB tmpfs" if mount else "ENOSPC injected from the third checkpoint on"
    print(f"\n(c) full disk ({how}; a checkpoint is {ck_bytes // 1024} KiB)")
    with tmpfs(trainer.out / "full", size) if mount else contextlib.nullcontext(trainer.out / "full") as root:
        run = Path(root) / "run"
        r = trainer.run(run, resume=False, fault=None if mount else "enospc:.step_:2")
        ok &= check("training stops with exit 2 and a located message",
                    clean_error(r, "no space left on the device", str(run), "--resume"))
        show(r)
        at = latest_step(run)
        ok &= check(f"the last checkpoint (step {at}) is intact, no temp file is left",
                    "no checkpoint" if at is None else ", ".join(temp_files(run, run / rd.CHECKPOINT_DIR)))
        if mount:
            _mount("-o", "remount,size=64m", str(root))  # space freed
        r = trainer.run(run, resume=True)
        ok &= check("space freed: --resume finishes identical to the uninterrupted run",
                    f"exit {r.returncode}: {r.stderr[-500:]}" if r.returncode else same_as(run, reference))
    return ok


# --- (d) damaged files --------------------------------------------------------------------------------------


def leaves(tree: Any) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))]


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)
    return a == b


OUTCOMES = ("refused, located", "refused, unlocated", "accepted identical", "accepted different", "traceback")
FAILURES = OUTCOMES[1:]  # every file here is sealed: anything but a located refusal is a failure


def damage(trainer: Trainer, cases: int, rng: np.random.Generator) -> bool:
    ref, build = trainer.out / "reference", trainer.out / "build"
    r = subprocess.run([sys.executable, "-m", "nlic.runtime.cli", "compile", str(trainer.spec), "--out", str(build)],
                       env=trainer.env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        print(f"nlic compile failed:\n{r.stderr}")
        return False
    run, bdir = trainer.out / "damage" / "run", trainer.out / "damage" / "build"
    shutil.rmtree(trainer.out / "damage", ignore_errors=True)
    shutil.copytree(ref, run)
    shutil.copytree(build, bdir)

    spec = load_spec(run / rd.SPEC_FILE, kind_fields=False)
    kind = kind_of(spec)
    like = state_like(spec, kind, shapes_of(spec), make_optimizer(spec.training))
    ckpt = ck.latest_checkpoint(run / rd.CHECKPOINT_DIR)

    def load_ckpt() -> Any:
        state, step = ck.load_checkpoint(ckpt, like, spec=spec)
        return [leaves(state), step]

    def load_model() -> Any:
        s, model = rd.load_run(run)
        return [leaves(model), s == spec]

    def load_executor() -> Any:
        art = load_artifact(bdir)
        return [json.dumps(art.meta, sort_keys=True), bytes(art.exported.serialize())]

    def load_weights() -> Any:
        return list(load_artifact(bdir).weights())

    targets: list[tuple[str, Path, Callable[[], Any]]] = [
        ("checkpoint", ckpt, load_ckpt),
        ("model.eqx", run / rd.MODEL_FILE, load_model),
        ("model.json", run / rd.MODEL_META_FILE, load_model),
        ("executor.jaxexport", bdir / EXPORT_FILE, load_executor),
        ("executor.json", bdir / EXPORT_META_FILE, load_executor),
        ("weights.npz", bdir / WEIGHTS_FILE, load_weights),
    ]
    print(f"\n(d) damaged files: {cases} truncations at random lengths and {cases} single-bit flips of each, "
          "loaded with nlic's loaders")
    print(f"{'file':19} {'damage':9} {'cases':>5}  " + "  ".join(f"{o:>18}" for o in OUTCOMES) +
          f"  {'(by checksum)':>13}")
    failures: list[str] = []
    total = {o: 0 for o in OUTCOMES}
    total_checksum = 0
    for name, path, load in targets:
        data = path.read_bytes()
        pristine = load()
        for how in ("truncate", "flip"):
            counts = {o: 0 for o in OUTCOMES}
            by_checksum = 0  # refusals whose message is a checksum mismatch (the rest: unreadable JSON, ...)
            for _ in range(cases):
                if how == "truncate":
                    n = int(rng.integers(0, len(data)))
                    bad, what = data[:n], f"truncated to {n} of {len(data)} bytes"
                else:
                    at, bit = int(rng.integers(0, len(data))), int(rng.integers(0, 8))
                    b = bytearray(data)
                    b[at] ^= 1 << bit
                    bad, what = bytes(b), f"bit {bit} of byte {at} flipped"
                path.write_bytes(bad)
                try:
                    got = load()
                except NlicError as e:
                    # Located: the message names the damaged file (where a user looks).
                    detail = e.render()
                    outcome = "refused, located" if str(path) in detail else "refused, unlocated"
                except Exception as e:  # noqa: BLE001 - what is being counted
                    outcome, detail = "traceback", f"{type(e).__name__}: {e}"
                else:
                    outcome = "accepted identical" if equal(got, pristine) else "accepted different"
                    detail = ""
                finally:
                    path.write_bytes(data)
                counts[outcome] += 1
                by_checksum += outcome == "refused, located" and "checksum mismatch" in detail
                if outcome in FAILURES and len(failures) < 20:
                    failures.append(f"{name} {what}: {outcome} {detail[:300]}")
            for o in OUTCOMES:
                total[o] += counts[o]
            total_checksum += by_checksum
            print(f"{name:19} {how:9} {cases:>5}  " + "  ".join(f"{counts[o]:>18}" for o in OUTCOMES) +
                  f"  {by_checksum:>13}")
    print(f"{'all':19} {'':9} {sum(total.values()):>5}  " + "  ".join(f"{total[o]:>18}" for o in OUTCOMES) +
          f"  {total_checksum:>13}")
    for f in failures:
        print("  FAIL " + f)
    return not any(total[o] for o in FAILURES)


# --- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10, help="SIGKILLs of one run (default 10)")
    p.add_argument("--cases", type=int, default=50, help="truncations and bit flips of each file (default 50 each)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill points and the damage")
    p.add_argument("--steps", type=int, default=60, help="training steps of the tiny spec (default 60)")
    p.add_argument("--out", metavar="DIR", help="work directory, kept (default: a temp directory, removed)")
    p.add_argument("--inject", action="store_true",
                   help="inject EROFS/ENOSPC in the training process instead of mounting tmpfs (no root needed)")
    args = p.parse_args(argv)
    if args.kills < 0 or args.cases < 0 or args.steps < 20:
        p.error("--kills and --cases must be >= 0, --steps >= 20")

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nlic-faults-"))
    if out.exists() and any(out.iterdir()):
        p.error(f"--out {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    try:
        trainer = Trainer(out, args.steps)
        r = trainer.run(out / "reference", resume=False)
        if r.returncode != 0:
            print(f"the uninterrupted run failed (exit {r.returncode}):\n{r.stderr}")
            return 1
        reference = result(out / "reference")
        print(f"uninterrupted run: {args.steps} steps, fingerprint {reference['fingerprint']}, "
              f"final loss {reference['rows'][-1][1]:.6f} ({time.perf_counter() - t0:.0f} s)")
        mount = not args.inject and can_mount(out)
        if not args.inject and not mount:
            print("(tmpfs cannot be mounted here: faults of (b) and (c) are injected in the training process)")
        results = {
            "kills": kills(trainer, reference, args.kills, rng),
            "read-only": read_only(trainer, reference, mount),
            "full disk": full_disk(trainer, reference, mount),
            "damage": damage(trainer, args.cases, rng),
        }
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    verdicts = "; ".join(f"{k}: {'ok' if v else 'FAILED'}" for k, v in results.items())
    print(f"\n{verdicts} ({time.perf_counter() - t0:.0f} s)")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(guarded(main))  # bad input: the located message and exit code 2, not a traceback
