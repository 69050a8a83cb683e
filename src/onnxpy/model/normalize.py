"""Fixable forms of a model, put right at load instead of refused.

A model can break a rule of the IR in a way that changes nothing about what it computes. The
IR asks for a main graph's nodes in topological order, but ``onnxruntime.transformers.float16``
writes files whose nodes are not, and onnxruntime runs them: here the nodes are reordered (a
stable sort, so an already ordered graph is left exactly as it was). Subgraphs are ordered the
same way. A real cycle is left alone; the checker and the planner refuse it by name.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from onnx import AttributeProto, GraphProto, ModelProto, NodeProto

__all__ = ["normalize_model", "topological_order"]


def _subgraphs(node: NodeProto) -> Iterable[GraphProto]:
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.g
        elif a.type == AttributeProto.GRAPHS:
            yield from a.graphs


def _reads(node: NodeProto) -> set[str]:
    """Names a node reads, including what its subgraphs read from the enclosing scope."""
    names = {i for i in node.input if i}
    for g in _subgraphs(node):
        names |= _outer_reads(g)
    return names


def _outer_reads(graph: GraphProto) -> set[str]:
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for n in graph.node:
        used |= {x for x in _reads(n) if x not in defined}
        defined.update(o for o in n.output if o)
    used |= {o.name for o in graph.output if o.name not in defined}
    return used


def topological_order(graph: GraphProto) -> list[int] | None:
    """Node indices in a topological order, keeping the file's order wherever it is valid.

    None when the graph is already ordered or holds a cycle (nothing to fix here).
    """
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            if o:
                producer.setdefault(o, i)
    deps = [{producer[x] for x in _reads(n) if x in producer} - {i} for i, n in enumerate(nodes)]
    if all(all(d < i for d in ds) for i, ds in enumerate(deps)):
        return None
    users: list[list[int]] = [[] for _ in nodes]
    waiting = [len(ds) for ds in deps]
    for i, ds in enumerate(deps):
        for d in ds:
            users[d].append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    return order if len(order) == len(nodes) else None


def _order_graph(graph: GraphProto) -> bool:
    changed = False
    for n in graph.node:
        for g in _subgraphs(n):
            changed |= _order_graph(g)
    order = topological_order(graph)
    if order is None:
        return changed
    reordered = [graph.node[i] for i in order]
    copies = []
    for n in reordered:
        c = NodeProto()
        c.CopyFrom(n)
        copies.append(c)
    del graph.node[:]
    graph.node.extend(copies)
    return True


def normalize_model(model: ModelProto) -> bool:
    """Put fixable forms right in place; returns whether anything changed."""
    return _order_graph(model.graph)
