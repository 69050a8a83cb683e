"""Shared steps of the Conv fusions: find a foldable Conv and rewrite its weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import NodeProto, helper

from onnxpy.passes.common.evaluate import array_to_tensor
from onnxpy.passes.context import EXTERNAL_LIMIT_BYTES, GraphContext

__all__ = ["FoldableConv", "conv_feeding", "rewrite_conv"]

_FLOAT_KINDS = (np.float16, np.float32, np.float64)


@dataclass
class FoldableConv:
    index: int
    node: NodeProto
    weight: np.ndarray  # [M, C/group, k...]
    bias: np.ndarray  # [M], zeros when the Conv has none

    @property
    def channels(self) -> int:
        return int(self.weight.shape[0])


def conv_feeding(ctx: GraphContext, name: str) -> FoldableConv | None:
    """The Conv computing ``name`` if it may absorb the single node reading ``name``."""
    p = ctx.producer_of(name)
    if p is None or ctx.single_use(name) is None:
        return None
    i, conv = p
    if conv.op_type != "Conv" or not ctx.is_standard(conv) or len(conv.input) < 2:
        return None
    w = ctx.constant_value(conv.input[1])
    if w is None or w.dtype not in _FLOAT_KINDS or w.ndim < 3:
        return None
    if len(ctx.uses(conv.input[1])) > 1 and w.nbytes > EXTERNAL_LIMIT_BYTES:
        return None  # shared large weight: fusing would store a second copy
    if len(conv.input) > 2 and conv.input[2]:
        b = ctx.constant_value(conv.input[2])
        if b is None or b.dtype != w.dtype or b.shape != (w.shape[0],):
            return None
    else:
        b = np.zeros(w.shape[0], dtype=w.dtype)
    return FoldableConv(i, conv, w, b)


def rewrite_conv(
    ctx: GraphContext,
    conv: FoldableConv,
    weight: np.ndarray,
    bias: np.ndarray,
    at: int,
    output: str,
) -> bool:
    """Replace node ``at`` by the Conv with new weights writing ``output``; drop the old Conv."""
    dtype = conv.weight.dtype
    w_name = ctx.fresh_name(f"{conv.node.input[1]}_fused")
    b_name = ctx.fresh_name(f"{conv.node.output[0]}_bias_fused")
    w_t = array_to_tensor(weight.astype(dtype), w_name)
    b_t = array_to_tensor(bias.astype(dtype), b_name)
    if w_t is None or b_t is None:
        return False
    ctx.add_initializer(w_t)
    ctx.add_initializer(b_t)
    new = helper.make_node(
        "Conv", [conv.node.input[0], w_name, b_name], [output], name=conv.node.name
    )
    new.attribute.extend(conv.node.attribute)
    ctx.fuse([conv.index], at, new)
    return True


def per_channel(weight_scale: np.ndarray, rank: int) -> np.ndarray:
    """A [M] vector shaped to scale the output-channel axis of a rank-``rank`` weight."""
    return weight_scale.reshape((-1,) + (1,) * (rank - 1))
