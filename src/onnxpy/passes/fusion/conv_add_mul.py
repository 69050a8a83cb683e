"""Conv followed by Add or Mul of a per-channel constant, folded into the Conv.

``Conv(x, W, b) + k`` is ``Conv(x, W, b + k)`` and ``Conv(x, W, b) * k`` is
``Conv(x, W * k, b * k)`` when ``k`` broadcasts along the output-channel axis only (shape
``[M, 1, ..]``, ``[1, M, 1, ..]`` or a single value) and so leaves the output's shape alone.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._conv import FoldableConv, conv_feeding, per_channel, rewrite_conv

__all__ = ["ConvAddMulFusion"]


class ConvAddMulFusion(Pass):
    name = "conv_add_mul_fusion"
    level = EXTENDED
    requires = frozenset({"Conv"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type not in ("Add", "Mul") or not ctx.is_standard(node):
                continue
            if len(node.input) != 2:
                continue
            for pos in (0, 1):
                conv = conv_feeding(ctx, node.input[pos])
                k = ctx.constant_value(node.input[1 - pos])
                vec = None if conv is None or k is None else _channel_vector(conv, k)
                if vec is not None:
                    changed |= _fold(ctx, i, node, conv, vec)  # type: ignore[arg-type]
                    break
        return changed


def _channel_vector(conv: FoldableConv, k: np.ndarray) -> np.ndarray | None:
    """``k`` as a length-M vector if it only varies along the output-channel axis."""
    rank = conv.weight.ndim  # the Conv output has the weight's rank
    if k.dtype != conv.weight.dtype or k.ndim > rank:
        return None
    shape = (1,) * (rank - k.ndim) + k.shape
    if shape[0] != 1 or any(d != 1 for d in shape[2:]) or shape[1] not in (1, conv.channels):
        return None
    return np.broadcast_to(k.reshape(-1), (conv.channels,)).astype(np.float64)


def _fold(ctx: GraphContext, i: int, node: NodeProto, conv: FoldableConv, k: np.ndarray) -> bool:
    w = conv.weight.astype(np.float64)
    b = conv.bias.astype(np.float64)
    if node.op_type == "Add":
        return rewrite_conv(ctx, conv, w, b + k, i, node.output[0])
    return rewrite_conv(ctx, conv, w * per_channel(k, w.ndim), b * k, i, node.output[0])
