"""Side-by-side evaluation of several specs (NLI and baselines): train or reuse runs, solve identical task instances
with every search mode and budget, and write a CSV, a markdown table (Table 1 layout) and an accuracy/budget plot.

At each seed every spec is scored on the splits' evaluation samples of that seed (`evaluation_tasks`): the tasks
`nlic solve RUN SPLIT` solves for the run `runs/<name>-seed<k>`, under the same ids.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from nlic.compiler.families import evaluation_tasks, unknown_splits
from nlic.compiler.identity import UNTRAINED_SECTIONS, trained_spec_diff
from nlic.compiler.kinds import MODEL_KINDS, kind_of
from nlic.compiler.lower import abstract_model
from nlic.compiler.models.nli.search import enumeration_chunks
from nlic.compiler.spec import SearchSpec, Spec
from nlic.grammar.errors import CheckpointError, Diagnostic, Loc, SpecError, did_you_mean, escape
from nlic.grammar.reading import MAX_HEADER_BYTES, loads_json, read_text
from nlic.runtime import run_dir as rd
from nlic.runtime.files import atomic_write
from nlic.runtime.outputs import refuse_existing, refuse_file_in_the_way
from nlic.runtime.solve import batch_size, fitted_search, solve, warm_up
from nlic.runtime.train import train

__all__ = [
    "DEFAULT_METHODS",
    "RESULT_FILES",
    "Row",
    "evaluate",
    "methods_of",
    "search_plan",
    "trained_model",
    "solve_flops",
    "task_label",
    "write_results",
    "check_results_free",
    "results_csv",
    "results_markdown",
    "plot_budget",
]

DEFAULT_METHODS = ("none", "prior", "gradient", "cascade")
"""Search modes evaluated when `methods` is not given (those the kind supports)."""

RESULT_FILES = {"csv": "results.csv", "markdown": "results.md", "plot": "budget.png"}
"""What `write_results` writes into its directory."""

# Search modes whose budget is the number of gradient steps (`search.steps`); `prior`'s is programs sampled.
_STEP_METHODS = ("gradient", "ttt", "cascade")
_FIELDS = ("spec", "kind", "task", "search", "budget", "seed", "split", "accuracy", "n", "seconds", "flops")


@dataclasses.dataclass(frozen=True)
class Row:
    """One evaluation: a spec's model (one training seed) solving one split with one search mode and budget.

    Attributes:
        spec: spec name; kind: model kind; task: task label (e.g. `shift_l`); search: search method.
        budget: search steps (gradient-type methods), programs sampled (`prior`), 0 for `none`.
        seed: training seed; split: evaluation split; accuracy: exact-match accuracy on the query outputs.
        n: tasks scored; seconds: wall-clock seconds of the search (compilation excluded: every mode is compiled
            on one batch of the split's shape first, once per spec).
        flops: XLA-estimated test-time FLOPs per task (NaN when not measured).
    """

    spec: str
    kind: str
    task: str
    search: str
    budget: int
    seed: int
    split: str
    accuracy: float
    n: int
    seconds: float
    flops: float


def task_label(spec: Spec) -> str:
    """The column group of a spec in the table: the family's split parameter if any (e.g. `shift_l`), else the
    family name."""
    split = spec.task.param("split")
    return str(split) if split is not None else spec.task.family


def methods_of(methods: Sequence[str], kind: str) -> tuple[str, ...]:
    """The methods of `methods` that apply to specs of `kind`: plain names, and `KIND:METHOD` entries of that kind
    (`--methods none,nli:enumerate,gradient`: the NLI's enumeration, and gradient search for every kind)."""
    out = []
    for m in methods:
        k, sep, name = m.rpartition(":")
        if sep and k != kind:
            continue
        if name not in out:
            out.append(name)
    return tuple(out)


def _evaluated(kind: Any, methods: Sequence[str]) -> tuple[str, ...]:
    """The search modes of `methods` (`methods_of`) that specs of `kind` are evaluated with."""
    return tuple(m for m in methods_of(methods, kind.name) if m in kind.search_methods)


def _budget_free(specs: Sequence[Spec], kinds: Sequence[Any], methods: Sequence[str]) -> list[tuple[Spec, Any]]:
    """The specs (and kinds) no search of which takes a budget: evaluated with `none` alone (once, at budget 0)."""
    return [(s, k) for s, k in zip(specs, kinds) if set(_evaluated(k, methods)) <= {"none"}]


def _check_budgets(specs: Sequence[Spec], kinds: Sequence[Any], budgets: Sequence[int],
                   methods: Sequence[str]) -> str | None:
    """Refuse search budgets above 0 that apply to no spec (`_budget_free`), naming the kinds and their searches.
    Where they apply to some, the note naming the others and whether those are scored at all (`none` runs at
    budget 0 only); None where they apply to every spec, or where 0 (no search) is the only budget."""
    free = _budget_free(specs, kinds, methods)
    if not free or not any(b > 0 for b in budgets):
        return None
    if len(free) < len(specs):
        def status(kind: Any) -> str:
            if "none" not in _evaluated(kind, methods):
                return "not scored"
            return "scored with none at budget 0 only" if 0 in budgets else "not scored: none runs at budget 0 only"

        return escape("note: --budgets do not apply to " + ", ".join(f"{s.name} ({k.name}: {status(k)})"
                                                                      for s, k in free))
    shown = ", ".join(dict.fromkeys(f"{k.name}: {', '.join(_evaluated(k, methods)) or 'no search'}" for k in kinds))
    left_out = [m for k in kinds for m in k.search_methods if m != "none"]
    if left_out:  # the kinds have searches that take a budget, and --methods leaves them out
        hint = f"drop them, or add to --methods a search that takes one (e.g. {left_out[0]})"
    else:
        takers = [n for n in MODEL_KINDS.names() if set(MODEL_KINDS.get(n).search_methods) - {"none"}]
        hint = f"drop them, or add a spec whose model kind searches with a budget: {', '.join(takers)}"
    positive = ", ".join(str(b) for b in budgets if b > 0)
    raise SpecError(f"budgets {positive} apply to no search evaluated here ({shown}; none runs once, at budget 0)",
                    loc=Loc("--budgets"), hint=hint)


_BUDGET_FIELD = {"prior": "starts", "enumerate": "programs"}
"""The search field a method's budget sets (`search_plan`); every other method's: `steps` (an enumeration spends
no gradient step: its budget is the programs it may try per task, `search.programs`)."""


def search_plan(
    spec: Spec, methods: Sequence[str], search_methods: Sequence[str], budgets: Sequence[int] | None
) -> list[tuple[str, int, SearchSpec]]:
    """The (method, budget, search spec) triples to run for one spec.

    `none` runs once with budget 0 (when 0 is among the budgets). Gradient-type methods run once per positive
    budget with `steps = budget`; `prior` samples `starts = budget` programs. Without budgets: 0 and the spec's
    own `search.steps` (`search.starts` for prior). Methods the kind does not support are skipped.
    """
    plan = []
    for method in methods:
        if method not in search_methods:
            continue
        if method == "none":
            if budgets is None or 0 in budgets:
                plan.append((method, 0, dataclasses.replace(spec.search, method="none")))
            continue
        field = _BUDGET_FIELD.get(method, "steps")
        own = getattr(spec.search, field)
        for b in sorted({own} if budgets is None else {b for b in budgets if b > 0}):
            plan.append((method, b, dataclasses.replace(spec.search, method=method, **{field: b})))
    return plan


def trained_model(
    spec: Spec,
    *,
    runs: Path,
    retrain: bool = False,
    progress: bool | None = None,
    fix: str = "pass --retrain to overwrite it, or --runs DIR to train somewhere else",
) -> tuple[Any, str]:
    """The trained model of `spec` from `runs/<name>-seed<seed>`, trained there unless a finished run is already
    there whose spec differs from `spec` at most in sections training never reads (`search`, `eval`) or in fields
    nlic added since: changing a search budget does not retrain.

    `fix` is the hint of the error below, in the caller's own flags (nlic eval's by default).

    Returns:
        The model and what happened (`"reused"` or `"trained"`).

    Raises:
        CheckpointError: the run directory holds another spec's results (and `retrain` is False).
    """
    run = Path(runs) / f"{spec.name}-seed{spec.seed}"
    meta = run / rd.MODEL_META_FILE
    if not retrain and meta.is_file():
        spec = rd.with_locked_data(run, spec)  # a project folder moved with its runs: the run's own data paths
        try:
            saved = loads_json(read_text(meta, limit=MAX_HEADER_BYTES, what="model metadata", error=CheckpointError),
                               path=str(meta), error=CheckpointError)
        except (OSError, ValueError):
            saved = {}
        if isinstance(saved, dict) and not trained_spec_diff(saved.get("spec"), spec, ignore=UNTRAINED_SECTIONS):
            return rd.load_model(run, spec, abstract_model(spec), ignore=UNTRAINED_SECTIONS), "reused"
    try:
        result = train(spec, out=run, resume=not retrain, force=retrain, progress=progress)
    except CheckpointError as e:
        note = Diagnostic(
            Loc(str(run)),
            "a run directory is reused only when it was trained from the same spec",
            fix,
        )
        raise CheckpointError(diagnostics=(*e.diagnostics, note)) from None
    return result.model, "trained"


def _compiled_flops(kind: Any, model: Any, batch: Any, search: SearchSpec) -> float:
    lowered = eqx.filter_jit(kind.solve).lower(model, batch, search, key=jax.random.key(0))
    cost = lowered.lowered.compile().cost_analysis()  # equinox's wrapper keeps jax's `Lowered` as `.lowered`
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return float(cost.get("flops", math.nan)) if cost else math.nan


def _enumeration_chunks(kind: Any, model: Any, search: SearchSpec) -> int:
    """Iterations of the NLI's enumeration loop in `search` (0 for other kinds and methods)."""
    if kind.name != "nli" or search.method not in ("enumerate", "cascade"):
        return 0
    return enumeration_chunks(search.branch_width(model.cfg.vocab), search.depth)


def solve_flops(kind: Any, model: Any, tasks: Any, search: SearchSpec) -> float:
    """Test-time FLOPs per task of `kind.solve` with `search`, from XLA's cost analysis of the compiled solve.

    XLA counts the body of a loop once whatever its trip count, so for step-budget methods the cost is
    extrapolated from one and zero steps: F(b) = F(1) + (b - 1) * (F(1) - F(0)), exact for a fixed-length scan
    and an upper bound for searches that stop early; the NLI's enumeration loop likewise, from depth d and depth 0,
    times its iterations (`enumeration_chunks`). A staged search (`deepen`) counts every stage, the cost of a
    task no stage before the last solves (an upper bound, except that the enumeration over the language's tokens in
    use, which `solve` adds from the training split, is not counted). NaN when the solve cannot be lowered as one
    function.
    """
    search = fitted_search(kind, search, model)
    stages = search.stages()
    if len(stages) > 1:
        return float(sum(solve_flops(kind, model, tasks, stage) for stage in stages))
    size = batch_size(search, len(tasks))
    batch = tasks.take(np.arange(size) % len(tasks)).batch()
    try:
        if search.method in _STEP_METHODS and search.steps > 1:
            one = _compiled_flops(kind, model, batch, dataclasses.replace(search, steps=1))
            zero = _compiled_flops(kind, model, batch, dataclasses.replace(search, steps=0))
            total = one + (search.steps - 1) * max(one - zero, 0.0)
        else:
            total = _compiled_flops(kind, model, batch, search)
        chunks = _enumeration_chunks(kind, model, search)
        if chunks > 1:  # the enumeration loop's body is counted once too: add the other iterations
            no_steps = dataclasses.replace(search, steps=0)
            body = _compiled_flops(kind, model, batch, no_steps) - \
                _compiled_flops(kind, model, batch, dataclasses.replace(no_steps, depth=0))
            total += (chunks - 1) * max(body, 0.0)
    except Exception:  # noqa: BLE001  a method with host-side control flow has no single compiled cost
        return math.nan
    return total / size


def _log(message: str) -> None:
    print(f"eval: {message}", file=sys.stderr, flush=True)


def _check_splits(specs: Sequence[Spec], splits: Sequence[str] | None) -> None:
    """`SpecError` (every one at once) for a split of `--splits` that a spec's task family does not have, before
    anything trains: found after training, it ended the command with the models trained and nothing scored."""
    errors = [d for spec in specs for d in unknown_splits(spec, splits or (), Loc("--splits"),
                                                          prefix=f"spec '{spec.name}': ")]
    if errors:
        raise SpecError(diagnostics=errors)


def evaluate(
    specs: Sequence[Spec],
    *,
    splits: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    budgets: Sequence[int] | None = None,
    steps: int | None = None,
    tasks: int | None = None,
    methods: Sequence[str] | None = None,
    runs: Path | str = "runs",
    data_seed: int | None = None,
    retrain: bool = False,
    flops: bool = True,
    log: Callable[[str], None] | None = _log,
) -> list[Row]:
    """Train (or reuse) every spec for every seed and score it on identical tasks with every search mode.

    Args:
        specs: validated specs (names must differ: they name the run directories).
        splits: evaluation splits (default: each spec's `eval.splits`).
        seeds: training seeds; each replaces the spec's `seed` (runs `runs/<name>-seed<k>`).
        budgets: search budgets (see `search_plan`); None: 0 and each spec's own.
        steps: override of `training.steps` (part of the spec hash, so runs with another budget are not reused).
        tasks: tasks per split (default: each spec's `eval.tasks`).
        methods: search modes (default `DEFAULT_METHODS`, those each kind supports); `KIND:METHOD` runs a method
            for that kind's specs only.
        runs: parent directory of the run directories.
        data_seed: the seed the evaluation tasks derive from (`evaluation_tasks`), shared by all specs and seeds;
            None (default): each training seed's own, so that at each seed every spec sees the same tasks, those
            `nlic solve` solves for that run (with `tasks` at most `eval.tasks`).
        retrain: train again even where a matching run exists.
        flops: measure test-time FLOPs per task (one extra compilation per mode and budget).
        log: progress lines (None: silent).

    Returns:
        One `Row` per spec, seed, split, search mode and budget.

    Raises:
        SpecError: duplicate spec names, a split of `splits` a spec's family does not have, a search mode that no
            spec's kind supports, or `budgets` above 0 where no
            search evaluated takes one (where some do, `log` gets a note naming the specs they do not apply to).
        CheckpointError: `runs` is a file or inside one.
    """
    log = log or (lambda _msg: None)
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"two specs are named '{dup[0]}'", loc=Loc("name"), hint="give each spec its own `name`")
    kinds = [kind_of(s) for s in specs]
    known = {m for k in kinds for m in k.search_methods}
    known |= {f"{k.name}:{m}" for k in kinds for m in k.search_methods}
    bad = [m for m in methods or () if m not in known]  # the defaults are filtered per kind instead
    if bad:
        raise SpecError(f"no model kind here has the search method '{bad[0]}'", loc=Loc("--methods"),
                        hint=did_you_mean(bad[0], known) or "a method, or KIND:METHOD for one kind's specs only")
    methods = tuple(methods) if methods else DEFAULT_METHODS
    _check_splits(specs, splits)
    refuse_file_in_the_way(Path(runs), what="directory of the runs", hint="train elsewhere with --runs DIR")
    note = None if budgets is None else _check_budgets(specs, kinds, budgets, methods)
    if note:
        log(note)
    rows: list[Row] = []
    for spec, kind in zip(specs, kinds):
        plan = search_plan(spec, methods_of(methods, kind.name), kind.search_methods, budgets)
        eval_splits = tuple(splits) if splits else spec.eval.splits
        n = int(tasks or spec.eval.tasks)
        costs: dict[tuple[str, int], float] = {}
        warm: set[tuple[str, int]] = set()  # compiled once per spec and mode: every seed's model has its shapes
        for seed in seeds:
            run_spec = dataclasses.replace(spec, seed=int(seed))
            if steps is not None:
                run_spec = dataclasses.replace(run_spec, training=dataclasses.replace(spec.training, steps=int(steps)))
            log(f"{spec.name} seed {seed}: training ({kind.name}, {run_spec.training.steps} steps) or reusing")
            model, how = trained_model(run_spec, runs=Path(runs), retrain=retrain)
            log(f"{spec.name} seed {seed}: model {how}")
            # From the spec's task and eval sections and the seed only: identical for every kind at one seed.
            task_sets = {split: evaluation_tasks(run_spec, split, n, seed=data_seed) for split in eval_splits}
            for method, budget, search in plan:
                if flops and (method, budget) not in costs:
                    costs[(method, budget)] = solve_flops(kind, model, task_sets[eval_splits[0]], search)
                if (method, budget) not in warm:  # so that `seconds` times the search, not its compilation
                    warm_up(run_spec, model, task_sets[eval_splits[0]], search=search)
                    warm.add((method, budget))
                for split in eval_splits:
                    result = solve(run_spec, model, task_sets[split], search=search, seed=int(seed))
                    acc = math.nan if result.accuracy is None else float(result.accuracy)
                    row = Row(spec.name, kind.name, task_label(spec), method, budget, int(seed), split, acc,
                              int(np.asarray(result.has_target).sum()), float(result.seconds),
                              costs.get((method, budget), math.nan))
                    rows.append(row)
                    log(f"{spec.name} seed {seed} {method}@{budget} {split}: accuracy {acc:.3f} "
                        f"on {row.n} tasks ({row.seconds:.1f}s)")
    return rows


# --- outputs --------------------------------------------------------------------------------------------------


def results_csv(rows: Sequence[Row]) -> str:
    """The rows as CSV text with a header (`flops` is per task)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_FIELDS)
    for r in rows:
        values = dataclasses.asdict(r)
        writer.writerow([_fmt_csv(values[f]) for f in _FIELDS])
    return buf.getvalue()


def _fmt_csv(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.6g}"
    return str(x)


def _row_label(kind: str, spec: str, method: str, budget: int, ambiguous: bool) -> str:
    who = spec if ambiguous else kind
    return f"{who} {method}" if method == "none" else f"{who} {method} ({budget})"


def results_markdown(rows: Sequence[Row]) -> str:
    """Table 1 layout: one row per method and search mode, columns task x split, cells mean ± std over seeds."""
    if not rows:
        return "(no results)\n"
    tasks = list(dict.fromkeys(r.task for r in rows))
    splits = list(dict.fromkeys(r.split for r in rows))
    columns = [(t, s) for t in tasks for s in splits if any(r.task == t and r.split == s for r in rows)]
    # Several specs of one kind on one task (e.g. ablations) are told apart by spec name.
    per_task_kind: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        per_task_kind.setdefault((r.task, r.kind), set()).add(r.spec)
    ambiguous = {k for (_, k), names in per_task_kind.items() if len(names) > 1}
    cells: dict[str, dict[tuple[str, str], list[float]]] = {}
    cost: dict[str, list[float]] = {}
    for r in rows:
        label = _row_label(r.kind, r.spec, r.search, r.budget, r.kind in ambiguous)
        cells.setdefault(label, {}).setdefault((r.task, r.split), []).append(r.accuracy)
        if not math.isnan(r.flops):
            cost.setdefault(label, []).append(r.flops)
    head = ["method"] + [f"{t} {s.upper() if s in ('id', 'ood') else s}" for t, s in columns] + ["test FLOPs/task"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + [":---:"] * (len(head) - 1)) + "|"]
    for label, row in cells.items():
        out = [label]
        for col in columns:
            accs = np.asarray(row.get(col, []), float)
            out.append(f"{np.nanmean(accs):.2f} ± {np.nanstd(accs):.2f}" if accs.size else "–")
        out.append(f"{np.mean(cost[label]):.3g}" if cost.get(label) else "–")
        lines.append("| " + " | ".join(out) + " |")
    seeds = sorted({r.seed for r in rows})
    note = f"\nExact-match accuracy, mean ± std over training seeds {', '.join(map(str, seeds))}; " \
           "budget in parentheses (gradient steps; programs sampled for prior, or enumerated for enumerate).\n"
    return "\n".join(lines) + "\n" + note


def plot_budget(rows: Sequence[Row], path: Path) -> None:
    """Accuracy (mean over seeds, ± std) against search budget, one panel per split, one line per spec and mode."""
    import matplotlib  # matplotlib loads only where a plot is drawn: it takes a second to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(dict.fromkeys(r.split for r in rows)) or ["id"]
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 3.8), squeeze=False)
    for ax, split in zip(axes[0], splits):
        series: dict[tuple[str, str], dict[int, list[float]]] = {}
        for r in rows:
            if r.split == split:
                series.setdefault((r.spec, r.search), {}).setdefault(r.budget, []).append(r.accuracy)
        for (spec, method), points in series.items():
            xs = sorted(points)
            mean = [np.nanmean(points[x]) for x in xs]
            std = [np.nanstd(points[x]) for x in xs]
            style = dict(marker="o", capsize=3) if len(xs) > 1 else dict(marker="s", linestyle="none", capsize=3)
            ax.errorbar(xs, mean, yerr=std, label=f"{spec} {method}", **style)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("search budget (steps; programs for prior)")
        ax.set_ylabel("exact-match accuracy")
        ax.set_title(split.upper() if split in ("id", "ood") else split)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(Path(path), buf.getvalue())


def check_results_free(out: Path | str, *, force: bool = False) -> None:
    """Refuse a results directory that already holds results files, unless `force` (`nlic eval` checks before it
    trains anything).

    Raises:
        CheckpointError: located at each results file in the way.
    """
    out = Path(out)
    refuse_file_in_the_way(out, what="results directory", hint="write the results elsewhere with --out DIR")
    refuse_existing([out / name for name in RESULT_FILES.values()], force=force, what="results file",
                    hint="add --force to overwrite it, or write elsewhere with --out DIR")


def write_results(rows: Sequence[Row], out: Path | str, *, force: bool = False) -> dict[str, Path]:
    """Write `results.csv`, `results.md` and `budget.png` into `out` (each file atomically).

    Raises:
        CheckpointError: a results file exists and not `force`.
    """
    check_results_free(out, force=force)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {key: out / name for key, name in RESULT_FILES.items()}
    atomic_write(files["csv"], results_csv(rows))
    atomic_write(files["markdown"], results_markdown(rows))
    plot_budget(rows, files["plot"])
    return files
