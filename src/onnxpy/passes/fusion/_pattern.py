"""Pattern-matching helpers shared by the fusion passes: who produces or reads a value, and
what a constant operand holds."""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, TensorProto, helper

from onnxpy.passes.context import GraphContext
from onnxpy.passes.shapes import dims_of

__all__ = [
    "MS",
    "FUSED_TYPES",
    "standard_node",
    "only_reader",
    "scalar_is",
    "other_input",
    "bias_over_last_axis",
    "attribute",
]

MS = "com.microsoft"
# The element types onnxruntime's CPU kernels take for the transformer contrib ops.
FUSED_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16}


def attribute(node: NodeProto, name: str) -> object:
    """The decoded value of ``node``'s attribute ``name`` (None when absent)."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def standard_node(ctx: GraphContext, name: str, op: str) -> tuple[int, NodeProto] | None:
    """The standard-domain node of type ``op`` producing ``name``, if any."""
    p = ctx.producer_of(name)
    if p is None or p[1].op_type != op or not ctx.is_standard(p[1]):
        return None
    return p


def only_reader(
    ctx: GraphContext, name: str, op: str | None = None
) -> tuple[int, NodeProto] | None:
    """The single node reading ``name`` (once), when nothing else reads it and ``name`` is not
    pinned; with ``op``, only a standard-domain node of that type."""
    i = ctx.single_use(name)
    if i is None:
        return None
    node = ctx.graph.node[i]
    if op is not None and (node.op_type != op or not ctx.is_standard(node)):
        return None
    if list(node.input).count(name) != 1:
        return None
    return i, node


def scalar_is(ctx: GraphContext, name: str, value: float, x: str) -> bool:
    """``name`` is a one-element float constant close to ``value`` that broadcasts into x."""
    v = ctx.constant_value(name)
    if v is None or v.size != 1 or v.dtype.kind != "f":
        return False
    if v.ndim:
        dims = dims_of(ctx.type_of(x))
        if dims is None or len(dims) < v.ndim:
            return False
    return bool(np.isclose(float(v.reshape(())), value, rtol=1e-5, atol=0.0))


def other_input(node: NodeProto, name: str) -> str | None:
    """The other input of a two-input node that reads ``name``."""
    if len(node.input) != 2:
        return None
    if node.input[0] == name:
        return node.input[1]
    if node.input[1] == name:
        return node.input[0]
    return None


def bias_over_last_axis(ctx: GraphContext, bias: str, x: str) -> bool:
    """``bias`` is a 1-D constant as long as x's statically known last axis."""
    if ctx.is_constant(x):
        return False
    b = ctx.constant_value(bias)
    dims = dims_of(ctx.type_of(x))
    if b is None or b.ndim != 1 or not dims:
        return False
    return isinstance(dims[-1], int) and dims[-1] == b.shape[0]
