"""The package's imports run one way: no module imports, directly or through others, a module
that imports it back (late imports inside functions included), and the leaf modules import
nothing from the package at all."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.procs import REPO

PACKAGE = REPO / "exporter"
LEAVES = ("exporter.validation", "exporter.thresholds", "exporter.throttle")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The package modules `name` imports anywhere in its body."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import x`: x may be a submodule
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports(name) for name in MODULES}


def test_the_graph_was_read():
    assert "exporter.config" in GRAPH["exporter.app"]
    assert "exporter.validation" in GRAPH["exporter.config"]
    assert "exporter.collectors.registry" in GRAPH["exporter.collectors.host"]


def test_no_import_cycle():
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name):] + [name]
            pytest.fail("import cycle: " + " → ".join(cycle))
        if name in done:
            return
        for child in sorted(GRAPH[name]):
            visit(child, path + [name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_modules_import_nothing_from_the_package(leaf):
    assert GRAPH[leaf] == set()


def test_components_are_handed_their_settings_not_the_config():
    users = sorted(name for name, deps in GRAPH.items() if "exporter.config" in deps)
    assert users == ["exporter.app", "exporter.cli"]
