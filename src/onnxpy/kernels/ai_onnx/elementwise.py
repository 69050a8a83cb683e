"""Element-wise math, logic and comparison operators of the default domain.

Binary operators of opsets 1-6 carry the legacy ``broadcast``/``axis`` attributes: without
``broadcast=1`` both shapes must match; with it B is aligned with A from ``axis`` (or by suffix).
From opset 7 on, NumPy-style multidirectional broadcasting applies.
Low-precision float types without NumPy math loops (bfloat16, float8...) are computed in
float32 and rounded back, so every result keeps the input's element type.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import ml_dtypes
import numpy as np

from onnxpy.kernels.registry import register
from onnxpy.kernels.scratch import scratch

__all__ = [
    "erf",
    "erf_float32",
    "gelu_float32",
    "as_compute",
    "legacy_broadcast",
    "unary_kernel",
    "unary_in_place",
]

# ml_dtypes floats: computed in float32 and rounded back to their own type.
_EXTENDED_FLOATS = frozenset(
    np.dtype(t)
    for t in (
        ml_dtypes.bfloat16,
        ml_dtypes.float8_e4m3fn,
        ml_dtypes.float8_e4m3fnuz,
        ml_dtypes.float8_e5m2,
        ml_dtypes.float8_e5m2fnuz,
        ml_dtypes.float8_e8m0fnu,
        ml_dtypes.float4_e2m1fn,
        ml_dtypes.float6_e2m3fn,
        ml_dtypes.float6_e3m2fn,
    )
)


def as_compute(x: np.ndarray) -> np.ndarray:
    """``x`` in a dtype NumPy computes with natively (float32 for ml_dtypes floats)."""
    x = np.asarray(x)
    if x.dtype in _EXTENDED_FLOATS:
        return x.astype(np.float32)
    return x


def _result(y: object, dtype: np.dtype) -> np.ndarray:
    """An ndarray of exactly ``dtype`` (ufuncs on 0-d arrays return NumPy scalars)."""
    y = np.asarray(y)
    if y.dtype != dtype:
        with np.errstate(all="ignore"):
            y = y.astype(dtype)
    return y


def unary_kernel(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Apply ``fn`` in a computable dtype and round back to the input's type."""

    def apply(x: np.ndarray) -> np.ndarray:
        # No errstate here: the executor (and constant folding) silence floating-point
        # exceptions once per run, and a context per node costs as much as a small ufunc.
        if x.__class__ is not np.ndarray:
            x = np.asarray(x)
        dtype = x.dtype
        y = fn(x.astype(np.float32) if dtype.kind == "V" and dtype in _EXTENDED_FLOATS else x)
        if y.__class__ is np.ndarray and y.dtype == dtype:
            return y
        return _result(y, dtype)

    return apply


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """Apply a same-typed binary ``fn`` with broadcasting; the result keeps A's type."""

    def apply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.__class__ is not np.ndarray:
            a = np.asarray(a)
        if b.__class__ is not np.ndarray:
            b = np.asarray(b)
        dtype = a.dtype
        if dtype.kind == "V" or b.dtype.kind == "V":
            a, b = as_compute(a), as_compute(b)
        y = fn(a, b)
        if y.__class__ is np.ndarray and y.dtype == dtype:
            return y
        return _result(y, dtype)

    return apply


def legacy_broadcast(
    a: np.ndarray, b: np.ndarray, axis: int | None, broadcast: int
) -> tuple[np.ndarray, np.ndarray]:
    """Opset 1-6 broadcasting: B aligned to A from ``axis`` (suffix match when unset)."""
    a, b = np.asarray(a), np.asarray(b)
    if not broadcast:
        if a.shape != b.shape:
            raise ValueError(
                f"shapes {list(a.shape)} and {list(b.shape)} differ and broadcast is not enabled"
            )
        return a, b
    if b.ndim > a.ndim:
        raise ValueError(f"B of rank {b.ndim} cannot be broadcast to A of rank {a.ndim}")
    if axis is not None and b.size != 1:
        if axis < 0:
            axis += a.ndim
        if axis < 0 or axis + b.ndim > a.ndim:
            raise ValueError(f"axis {axis} does not fit B {list(b.shape)} into A {list(a.shape)}")
        b = b.reshape(b.shape + (1,) * (a.ndim - axis - b.ndim))
    return a, b


_IN_PLACE_FLOATS = frozenset(np.dtype(t) for t in (np.float16, np.float32, np.float64))


def unary_in_place(
    apply: Callable[[np.ndarray], np.ndarray],
    kernel: Callable[[np.ndarray], np.ndarray],
    dtypes: frozenset[np.dtype] = _IN_PLACE_FLOATS,
) -> Callable[[int], Callable[[np.ndarray], np.ndarray]]:
    """The in-place variant (registry ``in_place``) of a unary kernel: ``apply(x)``, which
    writes into ``x``, on a writable array of ``dtypes``; ``kernel`` otherwise. The planner
    picks it only for dead inputs of nodes without attributes."""

    def at(position: int) -> Callable[[np.ndarray], np.ndarray]:
        def run(x):
            if x.__class__ is np.ndarray and x.dtype in dtypes and x.flags.writeable:
                return apply(x)
            return kernel(x)

        return run

    return at


def _binary_in_place(
    ufunc: np.ufunc, kernel: Callable[..., np.ndarray]
) -> Callable[[int], Callable[..., np.ndarray]]:
    """The in-place variant of a float arithmetic kernel: the result goes into input
    ``position`` when both inputs share its float dtype and it already has the result's
    shape; otherwise ``kernel`` computes as usual."""

    def at(position: int) -> Callable[..., np.ndarray]:
        def run(a, b):
            t = b if position else a
            if (
                a.__class__ is np.ndarray
                and b.__class__ is np.ndarray
                and a.dtype == b.dtype
                and a.dtype in _IN_PLACE_FLOATS
                and t.flags.writeable
                and (a.shape == b.shape or t.shape == np.broadcast_shapes(a.shape, b.shape))
            ):
                return ufunc(a, b, out=t)
            return kernel(a, b)

        return run

    return at


def _register_binary(
    op: str,
    fn: Callable[..., np.ndarray],
    legacy: tuple[int, ...],
    modern: tuple[int, ...],
    ufunc: np.ufunc | None = None,
) -> None:
    """Register the legacy (broadcast/axis attributes) and modern forms of a binary op;
    ``ufunc`` (what ``fn`` computes for floats) gives the modern form an in-place variant."""

    def legacy_kernel(a, b, /, *, axis=None, broadcast=0, consumed_inputs=None):
        return fn(*legacy_broadcast(a, b, axis, broadcast))

    def kernel(a, b, /):
        return fn(a, b)

    legacy_kernel.__name__ = f"{op.lower()}_legacy"
    kernel.__name__ = op.lower()
    if legacy:
        register(op, since=legacy)(legacy_kernel)
    in_place = None if ufunc is None else _binary_in_place(ufunc, kernel)
    register(op, since=modern, in_place=in_place)(kernel)


# -- arithmetic ----------------------------------------------------------------------------------


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True division for floats; integer division truncates toward zero (C semantics)."""
    if a.dtype.kind in "iu":
        safe = np.where(b == 0, 1, b).astype(b.dtype)
        if a.dtype.kind == "u":
            q = a // safe
        else:
            q = (a - np.fmod(a, safe)) // safe
        return np.where(b == 0, 0, q).astype(a.dtype)
    return np.divide(a, b)


def _power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y in x's type; integer bases with negative exponents go through float64."""
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        y64 = y.astype(np.int64)
        if np.any(y64 < 0):
            return np.trunc(np.power(x.astype(np.float64), y64.astype(np.float64)))
        return np.power(x.astype(np.int64) if x.dtype.kind == "i" else x, y64)
    if x.dtype.kind in "iu":
        return np.power(x.astype(np.float64), y)
    if y.size == 1 and y.ndim <= x.ndim and x.dtype.kind == "f":
        # GELU's x**3 and squares: NumPy's float32 pow runs ~400x slower than multiplying
        # (12.5 ms vs 0.03 ms on [1, 64, 1536]); products are within 2 ulp of pow.
        e = y.reshape(-1)[0]
        if e == 2:
            return np.multiply(x, x)
        if e == 3:
            sq = np.multiply(x, x)
            return np.multiply(sq, x, out=sq)
    return np.power(x, y)


_register_binary("Add", _binary(np.add), (1, 6), (7, 13, 14), np.add)
_register_binary("Sub", _binary(np.subtract), (1, 6), (7, 13, 14), np.subtract)
_register_binary("Mul", _binary(np.multiply), (1, 6), (7, 13, 14), np.multiply)
_register_binary("Div", _binary(_divide), (1, 6), (7, 13, 14), np.divide)
_register_binary("Pow", _binary(_power), (1,), (7, 12, 13, 15))


@register("Mod", since=(10, 13, 28))
def mod(a, b, /, *, fmod=0):
    """fmod=0: sign of the divisor (floor); fmod=1: sign of the dividend (C fmod)."""
    if fmod not in (0, 1):
        raise ValueError(f"Mod: fmod must be 0 or 1, got {fmod}")
    a, b = np.asarray(a), np.asarray(b)
    ca, cb = as_compute(a), as_compute(b)
    with np.errstate(all="ignore"):
        if a.dtype.kind in "iu":
            safe = np.where(cb == 0, 1, cb).astype(cb.dtype)
            r = np.fmod(ca, safe) if fmod else np.mod(ca, safe)
            r = np.where(cb == 0, 0, r)
        else:
            r = np.fmod(ca, cb) if fmod else np.mod(ca, cb)
    return _result(r, a.dtype)


# -- unary math ----------------------------------------------------------------------------------


def _chebyshev_fit(f: Callable[[float], float], lo: float, hi: float, degree: int) -> np.ndarray:
    """Power coefficients, in t = (2x - lo - hi) / (hi - lo), of ``f`` interpolated at the
    Chebyshev nodes of [lo, hi] (near-minimax for smooth functions)."""
    nodes = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))
    values = [f(float(lo + (t + 1) * (hi - lo) / 2)) for t in nodes]
    cheb = np.polynomial.chebyshev
    return cheb.cheb2poly(cheb.chebfit(nodes, values, degree))


def _horner(coefficients: np.ndarray, t: np.ndarray) -> np.ndarray:
    y = np.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        y = y * t + c
    return y


# erf in float64 to ~2e-16 relative, with tables built from the math module on first use (at
# import they cost ~8 ms, numpy.polynomial's import included, of every session's start-up):
# |x| < 1: erf(x) = x * P(x^2); 1 <= |x| < 6: erf(x) = 1 - exp(-x^2) * Q(x) where
# Q = erfc * exp(x^2) is smooth; |x| >= 6: erf(x) = 1 to double precision.
@functools.cache
def _erf_tables() -> tuple[np.ndarray, list[tuple[float, float, np.ndarray]]]:
    small = _chebyshev_fit(lambda u: math.erf(math.sqrt(u)) / math.sqrt(u), 0.0, 1.0, 12)
    scaled = [
        (lo, hi, _chebyshev_fit(lambda v: math.erfc(v) * math.exp(v * v), lo, hi, 16))
        for lo, hi in ((1.0, 2.5), (2.5, 6.0))
    ]
    return small, scaled


def _erf_float64(x: np.ndarray) -> np.ndarray:
    """The error function, evaluated in float64 (no SciPy needed)."""
    erf_small, erfc_scaled = _erf_tables()
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x).ravel()
    y = np.ones_like(a)
    small = a < 1.0
    if np.any(small):
        s = a[small]
        y[small] = s * _horner(erf_small, 2.0 * s * s - 1.0)
    for lo, hi, coefficients in erfc_scaled:
        band = (a >= lo) & (a < hi)
        if np.any(band):
            b = a[band]
            t = (2.0 * b - (lo + hi)) / (hi - lo)
            y[band] = 1.0 - np.exp(-b * b) * _horner(coefficients, t)
    y[np.isnan(a)] = np.nan
    return np.copysign(y.reshape(x.shape), x)


# float32 erf, branch-free: erf(x) = tanh(x * G(u^2)) with u = clip(x, -4.5, 4.5), where
# x * G(x^2) approximates g(x) = atanh(erf(x)) (odd, so G is a polynomial in x^2). Writing erf
# through tanh damps G's error by tanh' = 1 - erf^2, which is tiny where erf is near +-1, so a
# degree-6 polynomial suffices. Fitted offline: G(0) fixed at 2 / sqrt(pi) (for relative accuracy
# near 0), the other six coefficients by numpy least squares over 8000 Chebyshev-spaced points of
# [0, 4.5], g computed as 0.5 log((2 - erfc) / erfc) from math.erfc, each residual weighted by
# (1 - erf^2) / max(erf, 1) (the resulting error in erf, relative below 1), then 100 Lawson
# reweighting steps toward minimax. Evaluated in float32 with these coefficients rounded to
# float32: max |error| 1.8e-7 (3 ulp of 1) and max relative error 2.7e-7 over every float32 in
# [0, 6]. At the clamp x * G is 11.5 and tanh of it is 1.0 in float32, so +-inf -> +-1; NaN
# propagates through clip and tanh; erf(-x) = -erf(x) exactly.
_ERF_CLAMP = 4.5
_ERF_G = (
    1.1283791671e00,
    1.0276880701e-01,
    -1.9030096054e-04,
    -6.2143660886e-04,
    8.8306200833e-05,
    -5.7797244437e-06,
    1.4817979948e-07,
)
_SQRT_HALF = math.sqrt(0.5)


# The erf-based kernels make about twenty passes over their data. Done over a whole BERT
# intermediate ([128, 3072] float32, 1.5 MB a buffer) every pass goes to L3 or memory; done in
# chunks of about 80K elements (320 KB, within a core's L2) the passes after the first hit
# cache: [128, 3072] BiasGelu 2.9 -> 0.75 ms, same results bit for bit.
_CHUNK_ELEMENTS = 80 * 1024


def _erf_coefficients(scale: float) -> tuple[list[np.float32], np.float32]:
    """The atanh(erf) polynomial's coefficients with ``scale`` folded in, and the clamp."""
    k = [np.float32(c * scale ** (2 * i + 1)) for i, c in enumerate(_ERF_G)]
    return k, np.float32(_ERF_CLAMP / scale)


_ERF_K = _erf_coefficients(1.0)  # erf(x)
_GELU_K = _erf_coefficients(_SQRT_HALF)  # erf(x / sqrt 2)


def _atanh_erf_into(v: np.ndarray, s: np.ndarray, p: np.ndarray, k, lim) -> None:
    """p = atanh(erf(scale * v)) up to where tanh saturates; ``s`` is scratch (same shape).

    The polynomial is evaluated at the clamped argument but multiplied by v itself: beyond
    the clamp that only pushes the value further into tanh's saturation (G > 0 there).
    """
    np.clip(v, -lim, lim, out=s)
    np.multiply(s, s, out=s)
    np.multiply(s, k[-1], out=p)
    p += k[-2]
    for c in k[-3::-1]:
        p *= s
        p += c
    p *= v


def _row_chunks(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``x`` as C-contiguous 2-D rows (last axis kept) and the rows per cache-sized chunk."""
    rows = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, x.shape[-1] if x.ndim else 1)
    return rows, max(1, _CHUNK_ELEMENTS // max(1, rows.shape[1]))


def erf_float32(x: np.ndarray) -> np.ndarray:
    """erf of a float32 array, in float32 (max abs error 1.8e-7); a fresh array."""
    x = np.asarray(x)
    if x.size == 0:
        return np.empty(x.shape, np.float32)
    rows, step = _row_chunks(x)
    out = np.empty_like(rows)
    k, lim = _ERF_K
    s = np.empty((min(step, len(rows)), rows.shape[1]), np.float32)
    for r in range(0, len(rows), step):
        v, p = rows[r : r + step], out[r : r + step]
        _atanh_erf_into(v, s[: len(v)], p, k, lim)
        np.tanh(p, out=p)
    return out.reshape(x.shape)


def gelu_float32(
    x: np.ndarray, bias: np.ndarray | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """GELU v * Phi(v) = 0.5 v (1 + erf(v / sqrt 2)) of v = x (+ bias over the last axis),
    float32 arrays. The 1 / sqrt 2 is folded into the erf polynomial. The result goes into
    ``out`` when given (a C-contiguous float32 array of the result's shape, ``x`` itself
    allowed), else into a fresh array.

    Splitting the chunks over two threads was measured and dropped: NumPy holds the GIL
    around each of the ~20 short calls a chunk makes, and the hand-offs ate the gain
    ([128, 3072]: 0.79 ms on one thread, 0.73-1.18 ms on two, by chunk size).
    """
    x = np.asarray(x)
    shape = np.broadcast_shapes(x.shape, np.shape(bias)) if bias is not None else x.shape
    if shape != x.shape:
        x = np.broadcast_to(x, shape)
    if x.size == 0:
        return np.empty(shape, np.float32)
    rows, step = _row_chunks(x)
    res = np.empty_like(rows) if out is None else out.reshape(rows.shape)
    in_place = res.ctypes.data == rows.ctypes.data and res.strides == rows.strides
    k, lim = _GELU_K
    s, p = scratch(*[(min(step, len(rows)), rows.shape[1])] * 2, dtype=np.float32)
    b = None if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
    for r in range(0, len(rows), step):
        v = res[r : r + step]
        m = len(v)
        if b is not None:
            np.add(rows[r : r + step], b, out=v)
        elif not in_place:
            np.copyto(v, rows[r : r + step])
        _atanh_erf_into(v, s[:m], p[:m], k, lim)
        pm = p[:m]
        np.tanh(pm, out=pm)
        pm += np.float32(1.0)
        pm *= np.float32(0.5)
        v *= pm
    return res.reshape(shape)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function: float32 (and narrower floats, through float32) by the fast float32
    approximation, everything else in float64. The result's dtype is float32 or float64."""
    x = np.asarray(x)
    if x.dtype.kind == "f" or x.dtype in _EXTENDED_FLOATS:
        if x.dtype != np.float64:
            with np.errstate(all="ignore"):
                return erf_float32(x if x.dtype == np.float32 else x.astype(np.float32))
    return _erf_float64(x)


_UNARY: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple[int, ...]]] = {
    "Abs": (np.abs, (1, 6, 13)),
    "Acos": (np.arccos, (7, 22)),
    "Acosh": (np.arccosh, (9, 22)),
    "Asin": (np.arcsin, (7, 22)),
    "Asinh": (np.arcsinh, (9, 22)),
    "Atan": (np.arctan, (7, 22)),
    "Atanh": (np.arctanh, (9, 22)),
    "Ceil": (np.ceil, (1, 6, 13)),
    "Cos": (np.cos, (7, 22)),
    "Cosh": (np.cosh, (9, 22)),
    "Erf": (erf, (9, 13)),  # integer inputs (opset 9) truncate back
    "Exp": (np.exp, (1, 6, 13)),
    "Floor": (np.floor, (1, 6, 13)),
    "Log": (np.log, (1, 6, 13)),
    "Neg": (np.negative, (1, 6, 13)),
    "Reciprocal": (np.reciprocal, (1, 6, 13)),
    "Round": (np.rint, (11, 22)),  # halves to even
    "Sign": (np.sign, (9, 13)),
    "Sin": (np.sin, (7, 22)),
    "Sinh": (np.sinh, (9, 22)),
    "Sqrt": (np.sqrt, (1, 6, 13)),
    "Tan": (np.tan, (7, 22)),
    "Tanh": (np.tanh, (1, 6, 13)),
}


def _register_unary(
    op: str, fn: Callable[[np.ndarray], np.ndarray], since: tuple[int, ...]
) -> None:
    apply = unary_kernel(fn)
    if since[0] == 1:
        # Opset 1 carries the legacy ``consumed_inputs`` hint, which changes nothing.
        def legacy_kernel(x, /, *, consumed_inputs=None):
            return apply(x)

        legacy_kernel.__name__ = f"{op.lower()}_legacy"
        register(op, since=1)(legacy_kernel)
        since = since[1:]

    def kernel(x, /):
        return apply(x)

    kernel.__name__ = op.lower()
    in_place = None
    if isinstance(fn, np.ufunc):
        in_place = unary_in_place(lambda x: fn(x, out=x), kernel)
    register(op, since=since, in_place=in_place)(kernel)


for _op, (_fn, _since) in _UNARY.items():
    _register_unary(_op, _fn, _since)


@register("Clip", since=1)
def clip_legacy(x, /, *, min=None, max=None, consumed_inputs=None):  # noqa: A002
    """Opset 1: bounds are attributes; an absent one means unbounded."""
    return _clip(np.asarray(x), min, max)


@register("Clip", since=6)
def clip_6(x, /, *, min=-3.4028234663852886e38, max=3.4028234663852886e38):  # noqa: A002
    """Opset 6: bound attributes default to the float range."""
    return _clip(np.asarray(x), min, max)


@register("Clip", since=(11, 12, 13))
def clip(x, lo=None, hi=None, /):
    """Opset 11+: bounds are optional (scalar) inputs."""
    return _clip(np.asarray(x), lo, hi)


def _bound(value: object, dtype: np.dtype) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size == 0:
        return None
    if arr.size == 1:
        arr = arr.reshape(())
    with np.errstate(all="ignore"):
        return arr.astype(dtype)


def _clip(x: np.ndarray, lo: object, hi: object) -> np.ndarray:
    cx = as_compute(x)
    lo_b, hi_b = _bound(lo, cx.dtype), _bound(hi, cx.dtype)
    y = cx
    if lo_b is not None:
        y = np.maximum(y, lo_b)
    if hi_b is not None:
        y = np.minimum(y, hi_b)
    if y is cx:
        y = cx.copy()
    return _result(y, x.dtype)


# -- variadic ------------------------------------------------------------------------------------


def _variadic(op: str, args: tuple[np.ndarray, ...], fn: Callable[..., np.ndarray]) -> np.ndarray:
    if not args:
        raise ValueError(f"{op} needs at least one input")
    dtype = np.asarray(args[0]).dtype
    with np.errstate(all="ignore"):
        acc = functools.reduce(fn, [as_compute(a) for a in args])
    return _result(np.array(acc, copy=True) if len(args) == 1 else acc, dtype)


@register("Max", since=(1, 6, 8, 12, 13))
def max_(*args, consumed_inputs=None):
    """Element-wise maximum with broadcasting; NaN propagates."""
    return _variadic("Max", args, np.maximum)


@register("Min", since=(1, 6, 8, 12, 13))
def min_(*args, consumed_inputs=None):
    """Element-wise minimum with broadcasting; NaN propagates."""
    return _variadic("Min", args, np.minimum)


@register("Sum", since=(1, 6, 8, 13))
def sum_(*args, consumed_inputs=None):
    return _variadic("Sum", args, np.add)


@register("Mean", since=(1, 6, 8, 13))
def mean(*args, consumed_inputs=None):
    if not args:
        raise ValueError("Mean needs at least one input")
    dtype = np.asarray(args[0]).dtype
    total = as_compute(_variadic("Mean", args, np.add))
    return _result(total / total.dtype.type(len(args)), dtype)


# -- logic and comparison ------------------------------------------------------------------------


def _bool_binary(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def apply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return _result(fn(as_compute(np.asarray(a)), as_compute(np.asarray(b))), np.dtype(bool))

    return apply


def _equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == object or b.dtype == object:
        a, b = np.broadcast_arrays(a, b)
        return np.array(
            [x == y for x, y in zip(a.ravel(), b.ravel(), strict=True)], dtype=bool
        ).reshape(a.shape)
    return np.equal(a, b)


_register_binary("And", _bool_binary(np.logical_and), (1,), (7,))
_register_binary("Or", _bool_binary(np.logical_or), (1,), (7,))
_register_binary("Xor", _bool_binary(np.logical_xor), (1,), (7,))
_register_binary("Equal", _bool_binary(_equal), (1,), (7, 11, 13, 19))
_register_binary("Greater", _bool_binary(np.greater), (1,), (7, 9, 13))
_register_binary("Less", _bool_binary(np.less), (1,), (7, 9, 13))
_register_binary("GreaterOrEqual", _bool_binary(np.greater_equal), (), (12, 16))
_register_binary("LessOrEqual", _bool_binary(np.less_equal), (), (12, 16))


@register("Not", since=1)
def not_(x, /):
    return np.logical_not(np.asarray(x))


@register("IsNaN", since=(9, 13, 20))
def isnan(x, /):
    return np.asarray(np.isnan(as_compute(np.asarray(x))))


@register("IsInf", since=(10, 20))
def isinf(x, /, *, detect_negative=1, detect_positive=1):
    cx = as_compute(np.asarray(x))
    inf = np.isinf(cx)
    if not detect_negative:
        inf &= cx > 0
    if not detect_positive:
        inf &= cx < 0
    return np.asarray(inf)


@register("Where", since=(9, 16))
def where(condition, x, y, /):
    x, y = np.asarray(x), np.asarray(y)
    return _result(np.where(np.asarray(condition, dtype=bool), x, y), x.dtype)


# -- bitwise -------------------------------------------------------------------------------------

_register_binary("BitwiseAnd", _binary(np.bitwise_and), (), (18,))
_register_binary("BitwiseOr", _binary(np.bitwise_or), (), (18,))
_register_binary("BitwiseXor", _binary(np.bitwise_xor), (), (18,))


@register("BitwiseNot", since=18)
def bitwise_not(x, /):
    x = np.asarray(x)
    return _result(np.invert(x), x.dtype)


@register("BitShift", since=(11, 28))
def bitshift(x, y, /, *, direction=None):
    """Logical shifts for unsigned, arithmetic right shift for signed; shifts outside
    [0, bits) give the sign fill (-1 or 0) for RIGHT and 0 for LEFT."""
    if direction not in ("LEFT", "RIGHT"):
        raise ValueError(f"BitShift: direction must be 'LEFT' or 'RIGHT', got {direction!r}")
    x, y = np.asarray(x), np.asarray(y)
    bits = x.dtype.itemsize * 8
    y64 = y.astype(np.int64)
    valid = (y64 >= 0) & (y64 < bits)
    shift = np.where(valid, y64, 0).astype(x.dtype)
    unsigned = np.dtype(f"u{x.dtype.itemsize}")
    if direction == "LEFT":
        shifted = np.left_shift(x.view(unsigned), shift.view(unsigned)).view(x.dtype)
        fill = np.zeros((), dtype=x.dtype)
    else:
        shifted = np.right_shift(x, shift)
        fill = np.where(x < 0, -1, 0).astype(x.dtype) if x.dtype.kind == "i" else 0
    return _result(np.where(valid, shifted, fill), x.dtype)


# -- matrices and thresholds ---------------------------------------------------------------------


@register("Det", since=(11, 22))
def det(x, /):
    """Determinant of the trailing square matrices: shape [*, M, M] -> [*]."""
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"Det needs [*, M, M] input, got shape {list(x.shape)}")
    cx = x.astype(np.float64) if x.dtype != np.float32 else x
    return _result(np.linalg.det(cx), x.dtype)


@register("Shrink", since=9)
def shrink(x, /, *, bias=0.0, lambd=0.5):
    """x - bias above lambd, x + bias below -lambd, 0 in between."""
    x = np.asarray(x)
    cx = (
        as_compute(x)
        if x.dtype.kind == "f" or x.dtype in _EXTENDED_FLOATS
        else x.astype(np.float64)
    )
    with np.errstate(all="ignore"):
        y = np.where(cx < -lambd, cx + bias, np.where(cx > lambd, cx - bias, 0))
    return _result(y, x.dtype)
