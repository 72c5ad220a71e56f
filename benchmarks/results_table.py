"""Print the README's results table (Table 1 on the shift suite) from the recorded figures in benchmarks/results.json.
Usage: python benchmarks/results_table.py [--json FILE] [--check README.md | --write README.md]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["BEGIN", "END", "load", "render", "extract_block", "replace_block", "main"]

BEGIN = "<!-- results-table:begin -->"
END = "<!-- results-table:end -->"
DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def load(path: Path) -> dict:
    """The parsed results file (OSError if unreadable, ValueError if not JSON or not a JSON object)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("the top level is not a JSON object")
    return data


def _accuracy(row: dict, key: str, where: str) -> str:
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: {key!r} must be a number in [0, 1], got {value!r}")
    return f"{value:.2f}"


def render(data: dict) -> str:
    """The markdown table: one line per method (in the order of the rows), ID and OOD per split, test FLOPs."""
    splits = [(s["key"], s["label"]) for s in data["splits"]]
    flops = data["test_flops_per_task"]
    rows = data["rows"]
    if not isinstance(rows, list) or not rows or not splits:
        raise ValueError("'rows' and 'splits' must be non-empty lists")
    methods: list[str] = []
    cells: dict[tuple[str, str], tuple[str, str]] = {}
    conditions = set()
    for i, row in enumerate(rows):
        where = f"rows[{i}]"
        method, split = row["method"], row["split"]
        if not isinstance(method, str) or split not in dict(splits):
            raise ValueError(f"{where}: unknown split {split!r} or a method that is not a string")
        if (method, split) in cells:
            raise ValueError(f"{where}: a second row for {method!r} on {split!r}")
        cells[(method, split)] = (_accuracy(row, "id", where), _accuracy(row, "ood", where))
        conditions.add((row["seed"], row["tasks"]))
        if method not in methods:
            methods.append(method)
    if len(conditions) != 1:
        raise ValueError(f"the rows mix seeds or task counts {sorted(conditions)}; the table has one of each")
    ((seed, tasks),) = conditions
    header = [f"method (seed {seed}, {tasks} tasks per split)"]
    for _, label in splits:
        header += [f"{label} ID", f"{label} OOD"]
    header.append(data["flops_column"])
    lines = ["| " + " | ".join(header) + " |", "|---|" + ":---:|" * (len(header) - 1)]
    for method in methods:
        line = [method]
        for key, label in splits:
            if (method, key) not in cells:
                raise ValueError(f"no {label} row for {method!r}")
            line += list(cells[(method, key)])
        value = flops[method]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"test_flops_per_task[{method!r}] must be a number, got {value!r}")
        line.append(f"{value:.2e}")
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines) + "\n"


def _markers(lines: list[str], name: str) -> tuple[int, int]:
    stripped = [line.strip() for line in lines]
    if stripped.count(BEGIN) != 1 or stripped.count(END) != 1 or stripped.index(BEGIN) > stripped.index(END):
        raise ValueError(f"{name}: needs exactly one {BEGIN} line followed by one {END} line")
    return stripped.index(BEGIN), stripped.index(END)


def extract_block(text: str, name: str = "README") -> str:
    """The lines between the marker lines, without surrounding blank lines, newline-terminated."""
    lines = text.splitlines()
    begin, end = _markers(lines, name)
    block = lines[begin + 1 : end]
    while block and not block[0].strip():
        block.pop(0)
    while block and not block[-1].strip():
        block.pop()
    return "\n".join(block) + "\n" if block else ""


def replace_block(text: str, table: str, name: str = "README") -> str:
    """`text` with the lines between the marker lines replaced by `table`."""
    lines = text.splitlines(keepends=True)
    begin, end = _markers([line.rstrip("\r\n") for line in lines], name)
    return "".join(lines[: begin + 1]) + table + "".join(lines[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="results file (default: benchmarks/results.json)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="README", help="exit 2 unless README's marked table equals the output")
    mode.add_argument("--write", metavar="README", help="replace README's marked table with the output")
    args = parser.parse_args(argv)

    try:
        table = render(load(Path(args.json)))
    except KeyError as e:
        print(f"results_table: {args.json}: missing key {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError, AttributeError) as e:
        print(f"results_table: {args.json}: {e}", file=sys.stderr)
        return 2

    try:
        if args.check:
            if extract_block(Path(args.check).read_text(encoding="utf-8"), args.check) != table:
                print(f"results_table: {args.check}: the table between the results-table markers differs from "
                      f"{args.json}; run: python benchmarks/results_table.py --write {args.check}", file=sys.stderr)
                return 2
            print(f"{args.check}: results table up to date")
        elif args.write:
            path = Path(args.write)
            new = replace_block(path.read_text(encoding="utf-8"), table, args.write)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(new, encoding="utf-8")
            tmp.replace(path)
            print(f"{args.write}: results table written")
        else:
            sys.stdout.write(table)
    except (OSError, ValueError) as e:
        print(f"results_table: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
