"""What is in a model file: versions, inputs and outputs, operators, weights and their cost.

FLOPs are estimates from inferred shapes (a multiply-add counts as two; elementwise and
normalisation ops a few per element; data movement none), with symbolic dimensions set to 1
unless ``dims`` binds them, so they compare models and op types rather than predict time.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field

import onnx

from onnxpy.tools.io import load_model_proto
from onnxpy.tools.shapes import value_shapes

__all__ = ["ModelInfo", "inspect_model", "estimate_flops", "missing_ops"]


@dataclass
class OpCost:
    count: int = 0
    flops: int = 0
    weights: int = 0  # parameters (initializer elements) read by this op type
    weight_bytes: int = 0


@dataclass
class ModelInfo:
    path: str
    ir_version: int
    opsets: dict[str, int]
    producer: str
    model_version: int
    domain: str
    doc: str
    metadata: dict[str, str]
    inputs: list[dict]
    outputs: list[dict]
    nodes: int
    ops: dict[str, OpCost] = field(default_factory=dict)
    parameters: int = 0
    parameter_bytes: int = 0
    initializers: int = 0
    external_data: dict[str, int] = field(default_factory=dict)  # file -> bytes referenced
    flops: int = 0
    dims: dict[str, int] = field(default_factory=dict)
    missing_ops: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def format(self) -> str:
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(self.opsets.items()))
        lines = [
            f"model:      {self.path}",
            f"ir_version: {self.ir_version}    opsets: {opsets}",
            f"producer:   {self.producer or '-'}    model_version: {self.model_version}",
        ]
        if self.doc:
            lines.append(f"doc:        {self.doc.splitlines()[0][:100]}")
        for k, v in self.metadata.items():
            lines.append(f"metadata:   {k} = {v[:80]}")
        lines.append("inputs:")
        lines += [f"  {i['name']}: {i['type']} {i['shape']}" for i in self.inputs]
        lines.append("outputs:")
        lines += [f"  {o['name']}: {o['type']} {o['shape']}" for o in self.outputs]
        lines.append(
            f"parameters: {self.parameters:,} in {self.initializers} initializers "
            f"({_size(self.parameter_bytes)})"
        )
        for f, n in self.external_data.items():
            lines.append(f"external:   {f} ({_size(n)} referenced)")
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items()) or "none"
        lines.append(f"FLOPs:      {_count(self.flops)} (estimate; symbolic dims: {dims})")
        lines.append(f"nodes:      {self.nodes}")
        width = max([len(k) for k in self.ops] + [7])
        lines.append(
            f"  {'op type':<{width}} {'count':>6} {'FLOPs':>9} {'weights':>10} {'bytes':>9}"
        )
        for op, c in sorted(self.ops.items(), key=lambda kv: (-kv[1].count, kv[0])):
            lines.append(
                f"  {op:<{width}} {c.count:>6} {_count(c.flops):>9} {c.weights:>10,} "
                f"{_size(c.weight_bytes):>9}"
            )
        if self.functions:
            lines.append(f"functions:  {', '.join(self.functions)}")
        missing = ", ".join(self.missing_ops) if self.missing_ops else "none"
        lines.append(f"ops onnxpy lacks: {missing}")
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _count(n: int) -> str:
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            for g in attr.graphs:
                yield from _all_nodes(g)


def _op_key(node: onnx.NodeProto) -> str:
    return f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def missing_ops(model: onnx.ModelProto) -> list[str]:
    """Operators of ``model`` that onnxpy has no kernel, model function or spec body for."""
    from onnxpy.kernels.registry import lookup

    opsets = {("" if i.domain == "ai.onnx" else i.domain): i.version for i in model.opset_import}
    local = {(f.domain, f.name) for f in model.functions}
    missing = set()
    for node in _all_nodes(model.graph):
        domain = "" if node.domain == "ai.onnx" else node.domain
        if (node.domain, node.op_type) in local:
            continue
        if lookup(domain, node.op_type, opsets.get(domain, 1)) is not None:
            continue
        try:
            schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
            if schema.has_function or schema.has_context_dependent_function:
                continue
        except onnx.defs.SchemaError:
            pass
        missing.add(_op_key(node))
    return sorted(missing)


_MATH_PER_ELEMENT = {
    "Softmax": 5, "LogSoftmax": 5, "LayerNormalization": 8, "BatchNormalization": 2,
    "InstanceNormalization": 8, "GroupNormalization": 8, "Gelu": 8, "Erf": 4, "Tanh": 4,
    "Sigmoid": 4, "Exp": 2, "Log": 2, "Pow": 2, "Sqrt": 2, "Div": 1, "Mul": 1, "Add": 1,
    "Sub": 1, "Relu": 1, "LeakyRelu": 2, "Clip": 1, "Neg": 1, "Abs": 1, "Max": 1, "Min": 1,
    "ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1, "ReduceMin": 1, "Where": 1, "Cast": 0,
    "Equal": 1, "Less": 1, "Greater": 1, "Not": 1, "And": 1, "Or": 1, "HardSigmoid": 3,
    "Elu": 3, "Selu": 3, "Softplus": 3, "SkipLayerNormalization": 9, "BiasGelu": 9,
}  # fmt: skip


def estimate_flops(node: onnx.NodeProto, shapes: Mapping[str, list[int | None]]) -> int:
    """Floating-point operations of one node from its inputs' and outputs' shapes (0 unknown)."""

    def shape(name: str) -> list[int] | None:
        s = shapes.get(name)
        return None if s is None or any(d is None for d in s) else s  # type: ignore[return-value]

    out = shape(node.output[0]) if node.output and node.output[0] else None
    n_out = math.prod(out) if out is not None else None
    op = node.op_type
    if op in ("MatMul", "MatMulInteger", "FusedMatMul") and len(node.input) >= 2:
        a = shape(node.input[0])
        if a and n_out is not None:
            return 2 * n_out * a[-1]
    elif op in ("Gemm", "FusedGemm"):
        a = shape(node.input[0])
        if a and n_out is not None:
            trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
            k = a[0] if trans_a else a[-1]
            return 2 * n_out * k + (n_out if len(node.input) > 2 else 0)
    elif op in ("Conv", "FusedConv", "ConvInteger", "QLinearConv"):
        w = shape(node.input[3 if op == "QLinearConv" else 1])
        if w and n_out is not None:
            bias = n_out if len(node.input) > 2 and op != "QLinearConv" else 0
            return 2 * n_out * math.prod(w[1:]) + bias
    elif op == "ConvTranspose":
        x, w = shape(node.input[0]), shape(node.input[1])
        if x and w:
            return 2 * math.prod(x) * math.prod(w[1:])
    elif op in _MATH_PER_ELEMENT and n_out is not None:
        first = shape(node.input[0]) if node.input and node.input[0] else None
        elements = math.prod(first) if op.startswith("Reduce") and first else n_out
        return _MATH_PER_ELEMENT[op] * elements
    return 0


def inspect_model(path: str | os.PathLike, dims: Mapping[str, int] | None = None) -> ModelInfo:
    """Everything ``onnxpy inspect`` prints about the model at ``path``.

    External data is not read (only its references are counted); ``dims`` binds symbolic
    dimensions for the FLOP estimate (others count as 1).
    """
    from onnxpy.model.tensors import tensor_nbytes
    from onnxpy.types import shape_of, type_string

    path = os.fspath(path)
    model = load_model_proto(path, weights=False)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}

    def io(vi: onnx.ValueInfoProto) -> dict:
        tp = vi.type if vi.type.WhichOneof("value") else None
        return {"name": vi.name, "type": type_string(tp), "shape": shape_of(tp)}

    symbolic = sorted(
        {
            d.dim_param
            for vi in graph.input
            if vi.type.WhichOneof("value") == "tensor_type"
            for d in vi.type.tensor_type.shape.dim
            if d.HasField("dim_param")
        }
    )
    bound = {n: int((dims or {}).get(n, 1)) for n in symbolic}
    info = ModelInfo(
        path=path,
        ir_version=model.ir_version,
        opsets={i.domain or "": i.version for i in model.opset_import},
        producer=" ".join(p for p in (model.producer_name, model.producer_version) if p),
        model_version=model.model_version,
        domain=model.domain,
        doc=model.doc_string,
        metadata={p.key: p.value for p in model.metadata_props},
        inputs=[io(v) for v in graph.input if v.name not in inits],
        outputs=[io(v) for v in graph.output],
        nodes=len(graph.node),
        dims=bound,
        functions=[f"{f.domain}::{f.name}" for f in model.functions],
    )
    base = os.path.dirname(os.path.abspath(path))
    for t in graph.initializer:
        n = math.prod(t.dims)
        info.parameters += n
        info.parameter_bytes += tensor_nbytes(t)
        info.initializers += 1
        if t.data_location == onnx.TensorProto.EXTERNAL:
            ext = {e.key: e.value for e in t.external_data}
            where = os.path.join(base, ext.get("location", "?"))
            info.external_data[where] = info.external_data.get(where, 0) + tensor_nbytes(t)
    shapes = value_shapes(model, bound)
    claimed: set[str] = set()
    counts: Counter[str] = Counter()
    for node in _all_nodes(graph):
        key = _op_key(node)
        counts[key] += 1
        cost = info.ops.setdefault(key, OpCost())
        cost.flops += estimate_flops(node, shapes)
        for name in node.input:
            t = inits.get(name)
            if t is not None and name not in claimed:
                claimed.add(name)
                cost.weights += math.prod(t.dims)
                cost.weight_bytes += tensor_nbytes(t)
    for key, c in counts.items():
        info.ops[key].count = c
    info.nodes = sum(counts.values())
    info.flops = sum(c.flops for c in info.ops.values())
    info.missing_ops = missing_ops(model)
    return info
