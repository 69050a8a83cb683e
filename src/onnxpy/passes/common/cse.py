"""Common-subexpression elimination: compute each distinct expression once.

Two standard, deterministic nodes without subgraphs that apply the same operator with the same
attributes to the same inputs, asking for the same outputs, compute the same values: readers
of the later one read the earlier one's outputs instead. Equal small constants (same type,
shape and bytes) are merged first, so expressions over copies of one constant match too.
"""

from __future__ import annotations

from onnx import NodeProto, TensorProto

from onnxpy.model.tensors import tensor_nbytes
from onnxpy.passes.base import NONDETERMINISTIC, Pass
from onnxpy.passes.context import GraphContext, has_subgraph

__all__ = ["CommonSubexpressionElimination"]

# Constants up to this size are compared by value.
_MERGE_CONSTANT_BYTES = 64 * 1024


class CommonSubexpressionElimination(Pass):
    name = "common_subexpression_elimination"

    def run(self, ctx: GraphContext) -> bool:
        changed = _merge_constants(ctx)
        seen: dict[tuple, NodeProto] = {}
        for i, node in list(ctx.nodes()):
            key = _key(ctx, node)
            if key is None:
                continue
            first = seen.get(key)
            if first is None:
                seen[key] = node
                continue
            outputs = [o for o in node.output if o]
            if any(ctx.is_pinned(o) for o in outputs):
                continue
            for mine, theirs in zip(node.output, first.output):
                if mine:
                    ctx.replace_uses(mine, theirs)
            ctx.remove(i)
            changed = True
        return changed


def _key(ctx: GraphContext, node: NodeProto) -> tuple | None:
    if (
        not node.input
        or not ctx.is_standard(node)
        or node.op_type in NONDETERMINISTIC
        or has_subgraph(node)
    ):
        return None
    attrs = tuple(sorted((a.name, a.SerializeToString(deterministic=True)) for a in node.attribute))
    present = tuple(bool(o) for o in node.output)
    return (node.domain or "", node.op_type, tuple(node.input), attrs, present)


def _merge_constants(ctx: GraphContext) -> bool:
    """Readers of a duplicate small initializer read the first equal one."""
    seen: dict[tuple, str] = {}
    changed = False
    for t in list(ctx.graph.initializer):
        if (
            t.name in ctx.graph_inputs
            or t.data_location == TensorProto.EXTERNAL
            or tensor_nbytes(t) > _MERGE_CONSTANT_BYTES
            or ctx.is_pinned(t.name)
        ):
            continue
        key = (t.data_type, tuple(t.dims), _digest(t))
        first = seen.setdefault(key, t.name)
        if first != t.name and ctx.uses(t.name):
            ctx.replace_uses(t.name, first)
            changed = True
    return changed


def _digest(t: TensorProto) -> bytes:
    """The tensor's value as a key: its encoding without the name (small tensors only, so the
    bytes themselves serve; a SHA-256 meant importing hashlib, ~4 ms of start-up)."""
    copy = TensorProto()
    copy.CopyFrom(t)
    copy.name = ""
    copy.doc_string = ""
    return copy.SerializeToString(deterministic=True)
