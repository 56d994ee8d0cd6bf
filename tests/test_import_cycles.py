"""No import cycles in the installed packages.

The graph is grimp's (the one import-linter checks its contracts on): every ``import`` of a
module counts, at module level, inside a function or under ``TYPE_CHECKING``, because each
one ties the two modules together for a reader and for a refactoring alike. A cycle is a
strongly connected set of modules; the test names each one with a path through it and the
line of every import on that path.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Set
from pathlib import Path

import grimp
import pytest

PACKAGES = ("edgecount", "gateway", "drivers", "models", "simulators", "reconciler")


def strongly_connected(graph: Mapping[str, Set[str]]) -> list[list[str]]:
    """The sets of two or more modules that import each other, directly or through others.

    Tarjan's algorithm, iterative (the graph is a few hundred modules deep at most, but the
    recursion limit is not this test's business). Each set is sorted; the sets are sorted.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            if targets:
                target = targets.pop()
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, sorted(graph.get(target, ()))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def cycle_through(graph: Mapping[str, Set[str]], component: list[str]) -> list[str]:
    """A shortest import path from the component's first module back to itself."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target not in members:
                    continue
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")


def describe(graph: grimp.ImportGraph, path: list[str]) -> str:
    """``a -> b (a:12) -> a (b:30)``: each step with where the import is written."""
    steps = [path[0]]
    for importer, imported in itertools.pairwise(path):
        details = graph.get_import_details(importer=importer, imported=imported)
        lines = ",".join(str(detail["line_number"]) for detail in details)
        steps.append(f"{imported} ({importer}:{lines})")
    return " -> ".join(steps)


def test_the_installed_packages_have_no_import_cycle() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    cycles = [
        describe(graph, cycle_through(edges, component)) + f"  [all of: {', '.join(component)}]"
        for component in strongly_connected(edges)
    ]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_finder_names_each_cycle_and_only_cycles() -> None:
    graph = {
        "a": {"b"},
        "b": {"c", "d"},
        "c": {"a"},  # a -> b -> c -> a
        "d": {"e"},
        "e": {"d"},  # d <-> e, reached from the first cycle
        "f": {"a"},  # imports into a cycle, is not in one
        "g": set(),
    }
    assert strongly_connected(graph) == [["a", "b", "c"], ["d", "e"]]
    assert cycle_through(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert cycle_through(graph, ["d", "e"]) == ["d", "e", "d"]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_and_under_type_checking_are_in_the_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the cycle test relies on: grimp keeps both kinds of import.
    package = tmp_path / "cyclepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def late() -> None:\n    from cyclepkg import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclepkg import a\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclepkg", cache_dir=None)
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    assert strongly_connected(edges) == [["cyclepkg.a", "cyclepkg.b"]]
    assert describe(graph, ["cyclepkg.a", "cyclepkg.b", "cyclepkg.a"]) == (
        "cyclepkg.a -> cyclepkg.b (cyclepkg.a:2) -> cyclepkg.a (cyclepkg.b:3)"
    )
