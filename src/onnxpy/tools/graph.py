"""Graph facts every tool needs: topological order, node labels, producers and consumers.

Nodes without a name get ``OpType_index`` (their position in the file), the label all tools
print, so that ``compare``, ``run --check-nan`` and ``view`` name the same node the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import onnx

from onnxpy.model.graph_names import node_reads, stable_topological_order

__all__ = ["GraphIndex", "node_label", "named_copy", "chunks"]


def node_label(node: onnx.NodeProto, index: int) -> str:
    """The node's name, or ``OpType_index`` when it has none."""
    return node.name or f"{node.op_type}_{index}"


def named_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` itself when every node has a unique name, else a copy whose nodes carry their
    labels (the profiler names events by node name: unnamed nodes would be indistinguishable)."""
    names = [n.name for n in model.graph.node]
    if all(names) and len(set(names)) == len(names):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    seen: set[str] = set()
    for i, node in enumerate(copy.graph.node):
        label = node_label(node, i)
        if label in seen:
            label = f"{label}_{i}"
        node.name = label
        seen.add(label)
    return copy


@dataclass
class GraphIndex:
    """The main graph of a model in topological order, with who makes and who reads each value.

    ``order`` lists node indexes (into ``graph.node``) so that every node comes after the
    producers of its inputs; ties keep the file's order.
    """

    graph: onnx.GraphProto
    order: list[int] = field(default_factory=list)
    producer: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    initializers: set[str] = field(default_factory=set)
    graph_inputs: list[str] = field(default_factory=list)
    graph_outputs: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, model: onnx.ModelProto | onnx.GraphProto) -> GraphIndex:
        graph = model.graph if isinstance(model, onnx.ModelProto) else model
        idx = cls(graph)
        idx.initializers = {t.name for t in graph.initializer}
        idx.graph_inputs = [v.name for v in graph.input if v.name not in idx.initializers]
        idx.graph_outputs = [v.name for v in graph.output]
        for i, node in enumerate(graph.node):
            for name in node.output:
                if name:
                    idx.producer[name] = i
        for i, node in enumerate(graph.node):
            for name in node_reads(node):
                idx.consumers[name].append(i)
        idx.order = idx._topological()
        return idx

    def _topological(self) -> list[int]:
        order = stable_topological_order(self.graph)
        if order is None:  # a cycle: file order, the checker says why
            return list(range(len(self.graph.node)))
        return order

    def label(self, index: int) -> str:
        return node_label(self.graph.node[index], index)

    def node_values(self) -> list[tuple[int, list[str]]]:
        """(node index, its non-empty output names) in topological order."""
        return [(i, [o for o in self.graph.node[i].output if o]) for i in self.order]


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """``items`` in consecutive slices of at most ``size``."""
    size = max(1, int(size))
    for start in range(0, len(items), size):
        yield items[start : start + size]
