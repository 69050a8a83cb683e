"""Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear.

Granularity follows the scale's shape: a single value is per-tensor, a 1-D scale is per-axis
along ``axis``, and with ``block_size`` > 0 each scale entry covers ``block_size`` consecutive
elements along ``axis``. Integer targets round half to even and saturate to their range;
float8/float4/float6 targets round to nearest even, float8 clamping out-of-range values to
+/-max when ``saturate`` (else NaN, or inf for E5M2). The quantized products (QLinearMatMul,
QLinearConv, MatMulInteger, ConvInteger) live in ``qlinear.py``.
"""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np

from onnxpy.kernels.intgemm import fast_clip
from onnxpy.kernels.registry import NodeInfo, register
from onnxpy.types import ELEM_TYPE_TO_DTYPE, INTEGER_RANGES

# Float targets that have an out-of-range encoding (NaN/inf) when not saturating.
_FLOAT8 = frozenset(
    np.dtype(t)
    for t in (
        ml_dtypes.float8_e4m3fn,
        ml_dtypes.float8_e4m3fnuz,
        ml_dtypes.float8_e5m2,
        ml_dtypes.float8_e5m2fnuz,
    )
)
# Float targets without inf/NaN: they always saturate.
_SMALL_FLOATS = frozenset(
    np.dtype(t) for t in (ml_dtypes.float4_e2m1fn, ml_dtypes.float6_e2m3fn, ml_dtypes.float6_e3m2fn)
)
_E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)
_HALF_TYPES = frozenset(np.dtype(t) for t in (np.float16, ml_dtypes.bfloat16))


def _f64(a: object) -> np.ndarray:
    return np.asarray(a).astype(np.float64)


def _normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _expand(param: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int) -> np.ndarray:
    """A scale or zero point broadcastable against an input of ``shape``."""
    p = np.asarray(param)
    rank = len(shape)
    if block_size and block_size > 0:
        ax = _normalize_axis(axis, rank)
        if p.ndim != rank:
            raise ValueError(f"blocked quantization needs a scale of rank {rank}, got {p.shape}")
        blocks = -(-shape[ax] // block_size)
        if p.shape[ax] != blocks or any(p.shape[i] != shape[i] for i in range(rank) if i != ax):
            raise ValueError(
                f"scale shape {p.shape} does not match input {shape} with block_size {block_size}"
            )
        return np.repeat(p, block_size, axis=ax).take(np.arange(shape[ax]), axis=ax)
    if p.size == 1:
        return p.reshape(())
    if p.ndim == 1:
        ax = _normalize_axis(axis, rank)
        if p.shape[0] != shape[ax]:
            raise ValueError(f"per-axis scale of length {p.shape[0]} for axis {ax} of {shape}")
        return p.reshape([-1 if i == ax else 1 for i in range(rank)])
    raise ValueError(f"scale of shape {p.shape} needs block_size for input shape {shape}")


def _to_float_type(v: np.ndarray, dtype: np.dtype, saturate: int) -> np.ndarray:
    """Round float64 values to a float8/float4/float6 type (nearest even)."""
    if dtype in _SMALL_FLOATS or (dtype in _FLOAT8 and saturate):
        fmax = float(ml_dtypes.finfo(dtype).max)
        v = np.clip(v, -fmax, fmax)  # NaN stays NaN
    return v.astype(dtype)


def _saturate_int(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    lo, hi = INTEGER_RANGES[dtype]
    v = np.clip(np.nan_to_num(v, nan=0.0), lo, hi)
    return v.astype(np.int64).astype(dtype)


def _precision_quotient(x: np.ndarray, scale: np.ndarray, precision: np.dtype) -> np.ndarray:
    """x / scale as computed in ``precision`` (one correctly rounded division), in float64."""
    if precision.kind == "f" or precision in _HALF_TYPES:
        with np.errstate(all="ignore"):
            xs = x.astype(precision).astype(np.float64)
            ss = scale.astype(precision).astype(np.float64)
            return (xs / ss).astype(precision).astype(np.float64)
    with np.errstate(all="ignore"):
        return x.astype(np.float64) / scale.astype(np.float64)


def _quantize_values(q: np.ndarray, zero_point: np.ndarray, dtype: np.dtype, saturate: int):
    """saturate(round(q) + zp) for integers, convert(q + zp) for float types."""
    if dtype in INTEGER_RANGES:
        return _saturate_int(np.rint(q) + zero_point, dtype)
    return _to_float_type(q + zero_point, dtype, saturate)


def _output_type(output_dtype: int, zero_point: object) -> np.dtype:
    if output_dtype:
        dtype = ELEM_TYPE_TO_DTYPE.get(int(output_dtype))
        if dtype is None or not (
            dtype in INTEGER_RANGES or dtype in _FLOAT8 or dtype in _SMALL_FLOATS
        ):
            raise ValueError(f"unsupported output_dtype {output_dtype}")
        if zero_point is not None and np.asarray(zero_point).dtype != dtype:
            raise ValueError("output_dtype and the zero point's type differ")
        return dtype
    if zero_point is not None:
        return np.asarray(zero_point).dtype
    return np.dtype(np.uint8)


_VERSIONS = (10, 13, 19, 21, 23, 24, 25, 28)


def _constant_8bit(info: NodeInfo) -> tuple | None:
    """(scale, zero point, type) when a Q/DQ node's scale and zero point are constants of the
    common per-tensor 8-bit kind, so a kernel can take them as they are: else None."""
    consts = info.constant_inputs
    if 1 not in consts or (info.num_inputs > 2 and 2 not in consts):
        return None
    return _per_tensor_8bit(np.empty(0, np.float32), consts[1], consts.get(2), 0, 0)


@register("QuantizeLinear", since=_VERSIONS, factory=True)
def quantize_linear_kernel(info: NodeInfo, **attrs):
    """QuantizeLinear; float32 data with constant per-tensor 8-bit parameters takes
    ``_quantize_fast`` directly (no per-call inspection of the parameters)."""
    fast = None if any(attrs.get(k) for k in _WIDE) else _constant_8bit(info)
    scale, zero = info.constant_inputs.get(1), info.constant_inputs.get(2)

    def run(x, y_scale, y_zero_point=None, /):
        if fast is not None and y_scale is scale and y_zero_point is zero:
            x = np.asarray(x)
            if x.dtype == _F32:
                return _quantize_fast(x, *fast)
        return quantize_linear(x, y_scale, y_zero_point, **attrs)

    return run


@register("DequantizeLinear", since=_VERSIONS, factory=True)
def dequantize_linear_kernel(info: NodeInfo, **attrs):
    """DequantizeLinear; 8-bit data with constant per-tensor parameters: two passes with the
    parameters read once."""
    fast = None if any(attrs.get(k) for k in _WIDE) else _constant_8bit(info)
    scale, zero = info.constant_inputs.get(1), info.constant_inputs.get(2)

    def run(x, x_scale, x_zero_point=None, /):
        if fast is not None and x_scale is scale and x_zero_point is zero:
            x = np.asarray(x)
            if x.dtype == fast[2]:
                zp = fast[1]
                y = np.subtract(x, np.float32(zp), dtype=_F32) if zp else x.astype(_F32)
                np.multiply(y, fast[0], out=y)
                return y
        return dequantize_linear(x, x_scale, x_zero_point, **attrs)

    return run


# Attributes that leave the per-tensor 8-bit case (blocked, another output type or precision).
_WIDE = ("block_size", "output_dtype", "precision")
_F32 = np.dtype(np.float32)


def quantize_linear(
    x,
    y_scale,
    y_zero_point=None,
    /,
    *,
    axis=1,
    block_size=0,
    output_dtype=0,
    precision=0,
    saturate=1,
):
    """y = saturate(round(x / y_scale) + y_zero_point)."""
    x = np.asarray(x)
    fast = (
        None if output_dtype else _per_tensor_8bit(x, y_scale, y_zero_point, block_size, precision)
    )
    if fast is not None:
        return _quantize_fast(x, fast[0], fast[1], fast[2])
    dtype = _output_type(output_dtype, y_zero_point)
    scale = np.asarray(y_scale)
    if precision:
        prec = ELEM_TYPE_TO_DTYPE.get(int(precision))
        if prec is None:
            raise ValueError(f"unsupported precision {precision}")
    else:
        prec = np.dtype(np.float32) if scale.dtype == _E8M0 else scale.dtype
    scale = _expand(scale, x.shape, axis, block_size)
    if y_zero_point is None:
        zp = np.zeros((), dtype=np.float64)
    else:
        zp = _f64(_expand(y_zero_point, x.shape, axis, block_size))
    q = _precision_quotient(x, scale, np.dtype(prec))
    return _quantize_values(q, zp, dtype, saturate)


def dequantize_linear(x, x_scale, x_zero_point=None, /, *, axis=1, block_size=0, output_dtype=0):
    """y = (x - x_zero_point) * x_scale, in the output type (the scale's unless given)."""
    x = np.asarray(x)
    if block_size and not output_dtype:
        y = _dequantize_blocks(x, np.asarray(x_scale), x_zero_point, axis, int(block_size))
        if y is not None:
            return y
    if not output_dtype and x.dtype in _EIGHT_BITS and not block_size:
        fast = _per_tensor_8bit(np.empty(0, np.float32), x_scale, x_zero_point, 0, 0)
        if fast is not None and (x_zero_point is None or np.asarray(x_zero_point).dtype == x.dtype):
            scale, zp, _ = fast
            y = np.subtract(x, np.float32(zp), dtype=np.float32) if zp else x.astype(np.float32)
            y *= scale
            return y
    scale = np.asarray(x_scale)
    if output_dtype:
        dtype = ELEM_TYPE_TO_DTYPE.get(int(output_dtype))
        if dtype is None:
            raise ValueError(f"unsupported output_dtype {output_dtype}")
    else:
        dtype = np.dtype(np.float32) if scale.dtype == _E8M0 else scale.dtype
    s = _f64(_expand(scale, x.shape, axis, block_size))
    v = _f64(x)
    if x_zero_point is not None:
        v = v - _f64(_expand(x_zero_point, x.shape, axis, block_size))
    return (v * s).astype(dtype)


_EIGHT_BITS = frozenset({np.dtype(np.int8), np.dtype(np.uint8)})


def _dequantize_blocks(x, scale, zero_point, axis: int, block_size: int):
    """Blocked dequantization of whole blocks in float32, the scale broadcast over each block
    (no expanded copy of the parameters; a weight-only model's weights are made this way at
    session creation). None when a block is partial or the scale is not float32."""
    if scale.dtype != np.float32 or x.dtype.kind not in "iuV" or scale.ndim != x.ndim:
        return None
    ax = _normalize_axis(axis, x.ndim)
    if x.shape[ax] % block_size or scale.shape[ax] * block_size != x.shape[ax]:
        return None
    split = x.shape[:ax] + (scale.shape[ax], block_size) + x.shape[ax + 1 :]
    y = x.reshape(split).astype(np.float32)
    if zero_point is not None:
        y -= np.expand_dims(np.asarray(zero_point).astype(np.float32), ax + 1)
    y *= np.expand_dims(scale, ax + 1)
    return y.reshape(x.shape)


def _per_tensor_8bit(x, scale, zero_point, block_size, precision):
    """(scale as float32, zero point, 8-bit type) for the common case - float32 data, one
    float32 scale, an int8/uint8 zero point - else None."""
    if x.dtype != np.float32 or block_size or precision:
        return None
    s = np.asarray(scale)
    if s.dtype != np.float32 or s.size != 1:
        return None
    if zero_point is None:
        return s.reshape(()), 0.0, np.dtype(np.uint8)
    z = np.asarray(zero_point)
    if z.dtype not in _EIGHT_BITS or z.size != 1:
        return None
    return s.reshape(()), float(z.reshape(())), z.dtype


def _quantize_fast(x: np.ndarray, scale, zero_point: float, dtype: np.dtype) -> np.ndarray:
    """saturate(round(x / scale) + zp) in float32 (one correctly rounded division); the zero
    point is added after rounding (adding it first could round the quotient's fraction), by the
    pass that writes the 8-bit result."""
    lo, hi = INTEGER_RANGES[dtype]
    out = np.empty(x.shape, dtype=dtype)
    with np.errstate(all="ignore"):
        q = np.divide(x, scale)
        np.rint(q, out=q)
        # The sum is NaN where a value is (or where infinities of both signs meet: rechecked).
        if np.isnan(np.add.reduce(q.reshape(-1))):
            q[np.isnan(q)] = -zero_point  # NaN -> 0, as the general path
        fast_clip(q, lo - zero_point, hi - zero_point, out=q)
        np.add(q, np.float32(zero_point), out=out, casting="unsafe")
    return out


_FLOAT32 = struct.Struct("f")


def _f32(v: float) -> float:
    """``v`` rounded to float32 (nearest even), as a Python float: float32 arithmetic on
    float32 operands done in double and rounded once is exact for + - * / (double holds more
    than twice float32's digits), and this is cheaper than NumPy scalars. OverflowError past
    float32's range."""
    return _FLOAT32.unpack(_FLOAT32.pack(v))[0]


def dynamic_range(x: np.ndarray) -> tuple[float, int, bool] | None:
    """DynamicQuantizeLinear's (scale, zero point) for float32 ``x``, and whether any value
    would saturate (so a clip is needed): None when the scale is 0 or not finite (an empty,
    all-zero or NaN/inf input), which the general path handles. Two reductions over the flat
    data; the rest is scalar float32 arithmetic, as the spec computes it."""
    if not x.size:
        return None
    flat = x.reshape(-1)
    mn, mx = float(np.minimum.reduce(flat)), float(np.maximum.reduce(flat))
    lo = mn if mn < 0.0 else 0.0  # NaN: both stay 0, so the scale is 0
    hi = mx if mx > 0.0 else 0.0
    try:
        scale = _f32(_f32(hi - lo) / 255.0)
    except OverflowError:
        return None
    if not 0.0 < scale < float("inf"):
        return None
    zp = min(max(round(_f32(-lo / scale)), 0), 255)  # round(): halves to even, as rint
    # Division and rounding are monotonic, so the extremes' quotients bound every value's.
    saturates = round(_f32(mn / scale)) < -zp or round(_f32(mx / scale)) > 255 - zp
    return scale, zp, saturates


def dynamic_centred(x: np.ndarray) -> tuple[np.ndarray, float, int] | None:
    """``DynamicQuantizeLinear(x) - zero_point`` as float32 (integers in [-255, 255], ready
    for an exact product), with the scale and zero point; None where ``dynamic_range`` is
    None. Two passes (divide, round) after the reductions, three when a value saturates."""
    found = dynamic_range(x)
    if found is None:
        return None
    scale, zp, saturates = found
    q = np.divide(x, scale)
    np.rint(q, out=q)
    if saturates:
        fast_clip(q, np.float32(-zp), np.float32(255 - zp), out=q)
    return q, scale, zp


@register("DynamicQuantizeLinear", since=11)
def dynamic_quantize_linear(x, /):
    """uint8 quantization with scale and zero point from the data range (including 0)."""
    x = np.asarray(x, dtype=np.float32)
    found = dynamic_centred(x)
    if found is not None:
        q, scale, zp = found
        out = np.empty(x.shape, dtype=_UINT8)
        np.add(q, np.float32(zp), out=out, casting="unsafe")
        return out, np.array(scale, dtype=np.float32), np.array(zp, dtype=np.uint8)
    # Empty, all zeros, or NaN/inf in the data: the scale is 0 or not finite.
    zero = np.float32(0)
    lo = min(zero, x.min()) if x.size else zero
    hi = max(zero, x.max()) if x.size else zero
    scale = np.float32((hi - lo) / np.float32(255))
    if scale == 0:
        return np.zeros(x.shape, np.uint8), np.array(scale), np.array(0, dtype=np.uint8)
    zp = min(max(round(float(-lo / scale)), 0), 255)
    y = _quantize_fast(x, scale, float(zp), _UINT8)
    return y, np.array(scale, dtype=np.float32), np.array(zp, dtype=np.uint8)


_UINT8 = np.dtype(np.uint8)
