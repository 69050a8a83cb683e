"""QuantizeLinear/DequantizeLinear pairs around an operator -> one quantized kernel.

A QDQ model says "dequantize, compute in float, quantize"; these rewrites compute the same
thing on the integers directly, so the float tensor between the pairs never exists:

* ``Q(Conv(DQ(x), DQ(W), DQ(B_int32)))`` -> ``QLinearConv(x, ..., W, ..., B)``;
* ``Q(MatMul(DQ(a), DQ(b)))`` -> ``QLinearMatMul``; without the output Q ->
  com.microsoft ``MatMulIntegerToFloat`` (float result);
* ``Q(Gemm(DQ(a), DQ(B), DQ(C)))`` -> com.microsoft ``QGemm`` (float result without the Q);
* ``Q(Add/Mul(DQ(a), DQ(b)))`` -> ``QLinearAdd/QLinearMul``; Sigmoid, LeakyRelu,
  AveragePool, GlobalAveragePool, Softmax and Concat -> their com.microsoft QLinear forms;
* ``Q(op(DQ(x)))`` with equal parameters on both sides, for value-moving ops (MaxPool,
  Reshape, Flatten, Transpose, Squeeze, Unsqueeze) -> ``op(x)``; Relu -> ``Max(x, zero point)``.

(Dynamic quantization's chains: ``dynamic_quant.py``.)

Activations must be quantized per tensor; weights may be per channel along their output axis.
A bias must already be int32 in the input x weight scale (as quantizers write it). These
passes run before constant folding, which would otherwise turn ``DQ(W)`` into a float weight.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._pattern import MS, only_reader, standard_node
from onnxpy.passes.fusion._pattern import attribute as _attr

__all__ = ["QDQFusion", "QLINEAR_UNARY"]

_INT8 = (np.dtype(np.int8), np.dtype(np.uint8))
# Float operators with a com.microsoft quantized twin taking (x, x_scale, x_zp, y_scale, y_zp);
# the quantizer's QOperator writer emits the same ops.
QLINEAR_UNARY = {
    "Sigmoid": "QLinearSigmoid",
    "LeakyRelu": "QLinearLeakyRelu",
    "AveragePool": "QLinearAveragePool",
    "GlobalAveragePool": "QLinearGlobalAveragePool",
    "Softmax": "QLinearSoftmax",
}
_MOVES = frozenset({"MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"})


class _QParams:
    """A DequantizeLinear's (or QuantizeLinear's) data input, scale and zero point."""

    def __init__(self, node: NodeProto, scale: np.ndarray, zero: np.ndarray, axis: int) -> None:
        self.node = node
        self.data = node.input[0]
        self.scale_name, self.zero_name = node.input[1], node.input[2]
        self.scale, self.zero, self.axis = scale, zero, axis

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1

    def same(self, other: _QParams) -> bool:
        return (
            self.scale.shape == other.scale.shape
            and bool(np.all(self.scale == other.scale))
            and self.zero.dtype == other.zero.dtype
            and bool(np.all(self.zero == other.zero))
        )


def _params(ctx: GraphContext, node: NodeProto) -> _QParams | None:
    """Parameters of a plain (no block_size, given zero point) Q/DQ node, int8/uint8."""
    if len(node.input) < 3 or not node.input[2] or _attr(node, "block_size", 0):
        return None
    if _attr(node, "output_dtype", 0):
        return None
    scale, zero = ctx.constant_value(node.input[1]), ctx.constant_value(node.input[2])
    if scale is None or zero is None or zero.dtype not in _INT8 or scale.dtype != np.float32:
        return None
    if scale.ndim > 1 or scale.shape != zero.shape:
        return None
    return _QParams(node, scale, zero, int(_attr(node, "axis", 1)))


def _dq(ctx: GraphContext, name: str, per_tensor: bool = True) -> _QParams | None:
    found = standard_node(ctx, name, "DequantizeLinear")
    if found is None:
        return None
    p = _params(ctx, found[1])
    if p is None or (per_tensor and not p.per_tensor):
        return None
    return p


def _q_after(ctx: GraphContext, name: str) -> tuple[int, _QParams] | None:
    found = only_reader(ctx, name, "QuantizeLinear")
    if found is None or _attr(found[1], "saturate", 1) != 1:
        return None
    p = _params(ctx, found[1])
    return None if p is None or not p.per_tensor else (found[0], p)


def _weight(ctx: GraphContext, name: str, axis: int, rank: int) -> _QParams | None:
    """A constant integer weight's DQ, per tensor or per channel along ``axis``."""
    p = _dq(ctx, name, per_tensor=False)
    if p is None or ctx.constant_value(p.data) is None:
        return None
    w = ctx.constant_value(p.data)
    if w.ndim != rank and rank:
        return None
    if not p.per_tensor and p.axis % w.ndim != axis % w.ndim:
        return None
    return p


def _bias(ctx: GraphContext, name: str, expected_scale: np.ndarray) -> str | None | bool:
    """The int32 bias behind ``DQ(B)`` if its scale is the product's; "" when absent; False
    when present but unusable."""
    if not name:
        return ""
    found = standard_node(ctx, name, "DequantizeLinear")
    if found is None or len(found[1].input) < 2:
        return False
    node = found[1]
    b, s = ctx.constant_value(node.input[0]), ctx.constant_value(node.input[1])
    if b is None or s is None or b.dtype != np.int32:
        return False
    if len(node.input) > 2 and node.input[2]:
        z = ctx.constant_value(node.input[2])
        if z is None or np.any(z != 0):
            return False
    expected = np.broadcast_to(expected_scale, s.shape) if s.size > 1 else expected_scale
    if not np.allclose(s, expected, rtol=1e-5, atol=0):
        return False
    return node.input[0]


class QDQFusion(Pass):
    name = "qdq_fusion"
    level = EXTENDED
    requires = frozenset({"DequantizeLinear"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if i in ctx.removed or not ctx.is_standard(node) or len(node.output) < 1:
                continue
            op = node.op_type
            if op == "Conv":
                changed |= self._conv(ctx, i, node)
            elif op in ("MatMul", "Gemm"):
                changed |= self._product(ctx, i, node)
            elif op in ("Add", "Mul"):
                changed |= self._binary(ctx, i, node)
            elif op in QLINEAR_UNARY:
                changed |= self._unary(ctx, i, node)
            elif op == "Concat":
                changed |= self._concat(ctx, i, node)
            elif op in _MOVES or op == "Relu":
                changed |= self._move(ctx, i, node)
        return changed

    def _replace(self, ctx, i: int, at: int, new: NodeProto) -> bool:
        if new.domain == MS:
            ctx.use_domain(MS, 1)
        ctx.fuse([i] if at != i else [], at, new)
        return True

    def _conv(self, ctx: GraphContext, i: int, node: NodeProto) -> bool:
        x = _dq(ctx, node.input[0])
        w = _weight(ctx, node.input[1], 0, 0) if x is not None else None
        q = _q_after(ctx, node.output[0]) if w is not None else None
        if q is None:
            return False
        bias = _bias(ctx, node.input[2] if len(node.input) > 2 else "", x.scale * w.scale)
        if bias is False:
            return False
        j, y = q
        ins = [x.data, x.scale_name, x.zero_name, w.data, w.scale_name, w.zero_name]
        ins += [y.scale_name, y.zero_name] + ([bias] if bias else [])
        new = helper.make_node(
            "QLinearConv", ins, [y.node.output[0]], name=ctx.fresh_name(f"{node.name}_qlinear")
        )
        new.attribute.extend(node.attribute)
        return self._replace(ctx, i, j, new)

    def _product(self, ctx: GraphContext, i: int, node: NodeProto) -> bool:
        gemm = node.op_type == "Gemm"
        if gemm and (_attr(node, "transA", 0) or len(node.input) < 2):
            return False
        a = _dq(ctx, node.input[0])
        if a is None:
            return False
        trans_b = int(_attr(node, "transB", 0)) if gemm else 0
        b = _weight(ctx, node.input[1], 0 if trans_b else 1, 2)
        if b is None and not gemm:
            b = _dq(ctx, node.input[1])  # two activations
        if b is None:
            return False
        q = _q_after(ctx, node.output[0])
        if gemm:
            return self._gemm(ctx, i, node, a, b, q, trans_b)
        ins = [a.data, a.scale_name, a.zero_name, b.data, b.scale_name, b.zero_name]
        if q is not None:
            j, y = q
            new = helper.make_node(
                "QLinearMatMul",
                ins + [y.scale_name, y.zero_name],
                [y.node.output[0]],
                name=ctx.fresh_name(f"{node.name}_qlinear"),
            )
            return self._replace(ctx, i, j, new)
        if not b.per_tensor and ctx.constant_value(b.data) is None:
            return False
        new = helper.make_node(
            "MatMulIntegerToFloat",
            [a.data, b.data, a.scale_name, b.scale_name, a.zero_name, b.zero_name],
            [node.output[0]],
            name=ctx.fresh_name(f"{node.name}_integer"),
            domain=MS,
        )
        return self._replace(ctx, i, i, new)

    def _gemm(self, ctx, i, node, a: _QParams, b: _QParams, q, trans_b: int) -> bool:
        alpha, beta = float(_attr(node, "alpha", 1.0)), float(_attr(node, "beta", 1.0))
        c = ""
        if len(node.input) > 2 and node.input[2]:
            c = _bias(ctx, node.input[2], a.scale * b.scale)
            if c is False or alpha != 1.0 or beta != 1.0:
                return False
        ins = [a.data, a.scale_name, a.zero_name, b.data, b.scale_name, b.zero_name, c]
        out, at = node.output[0], i
        if q is not None:
            at, y = q
            ins += [y.scale_name, y.zero_name]
            out = y.node.output[0]
        new = helper.make_node(
            "QGemm",
            ins,
            [out],
            name=ctx.fresh_name(f"{node.name}_qgemm"),
            domain=MS,
            alpha=alpha,
            transB=trans_b,
        )
        return self._replace(ctx, i, at, new)

    def _binary(self, ctx: GraphContext, i: int, node: NodeProto) -> bool:
        if len(node.input) != 2:
            return False
        a, b = _dq(ctx, node.input[0]), _dq(ctx, node.input[1])
        q = _q_after(ctx, node.output[0]) if a is not None and b is not None else None
        if q is None or a.zero.dtype != b.zero.dtype or a.zero.dtype != q[1].zero.dtype:
            return False
        j, y = q
        ins = [
            a.data,
            a.scale_name,
            a.zero_name,
            b.data,
            b.scale_name,
            b.zero_name,
            y.scale_name,
            y.zero_name,
        ]
        new = helper.make_node(
            f"QLinear{node.op_type}",
            ins,
            [y.node.output[0]],
            name=ctx.fresh_name(f"{node.name}_qlinear"),
            domain=MS,
        )
        return self._replace(ctx, i, j, new)

    def _unary(self, ctx: GraphContext, i: int, node: NodeProto) -> bool:
        x = _dq(ctx, node.input[0])
        q = _q_after(ctx, node.output[0]) if x is not None else None
        if q is None or x.zero.dtype != q[1].zero.dtype:
            return False
        if node.op_type == "AveragePool" and any(
            int(d) != 1 for d in _attr(node, "dilations", []) or []
        ):
            return False
        j, y = q
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Softmax":
            attrs = {
                "axis": attrs.get("axis", -1 if ctx.opset(node) >= 13 else 1),
                "opset": ctx.opset(node),
            }
        attrs.pop("dilations", None)
        ins = [x.data, x.scale_name, x.zero_name, y.scale_name, y.zero_name]
        new = helper.make_node(
            QLINEAR_UNARY[node.op_type],
            ins,
            [y.node.output[0]],
            name=ctx.fresh_name(f"{node.name}_qlinear"),
            domain=MS,
            **attrs,
        )
        return self._replace(ctx, i, j, new)

    def _concat(self, ctx: GraphContext, i: int, node: NodeProto) -> bool:
        parts = [_dq(ctx, x) for x in node.input]
        q = _q_after(ctx, node.output[0]) if all(p is not None for p in parts) else None
        if q is None or any(p.zero.dtype != q[1].zero.dtype for p in parts):
            return False
        j, y = q
        ins = [y.scale_name, y.zero_name]
        for p in parts:
            ins += [p.data, p.scale_name, p.zero_name]
        new = helper.make_node(
            "QLinearConcat",
            ins,
            [y.node.output[0]],
            name=ctx.fresh_name(f"{node.name}_qlinear"),
            domain=MS,
            axis=int(_attr(node, "axis", 0)),
        )
        return self._replace(ctx, i, j, new)

    def _move(self, ctx: GraphContext, i: int, node: NodeProto) -> bool:
        if len(node.output) != 1:
            return False
        x = _dq(ctx, node.input[0])
        q = _q_after(ctx, node.output[0]) if x is not None else None
        if q is None or not x.same(q[1]):
            return False
        j, y = q
        if node.op_type == "Relu":
            new = helper.make_node(
                "Max",
                [x.data, x.zero_name],
                [y.node.output[0]],
                name=ctx.fresh_name(f"{node.name}_integer"),
            )
        else:
            new = helper.make_node(
                node.op_type,
                [x.data, *node.input[1:]],
                [y.node.output[0]],
                name=ctx.fresh_name(f"{node.name}_integer"),
            )
            new.attribute.extend(node.attribute)
        return self._replace(ctx, i, j, new)
