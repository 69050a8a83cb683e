"""Constant folding: nodes whose inputs are all constant are evaluated once, here.

Constant nodes become initializers (IR >= 4) and any standard, deterministic node without
subgraphs whose inputs are all constant is run with onnxpy's own kernel; its outputs become
initializers under the same names. Sizes are bounded: a result must be known (from shape
inference) to fit ``FOLD_LIMIT_BYTES`` before it is computed, and external tensors above
``EXTERNAL_LIMIT_BYTES`` are never read, so large weights are not materialized twice.
A node producing a graph output is replaced by a Constant node (names must stay).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, TensorProto, helper

from onnxpy.passes.base import NONDETERMINISTIC, Pass
from onnxpy.passes.common.evaluate import array_to_tensor, evaluate_node
from onnxpy.passes.context import FOLD_LIMIT_BYTES, GraphContext, has_subgraph
from onnxpy.passes.shapes import elem_type, static_shape
from onnxpy.types import ELEM_TYPE_TO_DTYPE

__all__ = ["ConstantFolding"]

# Operators whose result is never larger than their largest input: safe to fold even when
# shape inference could not tell the result's shape.
_BOUNDED = frozenset(
    {
        "Identity", "Cast", "CastLike", "Reshape", "Squeeze", "Unsqueeze", "Flatten",
        "Transpose", "Shape", "Size", "Slice", "Neg", "Abs", "Not", "Sqrt", "Exp", "Log",
        "Floor", "Ceil", "Round", "Sign", "Reciprocal", "Relu", "Sigmoid", "Tanh",
        "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceMean", "ArgMax", "ArgMin",
    }
)  # fmt: skip


class ConstantFolding(Pass):
    name = "constant_folding"

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type == "Constant" and ctx.is_standard(node):
                changed |= _constant_to_initializer(ctx, i, node)
            elif _foldable(ctx, node):
                changed |= _fold(ctx, i, node)
        return changed


def _constant_to_initializer(ctx: GraphContext, i: int, node: NodeProto) -> bool:
    out = node.output[0] if node.output else ""
    if ctx.model.ir_version < 4 or not out or out in ctx.graph_outputs:
        return False
    tensor = ctx.constant_tensor(out)
    if tensor is None:
        return False
    ctx.remove(i)
    ctx.add_initializer(tensor)
    return True


def _foldable(ctx: GraphContext, node: NodeProto) -> bool:
    return (
        bool(node.input)
        and node.op_type != "Identity"  # an alias, not a copy: identity elimination's job
        # Before the other tests: most nodes have a computed input, which ends it at once.
        and all(ctx.is_constant(n) for n in node.input if n)
        and ctx.is_standard(node)
        and node.op_type not in NONDETERMINISTIC
        and not has_subgraph(node)
    )


def _result_fits(ctx: GraphContext, node: NodeProto) -> bool:
    """True when every output is known to fit the size limit before computing it."""
    for name in node.output:
        if not name:
            continue
        tp = ctx.type_of(name)
        shape = static_shape(tp)
        dtype = ELEM_TYPE_TO_DTYPE.get(elem_type(tp) or 0)
        if shape is None or dtype is None:
            if node.op_type in _BOUNDED:
                continue
            return False
        itemsize = 8 if dtype.kind == "O" else dtype.itemsize
        if int(np.prod(shape, dtype=np.int64)) * itemsize > FOLD_LIMIT_BYTES:
            return False
    return True


def _fold(ctx: GraphContext, i: int, node: NodeProto) -> bool:
    if not _result_fits(ctx, node):
        return False
    inputs = [ctx.constant_value(n) if n else None for n in node.input]
    if any(v is None for n, v in zip(node.input, inputs) if n):
        return False
    results = evaluate_node(ctx, node, inputs)
    if results is None:
        return False
    tensors: list[TensorProto] = []
    for name, value in zip(node.output, results):
        if not name:
            continue
        if value.nbytes > FOLD_LIMIT_BYTES:
            return False
        declared = elem_type(ctx.type_of(name))
        t = array_to_tensor(value, name)
        if t is None or (declared is not None and declared != t.data_type):
            return False
        tensors.append(t)
    if any(t.name in ctx.graph_outputs for t in tensors):
        if len(tensors) != 1:
            return False
        ctx.replace_node(i, helper.make_node("Constant", [], [tensors[0].name], value=tensors[0]))
        return True
    ctx.remove(i)
    for t in tensors:
        ctx.add_initializer(t)
    return True
