"""Constant-valued operators: Constant, ConstantOfShape, EyeLike, Range."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from onnxpy.kernels.registry import register
from onnxpy.types import dtype_of


@register("Constant", since=(1, 9, 11, 12, 13, 19, 21, 23, 24, 25))
def constant(
    *,
    value=None,
    sparse_value=None,
    value_float=None,
    value_floats=None,
    value_int=None,
    value_ints=None,
    value_string=None,
    value_strings=None,
):
    if value is not None:
        return value
    if sparse_value is not None:
        return sparse_value
    if value_float is not None:
        return np.array(value_float, dtype=np.float32)
    if value_floats is not None:
        return np.array(value_floats, dtype=np.float32)
    if value_int is not None:
        return np.array(value_int, dtype=np.int64)
    if value_ints is not None:
        return np.array(value_ints, dtype=np.int64)
    if value_string is not None:
        return np.array(value_string, dtype=object)
    if value_strings is not None:
        return np.array(value_strings, dtype=object)
    raise ValueError("Constant needs exactly one value attribute")


@register("ConstantOfShape", since=(9, 20, 21, 23, 24, 25))
def constant_of_shape(input, /, *, value=None) -> np.ndarray:
    """A tensor of shape ``input`` filled with the one-element ``value`` (float32 0 by default)."""
    dims = [int(d) for d in np.asarray(input).reshape(-1).tolist()]
    if any(d < 0 for d in dims):
        raise ValueError(f"ConstantOfShape: negative dimension in {dims}")
    if value is None:
        return np.zeros(dims, dtype=np.float32)
    v = np.asarray(value)
    if v.size != 1:
        raise ValueError(f"ConstantOfShape: 'value' must hold one element, got {v.size}")
    return np.full(dims, v.reshape(-1)[0], dtype=v.dtype)


@register("EyeLike", since=(9, 22))
def eye_like(input, /, *, dtype=None, k=0) -> np.ndarray:
    """Ones on diagonal ``k`` of a matrix shaped like ``input``; its type unless ``dtype``."""
    x = np.asarray(input)
    if x.ndim != 2:
        raise ValueError(f"EyeLike: expected a 2-D input, got rank {x.ndim}")
    out_dtype = x.dtype if dtype is None else dtype_of(int(dtype))
    n, m = x.shape
    rows = np.arange(n)[:, None]
    cols = np.arange(m)[None, :]
    return (cols - rows == k).astype(out_dtype)


_HALF_FLOATS = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def _range_count(start, limit, delta) -> int:
    """max(ceil((limit - start) / delta), 0), exactly for integers."""
    if isinstance(start, int):
        return max(-((start - limit) // delta), 0)
    return max(int(math.ceil((limit - start) / delta)), 0)


@register("Range", since=(11, 27))
def range_(start, limit, delta, /, *, stash_type=1) -> np.ndarray:
    """output[i] = start + i * delta; float16/bfloat16 are computed in ``stash_type``."""
    dtype = np.asarray(start).dtype
    compute = dtype
    if dtype in _HALF_FLOATS:
        compute = dtype_of(int(stash_type)) if stash_type is not None else np.dtype(np.float32)
    s, lim, d = (np.asarray(v).astype(compute).reshape(-1)[0].item() for v in (start, limit, delta))
    if d == 0:
        raise ValueError("Range: delta cannot be 0")
    n = _range_count(s, lim, d)
    if compute.kind in "iu":
        values = s + np.arange(n, dtype=np.int64) * d
    else:
        c = np.dtype(compute)
        values = np.asarray(s, dtype=c) + np.arange(n, dtype=c) * np.asarray(d, dtype=c)
    return values.astype(dtype)
