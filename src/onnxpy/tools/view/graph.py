"""What the page shows about a model: boxes, edges with shapes, details per node, timings and
diff marks, ready for :mod:`layout` and the renderers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from onnxpy.tools.graph import node_label
from onnxpy.tools.view.layout import Edge, Vertex

__all__ = ["PageGraph", "build_page_graph", "diff_nodes"]


@dataclass
class PageGraph:
    vertices: list[Vertex]
    edges: list[Edge]
    details: list[dict]  # per vertex: name, op, attributes, inputs, outputs, time, status
    title: str = ""
    removed: int = 0
    stats: dict = field(default_factory=dict)


def _type_text(tp: onnx.TypeProto | None) -> str:
    from onnxpy.types import shape_of, type_string

    if tp is None or not tp.WhichOneof("value"):
        return ""
    t = type_string(tp).replace("tensor(", "").rstrip(")")
    dims = shape_of(tp)
    if tp.WhichOneof("value") == "tensor_type" and tp.tensor_type.HasField("shape"):
        return f"{t}[{','.join('?' if d is None else str(d) for d in dims)}]"
    return t


def _attr_text(attr: onnx.AttributeProto) -> str:
    A = onnx.AttributeProto
    if attr.type == A.TENSOR:
        t = attr.t
        arr = onnx.numpy_helper.to_array(t) if math.prod(t.dims) <= 16 else None
        if arr is not None:
            return f"tensor {arr.dtype}{list(arr.shape)} = {np.array2string(arr, threshold=16)}"
        return f"tensor {onnx.helper.tensor_dtype_to_np_dtype(t.data_type)}{list(t.dims)}"
    if attr.type == A.GRAPH:
        return f"graph '{attr.g.name}' ({len(attr.g.node)} nodes)"
    if attr.type == A.GRAPHS:
        return f"{len(attr.graphs)} graphs"
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, list):
        if value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        if len(value) > 16:
            return f"[{', '.join(map(str, value[:16]))}, ... {len(value)} values]"
    return str(value)


def _node_key(node: onnx.NodeProto, index: int, unique_names: bool) -> str:
    return node.name if unique_names and node.name else f"{node.op_type}|{'|'.join(node.output)}"


def _unique_names(graph: onnx.GraphProto) -> bool:
    names = [n.name for n in graph.node]
    return all(names) and len(set(names)) == len(names)


def _signature(node: onnx.NodeProto) -> tuple:
    attrs = tuple(sorted((a.name, a.SerializeToString()) for a in node.attribute))
    return (node.op_type, node.domain, tuple(node.input), tuple(node.output), attrs)


def diff_nodes(
    new: onnx.ModelProto, old: onnx.ModelProto
) -> tuple[dict[int, str], list[onnx.NodeProto]]:
    """({index in new: 'added' | 'changed' | 'same'}, nodes of old that new lacks).

    Nodes match by name when both models name every node uniquely, else by op type and
    output names; a matched node is 'changed' when its op, inputs or attributes differ.
    """
    by_name = _unique_names(new.graph) and _unique_names(old.graph)
    olds = {_node_key(n, i, by_name): n for i, n in enumerate(old.graph.node)}
    status: dict[int, str] = {}
    matched: set[str] = set()
    for i, node in enumerate(new.graph.node):
        key = _node_key(node, i, by_name)
        other = olds.get(key)
        if other is None:
            status[i] = "added"
        else:
            matched.add(key)
            status[i] = "same" if _signature(other) == _signature(node) else "changed"
    removed = [n for k, n in olds.items() if k not in matched]
    return status, removed


def _io_detail(name: str, kind: str, inputs=(), outputs=()) -> dict:
    return {"name": name, "op": f"graph {kind}", "kind": kind, "attributes": {},
            "inputs": list(inputs), "outputs": list(outputs)}  # fmt: skip


def build_page_graph(
    model: onnx.ModelProto,
    *,
    times: Mapping[str, float] | None = None,
    diff: onnx.ModelProto | None = None,
    title: str = "",
) -> PageGraph:
    """Vertices (graph inputs, nodes, graph outputs, removed nodes under ``diff``), edges
    labelled with the value's dtype and shape, and each vertex's details."""
    from onnxpy.model.skeleton import infer_types
    from onnxpy.model.tensors import tensor_nbytes

    graph = model.graph
    try:
        inferred = infer_types(model).graph
        types = {v.name: v.type for v in list(inferred.value_info) + list(inferred.input)}
        types.update({v.name: v.type for v in inferred.output})
    except Exception:  # noqa: BLE001 - the picture works without shapes
        types = {}
    for v in list(graph.input) + list(graph.output) + list(graph.value_info):
        types.setdefault(v.name, v.type)
    inits = {t.name: t for t in graph.initializer}
    for t in graph.initializer:
        types.setdefault(t.name, onnx.helper.make_tensor_type_proto(t.data_type, list(t.dims)))
    status, removed = diff_nodes(model, diff) if diff is not None else ({}, [])
    vertices: list[Vertex] = []
    details: list[dict] = []
    producer: dict[str, int] = {}

    def value_info(name: str) -> dict:
        d = {"name": name, "type": _type_text(types.get(name))}
        t = inits.get(name)
        if t is not None:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type) if t.data_type else "?"
            d["initializer"] = f"{dtype}{list(t.dims)}, {tensor_nbytes(t):,} bytes"
        return d

    for vi in graph.input:
        if vi.name in inits:
            continue
        producer[vi.name] = len(vertices)
        vertices.append(Vertex(len(vertices), vi.name, "input"))
        details.append(_io_detail(vi.name, "input", outputs=[value_info(vi.name)]))
    nodes = [(node, i, status.get(i, "")) for i, node in enumerate(graph.node)]
    nodes += [(node, -1, "removed") for node in removed]
    for node, i, st in nodes:
        name = node_label(node, i) if i >= 0 else node.name or f"{node.op_type} (removed)"
        vid = len(vertices)
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        vertices.append(Vertex(vid, node.op_type, "op"))
        for o in node.output:
            if o and (i >= 0 or o not in producer):
                producer[o] = vid
        detail = {
            "name": name, "op": op, "kind": "op", "status": st,
            "attributes": {a.name: _attr_text(a) for a in node.attribute},
            "inputs": [value_info(n) for n in node.input if n],
            "outputs": [value_info(n) for n in node.output if n],
        }  # fmt: skip
        if times is not None and name in times:
            detail["time_ms"] = times[name]
        details.append(detail)
    for vi in graph.output:
        vid = len(vertices)
        vertices.append(Vertex(vid, vi.name, "output"))
        details.append(_io_detail(vi.name, "output", inputs=[value_info(vi.name)]))
    edges: list[Edge] = []
    seen: set[tuple[int, int, str]] = set()
    for vid, d in enumerate(details):
        for inp in d["inputs"]:
            src = producer.get(inp["name"])
            if src is None or (src, vid, inp["name"]) in seen or src == vid:
                continue
            seen.add((src, vid, inp["name"]))
            edges.append(Edge(src, vid, inp["type"]))
    total = sum(d.get("time_ms", 0.0) for d in details)
    stats = {"nodes": len(graph.node), "edges": len(edges), "total_ms": total}
    if diff is not None:
        counts = {k: sum(1 for s in status.values() if s == k) for k in ("added", "changed")}
        stats.update(counts, removed=len(removed))
    return PageGraph(vertices, edges, details, title, len(removed), stats)
