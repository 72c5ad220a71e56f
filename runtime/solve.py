"""The Python API for test-time search: `solve(spec, model, tasks)` runs a model kind's search over a `TaskSet`
in fixed-size batches (one jit trace) and scores the predictions against the known query outputs;
`solve_to_files` is `nlic solve`: solve a run's tasks and write its program and prediction files.

A search with several stages (`SearchSpec.stages`, e.g. `deepen`) runs each stage only on the tasks that the
earlier ones left unsolved (spec fit below 1), with the same batch shape, so each stage is traced once.
In a multi-process run (`nlic.runtime.distributed`) the batches are split over the processes and the results
gathered: the same results, batch by batch, as one process.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nlic.compiler.families import (
    TaskSet,
    canonical_colours_of,
    codec_of,
    evaluation_tasks,
    family_of,
    load_tasks,
    params_of,
)
from nlic.compiler.families.colours import colour_text, restore_colours, restore_rows
from nlic.compiler.identity import fingerprint
from nlic.compiler.kinds import AUTO_SEARCH, MODEL_KINDS, ModelKind, kind_of, kind_reads
from nlic.compiler.spec import DEEPENED_METHODS, SearchSpec, Spec
from nlic.grammar.errors import CheckpointError, Loc, NlicError, SpecError, did_you_mean
from nlic.grammar.program import ProgramFile, format_programs
from nlic.runtime import distributed
from nlic.runtime.files import atomic_write
from nlic.runtime.flags import check_flag
from nlic.runtime.outputs import refuse_existing
from nlic.runtime.replay import Language, jsonl, program_file
from nlic.runtime.run_dir import load_run

__all__ = ["SolveResult", "SolvedFiles", "batch_size", "load_task_source", "output_stem", "search_spec", "solve",
           "solve_to_files", "warm_up"]


@dataclasses.dataclass(frozen=True)
class SolveResult:
    """Search results for n tasks (NumPy).

    Attributes:
        ids: task ids.
        programs: int [n, Tmax] discrete programs, padded with the skip token.
        outputs: int [n, L] query predictions made with the discrete programs.
        soft_outputs: int [n, L] query predictions made with the soft programs.
        spec_fit: float [n] fraction of spec pairs the discrete program reproduces exactly.
        spec_loglik: float [n] mean spec log-likelihood of the selected program: of its soft relaxation for
            gradient-type methods, of its hard tokens where the program was enumerated.
        correct: bool [n] exact match of `outputs` with the query output (False where there is no target).
        has_target: bool [n] whether the task's query output is known.
        accuracy: mean of `correct` over tasks with targets; None if no task has one.
        seconds: wall-clock seconds of the search (compilation included).
    """

    ids: tuple[str, ...]
    programs: np.ndarray
    outputs: np.ndarray
    soft_outputs: np.ndarray
    spec_fit: np.ndarray
    spec_loglik: np.ndarray
    correct: np.ndarray
    has_target: np.ndarray
    accuracy: float | None
    seconds: float


def _pad(tasks: TaskSet, size: int) -> TaskSet:
    """Repeat the last task so that every batch has the same shape (one trace)."""
    n = len(tasks)
    if n == size:
        return tasks
    return tasks.take(np.concatenate([np.arange(n), np.full(size - n, n - 1)]))


def batch_size(search: SearchSpec, n: int) -> int:
    """Tasks per compiled batch when `solve` runs `search` on n tasks (the last batch is padded to it)."""
    return max(1, min(search.batch, n))


def _kind_and_search(spec: Spec | ModelKind, search: SearchSpec | None, caller: str) -> tuple[ModelKind, SearchSpec]:
    """The model kind and the search to run: `search`, or the spec's own when it is None."""
    if isinstance(spec, ModelKind):
        if search is None:
            raise TypeError(f"{caller}(kind, ...) needs search=SearchSpec(...)")
        kind = spec
    else:
        kind = MODEL_KINDS.get(spec.model.kind)
        search = spec.search if search is None else search
    if search.method == AUTO_SEARCH:  # a SearchSpec built in code (a loaded spec holds the concrete method)
        search = dataclasses.replace(search, method=kind.default_search)
    return kind, search


def _enumerates(kind: ModelKind, search: SearchSpec) -> bool:
    """Whether `search` runs an enumeration of `kind` (then `model.cfg` holds its language)."""
    return search.method in DEEPENED_METHODS and "enumerate" in kind.search_methods


def fitted_search(kind: ModelKind, search: SearchSpec, model) -> SearchSpec:
    """`search` with its enumeration depth cut to what the model's language and `search.programs` allow
    (`SearchSpec.fitted`), so that `deepen` runs no stage twice; unchanged for a search that does not enumerate."""
    return search.fitted(model.cfg.vocab, model.cfg.max_length) if _enumerates(kind, search) else search


def _assign(rows: np.ndarray, where: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A copy of rows with rows[where] = values (every stage's programs have the model's max_length slots)."""
    rows = rows.copy()
    rows[where] = values
    return rows


LIVE_SAMPLE = 256
"""Training tasks whose argmax programs tell which tokens a language uses (`language_tokens`)."""

LIVE_KEY = 2000
"""Index the live stage's search key is folded from (the other stages keep theirs: 1000 + their place)."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """One search `solve` runs on the tasks no earlier stage solved: `search`, the index its key is folded from,
    and `tokens`, the tokens an enumeration tries (None: the search's own)."""

    search: SearchSpec
    key_index: int
    tokens: tuple[int, ...] | None = None

    def label(self, count: int) -> str:
        if count == 1:
            return ""
        st = self.search
        if st.method != "enumerate":
            return f" [{st.method}]"
        over = f" over the {len(self.tokens)} tokens in use" if self.tokens is not None else ""
        return f" [enumerate depth {st.depth}{over}]"


def language_tokens(spec: Spec, kind: ModelKind, model) -> tuple[int, ...] | None:
    """The tokens (skip excluded) of the inductor's argmax programs on a fixed sample of `LIVE_SAMPLE` tasks of the
    spec's training split: the language's tokens in use. None for a kind without discrete programs, or when the
    training data cannot be read here (a run moved away from its data files)."""
    if not kind.discrete_programs:
        return None
    try:
        tasks = evaluation_tasks(spec, spec.task.train_split, LIVE_SAMPLE)
    except NlicError:
        return None
    sol = kind.solve(model, tasks.batch(), SearchSpec(method="none"), key=jax.random.key(0))
    return tuple(sorted({int(t) for t in np.asarray(sol.programs).ravel()} - {spec.language.skip_token}))


def _live_stage(search: SearchSpec, written: SearchSpec, vocab: int, max_length: int,
                tokens: tuple[int, ...] | None) -> Stage | None:
    """An enumeration over the language's tokens in use, when it reaches deeper than `search`'s over all (or its
    branch's) tokens within `search.programs`: up to the written `depth` (Shift-P seed 1: 3 tokens in use of 15,
    depth 6 where all 15 reach 4, OOD 0.86 -> 0.99). None otherwise."""
    if (not tokens or len(tokens) < 2 or not search.deepen or search.method not in DEEPENED_METHODS
            or len(tokens) >= search.branch_width(vocab)):
        return None  # one token in use: its repetitions are enumerated to max_length already
    live = dataclasses.replace(written, method="enumerate", deepen=False, branch=len(tokens)).fitted(vocab, max_length)
    return Stage(live, LIVE_KEY, tokens) if live.depth > search.depth else None


def _plan(spec: Spec | ModelKind, search: SearchSpec | None, model, caller: str) -> tuple[ModelKind, SearchSpec,
                                                                                          list[Stage]]:
    """The kind, the (fitted) search, and the stages `solve` runs: `search.stages()`, with the enumeration over the
    language's tokens in use (`_live_stage`) after the other enumerations, where the spec is known."""
    kind, written = _kind_and_search(spec, search, caller)
    search = fitted_search(kind, written, model)
    stages = [Stage(st, 1000 + i) for i, st in enumerate(search.stages())]
    cfg = model.cfg if _enumerates(kind, search) else None
    # The training split is read only where a stage over fewer tokens could reach deeper than `search` does.
    if isinstance(spec, Spec) and cfg is not None and search.deepen and search.depth < min(written.depth,
                                                                                          cfg.max_length):
        live = _live_stage(search, written, cfg.vocab, cfg.max_length, language_tokens(spec, kind, model))
        if live is not None:
            last = max(i for i, st in enumerate(stages) if st.search.method == "enumerate")
            stages.insert(last + 1, live)
    if len(stages) == 1:
        stages[0] = dataclasses.replace(stages[0], key_index=-1)  # a single search uses the key itself
    return kind, search, stages


PROGRESS_EVERY = 2.0
"""Least seconds between two progress lines of one search stage (the last batch always prints one)."""


class _Lines:
    """When a search stage prints its progress: at most once every `PROGRESS_EVERY` seconds, and at its last batch
    (a line per batch was a line per task where batches are small)."""

    def __init__(self) -> None:
        self._shown = -float("inf")

    def due(self, last: bool) -> bool:
        now = time.perf_counter()
        if last or now - self._shown >= PROGRESS_EVERY:
            self._shown = now
            return True
        return False


def _solve_batches(kind: ModelKind, model, tasks: TaskSet, search: SearchSpec, size: int, key, *,
                   progress: bool, label: str, t0: float, shard: bool = False,
                   tokens: tuple[int, ...] | None = None) -> tuple[np.ndarray, ...] | None:
    """Run one search over `tasks` in batches of `size` (the last one padded); None when there are no tasks.

    `shard`: split the batches over the processes of a multi-process run (`_solve_shared`). `tokens`: the tokens
    an enumeration tries (`Stage.tokens`).
    """
    n = len(tasks)
    extra = {} if tokens is None else {"tokens": tokens}
    if shard and distributed.is_distributed() and n:
        return _solve_shared(kind, model, tasks, search, size, key, progress=progress, label=label, t0=t0, extra=extra)
    parts, lines = [], _Lines()
    for b, start in enumerate(range(0, n, size)):
        chunk = tasks.take(slice(start, start + size))
        sol = kind.solve(model, _pad(chunk, size).batch(), search, key=jax.random.fold_in(key, b), **extra)
        parts.append(jax.tree.map(lambda a: np.asarray(a)[: len(chunk)], tuple(sol)))
        done = min(start + size, n)
        if progress and lines.due(done == n):
            print(f"solve{label}: {done}/{n} tasks, {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    if not parts:
        return None
    return tuple(np.concatenate(p) for p in zip(*parts))


def _solve_shared(kind: ModelKind, model, tasks: TaskSet, search: SearchSpec, size: int, key, *,
                  progress: bool, label: str, t0: float, extra: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """`_solve_batches` over the processes: each solves a contiguous block of the batches on its own devices with
    the batch's own key (`fold_in(key, b)`, as one process would), and every process gets all rows.

    Blocks are padded to the same number of batches with repeats of the last one (computed, then dropped), so
    every process contributes arrays of one shape.
    """
    n = len(tasks)
    batches = -(-n // size)
    count, me = distributed.process_count(), distributed.process_index()
    per = -(-batches // count)
    parts, lines = [], _Lines()
    for j in range(per):
        b = min(me * per + j, batches - 1)
        chunk = tasks.take(slice(b * size, b * size + size))
        sol = kind.solve(model, _pad(chunk, size).batch(), search, key=jax.random.fold_in(key, b), **extra)
        parts.append(tuple(np.asarray(a) for a in sol))
        if progress and distributed.is_main() and lines.due(j == per - 1):
            print(f"solve{label}: batch {j + 1}/{per} of process 0 ({n} tasks over {count} processes), "
                  f"{time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    rows = distributed.gather_rows(tuple(np.concatenate(p) for p in zip(*parts)))
    return tuple(r[:n] for r in rows)


def solve(
    spec: Spec | ModelKind,
    model,
    tasks: TaskSet,
    *,
    search: SearchSpec | None = None,
    seed: int = 0,
    progress: bool = False,
    shard: bool = False,
) -> SolveResult:
    """Search a program for every task and predict its query output.

    Args:
        spec: the spec (its `model.kind` picks the kind, its `search` section is the default budget), or a
            `ModelKind` directly (then `search` is required).
        model: the trained model of that kind.
        tasks: the tasks to solve.
        search: search method and budget; defaults to `spec.search`.
        seed: seed of the search noise; results are deterministic given it.
        progress: print one line per batch to stderr.
        shard: in a multi-process run (`nlic.runtime.distributed`), split the batches over the processes, each
            with its own copy of `model`, and return every result on every process (the same results as one
            process); ignored in a single process.

    Returns:
        A `SolveResult`.
    """
    kind, search, stages = _plan(spec, search, model, "solve")
    n = len(tasks)
    size = batch_size(search, n)  # every stage and batch has this shape: one trace per stage
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    rows: tuple[np.ndarray, ...] | None = None
    todo = np.arange(n)
    for stage in stages:
        stage_key = key if stage.key_index < 0 else jax.random.fold_in(key, stage.key_index)
        part = _solve_batches(kind, model, tasks.take(todo), stage.search, size, stage_key, progress=progress,
                              label=stage.label(len(stages)), t0=t0, shard=shard, tokens=stage.tokens)
        if part is None:  # no tasks
            break
        if rows is None:
            rows = part
        else:
            # A later stage replaces an earlier result only where its program fits more spec pairs.
            better = part[2] > rows[2][todo]
            rows = tuple(_assign(r, todo[better], p[better]) for r, p in zip(rows, part))
        todo = np.flatnonzero(rows[2] < 1.0)
        if not len(todo):
            break
    seconds = time.perf_counter() - t0
    if rows is None:
        L = tasks.query_inputs.shape[-1]
        rows = (np.zeros((0, 1), np.int32), np.zeros((0, L), np.int32), np.zeros((0,), np.float32),
                np.zeros((0,), np.float32), np.zeros((0, L), np.int32))
    programs, outputs, fit, ll, soft = rows
    has_target = np.asarray(tasks.has_target, bool)
    correct = np.all(outputs == tasks.query_outputs, axis=-1) & has_target
    accuracy = float(correct[has_target].mean()) if has_target.any() else None
    return SolveResult(
        ids=tuple(tasks.ids),
        programs=programs.astype(np.int32),
        outputs=outputs.astype(np.int32),
        soft_outputs=soft.astype(np.int32),
        spec_fit=fit.astype(np.float32),
        spec_loglik=ll.astype(np.float32),
        correct=correct,
        has_target=has_target,
        accuracy=accuracy,
        seconds=seconds,
    )


def warm_up(spec: Spec | ModelKind, model, tasks: TaskSet, *, search: SearchSpec | None = None) -> None:
    """Compile everything `solve(spec, model, tasks, search=search)` runs, so that timing it measures the search
    alone: every stage of the search on one batch of the shape that call uses."""
    kind, search, stages = _plan(spec, search, model, "warm_up")
    size = batch_size(search, len(tasks))
    warm = tasks.take(slice(0, size))
    for stage in stages:
        _solve_batches(kind, model, warm, stage.search, size, jax.random.key(0), progress=False, label="", t0=0.0,
                       tokens=stage.tokens)


# --- solve and write: `nlic solve` ---------------------------------------------------------------------------


def search_spec(spec: Any, kind: Any, method: str | None, starts: int | None, steps: int | None) -> Any:
    """The spec's `SearchSpec` with command-line overrides, checked against the kind's search methods."""
    search = spec.search
    if method == AUTO_SEARCH:
        method = kind.default_search
    if method is not None:
        if method not in kind.search_methods:
            raise SpecError(
                f"model kind '{kind.name}' has no search method '{method}'", loc=Loc("--search"),
                hint=did_you_mean(method, kind.search_methods),
            )
        search = dataclasses.replace(search, method=method)
    check_flag(starts, "--starts", "search.starts")
    check_flag(steps, "--steps", "search.steps")
    for flag, value, field in (("--starts", starts, "search.starts"), ("--steps", steps, "search.steps")):
        if value is not None and not kind_reads(kind, field):  # as a spec setting a field the kind never reads
            raise SpecError(f"{flag} would change nothing: model kind '{kind.name}' does not read {field}",
                            loc=Loc(flag), hint=f"remove {flag}")
    if starts is not None:
        search = dataclasses.replace(search, starts=starts)
    if steps is not None:
        search = dataclasses.replace(search, steps=steps)
    return search


def load_task_source(spec: Any, source: str, n: int | None, seed: int) -> tuple[Any, str]:
    """Tasks from a file/directory or a split name, and a short name for output files.

    A split gives the first n tasks of its evaluation sample (`evaluation_tasks`, with `seed` fed to the
    derivation): the tasks `nlic train` evaluated and `nlic data show|export` print under the same ids.

    Raises:
        DataError: a malformed task file. SpecError: neither an existing path nor a split of the family.
    """
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
    return evaluation_tasks(spec, source, n, seed=seed), source


def output_stem(name: str, own: SearchSpec, search: SearchSpec, seed: int, own_seed: int) -> str:
    """The stem of `nlic solve`'s default output files: the task source's name, then what differs from the run's
    own search and seed, so that different searches never write to the same file.

    `ood` for the spec's own search; `ood.gradient-s8-k50` for `--search gradient --starts 8 --steps 50` (starts
    and steps appear where they differ from the spec's); `.seed<k>` is added for another `--seed`.
    """
    parts = [name]
    if search != own:
        tag = search.method
        if search.starts != own.starts:
            tag += f"-s{search.starts}"
        if search.steps != own.steps:
            tag += f"-k{search.steps}"
        parts.append(tag)
    if seed != own_seed:
        parts.append(f"seed{seed}")
    return ".".join(parts)


@dataclasses.dataclass(frozen=True)
class SolvedFiles:
    """What `solve_to_files` did.

    Attributes:
        result: the search results.
        tasks: the tasks solved.
        name: the task source's short name (a split, or a file's stem).
        programs: the program file written (None for kinds without discrete programs).
        program_file: its parsed content (None likewise).
        predictions: the predictions file written (JSONL: id, input, output, and target/correct where known).
    """

    result: SolveResult
    tasks: TaskSet
    name: str
    programs: Path | None
    program_file: ProgramFile | None
    predictions: Path


def _budget_text(kind: ModelKind, search: SearchSpec, model: Any) -> str:
    """The search's budget in words, for `nlic solve`'s first line: what the method actually spends."""
    method = search.method
    if method == "none":
        return "no search"
    steps = f"{search.starts} starts x {search.steps} steps"
    if method == "prior":
        return f"{search.starts} programs sampled"
    if _enumerates(kind, search):
        depth = fitted_search(kind, search, model).depth
        text = f"every program of up to {depth} token{'s' if depth != 1 else ''}" + (
            ", shortest first" if search.deepen else "")
        return text + (f", then {steps}" if method == "cascade" and search.steps > 0 else "")
    return steps if "gradient" in method else f"{search.starts} starts"  # gradient, gradient+edit take steps


def solve_to_files(
    run_dir: str | Path,
    tasks_source: str | Path,
    *,
    method: str | None = None,
    starts: int | None = None,
    steps: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    predictions: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> SolvedFiles:
    """Solve tasks with a trained run and write the programs found (`RUN/programs/NAME.nlp`) and predictions.

    Nothing is replaced silently: an output file that exists is refused before the search starts unless `force`,
    and a search other than the spec's own writes under its own name (`output_stem`).

    Args:
        run_dir: a trained run directory.
        tasks_source: a task file or directory, or a split of the spec's family (its evaluation sample, the
            tasks training evaluated: `evaluation_tasks`).
        method, starts, steps: overrides of the spec's search section.
        n: solve only the first n tasks of a file or of the split's evaluation sample (default: all of a file,
            `eval.tasks` of a split).
        seed: search seed, and the seed the split's evaluation sample derives from; default the spec's.
        out, predictions: where to write (defaults: `RUN/programs/<stem>.nlp` and `<stem>.predictions.jsonl`
            next to the program file, the stem from `output_stem`).
        force: overwrite output files that exist.
        log: called with one progress line at a time (default: silent; in a multi-process run, process 0's
            alone).

    Raises:
        CheckpointError: not a finished run, or an output file exists and not `force`. SpecError: bad overrides
        or an unknown split. DataError: bad tasks.
    """
    main = distributed.is_main()  # in a multi-process run, every process searches its share; process 0 writes
    say = log if log is not None and main else (lambda _line: None)
    check_flag(n, "-n", "eval.tasks", minimum=1)
    check_flag(seed, "--seed", "seed")
    spec, model = load_run(run_dir)
    kind = kind_of(spec)
    search = search_spec(spec, kind, method, starts, steps)
    seed = spec.seed if seed is None else seed
    tasks, name = load_task_source(spec, tasks_source, n, seed)
    if len(tasks) == 0:
        raise SpecError("no tasks to solve", loc=Loc(str(tasks_source)), hint="check the file or -n")
    stem = output_stem(name, spec.search, search, seed, spec.seed)
    out = Path(out) if out else Path(run_dir) / "programs" / f"{stem}.nlp"
    predictions = Path(predictions) if predictions else out.with_name(out.stem + ".predictions.jsonl")
    # Checked before the search: a refusal costs nothing.
    refuse_existing([out, predictions] if kind.discrete_programs else [predictions], force=force,
                    reads=[tasks_source] if Path(tasks_source).exists() else [],
                    hint="add --force to overwrite it, or write elsewhere with --out FILE")

    say(f"solving {len(tasks)} tasks of '{name}' with {kind.name}, search '{search.method}' "
        f"({_budget_text(kind, search, model)})")
    t0 = time.perf_counter()
    # progress: one line per batch of tasks on stderr.
    result = solve(spec, model, tasks, search=search, seed=seed, progress=log is not None, shard=True)
    seconds = time.perf_counter() - t0
    say(f"solved {len(tasks)} tasks in {seconds:.1f} s ({len(tasks) / max(seconds, 1e-9):.1f} tasks/s)")
    pf = _write_solved(spec, model, kind, search, tasks, result, out, predictions, say, replace=force) if main else None
    distributed.barrier("solve-done")  # the files exist when solve_to_files returns, on every process
    return SolvedFiles(result=result, tasks=tasks, name=name, programs=out if kind.discrete_programs else None,
                       program_file=pf, predictions=predictions)


def _write_solved(spec: Any, model: Any, kind: ModelKind, search: SearchSpec, tasks: TaskSet, result: SolveResult,
                  out: Path, predictions: Path, say: Callable[[str], None], *, replace: bool) -> ProgramFile | None:
    """Write `solve_to_files`' program file (kinds with discrete programs) and predictions; returns the former.

    Without `replace` (no --force), a file that appeared since the command checked its outputs (another nlic
    writing there) is not replaced: the command fails, and removes the program file it wrote if the predictions'
    place was taken, so that the two files always come from one search."""
    try:
        return _write_solved_files(spec, model, kind, search, tasks, result, out, predictions, say, replace=replace)
    except FileExistsError as e:
        raise CheckpointError("the file appeared while nlic solved (another command writing the same output?); "
                              "refusing to replace it", loc=Loc(str(e.filename)),
                              hint="solve again with --out FILE, or add --force to overwrite it") from None


def _write_solved_files(spec: Any, model: Any, kind: ModelKind, search: SearchSpec, tasks: TaskSet,
                        result: SolveResult, out: Path, predictions: Path, say: Callable[[str], None], *,
                        replace: bool) -> ProgramFile | None:
    gradient = "gradient" in search.method
    out.parent.mkdir(parents=True, exist_ok=True)
    predictions.parent.mkdir(parents=True, exist_ok=True)

    ids = list(result.ids)
    # Each program records its task's colour map (languages of canonical colours), for `nlic run` to map back.
    colours = None if tasks.colour_maps is None else canonical_colours_of(spec)
    has_target = np.asarray(tasks.has_target, bool)
    correct = np.asarray(result.correct, bool)
    pf = None
    if kind.discrete_programs:
        # An enumeration records the depth it enumerated (it runs no starts); the other searches their starts.
        depth = fitted_search(kind, search, model).depth if search.method == "enumerate" and _enumerates(kind, search) \
            else None
        meta = []
        for i in range(len(ids)):
            fields: dict[str, Any] = {
                "fit": float(result.spec_fit[i]), "loglik": float(result.spec_loglik[i]), "search": search.method,
            }
            if depth is not None:
                fields["depth"] = depth
            elif search.method != "none":
                fields["starts"] = search.starts
            if gradient:
                fields["steps"] = search.steps
            if has_target[i]:
                fields["correct"] = bool(correct[i])
            if colours is not None:
                fields["colours"] = colour_text(tasks.colour_maps[i], colours[0])
            meta.append(fields)
        language = Language.of(spec, fingerprint(spec, model))
        pf = program_file(language, ids, np.asarray(result.programs), meta)
        atomic_write(out, format_programs(pf), replace=replace)
        fits = int(np.sum(np.asarray(result.spec_fit) >= 1.0))
        mean_len = float(np.mean([len(p.tokens) for p in pf.programs])) if pf.programs else 0.0
        say(f"wrote {len(ids)} programs to {out} (mean length {mean_len:.1f} tokens; {fits}/{len(ids)} "
            "reproduce every spec pair)")
    else:
        say(f"model kind '{kind.name}' has no discrete programs: no program file written, predictions only")

    codec = codec_of(spec)
    # Predictions in the task's own colours (the model worked in canonical ones where the spec asks for them).
    outputs = restore_rows(np.asarray(result.outputs), tasks.colour_maps)
    own = restore_colours(tasks)
    rows = []
    for i, pid in enumerate(ids):
        row = {"id": pid, "input": codec.decode(own.query_inputs[i]), "output": codec.decode(outputs[i])}
        if has_target[i]:
            row["target"] = codec.decode(own.query_outputs[i])
            row["correct"] = bool(correct[i])
        rows.append(row)
    try:
        atomic_write(predictions, jsonl(rows), replace=replace)
    except FileExistsError:
        if pf is not None and not replace:
            out.unlink(missing_ok=True)  # this command's own program file: no predictions of another beside it
        raise
    say(f"wrote predictions to {predictions}")
    return pf
