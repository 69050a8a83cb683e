"""Which names a node or a subgraph reads, and a stable topological order of nodes.

Shared by the loader (ordering nodes), the optimizer (keeping order after rewrites, liveness),
the planner (a subgraph's outer-scope values become inputs of its node) and the tools.
A subgraph reads from its enclosing scopes every name it uses but does not define itself
(inputs, initializers, sparse initializers, its nodes' outputs), nested subgraphs included.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from onnx import AttributeProto, GraphProto, NodeProto

__all__ = [
    "subgraphs",
    "node_reads",
    "outer_reads",
    "stable_topological_order",
    "unused_name",
]


def subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    """The graphs held by ``node``'s attributes (If branches, Loop and Scan bodies)."""
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.g
        elif a.type == AttributeProto.GRAPHS:
            yield from a.graphs


def node_reads(node: NodeProto) -> set[str]:
    """Names a node reads: its inputs and what its subgraphs read from the enclosing scope."""
    names = {i for i in node.input if i}
    for g in subgraphs(node):
        names |= outer_reads(g)
    return names


def outer_reads(graph: GraphProto) -> set[str]:
    """Names a (sub)graph reads from enclosing scopes, recursively."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {sp.values.name for sp in graph.sparse_initializer}
    used: set[str] = set()
    for n in graph.node:
        used |= {x for x in node_reads(n) if x not in defined}
        defined.update(o for o in n.output if o)
    used |= {o.name for o in graph.output if o.name not in defined}
    return used


def stable_topological_order(graph: GraphProto, kept: list[int] | None = None) -> list[int] | None:
    """Indexes of ``kept`` nodes (default: all) so that every node follows its producers,
    otherwise keeping the file's order as far as possible (a stable sort); None on a cycle.

    A node's producers include those of the outer values its subgraphs read.
    """
    nodes = graph.node
    kept = list(range(len(nodes))) if kept is None else kept
    producer = {o: i for i in kept for o in nodes[i].output if o}
    users: dict[int, list[int]] = {i: [] for i in kept}
    waiting: dict[int, int] = {}
    for i in kept:
        deps = {producer[x] for x in node_reads(nodes[i]) if x in producer} - {i}
        waiting[i] = len(deps)
        for d in deps:
            users[d].append(i)
    ready = [i for i in kept if waiting[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    return order if len(order) == len(kept) else None


def unused_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2``, ... : the first not in ``taken``, which it joins."""
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name
