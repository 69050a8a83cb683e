"""Fixable forms of a model, put right at load instead of refused.

A model can break a rule of the IR in a way that changes nothing about what it computes. The
IR asks for a main graph's nodes in topological order, but ``onnxruntime.transformers.float16``
writes files whose nodes are not, and onnxruntime runs them: here the nodes are reordered (a
stable sort, so an already ordered graph is left exactly as it was). Subgraphs are ordered the
same way. A real cycle is left alone; the checker and the planner refuse it by name.
"""

from __future__ import annotations

from onnx import GraphProto, ModelProto, NodeProto

from onnxpy.model.graph_names import stable_topological_order, subgraphs

__all__ = ["normalize_model"]


def _order_graph(graph: GraphProto) -> bool:
    changed = False
    for n in graph.node:
        for g in subgraphs(n):
            changed |= _order_graph(g)
    order = stable_topological_order(graph)
    if order is None or order == list(range(len(graph.node))):
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
