"""The layers of docs/ARCHITECTURE.md (`studykit.LAYERS`), checked on the source: parse each module's imports with
`ast` (including the ones inside functions) and follow them through the package, so a lazy import cannot hide a cycle
or an upward reach."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "studykit"


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
    assert "studykit.study.spec" in direct_imports("studykit.study.runner")  # `from .study import ...` at top level
    assert "studykit.tracking.experiment" in direct_imports("studykit.study.runner")  # `from .tracking import ...` in a function
    assert "studykit.scoring.rewards" in direct_imports("studykit.engine.evaluation")  # `from . import metrics, rewards`


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
    for loop in ("studykit.engine.rollout", "studykit.engine.trainer", "studykit.engine.evaluation"):
        assert "studykit.tasks.toy" not in edges[loop], f"{loop} must reach toy diagnostics through the task hook"


def test_stored_policy_metadata_name_agrees():
    from studykit.policy import models, store as policy_store

    assert models.POLICY_METADATA == policy_store.POLICY_METADATA


# ---- the house in layers: one folder per layer, imports only go down


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_folder_of_the_package_is_a_declared_layer():
    from studykit import LAYERS

    folders = {p.parent.name for p in PKG.glob("*/__init__.py")}
    declared = [f for layer in LAYERS for f in layer]
    assert len(declared) == len(set(declared)), "a folder is declared twice"
    assert folders == set(declared), f"undeclared: {sorted(folders - set(declared))}, missing: {sorted(set(declared) - folders)}"
    assert not [p.name for p in PKG.glob("*.py") if p.name != "__init__.py"], "modules belong in a layer folder"


def test_a_layer_imports_only_from_its_own_layer_and_the_ones_below():
    from studykit import LAYERS

    rank = {folder: i for i, layer in enumerate(LAYERS) for folder in layer}
    upward = sorted(
        f"{module} -> {dep}"
        for module, deps in module_graph().items()
        for dep in deps
        if _layer_of(module) and _layer_of(dep) and rank[_layer_of(dep)] > rank[_layer_of(module)]
    )
    assert not upward, "imports that reach up a layer:\n" + "\n".join(upward)


def test_the_layer_check_sees_an_upward_reach(tmp_path, monkeypatch):
    """The check above can fail: a lazy import of the study layer inside the engine is reported."""
    from studykit import LAYERS

    rank = {folder: i for i, layer in enumerate(LAYERS) for folder in layer}
    bad = tmp_path / "studykit" / "engine" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from studykit.study.spec import expand\n")
    modules = {"studykit.engine.bad", "studykit.study.spec"}
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path / "studykit")
    deps = _imports(bad, modules)
    assert deps == {"studykit.study.spec"}
    assert rank[_layer_of("studykit.study.spec")] > rank[_layer_of("studykit.engine.bad")]


def test_the_engine_never_imports_a_task_s_own_code():
    allowed = {"studykit.tasks", "studykit.tasks.base", "studykit.tasks.templates"}
    reach = {m: {d for d in deps if d.startswith("studykit.tasks") and d not in allowed}
             for m, deps in module_graph().items() if _layer_of(m) == "engine"}
    assert not {m: d for m, d in reach.items() if d}, reach


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in PKG.glob("*/__init__.py")))
def test_each_layer_says_what_it_may_import_and_its_exports_resolve(folder):
    import importlib

    package = importlib.import_module(f"studykit.{folder}")
    assert package.__doc__ and len(package.__doc__) > 80, f"studykit.{folder} needs a docstring"
    assert "May import" in package.__doc__
    for name in getattr(package, "__all__", []):
        assert getattr(package, name) is not None, f"studykit.{folder}.{name}"
