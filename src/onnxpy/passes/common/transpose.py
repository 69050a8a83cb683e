"""Transpose cancellation: ``Transpose(Transpose(x, p1), p2)`` is one Transpose of ``x``.

The composed permutation is ``p1[p2[k]]``; when it is the identity the pair cancels (the
no-op pass then removes the remaining identity Transpose). The first Transpose stays while
other nodes read it and goes with dead-code elimination otherwise.
"""

from __future__ import annotations

from onnx import NodeProto, helper

from onnxpy.passes.base import Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.shapes import dims_of

__all__ = ["TransposeCancellation"]


class TransposeCancellation(Pass):
    name = "transpose_cancellation"
    requires = frozenset({"Transpose"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type != "Transpose" or not ctx.is_standard(node) or not node.input[0]:
                continue
            p = ctx.producer_of(node.input[0])
            if p is None or p[1].op_type != "Transpose" or not ctx.is_standard(p[1]):
                continue
            inner = p[1]
            p1 = _perm(ctx, inner)
            p2 = _perm(ctx, node)
            if p1 is None or p2 is None or len(p1) != len(p2):
                continue
            composed = [p1[k] for k in p2]
            new = helper.make_node(
                "Transpose", [inner.input[0]], list(node.output), name=node.name, perm=composed
            )
            ctx.replace_node(i, new)
            changed = True
        return changed


def _perm(ctx: GraphContext, node: NodeProto) -> list[int] | None:
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    dims = dims_of(ctx.type_of(node.input[0]))
    return None if dims is None else list(range(len(dims)))[::-1]
