"""Residual Add + LayerNormalization -> com.microsoft ``SkipLayerNormalization``.

``LayerNormalization(Add(A, B), gamma, beta)`` over the last axis is
``SkipLayerNormalization(A, B, gamma, beta)`` when A and B are 3-D with equal shapes (each dim
statically equal: the same integer or the same symbol) and gamma / beta are 1-D constants as
long as the last axis. When one addend is itself ``Add(X, bias)`` with a 1-D constant bias over
the last axis, read by the residual Add only, the bias becomes the fused node's fifth input.

The LayerNormalization must use the default ``stash_type`` and produce only its first output.
If the sum A + B has readers besides the normalization it becomes the fused node's fourth
output (input + skip + bias), so those readers keep their value. The fused node takes the
residual Add's place in the graph, so every value it reads is already defined there.
"""

from __future__ import annotations

from onnx import NodeProto, helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._pattern import (
    FUSED_TYPES,
    MS,
    attribute,
    bias_over_last_axis,
    standard_node,
)
from onnxpy.passes.shapes import dims_of, elem_type

__all__ = ["SkipLayerNormFusion"]


def _defined_before(ctx: GraphContext, name: str, position: int) -> bool:
    """``name`` is a graph input, an initializer, or produced by a node before ``position``."""
    if name in ctx.initializers or name in ctx.graph_inputs:
        return True
    p = ctx.producer.get(name)
    return p is not None and p < position


class SkipLayerNormFusion(Pass):
    name = "skip_layer_norm_fusion"
    level = EXTENDED
    requires = frozenset({"LayerNormalization"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, ln in list(ctx.nodes()):
            if i in ctx.removed or ln.op_type != "LayerNormalization":
                continue
            if not ctx.is_standard(ln) or ctx.opset(ln) < 17:
                continue
            found = self._match(ctx, ln)
            if found is None:
                continue
            k, inputs, removed, sum_out = found
            eps = attribute(ln, "epsilon")
            ctx.use_domain(MS)
            fused = helper.make_node(
                "SkipLayerNormalization",
                inputs,
                [ln.output[0], "", "", sum_out] if sum_out else [ln.output[0]],
                name=ctx.fresh_name(f"{ln.name or 'LayerNormalization'}_skip"),
                domain=MS,
                epsilon=1e-5 if eps is None else float(eps),
            )
            ctx.fuse([*removed, i], k, fused)
            changed = True
        return changed

    @staticmethod
    def _match(
        ctx: GraphContext, ln: NodeProto
    ) -> tuple[int, list[str], list[int], str | None] | None:
        if len(ln.input) < 2 or any(o for o in ln.output[1:]):
            return None
        if attribute(ln, "stash_type") not in (None, 1):
            return None
        s = ln.input[0]
        dims = dims_of(ctx.type_of(s))
        if dims is None or len(dims) != 3 or attribute(ln, "axis") not in (None, -1, 2):
            return None
        if elem_type(ctx.type_of(s)) not in FUSED_TYPES:
            return None
        gamma = ln.input[1]
        beta = ln.input[2] if len(ln.input) > 2 and ln.input[2] else None
        if not bias_over_last_axis(ctx, gamma, s):
            return None
        if beta is not None and not bias_over_last_axis(ctx, beta, s):
            return None
        add = standard_node(ctx, s, "Add")
        if add is None or len(add[1].input) != 2:
            return None
        k, node = add
        a, b = node.input
        if dims_of(ctx.type_of(a)) != dims or dims_of(ctx.type_of(b)) != dims:
            return None
        if None in dims or not all(_defined_before(ctx, n, k) for n in (gamma, beta) if n):
            return None
        sum_out = None if ctx.single_use(s) is not None else s
        if sum_out is not None and ctx.is_pinned(s) and s not in ctx.graph_outputs:
            return None  # read by a subgraph: leave it alone
        removed: list[int] = []
        bias = None
        for pos in (0, 1):
            inner = standard_node(ctx, node.input[pos], "Add")
            if inner is None or ctx.single_use(node.input[pos]) is None:
                continue
            if len(inner[1].input) != 2:
                continue
            for x, c in (inner[1].input, inner[1].input[::-1]):
                if dims_of(ctx.type_of(x)) == dims and bias_over_last_axis(ctx, c, x):
                    bias = c
                    a, b = (x, node.input[1]) if pos == 0 else (node.input[0], x)
                    removed.append(inner[0])
                    break
            if bias is not None:
                break
        inputs = [a, b, gamma, beta or ""] + ([bias] if bias is not None else [])
        while inputs and not inputs[-1]:
            inputs.pop()
        return k, inputs, removed, sum_out
