"""DeepCoder benchmark: train the NLI on each ExeDec split's generated training data and solve the shipped tests.

Prints one markdown row per split: ID and OOD exact-match accuracy without search and with gradient search.

    .venv/bin/python benchmarks/deepcoder.py --steps 300 --tasks 100          # small CPU budget
    .venv/bin/python benchmarks/deepcoder.py --splits NONE --steps 20 --tasks 8 --search-steps 5   # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main", "run_split"]

ROOT = Path(__file__).resolve().parent.parent


def _spec(args: argparse.Namespace, experiment: str):
    from nlic.compiler import load_spec

    spec = load_spec(args.spec)
    params = {**dict(spec.task.params), "split": experiment, "pool": args.pool}
    r = dataclasses.replace
    model = spec.model
    if args.width:
        model = r(model, inductor=r(model.inductor, width=args.width, layers=args.layers),
                  executor=r(model.executor, width=args.width, layers=args.layers))
    return r(
        spec,
        name=f"deepcoder_{experiment.lower()}",
        seed=args.seed,
        task=r(spec.task, params=tuple(sorted(params.items())), pairs=args.pairs),
        model=model,
        training=r(spec.training, steps=args.steps, batch=args.batch, eval_every=0, checkpoint_every=0,
                   warmup=min(spec.training.warmup, max(args.steps // 10, 1))),
        search=r(spec.search, steps=args.search_steps, starts=args.starts),
        eval=r(spec.eval, tasks=args.tasks),
    )


def run_split(args: argparse.Namespace, experiment: str, out: Path) -> dict[str, float]:
    """Train on one ExeDec split and evaluate it; returns the table row."""
    from nlic.runtime.solve import solve
    from nlic.runtime.tasks import sample_split
    from nlic.runtime.train import derive_seed, train

    spec = _spec(args, experiment)
    t0 = time.perf_counter()
    result = train(spec, out=out / spec.name, progress=False, force=True)
    row: dict[str, float] = {"train_s": time.perf_counter() - t0}
    for split in ("id", "ood"):
        tasks = sample_split(spec, split, args.tasks, seed=derive_seed(spec.seed, "eval", split))
        for method in ("none", "gradient"):
            search = dataclasses.replace(spec.search, method=method)
            res = solve(spec, result.model, tasks, search=search, seed=spec.seed)
            row[f"{split}_{method}"] = float(res.accuracy or 0.0)
            row[f"{split}_{method}_fit"] = float(res.spec_fit.mean())
    return row


def main(argv: list[str] | None = None) -> int:
    from nlic.runtime.tasks.deepcoder_dsl import EXPERIMENTS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "specs" / "deepcoder.yaml"))
    p.add_argument("--splits", default=",".join(EXPERIMENTS), help="comma-separated ExeDec experiments")
    p.add_argument("--steps", type=int, default=300, help="training steps per split")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64, help="inductor/executor width (0: the spec's)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--pairs", type=int, default=2, help="2: leave-one-out on the 3 ExeDec examples; 3: fresh query")
    p.add_argument("--pool", type=int, default=4096, help="training task pool per split")
    p.add_argument("--tasks", type=int, default=100, help="evaluation tasks per split (ood: the first of 1000)")
    p.add_argument("--search-steps", type=int, default=50)
    p.add_argument("--starts", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directories (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    splits = [s.strip().upper() for s in args.splits.split(",") if s.strip()]
    unknown = [s for s in splits if s not in EXPERIMENTS]
    if unknown:
        print(f"unknown split(s) {unknown}; expected {', '.join(EXPERIMENTS)}", file=sys.stderr)
        return 2
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        print(f"NLI on ExeDec DeepCoder: {args.steps} steps x batch {args.batch}, width {args.width}, "
              f"{args.layers} layers, pairs {args.pairs}, {args.tasks} eval tasks, gradient search "
              f"{args.starts} starts x {args.search_steps} steps, seed {args.seed}")
        print()
        print("| split | ID none | ID gradient | OOD none | OOD gradient | OOD spec fit (gradient) | train s |")
        print("|---|---|---|---|---|---|---|")
        for exp in splits:
            r = rows[exp] = run_split(args, exp, out)
            print(f"| {exp} | {r['id_none']:.2f} | {r['id_gradient']:.2f} | {r['ood_none']:.2f} | "
                  f"{r['ood_gradient']:.2f} | {r['ood_gradient_fit']:.2f} | {r['train_s']:.0f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
