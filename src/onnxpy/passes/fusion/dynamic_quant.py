"""Dynamic quantization's chains -> one kernel each.

* ``Mul(Cast(MatMulInteger(a, B, za, zb)), a_scale * b_scale) [+ bias]`` ->
  com.microsoft ``MatMulIntegerToFloat`` (the chain onnxruntime's and onnxpy's quantize_dynamic
  write for every MatMul/Gemm);
* ``DynamicQuantizeLinear(x)`` read by that one kernel only -> ``DynamicQuantizeMatMul``.

Like the QDQ fusions, they run before constant folding.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._pattern import MS, only_reader, standard_node
from onnxpy.passes.fusion._pattern import attribute as _attr

__all__ = ["DynamicMatMulFusion", "DynamicQuantizeMatMulFusion"]


class DynamicMatMulFusion(Pass):
    """``Mul(Cast(MatMulInteger(a, B, za, zb)), scale) [+ bias]`` -> MatMulIntegerToFloat."""

    name = "dynamic_matmul_fusion"
    level = EXTENDED
    requires = frozenset({"MatMulInteger"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, mm in list(ctx.nodes()):
            if i in ctx.removed or mm.op_type != "MatMulInteger" or not ctx.is_standard(mm):
                continue
            b = ctx.constant_value(mm.input[1])
            if b is None or b.ndim != 2:
                continue
            cast = only_reader(ctx, mm.output[0], "Cast")
            if cast is None or _attr(cast[1], "to") != TensorProto.FLOAT:
                continue
            mul = only_reader(ctx, cast[1].output[0], "Mul")
            if mul is None:
                continue
            scales = [x for x in mul[1].input if x != cast[1].output[0]]
            found = _scale_factors(ctx, scales[0] if scales else "", b.shape[1])
            if found is None:
                continue
            a_scale, b_scale = found
            last, out, bias = mul[0], mul[1].output[0], ""
            add = only_reader(ctx, out, "Add")
            if add is not None:
                other = [x for x in add[1].input if x != out]
                bv = ctx.constant_value(other[0]) if other else None
                if bv is not None and bv.dtype == np.float32 and bv.shape == (b.shape[1],):
                    last, out, bias = add[0], add[1].output[0], other[0]
            ins = [mm.input[0], mm.input[1], a_scale, b_scale]
            ins += [
                mm.input[2] if len(mm.input) > 2 else "",
                mm.input[3] if len(mm.input) > 3 else "",
                bias,
            ]
            while ins and not ins[-1]:
                ins.pop()
            new = helper.make_node(
                "MatMulIntegerToFloat",
                ins,
                [out],
                name=ctx.fresh_name(f"{mm.name or 'MatMulInteger'}_to_float"),
                domain=MS,
            )
            ctx.use_domain(MS, 1)
            removed = [k for k in (i, cast[0], mul[0]) if k != last]
            ctx.fuse(removed, last, new)
            changed = True
        return changed


def _scale_factors(ctx: GraphContext, name: str, n: int) -> tuple[str, str] | None:
    """(a_scale, b_scale) names whose product is ``name``: the two inputs of the Mul making it
    (the constant one as b_scale, scalar or [N]), or ``name`` itself when constant (b_scale 1)."""
    if not name:
        return None
    if ctx.constant_value(name) is not None:
        v = ctx.constant_value(name)
        if v.size not in (1, n) or v.ndim > 1:
            return None
        one = ctx.fresh_name(f"{name}_one")
        ctx.add_initializer(numpy_helper.from_array(np.ones((), np.float32), one))
        return one, name
    p = standard_node(ctx, name, "Mul")
    if p is None or len(p[1].input) != 2:
        return None
    x, y = p[1].input
    for a, b in ((x, y), (y, x)):
        bv = ctx.constant_value(b)
        if bv is not None and ctx.constant_value(a) is None and bv.ndim <= 1 and bv.size in (1, n):
            return a, b
    return None


class DynamicQuantizeMatMulFusion(Pass):
    """``DynamicQuantizeLinear(x)`` read by one ``MatMulIntegerToFloat`` only ->
    com.microsoft ``DynamicQuantizeMatMul(x, B, b_scale, b_zero_point, bias)``: the kernel keeps
    the quantized activation as floats for the product instead of writing 8-bit values and
    converting them back (three fewer passes over x). A quantized activation shared by several
    products (BERT's Q, K, V) stays shared."""

    name = "dynamic_quantize_matmul_fusion"
    level = EXTENDED
    requires = frozenset({"DynamicQuantizeLinear"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, dq in list(ctx.nodes()):
            if i in ctx.removed or dq.op_type != "DynamicQuantizeLinear" or not ctx.is_standard(dq):
                continue
            if len(dq.output) != 3 or any(ctx.is_pinned(o) for o in dq.output):
                continue
            readers = {j for o in dq.output for j in ctx.uses(o)}
            if len(readers) != 1:
                continue
            j = readers.pop()
            mif = ctx.graph.node[j]
            if mif.op_type != "MatMulIntegerToFloat" or mif.domain != MS or len(mif.input) < 5:
                continue
            if list(mif.input[0:1]) + [mif.input[2], mif.input[4]] != list(dq.output):
                continue
            extra = list(mif.input[5:7]) + [""] * (7 - len(mif.input))
            if not extra[0] or ctx.constant_value(mif.input[1]) is None:
                continue
            ins = [dq.input[0], mif.input[1], mif.input[3], extra[0], extra[1]]
            while ins and not ins[-1]:
                ins.pop()
            new = helper.make_node(
                "DynamicQuantizeMatMul",
                ins,
                list(mif.output),
                name=ctx.fresh_name(f"{mif.name}_dynamic"),
                domain=MS,
            )
            ctx.fuse([i], j, new)
            changed = True
        return changed
