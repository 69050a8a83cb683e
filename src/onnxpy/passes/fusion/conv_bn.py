"""Conv + BatchNormalization (inference) folding into the Conv's weights and bias.

With ``s = scale / sqrt(var + eps)``: ``BN(Conv(x, W, b)) = Conv(x, W * s, (b - mean) * s + B)``
per output channel. Only inference-mode BatchNormalization with a single output and 1-D
constant parameters qualifies. The new weights are computed in float64, then rounded once.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._conv import conv_feeding, per_channel, rewrite_conv

__all__ = ["ConvBatchNormFusion"]


class ConvBatchNormFusion(Pass):
    name = "conv_batchnorm_fusion"
    level = EXTENDED
    requires = frozenset({"BatchNormalization", "Conv"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type != "BatchNormalization" or not ctx.is_standard(node):
                continue
            if not _inference_bn(node) or len(node.input) != 5:
                continue
            conv = conv_feeding(ctx, node.input[0])
            if conv is None:
                continue
            params = [ctx.constant_value(n) for n in node.input[1:]]
            if any(p is None or p.shape != (conv.channels,) for p in params):
                continue
            scale, beta, mean, var = (p.astype(np.float64) for p in params)  # type: ignore[union-attr]
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            s = scale / np.sqrt(var + np.float64(np.float32(eps)))
            weight = conv.weight.astype(np.float64) * per_channel(s, conv.weight.ndim)
            bias = (conv.bias.astype(np.float64) - mean) * s + beta
            changed |= rewrite_conv(ctx, conv, weight, bias, i, node.output[0])
        return changed


def _inference_bn(node: NodeProto) -> bool:
    """One output, not training, spatial (per-channel) parameters."""
    if any(node.output[1:]):
        return False
    attrs = {a.name: a for a in node.attribute}
    if "training_mode" in attrs and attrs["training_mode"].i != 0:
        return False
    return "spatial" not in attrs or attrs["spatial"].i == 1
