"""Identity elimination: Identity nodes and inference-mode Dropout pass their input through.

Readers of the output read the input instead. When the output is a graph output (its name must
stay), the producer of the input is renamed to write the output directly, provided the input is
an ordinary intermediate value. Dropout is removed only when it certainly does not drop: opsets
below 12 (onnxpy runs them as copies) or ``training_mode`` absent or constant false, and only
when its mask output is unused.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from onnxpy.passes.base import Pass
from onnxpy.passes.context import GraphContext

__all__ = ["IdentityElimination", "bypass"]


class IdentityElimination(Pass):
    name = "identity_elimination"

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if not ctx.is_standard(node) or not node.input or not node.input[0]:
                continue
            if node.op_type == "Identity" or (
                node.op_type == "Dropout" and _inference_dropout(ctx, node)
            ):
                changed |= bypass(ctx, i, node.input[0], node.output[0])
        return changed


def _inference_dropout(ctx: GraphContext, node: NodeProto) -> bool:
    mask = node.output[1] if len(node.output) > 1 else ""
    if mask and (ctx.uses(mask) or ctx.is_pinned(mask)):
        return False
    if ctx.opset(node) < 12:
        return True
    if len(node.input) < 3 or not node.input[2]:
        return True
    flag = ctx.constant_value(node.input[2])
    return flag is not None and flag.size == 1 and not bool(np.asarray(flag).reshape(-1)[0])


def bypass(ctx: GraphContext, i: int, source: str, target: str) -> bool:
    """Remove node ``i`` whose output ``target`` equals its input ``source``."""
    if not target:
        ctx.remove(i)
        return True
    if ctx.replace_uses(target, source):
        ctx.remove(i)
        return True
    if target in ctx.implicit:
        return False
    # target is a graph output: make source's producer write it under that name.
    p = ctx.producer_of(source)
    if p is None or ctx.is_pinned(source) or source in ctx.graph_inputs:
        return False
    ctx.remove(i)
    ctx.rename_output(p[0], source, target)
    return True
