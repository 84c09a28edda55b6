#!/usr/bin/env python3
"""No import cycles between the appliance's modules (``make lint``).

The import graph comes from grimp (the one import-linter reads) with the imports under
``if TYPE_CHECKING:`` counted: the layer contract exempts them, but a cycle through one
still ties the modules together. Every group of modules that import each other, directly
or round a loop, is printed with one loop through it; the exit status is 1 if any.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp

PACKAGES = ("device", "drivers", "services")
#: The packages are read from this checkout, not from wherever they are installed.
ROOT = Path(__file__).resolve().parent.parent


def import_graph(packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """module -> the modules of ``packages`` it imports (TYPE_CHECKING imports too)."""
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=False)
    return {m: set(graph.find_modules_directly_imported_by(m)) - {m}
            for m in sorted(graph.modules)}


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def loop_through(group: list[str], edges: Mapping[str, set[str]]) -> list[str]:
    """One import loop from the group's first module back to it (breadth first)."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(edges.get(node, ()) & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return group


def main() -> int:
    sys.path.insert(0, str(ROOT))
    edges = import_graph()
    found = cycles(edges)
    for group in found:
        print(f"import cycle among {len(group)} modules: {', '.join(group)}")
        print("  e.g. " + " -> ".join(loop_through(group, edges)))
    if found:
        print(f"{len(found)} import cycle(s); TYPE_CHECKING imports count here",
              file=sys.stderr)
        return 1
    print(f"no import cycles among {len(edges)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
