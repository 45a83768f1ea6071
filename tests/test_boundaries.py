"""Import boundaries of the layout (docs/ARCHITECTURE.md), read from the source with an AST walk: results
and viz import neither torch nor ray, only sweep imports ray, and grokscan's modules import each other
without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "grokscan"
TORCH_FREE = ("grokscan.results", "grokscan.viz", "grokscan.sweep", "grokscan.config", "grokscan.registry")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (lazy imports in functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return names


def _internal(path: Path) -> set[str]:
    return {n for n in _imports(path) if n in MODULES and n != _module(path)}


def _importers_of(library: str) -> set[str]:
    return {
        m for m, p in MODULES.items() if any(n == library or n.startswith(f"{library}.") for n in _imports(p))
    }


def test_the_walk_sees_the_package():
    assert {"grokscan.config", "grokscan.engine.loop", "grokscan.results.store", "grokscan.cli"} <= set(
        MODULES
    )
    assert "torch" in _imports(MODULES["grokscan.engine.loop"])


def test_only_sweep_imports_ray():
    assert _importers_of("ray")  # the walk finds the Ray layer
    assert {m for m in _importers_of("ray") if not m.startswith("grokscan.sweep")} == set()


def test_results_viz_sweep_and_config_import_no_torch():
    assert {m for m in _importers_of("torch") if m.startswith(TORCH_FREE)} == set()


def test_results_and_viz_import_no_engine_tasks_or_sweep():
    for name, path in MODULES.items():
        if name.startswith(("grokscan.results", "grokscan.viz")):
            lower = {
                n
                for n in _internal(path)
                if n.startswith(("grokscan.engine", "grokscan.tasks", "grokscan.sweep"))
            }
            assert lower == set(), name


def test_engine_and_tasks_import_no_sweep_results_or_viz():
    for name, path in MODULES.items():
        if name.startswith(("grokscan.engine", "grokscan.tasks")):
            upper = {
                n
                for n in _internal(path)
                if n.startswith(("grokscan.sweep", "grokscan.results", "grokscan.viz", "grokscan.cli"))
            }
            assert upper == set(), name


def test_no_import_cycles():
    # The package facade imports lazily from every layer by design; it is no layer itself.
    graph = {m: _internal(p) - {"grokscan"} for m, p in MODULES.items() if m != "grokscan"}
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*stack, node, nxt])
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
