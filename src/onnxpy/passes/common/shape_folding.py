"""Shape-computation folding: shape queries answered by shape inference become constants.

* ``Shape(x)`` (with opset-15 ``start``/``end``) when the selected dims are static;
* ``Size(x)`` when every dim is static;
* ``Gather(Shape(x), indices)`` (axis 0) and ``Slice(Shape(x), ...)`` when the dims they pick
  are static, even if other dims of ``x`` are not (batch / sequence length).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper

from onnxpy.passes.base import Pass
from onnxpy.passes.common.evaluate import array_to_tensor
from onnxpy.passes.context import GraphContext
from onnxpy.passes.shapes import dims_of

__all__ = ["ShapeFolding"]

_UNKNOWN = -1  # stands for a dim that is not static (real dims are >= 0)
_FOLDED = frozenset({"Shape", "Size", "Gather", "Slice"})  # the operators _fold handles


class ShapeFolding(Pass):
    name = "shape_folding"

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type not in _FOLDED:  # first: the cheapest test, and most nodes fail it
                continue
            if not ctx.is_standard(node) or not node.input or not node.output[0]:
                continue
            value = _fold(ctx, node)
            if value is not None and not np.any(value == _UNKNOWN):
                changed |= _replace_with_constant(ctx, i, node, value)
        return changed


def _fold(ctx: GraphContext, node: NodeProto) -> np.ndarray | None:
    op = node.op_type
    if op == "Shape":
        return _shape_vector(ctx, node)
    if op == "Size":
        dims = dims_of(ctx.type_of(node.input[0]))
        if dims is None or not all(isinstance(d, int) for d in dims):
            return None
        return np.array(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)
    if op in ("Gather", "Slice"):
        p = ctx.producer_of(node.input[0])
        if p is None or p[1].op_type != "Shape" or not ctx.is_standard(p[1]):
            return None
        vec = _shape_vector(ctx, p[1], partial=True)
        if vec is None:
            return None
        return _gather(ctx, node, vec) if op == "Gather" else _slice(ctx, node, vec)
    return None


def _shape_vector(ctx: GraphContext, node: NodeProto, partial: bool = False) -> np.ndarray | None:
    """Shape's result with _UNKNOWN for non-static dims (None if the rank is unknown)."""
    dims = dims_of(ctx.type_of(node.input[0]))
    if dims is None:
        return None
    vec = np.array([d if isinstance(d, int) else _UNKNOWN for d in dims], dtype=np.int64)
    attrs = {a.name: int(a.i) for a in node.attribute}
    r = len(vec)
    start, end = attrs.get("start", 0), attrs.get("end", r)
    start = min(max(start + r if start < 0 else start, 0), r)
    end = min(max(end + r if end < 0 else end, 0), r)
    vec = vec[start:end]
    if not partial and np.any(vec == _UNKNOWN):
        return None
    return vec


def _gather(ctx: GraphContext, node: NodeProto, vec: np.ndarray) -> np.ndarray | None:
    axis = next((int(a.i) for a in node.attribute if a.name == "axis"), 0)
    idx = ctx.constant_value(node.input[1]) if len(node.input) > 1 else None
    if axis not in (0, -1) or idx is None or idx.dtype.kind not in "iu":
        return None
    idx = idx.astype(np.int64)
    n = len(vec)
    if np.any(idx < -n) or np.any(idx >= n):
        return None  # out of range: leave the error to the runtime
    return vec[np.where(idx < 0, idx + n, idx)]


def _slice(ctx: GraphContext, node: NodeProto, vec: np.ndarray) -> np.ndarray | None:
    if ctx.opset(node) < 10:
        attrs = {a.name: list(a.ints) for a in node.attribute}
        starts, ends, axes, steps = attrs.get("starts"), attrs.get("ends"), attrs.get("axes"), None
    else:
        names = list(node.input[1:5]) + [""] * (5 - len(node.input))
        vals = [ctx.constant_value(n) if n else None for n in names]
        if any(n and v is None for n, v in zip(names, vals)):
            return None
        starts, ends, axes, steps = (None if v is None else v.reshape(-1).tolist() for v in vals)
    axes = axes if axes is not None else [0]
    steps = steps if steps is not None else [1]
    if starts is None or ends is None:
        return None
    if not (len(starts) == len(ends) == len(axes) == len(steps) == 1):
        return None
    if axes[0] not in (0, -1) or steps[0] == 0:
        return None
    bounds = _clamp(int(starts[0]), int(ends[0]), int(steps[0]), len(vec))
    return vec[slice(*bounds)]


def _clamp(start: int, end: int, step: int, n: int) -> tuple[int, int | None, int]:
    """Slice's clamping rules for one axis of length ``n``, as Python slice bounds."""
    if start < 0:
        start += n
    if end < 0:
        end += n
    if step > 0:
        return min(max(start, 0), n), min(max(end, 0), n), step
    if n == 0:
        return 0, 0, 1
    start = min(max(start, 0), n - 1)
    end = min(max(end, -1), n - 1)
    return start, (None if end < 0 else end), step


def _replace_with_constant(ctx: GraphContext, i: int, node: NodeProto, value: np.ndarray) -> bool:
    out = node.output[0]
    tensor = array_to_tensor(value.astype(np.int64), out)
    if tensor is None:
        return False
    if out in ctx.graph_outputs or ctx.model.ir_version < 4:
        ctx.replace_node(i, helper.make_node("Constant", [], [out], value=tensor))
    else:
        ctx.remove(i)
        ctx.add_initializer(tensor)
    return True
