"""Image operators: Resize, Upsample, GridSample, AffineGrid, RoiAlign, NonMaxSuppression,
ImageDecoder.

Resize is separable: each resized axis gets, per output index, the input taps and weights of
its filter (nearest becomes a plain index gather), applied as one matmul with the dense
(out, in) matrix for short axes or one gather per tap for long ones. That one construction
serves linear, cubic, antialiasing and exclude_outside alike.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from onnxpy import errors
from onnxpy.kernels.ai_onnx.conv import compute_dtype
from onnxpy.kernels.registry import NodeInfo, register


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _float_dtype(dtype: np.dtype) -> np.dtype:
    """Working dtype of an interpolation: the input's own float type, widened if narrow."""
    if np.issubdtype(dtype, np.floating) or dtype.kind == "V":
        return compute_dtype(dtype)
    return np.dtype(np.float64)


def _cast_result(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the input dtype; integers are rounded and saturated rather than wrapped."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(y), info.min, info.max).astype(dtype)
    if dtype == np.bool_:
        return y != 0
    return y.astype(dtype, copy=False)


# -- Resize: one axis ------------------------------------------------------------------------------


def _source_coords(
    mode: str,
    out_len: int,
    length: float,
    in_len: int,
    scale: float,
    start: float,
    end: float,
) -> np.ndarray:
    """x_original of every output index along one axis, per coordinate_transformation_mode.

    ``length`` is the resized length before flooring to ``out_len`` (``in * scale`` when
    scales are given): align_corners, tf_crop_and_resize and half_pixel_symmetric use it.
    """
    i = np.arange(out_len, dtype=np.float64)
    if mode == "half_pixel":
        return (i + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = out_len / length
        offset = in_len / 2 * (1 - adjustment)
        return offset + (i + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (i + 0.5) / scale - 0.5 if out_len > 1 else np.zeros(out_len)
    if mode == "align_corners":
        return i * (in_len - 1) / (length - 1) if out_len > 1 else np.zeros(out_len)
    if mode == "asymmetric":
        return i / scale
    if mode == "tf_half_pixel_for_nn":
        return (i + 0.5) / scale
    if mode == "tf_crop_and_resize":
        if out_len > 1:
            return start * (in_len - 1) + i * (end - start) * (in_len - 1) / (length - 1)
        return np.full(out_len, 0.5 * (start + end) * (in_len - 1))
    raise ValueError(f"unknown coordinate_transformation_mode '{mode}'")


def _nearest_index(x: np.ndarray, nearest_mode: str, in_len: int) -> np.ndarray:
    if nearest_mode == "round_prefer_floor":
        idx = np.ceil(x - 0.5)
    elif nearest_mode == "round_prefer_ceil":
        idx = np.floor(x + 0.5)
    elif nearest_mode == "floor":
        idx = np.floor(x)
    elif nearest_mode == "ceil":
        idx = np.ceil(x)
    else:
        raise ValueError(f"unknown nearest_mode '{nearest_mode}'")
    return np.clip(idx, 0, in_len - 1).astype(np.int64)


def _linear_kernel(t: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(t))


def _cubic_kernel(t: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with coefficient ``a`` (support [-2, 2])."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _interp_taps(
    x: np.ndarray,
    in_len: int,
    cubic: bool,
    a: float,
    exclude_outside: bool,
    kernel_scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights, both (out, taps), of linear/cubic interpolation at ``x``.

    ``kernel_scale`` < 1 stretches the filter (antialiasing); its weights are then normalised.
    Taps past the edges read the edge sample, or are dropped with the remaining weights
    renormalised when ``exclude_outside``.
    """
    support = (2.0 if cubic else 1.0) / kernel_scale
    reach = math.ceil(support)
    base = np.floor(x).astype(np.int64)
    taps = base[:, None] + np.arange(-reach + 1, reach + 1)[None, :]
    t = (taps - x[:, None]) * kernel_scale
    w = _cubic_kernel(t, a) if cubic else _linear_kernel(t)
    if exclude_outside:
        w = np.where((taps >= 0) & (taps < in_len), w, 0.0)
    if exclude_outside or kernel_scale < 1:
        total = w.sum(axis=1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    return np.clip(taps, 0, in_len - 1), w


# Up to this input length an axis is resized by one matmul with the dense (out, in) matrix;
# past it, by a gather per tap (the dense product grows as out * in).
_DENSE_MAX = 256


def _apply_taps(x: np.ndarray, axis: int, taps: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y[..., o, ...] = sum_t w[o, t] * x[..., taps[o, t], ...] along ``axis``."""
    in_len = x.shape[axis]
    if in_len <= _DENSE_MAX:
        m = np.zeros((taps.shape[0], in_len), dtype=np.float64)
        rows = np.broadcast_to(np.arange(taps.shape[0])[:, None], taps.shape)
        np.add.at(m, (rows, taps), w)
        return np.moveaxis(np.moveaxis(x, axis, -1) @ m.T.astype(x.dtype), -1, axis)
    shape = [1] * x.ndim
    shape[axis] = taps.shape[0]
    wt = w.astype(x.dtype)
    acc = np.take(x, taps[:, 0], axis=axis) * wt[:, 0].reshape(shape)
    for t in range(1, taps.shape[1]):
        acc += np.take(x, taps[:, t], axis=axis) * wt[:, t].reshape(shape)
    return acc


class _ResizeSpec:
    def __init__(
        self,
        mode: str,
        coord_mode: str,
        nearest_mode: str,
        cubic_coeff_a: float,
        exclude_outside: int,
        extrapolation_value: float,
        antialias: int,
    ) -> None:
        self.mode = mode
        self.coord_mode = coord_mode
        self.nearest_mode = nearest_mode
        self.a = float(cubic_coeff_a)
        self.exclude_outside = bool(exclude_outside)
        self.extrapolation_value = float(extrapolation_value)
        self.antialias = bool(antialias)
        if mode not in ("nearest", "linear", "cubic"):
            raise ValueError(f"unknown Resize mode '{mode}'")


def _resize(
    x: np.ndarray,
    out_shape: Sequence[int],
    scales: Sequence[float],
    lengths: Sequence[float],
    roi: Sequence[tuple[float, float]],
    spec: _ResizeSpec,
) -> np.ndarray:
    """Resize every axis whose size, scale or RoI asks for it, one axis at a time."""
    crop = spec.coord_mode == "tf_crop_and_resize"
    nearest = spec.mode == "nearest"
    y = np.asarray(x) if nearest else np.asarray(x, dtype=_float_dtype(x.dtype))
    outside = None
    for axis, (in_len, out_len) in enumerate(zip(x.shape, out_shape, strict=True)):
        scale = float(scales[axis])
        if out_len == in_len and scale == 1.0 and not crop:
            continue
        coords = _source_coords(spec.coord_mode, out_len, lengths[axis], in_len, scale, *roi[axis])
        if crop:
            bad = (coords < 0) | (coords > in_len - 1)
            shape = [1] * x.ndim
            shape[axis] = out_len
            bad = bad.reshape(shape)
            outside = bad if outside is None else outside | bad
        if nearest:
            y = np.take(y, _nearest_index(coords, spec.nearest_mode, in_len), axis=axis)
            continue
        kscale = min(scale, 1.0) if spec.antialias else 1.0
        taps, w = _interp_taps(
            coords, in_len, spec.mode == "cubic", spec.a, spec.exclude_outside, kscale
        )
        y = _apply_taps(y, axis, taps, w)
    if outside is not None and outside.any():
        y = np.where(outside, np.asarray(spec.extrapolation_value).astype(y.dtype), y)
    return _cast_result(y, x.dtype) if not nearest else np.ascontiguousarray(y)


def _normalize_axes(axes: Sequence[int] | None, rank: int) -> list[int]:
    if not axes:
        return list(range(rank))
    out = [int(a) + rank if int(a) < 0 else int(a) for a in axes]
    if any(not 0 <= a < rank for a in out):
        raise ValueError(f"axes {list(axes)} out of range for rank {rank}")
    return out


def _resize_targets(
    x_shape: Sequence[int],
    axes: list[int],
    scales: np.ndarray | None,
    sizes: np.ndarray | None,
    policy: str,
    crop_roi: list[tuple[float, float]] | None,
) -> tuple[list[int], list[float], list[float]]:
    """Output shape, and per axis the scale and unfloored length the coordinate transform uses."""
    rank = len(x_shape)
    out = list(x_shape)
    sc = [1.0] * rank
    lengths = [float(v) for v in x_shape]
    if scales is not None and scales.size:
        if sizes is not None and sizes.size:
            raise ValueError("Resize takes scales or sizes, not both")
        if scales.size != len(axes):
            raise ValueError(f"scales has {scales.size} values for {len(axes)} axes")
        for a, s in zip(axes, scales.tolist(), strict=True):
            if s <= 0:
                raise ValueError(f"scales must be positive, got {s}")
            span = 1.0
            if crop_roi is not None:
                span = crop_roi[a][1] - crop_roi[a][0]
            lengths[a] = x_shape[a] * span * s
            out[a] = int(math.floor(lengths[a]))
            sc[a] = float(s)
        return out, sc, lengths
    if sizes is None or not sizes.size:
        raise ValueError("Resize needs one of scales or sizes")
    if sizes.size != len(axes):
        raise ValueError(f"sizes has {sizes.size} values for {len(axes)} axes")
    target = [int(v) for v in sizes.tolist()]
    if policy == "stretch":
        for a, t in zip(axes, target, strict=True):
            out[a] = t
            lengths[a] = float(t)
            sc[a] = t / x_shape[a]
        return out, sc, lengths
    ratios = [t / x_shape[a] for a, t in zip(axes, target, strict=True)]
    if policy == "not_larger":
        common = min(ratios)
    elif policy == "not_smaller":
        common = max(ratios)
    else:
        raise ValueError(f"unknown keep_aspect_ratio_policy '{policy}'")
    for a in axes:
        out[a] = int(math.floor(common * x_shape[a] + 0.5))
        lengths[a] = float(out[a])
        sc[a] = common
    return out, sc, lengths


@register("Resize", since=(11, 13, 18, 19))
def resize(
    x: np.ndarray,
    roi: np.ndarray | None = None,
    scales: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
    /,
    *,
    antialias: int = 0,
    axes: list[int] | None = None,
    coordinate_transformation_mode: str = "half_pixel",
    cubic_coeff_a: float = -0.75,
    exclude_outside: int = 0,
    extrapolation_value: float = 0.0,
    keep_aspect_ratio_policy: str = "stretch",
    mode: str = "nearest",
    nearest_mode: str = "round_prefer_floor",
) -> np.ndarray:
    """Resize by scales or sizes over all axes or the listed ``axes``."""
    spec = _ResizeSpec(
        _text(mode),
        _text(coordinate_transformation_mode),
        _text(nearest_mode),
        cubic_coeff_a,
        exclude_outside,
        extrapolation_value,
        antialias,
    )
    rank = x.ndim
    ax = _normalize_axes(axes, rank)
    roi_pairs = [(0.0, 1.0)] * rank
    if roi is not None and np.asarray(roi).size:
        r = np.asarray(roi, dtype=np.float64).reshape(-1)
        if r.size != 2 * len(ax):
            raise ValueError(f"roi has {r.size} values for {len(ax)} axes")
        for j, a in enumerate(ax):
            roi_pairs[a] = (float(r[j]), float(r[j + len(ax)]))
    crop = spec.coord_mode == "tf_crop_and_resize"
    out, sc, lengths = _resize_targets(
        x.shape,
        ax,
        None if scales is None else np.asarray(scales, dtype=np.float64).reshape(-1),
        None if sizes is None else np.asarray(sizes, dtype=np.int64).reshape(-1),
        _text(keep_aspect_ratio_policy),
        roi_pairs if crop else None,
    )
    return _resize(x, out, sc, lengths, roi_pairs, spec)


def _legacy_resize(x: np.ndarray, scales: Sequence[float], mode: str) -> np.ndarray:
    """Upsample / Resize-10: asymmetric coordinates, nearest rounds down."""
    mode = _text(mode)
    if mode == "bilinear":
        mode = "linear"
    if len(scales) != x.ndim:
        raise ValueError(f"scales has {len(scales)} values for rank {x.ndim}")
    out = [int(math.floor(d * float(s))) for d, s in zip(x.shape, scales, strict=True)]
    spec = _ResizeSpec(mode, "asymmetric", "floor", -0.75, 0, 0.0, 0)
    lengths = [d * float(s) for d, s in zip(x.shape, scales, strict=True)]
    return _resize(x, out, [float(s) for s in scales], lengths, [(0.0, 1.0)] * x.ndim, spec)


@register("Resize", since=10)
def resize_10(x: np.ndarray, scales: np.ndarray, /, *, mode: str = "nearest") -> np.ndarray:
    """Resize-10: Upsample's semantics with downscaling allowed."""
    return _legacy_resize(x, np.asarray(scales, dtype=np.float64).reshape(-1).tolist(), mode)


@register("Upsample", since=(1, 7, 9, 10))
def upsample(
    x: np.ndarray,
    scales_input: np.ndarray | None = None,
    /,
    *,
    height_scale: float | None = None,
    mode: str = "nearest",
    scales: list[float] | None = None,
    width_scale: float | None = None,
) -> np.ndarray:
    """Upsample (deprecated): scales from the input (9+), the attribute (7) or H/W (1)."""
    if scales_input is not None:
        s = np.asarray(scales_input, dtype=np.float64).reshape(-1).tolist()
    elif scales is not None:
        s = [float(v) for v in scales]
    elif height_scale is not None and width_scale is not None:
        s = [1.0] * (x.ndim - 2) + [float(height_scale), float(width_scale)]
    else:
        raise ValueError("Upsample needs scales")
    return _legacy_resize(x, s, mode)


# -- GridSample / AffineGrid -----------------------------------------------------------------------


def _reflect(c: np.ndarray, twice_low: float, twice_high: float) -> np.ndarray:
    """Fold coordinates into [low, high] by repeated reflection at the borders."""
    if twice_low == twice_high:
        return np.zeros_like(c)
    low = twice_low / 2
    span = (twice_high - twice_low) / 2
    d = np.abs(c - low)
    extra = np.fmod(d, span)
    flips = np.floor(d / span)
    return np.where(flips % 2 == 0, extra + low, span - extra + low)


def _pad_coord(c: np.ndarray, size: int, padding: str, align: bool) -> np.ndarray:
    """Apply border/reflection padding to source coordinates (zeros leaves them)."""
    if padding == "border":
        return np.clip(c, 0, size - 1)
    if padding == "reflection":
        c = _reflect(c, 0, 2 * (size - 1)) if align else _reflect(c, -1, 2 * size - 1)
        return np.clip(c, 0, size - 1)
    return c


def _axis_taps(
    c: np.ndarray, size: int, mode: str, padding: str, align: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(index, weight) per interpolation tap along one axis; weight 0 where out of bounds."""
    taps: list[tuple[np.ndarray, np.ndarray]] = []
    if mode == "cubic":
        base = np.floor(c)
        t = c - base
        for k in range(-1, 3):
            idx = base + k
            w = _cubic_kernel(t - k, -0.75)
            idx = _pad_coord(idx, size, padding, align)
            taps.append((idx, w))
    else:
        c = _pad_coord(c, size, padding, align)
        if mode == "nearest":
            taps.append((np.rint(c), np.ones_like(c)))
        else:
            base = np.floor(c)
            t = c - base
            taps.append((base, 1 - t))
            taps.append((base + 1, t))
    out = []
    for idx, w in taps:
        inside = (idx >= 0) & (idx <= size - 1)
        out.append((np.clip(idx, 0, size - 1).astype(np.int64), np.where(inside, w, 0.0)))
    return out


def _unnormalize(g: np.ndarray, size: int, align: bool) -> np.ndarray:
    return (g + 1) / 2 * (size - 1) if align else ((g + 1) * size - 1) / 2


@register("GridSample", since=16)
def grid_sample_16(
    x: np.ndarray,
    grid: np.ndarray,
    /,
    *,
    align_corners: int = 0,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Opset 16 spells the modes bilinear/bicubic; opset 20 renamed them linear/cubic."""
    return grid_sample(x, grid, align_corners=align_corners, mode=mode, padding_mode=padding_mode)


@register("GridSample", since=(20, 22))
def grid_sample(
    x: np.ndarray,
    grid: np.ndarray,
    /,
    *,
    align_corners: int = 0,
    mode: str = "linear",
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Sample ``x`` at normalised grid positions (N-D; the last grid axis lists x first)."""
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(_text(mode), _text(mode))
    padding = _text(padding_mode)
    if mode not in ("linear", "nearest", "cubic"):
        raise ValueError(f"unknown GridSample mode '{mode}'")
    if padding not in ("zeros", "border", "reflection"):
        raise ValueError(f"unknown padding_mode '{padding}'")
    align = bool(align_corners)
    n, c = x.shape[:2]
    sizes = x.shape[2:]
    r = len(sizes)
    if grid.shape[-1] != r or grid.shape[0] != n:
        raise ValueError(f"grid shape {grid.shape} does not match input {x.shape}")
    out_sp = grid.shape[1:-1]
    dt = _float_dtype(x.dtype)
    g = np.asarray(grid, dtype=np.float64).reshape(n, -1, r)
    per_axis = []
    for a in range(r):
        coord = _unnormalize(g[..., r - 1 - a], sizes[a], align)
        per_axis.append(_axis_taps(coord, sizes[a], mode, padding, align))
    flat = np.asarray(x, dtype=dt).reshape(n, c, -1)
    y = np.zeros((n, c, g.shape[1]), dtype=dt)
    for combo in itertools.product(*per_axis):
        index = np.zeros(g.shape[:2], dtype=np.int64)
        weight = np.ones(g.shape[:2], dtype=np.float64)
        for a, (idx, w) in enumerate(combo):
            index = index * sizes[a] + idx
            weight = weight * w
        vals = np.take_along_axis(flat, index[:, None, :], axis=2)
        y += vals * weight[:, None, :].astype(dt)
    return _cast_result(y.reshape(n, c, *out_sp), x.dtype)


def _base_positions(size: int, align: bool) -> np.ndarray:
    if align:
        return np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(1)
    return (2 * np.arange(size, dtype=np.float64) + 1) / size - 1


@register("AffineGrid", since=20)
def affine_grid(theta: np.ndarray, size: np.ndarray, /, *, align_corners: int = 0) -> np.ndarray:
    """Sampling grid (N, *spatial, r) of theta applied to evenly spaced positions in [-1, 1]."""
    dims = [int(v) for v in np.asarray(size).reshape(-1)]
    n, spatial = dims[0], dims[2:]
    r = len(spatial)
    if theta.shape != (n, r, r + 1):
        raise ValueError(f"theta shape {theta.shape} does not match size {dims}")
    axes = [_base_positions(s, bool(align_corners)) for s in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")
    # Homogeneous positions listed innermost axis first: (x, y[, z], 1).
    pos = np.stack([*mesh[::-1], np.ones(mesh[0].shape)], axis=-1).reshape(-1, r + 1)
    dt = _float_dtype(theta.dtype)
    out = np.einsum("pk,nik->npi", pos, np.asarray(theta, dtype=np.float64))
    return out.reshape(n, *spatial, r).astype(dt).astype(theta.dtype, copy=False)


# -- RoiAlign -----------------------------------------------------------------------------------


def _roi_axis(start: float, extent: float, bins: int, samples: int, size: int):
    """Bilinear (low, high, w_low, w_high) per sample along one axis, zeroed outside."""
    k = np.arange(bins * samples, dtype=np.float64)
    pos = start + (k // samples + ((k % samples) + 0.5) / samples) * (extent / bins)
    valid = (pos >= -1.0) & (pos <= size)
    pos = np.maximum(pos, 0.0)
    low = np.floor(pos).astype(np.int64)
    at_end = low >= size - 1
    low = np.where(at_end, size - 1, low)
    high = np.where(at_end, size - 1, low + 1)
    pos = np.where(at_end, low.astype(np.float64), pos)
    frac = pos - low
    w_low = np.where(valid, 1 - frac, 0.0)
    w_high = np.where(valid, frac, 0.0)
    return low, high, w_low, w_high


def _roi_align(x, rois, batch_indices, mode, out_h, out_w, sampling_ratio, scale, half_pixel):
    mode = _text(mode)
    if mode not in ("avg", "max"):
        raise ValueError(f"unknown RoiAlign mode '{mode}'")
    out_h, out_w = int(out_h), int(out_w)
    _, c, h, w = x.shape
    dt = _float_dtype(x.dtype)
    xf = np.asarray(x, dtype=dt)
    boxes = np.asarray(rois, dtype=np.float64)
    batch = np.asarray(batch_indices, dtype=np.int64).reshape(-1)
    y = np.zeros((boxes.shape[0], c, out_h, out_w), dtype=dt)
    shift = 0.5 if half_pixel else 0.0
    for r in range(boxes.shape[0]):
        x1, y1, x2, y2 = (v * scale - shift for v in boxes[r])
        rw, rh = x2 - x1, y2 - y1
        if not half_pixel:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        sy = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / out_h)
        sx = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / out_w)
        sy, sx = max(int(sy), 1), max(int(sx), 1)
        ylo, yhi, wyl, wyh = _roi_axis(y1, rh, out_h, sy, h)
        xlo, xhi, wxl, wxh = _roi_axis(x1, rw, out_w, sx, w)
        img = xf[batch[r]]
        if mode == "avg":
            my = np.zeros((out_h * sy, h))
            mx = np.zeros((out_w * sx, w))
            rows_y, rows_x = np.arange(out_h * sy), np.arange(out_w * sx)
            np.add.at(my, (rows_y, ylo), wyl)
            np.add.at(my, (rows_y, yhi), wyh)
            np.add.at(mx, (rows_x, xlo), wxl)
            np.add.at(mx, (rows_x, xhi), wxh)
            ay = my.reshape(out_h, sy, h).sum(axis=1) / sy
            ax = mx.reshape(out_w, sx, w).sum(axis=1) / sx
            y[r] = ay.astype(dt) @ img @ ax.T.astype(dt)
        else:
            best = None
            for yi, wy in ((ylo, wyl), (yhi, wyh)):
                for xi, wx in ((xlo, wxl), (xhi, wxh)):
                    v = img[:, yi[:, None], xi[None, :]] * (wy[:, None] * wx[None, :]).astype(dt)
                    best = v if best is None else np.maximum(best, v)
            y[r] = best.reshape(c, out_h, sy, out_w, sx).max(axis=(2, 4))
    return y.astype(x.dtype, copy=False)


@register("RoiAlign", since=10)
def roi_align_10(
    x: np.ndarray,
    rois: np.ndarray,
    batch_indices: np.ndarray,
    /,
    *,
    mode: str = "avg",
    output_height: int = 1,
    output_width: int = 1,
    sampling_ratio: int = 0,
    spatial_scale: float = 1.0,
) -> np.ndarray:
    """RoiAlign-10: no half-pixel shift, RoI sides at least one pixel."""
    return _roi_align(
        x,
        rois,
        batch_indices,
        mode,
        output_height,
        output_width,
        sampling_ratio,
        spatial_scale,
        False,
    )


@register("RoiAlign", since=(16, 22))
def roi_align(
    x: np.ndarray,
    rois: np.ndarray,
    batch_indices: np.ndarray,
    /,
    *,
    coordinate_transformation_mode: str = "half_pixel",
    mode: str = "avg",
    output_height: int = 1,
    output_width: int = 1,
    sampling_ratio: int = 0,
    spatial_scale: float = 1.0,
) -> np.ndarray:
    """Average (or max) of bilinear samples on a regular grid in each RoI bin."""
    ctm = _text(coordinate_transformation_mode)
    if ctm not in ("half_pixel", "output_half_pixel"):
        raise ValueError(f"unknown coordinate_transformation_mode '{ctm}'")
    return _roi_align(
        x,
        rois,
        batch_indices,
        mode,
        output_height,
        output_width,
        sampling_ratio,
        spatial_scale,
        ctm == "half_pixel",
    )


# -- NonMaxSuppression ----------------------------------------------------------------------------


def _corners(boxes: np.ndarray, center_point_box: int) -> np.ndarray:
    """(y1, x1, y2, x2) with y1 <= y2 and x1 <= x2, from either box encoding."""
    if center_point_box:
        xc, yc, w, h = (boxes[..., i] for i in range(4))
        return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)
    y1, x1, y2, x2 = (boxes[..., i] for i in range(4))
    return np.stack(
        [np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2), np.maximum(x1, x2)], axis=-1
    )


def _iou(box: np.ndarray, boxes: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """IoU of one box with many; zero where either area is empty."""
    ih = np.maximum(0, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]))
    iw = np.maximum(0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]))
    inter = ih * iw
    area = (box[2] - box[0]) * (box[3] - box[1])
    union = area + areas - inter
    ok = (area > 0) & (areas > 0) & (union > 0)
    return np.divide(inter, union, out=np.zeros_like(inter), where=ok)


def _scalar(v: np.ndarray | None, default):
    """The single value of an optional scalar input (or a 1-element tensor), else ``default``."""
    if v is None or np.asarray(v).size == 0:
        return default
    return np.asarray(v).reshape(-1)[0].item()


@register("NonMaxSuppression", since=(10, 11))
def non_max_suppression(
    boxes: np.ndarray,
    scores: np.ndarray,
    max_output_boxes_per_class: np.ndarray | None = None,
    iou_threshold: np.ndarray | None = None,
    score_threshold: np.ndarray | None = None,
    /,
    *,
    center_point_box: int = 0,
) -> np.ndarray:
    """Greedy NMS per (batch, class): highest score first, drop boxes with IoU > threshold."""
    limit = int(_scalar(max_output_boxes_per_class, 0))
    selected: list[tuple[int, int, int]] = []
    if limit <= 0:
        return np.zeros((0, 3), dtype=np.int64)
    corners = _corners(np.asarray(boxes), center_point_box)
    # Compare in the boxes' precision, so an IoU equal to the threshold is kept.
    thr = np.asarray(_scalar(iou_threshold, 0.0), dtype=corners.dtype)
    min_score = _scalar(score_threshold, None)
    for b in range(scores.shape[0]):
        bx = corners[b]
        areas = (bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])
        for k in range(scores.shape[1]):
            s = np.asarray(scores[b, k])
            cand = np.arange(s.shape[0])
            if min_score is not None:
                cand = cand[s >= min_score]
            order = cand[np.argsort(-s[cand], kind="stable")]
            alive = np.ones(s.shape[0], dtype=bool)
            kept = 0
            for i in order:
                if not alive[i]:
                    continue
                selected.append((b, k, int(i)))
                kept += 1
                if kept >= limit:
                    break
                alive &= ~(_iou(bx[i], bx, areas) > thr)
    if not selected:
        return np.zeros((0, 3), dtype=np.int64)
    return np.array(selected, dtype=np.int64)


# -- ImageDecoder -------------------------------------------------------------------------------


@register("ImageDecoder", since=20, factory=True)
def image_decoder(
    info: NodeInfo, *, pixel_format: str = "RGB"
) -> Callable[[np.ndarray], np.ndarray]:
    """Decode an encoded image (uint8 bytes) to (H, W, C) uint8 with Pillow, if installed."""
    fmt = _text(pixel_format)
    if fmt not in ("RGB", "BGR", "Grayscale"):
        raise ValueError(f"unknown pixel_format '{fmt}'")
    if importlib.util.find_spec("PIL") is None:
        raise errors.NotImplemented(
            "ImageDecoder needs the optional dependency Pillow: pip install pillow"
        )

    def run(encoded: np.ndarray) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        channels = 1 if fmt == "Grayscale" else 3
        try:
            with Image.open(io.BytesIO(np.asarray(encoded, dtype=np.uint8).tobytes())) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                arr = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError):
            return np.zeros((0, 0, channels), dtype=np.uint8)
        if channels == 1:
            return np.ascontiguousarray(arr[:, :, None])
        return np.ascontiguousarray(arr[:, :, ::-1] if fmt == "BGR" else arr)

    return run
