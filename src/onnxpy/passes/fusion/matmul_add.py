"""MatMul + Add -> Gemm for 2-D operands.

``Add(MatMul(A, B), C)`` is ``Gemm(A, B, C)`` (alpha = beta = 1) when A and B are matrices and
C broadcasts to the ``[M, N]`` product one way (Gemm's rule), so the result's shape is the
product's. The MatMul's result must be read by the Add only.
"""

from __future__ import annotations

from onnx import NodeProto, TensorProto, helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.shapes import dims_of, elem_type

__all__ = ["MatMulAddFusion"]

_GEMM_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16}


class MatMulAddFusion(Pass):
    name = "matmul_add_fusion"
    level = EXTENDED
    requires = frozenset({"MatMul", "Add"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if node.op_type != "Add" or not ctx.is_standard(node) or len(node.input) != 2:
                continue
            if ctx.opset(node) < 7:
                continue
            for pos in (0, 1):
                found = _matmul_feeding(ctx, node.input[pos])
                if found is None or not _broadcasts_to(ctx, node.input[1 - pos], node.input[pos]):
                    continue
                j, mm = found
                gemm = helper.make_node(
                    "Gemm",
                    [mm.input[0], mm.input[1], node.input[1 - pos]],
                    [node.output[0]],
                    name=ctx.fresh_name(f"{mm.name or 'MatMul'}_gemm"),
                )
                ctx.fuse([j], i, gemm)
                changed = True
                break
        return changed


def _matmul_feeding(ctx: GraphContext, name: str) -> tuple[int, NodeProto] | None:
    p = ctx.producer_of(name)
    if p is None or ctx.single_use(name) is None:
        return None
    j, mm = p
    if mm.op_type != "MatMul" or not ctx.is_standard(mm):
        return None
    a, b = (dims_of(ctx.type_of(n)) for n in mm.input)
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    types = _GEMM_TYPES | ({TensorProto.BFLOAT16} if ctx.opset(mm) >= 13 else set())
    if elem_type(ctx.type_of(mm.input[0])) not in types:
        return None
    return j, mm


def _broadcasts_to(ctx: GraphContext, c: str, product: str) -> bool:
    """``c`` broadcasts one way to the product's [M, N] (its dims are 1 or equal, statically)."""
    cd, pd = dims_of(ctx.type_of(c)), dims_of(ctx.type_of(product))
    if cd is None or pd is None or len(cd) > 2 or len(pd) != 2:
        return False
    tail = pd[2 - len(cd) :]
    return all(d == 1 or (isinstance(d, int) and d == t) for d, t in zip(cd, tail))
