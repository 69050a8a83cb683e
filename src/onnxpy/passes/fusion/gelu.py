"""Exact GELU written with Erf -> com.microsoft ``Gelu``; ``Gelu(Add(x, bias))`` -> ``BiasGelu``.

PyTorch exports ``gelu(x)`` as ``0.5 * x * (1 + erf(x / sqrt 2))`` in one of a few forms:

* the erf argument is ``Div(x, sqrt 2)`` or ``Mul(x, 1 / sqrt 2)`` (either operand order);
* ``Add(Erf, 1)`` (either order);
* the three factors x, 0.5 and the Add are multiplied by two Muls in any grouping:
  ``(x * a) * 0.5``, ``x * (a * 0.5)`` or ``(x * 0.5) * a``.

Constants are initializers or Constant nodes holding one element (of rank no higher than x's,
so broadcasting them changes no shape) and match the expected value to a relative 1e-5. Every
intermediate value must be read by the next node of the pattern only and not be a graph
output; ``x`` itself may have other readers.

``BiasGelu(A, B)`` is ``Gelu(A + B)`` for a 1-D constant ``B`` as long as A's last axis, which
must be statically known. The Add's result must be read by the Gelu only.
Only float32 and float16 tensors are fused (the types onnxruntime's CPU kernels take).
"""

from __future__ import annotations

import math

from onnx import NodeProto, helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._pattern import (
    FUSED_TYPES,
    MS,
    bias_over_last_axis,
    only_reader,
    other_input,
    scalar_is,
    standard_node,
)
from onnxpy.passes.shapes import elem_type

__all__ = ["GeluFusion", "BiasGeluFusion"]


def _erf_argument(ctx: GraphContext, name: str) -> tuple[int, str] | None:
    """(node index, x) when ``name`` is x / sqrt 2, written as Div or Mul."""
    p = standard_node(ctx, name, "Div")
    if p is not None and len(p[1].input) == 2:
        x, c = p[1].input
        if scalar_is(ctx, c, math.sqrt(2.0), x):
            return p[0], x
        return None
    p = standard_node(ctx, name, "Mul")
    if p is None or len(p[1].input) != 2:
        return None
    for x, c in (p[1].input, p[1].input[::-1]):
        if scalar_is(ctx, c, math.sqrt(0.5), x) and not ctx.is_constant(x):
            return p[0], x
    return None


def _gelu_tail(ctx: GraphContext, x: str, a: str) -> tuple[list[int], int, str] | None:
    """Given x and a = 1 + erf(...): (inner Mul indexes, final Mul index, output) of
    0.5 * x * a in any grouping of two Muls."""
    m1 = only_reader(ctx, a, "Mul")
    if m1 is None:
        return None
    i1, n1 = m1
    partner = other_input(n1, a)
    if partner == x:  # (x * a) * 0.5
        m2 = only_reader(ctx, n1.output[0], "Mul")
        if m2 is not None and scalar_is(ctx, other_input(m2[1], n1.output[0]) or "", 0.5, x):
            return [i1], m2[0], m2[1].output[0]
        return None
    if partner is None:
        return None
    if scalar_is(ctx, partner, 0.5, x):  # x * (a * 0.5)
        m2 = only_reader(ctx, n1.output[0], "Mul")
        if m2 is not None and other_input(m2[1], n1.output[0]) == x:
            return [i1], m2[0], m2[1].output[0]
        return None
    # (x * 0.5) * a: the partner is Mul(x, 0.5), read by this Mul only
    h = standard_node(ctx, partner, "Mul")
    if h is None or ctx.single_use(partner) is None or len(h[1].input) != 2:
        return None
    c = other_input(h[1], x)
    if c is None or not scalar_is(ctx, c, 0.5, x):
        return None
    return [h[0]], i1, n1.output[0]


class GeluFusion(Pass):
    name = "gelu_fusion"
    level = EXTENDED
    requires = frozenset({"Erf"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if i in ctx.removed or node.op_type != "Erf" or not ctx.is_standard(node):
                continue
            found = self._match(ctx, i, node)
            if found is None:
                continue
            x, removed, last, out = found
            ctx.use_domain(MS)
            gelu = helper.make_node(
                "Gelu", [x], [out], name=ctx.fresh_name(f"{node.name or 'Erf'}_gelu"), domain=MS
            )
            ctx.fuse(removed, last, gelu)
            changed = True
        return changed

    @staticmethod
    def _match(ctx: GraphContext, i: int, erf: NodeProto) -> tuple[str, list[int], int, str] | None:
        if len(erf.input) != 1 or ctx.single_use(erf.input[0]) is None:
            return None
        arg = _erf_argument(ctx, erf.input[0])
        if arg is None:
            return None
        j, x = arg
        if elem_type(ctx.type_of(x)) not in FUSED_TYPES:
            return None
        add = only_reader(ctx, erf.output[0], "Add")
        if add is None or not scalar_is(ctx, other_input(add[1], erf.output[0]) or "", 1.0, x):
            return None
        tail = _gelu_tail(ctx, x, add[1].output[0])
        if tail is None:
            return None
        inner, last, out = tail
        removed = [j, i, add[0], *inner]
        if len(set(removed + [last])) != len(removed) + 1:
            return None
        return x, removed, last, out


class BiasGeluFusion(Pass):
    name = "bias_gelu_fusion"
    level = EXTENDED
    requires = frozenset({"Gelu"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type != "Gelu" or node.domain != MS or len(node.input) != 1:
                continue
            t = node.input[0]
            add = standard_node(ctx, t, "Add")
            if add is None or ctx.single_use(t) is None or len(add[1].input) != 2:
                continue
            for a, b in (add[1].input, add[1].input[::-1]):
                if elem_type(ctx.type_of(a)) not in FUSED_TYPES:
                    continue
                if elem_type(ctx.type_of(b)) != elem_type(ctx.type_of(a)):
                    continue
                if bias_over_last_axis(ctx, b, a):
                    fused = helper.make_node(
                        "BiasGelu",
                        [a, b],
                        list(node.output),
                        name=ctx.fresh_name(f"{node.name or 'Gelu'}_bias"),
                        domain=MS,
                    )
                    ctx.fuse([add[0]], i, fused)
                    changed = True
                    break
        return changed
