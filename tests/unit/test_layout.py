"""The package's import graph has no cycles: a module's imports (at load time or inside its
functions; not those under TYPE_CHECKING, which are annotations) never lead back to it.
Before: `cli` <-> `demo` did (each imported the other inside a function), and `result`
named `apply`'s types while `apply` imported `result`'s reader (now `runfiles`')."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, known: set[str]) -> set[str]:
    """tuner modules this module imports anywhere, except under `if TYPE_CHECKING:`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    paths = sorted([*(ROOT / "tuner").rglob("*.py"), *(ROOT / "flows").glob("*.py")])
    known = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(ast.parse(p.read_text()), known) - {_module_name(p)}
            for p in paths}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := walk(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert {"tuner.demo.run", "tuner.report.runfiles", "flows.tasks"} <= set(graph)
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _external_imports(tree: ast.Module) -> set[str]:
    """Top-level package names a module imports anywhere (TYPE_CHECKING included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


def test_prefect_is_imported_only_in_flows():
    """The library, its CLI, the Locust glue and the benchmarks hold no Prefect code:
    flows, tasks, schedules and the Prefect process around a run (`flows/runtime.py`)
    live in flows/."""
    outside = [p for folder in ("tuner", "loadtests", "benchmarks")
               for p in (ROOT / folder).rglob("*.py")]
    offenders = sorted(str(p.relative_to(ROOT)) for p in outside
                       if "prefect" in _external_imports(ast.parse(p.read_text())))
    assert offenders == []
    assert "prefect" in _external_imports(ast.parse((ROOT / "flows" / "runtime.py").read_text()))


# Which capability packages each may import (besides the top-level modules: config, errors,
# inputs, status, interrupts): measuring knows nothing of AWS scaling or reports; scaling
# uses the measurement's types; a report shows both; the simulator reads a report.
ALLOWED_PACKAGES = {
    "measure": set(),
    "scaling": {"measure"},
    "report": {"measure", "scaling"},
    "simulate": {"measure", "scaling", "report"},
    "demo": {"measure", "report"},
}


def test_capability_packages_depend_one_way():
    wrong = []
    for module, imports in import_graph().items():
        parts = module.split(".")
        if parts[0] != "tuner" or len(parts) < 3 or parts[1] not in ALLOWED_PACKAGES:
            continue
        for target in imports:
            other = target.split(".")
            if (len(other) >= 3 and other[0] == "tuner" and other[1] != parts[1]
                    and other[1] in ALLOWED_PACKAGES
                    and other[1] not in ALLOWED_PACKAGES[parts[1]]):
                wrong.append(f"{module} -> {target}")
    assert wrong == []
