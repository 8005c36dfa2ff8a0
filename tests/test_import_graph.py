"""No import circles, and no package imports a package above it (docs/architecture.md).

The graph is read from the source with :mod:`ast`, so every import counts: those at the top,
those under ``if TYPE_CHECKING:`` (a type is a dependency too: the two modules cannot be read or
changed apart) and those inside functions (a late import only hides a circle from Python).
``from a import b`` is an edge to the module ``a.b`` when there is one, else to ``a``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src"

LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(layer.split()) for layer in (
    "meshcrew errors reasons files",
    "records crypto identity home collector",
    "spaces sync store backup",
    "service net sim",
    "node",
    "tui netlab",
    "demo",
    "cli",
    "__main__",
))
"""meshcrew's packages (and top-level modules) from the bottom up: each imports only from the
layers below its own, never from its own layer or above. docs/architecture.md draws it."""

Graph = Mapping[str, Set[str]]


def module_files(source: Path = SOURCE) -> dict[str, Path]:
    """Each module of ``meshcrew`` by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted((source / "meshcrew").rglob("*.py")):
        parts = path.relative_to(source).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, modules: Set[str]) -> set[str]:
    """The ``meshcrew`` modules that module ``name`` (at ``path``) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    found.add(f"{target}.{alias.name}")
                elif target in modules:
                    found.add(target)
    found.discard(name)
    return found


def import_graph(source: Path = SOURCE) -> dict[str, set[str]]:
    """Each ``meshcrew`` module and the ``meshcrew`` modules it imports."""
    files = module_files(source)
    return {name: imports_of(name, path, files.keys()) for name, path in files.items()}


def knots(graph: Graph) -> list[list[str]]:
    """Each set of two or more modules of ``graph`` that all import each other round a circle,
    sorted (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:  # recursion depth is bounded by the module count
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            knot = [stack.pop()]
            while knot[-1] != module:
                knot.append(stack.pop())
            if len(knot) > 1:
                found.append(sorted(knot))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def shortest_circle(graph: Graph, module: str) -> list[str]:
    """The fewest imports that lead from ``module`` back to it, as the modules passed."""
    came_from: dict[str, str] = {}
    frontier = [module]
    while frontier:
        following = []
        for at in frontier:
            for imported in sorted(graph[at]):
                if imported == module:
                    path = [at]
                    while path[-1] != module:
                        path.append(came_from[path[-1]])
                    return [module, *reversed(path[:-1]), module]
                if imported not in came_from:
                    came_from[imported] = at
                    following.append(imported)
        frontier = following
    return []


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the package (or top-level module) ``module`` is in."""
    top = module.split(".")[1] if "." in module else module
    for number, layer in enumerate(LAYERS):
        if top in layer:
            return number
    raise LookupError(f"{module}: add its package to LAYERS (and docs/architecture.md)")


def upward_imports(graph: Graph) -> Iterator[str]:
    """Each import of a module from its own layer's other packages or a layer above."""
    for module, imported in sorted(graph.items()):
        for other in sorted(imported):
            mine, theirs = layer_of(module), layer_of(other)
            same_package = module.split(".")[:2] == other.split(".")[:2]
            if theirs > mine or (theirs == mine and not same_package):
                yield f"{module} imports {other}"


def test_no_module_is_part_of_an_import_circle() -> None:
    graph = import_graph()
    found = knots(graph)
    assert not found, "\n".join(
        f"{len(knot)} modules in a circle ({', '.join(knot)}), for one: "
        + " -> ".join(shortest_circle(graph, knot[0])) for knot in found)


def test_no_package_imports_its_own_layer_or_above() -> None:
    assert list(upward_imports(import_graph())) == []


def test_every_package_has_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


@pytest.mark.parametrize("edges", [
    {"a": {"b"}, "b": {"a"}},
    {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()},
    {"a": {"b", "c"}, "b": {"a"}, "c": {"a"}},
])
def test_a_circle_is_found(edges: dict[str, set[str]]) -> None:
    (knot,) = knots(edges)
    assert knot == sorted(set(edges) - {"d"})
    circle = shortest_circle(edges, "a")
    assert circle[0] == circle[-1] == "a"
    assert all(b in edges[a] for a, b in itertools.pairwise(circle))


def test_no_circle_in_a_tree() -> None:
    edges = {"a": {"b", "c"}, "b": {"c"}, "c": set()}
    assert knots(edges) == []
    assert shortest_circle(edges, "a") == []


def test_every_kind_of_import_is_an_edge(tmp_path: Path) -> None:
    package = tmp_path / "meshcrew"
    (package / "p").mkdir(parents=True)
    for name in ("__init__.py", "p/__init__.py", "p/b.py", "p/c.py", "d.py", "e.py"):
        (package / name).write_text("")
    (package / "p" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "from .c import thing\n"
        "if TYPE_CHECKING:\n    from meshcrew.d import D\n"
        "def later():\n    import meshcrew.e\n")
    assert import_graph(tmp_path)["meshcrew.p.a"] == {"meshcrew.p.b", "meshcrew.p.c",
                                                      "meshcrew.d", "meshcrew.e"}
