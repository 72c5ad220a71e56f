"""`nlic data show|export SPEC`: look at a spec's tasks, or write a split as ARC-style JSON files.

Exported tasks load back with the `files` family (or `nlic solve RUN_DIR DIR`), so other tools see identical tasks.
Both read a split's evaluation sample (`evaluation_tasks`): `ood-0000` here is the `ood-0000` that `nlic train`
evaluates, `nlic solve RUN ood` solves and `nlic eval` scores.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from nlic.compiler import load_spec
from nlic.compiler.families import codec_of, evaluation_tasks
from nlic.compiler.families.colours import restore_colours
from nlic.grammar.errors import escape
from nlic.runtime.export import export_tasks, task_rows
from nlic.runtime.flags import check_flag

__all__ = ["add_arguments", "run", "format_task"]


_SAMPLE = ("(eval.tasks tasks, those nlic train evaluates and nlic solve RUN SPLIT solves; "
           "N above eval.tasks draws a larger sample, whose tasks differ)")
_SEED = "seed the evaluation sample derives from, as nlic solve --seed (default: the spec's seed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print tasks of a split readably", description="print tasks of a split")
    show.add_argument("spec", metavar="SPEC", help="spec file (.yaml or .nls)")
    show.add_argument("--split", default=None, help="split to show (default: the spec's training split)")
    show.add_argument("-n", type=int, default=3, help=f"the first N tasks of the split's evaluation sample {_SAMPLE} "
                      "(default 3)")
    show.add_argument("--seed", type=int, default=None, help=_SEED)
    show.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="coloured grids (auto: only on a terminal)")
    exp = sub.add_parser("export", help="write a split as ARC-style JSON files, one per task",
                         description="write a split as ARC-style JSON files, one per task")
    exp.add_argument("spec", metavar="SPEC", help="spec file (.yaml or .nls)")
    exp.add_argument("--split", required=True, help="split to export")
    exp.add_argument("--out", required=True, metavar="DIR", help="output directory (new or empty)")
    exp.add_argument("-n", type=int, default=None, help=f"the first N tasks of the split's evaluation sample {_SAMPLE} "
                     "(default: all eval.tasks of it)")
    exp.add_argument("--seed", type=int, default=None, help=_SEED)
    exp.add_argument("--force", action="store_true", help="write into a non-empty directory (replacing its task files)")


def _side_by_side(blocks: list[str], sep: str) -> str:
    """Multi-line blocks next to each other (grids), or joined on one line."""
    parts = [b.split("\n") for b in blocks]
    if all(len(p) == 1 for p in parts):
        return sep.join(blocks)
    height = max(len(p) for p in parts)
    widths = [max(_visible_len(line) for line in p) for p in parts]
    rows = []
    for r in range(height):
        cells = []
        for p, w in zip(parts, widths):
            line = p[r] if r < len(p) else ""
            cells.append(line + " " * (w - _visible_len(line)))
        rows.append((sep if r == height // 2 else " " * len(sep)).join(cells).rstrip())
    return "\n".join(rows)


def _visible_len(text: str) -> int:
    return len(re.sub(r"\x1b\[[0-9;]*m", "", text))


def format_task(tasks: Any, i: int, codec: Any, *, color: bool = False) -> str:
    """Text of task i of a TaskSet: its spec pairs and its query, `input -> output` per line."""
    lines = [f"task {escape(tasks.ids[i])}"]
    for j in range(tasks.inputs.shape[1]):
        if not tasks.pair_mask[i, j]:
            continue
        pair = _side_by_side([codec.render(tasks.inputs[i, j], color=color),
                              codec.render(tasks.outputs[i, j], color=color)], "  ->  ")
        lines.append(_indent(f"pair {j + 1}:", pair))
    out = codec.render(tasks.query_outputs[i], color=color) if tasks.has_target[i] else "?"
    lines.append(_indent("query:", _side_by_side([codec.render(tasks.query_inputs[i], color=color), out], "  ->  ")))
    return "\n".join(lines)


def _count(tasks: int, queries: int) -> str:
    """"3 tasks", or "2 tasks (3 queries)" where a task has several test pairs."""
    return f"{tasks} tasks" + (f" ({queries} queries)" if queries != tasks else "")


def _indent(label: str, body: str) -> str:
    if "\n" not in body:
        return f"  {label:<8} {body}"
    return f"  {label}\n" + "\n".join("    " + line for line in body.split("\n"))


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    split = args.split or spec.task.train_split
    seed = spec.seed if args.seed is None else args.seed
    check_flag(args.n, "-n", "eval.tasks", minimum=1)
    check_flag(args.seed, "--seed", "seed")
    tasks = restore_colours(evaluation_tasks(spec, split, args.n, seed=seed))  # the task's own colours
    codec = codec_of(spec)
    if args.action == "export":
        written = export_tasks(tasks, codec, args.out, force=args.force)
        print(escape(f"wrote {_count(len(written), len(tasks))} of split '{split}' to {args.out}"))
        return 0
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(escape(f"{spec.name}: {spec.task.family}, split '{split}', {_count(len(task_rows(tasks)), len(tasks))}, "
                 f"L={codec.length}, V={codec.values}, seed {seed}"))
    for i in range(len(tasks)):
        print()
        print(format_task(tasks, i, codec, color=color))
    return 0
