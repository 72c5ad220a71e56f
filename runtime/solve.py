"""The Python API for test-time search: `solve(spec, model, tasks)` runs a model kind's search over a `TaskSet`
in fixed-size batches (one jit trace) and scores the predictions against the known query outputs.

A search with several stages (`SearchSpec.stages`, e.g. `deepen`) runs each stage only on the tasks that the
earlier ones left unsolved (spec fit below 1), with the same batch shape, so each stage is traced once.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import jax
import numpy as np

import nlic.compiler.models.nli  # noqa: F401  (registers the "nli" kind)
from nlic.compiler.kinds import MODEL_KINDS, ModelKind
from nlic.compiler.spec import SearchSpec, Spec
from nlic.runtime.tasks.base import TaskSet

__all__ = ["SolveResult", "batch_size", "solve", "warm_up"]


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
        return spec, search
    return MODEL_KINDS.get(spec.model.kind), spec.search if search is None else search


def _assign(rows: np.ndarray, where: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A copy of rows with rows[where] = values (every stage's programs have the model's max_length slots)."""
    rows = rows.copy()
    rows[where] = values
    return rows


def _stage_label(stages: tuple[SearchSpec, ...], s: int) -> str:
    if len(stages) == 1:
        return ""
    st = stages[s]
    return f" [{st.method} depth {st.depth}]" if st.method == "enumerate" else f" [{st.method}]"


def _solve_batches(kind: ModelKind, model, tasks: TaskSet, search: SearchSpec, size: int, key, *,
                   progress: bool, label: str, t0: float) -> tuple[np.ndarray, ...] | None:
    """Run one search over `tasks` in batches of `size` (the last one padded); None when there are no tasks."""
    n = len(tasks)
    parts = []
    for b, start in enumerate(range(0, n, size)):
        chunk = tasks.take(slice(start, start + size))
        sol = kind.solve(model, _pad(chunk, size).batch(), search, key=jax.random.fold_in(key, b))
        parts.append(jax.tree.map(lambda a: np.asarray(a)[: len(chunk)], tuple(sol)))
        if progress:
            done = min(start + size, n)
            print(f"solve{label}: {done}/{n} tasks, {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    if not parts:
        return None
    return tuple(np.concatenate(p) for p in zip(*parts))


def solve(
    spec: Spec | ModelKind,
    model,
    tasks: TaskSet,
    *,
    search: SearchSpec | None = None,
    seed: int = 0,
    progress: bool = False,
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

    Returns:
        A `SolveResult`.
    """
    kind, search = _kind_and_search(spec, search, "solve")
    n = len(tasks)
    size = batch_size(search, n)  # every stage and batch has this shape: one trace per stage
    key = jax.random.key(seed)
    stages = search.stages()
    t0 = time.perf_counter()
    rows: tuple[np.ndarray, ...] | None = None
    todo = np.arange(n)
    for s, stage in enumerate(stages):
        stage_key = key if len(stages) == 1 else jax.random.fold_in(key, 1000 + s)
        part = _solve_batches(kind, model, tasks.take(todo), stage, size, stage_key,
                              progress=progress, label=_stage_label(stages, s), t0=t0)
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
    _, search = _kind_and_search(spec, search, "warm_up")
    warm = tasks.take(slice(0, batch_size(search, len(tasks))))
    for stage in search.stages():
        solve(spec, model, warm, search=stage)
