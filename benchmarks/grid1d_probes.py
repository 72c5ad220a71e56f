"""Capacity probes on `grid1d`: can each half of the NLI learn the family when told the answer?

Two supervised probes on a spec's own (untrained) model, each on fresh training tasks of the spec's suite:
- `inductor`: the inductor alone, trained by cross-entropy to write, in its first slot, the token of the task's
  ground-truth rule (one token per rule and move amount and direction; colour arguments are not told apart). Accuracy
  near chance means the inductor cannot see what tells the rules apart, whatever the executor does.
- `executor`: the whole model run on the ground-truth programs (those tokens, one per rule applied, then skip), the
  interpreter trained on the reconstruction loss. Exact accuracy on the query shows what one rule per token costs the
  interpreter; rules with colour arguments cannot be solved with colour-blind tokens unless the spec renumbers
  colours (`task.colours: canonical`, which both probes apply as training does).
Both print the accuracy per rule on 400 `id` tasks every 100 (inductor) or 250 (executor) steps.

Usage:
    python benchmarks/grid1d_probes.py SPEC --probe inductor|executor [--steps N] [--seed N] [--cells]

`--cells` (executor): at the end, for each rule the interpreter fails on some tasks of, which kinds of cells its
wrong answers get wrong (`CELL_KINDS`: where content arrives, where it stays, where it leaves, background, PAD).

Measured (benchmarks/README.md, "grid1d"): the inductor tells the moves suite's four moves apart at chance (0.25)
with `relations` alone and at 1.00 with `offsets`; the executor learns moves at 1.00 in 250 steps. On the id suite
(`specs/grid1d.yaml`, two executor layers, canonical colours) the executor reaches 0.84-0.87 from step 1000 to 3000:
every rule at 0.9-1.0 but mirror (0.2-0.4), move to a dot (0.3-0.5) and push to an edge (0.2-0.45). With
`model.executor.anchors: true` it reaches 0.90 at step 2000 (0.81 without, side by side): mirror 1.00, move to a
dot 0.63, push 0.36 (benchmarks/README.md, "Anchored routing").
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nlic.compiler import load_spec
from nlic.compiler.families import coloured, shapes_of
from nlic.compiler.families.grid1d import PAD, generate
from nlic.compiler.models.nli.model import build
from nlic.runtime.cli import guarded

sys.path.insert(0, str(Path(__file__).resolve().parent))
import probes  # noqa: E402  (benchmarks/probes.py)

__all__ = ["main"]


class Tokens:
    """Ground-truth tokens: one per (rule, move amount, direction), numbered in order of first appearance."""

    def __init__(self, vocab: int, skip: int):
        self.ids: dict[tuple[Any, ...], int] = {}
        self.free = [t for t in range(vocab) if t != skip]

    def __call__(self, step: Any) -> int:
        key = (step.rule,) + tuple(a for a in step.args if a[0] in ("k", "direction"))
        if key not in self.ids:
            self.ids[key] = self.free[min(len(self.ids), len(self.free) - 1)]  # beyond the vocab: tokens shared
        return self.ids[key]


def _per_rule(ok: np.ndarray, programs: list[Any]) -> str:
    per: dict[str, list[bool]] = collections.defaultdict(list)
    for o, steps in zip(ok, programs):
        per["+".join(s.rule for s in steps)].append(bool(o))
    return " ".join(f"{r}:{np.mean(v):.2f}" for r, v in sorted(per.items()))


CELL_KINDS = ("arrives", "stays", "leaves", "background", "pad")
"""Cells of a query by what the rule does there (x the input, y the expected output): `arrives` y is a colour that x
does not hold there, `stays` y = x, a colour (a dot that does not move), `leaves` x is a colour and y background,
`background` both background, `pad` past the row's end."""


def cell_kinds(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`CELL_KINDS` index of every cell, int [..., L]."""
    kinds = np.full(y.shape, 3)
    kinds[(y != 0) & (y != PAD) & (y != x)] = 0
    kinds[(y != 0) & (y != PAD) & (y == x)] = 1
    kinds[(x != 0) & (x != PAD) & (y == 0)] = 2
    kinds[y == PAD] = 4
    return kinds


def wrong_cells(x: np.ndarray, y: np.ndarray, got: np.ndarray, programs: list[Any]) -> str:
    """Per rule with a wrong answer: its wrong answers, and for each cell kind how many of them get one wrong."""
    kinds, wrong = cell_kinds(x, y), got != y
    per: dict[str, np.ndarray] = collections.defaultdict(lambda: np.zeros(1 + len(CELL_KINDS), int))
    for i, steps in enumerate(programs):
        if wrong[i].any():
            row = per["+".join(s.rule for s in steps)]
            row[0] += 1
            row[1:] += [bool((wrong[i] & (kinds[i] == k)).any()) for k in range(len(CELL_KINDS))]
    return "\n".join(f"  {rule}: {n[0]} wrong; cells wrong where " + ", ".join(
        f"{kind} {c}" for kind, c in zip(CELL_KINDS, n[1:])) for rule, n in sorted(per.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("spec")
    ap.add_argument("--probe", choices=("inductor", "executor"), required=True)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cells", action="store_true", help="executor: which cells the wrong answers get wrong, per rule")
    args = ap.parse_args(argv)
    spec = load_spec(args.spec)
    if spec.task.family != "grid1d" or spec.model.kind != "nli":
        print(f"grid1d_probes: {args.spec!r} is not an NLI spec of the grid1d family", file=sys.stderr)
        return 2
    params = dict(spec.task.params)
    lang = spec.language
    model = build(spec, shapes_of(spec), key=jax.random.key(args.seed))
    tok = Tokens(lang.vocab, lang.skip_token)

    def tasks(n: int, seed: int, split: str = "train") -> tuple[Any, ...]:
        ts, programs = generate(params, split, n, spec.task.pairs, seed=seed)
        ts = coloured(spec, ts)  # `task.colours: canonical`: the tasks renumbered as training sees them
        prog = np.full((n, lang.length), lang.skip_token, np.int32)
        for i, steps in enumerate(programs):
            for j, s in enumerate(steps[: lang.length]):
                prog[i, j] = tok(s)
        arrays = (ts.inputs, ts.outputs, ts.pair_mask, ts.query_inputs, ts.query_outputs, prog)
        return tuple(jnp.asarray(a) for a in arrays) + (programs,)

    def inductor_loss(m: Any, b: tuple[Any, ...], key: Any, tau: Any) -> Any:
        return probes.inductor_loss(m, b[0], b[1], b[2], b[5][:, 0])

    def executor_loss(m: Any, b: tuple[Any, ...], key: Any, tau: Any) -> Any:
        return probes.executor_loss(m, b[5], b[0], b[1], key, tau, lang.vocab)

    loss = inductor_loss if args.probe == "inductor" else executor_loss
    step, state = probes.adam_step(loss, 2e-3, model)

    @eqx.filter_jit
    def correct(m: Any, b: tuple[Any, ...]) -> Any:
        if args.probe == "inductor":
            return jnp.argmax(probes.first_slot_logits(m, b[0], b[1], b[2]), -1) == b[5][:, 0]
        return jnp.all(m.execute(b[5], b[3]) == b[4], -1)

    test = tasks(400, args.seed + 99, "id")
    key = jax.random.key(args.seed + 1)
    every = 100 if args.probe == "inductor" else 250
    t0 = time.time()
    for i in range(args.steps):
        batch = tasks(spec.training.batch, args.seed * 1_000_003 + 1000 + i)
        key, k = jax.random.split(key)
        tau = jnp.float32(2.0 * 0.25 ** (i / max(args.steps, 1)))  # the executor's temperature, 2 -> 0.5
        model, state, value = step(model, state, batch[:6], k, tau)
        if i % every == 0 or i == args.steps - 1:
            ok = np.asarray(correct(model, test[:6]))
            print(f"{args.probe} step {i}  loss {float(value):.4f}  accuracy {ok.mean():.3f}  "
                  f"{_per_rule(ok, test[6])}  {time.time() - t0:.0f}s", flush=True)
    print(f"{len(tok.ids)} ground-truth tokens in a vocab of {lang.vocab}")
    if args.cells and args.probe == "executor":
        got = np.asarray(model.execute(test[5], test[3]))
        print("wrong answers by rule, and how many get each kind of cell wrong:")
        print(wrong_cells(np.asarray(test[3]), np.asarray(test[4]), got, test[6]))
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
