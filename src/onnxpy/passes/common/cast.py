"""Redundant Cast elimination.

* ``Cast(x, to=T)`` where ``x`` already has element type ``T`` is a copy: readers read ``x``.
* ``Cast(Cast(x, T1), T2)`` becomes ``Cast(x, T2)`` when ``T1`` holds every value of ``x``'s
  type exactly (a widening such as float16 -> float32 or int8 -> int32): the inner cast then
  changes no value, so converting from it or from ``x`` gives the same result. Only the common
  numeric types take part (no strings, whose formatting depends on the source type, and no
  float8/4-bit types), and float -> integer chains are left alone (NaN/inf are not values of
  the integer types, so the two paths may disagree on them).
"""

from __future__ import annotations

from onnx import NodeProto, TensorProto, helper

from onnxpy.passes.base import Pass
from onnxpy.passes.common.identity import bypass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.shapes import elem_type

__all__ = ["CastElimination"]

_T = TensorProto
_FLOATS = {_T.FLOAT16, _T.BFLOAT16, _T.FLOAT, _T.DOUBLE}
_INTS = {_T.BOOL, _T.INT8, _T.UINT8, _T.INT16, _T.UINT16, _T.INT32, _T.UINT32, _T.INT64, _T.UINT64}
# source type -> types that represent each of its values exactly.
_EXACT: dict[int, set[int]] = {
    _T.BOOL: _FLOATS | _INTS,
    _T.INT8: {_T.INT16, _T.INT32, _T.INT64} | _FLOATS,
    _T.UINT8: {_T.INT16, _T.UINT16, _T.INT32, _T.UINT32, _T.INT64, _T.UINT64} | _FLOATS,
    _T.INT16: {_T.INT32, _T.INT64, _T.FLOAT, _T.DOUBLE},
    _T.UINT16: {_T.INT32, _T.UINT32, _T.INT64, _T.UINT64, _T.FLOAT, _T.DOUBLE},
    _T.INT32: {_T.INT64, _T.DOUBLE},
    _T.UINT32: {_T.INT64, _T.UINT64, _T.DOUBLE},
    _T.FLOAT16: {_T.FLOAT, _T.DOUBLE},
    _T.BFLOAT16: {_T.FLOAT, _T.DOUBLE},
    _T.FLOAT: {_T.DOUBLE},
}


class CastElimination(Pass):
    name = "cast_elimination"
    requires = frozenset({"Cast"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type != "Cast" or not ctx.is_standard(node) or not node.input[0]:
                continue
            to = _target(node)
            source = elem_type(ctx.type_of(node.input[0]))
            if to is None or source is None:
                continue
            if source == to:
                changed |= bypass(ctx, i, node.input[0], node.output[0])
            else:
                changed |= _skip_inner(ctx, i, node, source, to)
        return changed


def _target(node: NodeProto) -> int | None:
    for a in node.attribute:
        if a.name == "to":
            return int(a.i)
    return None


def _skip_inner(ctx: GraphContext, i: int, node: NodeProto, middle: int, to: int) -> bool:
    """Cast(Cast(x, middle), to) -> Cast(x, to) when the inner cast is exact."""
    p = ctx.producer_of(node.input[0])
    if p is None or p[1].op_type != "Cast" or not ctx.is_standard(p[1]):
        return False
    inner = p[1]
    source = elem_type(ctx.type_of(inner.input[0]))
    if source is None or _target(inner) != middle or to not in _FLOATS | _INTS:
        return False
    if middle not in _EXACT.get(source, ()) or (source in _FLOATS and to in _INTS):
        return False
    ctx.replace_node(
        i, helper.make_node("Cast", [inner.input[0]], list(node.output), name=node.name, to=to)
    )
    return True
