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


# ---- no import cycles anywhere in the package; the loop never names a task


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.level and node.module else (base if node.level else node.module)
            names = [f"{target}.{a.name}" for a in node.names]
            out |= {n for n in names if n in modules} or ({target} if target in modules else set())
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
    out.discard(me)
    return out


def module_graph() -> dict[str, set[str]]:
    files = sorted(PKG.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    # unlike direct_imports above, a submodule does not depend on its parent package's other submodules
    return {_module_name(p): _imports(p, modules) for p in files}


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    cycle = _cycle(module_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_loop_does_not_import_the_toy_task():
    edges = module_graph()
    for loop in ("studykit.rollout", "studykit.trainer", "studykit.evaluation"):
        assert "studykit.tasks.toy" not in edges[loop], f"{loop} must reach toy diagnostics through the task hook"


def test_stored_policy_metadata_name_agrees():
    from studykit import models, policy_store

    assert models.POLICY_METADATA == policy_store.POLICY_METADATA
