"""DeepCoder benchmark: train the NLI on each ExeDec split's generated training data and solve the shipped tests.

Per split, one model is trained on generated input/output data (2 spec pairs + 1 query per task, no program
labels) and evaluated on three task sets:
    id         fresh tasks of the split's training distribution (2 spec pairs, query = 3rd example);
    ood loo    the shipped test tasks, leave-one-out: examples 1-2 are the spec, example 3 the query;
    ood fresh  the shipped test tasks, all 3 examples as the spec and a fresh query input run through the
               ground-truth program (the inductor pools over pairs, so the 2-pair model reads 3 pairs).
Every search configuration is compiled outside the timing; `s/task` is wall-clock search time per task.

    .venv/bin/python benchmarks/deepcoder.py --steps 1500 --tasks 200 --out runs/deepcoder   # the README table
    .venv/bin/python benchmarks/deepcoder.py --splits NONE --steps 20 --tasks 8 \
        --config none --config "gradient starts=2 steps=3"                                    # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main", "run_split", "DEFAULT_CONFIGS"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = ("none", "enumerate depth=2 branch=0 deepen=true")
"""No search, and every program of 1 then 2 tokens (all of them: 1 + K - 1 + (K - 1)^2 executions). Gradient
search (`--config "cascade ..."`) costs seconds per unsolved task here on a CPU, and most tasks stay unsolved."""
EVAL_SETS = ("id", "ood loo", "ood fresh")


def _spec(args: argparse.Namespace, experiment: str):
    from nlic.compiler import load_spec

    spec = load_spec(args.spec)
    params = {**dict(spec.task.params), "split": experiment, "pool": args.pool, "query": "loo"}
    r = dataclasses.replace
    model = spec.model
    if args.width:
        model = r(model, inductor=r(model.inductor, width=args.width, layers=args.layers),
                  executor=r(model.executor, width=args.width, layers=args.layers))
    return r(
        spec,
        name=f"deepcoder_{experiment.lower()}",
        seed=args.seed,
        task=r(spec.task, params=tuple(sorted(params.items())), pairs=2),
        model=model,
        training=r(spec.training, steps=args.steps, batch=args.batch, eval_every=0, checkpoint_every=0,
                   warmup=min(spec.training.warmup, max(args.steps // 10, 1))),
        eval=r(spec.eval, tasks=args.tasks),
    )


def _eval_sets(spec, n: int) -> dict[str, object]:
    from nlic.runtime.tasks import sample_split
    from nlic.runtime.train import derive_seed

    r = dataclasses.replace
    fresh = r(spec, task=r(spec.task, pairs=3, params=tuple(sorted({**dict(spec.task.params),
                                                                    "query": "fresh"}.items()))))
    return {
        "id": sample_split(spec, "id", n, seed=derive_seed(spec.seed, "eval", "id")),
        "ood loo": sample_split(spec, "ood", n, seed=derive_seed(spec.seed, "eval", "ood")),
        "ood fresh": sample_split(fresh, "ood", n, seed=derive_seed(spec.seed, "eval", "ood_fresh")),
    }


def run_split(args: argparse.Namespace, experiment: str, out: Path, configs) -> dict[str, object]:
    """Train (or, with --reuse, load) one ExeDec split's model and evaluate it; returns the split's results."""
    from benchmarks.search import parse_config
    from nlic.runtime.evaluate import trained_model
    from nlic.runtime.solve import solve, warm_up

    spec = _spec(args, experiment)
    t0 = time.perf_counter()
    # nlic eval's run reuse: OUT/<name>-seed<seed>, reused only when trained from this spec (search aside).
    model, how = trained_model(spec, runs=out, retrain=not args.reuse, progress=False)
    train_s = None if how == "reused" else time.perf_counter() - t0
    sets = _eval_sets(spec, args.tasks)
    rows = []
    for text in configs:
        search = parse_config(text, spec.search)
        for name, tasks in sets.items():
            warm_up(spec, model, tasks, search=search)
            res = solve(spec, model, tasks, search=search, seed=spec.seed)
            rows.append({"config": text, "set": name, "tasks": len(tasks), "accuracy": float(res.accuracy or 0.0),
                         "spec_fit": float(res.spec_fit.mean()), "s_per_task": res.seconds / max(len(tasks), 1)})
    return {"train_s": train_s, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "specs" / "deepcoder.yaml"))
    p.add_argument("--splits", default=None, help="comma-separated ExeDec experiments (default: all 6)")
    p.add_argument("--steps", type=int, default=1500, help="training steps per split")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64, help="inductor/executor width (0: the spec's)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--pool", type=int, default=4096, help="training task pool per split")
    p.add_argument("--tasks", type=int, default=200, help="evaluation tasks per set (ood: the first of 1000)")
    p.add_argument("--config", action="append",
                   help=f"search configuration, as in benchmarks/search.py (repeatable; default: {DEFAULT_CONFIGS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directories (default: a temporary folder)")
    p.add_argument("--reuse", action="store_true",
                   help="load models already trained under --out from the same spec (default: retrain)")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, str(ROOT))
    from nlic.grammar.errors import NlicError
    from nlic.runtime.tasks.deepcoder_dsl import EXPERIMENTS

    splits = [s.strip().upper() for s in (args.splits or ",".join(EXPERIMENTS)).split(",") if s.strip()]
    unknown = [s for s in splits if s not in EXPERIMENTS]
    if unknown:
        print(f"unknown split(s) {unknown}; expected {', '.join(EXPERIMENTS)}", file=sys.stderr)
        return 2
    configs = tuple(args.config or DEFAULT_CONFIGS)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        print(f"NLI on ExeDec DeepCoder: {args.steps} steps x batch {args.batch}, width {args.width}, "
              f"{args.layers} layers, {args.tasks} tasks per set, seed {args.seed}, {os.cpu_count()} CPUs")
        print()
        print("| split | search | " + " | ".join(f"{s} acc" for s in EVAL_SETS) + " | ood loo spec fit | "
              "s/task (ood loo) | train s |")
        print("|---|---|" + "---|" * (len(EVAL_SETS) + 3))
        for exp in splits:
            try:
                res = results[exp] = run_split(args, exp, out, configs)
            except NlicError as e:  # e.g. a run under --out trained from another spec, or no ExeDec test files
                print(e.render(), file=sys.stderr)
                return 2
            train_s = "reused" if res["train_s"] is None else f"{res['train_s']:.0f}"
            for text in configs:
                by = {r["set"]: r for r in res["rows"] if r["config"] == text}
                print(f"| {exp} | {text} | " + " | ".join(f"{by[s]['accuracy']:.3f}" for s in EVAL_SETS) +
                      f" | {by['ood loo']['spec_fit']:.3f} | {by['ood loo']['s_per_task']:.3f} | {train_s} |",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "splits": results}, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
