"""Graph checks on a flow's nodes: which are reachable, which loops never wait for the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def reachable(edges: Mapping[str, Sequence[str]], start: str) -> set[str]:
    """Node ids reachable from ``start`` (edges to unknown ids are ignored)."""
    seen = {start} if start in edges else set()
    todo = list(seen)
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt in edges and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def busy_loops(edges: Mapping[str, Sequence[str]], waits: set[str]) -> list[list[str]]:
    """Cycles made only of nodes that take no caller input, one per strongly connected group.

    Such a loop would spin without the caller ever pressing a key; each result lists the
    node ids of one group in a stable order, starting from the smallest id.
    """
    busy = {n: [t for t in ts if t in edges and t not in waits]
            for n, ts in edges.items() if n not in waits}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(busy):
        if root in index:
            continue
        # Iterative Tarjan: (node, next edge position) frames avoid deep recursion.
        work = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pos = work[-1]
            succ = busy[node]
            if pos < len(succ):
                work[-1] = (node, pos + 1)
                nxt = succ[pos]
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    group.append(m)
                    if m == node:
                        break
                if len(group) > 1 or node in busy[node]:
                    out.append(sorted(group))
    return sorted(out)
