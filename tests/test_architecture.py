"""The layering of nlic: grammar <- compiler <- runtime, imports only go down, and no nlic import inside a function.

Walks the AST of every module of the three packages (no import needed), so a violation names file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"grammar": 0, "compiler": 1, "runtime": 2}


def modules() -> list[tuple[str, Path]]:
    out = []
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            out.append((package, path))
    return out


def _absolute(node: ast.ImportFrom, package: str, path: Path) -> str:
    """The dotted module an `ImportFrom` names, resolving relative imports."""
    if not node.level:
        return node.module or ""
    parts = ["nlic", package, *path.relative_to(ROOT / package).with_suffix("").parts]
    parts = parts[: len(parts) - node.level]
    return ".".join(parts + ([node.module] if node.module else []))


def nlic_imports(package: str, path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, inside a function) for every import of an nlic module in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                names = [_absolute(child, package, path)]
            elif isinstance(child, ast.Call) and isinstance(child.func, (ast.Attribute, ast.Name)):
                # importlib.import_module("nlic....") / __import__("nlic....") hide an import from this test.
                fname = child.func.attr if isinstance(child.func, ast.Attribute) else child.func.id
                if fname in ("import_module", "__import__") and child.args:
                    arg = child.args[0]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        names = [arg.value]
                    elif isinstance(arg, ast.JoinedStr):
                        names = ["nlic.<dynamic>"]
            for name in names:
                if name == "nlic" or name.startswith("nlic."):
                    found.append((child.lineno, name, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def test_the_three_packages_exist():
    assert len(modules()) > 30


@pytest.mark.parametrize("package, path", modules(), ids=lambda x: str(x.relative_to(ROOT)) if isinstance(x, Path) else x)
def test_imports_only_go_down_and_never_inside_functions(package, path):
    problems = []
    for line, name, in_function in nlic_imports(package, path):
        where = f"{path.relative_to(ROOT)}:{line}"
        if in_function:
            problems.append(f"{where}: function-local import of {name}")
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in LAYERS:
            problems.append(f"{where}: import of {name}, outside nlic.grammar/compiler/runtime")
        elif LAYERS[parts[1]] > LAYERS[package]:
            problems.append(f"{where}: nlic.{package} imports {name}, a layer above it")
    assert not problems, "\n".join(problems)


def test_pyproject_lists_every_package():
    """The wheel holds exactly the packages on disk (a missing entry installs a broken nlic)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = set()
    for package in LAYERS:
        for init in (ROOT / package).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / package).parts
            on_disk.add(".".join(("nlic", package, *parts)))
    assert set(config["packages"]) == on_disk
    assert config["package-dir"] == {f"nlic.{p}": p for p in LAYERS}
