"""Type conversion: Cast, CastLike and BitCast.

Rules (from the Cast specification):
- float -> float: IEEE rounding to nearest even, +/-inf when out of range;
- integer -> integer: higher bits discarded (two's complement wrap), also for int4/int2;
- float -> integer: truncation toward zero. Out of range is undefined by the spec; for
  int4/uint4/int2/uint2 onnxpy keeps the low bits of the truncated value (two's complement
  wrap, the spec's rule for integer -> integer), and NaN/inf give 0: onnxruntime returns the
  same for every integral value (ml_dtypes < 0.7 did too; 0.7 returns 0 instead);
- anything -> bool: zero is False, everything else (NaN included) True;
- float8 E4M3FN/E4M3FNUZ/E5M2/E5M2FNUZ: round to nearest even; ``saturate=1`` clamps
  out-of-range values and infinities to +/-max, ``saturate=0`` gives NaN (or inf for E5M2);
- float8 E8M0 (a power of two): ``round_mode`` up/down/nearest, saturating to its range;
- float4 E2M1 and float6 have no inf/NaN and always saturate;
- strings parse plain/scientific numbers and case-insensitive INF/+INF/-INF/NaN; floats are
  written with 8 significant digits ("%.8g": "314.15927", "1e-07", "3"), as onnxruntime does,
  and NaN/INF/-INF; bool as "1"/"0".
"""

from __future__ import annotations

from collections.abc import Callable

import ml_dtypes
import numpy as np
from onnx import TensorProto

from onnxpy import errors
from onnxpy.kernels.registry import NodeInfo, register
from onnxpy.types import ELEM_TYPE_TO_DTYPE

__all__ = ["cast_array", "target_dtype"]

_FLOAT8 = frozenset(
    np.dtype(t)
    for t in (
        ml_dtypes.float8_e4m3fn,
        ml_dtypes.float8_e4m3fnuz,
        ml_dtypes.float8_e5m2,
        ml_dtypes.float8_e5m2fnuz,
    )
)
_E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)
# Sub-byte integers: (bits, signed). ml_dtypes stores one per byte, as the code in the low bits.
_SUB_INTS = {
    np.dtype(ml_dtypes.int4): (4, True),
    np.dtype(ml_dtypes.uint4): (4, False),
    np.dtype(ml_dtypes.int2): (2, True),
    np.dtype(ml_dtypes.uint2): (2, False),
}
_BITS = {
    **{d: b for d, (b, _) in _SUB_INTS.items()},
    np.dtype(ml_dtypes.float4_e2m1fn): 4,
    np.dtype(ml_dtypes.float6_e2m3fn): 6,
    np.dtype(ml_dtypes.float6_e3m2fn): 6,
}
_STRING = np.dtype(object)


def target_dtype(to: int | str | bytes) -> np.dtype:
    """NumPy dtype of a ``to`` attribute: an element type, or its name (Cast opset 1)."""
    if isinstance(to, bytes):
        to = to.decode("ascii", errors="replace")
    if isinstance(to, str):
        try:
            to = TensorProto.DataType.Value(to.strip().upper())
        except ValueError:
            raise errors.NotImplemented(f"unknown element type name '{to}'") from None
    dtype = ELEM_TYPE_TO_DTYPE.get(int(to))
    if dtype is None:
        raise errors.NotImplemented(f"casting to element type {to} is not supported")
    return dtype


def _native(x: np.ndarray) -> np.ndarray:
    """x in a NumPy-native dtype holding every value exactly (ml_dtypes -> int8/uint8/float32)."""
    if x.dtype.kind != "V":
        return x
    sub = _SUB_INTS.get(x.dtype)
    if sub is not None:
        return x.astype(np.int8 if sub[1] else np.uint8)
    return x.astype(np.float32)


def _as_float(v: np.ndarray) -> np.ndarray:
    """Floating values of ``v`` (float16 widened: ml_dtypes rounds best from float32/64)."""
    if v.dtype.kind == "f":
        return v.astype(np.float32) if v.dtype == np.float16 else v
    return v.astype(np.float64)


# -- targets -------------------------------------------------------------------------------------


def _to_float8(v: np.ndarray, to: np.dtype, saturate: int) -> np.ndarray:
    f = _as_float(v)
    fmax = float(ml_dtypes.finfo(to).max)
    if saturate:
        return np.clip(f, -fmax, fmax).astype(to)
    # Values that round (to nearest even) down to max are in range; the rest overflow,
    # which the conversion turns into NaN (inf for E5M2).
    exp = int(np.floor(np.log2(fmax)))
    half_ulp = 2.0 ** (exp - ml_dtypes.finfo(to).nmant - 1)
    max_is_even = int(np.array(fmax, dtype=to).view(np.uint8)) & 1 == 0
    a = np.abs(f)
    edge = (a > fmax) & ((a < fmax + half_ulp) | ((a == fmax + half_ulp) & max_is_even))
    if np.any(edge):
        f = np.where(edge, np.copysign(fmax, f), f)
    return f.astype(to)


def _to_e8m0(v: np.ndarray, saturate: int, round_mode: str) -> np.ndarray:
    """A power of two 2^k, k in [-127, 127] stored as k + 127; code 255 is NaN."""
    if round_mode not in ("up", "down", "nearest"):
        raise ValueError(f"round_mode must be 'up', 'down' or 'nearest', got {round_mode!r}")
    f = np.abs(v.astype(np.float64))  # negative input is undefined: use the magnitude
    with np.errstate(all="ignore"):
        m, e = np.frexp(f)  # f = m * 2^e, m in [0.5, 1)
    r = 2.0 * m  # f = r * 2^(e-1), r in [1, 2)
    k = e.astype(np.int64) - 1
    if round_mode == "up":
        k = k + (r > 1.0)
    elif round_mode == "nearest":
        k = k + (r >= 1.5)
    code = k + 127
    too_small = (f == 0) | (code < 0)
    too_big = np.isinf(f) | (code > 254)
    code = np.where(too_small, 0 if saturate else 255, code)
    code = np.where(too_big, 254 if saturate else 255, code)
    code = np.where(np.isnan(f), 255, code)
    return code.astype(np.uint8).view(_E8M0)


def _to_sub_int(v: np.ndarray, to: np.dtype) -> np.ndarray:
    """Truncate floats, then keep the low bits (two's complement for the signed types)."""
    bits, _ = _SUB_INTS[to]
    if v.dtype.kind == "f":
        with np.errstate(all="ignore"):
            v = np.trunc(np.where(np.isfinite(v), v, 0)).astype(np.int64)
    code = v.astype(np.int64) & ((1 << bits) - 1)
    return code.astype(np.uint8).view(to)


def _to_numeric(v: np.ndarray, to: np.dtype, saturate: int, round_mode: str) -> np.ndarray:
    """Cast a NumPy-native array ``v`` to any non-string type."""
    if to == np.bool_:
        return np.asarray(v != 0)
    if to in _FLOAT8:
        return _to_float8(v, to, saturate)
    if to == _E8M0:
        return _to_e8m0(v, saturate, round_mode)
    if to in _SUB_INTS:
        return _to_sub_int(v, to)
    if to.kind == "V":  # bfloat16, float4, float6: rounding to nearest even, saturating
        return _as_float(v).astype(to)
    with np.errstate(all="ignore"):
        return v.astype(to)


# -- strings -------------------------------------------------------------------------------------

_SPECIAL = {"inf": np.inf, "+inf": np.inf, "-inf": -np.inf, "nan": np.nan}


def _text(s: object) -> str:
    return s.decode("utf-8") if isinstance(s, bytes) else str(s)


def _parse_float(s: str) -> float:
    t = s.strip()
    special = _SPECIAL.get(t.lower())
    if special is not None:
        return special
    if t.lower() in ("true", "false"):
        return 1.0 if t.lower() == "true" else 0.0
    return float(t)


def _parse_int(s: str) -> int:
    t = s.strip()
    try:
        return int(t)
    except ValueError:
        f = _parse_float(t)
        return int(f) if np.isfinite(f) else 0


def _from_strings(x: np.ndarray, to: np.dtype, saturate: int, round_mode: str) -> np.ndarray:
    texts = [_text(s) for s in x.ravel()]
    try:
        if to.kind in "iu":
            bits = to.itemsize * 8
            ints = np.array([_parse_int(t) for t in texts], dtype=object)
            if to.kind == "i":
                ints = (ints + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
            else:
                ints = ints % (1 << bits)
            return ints.astype(to).reshape(x.shape)
        if to in _SUB_INTS:
            values = np.array([_parse_int(t) & 0xFF for t in texts], dtype=np.int64)
        else:
            values = np.array([_parse_float(t) for t in texts], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"cannot parse a string as a number: {e}") from None
    return _to_numeric(values.reshape(x.shape), to, saturate, round_mode)


def _format(value: np.generic) -> str:
    if isinstance(value, np.bool_):
        return "1" if value else "0"
    if isinstance(value, np.floating):
        if np.isnan(value):
            return "NaN"
        if np.isinf(value):
            return "INF" if value > 0 else "-INF"
        return f"{float(value):.8g}"
    return str(value)


def _to_strings(x: np.ndarray) -> np.ndarray:
    v = _native(x)
    out = np.empty(v.shape, dtype=object)
    out.ravel()[:] = [_format(item) for item in v.ravel()] if v.size else []
    return out


# -- kernels -------------------------------------------------------------------------------------


def cast_array(x: object, to: np.dtype, saturate: int = 1, round_mode: str = "up") -> np.ndarray:
    """``x`` converted to ``to`` following the Cast rules; never a view of ``x``."""
    x = np.asarray(x)
    to = np.dtype(to)
    if x.dtype.kind in "US":
        x = x.astype(object)
    if to == _STRING:
        return x.copy() if x.dtype == _STRING else _to_strings(x)
    if x.dtype == _STRING:
        return _from_strings(x, to, saturate, round_mode)
    if x.dtype == to:
        return x.copy()
    return _to_numeric(_native(x), to, saturate, round_mode)


@register("Cast", since=(1, 6, 9, 13, 19, 21, 23, 24, 25, 28), factory=True)
def cast(
    info: NodeInfo, *, to=None, saturate=1, round_mode="up"
) -> Callable[[np.ndarray], np.ndarray]:
    """Resolve the target type once per node."""
    if to is None:
        raise ValueError("Cast needs the 'to' attribute")
    dtype = target_dtype(to)
    if round_mode not in ("up", "down", "nearest"):
        raise ValueError(f"round_mode must be 'up', 'down' or 'nearest', got {round_mode!r}")

    def run(x, /):
        return cast_array(x, dtype, saturate, round_mode)

    return run


@register("CastLike", since=(15, 19, 21, 23, 24, 25))
def cast_like(x, target_type, /, *, saturate=1, round_mode="up"):
    """Cast ``x`` to the element type of ``target_type``."""
    dtype = np.asarray(target_type).dtype
    if dtype.kind in "US":
        dtype = _STRING
    return cast_array(x, dtype, saturate, round_mode)


def _bits(dtype: np.dtype) -> int:
    return _BITS.get(dtype, dtype.itemsize * 8)


@register("BitCast", since=26, factory=True)
def bitcast(info: NodeInfo, *, to=None) -> Callable[[np.ndarray], np.ndarray]:
    """Reinterpret the bits (little endian) as another type of the same width."""
    if to is None:
        raise ValueError("BitCast needs the 'to' attribute")
    dtype = target_dtype(to)
    if dtype == _STRING:
        raise errors.NotImplemented("BitCast does not support strings")

    def run(x, /):
        x = np.asarray(x)
        if x.dtype == _STRING:
            raise TypeError("BitCast does not support strings")
        if _bits(x.dtype) != _bits(dtype):
            raise ValueError(
                f"BitCast: {x.dtype} ({_bits(x.dtype)} bits) and {dtype} ({_bits(dtype)} bits) "
                "differ in width"
            )
        if x.dtype in _BITS:  # one code per byte, in the low bits
            codes = x.view(np.uint8) & ((1 << _bits(x.dtype)) - 1)
            return codes.view(dtype)
        raw = np.array(x, copy=True, order="C")  # native order: little endian here
        if dtype == np.bool_:
            return raw.view(np.uint8) != 0
        return raw.view(dtype)

    return run
