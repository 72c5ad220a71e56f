"""`nlic solve`: induce a program for each task by test-time search, write them as text, and predict.

Tasks come from a data file or directory, or from a split of the spec's task family; the last line reports
exact-match accuracy when the query outputs are known.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from nlic.grammar.errors import Loc, SpecError, did_you_mean

__all__ = ["add_arguments", "run", "load_task_source", "search_spec"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a trained run directory (the --out of nlic train)")
    parser.add_argument(
        "tasks", metavar="TASKS",
        help="a task file or directory (ARC-style JSON, JSONL), or a split of the spec's task family (id, ood...)",
    )
    parser.add_argument("--search", metavar="METHOD", help="search method (default: the spec's search.method)")
    parser.add_argument("--starts", type=int, metavar="N", help="parallel starts / sampled programs")
    parser.add_argument("--steps", type=int, metavar="N", help="gradient steps per start")
    parser.add_argument("-n", type=int, metavar="N", dest="n", help="solve only the first N tasks (or sample N)")
    parser.add_argument("--seed", type=int, help="seed of the sampled split and of the search (default: spec.seed)")
    parser.add_argument(
        "--out", metavar="FILE",
        help="program file to write (default: RUN_DIR/programs/<TASKS name>.nlp)",
    )
    parser.add_argument(
        "--predictions", metavar="FILE",
        help="JSONL of predicted query outputs (default: next to the program file, .predictions.jsonl)",
    )


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise SpecError(f"{flag} must be at least 1, got {value}", loc=Loc(flag))


def search_spec(spec: Any, kind: Any, method: str | None, starts: int | None, steps: int | None) -> Any:
    """The spec's `SearchSpec` with command-line overrides, checked against the kind's search methods."""
    search = spec.search
    if method is not None:
        if method not in kind.search_methods:
            raise SpecError(
                f"model kind '{kind.name}' has no search method '{method}'", loc=Loc("--search"),
                hint=did_you_mean(method, kind.search_methods),
            )
        search = dataclasses.replace(search, method=method)
    _positive(starts, "--starts")
    if steps is not None and steps < 0:
        raise SpecError(f"--steps must be at least 0, got {steps}", loc=Loc("--steps"))
    if starts is not None:
        search = dataclasses.replace(search, starts=starts)
    if steps is not None:
        search = dataclasses.replace(search, steps=steps)
    return search


def load_task_source(spec: Any, source: str, n: int | None, seed: int) -> tuple[Any, str]:
    """Tasks from a file/directory or a split name, and a short name for output files.

    Raises:
        DataError: a malformed task file. SpecError: neither an existing path nor a split of the family.
    """
    from nlic.runtime.tasks import family_of, load_tasks, params_of, sample_split
    from nlic.runtime.train import derive_seed

    path = Path(source)
    if path.exists():
        tasks = load_tasks(path, spec)
        if n is not None:
            tasks = tasks.take(slice(0, n))
        return tasks, path.stem or "tasks"
    family = family_of(spec)
    splits = family.splits(params_of(spec))
    if source not in splits:
        raise SpecError(
            f"'{source}' is neither a task file nor a split of task family '{family.name}'", loc=Loc(source),
            hint=did_you_mean(source, splits) + " (or give the path of a task file)",
        )
    # The evaluation seed of `nlic train`: `nlic solve RUN ood` solves the tasks training reported on.
    count = n if n is not None else spec.eval.tasks
    return sample_split(spec, source, count, seed=derive_seed(seed, "eval", source)), source


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from nlic.compiler.lower import kind_of
    from nlic.grammar.program import format_programs
    from nlic.runtime.programs import Language, jsonl, program_file
    from nlic.runtime.run_dir import atomic_write, fingerprint, load_run
    from nlic.runtime.solve import solve
    from nlic.runtime.tasks import codec_of

    _positive(args.n, "-n")
    spec, model = load_run(args.run_dir)
    kind = kind_of(spec)
    search = search_spec(spec, kind, args.search, args.starts, args.steps)
    seed = spec.seed if args.seed is None else args.seed
    tasks, name = load_task_source(spec, args.tasks, args.n, seed)
    if len(tasks) == 0:
        raise SpecError("no tasks to solve", loc=Loc(args.tasks), hint="check the file or -n")

    gradient = "gradient" in search.method  # the methods that take steps (gradient, gradient+edit)
    budget = "no search" if search.method == "none" else f"{search.starts} starts" + (
        f" x {search.steps} steps" if gradient else "")
    print(f"solving {len(tasks)} tasks of '{name}' with {kind.name}, search '{search.method}' ({budget})",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    # progress: one line per batch of tasks on stderr.
    result = solve(spec, model, tasks, search=search, seed=seed, progress=True)
    seconds = time.perf_counter() - t0
    print(f"solved {len(tasks)} tasks in {seconds:.1f} s ({len(tasks) / max(seconds, 1e-9):.1f} tasks/s)",
          file=sys.stderr, flush=True)

    out = Path(args.out) if args.out else Path(args.run_dir) / "programs" / f"{name}.nlp"
    predictions = Path(args.predictions) if args.predictions else out.with_name(out.stem + ".predictions.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    predictions.parent.mkdir(parents=True, exist_ok=True)

    ids = list(result.ids)
    has_target = np.asarray(tasks.has_target, bool)
    correct = np.asarray(result.correct, bool)
    if kind.discrete_programs:
        meta = []
        for i in range(len(ids)):
            fields: dict[str, Any] = {
                "fit": float(result.spec_fit[i]), "loglik": float(result.spec_loglik[i]), "search": search.method,
            }
            if search.method != "none":
                fields["starts"] = search.starts
            if gradient:
                fields["steps"] = search.steps
            if has_target[i]:
                fields["correct"] = bool(correct[i])
            meta.append(fields)
        language = Language.of(spec, fingerprint(spec, model))
        pf = program_file(language, ids, np.asarray(result.programs), meta)
        atomic_write(out, format_programs(pf))
        fits = int(np.sum(np.asarray(result.spec_fit) >= 1.0))
        mean_len = float(np.mean([len(p.tokens) for p in pf.programs])) if pf.programs else 0.0
        print(f"wrote {len(ids)} programs to {out} (mean length {mean_len:.1f} tokens; {fits}/{len(ids)} "
              "reproduce every spec pair)", file=sys.stderr)
    else:
        print(f"model kind '{kind.name}' has no discrete programs: no program file written, predictions only",
              file=sys.stderr)

    codec = codec_of(spec)
    rows = []
    for i, pid in enumerate(ids):
        row = {"id": pid, "input": codec.decode(tasks.query_inputs[i]), "output": codec.decode(result.outputs[i])}
        if has_target[i]:
            row["target"] = codec.decode(tasks.query_outputs[i])
            row["correct"] = bool(correct[i])
        rows.append(row)
    atomic_write(predictions, jsonl(rows))
    print(f"wrote predictions to {predictions}", file=sys.stderr, flush=True)

    known = int(has_target.sum())
    if known:
        hits = int(correct[has_target].sum())
        print(f"accuracy: {hits / known:.2f} ({hits}/{known})")
    else:
        print("no query outputs are known: accuracy not measured", file=sys.stderr)
    return 0
