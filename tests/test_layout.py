"""The code's own rules, checked on the source tree: short functions, no private names across modules, and the
import layers of pyproject.toml (``lint-imports``, which .ci/run runs too)."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "deeprecipes"
MODULES = sorted(SRC.rglob("*.py"))
MAX_FUNCTION_LINES = 80


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_function_is_longer_than_80_lines():
    long = [
        f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in MODULES
        for node in ast.walk(parsed(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_no_private_name_is_imported_or_used_across_modules():
    """``from .x import _y`` and ``module._y`` on an imported package module are both a private name leaking."""
    found = []
    for path in MODULES:
        tree = parsed(path)
        modules = set()  # names bound to the package's own modules here
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("deeprecipes")):
                for alias in node.names:
                    if private(alias.name):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno} imports {alias.name}")
                    modules.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.value.id not in ("self", "cls")
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not found, found


def test_imports_flow_one_way():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]' installs it)")
    done = subprocess.run([exe], capture_output=True, text=True, cwd=SRC.parents[1])
    assert done.returncode == 0, done.stdout[-4000:]
