"""DeepRC's own import graph: no cycle between its modules (module-level imports), and no `except
ImportError` around DeepRC's own subpackages (it would hide the dependency graph)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "deeprc"


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        name = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> DeepRC modules it imports at module level (`from pkg import sub` counts as pkg.sub)."""
    out: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                           for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a submodule needs its package: no cycle
                    out[name].add(t)
    return out


def test_no_import_cycle_inside_deeprc() -> None:
    graph = edges(modules())
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycles.append(trail[trail.index(n):] + [n])
            return
        state[n] = 1
        for m in sorted(graph[n]):
            visit(m, trail + [n])
        state[n] = 2

    for n in sorted(graph):
        visit(n, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_own_subpackages_are_imported_without_guards() -> None:
    found = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Try) and any(getattr(h.type, "id", "") == "ImportError" for h in node.handlers):
                for stmt in node.body:
                    if isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith("deeprc"):
                        found.append(f"{path.relative_to(PKG.parent)}:{stmt.lineno}")
    assert not found, found
