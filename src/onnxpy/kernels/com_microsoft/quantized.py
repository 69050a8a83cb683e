"""com.microsoft quantized operators, as onnxruntime's quantizer writes them (QOperator format,
dynamic quantization, weight-only MatMulNBits), each written from its contrib-op contract:

* QuantizeLinear / DequantizeLinear: the standard operators' meaning under the contrib domain;
* QLinearAdd, QLinearMul: dequantize both operands, add or multiply, quantize to C's parameters;
* QLinearSigmoid, QLinearLeakyRelu: a 256-entry table per node for 8-bit inputs (exact: every
  input value's result is precomputed once);
* QLinearAveragePool, QLinearGlobalAveragePool (``channels_last``), QLinearSoftmax,
  QLinearConcat: dequantize, compute in float32, quantize;
* QGemm: ``alpha * ((A' - za)(B' - zb) + C) * sa * sb`` (C: int32, in the product's scale),
  quantized to y's parameters or returned as float when y has none;
* MatMulIntegerToFloat, DynamicQuantizeMatMul: the integer product rescaled to float32, plus bias;
* MatMulNBits: packed 2/4/8-bit blocked weights, dequantized once to a float32 [K, N] matrix at
  session creation so each run is one float GEMM.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxpy.errors import NotImplemented as NotSupported
from onnxpy.kernels.ai_onnx.activation import leaky_relu, sigmoid, softmax, softmax_legacy
from onnxpy.kernels.ai_onnx.pool import average_pool
from onnxpy.kernels.ai_onnx.qlinear import (
    ConstantCache,
    baked_zero,
    input_dtype,
    integer_product_rows,
)
from onnxpy.kernels.ai_onnx.quantize import (
    dequantize_linear,
    dynamic_centred,
    dynamic_quantize_linear,
    quantize_linear,
)
from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.kernels.intgemm import Requantizer, integer_range, requantize
from onnxpy.kernels.registry import NodeInfo, register

MS = "com.microsoft"
_F32 = np.dtype(np.float32)


def _scalar(v: object) -> float:
    a = v if type(v) is np.ndarray else np.asarray(v)
    if a.size != 1:
        raise ValueError(f"expected a scalar, got shape {a.shape}")
    return a.item()


def _zp(v: object) -> float:
    return 0.0 if v is None else _scalar(v)


def _dequantized(x: object, scale: object, zero_point: object) -> np.ndarray:
    """(x - zp) * scale in float32 (per-tensor parameters)."""
    x = np.asarray(x)
    y = x.astype(np.float32)
    zp = _zp(zero_point)
    if zp:
        y -= np.float32(zp)
    y *= np.float32(_scalar(scale))
    return y


def _quantized(y: np.ndarray, scale: object, zero_point: object, dtype: np.dtype) -> np.ndarray:
    """saturate(round(y / scale) + zp) in ``dtype``; ``y`` (a fresh float array) is reused."""
    y = np.asarray(y, dtype=np.float32)
    return requantize(y, None, np.float32(1.0 / _scalar(scale)), _zp(zero_point), dtype)


def _out_type(zero_point: object, fallback: np.dtype) -> np.dtype:
    return fallback if zero_point is None else np.asarray(zero_point).dtype


@register("QuantizeLinear", since=1, domain=MS)
def ms_quantize_linear(x, y_scale, y_zero_point=None, /, *, axis=1):
    return quantize_linear(x, y_scale, y_zero_point, axis=axis)


@register("DequantizeLinear", since=1, domain=MS)
def ms_dequantize_linear(x, x_scale, x_zero_point=None, /, *, axis=1):
    return dequantize_linear(x, x_scale, x_zero_point, axis=axis)


# -- elementwise ---------------------------------------------------------------------------------


def _binary(op: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def run(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point=None, /):
        dtype = _out_type(c_zero_point, np.asarray(a).dtype)
        y = op(_dequantized(a, a_scale, a_zero_point), _dequantized(b, b_scale, b_zero_point))
        return _quantized(y, c_scale, c_zero_point, dtype)

    return run


def qlinear_add(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point=None, /):
    """``quantize(dequantize(a) + dequantize(b))`` with the scales folded: ``rint(a * ka + b * kb
    + k)`` in float32, k holding both zero points' shares (seven passes)."""
    a, b = np.asarray(a), np.asarray(b)
    dtype = _out_type(c_zero_point, a.dtype)
    sc = _scalar(c_scale)
    ka, kb = _scalar(a_scale) / sc, _scalar(b_scale) / sc
    shift = -_zp(a_zero_point) * ka - _zp(b_zero_point) * kb
    shape = np.broadcast_shapes(a.shape, b.shape)
    y = np.empty(shape, dtype=np.float32)
    np.multiply(a, np.float32(ka), out=y, casting="unsafe")
    t = np.multiply(b, np.float32(kb), dtype=np.float32)
    y += t
    return Requantizer(shift, 1.0, _zp(c_zero_point), dtype)(y)


register("QLinearAdd", since=1, domain=MS, fresh=True)(qlinear_add)
register("QLinearMul", since=1, domain=MS, fresh=True)(_binary(np.multiply))


def _table_kernel(fn: Callable[[np.ndarray], np.ndarray]):
    """A unary quantized op: for 8-bit inputs with constant parameters, a 256-entry table."""

    def build(info: NodeInfo, **attrs):
        tables: dict[tuple, np.ndarray] = {}

        def run(x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None, /):
            x = np.asarray(x)
            dtype = _out_type(y_zero_point, x.dtype)
            params = (_scalar(x_scale), _zp(x_zero_point), _scalar(y_scale), _zp(y_zero_point))
            if x.dtype.itemsize != 1:
                y = fn(_dequantized(x, x_scale, x_zero_point), **attrs)
                return _quantized(y, y_scale, y_zero_point, dtype)
            key = (x.dtype, dtype, *params)
            table = tables.get(key)
            if table is None:
                lo, hi = integer_range(x.dtype)
                values = np.arange(lo, hi + 1).astype(x.dtype)
                y = fn(_dequantized(values, x_scale, x_zero_point), **attrs)
                table = tables[key] = _quantized(y, y_scale, y_zero_point, dtype)
            lo = integer_range(x.dtype)[0]
            index = x.view(np.uint8) if lo == 0 else (x.astype(np.int16) - lo)
            return table[index]

        return run

    return build


def _leaky(x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    return leaky_relu(x, alpha=alpha)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return sigmoid(x)


_leaky_build = _table_kernel(_leaky)
_sigmoid_build = _table_kernel(_sigmoid)


@register("QLinearLeakyRelu", since=1, domain=MS, factory=True, fresh=True)
def qlinear_leaky_relu(info: NodeInfo, *, alpha=0.01):
    return _leaky_build(info, alpha=float(alpha))


@register("QLinearSigmoid", since=1, domain=MS, factory=True, fresh=True)
def qlinear_sigmoid(info: NodeInfo):
    return _sigmoid_build(info)


# -- pooling, softmax, concat --------------------------------------------------------------------


def _to_channels_first(x: np.ndarray, channels_last: int) -> np.ndarray:
    return np.moveaxis(x, -1, 1) if channels_last else x


def _from_channels_first(y: np.ndarray, channels_last: int) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(y, 1, -1)) if channels_last else y


@register("QLinearGlobalAveragePool", since=1, domain=MS, fresh=True)
def qlinear_global_average_pool(
    x, x_scale, x_zero_point, y_scale, y_zero_point, /, *, channels_last=0
):
    """Mean over the spatial axes: the integer sum is exact, then one rescale."""
    x = np.asarray(x)
    dtype = _out_type(y_zero_point, x.dtype)
    axes = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    count = int(np.prod([x.shape[a] for a in axes]))
    total = x.sum(axis=axes, keepdims=True, dtype=np.float64)
    mult = _scalar(x_scale) / (_scalar(y_scale) * count)
    return requantize(total, -count * _zp(x_zero_point), mult, _zp(y_zero_point), dtype)


@register("QLinearAveragePool", since=1, domain=MS, fresh=True)
def qlinear_average_pool(
    x,
    x_scale,
    x_zero_point,
    y_scale,
    y_zero_point=None,
    /,
    *,
    auto_pad="NOTSET",
    ceil_mode=0,
    channels_last=0,
    count_include_pad=0,
    kernel_shape=None,
    pads=None,
    strides=None,
):
    x = np.asarray(x)
    dtype = _out_type(y_zero_point, x.dtype)
    xf = _to_channels_first(_dequantized(x, x_scale, x_zero_point), channels_last)
    y = average_pool(
        np.ascontiguousarray(xf),
        auto_pad=auto_pad,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        kernel_shape=kernel_shape,
        pads=pads,
        strides=strides,
    )
    return _from_channels_first(_quantized(y, y_scale, y_zero_point, dtype), channels_last)


@register("QLinearSoftmax", since=1, domain=MS, fresh=True)
def qlinear_softmax(x, x_scale, x_zero_point, y_scale, y_zero_point, /, *, axis=-1, opset=None):
    """Softmax of the dequantized input (opset < 13: over the input coerced to 2-D at axis)."""
    if opset is None:
        raise ValueError("QLinearSoftmax needs the 'opset' attribute")
    x = np.asarray(x)
    xf = _dequantized(x, x_scale, x_zero_point)
    y = softmax(xf, axis=axis) if int(opset) >= 13 else softmax_legacy(xf, axis=axis)
    return _quantized(y, y_scale, y_zero_point, np.asarray(y_zero_point).dtype)


@register("QLinearConcat", since=1, domain=MS, fresh=True)
def qlinear_concat(y_scale, y_zero_point, *inputs, axis=None):
    """Each (tensor, scale, zero point) triple requantized to y's parameters, then joined."""
    if axis is None:
        raise ValueError("QLinearConcat needs the 'axis' attribute")
    if len(inputs) % 3:
        raise ValueError("QLinearConcat takes (tensor, scale, zero point) triples")
    dtype = np.asarray(y_zero_point).dtype
    parts = []
    for i in range(0, len(inputs), 3):
        x, s, z = inputs[i : i + 3]
        parts.append(_quantized(_dequantized(x, s, z), y_scale, y_zero_point, dtype))
    return np.concatenate(parts, axis=int(axis))


# -- integer matrix products ---------------------------------------------------------------------


def _row_product(info: NodeInfo, b_pos: int, zp_pos: int):
    b = info.constant_inputs.get(b_pos)
    if (
        b is None
        or b.ndim != 2
        or (zp_pos < info.num_inputs and zp_pos not in info.constant_inputs)
    ):
        return None
    return integer_product_rows(b, info.constant_inputs.get(zp_pos), input_dtype(info, 0))


def _general_product(a, za, b, zb) -> np.ndarray:
    """(a - za) @ (b - zb) in float64 (exact), for a weight that is not constant."""
    bz = 0.0 if zb is None else np.asarray(zb, dtype=np.float64).reshape(-1)
    return np.matmul(np.asarray(a, dtype=np.float64) - za, np.asarray(b, dtype=np.float64) - bz)


def _product(fixed, a, za: float, b, zb) -> tuple[np.ndarray, np.ndarray | float]:
    if fixed is not None:
        return fixed(np.asarray(a), za)
    return _general_product(a, za, b, zb), 0.0


@register("QGemm", since=1, domain=MS, factory=True, fresh=True)
def qgemm(info: NodeInfo, *, alpha=1.0, transA=0, transB=0):
    """alpha * ((A' - za)(B' - zb) + C) * sa * sb, quantized to y (or float): C is an int32
    bias in the product's scale, and alpha scales it too."""
    b = info.constant_inputs.get(3)
    fixed = None
    if b is not None and b.ndim == 2 and 5 in info.constant_inputs:
        a_type = input_dtype(info, 0)
        bake = baked_zero(info, 2, 6)
        fixed = integer_product_rows(b.T if transB else b, info.constant_inputs[5], a_type, bake)
    cache = ConstantCache(info, (1, 2, 4, 6, 7, 8)[: max(0, info.num_inputs - 3)])

    za_model = _zp(info.constant_inputs[2]) if 2 in info.constant_inputs else None

    def run(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c=None, y_scale=None, y_zp=None, /):
        a = np.asarray(a)
        if transA:
            a = a.T
        args = (a_scale, a_zero_point, b_scale, c, y_scale, y_zp)
        if fixed is not None and za_model is not None and cache.holds(args):
            acc, term = fixed(a, za_model)  # the model's constants: a made stage
            stage = cache.known(term, a.dtype)
            if stage is not None:
                return stage(acc)
        bb = np.asarray(b).T if (transB and fixed is None) else b
        model_zp = za_model is not None and a_zero_point is info.constant_inputs[2]
        za = za_model if model_zp else _zp(a_zero_point)
        acc, term = _product(fixed, a, za, bb, b_zero_point)
        out_dtype = a.dtype

        def make():
            scale = alpha * _scalar(a_scale) * np.asarray(b_scale, dtype=np.float64).reshape(-1)
            offset = term if c is None else term + np.asarray(c, dtype=np.float64)
            if y_scale is None:
                return _FloatOutput(offset, scale, None)
            dtype = _out_type(y_zp, out_dtype)
            return Requantizer(offset, scale / _scalar(y_scale), _zp(y_zp), dtype)

        return cache.get(args, a.dtype, make, term)(acc)

    return run


class _FloatOutput:
    """``(acc + offset) * scale + bias`` as float32, folded to ``acc * scale + add``."""

    def __init__(self, offset, scale, bias) -> None:
        s = np.asarray(scale, dtype=np.float64)
        add = np.asarray(offset, dtype=np.float64) * s
        if bias is not None:
            add = add + np.asarray(bias, dtype=np.float64)
        self.scale = s.astype(np.float32)
        self.add = np.asarray(add, dtype=np.float32)

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        y = acc if acc.dtype == np.float32 else np.empty(acc.shape, dtype=np.float32)
        np.multiply(acc, self.scale, out=y, casting="unsafe")
        np.add(y, self.add, out=y)
        return y


@register("MatMulIntegerToFloat", since=1, domain=MS, factory=True, fresh=True)
def matmul_integer_to_float(info: NodeInfo):
    """(A - za)(B - zb) * a_scale * b_scale + bias, as float32."""
    fixed = _row_product(info, 1, 5)

    def run(a, b, a_scale, b_scale, a_zero_point=None, b_zero_point=None, bias=None, /):
        acc, term = _product(fixed, a, _zp(a_zero_point), b, b_zero_point)
        scale = _scalar(a_scale) * np.asarray(b_scale, dtype=np.float64).reshape(-1)
        return _FloatOutput(term, scale, bias)(acc)

    return run


@register("DynamicQuantizeMatMul", since=1, domain=MS, factory=True, fresh=True)
def dynamic_quantize_matmul(info: NodeInfo):
    """A quantized to uint8 from its own range (DynamicQuantizeLinear), then the integer
    product rescaled to float32, plus bias."""
    fixed = _row_product(info, 1, 3)
    scales = _ColumnScales(info.constant_inputs.get(2))

    def run(a, b, b_scale, b_zero_point=None, bias=None, /):
        a = np.asarray(a)
        if fixed is not None and a.dtype == _F32:
            # DynamicQuantizeLinear's integers minus their zero point, kept as floats for the
            # product (exactly quantize(a) - zp).
            found = dynamic_centred(a)
            if found is not None:
                q, scale, _ = found
                acc = fixed.with_zero_point_removed(q)
                y = acc if acc.dtype == _F32 else np.empty(acc.shape, dtype=_F32)
                np.multiply(acc, scales.times(b_scale, scale), out=y, casting="unsafe")
                if bias is not None:
                    np.add(y, bias, out=y)
                return y
        aq, a_scale, a_zp = dynamic_quantize_linear(a)
        acc, term = _product(fixed, aq, float(a_zp), b, b_zero_point)
        scale = float(a_scale) * np.asarray(b_scale, dtype=np.float64).reshape(-1)
        return _FloatOutput(term, scale, bias)(acc)

    return run


class _ColumnScales:
    """``a_scale * b_scale`` (per tensor or per output column) as float32, with a constant
    ``b_scale`` converted once: one small multiply a call."""

    def __init__(self, constant: np.ndarray | None) -> None:
        self.constant = constant
        self.f32 = None if constant is None else np.asarray(constant, _F32).reshape(-1)

    def times(self, b_scale, a_scale: float) -> np.ndarray:
        if b_scale is self.constant and self.f32 is not None:
            return np.multiply(self.f32, a_scale)
        s = float(a_scale) * np.asarray(b_scale, dtype=np.float64).reshape(-1)
        return s.astype(_F32)


# -- MatMulNBits ---------------------------------------------------------------------------------


def _unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Little-end-first ``bits``-wide unsigned fields of uint8 ``packed`` along its last axis,
    the first ``count`` of them."""
    per_byte = 8 // bits
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    fields = (packed[..., None] >> shifts) & np.uint8((1 << bits) - 1)
    return fields.reshape(*packed.shape[:-1], -1)[..., :count]


def nbits_weight(b, scales, zero_points, *, K: int, N: int, bits: int, block_size: int):
    """The float32 [K, N] matrix a MatMulNBits weight stands for."""
    if bits not in (2, 4, 8):
        raise ValueError(f"MatMulNBits supports bits 2, 4 and 8, got {bits}")
    blocks = -(-K // block_size)
    q = _unpack(np.asarray(b, dtype=np.uint8).reshape(N, blocks, -1), bits, block_size)
    s = np.asarray(scales, dtype=np.float32).reshape(N, blocks, 1)
    if zero_points is None:
        z = np.float32(1 << (bits - 1))
    else:
        zp = np.asarray(zero_points)
        if zp.dtype == np.uint8:
            z = _unpack(zp.reshape(N, -1), bits, blocks).astype(np.float32)
        else:
            z = zp.astype(np.float32)
        z = z.reshape(N, blocks, 1)
    w = (q.astype(np.float32) - z) * s  # [N, blocks, block_size]
    return np.ascontiguousarray(w.reshape(N, -1)[:, :K].T)


@register("MatMulNBits", since=1, domain=MS, factory=True, fresh=True)
def matmul_nbits(info: NodeInfo, *, K=None, N=None, accuracy_level=0, bits=4, block_size=None):
    """A @ dequantize(B) (+ bias); a constant B is dequantized once, here."""
    if K is None or N is None or block_size is None:
        raise ValueError("MatMulNBits needs the K, N and block_size attributes")
    if info.num_inputs > 4 and info.constant_inputs.get(4) is not None:
        raise NotSupported("MatMulNBits with g_idx (act-order) is not supported")
    const = info.constant_inputs
    attrs = dict(K=int(K), N=int(N), bits=int(bits), block_size=int(block_size))
    fixed = None
    if 1 in const and 2 in const and (info.num_inputs < 4 or 3 in const):
        fixed = nbits_weight(const[1], const[2], const.get(3), **attrs)

    def run(a, b, scales, zero_points=None, g_idx=None, bias=None, /):
        w = fixed if fixed is not None else nbits_weight(b, scales, zero_points, **attrs)
        a = np.asarray(a)
        af = a.astype(np.float32, copy=False)
        if af.ndim > 2 and af.flags.c_contiguous:
            y = blas_matmul(af.reshape(-1, af.shape[-1]), w).reshape(*af.shape[:-1], w.shape[1])
        else:
            y = blas_matmul(af, w)
        if bias is not None:
            y += np.asarray(bias, dtype=np.float32)
        return y.astype(a.dtype, copy=False)

    return run
