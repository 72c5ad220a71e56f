"""Train a run on from one of its checkpoints, as `nlic train` did, optionally with the learning rate dropped.

The replay draws the same batches and noise keys as `nlic train` (the run's seed, the step's batch seed, the
checkpoint's key; the dropped rate of a run that rolled back, from `rollbacks.json`), so the plain replay gives the
run's own ID evaluations; `--lr-drop F` multiplies the learning rate by F from the checkpoint's step on, which is
what `training.lr_drop_at` (at that step) and `training.lr_drop: F` do in a fresh run, whose steps before it are
the same bit for bit. So one replay per setting tells, in a fraction of a run's time, whether a setting would have
kept a run from a late fall. Token splits (`training.split_until`) are not
replayed: start after the run's last split. The checkpoint must be of the run's own spec (a run with
`training.restarts: 0`, or the attempt whose spec the run directory holds).

Usage:
    python benchmarks/replay.py RUN --from STEP [--lr-drop F] [--to STEP] [--every 250] [--tokens t1,t2]

Prints one line per evaluation: step, ID accuracy (training's own: the inductor's program, no search), the loss of
that step, and the median and largest gradient norm (before clipping) since the last line, with how many exceeded
3. With `--tokens` (NLI runs), also at the start and at each evaluation: in how many of the ID tasks' programs (the
inductor's argmax) each listed token is, and how many of those the program solves, and the programs that the tasks
which held the first listed token at the start write now: where the tasks of a token go after a token split (start
from the checkpoint the split was made before, e.g. `--from 2000 --tokens t1,t2` after `t1 -> t2` at step 2000).
Writes nothing.

Measured (benchmarks/README.md, "A late drop of the learning rate"): grid1d comp seed 1 from step 1500, ID 0.76 /
0.75 / 0.83 / 0.75 at steps 1750-2500 with `--lr-drop 0.25`, against 0.60 / 0.01 / 0.00 / 0.00 plain.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from nlic.grammar.errors import CheckpointError, Loc, SpecError
from nlic.runtime.cli import guarded

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", metavar="RUN", help="a run directory `nlic train` wrote")
    ap.add_argument("--from", dest="start", type=int, required=True, metavar="STEP",
                    help="the step of the checkpoint to start from (checkpoints/step_<STEP>.eqx)")
    ap.add_argument("--lr-drop", type=float, default=None, metavar="F",
                    help="multiply the learning rate by F from the checkpoint on (0 < F <= 1; default: as the run)")
    ap.add_argument("--to", type=int, default=None, metavar="STEP", help="the last step (default: the spec's steps)")
    ap.add_argument("--every", type=int, default=250, metavar="N", help="steps between evaluations (default 250)")
    ap.add_argument("--tokens", default=None, metavar="LIST",
                    help="NLI runs: comma-separated tokens (t1,t2 or 1,2) to follow through the ID tasks' programs")
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np

    import nlic.compiler.families as task_api
    from nlic.compiler import load_spec
    from nlic.compiler.kinds import MODEL_KINDS
    from nlic.compiler.optim import make_optimizer, make_train_step, state_like
    from nlic.runtime import checkpoint as ckpt
    from nlic.runtime import rollback
    from nlic.runtime.run_dir import CHECKPOINT_DIR, SPEC_FILE
    from nlic.runtime.train import inductor_solve, step_inputs

    run = Path(args.run)
    if not (run / SPEC_FILE).is_file():
        raise CheckpointError(f"not a run directory (no {SPEC_FILE})", loc=Loc(args.run),
                              hint="give a directory `nlic train` wrote")
    path = run / CHECKPOINT_DIR / ckpt.checkpoint_name(args.start)
    if not path.is_file():
        have = [p.name for p in ckpt.list_checkpoints(run / CHECKPOINT_DIR)]
        raise CheckpointError("no checkpoint at that step", loc=Loc(str(path)),
                              hint=f"the run has {', '.join(have) or 'no checkpoints'}")
    if args.lr_drop is not None and not 0 < args.lr_drop <= 1:
        raise SpecError(f"--lr-drop must be in (0, 1], got {args.lr_drop!r}", loc=Loc("--lr-drop"),
                        hint="for example --lr-drop 0.25")
    if args.every < 1:
        raise SpecError(f"--every must be at least 1, got {args.every}", loc=Loc("--every"), hint="e.g. 250")
    spec = load_spec(str(run / SPEC_FILE), kind_fields=False)
    kind = MODEL_KINDS.get(spec.model.kind)
    watch = _tokens(args.tokens, spec, kind) if args.tokens is not None else ()
    optim = make_optimizer(spec.training)
    like = state_like(spec, kind, task_api.shapes_of(spec), optim)
    (model, opt_state, key_data), step0 = ckpt.load_checkpoint(path, like, spec=spec)
    key = jax.random.wrap_key_data(key_data)
    # A run that rolled back (`training.rollback`) trained from the step it went back to at a dropped rate.
    training = rollback.rolled_back_spec(spec, rollback.read_rollbacks(run)).training
    optim = make_optimizer(training)
    if args.lr_drop is not None:  # the run's optimiser state, the rate (of training.lr) scaled from step0 on
        training = dataclasses.replace(training, lr_drop_at=step0 / training.steps, lr_drop=args.lr_drop)
        optim = make_optimizer(training)
    step_fn = make_train_step(kind, optim)
    evalset = task_api.evaluation_tasks(spec, "id")
    total = spec.training.steps
    end = min(args.to or total, total)
    label = f"lr x{args.lr_drop:g}" if args.lr_drop is not None else "plain"
    print(f"{run} from step {step0} to {end}, {label}", flush=True)
    follow = _Follow(watch, spec.language.length) if watch else None
    if follow is not None:
        follow(inductor_solve(spec, model, evalset), step0)
    norms: list[float] = []
    for step in range(step0, end):
        tasks, t = step_inputs(spec, spec.seed, step)
        model, opt_state, loss, _, gnorm = step_fn(model, opt_state, tasks.batch(), t, jnp.asarray(step, jnp.int32),
                                                   key)
        norms.append(float(gnorm))
        done = step + 1
        if done % args.every == 0 or done == end:
            result = inductor_solve(spec, model, evalset)  # training's own check, and the programs --tokens reads
            acc = result.accuracy
            g = np.asarray(norms)
            print(f"step {done}: id {acc:.2f}  loss {float(loss):.3f}  grad norm median {np.median(g):.2f} "
                  f"max {g.max():.1f} (>3: {(g > 3).sum()})", flush=True)
            norms = []
            if follow is not None:
                follow(result, done)
    return 0


def _tokens(text: str, spec, kind) -> tuple[int, ...]:
    """The tokens of `--tokens` (t1,t2 or 1,2), each checked against the spec's vocab."""
    if not kind.discrete_programs:
        raise SpecError(f"--tokens needs a model with token programs; {spec.model.kind!r} has none",
                        loc=Loc("--tokens"), hint="give an NLI run")
    vocab = spec.language.vocab
    out = []
    for part in text.split(","):
        word = part.strip()
        digits = word[1:] if word[:1] in ("t", "T") else word
        if not (digits.isdigit() and len(digits) <= 6 and int(digits) < vocab):
            raise SpecError(f"--tokens: {word[:40]!r} is not a token of this run's language (t0..t{vocab - 1})",
                            loc=Loc("--tokens"), hint="for example --tokens t1,t2")
        out.append(int(digits))
    return tuple(dict.fromkeys(out))


class _Follow:
    """Prints where the watched tokens are in the ID tasks' programs (`inductor_solve`'s, the `length` tokens the
    inductor writes), and what the tasks that held the first one at the start write now."""

    def __init__(self, watch: tuple[int, ...], length: int):
        self.watch, self.length, self.first = watch, length, None

    def __call__(self, result, step: int) -> None:
        import collections

        import numpy as np

        progs, solved = np.asarray(result.programs)[:, :self.length], np.asarray(result.correct)
        holds = {t: (progs == t).any(-1) for t in self.watch}
        if self.first is None:
            self.first = np.flatnonzero(holds[self.watch[0]])
        counts = ", ".join(f"t{t} in {int(h.sum())} ({int((h & solved).sum())} solved)" for t, h in holds.items())
        now = collections.Counter(" ".join(f"t{int(t)}" for t in p) for p in progs[self.first]).most_common(3)
        where = "; ".join(f"`{p}` {n}" for p, n in now) or "none"
        print(f"  step {step}: {counts}; the {len(self.first)} tasks of t{self.watch[0]} at the start write {where}",
              flush=True)


if __name__ == "__main__":
    sys.exit(guarded(main))
