"""Program files and replay scale linearly: parse of a program file of N programs, `nlic run` of one of its
programs on one input (`--program ID`), and `nlic run` of N input lines, as programs/s and inputs/s, each at
N/10 and N so that a super-linear step shows as a falling rate.

Usage: python benchmarks/replay_scale.py [--lines 100000] [--run RUN_DIR] [--profile]

`nlic run` of N inputs is bound by the executor (the model's forward pass, `benchmarks/speed.py`); "read and
encode" is the rest of replay's work on its inputs (JSONL parsing, checks, encoding), timed on its own.

Without --run the run directory is made from a tiny spec with zero weights (no training: what replay costs does
not depend on the weights' values). Everything runs in-process through `nlic.runtime.cli.main`, after a warm-up
that compiles the executor at the batch shapes the timed runs use, so compilation is not timed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from nlic.compiler import parse_spec
from nlic.compiler.families import codec_of
from nlic.compiler.identity import fingerprint
from nlic.compiler.lower import abstract_model
from nlic.grammar.errors import Loc, NlicError
from nlic.grammar.program import format_programs, load_programs
from nlic.runtime.cli import guarded, main as nlic
from nlic.runtime.replay import Language, jsonl, program_file, read_inputs
from nlic.runtime.run_dir import load_run, save_model, write_spec

__all__ = ["main"]

TINY = """
name: tiny
task:
  family: shift
  params: {split: shift_l}
training: {steps: 10, batch: 8}
model: {inductor: {layers: 1, width: 16}, executor: {layers: 1, width: 16}}
"""


def _untrained_run(directory: Path) -> Path:
    spec = parse_spec(TINY, str(directory / "tiny.yaml"))
    model = jax.tree_util.tree_map(
        lambda s: np.zeros(s.shape, s.dtype) if isinstance(s, jax.ShapeDtypeStruct) else s, abstract_model(spec))
    run = directory / "run"
    run.mkdir()
    write_spec(run, spec)
    save_model(run, spec, model, step=0)
    return run


def _write_programs(path: Path, language: Language, n: int, rng: np.random.Generator) -> list[str]:
    """A program file of n programs of random tokens and lengths, with metadata as `nlic solve` writes it."""
    ids = [f"task-{i:07d}" for i in range(n)]
    tokens = rng.integers(0, language.vocab, (n, language.max_length))
    tokens[np.arange(language.max_length)[None, :] >= rng.integers(0, language.max_length + 1, (n, 1))] = language.skip
    meta = [{"fit": 1.0, "loglik": -0.25, "search": "gradient", "steps": 50}] * n
    path.write_text(format_programs(program_file(language, ids, tokens, meta)))
    return ids


def _write_inputs(path: Path, codec, ids: list[str], n: int, rng: np.random.Generator) -> None:
    """n JSONL inputs that fit the codec, each naming one of `ids`."""
    top = codec.pad if getattr(codec, "pad", None) is not None else codec.values
    values = rng.integers(0, top, (n, int(codec.length)))
    rows = ({"id": ids[i % len(ids)], "input": codec.decode(values[i])} for i in range(n))
    path.write_text(jsonl(rows))


def _timed(fn: Callable[[], object], profile: bool) -> float:
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    fn()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - start
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        print(out.getvalue(), file=sys.stderr)
    return seconds


def _run(*argv: object) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = nlic([str(a) for a in argv])
    if code != 0:
        raise NlicError(f"nlic run failed: {err.getvalue().strip()}", loc=Loc("nlic run"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=100_000, help="programs in the program file, lines of inputs (N)")
    p.add_argument("--run", metavar="RUN_DIR", help="a trained run (default: an untrained tiny one, made here)")
    p.add_argument("--profile", action="store_true", help="print the top functions of each timed step (cProfile)")
    args = p.parse_args(argv)
    if args.lines < 10:
        p.error("--lines must be at least 10")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="nlic-replay-scale-") as tmp:
        tmp_path = Path(tmp)
        run = Path(args.run) if args.run else _untrained_run(tmp_path)
        spec, model = load_run(run)
        language, codec = Language.of(spec, fingerprint(spec, model)), codec_of(spec)
        out = tmp_path / "out.jsonl"

        # Warm-up: compile the executor at the batch shapes of the timed runs (buckets of 8 and of 1024 rows).
        few = tmp_path / "few.nlp"
        few_ids = _write_programs(few, language, 100, rng)
        few_file = load_programs(few)
        for n in (1, 1024):
            _write_inputs(tmp_path / "warm.jsonl", codec, few_ids, n, rng)
            _run("run", run, few, "--inputs", tmp_path / "warm.jsonl", "--out", out)

        print(f"nlic replay scaling, N = {args.lines:,} ({spec.name}: L={codec.length}, "
              f"max_length {language.max_length}; seconds are wall time, one process)")
        one = tmp_path / "one.jsonl"
        for n in sorted({args.lines // 10, args.lines}):
            programs = tmp_path / f"programs-{n}.nlp"
            ids = _write_programs(programs, language, n, rng)
            _write_inputs(one, codec, ids[:1], 1, rng)
            inputs = tmp_path / f"inputs-{n}.jsonl"
            _write_inputs(inputs, codec, few_ids, n, rng)
            mib = programs.stat().st_size / 2**20
            t_parse = _timed(lambda: load_programs(programs), args.profile)
            t_programs = _timed(lambda: _run("run", run, programs, "--program", ids[-1], "--inputs", one,
                                             "--out", out), args.profile)
            t_read = _timed(lambda: read_inputs([str(inputs)], codec, few_file), args.profile)
            t_inputs = _timed(lambda: _run("run", run, few, "--inputs", inputs, "--out", out), args.profile)
            print(f"  {n:>9,} programs ({mib:.1f} MiB): parse {t_parse:6.2f} s = {n / t_parse:9,.0f} programs/s; "
                  f"nlic run --program ID on 1 input {t_programs:6.2f} s = {n / t_programs:9,.0f} programs/s")
            print(f"  {n:>9,} input lines: read and encode {t_read:6.2f} s = {n / t_read:9,.0f} inputs/s; "
                  f"nlic run {t_inputs:6.2f} s = {n / t_inputs:9,.0f} inputs/s (100 programs, outputs as JSONL)")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
