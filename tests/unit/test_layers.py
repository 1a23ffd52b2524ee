"""The import arrows of ARCHITECTURE.md "The house": every ``import`` / ``from ... import`` in the
library trees, at module level and inside functions (found with ``ast``, so lazy imports count),
goes only to an allowed top-level package, and the package graph has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: package -> packages it may import (ARCHITECTURE.md; issue 14). ``pipelines`` may import all.
ALLOWED: dict[str, set[str]] = {
    "uniss": set(),
    "serving": {"uniss"},
    "training": {"uniss"},
    "infra": {"registry", "uniss"},
    "registry": {"serving", "uniss"},
    "evaluation": {"registry", "serving", "uniss"},
    "components": {"evaluation", "registry", "serving", "training", "uniss"},
}
PACKAGES = {*ALLOWED, "pipelines"}


def _imports(pkg: str) -> list[tuple[str, int, str]]:
    """(file, line, imported top-level package) for every import of another project package."""
    out = []
    for f in sorted((ROOT / pkg).rglob("*.py")):
        tree = ast.parse(f.read_text(), filename=str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                top = n.split(".")[0]
                if top in PACKAGES and top != pkg:
                    out.append((str(f.relative_to(ROOT)), node.lineno, top))
    return out


@pytest.mark.parametrize("pkg", sorted(ALLOWED))
def test_imports_follow_the_arrows(pkg):
    bad = [f"{f}:{line} imports {top}" for f, line, top in _imports(pkg) if top not in ALLOWED[pkg]]
    assert not bad, "\n".join(bad)


def test_package_graph_has_no_cycle():
    graph = {p: {top for _, _, top in _imports(p)} for p in PACKAGES}
    state: dict[str, int] = {}

    def visit(p: str, path: list[str]) -> None:
        state[p] = 1
        for q in sorted(graph[p]):
            assert state.get(q) != 1, "import cycle: " + " -> ".join([*path, p, q])
            if q not in state:
                visit(q, [*path, p])
        state[p] = 2

    for p in sorted(PACKAGES):
        if p not in state:
            visit(p, [])
