"""Capacity probes on DeepCoder: can each half of the NLI learn the DSL's operations when told the program?

`--probe executor`: the interpreter of a spec's own (untrained) NLI model is trained on ground-truth programs: one token per DSL
operation (higher-order ones once per lambda: `Map (*2)`, `Scanl1 (max)`, 38 in all, the `deepcoder` family's
primitives), the inputs drawn as ExeDec draws them, each program `--length` operations long (every operation takes
its arguments from the previous result by type, as the family's primitives do; 1: single operations). The loss is
the reconstruction loss of training, with the executor's temperature annealed from 2 to 0.5. Exact accuracy on
400 fresh tasks, per operation, shows what the interpreter can represent at that width and depth, apart from
whether an inductor can find the programs: if single operations stay far below 1.0, the value encoding or the
interpreter is what holds the NLI back on DeepCoder.

`--probe inductor`: the inductor alone, trained by cross-entropy to write in its first slot the token of the
task's (last) operation. Accuracy near chance (1/38) means it cannot see from the spec pairs what was done.

`--probe data` (no training): how close each program sampler's draws (`task.params.sampler`) come to the
programs of the shipped test files, per split: total-variation distance of the (operation, lambda) frequencies,
the share of programs that end in an int, that chain every statement onto the one before, that take two inputs.

Usage:
    python benchmarks/deepcoder_probes.py --probe data [--tasks 1000] [--splits NONE,...]
    python benchmarks/deepcoder_probes.py [--probe executor|inductor] [--spec specs/deepcoder.yaml] [--steps 1500]
        [--length 1] [--width 64] [--layers 2] [--batch 32] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import random
import sys
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nlic.compiler import load_spec
from nlic.compiler.families import shapes_of
from nlic.compiler.families.deepcoder import CODEC, PAD, _encode_inputs, _primitives, find_data_dir, load_test_tasks
from nlic.compiler.families.deepcoder_dsl import EXPERIMENTS, OPERATIONS, SAMPLERS, random_inputs, sample_program
from nlic.compiler.models.nli.model import build
from nlic.runtime.cli import guarded

sys.path.insert(0, str(Path(__file__).resolve().parent))
import probes  # noqa: E402  (benchmarks/probes.py)
from deepcoder import parse_splits  # noqa: E402

__all__ = ["main", "tasks"]

ROOT = Path(__file__).resolve().parent.parent


def tasks(rng: random.Random, n: int, pairs: int, length: int) -> tuple[np.ndarray, ...]:
    """n tasks of `pairs` spec pairs + 1 query, each a chain of `length` primitives defined on all its inputs and
    changing them: inputs int [n, pairs, 12], outputs, query inputs [n, 12], query outputs, programs [n, length]
    (token = primitive index + 1; 0 is the skip token)."""
    prims = _primitives()
    xs = np.full((n, pairs + 1, CODEC.length), PAD, np.int32)
    ys = np.full_like(xs, PAD)
    progs = np.zeros((n, length), np.int32)
    i = 0
    while i < n:
        x = np.stack([_encode_inputs(ex) for ex in random_inputs(rng, pairs + 1)])
        program = [rng.randrange(len(prims)) for _ in range(length)]
        y = x
        for p in program:
            y = prims[p](y)
            if (y < 0).any():
                break
        if (y < 0).any() or (y == x).all(axis=-1).any():
            continue  # undefined on some example, or an identity on one
        xs[i], ys[i], progs[i] = x, y, np.asarray(program) + 1
        i += 1
    return xs[:, :pairs], ys[:, :pairs], xs[:, pairs], ys[:, pairs], progs


def _per_op(ok: np.ndarray, progs: np.ndarray) -> str:
    prims = _primitives()
    by: dict[str, list[bool]] = collections.defaultdict(list)
    for good, prog in zip(ok, progs):
        by[prims[int(prog[-1]) - 1].description.split()[0]].append(bool(good))  # grouped by the last op's operation
    return " ".join(f"{k} {np.mean(v):.2f}" for k, v in sorted(by.items()))


def _shape(programs: list[Any]) -> dict[str, Any]:
    ops = collections.Counter(f"{s.op} {s.lam or ''}" for p in programs for s in p.statements)
    total = sum(ops.values())
    return {"ops": {k: v / total for k, v in ops.items()},
            "int": np.mean([OPERATIONS[p.statements[-1].op].out is int for p in programs]),
            "chained": np.mean([p.chained() for p in programs]),
            "two inputs": np.mean([len(p.inputs) == 2 for p in programs])}


def compare_data(n: int, seed: int, splits: tuple[str, ...] = EXPERIMENTS) -> None:
    """Print, per split, the shipped tests' program shape against each sampler's (`--probe data`)."""
    folder = str(find_data_dir())
    print(f"programs of the shipped tests against {n} drawn per split and sampler (seed {seed})")
    print("| split | programs | (op, lambda) TV distance | end in an int | chained | two inputs |")
    print("|---|---|---|---|---|---|")
    for exp in splits:
        shipped = _shape([t[1] for t in load_test_tasks(folder, exp)])
        rows = [("shipped tests", shipped)]
        for sampler in SAMPLERS:
            rng = random.Random(seed)
            # The split's test distribution, the one its shipped file was drawn from (NONE: also its training one).
            rows.append((sampler, _shape([sample_program(rng, exp, train=False, num_examples=3, sampler=sampler)[0]
                                          for _ in range(n)])))
        for name, sh in rows:
            keys = set(sh["ops"]) | set(shipped["ops"])
            tv = sum(abs(sh["ops"].get(k, 0) - shipped["ops"].get(k, 0)) for k in keys) / 2
            print(f"| {exp} | {name} | {tv:.2f} | {sh['int']:.2f} | {sh['chained']:.2f} | {sh['two inputs']:.2f} |",
                  flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probe", choices=("executor", "inductor", "data"), default="executor")
    ap.add_argument("--tasks", type=int, default=1000, help="programs drawn per split and sampler (--probe data)")
    ap.add_argument("--splits", default=",".join(EXPERIMENTS), help="comma-separated ExeDec splits (--probe data)")
    ap.add_argument("--spec", default=str(ROOT / "specs" / "deepcoder.yaml"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--length", type=int, default=1, help="operations per program")
    ap.add_argument("--width", type=int, default=64, help="executor and inductor width (0: the spec's)")
    ap.add_argument("--layers", type=int, default=2, help="executor and inductor layers (0: the spec's)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.probe == "data":
        splits = parse_splits(args.splits)
        if splits is None:
            return 2
        compare_data(args.tasks, args.seed, tuple(splits))
        return 0
    spec = load_spec(args.spec)
    if spec.task.family != "deepcoder" or spec.model.kind != "nli":
        print(f"deepcoder_probes: {args.spec!r} is not an NLI spec of the deepcoder family", file=sys.stderr)
        return 2
    if not 1 <= args.length <= spec.language.max_length:
        print(f"deepcoder_probes: --length must be in 1..{spec.language.max_length} (language.max_length)",
              file=sys.stderr)
        return 2
    r = dataclasses.replace
    n_prims = len(_primitives())
    ex = spec.model.executor
    ex = r(ex, width=args.width or ex.width, layers=args.layers or ex.layers)
    ind = spec.model.inductor
    ind = r(ind, width=args.width or ind.width, layers=args.layers or ind.layers)
    spec = r(spec, language=r(spec.language, vocab=max(spec.language.vocab, n_prims + 1), skip_token=0,
                              length=max(spec.language.length, args.length)),
             model=r(spec.model, executor=ex, inductor=ind))
    vocab, pairs = spec.language.vocab, spec.task.pairs
    model = build(spec, shapes_of(spec), key=jax.random.key(args.seed))

    def pad(progs: np.ndarray) -> jnp.ndarray:
        out = np.zeros((len(progs), spec.language.length), np.int32)
        out[:, : progs.shape[1]] = progs
        return jnp.asarray(out)

    def first_slot_logits(m: Any, xs: Any, ys: Any) -> Any:
        return probes.first_slot_logits(m, xs, ys, jnp.ones(xs.shape[:2], bool))

    def inductor_loss(m: Any, b: tuple[Any, ...], key: Any, tau: Any) -> Any:
        return probes.inductor_loss(m, b[0], b[1], jnp.ones(b[0].shape[:2], bool), b[4][:, args.length - 1])

    def executor_loss(m: Any, b: tuple[Any, ...], key: Any, tau: Any) -> Any:
        return probes.executor_loss(m, b[4], b[0], b[1], key, tau, vocab)

    loss = inductor_loss if args.probe == "inductor" else executor_loss
    step, state = probes.adam_step(loss, args.lr, model)

    @eqx.filter_jit
    def correct(m: Any, b: tuple[Any, ...]) -> Any:
        if args.probe == "inductor":
            return jnp.argmax(first_slot_logits(m, b[0], b[1]), -1) == b[4][:, args.length - 1]
        return jnp.all(m.execute(b[4], b[2]) == b[3], -1)

    rng = random.Random(args.seed)
    test_np = tasks(random.Random(args.seed + 99), 400, pairs, args.length)
    test = tuple(jnp.asarray(a) for a in test_np[:4]) + (pad(test_np[4]),)
    half = ex if args.probe == "executor" else ind
    print(f"{args.probe}: width {half.width}, {half.layers} layers; {n_prims} operation tokens; programs of "
          f"{args.length}; batch {args.batch}, lr {args.lr}, {args.steps} steps", flush=True)
    key = jax.random.key(args.seed + 1)
    t0 = time.time()
    for i in range(args.steps):
        b = tasks(rng, args.batch, pairs, args.length)
        batch = tuple(jnp.asarray(a) for a in b[:4]) + (pad(b[4]),)
        key, k = jax.random.split(key)
        tau = jnp.float32(2.0 * 0.25 ** (i / max(args.steps, 1)))
        model, state, value = step(model, state, batch, k, tau)
        if i % 250 == 0 or i == args.steps - 1:
            ok = np.asarray(correct(model, test))
            print(f"step {i}  loss {float(value):.4f}  accuracy {ok.mean():.3f}  {_per_op(ok, test_np[4])}  "
                  f"{time.time() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
