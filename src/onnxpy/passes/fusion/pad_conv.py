"""A zero Pad of the spatial axes in front of a Conv, folded into the Conv's ``pads``.

Models converted from TensorFlow (and PyTorch modules with ``ZeroPad2d``) pad asymmetrically
with a separate Pad node: a full copy of the activation before the convolution, which then
pads nothing. ``Conv(Pad(x, p), W)`` with a constant-mode zero pad of the spatial axes only
is ``Conv(x, W, pads = pads + p)``, and the Conv pads while it builds its windows anyway.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._pattern import attribute

__all__ = ["PadConvFusion"]


class PadConvFusion(Pass):
    name = "pad_conv_fusion"
    level = EXTENDED
    requires = frozenset({"Pad", "Conv"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type != "Conv" or not ctx.is_standard(node) or i in ctx.removed:
                continue
            p = ctx.producer_of(node.input[0])
            if p is None or p[1].op_type != "Pad" or not ctx.is_standard(p[1]):
                continue
            if ctx.single_use(node.input[0]) is None:
                continue
            added = _spatial_zero_pads(ctx, p[1])
            new = None if added is None else _padded_conv(node, added, p[1].input[0])
            if new is not None:
                ctx.fuse([p[0]], i, new)
                changed = True
        return changed


def _spatial_zero_pads(ctx: GraphContext, pad: NodeProto) -> list[int] | None:
    """[begin..., end...] of the spatial axes if ``pad`` is a constant zero pad of those only."""
    mode = attribute(pad, "mode")
    if mode not in (None, b"constant", "constant"):
        return None
    if ctx.opset(pad) < 11:
        pads = attribute(pad, "pads")
        value = attribute(pad, "value") or 0.0
    else:
        if len(pad.input) < 2 or not pad.input[1]:
            return None
        pads_arr = ctx.constant_value(pad.input[1])
        if pads_arr is None:
            return None
        pads = [int(v) for v in pads_arr.reshape(-1)]
        value = 0.0
        if len(pad.input) > 2 and pad.input[2]:
            v = ctx.constant_value(pad.input[2])
            if v is None or v.size != 1:
                return None
            value = float(v.reshape(-1)[0])
        if len(pad.input) > 3 and pad.input[3]:
            return None  # an axes input: rare, left alone
    if pads is None or value != 0.0 or len(pads) % 2 or len(pads) < 6:
        return None
    rank = len(pads) // 2
    begin, end = pads[:rank], pads[rank:]
    if any(v < 0 for v in pads) or begin[:2] != [0, 0] or end[:2] != [0, 0]:
        return None
    return begin[2:] + end[2:]


def _padded_conv(conv: NodeProto, added: list[int], source: str) -> NodeProto | None:
    auto_pad = attribute(conv, "auto_pad")
    if auto_pad not in (None, b"NOTSET", "NOTSET"):
        return None
    old = attribute(conv, "pads")
    pads = np.asarray(old if old is not None else [0] * len(added), dtype=np.int64)
    if pads.shape != (len(added),):
        return None
    new = helper.make_node("Conv", [], list(conv.output), name=conv.name)
    new.input.extend(conv.input)
    new.input[0] = source
    new.attribute.extend(a for a in conv.attribute if a.name != "pads")
    new.attribute.append(helper.make_attribute("pads", [int(v) for v in pads + added]))
    return new
