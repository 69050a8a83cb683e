"""Activation functions and the softmax family of the default domain.

bfloat16 inputs are computed in float32 and rounded back; float16 uses NumPy's float16 loops
(each step rounded to float16, like NumPy-based references). Results keep the input's type.
Softmax, LogSoftmax and Hardmax before opset 13 work on the input coerced to 2-D
``[prod(shape[:axis]), prod(shape[axis:])]``; from opset 13 on, along ``axis``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxpy.kernels.ai_onnx.elementwise import (
    as_compute,
    erf,
    gelu_float32,
    unary_in_place,
    unary_kernel,
)
from onnxpy.kernels.registry import register


def _float_result(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype != dtype:
        with np.errstate(all="ignore"):
            y = y.astype(dtype)
    return y


def _compute(x: object) -> tuple[np.ndarray, np.dtype]:
    """(x in a dtype NumPy has math loops for, x's original dtype)."""
    x = np.asarray(x)
    return as_compute(x), x.dtype


def _elementwise(fn: Callable[[np.ndarray], np.ndarray], x: object) -> np.ndarray:
    # Floating-point exceptions are silenced once per run by the executor, not per node.
    cx, dtype = _compute(x)
    return _float_result(fn(cx), dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) in four in-place passes.

    Below x = -88.7 exp(-x) overflows float32 to inf and the result is 0 where the exact one is
    a subnormal under 3e-39 (the executor silences the overflow once per run). float16 would
    lose its subnormals already from x = -11, so it is computed in float32.
    """
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    e = np.negative(x)
    if e.__class__ is not np.ndarray:  # 0-d input: ufuncs return NumPy scalars
        e = np.asarray(e)
    return _logistic_of_negated(e)


def _logistic_of_negated(e: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(e)) written into ``e`` (which holds -x); returns ``e``."""
    np.exp(e, out=e)
    e += e.dtype.type(1)
    return np.reciprocal(e, out=e)


_sigmoid_kernel = unary_kernel(_sigmoid)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.zeros((), dtype=x.dtype), x)


# -- pointwise -----------------------------------------------------------------------------------


_ROW = 1024
_ZERO_ROWS: dict[np.dtype, np.ndarray] = {}


def _relu_into(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y = max(x, 0) for float arrays of one shape (``y`` may be ``x``); returns ``y``.

    NumPy's maximum against a scalar runs an unvectorized loop; against a row of zeros
    broadcast over rows of the same length it is vectorized, 2-3x faster on large buffers
    ([256, 3136] float32: 310 -> 136 us). So contiguous arrays are taken as rows of 1024.
    """
    n = x.size
    whole = n - n % _ROW
    if whole and x.flags.c_contiguous and y.flags.c_contiguous:
        zeros = _ZERO_ROWS.get(x.dtype)
        if zeros is None:
            zeros = _ZERO_ROWS[x.dtype] = np.zeros(_ROW, x.dtype)
            zeros.flags.writeable = False
        src, dst = x.reshape(-1), y.reshape(-1)
        np.maximum(src[:whole].reshape(-1, _ROW), zeros, out=dst[:whole].reshape(-1, _ROW))
        if whole < n:
            np.maximum(src[whole:], x.dtype.type(0), out=dst[whole:])
    else:
        np.maximum(x, x.dtype.type(0), out=y)
    return y


def relu_in_place(y: np.ndarray) -> np.ndarray:
    """max(y, 0) written into the float array ``y``; returns ``y``."""
    return _relu_into(y, y)


def sigmoid_in_place(y: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-y)) written into the float array ``y`` (see _sigmoid); returns ``y``."""
    return _logistic_of_negated(np.negative(y, out=y))


def relu(x, /, *, consumed_inputs=None):
    """max(x, 0); integer types (opset 14) stay integers."""
    if x.__class__ is not np.ndarray:
        x = np.asarray(x)
    if x.dtype.kind == "V":
        return _float_result(np.maximum(as_compute(x), 0), x.dtype)
    if x.dtype.kind == "f" and x.ndim:
        return _relu_into(x, np.empty(x.shape, x.dtype))
    y = np.maximum(x, x.dtype.type(0))
    return y if y.__class__ is np.ndarray else np.asarray(y)


def sigmoid(x, /, *, consumed_inputs=None):
    return _sigmoid_kernel(x)


register("Relu", since=(1, 6, 13, 14), in_place=unary_in_place(relu_in_place, relu))(relu)
# float16 stays out of the in-place sigmoid: it is computed in float32 (see _sigmoid).
register(
    "Sigmoid",
    since=(1, 6, 13),
    in_place=unary_in_place(
        sigmoid_in_place, sigmoid, frozenset((np.dtype(np.float32), np.dtype(np.float64)))
    ),
)(sigmoid)


@register("Elu", since=(1, 6, 22))
def elu(x, /, *, alpha=1.0, consumed_inputs=None):
    return _elementwise(lambda v: np.where(v > 0, v, alpha * np.expm1(v)), x)


@register("Celu", since=(12, 28))
def celu(x, /, *, alpha=1.0):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    return _elementwise(lambda v: np.maximum(v, 0) + np.minimum(0, alpha * np.expm1(v / alpha)), x)


@register("Selu", since=1)
def selu_1(x, /, *, alpha=1.673200011253357, gamma=1.0506999492645264, consumed_inputs=None):
    """Opset 1 had slightly different default constants."""
    return _selu(x, alpha, gamma)


@register("Selu", since=(6, 22))
def selu(x, /, *, alpha=1.6732631921768188, gamma=1.0507010221481323):
    return _selu(x, alpha, gamma)


def _selu(x: object, alpha: float, gamma: float) -> np.ndarray:
    return _elementwise(lambda v: gamma * np.where(v > 0, v, alpha * np.expm1(v)), x)


@register("LeakyRelu", since=(1, 6, 16))
def leaky_relu(x, /, *, alpha=0.01, consumed_inputs=None):
    return _elementwise(lambda v: np.where(v >= 0, v, alpha * v), x)


@register("ThresholdedRelu", since=(10, 22))
def thresholded_relu(x, /, *, alpha=1.0):
    return _elementwise(lambda v: np.where(v > alpha, v, 0), x)


@register("HardSigmoid", since=(1, 6, 22))
def hard_sigmoid(x, /, *, alpha=0.2, beta=0.5, consumed_inputs=None):
    return _elementwise(lambda v: np.clip(alpha * v + beta, 0, 1), x)


def _hard_swish_gate(x: np.ndarray) -> np.ndarray:
    """clip(x / 6 + 0.5, 0, 1) as a fresh array, in three passes and one allocation."""
    gate = np.multiply(x, x.dtype.type(1 / 6))
    gate += x.dtype.type(0.5)
    return np.clip(gate, x.dtype.type(0), x.dtype.type(1), out=gate)


def hard_swish_in_place(y: np.ndarray) -> np.ndarray:
    """y * HardSigmoid(y) (alpha 1/6, beta 0.5) written into the float array ``y``."""
    y *= _hard_swish_gate(y)
    return y


def hard_swish(x, /):
    """x * HardSigmoid(x) with alpha = 1/6, beta = 0.5."""
    cx, dtype = _compute(x)
    if cx.ndim == 0:
        return _float_result(cx * np.clip(cx / 6 + 0.5, 0, 1), dtype)
    gate = _hard_swish_gate(cx)
    gate *= cx
    return _float_result(gate, dtype)


# float16 stays out of the in-place form, as with Sigmoid: it is computed in float32.
register(
    "HardSwish",
    since=(14, 22),
    in_place=unary_in_place(
        hard_swish_in_place, hard_swish, frozenset((np.dtype(np.float32), np.dtype(np.float64)))
    ),
)(hard_swish)


@register("Softplus", since=(1, 22))
def softplus(x, /):
    return _elementwise(_softplus, x)


@register("Softsign", since=(1, 22))
def softsign(x, /):
    return _elementwise(lambda v: v / (1 + np.abs(v)), x)


@register("Mish", since=(18, 22))
def mish(x, /):
    """x * tanh(softplus(x))."""
    return _elementwise(lambda v: v * np.tanh(_softplus(v)), x)


@register("Gelu", since=20)
def gelu(x, /, *, approximate="none"):
    """0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation."""
    if approximate == "none":
        x = np.asarray(x)
        if x.dtype == np.float64:
            return _elementwise(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2.0))), x)
        # float32, float16 and bfloat16: the float32 kernel, rounded once.
        with np.errstate(all="ignore"):
            return _float_result(gelu_float32(x.astype(np.float32, copy=False)), x.dtype)
    if approximate == "tanh":
        k = np.sqrt(2.0 / np.pi)
        return _elementwise(lambda v: 0.5 * v * (1 + np.tanh(k * (v + 0.044715 * v**3))), x)
    raise ValueError(f"Gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


@register("Swish", since=24)
def swish(x, /, *, alpha=1.0):
    """x * sigmoid(alpha * x)."""
    return _elementwise(lambda v: v * _sigmoid(alpha * v), x)


@register("SwiGLU", since=28)
def swiglu(a, b, /, *, alpha=1.0):
    """Swish_alpha(A) * B; A and B must have the same shape (no broadcasting)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"SwiGLU: A {list(a.shape)} and B {list(b.shape)} must have the same shape"
        )
    cb, _ = _compute(b)
    return _elementwise(lambda v: v * _sigmoid(alpha * v) * cb.astype(v.dtype), a)


@register("PRelu", since=(1, 6))
def prelu_legacy(x, slope, /, *, consumed_inputs=None):
    """Opsets 1-6: a 1-D slope of size C applies per channel (axis 1)."""
    x, slope = np.asarray(x), np.asarray(slope)
    if slope.ndim == 1 and slope.size > 1 and x.ndim >= 2 and slope.shape[0] == x.shape[1]:
        slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))
    return _prelu(x, slope)


@register("PRelu", since=(7, 9, 16))
def prelu(x, slope, /):
    """slope * x for x < 0, x otherwise; slope broadcasts unidirectionally to x."""
    x, slope = np.asarray(x), np.asarray(slope)
    if np.broadcast_shapes(x.shape, slope.shape) != x.shape:
        raise ValueError(f"PRelu: slope {list(slope.shape)} does not broadcast to {list(x.shape)}")
    return _prelu(x, slope)


def _prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    cx, cs = as_compute(x), as_compute(slope)
    with np.errstate(all="ignore"):
        y = np.where(cx < 0, cx * cs, cx)
    return _float_result(np.broadcast_to(y, x.shape), x.dtype)


# -- softmax family ------------------------------------------------------------------------------


def _norm_axis(axis: int, rank: int, op: str) -> int:
    if not -max(rank, 1) <= axis < max(rank, 1):
        raise ValueError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _softmax(v: np.ndarray, axis: int) -> np.ndarray:
    """exp(v - max) / sum in three passes over one fresh buffer (v has rank >= 1)."""
    e = np.subtract(v, np.max(v, axis=axis, keepdims=True))
    np.exp(e, out=e)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def _log_softmax(v: np.ndarray, axis: int) -> np.ndarray:
    shifted = np.subtract(v, np.max(v, axis=axis, keepdims=True))
    total = np.sum(np.exp(shifted), axis=axis, keepdims=True)
    shifted -= np.log(total, out=total)
    return shifted


def _hardmax(v: np.ndarray, axis: int) -> np.ndarray:
    """One-hot of the first maximum along ``axis``."""
    idx = np.expand_dims(np.argmax(v, axis=axis), axis)
    out = np.zeros(v.shape, dtype=v.dtype)
    if v.size:
        np.put_along_axis(out, idx, 1, axis=axis)
    return out


def _along_axis(
    fn: Callable[[np.ndarray, int], np.ndarray], x: object, axis: int, op: str
) -> np.ndarray:
    cx, dtype = _compute(x)
    if cx.ndim == 0:
        cx = cx.reshape(1)
        with np.errstate(all="ignore"):
            return _float_result(fn(cx, 0).reshape(()), dtype)
    with np.errstate(all="ignore"):
        return _float_result(fn(cx, _norm_axis(axis, cx.ndim, op)), dtype)


def _coerced_2d(
    fn: Callable[[np.ndarray, int], np.ndarray], x: object, axis: int, op: str
) -> np.ndarray:
    """Pre-13 semantics: flatten to [prod(shape[:axis]), prod(shape[axis:])], apply on dim 1."""
    cx, dtype = _compute(x)
    rank = cx.ndim
    if not -rank <= axis <= rank:
        raise ValueError(f"{op}: axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    rows = int(np.prod(cx.shape[:axis], dtype=np.int64))
    flat = (
        cx.reshape(rows, -1)
        if rows
        else cx.reshape(0, int(np.prod(cx.shape[axis:], dtype=np.int64)))
    )
    with np.errstate(all="ignore"):
        y = fn(flat, 1) if flat.shape[1] else flat.copy()
    return _float_result(y.reshape(cx.shape), dtype)


@register("Softmax", since=(1, 11))
def softmax_legacy(x, /, *, axis=1):
    return _coerced_2d(_softmax, x, axis, "Softmax")


@register("Softmax", since=13)
def softmax(x, /, *, axis=-1):
    return _along_axis(_softmax, x, axis, "Softmax")


@register("LogSoftmax", since=(1, 11))
def log_softmax_legacy(x, /, *, axis=1):
    return _coerced_2d(_log_softmax, x, axis, "LogSoftmax")


@register("LogSoftmax", since=13)
def log_softmax(x, /, *, axis=-1):
    return _along_axis(_log_softmax, x, axis, "LogSoftmax")


@register("Hardmax", since=(1, 11))
def hardmax_legacy(x, /, *, axis=1):
    return _coerced_2d(_hardmax, x, axis, "Hardmax")


@register("Hardmax", since=13)
def hardmax(x, /, *, axis=-1):
    return _along_axis(_hardmax, x, axis, "Hardmax")
