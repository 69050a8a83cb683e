"""Reductions (Reduce*), ArgMax/ArgMin and the cumulative CumSum/CumProd.

Axes come as an attribute until opset 13 (ReduceSum) or 18 (the others) and as an optional
input afterwards; then an empty or missing ``axes`` reduces everything unless
``noop_with_empty_axes`` is set, in which case only the element-wise part of composite
reductions (abs, square, log...) is applied. float16 and bfloat16 accumulate in float32 and
are rounded back once; integer results keep their type (sums wrap like C arithmetic).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxpy.kernels.registry import register

Axes = tuple[int, ...] | None  # None: every axis


def _acc(x: np.ndarray) -> np.ndarray:
    """``x`` in the dtype its reduction is computed in (float32 for 16-bit floats)."""
    if x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        return x
    if x.dtype.kind in "iub":
        return x
    return x.astype(np.float32)  # float16, bfloat16 and other ml_dtypes floats


def _cast(y: object, dtype: np.dtype) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype != dtype:
        with np.errstate(all="ignore"):
            y = y.astype(dtype)
    return y


def _normalize_axes(axes: object, rank: int) -> tuple[int, ...]:
    out = []
    for a in np.asarray(axes, dtype=np.int64).reshape(-1).tolist():
        if not -rank <= a < max(rank, 1):
            raise ValueError(f"axis {a} is out of range for a tensor of rank {rank}")
        a = a + rank if a < 0 else a
        if a not in out:
            out.append(a)
    return tuple(sorted(out))


def _resolve(x: np.ndarray, axes: object, noop_with_empty_axes: int) -> Axes | tuple[()]:
    """The axes to reduce: ``None`` for all, ``()`` for the no-op case."""
    if axes is None or np.asarray(axes).size == 0:
        return () if noop_with_empty_axes else None
    return _normalize_axes(axes, x.ndim)


def _finish(y: np.ndarray, x: np.ndarray, axes: Axes, keepdims: int) -> np.ndarray:
    """Reshape a keepdims=True reduction to the requested rank."""
    if keepdims:
        return y
    if axes is None:
        return y.reshape(())
    return y.reshape([d for i, d in enumerate(x.shape) if i not in axes])


# -- the reduction bodies: (x in compute dtype, axes) -> keepdims result -----------------------


def _sum(x: np.ndarray, axes: Axes) -> np.ndarray:
    return np.sum(x, axis=axes, keepdims=True, dtype=x.dtype)


def _mean(x: np.ndarray, axes: Axes) -> np.ndarray:
    if x.dtype.kind in "iu":
        n = x.size if axes is None else int(np.prod([x.shape[a] for a in axes]))
        s = np.sum(
            x, axis=axes, keepdims=True, dtype=np.int64 if x.dtype.kind == "i" else np.uint64
        )
        if n == 0:
            return np.zeros_like(s)
        # integer mean truncates toward zero (C division)
        return np.where(s < 0, -((-s) // n), s // n) if x.dtype.kind == "i" else s // n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.mean(x, axis=axes, keepdims=True, dtype=x.dtype)


def _prod(x: np.ndarray, axes: Axes) -> np.ndarray:
    return np.prod(x, axis=axes, keepdims=True, dtype=x.dtype)


def _lowest(dtype: np.dtype) -> object:
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _highest(dtype: np.dtype) -> object:
    if dtype.kind == "f":
        return np.inf
    if dtype.kind == "b":
        return True
    return np.iinfo(dtype).max


def _max(x: np.ndarray, axes: Axes) -> np.ndarray:
    return np.max(x, axis=axes, keepdims=True, initial=_lowest(x.dtype))


def _min(x: np.ndarray, axes: Axes) -> np.ndarray:
    return np.min(x, axis=axes, keepdims=True, initial=_highest(x.dtype))


def _l1(x: np.ndarray, axes: Axes) -> np.ndarray:
    return _sum(np.abs(x), axes)


def _sum_square(x: np.ndarray, axes: Axes) -> np.ndarray:
    return _sum(x * x, axes)


def _float(x: np.ndarray) -> np.ndarray:
    """Integers go through float64 for the transcendental reductions."""
    return x.astype(np.float64) if x.dtype.kind in "iub" else x


def _l2(x: np.ndarray, axes: Axes) -> np.ndarray:
    x = _float(x)
    return np.sqrt(_sum(x * x, axes))


def _log_sum(x: np.ndarray, axes: Axes) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(_sum(_float(x), axes))


def _log_sum_exp(x: np.ndarray, axes: Axes) -> np.ndarray:
    """log(sum(exp(x))) shifted by the maximum to avoid overflow."""
    x = _float(x)
    m = _max(x, axes)
    m = np.where(np.isfinite(m), m, np.zeros((), dtype=m.dtype))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return np.log(_sum(np.exp(x - m), axes)) + m


# For the no-op case (reduction over an empty set of axes): the element-wise part only.
def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _noop_log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(_float(x))


_NOOP: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ReduceSum": _identity,
    "ReduceMean": _identity,
    "ReduceProd": _identity,
    "ReduceMax": _identity,
    "ReduceMin": _identity,
    "ReduceL1": np.abs,
    "ReduceL2": np.abs,
    "ReduceSumSquare": lambda x: x * x,
    "ReduceLogSum": _noop_log,
    "ReduceLogSumExp": _identity,
}

_BODY: dict[str, Callable[[np.ndarray, Axes], np.ndarray]] = {
    "ReduceSum": _sum,
    "ReduceMean": _mean,
    "ReduceProd": _prod,
    "ReduceMax": _max,
    "ReduceMin": _min,
    "ReduceL1": _l1,
    "ReduceL2": _l2,
    "ReduceSumSquare": _sum_square,
    "ReduceLogSum": _log_sum,
    "ReduceLogSumExp": _log_sum_exp,
}


def reduce(
    op: str, data: np.ndarray, axes: object, keepdims: int, noop_with_empty_axes: int = 0
) -> np.ndarray:
    """Apply reduction ``op`` (an ONNX op name) with the ONNX axes conventions."""
    x = np.asarray(data)
    resolved = _resolve(x, axes, noop_with_empty_axes)
    cx = _acc(x)
    if resolved == ():
        return _cast(_NOOP[op](cx), x.dtype)
    y = _BODY[op](cx, resolved)
    return _cast(_finish(y, x, resolved, keepdims), x.dtype)


def _register_reduce(op: str, attr_since: tuple[int, ...], input_since: tuple[int, ...]) -> None:
    """Register the attribute-axes form and the input-axes form of a reduction."""

    def with_attribute(data, /, *, axes=None, keepdims=1):
        return reduce(op, data, axes, keepdims)

    def with_input(data, axes=None, /, *, keepdims=1, noop_with_empty_axes=0):
        return reduce(op, data, axes, keepdims, noop_with_empty_axes)

    for fn, kind in ((with_attribute, "attribute"), (with_input, "input")):
        fn.__name__ = f"{op}_{kind}_axes"
        fn.__doc__ = f"{op} with axes given as an {kind}."
    register(op, since=attr_since)(with_attribute)
    register(op, since=input_since)(with_input)


_register_reduce("ReduceSum", (1, 11), (13,))
for _op in ("ReduceL1", "ReduceL2", "ReduceMean", "ReduceProd", "ReduceSumSquare"):
    _register_reduce(_op, (1, 11, 13), (18,))
for _op in ("ReduceLogSum", "ReduceLogSumExp"):
    # opset 28 only drops the integer types
    _register_reduce(_op, (1, 11, 13), (18, 28))
for _op in ("ReduceMax", "ReduceMin"):
    # opset 12 adds 8-bit integers, opset 20 booleans (False < True)
    _register_reduce(_op, (1, 11, 12, 13), (18, 20))


# -- ArgMax / ArgMin -------------------------------------------------------------------------


def _arg(
    fn: Callable[..., np.ndarray], data: object, axis: int, keepdims: int, last: int
) -> np.ndarray:
    x = np.asarray(data)
    if x.ndim == 0:
        raise ValueError("ArgMax/ArgMin need a tensor of rank >= 1")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for a tensor of rank {x.ndim}")
    axis = axis % x.ndim
    cx = _acc(x)
    if last:
        n = x.shape[axis]
        idx = (n - 1) - fn(np.flip(cx, axis=axis), axis=axis)
    else:
        idx = fn(cx, axis=axis)
    idx = np.asarray(idx, dtype=np.int64)
    return np.expand_dims(idx, axis) if keepdims else idx


@register("ArgMax", since=(1, 11, 12, 13))
def argmax(data, /, *, axis=0, keepdims=1, select_last_index=0):
    """Index of the first (or last) maximum along ``axis``."""
    return _arg(np.argmax, data, axis, keepdims, select_last_index)


@register("ArgMin", since=(1, 11, 12, 13))
def argmin(data, /, *, axis=0, keepdims=1, select_last_index=0):
    """Index of the first (or last) minimum along ``axis``."""
    return _arg(np.argmin, data, axis, keepdims, select_last_index)


# -- CumSum / CumProd ------------------------------------------------------------------------


def _cumulative(
    fn: Callable[..., np.ndarray],
    neutral: int,
    x: object,
    axis: object,
    exclusive: int,
    reverse: int,
) -> np.ndarray:
    x = np.asarray(x)
    a = np.asarray(axis)
    if a.size != 1:
        raise ValueError("axis must be a scalar")
    ax = int(a.reshape(()))
    if not -x.ndim <= ax < max(x.ndim, 1):
        raise ValueError(f"axis {ax} is out of range for a tensor of rank {x.ndim}")
    if x.ndim == 0:
        return x.copy()
    ax %= x.ndim
    cx = _acc(x)
    src = np.flip(cx, axis=ax) if reverse else cx
    if exclusive:
        y = np.full(x.shape, neutral, dtype=cx.dtype)
        head = [slice(None)] * x.ndim
        tail = [slice(None)] * x.ndim
        head[ax] = slice(1, None)
        tail[ax] = slice(None, -1)
        fn(src[tuple(tail)], axis=ax, dtype=cx.dtype, out=y[tuple(head)])
    else:
        y = fn(src, axis=ax, dtype=cx.dtype)
    if reverse:
        y = np.flip(y, axis=ax)
    return _cast(np.ascontiguousarray(y), x.dtype)


@register("CumSum", since=(11, 14))
def cumsum(x, axis, /, *, exclusive=0, reverse=0):
    """Running sum along ``axis`` (exclusive: shifted by one, starting at 0)."""
    return _cumulative(np.cumsum, 0, x, axis, exclusive, reverse)


@register("CumProd", since=26)
def cumprod(x, axis, /, *, exclusive=0, reverse=0):
    """Running product along ``axis`` (exclusive: shifted by one, starting at 1)."""
    return _cumulative(np.cumprod, 1, x, axis, exclusive, reverse)
