"""Execution traces shown to people: the per-step table `nlic run --trace` prints, and the `trace.json` and
heat-map PNGs `nlic run --trace-out DIR` writes (rows from `nlic.runtime.replay.replay(..., trace=True)`).
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlic.grammar.errors import CheckpointError, Loc, escape
from nlic.runtime.files import atomic_write
from nlic.runtime.outputs import refuse_existing
from nlic.runtime.replay import json_value

__all__ = ["LOW_CONFIDENCE", "MAX_PLOTS", "TRACE_JSON", "check_trace_dir", "format_trace", "plot_trace",
           "trace_paths", "write_traces"]

TRACE_JSON = "trace.json"
_JSON_FORMAT = "nlic-run-trace"  # trace.json's `format`, beside its `version`
_JSON_VERSION = 1
MAX_PLOTS = 64
"""At most this many heat maps are drawn per `write_traces` (one per input, in input order)."""
LOW_CONFIDENCE = 0.9
"""Positions whose likeliest value has a lower probability are marked in the table."""
_MAX_MARKS = 4  # low-confidence positions listed per step; more are counted
_HINT = "add --force to overwrite it, or write elsewhere with --trace-out DIR"


def format_trace(row: Mapping[str, Any], *, threshold: float = LOW_CONFIDENCE) -> str:
    """One replayed input's trace as a table: step, acting token, the likeliest value per position (`?` after a
    value whose probability is below `threshold`), and those values with their probabilities (`#position=value
    (probability)`; past `_MAX_MARKS` of them, their count and the lowest).

    Args:
        row: a row of `replay(..., trace=True)` (`id`, `output`, `trace`).
        threshold: probabilities below it are marked.
    """
    steps = row["trace"]
    names = ["input" if s["token"] is None else escape(str(s["token"])) for s in steps]
    width = max((len(str(v)) for s in steps for v in s["tokens"]), default=1)
    name_w = max([len("token")] + [len(n) for n in names])
    program = " ".join(names[1:]) or "(empty program)"
    lines = [f"{escape(str(row['id']))}: {program}",
             f"{'step':>4}  {'token':<{name_w}}  values (? = probability below {threshold:g})"]
    for s, name in zip(steps, names):
        low = [(i, v, p) for i, (v, p) in enumerate(zip(s["tokens"], s["probs"])) if p < threshold]
        values = " ".join(f"{v:>{width}}" + ("?" if p < threshold else " ") for v, p in zip(s["tokens"], s["probs"]))
        if len(low) > _MAX_MARKS:
            i, v, p = min(low, key=lambda t: t[2])
            marks = f"{len(low)}/{len(s['tokens'])} below {threshold:g}, lowest #{i}={v} ({p:.2f})"
        else:
            marks = " ".join(f"#{i}={v} ({p:.2f})" for i, v, p in low)
        lines.append(f"{s['step']:>4}  {name:<{name_w}}  {values}" + (f"  {marks}" if marks else "").rstrip())
    lines.append(f"output: {escape(json.dumps(json_value(row['output'])))}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _stem(pid: str) -> str:
    """A safe file name stem for a program id: letters, digits, `.`, `_`, `-` (no leading dot), at most 80."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", pid).lstrip(".")[:80].rstrip(".")
    return stem or "input"


def trace_paths(rows: Sequence[Mapping[str, Any]], out: Path | str) -> tuple[Path, list[Path]]:
    """`(out/trace.json, heat-map paths)`: one PNG per input for the first `MAX_PLOTS` rows, named by the
    sanitised program id, made unique (`-2`, `-3`... for repeated ids or ids that sanitise alike)."""
    out = Path(out)
    used: set[str] = set()
    pngs = []
    for row in rows[:MAX_PLOTS]:
        stem = _stem(str(row["id"]))
        name, n = stem, 2
        while name.lower() in used:  # case-insensitive file systems see `A` and `a` as one name
            name, n = f"{stem}-{n}", n + 1
        used.add(name.lower())
        pngs.append(out / f"{name}.png")
    return out / TRACE_JSON, pngs


def check_trace_dir(out: Path | str, *, force: bool = False, pngs: Sequence[Path] = ()) -> None:
    """Refuse a trace directory that is a file, or that holds `trace.json` (or any of `pngs`), unless `force`
    (`nlic run --trace-out` checks `trace.json` before replaying and the heat maps before writing).

    Raises:
        CheckpointError: located at the directory or at each file in the way.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError("the trace directory is a file", loc=Loc(str(out)),
                              hint="choose a directory with --trace-out DIR")
    refuse_existing([out / TRACE_JSON, *pngs], force=force, what="trace file", hint=_HINT)


def plot_trace(row: Mapping[str, Any], path: Path | str) -> None:
    """Draw one input's trace as a heat map PNG (written atomically): x = positions, y = steps labelled with the
    acting token, colour = probability of the likeliest value, each cell annotated with that value."""
    import matplotlib  # matplotlib loads only where a plot is drawn: it takes a second to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = row["trace"]
    values = np.asarray([s["tokens"] for s in steps], np.int64)
    probs = np.asarray([s["probs"] for s in steps], np.float64)
    n, L = values.shape
    labels = [f"{s['step']} " + ("input" if s["token"] is None else escape(str(s["token"]))) for s in steps]
    digits = max(len(str(int(v))) for v in values.reshape(-1)) if values.size else 1
    cell = 0.28 + 0.07 * max(digits - 1, 0)
    fig, ax = plt.subplots(figsize=(min(2.5 + cell * L, 60.0), min(1.6 + 0.3 * n, 40.0)))
    im = ax.imshow(probs.reshape(n, L), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    for k in range(n):
        for i in range(L):
            ax.text(i, k, str(int(values[k, i])), ha="center", va="center", fontsize=7,
                    color="black" if probs[k, i] > 0.6 else "white", parse_math=False)
    ax.set_yticks(range(n), labels, fontsize=8)
    for t in ax.get_yticklabels():
        t.set_parse_math(False)
    every = 1 if L <= 40 else 5
    ax.set_xticks(range(0, L, every))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("position")
    ax.set_ylabel("step (acting token)")
    ax.set_title(escape(str(row["id"]))[:120], fontsize=9, parse_math=False)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02).set_label("probability of the likeliest value", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(Path(path), buf.getvalue())


def write_traces(rows: Sequence[Mapping[str, Any]], out: Path | str, *, force: bool = False,
                 log: Callable[[str], None] | None = None) -> tuple[Path, list[Path]]:
    """Write `out/trace.json` (every row with its trace) and one heat map per input (`plot_trace`, at most
    `MAX_PLOTS`; the log line says how many were left out).

    Args:
        rows: rows of `replay(..., trace=True)`.
        out: the directory (created).
        force: overwrite existing trace files (other files in `out` are never touched).
        log: called with progress lines (stderr in `nlic run`).

    Returns:
        The JSON file and the PNGs written.

    Raises:
        CheckpointError: `out` is a file, or a trace file exists and not `force`.
    """
    say = log or (lambda _s: None)
    json_path, pngs = trace_paths(rows, out)
    check_trace_dir(out, force=force, pngs=pngs)
    Path(out).mkdir(parents=True, exist_ok=True)
    doc = {"format": _JSON_FORMAT, "version": _JSON_VERSION, "rows": [json_value(dict(r)) for r in rows]}
    atomic_write(json_path, json.dumps(doc, separators=(",", ":")) + "\n")
    t0 = last = time.perf_counter()
    if len(pngs) > 8:
        say(escape(f"drawing {len(pngs)} heat maps into {out}"))
    for i, (row, png) in enumerate(zip(rows, pngs), start=1):
        plot_trace(row, png)
        now = time.perf_counter()
        if now - last >= 5.0 and i < len(pngs):
            say(f"heat maps: {i}/{len(pngs)}")
            last = now
    skipped = len(rows) - len(pngs)
    say(escape(f"wrote {json_path} ({len(rows)} traces) and {len(pngs)} heat maps in {time.perf_counter() - t0:.1f} s"
               + (f"; {skipped} more inputs not drawn (at most {MAX_PLOTS} heat maps)" if skipped else "")))
    return json_path, pngs

