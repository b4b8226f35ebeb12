"""The layers of DESIGN.md, checked on the source: parse each module's imports with `ast` (including the ones inside
functions) and follow them through the package, so a lazy import cannot hide a cycle or an upward reach."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "studykit"
FACE = {"studykit.study", "studykit.study_runner", "studykit.cli"}


def _file(module: str) -> Path | None:
    rel = Path(*module.split(".")[1:])
    for path in (PKG / rel.with_suffix(".py"), PKG / rel / "__init__.py"):
        if path.is_file():
            return path
    return None


def direct_imports(module: str) -> set[str]:
    """studykit modules that `module`'s source imports anywhere (relative imports resolved; parents included)."""
    path = _file(module)
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names if _file(f"{target}.{a.name}")}
    out = set()
    for name in found:
        parts = name.split(".")
        out |= {".".join(parts[:i]) for i in range(2, len(parts) + 1) if parts[0] == "studykit"}
    return {m for m in out if _file(m) and m != module}


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for dep in direct_imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen - {module}


def test_the_parser_sees_relative_and_lazy_imports():
    assert "studykit.study" in direct_imports("studykit.study_runner")  # `from .study import ...` at top level
    assert "studykit.tracking" in direct_imports("studykit.study_runner")  # `from .tracking import ...` in a function
    assert "studykit.rewards" in direct_imports("studykit.evaluation")  # `from . import metrics, rewards`


@pytest.mark.parametrize("module", ["studykit.analysis", "studykit.figures", "studykit.runs", "studykit.verdicts"])
def test_analysis_layer_never_reaches_the_face(module):
    assert not closure(module) & FACE, f"{module} imports {sorted(closure(module) & FACE)}"


def test_figures_and_runs_do_not_import_analysis():
    assert "studykit.analysis" not in closure("studykit.figures")
    assert "studykit.analysis" not in closure("studykit.runs")
    assert "studykit.figures" not in closure("studykit.runs")
    assert not {"studykit.analysis", "studykit.figures"} & closure("studykit.verdicts")
