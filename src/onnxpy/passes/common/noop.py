"""No-op elimination: nodes that provably return their first input unchanged.

* Transpose with the identity permutation;
* Reshape / Expand / Squeeze / Unsqueeze / Flatten / Tile whose output shape equals the input
  shape (all static): these only regroup or repeat elements, so equal shapes mean equal values;
* Slice with steps all 1 and an output shape equal to the input shape (it takes everything);
* Pad whose pads are all zero; Concat of a single input;
* Add/Sub of zero and Mul/Div by one (constant), when broadcasting keeps ``x``'s shape.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from onnxpy.passes.base import Pass
from onnxpy.passes.common.identity import bypass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.shapes import dims_of, static_shape

__all__ = ["NoopElimination"]

_SHAPE_ONLY = frozenset({"Reshape", "Expand", "Squeeze", "Unsqueeze", "Flatten", "Tile"})
# op -> (neutral value, positions of x the constant may sit opposite to)
_NEUTRAL = {"Add": (0, (0, 1)), "Sub": (0, (0,)), "Mul": (1, (0, 1)), "Div": (1, (0,))}


class NoopElimination(Pass):
    name = "noop_elimination"

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if not ctx.is_standard(node) or not node.input or not node.output:
                continue
            source = _passthrough(ctx, node)
            if source is not None:
                changed |= bypass(ctx, i, source, node.output[0])
        return changed


def _passthrough(ctx: GraphContext, node: NodeProto) -> str | None:
    """The input whose value the node returns unchanged, or None."""
    op = node.op_type
    x = node.input[0]
    if not x:
        return None
    if op == "Transpose":
        return x if _identity_perm(ctx, node) else None
    if op in _SHAPE_ONLY or op == "Slice":
        if op == "Slice" and not _unit_steps(ctx, node):
            return None
        same = _same_static_shape(ctx, x, node.output[0])
        return x if same else None
    if op == "Pad":
        pads = ctx.constant_value(node.input[1]) if len(node.input) > 1 else None
        return x if pads is not None and not np.any(pads) else None
    if op == "Concat":
        return x if len(node.input) == 1 else None
    if op in _NEUTRAL and len(node.input) == 2:
        return _neutral_operand(ctx, node)
    return None


def _identity_perm(ctx: GraphContext, node: NodeProto) -> bool:
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints) == list(range(len(a.ints)))
    dims = dims_of(ctx.type_of(node.input[0]))
    return dims is not None and len(dims) <= 1


def _unit_steps(ctx: GraphContext, node: NodeProto) -> bool:
    if ctx.opset(node) < 10:
        return True  # attribute form: no steps
    if len(node.input) < 5 or not node.input[4]:
        return True
    steps = ctx.constant_value(node.input[4])
    return steps is not None and bool(np.all(steps == 1))


def _same_static_shape(ctx: GraphContext, a: str, b: str) -> bool:
    sa = static_shape(ctx.type_of(a))
    return sa is not None and sa == static_shape(ctx.type_of(b))


def _neutral_operand(ctx: GraphContext, node: NodeProto) -> str | None:
    neutral, positions = _NEUTRAL[node.op_type]
    for pos in positions:
        x, c = node.input[pos], node.input[1 - pos]
        value = ctx.constant_value(c) if c else None
        if value is None or value.size == 0 or not np.all(value == neutral):
            continue
        if value.dtype.kind not in "biuf":
            continue
        if _keeps_shape(ctx, x, value.shape, node.output[0]):
            return x
    return None


def _keeps_shape(ctx: GraphContext, x: str, const_shape: tuple[int, ...], out: str) -> bool:
    """Broadcasting ``x`` with a constant of ``const_shape`` leaves ``x``'s shape."""
    if not const_shape:  # a scalar broadcasts to any shape, unknown ones included
        return True
    dims = dims_of(ctx.type_of(x))
    if dims is None or len(const_shape) > len(dims):
        return False
    tail = dims[len(dims) - len(const_shape) :]
    if all(c == 1 or c == d for c, d in zip(const_shape, tail)):
        return True
    return _same_static_shape(ctx, x, out)
