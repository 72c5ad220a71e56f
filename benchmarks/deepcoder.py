"""DeepCoder benchmark: train the NLI and the baselines on each ExeDec split's generated data, solve the shipped tests.

Per split and model kind (`--kinds`: the NLI, TTT, whose no-search row is the in-context baseline, and LPN by
default), one model is trained on generated input/output data (2 spec pairs + 1 query per task, no program labels)
at the same width and depth, and evaluated on three task sets:
    id         fresh tasks of the split's training distribution (2 spec pairs, query = 3rd example);
    ood loo    the shipped test tasks, leave-one-out: examples 1-2 are the spec, example 3 the query;
    ood fresh  the shipped test tasks, all 3 examples as the spec and a fresh query input run through the
               ground-truth program (the inductor pools over pairs, so the 2-pair model reads 3 pairs).
Every search configuration is compiled outside the timing; `s/task` is wall-clock search time per task. A
`--config` applies to every kind that has its method; `KIND:METHOD ...` to one kind only.

    .venv/bin/python benchmarks/deepcoder.py --steps 1500 --tasks 1000 --out runs/deepcoder   # the README table
    .venv/bin/python benchmarks/deepcoder.py --splits NONE --tasks 300 --sampler forward --breakdown  # old data,
                                                          # and ood loo accuracy per length, output type, op...
    .venv/bin/python benchmarks/deepcoder.py --splits NONE --steps 20 --tasks 8 \
        --config none --config "gradient starts=2 steps=3"                                     # smoke
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

from nlic.compiler import load_spec
from nlic.compiler.families import sample_split
from nlic.compiler.families.deepcoder import find_data_dir, load_test_tasks
from nlic.compiler.families.deepcoder_dsl import EXPERIMENTS, OPERATIONS, SAMPLERS
from nlic.compiler.kinds import MODEL_KINDS
from nlic.compiler.seeds import derive_seed
from nlic.grammar.errors import NlicError
from nlic.runtime.evaluate import trained_model
from nlic.runtime.files import atomic_write
from nlic.runtime.solve import solve, warm_up
from nlic.runtime.cli import guarded

__all__ = ["main", "run_split", "DEFAULT_CONFIGS"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = {
    "nli": ("none", "enumerate depth=2 branch=0 deepen=true"),
    "ttt": ("none", "gradient steps=20 lr=1e-4 batch=8"),
    "lpn": ("none", "gradient steps=50 lr=0.1"),
    "dlpn": ("none", "gradient steps=50"),
    "in_context": ("none",),
}
"""Per kind. NLI: no search, and every program of 1 then 2 tokens (all of them: 1 + K - 1 + (K - 1)^2 executions);
gradient search (`--config "cascade ..."`) costs seconds per unsolved task here on a CPU, and most tasks stay
unsolved. TTT: `none` is the in-context model (TTT fine-tunes that network), `gradient` 20 fine-tuning steps at the
paper's lr. LPN: `gradient` is 50 Adam steps on the latent (LPN's lr 0.1), keeping the best latent."""
DEFAULT_KINDS = ("nli", "ttt", "lpn")
EVAL_SETS = ("id", "ood loo", "ood fresh")


def _spec(args: argparse.Namespace, experiment: str, kind: str = "nli"):
    spec = load_spec(args.spec)
    params = {**dict(spec.task.params), "split": experiment, "pool": args.pool, "query": "loo"}
    if args.sampler:
        params["sampler"] = args.sampler
    r = dataclasses.replace
    model = r(spec.model, kind=kind)
    if args.width:
        model = r(model, inductor=r(model.inductor, width=args.width, layers=args.layers),
                  executor=r(model.executor, width=args.width, layers=args.layers))
    return r(
        spec,
        name=f"deepcoder_{experiment.lower()}" + ("" if kind == "nli" else f"_{kind}"),
        seed=args.seed,
        task=r(spec.task, params=tuple(sorted(params.items())), pairs=2),
        model=model,
        training=r(spec.training, steps=args.steps, batch=args.batch,
                   eval_every=spec.training.eval_every if args.eval_every < 0 else args.eval_every,
                   checkpoint_every=0,
                   warmup=min(spec.training.warmup, max(args.steps // 10, 1))),
        eval=r(spec.eval, tasks=args.tasks),
    )


def _eval_sets(spec, n: int, n_id: int) -> dict[str, object]:
    r = dataclasses.replace
    fresh = r(spec, task=r(spec.task, pairs=3, params=tuple(sorted({**dict(spec.task.params),
                                                                    "query": "fresh"}.items()))))
    return {
        "id": sample_split(spec, "id", n_id, seed=derive_seed(spec.seed, "eval", "id")),
        "ood loo": sample_split(spec, "ood", n, seed=derive_seed(spec.seed, "eval", "ood")),
        "ood fresh": sample_split(fresh, "ood", n, seed=derive_seed(spec.seed, "eval", "ood_fresh")),
    }


def kind_configs(kind: str, given: list[str] | None) -> tuple[str, ...]:
    """The search configurations one kind runs: its defaults, or the `--config`s with a method it has."""
    if not given:
        return DEFAULT_CONFIGS.get(kind, ("none",))
    methods = MODEL_KINDS.get(kind).search_methods
    out = []
    for text in given:
        target, sep, rest = text.partition(":")
        if sep and " " not in target.strip():
            if target.strip() == kind:
                out.append(rest.strip())
        elif text.split()[0] in methods:
            out.append(text.strip())
    return tuple(out)


def run_split(args: argparse.Namespace, experiment: str, out: Path, configs, kind: str = "nli") -> dict[str, object]:
    """Train (or, with --reuse, load) one ExeDec split's model of one kind and evaluate it; returns its results."""
    from benchmarks.search import parse_config

    spec = _spec(args, experiment, kind)
    t0 = time.perf_counter()
    # nlic eval's run reuse: OUT/<name>-seed<seed>, reused only when trained from this spec (search aside).
    model, how = trained_model(spec, runs=out, retrain=not args.reuse, progress=False,
                               fix="drop --reuse to train it again, or pass another --out")
    train_s = None if how == "reused" else time.perf_counter() - t0
    sets = _eval_sets(spec, args.tasks, args.id_tasks)
    rows = []
    for text in configs:
        search = parse_config(text, spec.search)
        for name, tasks in sets.items():
            warm_up(spec, model, tasks, search=search)
            res = solve(spec, model, tasks, search=search, seed=spec.seed)
            row = {"config": text, "set": name, "tasks": len(tasks), "accuracy": float(res.accuracy or 0.0),
                   "spec_fit": float(res.spec_fit.mean()), "s_per_task": res.seconds / max(len(tasks), 1)}
            if name == "ood loo":
                row["by"] = breakdown(spec, res.ids, res.correct)
            rows.append(row)
    return {"train_s": train_s, "rows": rows}


def parse_splits(text: str) -> list[str] | None:
    """Comma-separated ExeDec split names (any case) -> upper case; None, with an error line, if one is unknown."""
    given = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in given if s.upper() not in EXPERIMENTS]
    if unknown or not given:
        print(f"error: unknown split(s) {', '.join(map(ascii, unknown))}; expected some of {', '.join(EXPERIMENTS)}",
              file=sys.stderr)
        return None
    return [s.upper() for s in given]


def breakdown(spec, ids, correct) -> dict[str, dict[str, list[int]]]:
    """Solved / total of the shipped test tasks `ids` per group: program length, output type, shape (chained or
    reusing an earlier variable), number of inputs and each operation the program uses."""
    params = dict(spec.task.params)
    programs = {t[0]: t[1] for t in load_test_tasks(str(find_data_dir(params.get("data_dir"))), params["split"])}
    by: dict[str, dict[str, list[int]]] = {}
    for tid, ok in zip(ids, correct):
        prog = programs[tid]
        groups = [("length", str(len(prog))), ("output", OPERATIONS[prog.statements[-1].op].out.__name__),
                  ("shape", "chained" if prog.chained() else "diamond"), ("inputs", str(len(prog.inputs)))]
        for group, key in groups + [("op", op) for op in sorted({st.op for st in prog.statements})]:
            cell = by.setdefault(group, {}).setdefault(key, [0, 0])
            cell[0] += bool(ok)
            cell[1] += 1
    return {g: dict(sorted(v.items())) for g, v in by.items()}


def print_breakdown(results: dict[str, dict[str, object]]) -> None:
    """One line per split, kind and search: ood loo accuracy per group (see `breakdown`)."""
    print()
    print("ood loo accuracy by group (solved share, tasks in brackets):")
    for exp, kinds in results.items():
        for kind, res in kinds.items():
            for row in res["rows"]:
                if "by" not in row:
                    continue
                parts = [f"{g}: " + ", ".join(f"{k} {a / n:.2f} ({n})" for k, (a, n) in v.items())
                         for g, v in row["by"].items()]
                print(f"{exp} {kind} [{row['config']}]")
                for part in parts:
                    print(f"    {part}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "specs" / "deepcoder.yaml"))
    p.add_argument("--splits", default=None, help="comma-separated ExeDec experiments (default: all 6)")
    p.add_argument("--kinds", default=",".join(DEFAULT_KINDS),
                   help=f"comma-separated model kinds (default: {','.join(DEFAULT_KINDS)})")
    p.add_argument("--steps", type=int, default=1500, help="training steps per split")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--width", type=int, default=64, help="inductor/executor width (0: the spec's)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=0,
                   help="training.eval_every of every model (default 0: no evaluation during training, so no token "
                        "splits, restarts for a stuck language or keep: best; -1: the spec's own)")
    p.add_argument("--pool", type=int, default=4096, help="training task pool per split")
    p.add_argument("--tasks", type=int, default=1000, help="evaluation tasks per set (ood: the first N of 1000)")
    p.add_argument("--id-tasks", type=int, default=200,
                   help="tasks of the generated in-distribution set (0: as --tasks)")
    p.add_argument("--config", action="append",
                   help="search configuration, as in benchmarks/search.py, for every kind with that method, or "
                        "'KIND:METHOD ...' for one kind (repeatable; default: DEFAULT_CONFIGS per kind)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directories (default: a temporary folder)")
    p.add_argument("--reuse", action="store_true",
                   help="load models already trained under --out from the same spec (default: retrain)")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    p.add_argument("--sampler", default=None, choices=SAMPLERS,
                   help="how training (and id) programs are drawn (default: the spec's task.params.sampler, exedec)")
    p.add_argument("--breakdown", action="store_true",
                   help="also print ood loo accuracy per program length, output type, shape, inputs and operation")
    args = p.parse_args(argv)
    args.id_tasks = args.id_tasks or args.tasks

    sys.path.insert(0, str(ROOT))

    splits = parse_splits(args.splits or ",".join(EXPERIMENTS))
    if splits is None:
        return 2
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in MODEL_KINDS.names()]
    if bad or not kinds:
        print(f"error: unknown model kind(s) {', '.join(map(ascii, bad))}; expected some of "
              f"{', '.join(MODEL_KINDS.names())}", file=sys.stderr)
        return 2
    configs = {k: kind_configs(k, args.config) for k in kinds}
    for k, c in configs.items():
        if not c:
            print(f"error: no --config applies to kind {k!r} (its search methods: "
                  f"{', '.join(MODEL_KINDS.get(k).search_methods)}); add one or prefix one with '{k}:'",
                  file=sys.stderr)
            return 2
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        print(f"ExeDec DeepCoder ({', '.join(kinds)}): {args.steps} steps x batch {args.batch}, width {args.width}, "
              f"{args.layers} layers, {args.tasks} tasks per ood set, {args.id_tasks} id, seed {args.seed}, {os.cpu_count()} CPUs")
        print()
        print("| split | model | search | " + " | ".join(f"{s} acc" for s in EVAL_SETS) + " | ood loo spec fit | "
              "s/task (ood loo) | train s |")
        print("|---|---|---|" + "---|" * (len(EVAL_SETS) + 3))
        for exp in splits:
            for kind in kinds:
                try:
                    res = run_split(args, exp, out, configs[kind], kind)
                except NlicError as e:  # e.g. a run under --out trained from another spec, or no ExeDec test files
                    print(e.render(), file=sys.stderr)
                    return 2
                results.setdefault(exp, {})[kind] = res
                train_s = "reused" if res["train_s"] is None else f"{res['train_s']:.0f}"
                for text in configs[kind]:
                    by = {r["set"]: r for r in res["rows"] if r["config"] == text}
                    print(f"| {exp} | {kind} | {text} | " +
                          " | ".join(f"{by[s]['accuracy']:.3f}" for s in EVAL_SETS) +
                          f" | {by['ood loo']['spec_fit']:.3f} | {by['ood loo']['s_per_task']:.3f} | {train_s} |",
                          flush=True)
                if args.json:  # after every model, so that a long run's finished part is kept
                    atomic_write(Path(args.json), json.dumps({"args": vars(args), "splits": results}, indent=1,
                                                             sort_keys=True))
    if args.breakdown:
        print_breakdown(results)
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))  # bad input: the located message and exit code 2, not a traceback
