"""skl2onnx's per-row distance ``Scan`` -> one com.microsoft ``CDist``.

skl2onnx writes the distances of nearest-neighbour models (and of some kernels) as a ``Scan``
over the stored rows ``T`` [M, K], carrying the input ``X`` [N, K] as its state::

    body(state, row):  state_out = Identity(state)
                       scan_out  = ReduceSumSquare(Sub(state, row), axes=[1], keepdims=0)

so ``scan_out`` stacks to ``[M, N]``: squared euclidean distances, ``CDist(T, X)``. Run as a
loop that is M body calls per prediction (5,000 for a KNN over 5,000 rows) whatever the batch;
as one CDist it is one matrix product. The final state is ``X`` itself, so its readers read
``X``. Only this exact body is matched (either Sub order, Identity around the reduction
allowed), with default scan axes and directions.
"""

from __future__ import annotations

from onnx import GraphProto, NodeProto, TensorProto, helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._pattern import attribute
from onnxpy.passes.shapes import dims_of, elem_type

__all__ = ["ScanDistanceFusion"]

MS = "com.microsoft"
_ELEM = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}


class ScanDistanceFusion(Pass):
    name = "scan_distance_fusion"
    level = EXTENDED
    requires = frozenset({"Scan"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type != "Scan" or not ctx.is_standard(node) or ctx.opset(node) < 9:
                continue
            if len(node.input) != 2 or len(node.output) != 2 or not _default_layout(node):
                continue
            body = attribute(node, "body")
            if body is None or not _is_distance_body(body, ctx.opset(node)):
                continue
            x, rows = node.input
            table = ctx.constant_value(rows)
            x_dims = dims_of(ctx.type_of(x))
            if table is None or table.ndim != 2 or x_dims is None or len(x_dims) != 2:
                continue
            if table.dtype.kind != "f" or elem_type(ctx.type_of(x)) != _ELEM.get(table.dtype.name):
                continue
            state_out, dist = node.output
            if state_out and ctx.uses(state_out) and not ctx.replace_uses(state_out, x):
                continue
            ctx.use_domain(MS, 1)
            new = helper.make_node(
                "CDist", [rows, x], [dist], domain=MS, metric="sqeuclidean", name=node.name
            )
            ctx.replace_node(i, new)
            changed = True
        return changed


def _default_layout(node: NodeProto) -> bool:
    if attribute(node, "num_scan_inputs") != 1:
        return False
    for name in (
        "scan_input_axes",
        "scan_output_axes",
        "scan_input_directions",
        "scan_output_directions",
    ):
        value = attribute(node, name)
        if value is not None and any(int(v) != 0 for v in value):
            return False
    return True


def _is_distance_body(body: GraphProto, opset: int) -> bool:
    if len(body.input) != 2 or len(body.output) != 2 or len(body.initializer):
        return False
    state, row = (v.name for v in body.input)
    state_out, scan_out = (v.name for v in body.output)
    producers = {o: n for n in body.node for o in n.output}
    if len(producers) != len(body.node) or any(len(n.output) != 1 for n in body.node):
        return False

    def through_identity(name: str) -> NodeProto | None:
        n = producers.get(name)
        while n is not None and n.op_type == "Identity" and n.domain in ("", "ai.onnx"):
            if n.input[0] in (state, row):
                return n
            n = producers.get(n.input[0])
        return n

    keep = producers.get(state_out)
    if keep is None or keep.op_type != "Identity" or list(keep.input) != [state]:
        return False
    red = through_identity(scan_out)
    if red is None or red.op_type != "ReduceSumSquare" or red.domain not in ("", "ai.onnx"):
        return False
    if attribute(red, "keepdims") != 0:
        return False
    axes = attribute(red, "axes")
    if opset >= 18 or len(red.input) > 1:
        return False  # axes as an input: not matched (skl2onnx writes opset <= 17 here)
    if axes is None or [int(a) for a in axes] not in ([1], [-1]):
        return False
    sub = producers.get(red.input[0])
    if sub is None or sub.op_type != "Sub" or sub.domain not in ("", "ai.onnx"):
        return False
    if sorted(sub.input) != sorted([state, row]):
        return False
    used = {id(keep), id(red), id(sub)}
    return all(n.op_type == "Identity" for n in body.node if id(n) not in used)
