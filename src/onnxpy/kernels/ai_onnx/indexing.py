"""Gather/scatter and index-producing operators of the default domain.

Index tensors may be int32 or int64; negative indices count from the end of their axis and an
index outside [-size, size-1] raises ValueError (NumPy would silently wrap or fail obscurely).
Scatter kernels always write into a copy of ``data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onnxpy.kernels.ai_onnx.shape import as_int, normalize_axis
from onnxpy.kernels.registry import register


def _wrap(indices: Any, size: int | np.ndarray, op: str) -> np.ndarray:
    """Integer ``indices`` with negatives wrapped, as int64; ValueError when out of range."""
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be integers, got {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    bad = (idx < -size) | (idx >= size)
    if np.any(bad):
        first = idx[bad].reshape(-1)[0]
        raise ValueError(f"{op}: index {first} is out of range for an axis of size {size}")
    return np.where(idx < 0, idx + size, idx)


# -- gathers ---------------------------------------------------------------------------------
_TAKE_INDEX = (np.dtype(np.int64), np.dtype(np.int32))


@register("Gather", since=(1, 11, 13))
def gather(data, indices, /, *, axis=0) -> np.ndarray:
    a = normalize_axis(axis, data.ndim, "Gather")
    if indices.__class__ is np.ndarray and indices.dtype in _TAKE_INDEX:
        # np.take wraps negatives itself and raises on out-of-range: shape graphs run
        # hundreds of one-element Gathers a pass (GPT-2: 194), 11 -> ~2 us each.
        try:
            return np.take(data, indices, axis=a)
        except IndexError:
            pass  # _wrap below names the offending index
    return np.take(data, _wrap(indices, data.shape[a], "Gather"), axis=a)


def _element_index(indices: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    """Full index tuple for element-wise gather/scatter: ``indices`` on ``axis``, the
    element's own coordinate on every other axis."""
    grids = list(np.ogrid[tuple(slice(0, d) for d in indices.shape)])
    grids[axis] = indices
    return tuple(grids)


def _check_element_shapes(data: np.ndarray, indices: np.ndarray, axis: int, op: str) -> None:
    if indices.ndim != data.ndim:
        raise ValueError(f"{op}: indices rank {indices.ndim} differs from data rank {data.ndim}")
    for d, (n, m) in enumerate(zip(data.shape, indices.shape, strict=True)):
        if d != axis and m > n:
            raise ValueError(f"{op}: indices shape {indices.shape} exceeds data shape {data.shape}")


@register("GatherElements", since=(11, 13))
def gather_elements(data, indices, /, *, axis=0) -> np.ndarray:
    a = normalize_axis(axis, data.ndim, "GatherElements")
    idx = np.asarray(indices)
    _check_element_shapes(data, idx, a, "GatherElements")
    return data[_element_index(_wrap(idx, data.shape[a], "GatherElements"), a)]


def _nd_index(data_shape: tuple[int, ...], indices: np.ndarray, op: str) -> tuple[np.ndarray, ...]:
    """Split ``indices[..., k]`` into k wrapped coordinate arrays over ``data_shape[:k]``."""
    k = indices.shape[-1]
    if k > len(data_shape):
        raise ValueError(f"{op}: index tuples of length {k} for data of rank {len(data_shape)}")
    return tuple(_wrap(indices[..., j], data_shape[j], op) for j in range(k))


@register("GatherND", since=(11, 12, 13))
def gather_nd(data, indices, /, *, batch_dims=0) -> np.ndarray:
    idx = np.asarray(indices)
    b = int(batch_dims)
    if idx.ndim < 1 or not 0 <= b < min(idx.ndim, data.ndim):
        raise ValueError(f"GatherND: batch_dims {b} invalid for ranks {data.ndim}, {idx.ndim}")
    if data.shape[:b] != idx.shape[:b]:
        raise ValueError(f"GatherND: batch shapes {data.shape[:b]} and {idx.shape[:b]} differ")
    k = idx.shape[-1]
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    flat_data = data.reshape((batch,) + data.shape[b:])
    flat_idx = idx.reshape(batch, -1, k)
    coords = _nd_index(flat_data.shape[1:], flat_idx, "GatherND")
    gathered = flat_data[(np.arange(batch)[:, None],) + coords]
    if k == 0:
        gathered = np.broadcast_to(gathered, (batch, flat_idx.shape[1]) + flat_data.shape[1:])
    return gathered.reshape(idx.shape[:-1] + data.shape[b + k :])


# -- scatters --------------------------------------------------------------------------------
_REDUCERS: dict[str, Callable[..., Any] | None] = {
    "none": None,
    "add": np.add.at,
    "mul": np.multiply.at,
    "max": np.maximum.at,
    "min": np.minimum.at,
}


def _reducer(reduction: str | bytes, op: str) -> Callable[..., Any] | None:
    name = reduction.decode() if isinstance(reduction, bytes) else reduction
    if name not in _REDUCERS:
        raise ValueError(f"{op}: unknown reduction '{name}'")
    return _REDUCERS[name]


def _scatter_into(data: np.ndarray, where: tuple, updates: np.ndarray, reduction, op: str):
    out = data.copy()
    reduce = _reducer(reduction, op)
    values = np.asarray(updates, dtype=data.dtype)
    if reduce is None:
        out[where] = values
    else:
        reduce(out, where, values)
    return out


def _scatter_elements(data, indices, updates, axis, reduction, op) -> np.ndarray:
    a = normalize_axis(axis, data.ndim, op)
    idx = np.asarray(indices)
    _check_element_shapes(data, idx, a, op)
    if np.shape(updates) != idx.shape:
        raise ValueError(f"{op}: updates shape {np.shape(updates)} differs from {idx.shape}")
    where = _element_index(_wrap(idx, data.shape[a], op), a)
    return _scatter_into(data, where, updates, reduction, op)


@register("Scatter", since=(9, 11))
def scatter(data, indices, updates, /, *, axis=0) -> np.ndarray:
    """The deprecated name of ScatterElements (no reduction)."""
    return _scatter_elements(data, indices, updates, axis, "none", "Scatter")


@register("ScatterElements", since=(11, 13, 16, 18))
def scatter_elements(data, indices, updates, /, *, axis=0, reduction="none") -> np.ndarray:
    return _scatter_elements(data, indices, updates, axis, reduction, "ScatterElements")


@register("ScatterND", since=(11, 13, 16, 18))
def scatter_nd(data, indices, updates, /, *, reduction="none") -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim < 1:
        raise ValueError("ScatterND: indices must have rank >= 1")
    k = idx.shape[-1]
    expected = idx.shape[:-1] + data.shape[k:]
    if np.shape(updates) != expected:
        raise ValueError(f"ScatterND: updates shape {np.shape(updates)}, expected {expected}")
    where = _nd_index(data.shape, idx, "ScatterND")
    return _scatter_into(data, where, updates, reduction, "ScatterND")


@register("TensorScatter", since=24)
def tensor_scatter(past_cache, update, write_indices=None, /, *, axis=-2, mode="linear"):
    """Write ``update`` into a copy of the cache along ``axis`` from each batch entry's
    write index (wrapping around the cache length in circular mode)."""
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("linear", "circular"):
        raise ValueError(f"TensorScatter: unknown mode '{mode}'")
    a = normalize_axis(axis, past_cache.ndim, "TensorScatter")
    if a == 0:
        raise ValueError("TensorScatter: axis cannot be the batch axis 0")
    shape_ok = update.ndim == past_cache.ndim and all(
        u == p
        for d, (u, p) in enumerate(zip(update.shape, past_cache.shape, strict=True))
        if d != a
    )
    if not shape_ok:
        raise ValueError(
            f"TensorScatter: update {update.shape} does not fit cache {past_cache.shape}"
        )
    batch, max_len, steps = past_cache.shape[0], past_cache.shape[a], update.shape[a]
    if write_indices is None:
        start = np.zeros(batch, dtype=np.int64)
    else:
        start = np.asarray(write_indices, dtype=np.int64).reshape(-1)
    pos = start[:, None] + np.arange(steps)[None, :]
    if mode == "circular":
        pos = np.mod(pos, max_len)
    elif np.any((pos < 0) | (pos >= max_len)):
        raise ValueError("TensorScatter: write_indices + sequence length exceed the cache length")
    out = past_cache.copy()
    np.moveaxis(out, a, 1)[np.arange(batch)[:, None], pos] = np.moveaxis(update, a, 1)
    return out


# -- index producers -------------------------------------------------------------------------
@register("NonZero", since=(9, 13))
def non_zero(x, /) -> np.ndarray:
    """Coordinates of non-zero elements, one row per axis (shape (0, N) for a scalar)."""
    x = np.asarray(x)
    if x.ndim == 0:
        return np.zeros((0, int(bool(x))), dtype=np.int64)
    if x.dtype == object:
        x = x.astype(bool)
    return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@register("Compress", since=(9, 11, 28))
def compress(input, condition, /, *, axis=None) -> np.ndarray:
    data = np.asarray(input)
    if axis is None:
        data, a = data.reshape(-1), 0
    else:
        a = normalize_axis(axis, data.ndim, "Compress")
    picked = np.flatnonzero(np.asarray(condition).reshape(-1))
    if picked.size and picked[-1] >= data.shape[a]:
        raise ValueError(
            f"Compress: condition selects index {picked[-1]} beyond size {data.shape[a]}"
        )
    return np.take(data, picked, axis=a)


def _by_first_occurrence(first: np.ndarray, inverse: np.ndarray, counts: np.ndarray):
    """Reorder np.unique's sorted results by first occurrence: (order, first, inverse, counts)."""
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return order, first[order], rank[inverse], counts[order]


@register("Unique", since=(11, 28))
def unique(x, /, *, axis=None, sorted=1) -> tuple:
    """Y, first-occurrence indices, inverse indices and counts, sorted or in input order."""
    x = np.asarray(x)
    if axis is None:
        y, first, inverse, counts = np.unique(
            x.reshape(-1), return_index=True, return_inverse=True, return_counts=True
        )
        a = 0
    else:
        a = normalize_axis(axis, x.ndim, "Unique")
        y, first, inverse, counts = np.unique(
            x, return_index=True, return_inverse=True, return_counts=True, axis=a
        )
    inverse = inverse.reshape(-1)
    if not sorted:
        order, first, inverse, counts = _by_first_occurrence(first, inverse, counts)
        y = np.take(y, order, axis=a)
    i64 = np.int64
    return y.astype(x.dtype), first.astype(i64), inverse.astype(i64), counts.astype(i64)


@register("OneHot", since=(9, 11, 28))
def one_hot(indices, depth, values, /, *, axis=-1) -> np.ndarray:
    """``values[1]`` where the index matches (negatives wrapped), ``values[0]`` elsewhere;
    indices outside [-depth, depth-1] give an all-off row."""
    idx = np.asarray(indices)
    idx = idx.astype(np.int64) if idx.dtype.kind in "iu" else np.trunc(idx).astype(np.int64)
    d = int(np.asarray(depth).reshape(-1)[0])
    if np.size(depth) != 1 or d < 1:
        raise ValueError(f"OneHot: depth must be a single positive value, got {depth}")
    vals = np.asarray(values).reshape(-1)
    if vals.size != 2:
        raise ValueError(f"OneHot: values must hold [off_value, on_value], got {vals.size}")
    r = idx.ndim + 1
    if not -r <= axis < r:
        raise ValueError(f"OneHot: axis {axis} is out of range for output rank {r}")
    a = axis + r if axis < 0 else axis
    idx = np.where(idx < 0, idx + d, idx)
    classes = np.arange(d).reshape((d,) + (1,) * (r - 1 - a))
    hit = np.expand_dims(idx, a) == classes
    out = np.full(hit.shape, vals[0], dtype=vals.dtype)
    out[hit] = vals[1]
    return out


def _top_k(x: np.ndarray, k: int, axis: int, largest: int, sorted_: int) -> tuple:
    a = normalize_axis(axis, x.ndim, "TopK")
    n = x.shape[a]
    if not 0 <= k <= n:
        raise ValueError(f"TopK: k={k} is out of range for an axis of size {n}")
    if 0 < k and 4 * k <= n and n >= 64 and x.dtype.kind in "iuf":
        if x.dtype.kind != "f" or not np.isnan(x).any():
            return _top_k_partial(x, k, a, largest)
    order = _sorted_order(x, a, largest)
    idx = np.take(order, np.arange(k), axis=a).astype(np.int64)
    return np.take_along_axis(x, idx, axis=a), idx


def _sorted_order(x: np.ndarray, a: int, largest: int) -> np.ndarray:
    """Indices sorting ``x`` along ``a``; ties keep increasing index (both directions)."""
    if not largest:
        return np.argsort(x, axis=a, kind="stable")
    # Stable ascending sort of the reversed axis, read backwards: descending values with
    # ties in increasing original index.
    n = x.shape[a]
    rev = np.flip(x, axis=a)
    return n - 1 - np.flip(np.argsort(rev, axis=a, kind="stable"), axis=a)


def _top_k_partial(x: np.ndarray, k: int, a: int, largest: int) -> tuple:
    """TopK by partial selection: O(n) per row to find the k-th value, then a sort of k.

    The k-th value ``t`` comes from ``np.partition``; every element strictly better than ``t``
    is taken, and of those equal to ``t`` the lowest indices fill the rest, which is the
    tie order the full stable sort gives. ``nonzero`` lists the chosen positions in index
    order; a stable sort of their k values finishes.
    Callers route NaN-holding floats to the full sort.
    """
    xm = np.moveaxis(x, a, -1)
    n = xm.shape[-1]
    kth = n - k if largest else k - 1
    t = np.partition(xm, kth, axis=-1)[..., kth : kth + 1]
    better = xm > t if largest else xm < t
    tie = xm == t
    need = k - np.count_nonzero(better, axis=-1, keepdims=True)
    chosen = np.logical_or(better, tie, out=better).reshape(-1, n)
    extra = np.nonzero((np.count_nonzero(tie, axis=-1, keepdims=True) > need).reshape(-1))[0]
    if len(extra):  # rows with more ties at t than places left: keep the lowest indices
        ties = tie.reshape(-1, n)[extra]
        drop = ties & (np.cumsum(ties, axis=-1) > need.reshape(-1, 1)[extra])
        chosen[extra] &= ~drop
    # exactly k per row, found in row-major (so increasing-index) order
    pos = np.nonzero(chosen)[1].reshape((*xm.shape[:-1], k))
    vals = np.take_along_axis(xm, pos, axis=-1)
    order = _sorted_order(vals, vals.ndim - 1, largest)
    idx = np.take_along_axis(pos, order, axis=-1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=-1)
    return np.moveaxis(vals, -1, a), np.moveaxis(idx, -1, a)


@register("TopK", since=1)
def top_k_1(x, /, *, k=None, axis=-1) -> tuple:
    if k is None:
        raise ValueError("TopK-1 needs the 'k' attribute")
    return _top_k(x, int(k), axis, 1, 1)


@register("TopK", since=(10, 11, 24))
def top_k(x, k, /, *, axis=-1, largest=1, sorted=1) -> tuple:
    """Sorted results also serve sorted=0 (whose order the spec leaves open)."""
    return _top_k(x, as_int(k, "TopK K"), axis, largest, sorted)
