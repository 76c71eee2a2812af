"""The import rules of docs/architecture.md, held against the code: no cycles, no service
importing another service, and libs/common importing no service.

Imports are read with `ast` (nothing is imported), including those under `TYPE_CHECKING` and
inside functions: a cycle hidden from the interpreter is still a cycle for the reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "campus_common": ROOT / "libs" / "common" / "campus_common",
    "campus_cli": ROOT / "cli" / "campus_cli",
    **{p.name: p for p in sorted((ROOT / "services").glob("*/campus_*")) if p.is_dir()},
}
SERVICES = {name for name in PACKAGES if name not in ("campus_common", "campus_cli")}


def _module_name(package: str, path: Path) -> str:
    rel = path.relative_to(PACKAGES[package]).with_suffix("")
    parts = [package, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every first-party module `module` names in an import statement."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            # `from pkg import mod` imports a module when `mod` is one.
            yield from (f"{target}.{a.name}" for a in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module → the first-party modules it imports (only modules that exist)."""
    files = {
        _module_name(pkg, path): path
        for pkg, folder in PACKAGES.items()
        for path in folder.rglob("*.py")
    }
    return {
        module: {t for t in _imports(module, path) if t in files and t != module}
        for module, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def crossings(graph: dict[str, set[str]]) -> list[str]:
    """Imports that break the layering: a service into another, common or the CLI into one."""
    bad = []
    for module, targets in sorted(graph.items()):
        own = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != own and other in SERVICES:
                bad.append(f"{module} imports {target}")
    return bad


def test_the_graph_sees_every_package_and_their_imports() -> None:
    graph = import_graph()
    # A reader that found nothing would pass every rule: make sure it reads real edges.
    assert set(PACKAGES) >= {"campus_common", "campus_gateway", "campus_graph", "campus_cli"}
    assert "campus_common.consumer" in graph["campus_graph.projection"]
    assert "campus_gateway.profiles" in graph["campus_gateway.projection"]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_no_service_imports_another_and_common_imports_none() -> None:
    assert crossings(import_graph()) == []


def test_the_checks_can_say_no() -> None:
    graph = {
        "campus_a.x": {"campus_a.y"},
        "campus_a.y": {"campus_a.x"},
        "campus_a.z": set(),
    }
    assert cycles(graph) == [["campus_a.x", "campus_a.y"]]
    service = sorted(SERVICES)[0]
    leaky = {"campus_common.consumer": {f"{service}.config"}, f"{service}.config": set()}
    assert crossings(leaky) == [f"campus_common.consumer imports {service}.config"]


def test_no_two_test_modules_share_a_name() -> None:
    # The test folders have no __init__.py, so pytest imports each test file by its bare name:
    # a second file of the same name anywhere under tests/ stops the whole collection.
    seen: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert [paths for paths in seen.values() if len(paths) > 1] == []
