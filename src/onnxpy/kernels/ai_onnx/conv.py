"""Convolution operators: Conv, ConvTranspose, ConvInteger, DeformConv, Col2Im.

Conv is the hot operator of image models, so it is a factory: a constant weight is re-laid out
once as a matrix, and each run is one im2col copy plus one BLAS matmul (a plain matmul for
1x1 stride-1 convolutions, a shift-and-accumulate loop over kernel taps for depthwise ones).
Half-precision inputs are computed in float32 and rounded back once at the end.

The geometry helpers (``resolve_pads``, ``pad_spatial``, ``window_view``) are shared with the
pooling family. (CausalConvWithState, a depthwise causal 1-D conv, lives in ``attention.py``.)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxpy.kernels.registry import NodeInfo, register

__all__ = [
    "resolve_pads",
    "pad_spatial",
    "window_view",
    "compute_dtype",
    "spatial_attr",
]


# -- shared geometry -------------------------------------------------------------------------


def spatial_attr(value: Sequence[int] | None, n: int, default: int) -> tuple[int, ...]:
    """An INTS attribute over ``n`` spatial axes, or ``default`` on each axis when absent."""
    if value is None or len(value) == 0:
        return (default,) * n
    if len(value) != n:
        raise ValueError(f"expected {n} values, got {list(value)}")
    return tuple(int(v) for v in value)


def _auto_pad_name(auto_pad: str | bytes) -> str:
    return auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)


def resolve_pads(
    in_shape: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
    auto_pad: str,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(begin pads, end pads) of a forward convolution or pooling window per the spec.

    SAME_* pads so that ``out = ceil(in / stride)``; an odd total puts the extra pad at the end
    (SAME_UPPER) or at the beginning (SAME_LOWER).
    """
    n = len(in_shape)
    mode = _auto_pad_name(auto_pad)
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i, k, s, d in zip(in_shape, kernel, strides, dilations, strict=True):
            out = -(-i // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - i)
            small, big = total // 2, total - total // 2
            begin.append(small if mode == "SAME_UPPER" else big)
            end.append(big if mode == "SAME_UPPER" else small)
        return tuple(begin), tuple(end)
    if mode == "VALID":
        return (0,) * n, (0,) * n
    if mode != "NOTSET":
        raise ValueError(f"unknown auto_pad '{mode}'")
    p = spatial_attr(pads, 2 * n, 0)
    return p[:n], p[n:]


def pad_spatial(
    x: np.ndarray, begin: Sequence[int], end: Sequence[int], value: Any = 0
) -> np.ndarray:
    """``x`` with its trailing ``len(begin)`` axes padded by ``value`` (``x`` itself if no pad)."""
    if not any(begin) and not any(end):
        return x
    lead = x.ndim - len(begin)
    shape = x.shape[:lead] + tuple(
        s + b + e for s, b, e in zip(x.shape[lead:], begin, end, strict=True)
    )
    out = np.full(shape, value, dtype=x.dtype)
    inner = tuple(slice(b, b + s) for b, s in zip(begin, x.shape[lead:], strict=True))
    out[(Ellipsis, *inner)] = x
    return out


def window_view(
    xp: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    out_shape: Sequence[int],
) -> np.ndarray:
    """Read-only view of shape ``lead + kernel + out`` over the trailing spatial axes of ``xp``.

    Element ``[..., k1..kn, o1..on]`` is ``xp[..., o1*s1 + k1*d1, ...]``: the im2col patches
    without copying.
    """
    n = len(kernel)
    lead = xp.ndim - n
    st = xp.strides[lead:]
    shape = xp.shape[:lead] + tuple(kernel) + tuple(out_shape)
    strides_ = (
        xp.strides[:lead]
        + tuple(s * d for s, d in zip(st, dilations, strict=True))
        + tuple(s * t for s, t in zip(st, strides, strict=True))
    )
    return np.lib.stride_tricks.as_strided(xp, shape, strides_, writeable=False)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype arithmetic runs in: float64 stays, every narrower float widens to float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _out_shape(
    in_shape: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    begin: Sequence[int],
    end: Sequence[int],
) -> tuple[int, ...]:
    out = tuple(
        (i + b + e - (k - 1) * d - 1) // s + 1
        for i, k, s, d, b, e in zip(in_shape, kernel, strides, dilations, begin, end, strict=True)
    )
    if any(o <= 0 for o in out):
        raise ValueError(f"the kernel does not fit the padded input (output shape {out})")
    return out


# -- Conv ------------------------------------------------------------------------------------


class _ConvGeometry:
    """Attributes of a forward convolution, resolved per input shape at run time."""

    def __init__(self, auto_pad, dilations, group, kernel_shape, pads, strides) -> None:
        self.auto_pad = _auto_pad_name(auto_pad)
        self.dilations = dilations
        self.group = int(group)
        self.kernel_shape = kernel_shape
        self.pads = pads
        self.strides = strides

    def resolve(self, x_shape: Sequence[int], w_shape: Sequence[int]):
        n = len(x_shape) - 2
        if len(w_shape) != n + 2:
            raise ValueError(f"weight rank {len(w_shape)} does not match input rank {len(x_shape)}")
        kernel = tuple(int(k) for k in w_shape[2:])
        if self.kernel_shape and tuple(self.kernel_shape) != kernel:
            raise ValueError(f"kernel_shape {list(self.kernel_shape)} != weight shape {kernel}")
        strides = spatial_attr(self.strides, n, 1)
        dilations = spatial_attr(self.dilations, n, 1)
        begin, end = resolve_pads(x_shape[2:], kernel, strides, dilations, self.pads, self.auto_pad)
        out = _out_shape(x_shape[2:], kernel, strides, dilations, begin, end)
        return kernel, strides, dilations, begin, end, out


class _PreparedWeight:
    """A Conv weight re-laid out for the path its shape selects."""

    def __init__(self, w: np.ndarray, group: int, dtype: np.dtype) -> None:
        m, cg = w.shape[0], w.shape[1]
        if m % group:
            raise ValueError(f"output channels {m} not divisible by group {group}")
        self.shape = w.shape
        self.group = group
        self.depthwise = group > 1 and cg == 1
        k = int(np.prod(w.shape[2:], dtype=np.int64))
        w = np.asarray(w, dtype=dtype)
        if self.depthwise:
            # (group, multiplier, taps): one scale per channel and kernel tap.
            self.mat = np.ascontiguousarray(w.reshape(group, m // group, k))
        elif group == 1:
            self.mat = np.ascontiguousarray(w.reshape(m, cg * k))
        else:
            self.mat = np.ascontiguousarray(w.reshape(group, m // group, cg * k))


def _conv_core(x: np.ndarray, pw: _PreparedWeight, geom: _ConvGeometry) -> np.ndarray:
    """Y = conv(x, W) in ``x.dtype`` (already the compute dtype), without bias."""
    kernel, strides, dilations, begin, end, out = geom.resolve(x.shape, pw.shape)
    n_batch, c = x.shape[:2]
    g = pw.group
    if c != pw.shape[1] * g:
        raise ValueError(f"input channels {c} != weight channels {pw.shape[1]} x group {g}")
    m = pw.shape[0]
    p = math.prod(out)
    pointwise = all(k == 1 for k in kernel) and all(s == 1 for s in strides)
    if pointwise and not any(begin) and not any(end) and not pw.depthwise:
        cols = x.reshape(n_batch, g, c // g, p) if g > 1 else x.reshape(n_batch, c, p)
        y = np.matmul(pw.mat, cols)
        return y.reshape((n_batch, m, *out))
    xp = pad_spatial(x, begin, end)
    if pw.depthwise:
        return _depthwise(xp, pw, kernel, strides, dilations, out)
    view = window_view(xp, kernel, strides, dilations, out)  # (N, C, *k, *out)
    if g == 1:
        cols = view.reshape(n_batch, pw.mat.shape[1], p)
    else:
        cols = view.reshape(n_batch, g, pw.mat.shape[2], p)
    y = np.matmul(pw.mat, cols)
    return y.reshape((n_batch, m, *out))


def _tap_offsets(kernel, dilations, steps) -> list[int]:
    """Flat offset of each kernel tap (row-major tap order) in an array with ``steps`` strides."""
    return [
        sum(o * d * st for o, d, st in zip(offs, dilations, steps, strict=True))
        for offs in itertools.product(*(range(k) for k in kernel))
    ]


def _depthwise(xp, pw: _PreparedWeight, kernel, strides, dilations, out) -> np.ndarray:
    """One channel per group: accumulate ``w[c, tap] * shifted input`` over the kernel taps.

    With one stride on every axis, each tap's shifted input is a single arithmetic run of the
    flattened padded image, so the multiply-adds stream over long contiguous rows; the few
    positions computed past each output row are dropped by a strided view at the end.
    """
    if len(set(strides)) != 1:
        return _depthwise_strided(xp, pw, kernel, strides, dilations, out)
    n_batch, c = xp.shape[:2]
    g, mult, _ = pw.mat.shape
    sp = xp.shape[2:]
    steps = [math.prod(sp[a + 1 :]) for a in range(len(sp))]
    s = strides[0]
    length = sum((o - 1) * st for o, st in zip(out, steps, strict=True)) + 1
    xf = np.ascontiguousarray(xp).reshape(n_batch, c, 1, -1)
    acc = np.empty((n_batch, g, mult, length), dtype=xp.dtype)
    tmp = np.empty_like(acc)
    for t, off in enumerate(_tap_offsets(kernel, dilations, steps)):
        src = xf[..., off : off + s * (length - 1) + 1 : s]
        wt = pw.mat[:, :, t, None]
        if t == 0:
            np.multiply(src, wt, out=acc)
        else:
            np.multiply(src, wt, out=tmp)
            acc += tmp
    item = acc.itemsize
    view = np.lib.stride_tricks.as_strided(
        acc, (n_batch, g, mult, *out), acc.strides[:3] + tuple(st * item for st in steps)
    )
    return np.ascontiguousarray(view).reshape((n_batch, g * mult, *out))


def _depthwise_strided(xp, pw: _PreparedWeight, kernel, strides, dilations, out) -> np.ndarray:
    """Depthwise taps over strided slices (axes with different strides)."""
    n_batch = xp.shape[0]
    g, mult, _ = pw.mat.shape
    nsp = len(kernel)
    acc = np.zeros((n_batch, g, mult, *out), dtype=xp.dtype)
    tmp = np.empty_like(acc)
    bshape = (g, mult) + (1,) * nsp
    for t, offs in enumerate(itertools.product(*(range(k) for k in kernel))):
        sl = tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s)
            for o, d, n, s in zip(offs, dilations, out, strides, strict=True)
        )
        shifted = xp[(slice(None), slice(None), *sl)][:, :, None]
        np.multiply(shifted, pw.mat[:, :, t].reshape(bshape), out=tmp)
        acc += tmp
    return acc.reshape((n_batch, g * mult, *out))


def _add_bias(y: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    if b is not None:
        y += np.asarray(b, dtype=y.dtype).reshape((-1,) + (1,) * (y.ndim - 2))
    return y


@register("Conv", since=(1, 11, 22), factory=True)
def conv(
    info: NodeInfo,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Callable[..., np.ndarray]:
    """N-D convolution; a constant weight is re-laid out once, here."""
    geom = _ConvGeometry(auto_pad, dilations, group, kernel_shape, pads, strides)
    const_w = info.constant_inputs.get(1)
    cached: dict[np.dtype, _PreparedWeight] = {}
    if const_w is not None:
        dt = compute_dtype(const_w.dtype)
        cached[dt] = _PreparedWeight(const_w, geom.group, dt)

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        dt = compute_dtype(x.dtype)
        pw = cached.get(dt) if const_w is not None else None
        if pw is None:
            pw = _PreparedWeight(w, geom.group, dt)
        y = _conv_core(np.asarray(x, dtype=dt), pw, geom)
        return _add_bias(y, b).astype(x.dtype, copy=False)

    return run


@register("ConvInteger", since=10, factory=True)
def conv_integer(
    info: NodeInfo,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Callable[..., np.ndarray]:
    """Integer convolution of zero-point-shifted operands, accumulated exactly into int32.

    Products of 8-bit values summed in float64 are exact far beyond any realistic kernel
    size, and float64 takes the BLAS path.
    """
    geom = _ConvGeometry(auto_pad, dilations, group, kernel_shape, pads, strides)
    f64 = np.dtype(np.float64)

    def shifted_weight(w, w_zero_point) -> _PreparedWeight:
        wf = np.asarray(w, dtype=np.float64)
        if w_zero_point is not None:
            wz = np.asarray(w_zero_point, dtype=np.float64).reshape(-1)
            wz = wz.reshape((-1,) + (1,) * (wf.ndim - 1)) if wz.size > 1 else wz[0]
            wf = wf - wz
        return _PreparedWeight(wf, geom.group, f64)

    consts = info.constant_inputs
    prepared = None
    if 1 in consts and (info.num_inputs < 4 or 3 in consts):
        prepared = shifted_weight(consts[1], consts.get(3))

    def run(x, w, x_zero_point=None, w_zero_point=None) -> np.ndarray:
        xf = np.asarray(x, dtype=np.float64)
        if x_zero_point is not None:
            xf = xf - float(np.asarray(x_zero_point).reshape(-1)[0])
        pw = prepared if prepared is not None else shifted_weight(w, w_zero_point)
        y = _conv_core(xf, pw, geom)
        return np.rint(y).astype(np.int64).astype(np.int32)

    return run


# -- ConvTranspose -----------------------------------------------------------------------------


def _transpose_pads(
    in_shape, kernel, strides, dilations, pads, auto_pad, output_padding, output_shape
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(begin, end) crop of the full transposed output, from pads, output_shape or auto_pad."""
    n = len(in_shape)
    mode = _auto_pad_name(auto_pad)
    full = [
        s * (i - 1) + op + (k - 1) * d + 1
        for i, k, s, d, op in zip(in_shape, kernel, strides, dilations, output_padding, strict=True)
    ]
    if output_shape is not None and len(output_shape) > 0:
        target = [int(v) for v in output_shape][-n:]
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        target = [i * s for i, s in zip(in_shape, strides, strict=True)]
    else:
        if mode not in ("NOTSET", "VALID"):
            raise ValueError(f"unknown auto_pad '{mode}'")
        p = spatial_attr(pads, 2 * n, 0) if mode == "NOTSET" else (0,) * (2 * n)
        return p[:n], p[n:]
    begin, end = [], []
    for f, t in zip(full, target, strict=True):
        total = f - t
        if mode == "SAME_UPPER":
            begin.append(total // 2)
            end.append(total - total // 2)
        else:
            begin.append(total - total // 2)
            end.append(total // 2)
    return tuple(begin), tuple(end)


def _scatter_taps(cols, kernel, strides, dilations, in_shape, full_shape, dtype) -> np.ndarray:
    """Sum kernel-tap planes ``cols[:, :, *tap, *in]`` into an image of ``full_shape``.

    Tap ``t`` of input position ``i`` lands on ``i*stride + t*dilation``: the adjoint of im2col.
    """
    lead = cols.shape[:2]
    full = np.zeros(lead + tuple(full_shape), dtype=dtype)
    for offs in itertools.product(*(range(k) for k in kernel)):
        sl = tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s)
            for o, d, n, s in zip(offs, dilations, in_shape, strides, strict=True)
        )
        full[(slice(None), slice(None), *sl)] += cols[(slice(None), slice(None), *offs)]
    return full


def _crop(full: np.ndarray, begin: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """Window ``[begin, begin + out)`` of the trailing axes of ``full``, zero where outside."""
    n = len(out)
    lead = full.shape[: full.ndim - n]
    if all(b >= 0 and b + o <= f for b, o, f in zip(begin, out, full.shape[-n:], strict=True)):
        return full[(Ellipsis, *(slice(b, b + o) for b, o in zip(begin, out, strict=True)))]
    y = np.zeros(lead + tuple(out), dtype=full.dtype)
    src, dst = [], []
    for b, o, f in zip(begin, out, full.shape[-n:], strict=True):
        lo, hi = max(b, 0), min(b + o, f)
        if hi <= lo:
            return y
        src.append(slice(lo, hi))
        dst.append(slice(lo - b, hi - b))
    y[(Ellipsis, *dst)] = full[(Ellipsis, *src)]
    return y


@register("ConvTranspose", since=(1, 11, 22))
def conv_transpose(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    /,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    output_padding: list[int] | None = None,
    output_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> np.ndarray:
    """Gradient of Conv w.r.t. its input: per-tap matmul, then a scatter-add of the taps."""
    n = x.ndim - 2
    n_batch, c = x.shape[:2]
    in_shape = x.shape[2:]
    kernel = tuple(int(k) for k in w.shape[2:])
    if kernel_shape and tuple(kernel_shape) != kernel:
        raise ValueError(f"kernel_shape {list(kernel_shape)} != weight shape {kernel}")
    strides_ = spatial_attr(strides, n, 1)
    dil = spatial_attr(dilations, n, 1)
    opad = spatial_attr(output_padding, n, 0)
    g = int(group)
    if c != w.shape[0] or c % g:
        raise ValueError(f"input channels {c} do not match weight {w.shape} and group {g}")
    mg = w.shape[1]
    m = mg * g
    dt = compute_dtype(x.dtype)
    k = math.prod(kernel)
    p = math.prod(in_shape)
    xg = np.asarray(x, dtype=dt).reshape(n_batch, g, c // g, p)
    wg = np.asarray(w, dtype=dt).reshape(g, c // g, mg * k).transpose(0, 2, 1)
    cols = np.matmul(wg, xg).reshape((n_batch, m, *kernel, *in_shape))
    full_shape = [
        s * (i - 1) + (kk - 1) * d + 1
        for i, kk, s, d in zip(in_shape, kernel, strides_, dil, strict=True)
    ]
    full = _scatter_taps(cols, kernel, strides_, dil, in_shape, full_shape, dt)
    begin, end = _transpose_pads(
        in_shape, kernel, strides_, dil, pads, auto_pad, opad, output_shape
    )
    out = [f + op - bb - e for f, op, bb, e in zip(full_shape, opad, begin, end, strict=True)]
    if any(o <= 0 for o in out):
        raise ValueError(f"ConvTranspose output shape {out} is not positive")
    y = np.array(_crop(full, begin, out))
    return _add_bias(y, b).astype(x.dtype, copy=False)


# -- DeformConv ---------------------------------------------------------------------------------


def _bilinear_gather(img: np.ndarray, coords: list[np.ndarray]) -> np.ndarray:
    """Sample ``img`` (B, C, *S) at real coordinates (B, *Q) per axis; zero outside the image.

    Returns (B, C, *Q). Each of the 2**n corners contributes its N-linear weight when inside.
    """
    b, c = img.shape[:2]
    sizes = img.shape[2:]
    flat = img.reshape(b, c, -1)
    qshape = coords[0].shape[1:]
    lows = [np.floor(q) for q in coords]
    fracs = [q - lo for q, lo in zip(coords, lows, strict=True)]
    lows_i = [lo.astype(np.int64) for lo in lows]
    out = np.zeros((b, c, *qshape), dtype=img.dtype)
    for corner in itertools.product((0, 1), repeat=len(sizes)):
        weight = np.ones(coords[0].shape, dtype=img.dtype)
        index = np.zeros(coords[0].shape, dtype=np.int64)
        valid = np.ones(coords[0].shape, dtype=bool)
        for ax, bit in enumerate(corner):
            pos = lows_i[ax] + bit
            weight = weight * (fracs[ax] if bit else 1 - fracs[ax])
            valid &= (pos >= 0) & (pos < sizes[ax])
            index = index * sizes[ax] + np.clip(pos, 0, sizes[ax] - 1)
        weight = np.where(valid, weight, 0).astype(img.dtype)
        vals = np.take_along_axis(flat, index.reshape(b, 1, -1), axis=2)
        out += vals.reshape(b, c, *qshape) * weight[:, None]
    return out


@register("DeformConv", since=(19, 22))
def deform_conv(
    x: np.ndarray,
    w: np.ndarray,
    offset: np.ndarray,
    b: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    /,
    *,
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    offset_group: int = 1,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> np.ndarray:
    """Convolution whose taps sample the input at learned, N-linearly interpolated offsets."""
    nsp = x.ndim - 2
    n_batch, c = x.shape[:2]
    in_shape = x.shape[2:]
    kernel = tuple(int(k) for k in w.shape[2:])
    if kernel_shape and tuple(kernel_shape) != kernel:
        raise ValueError(f"kernel_shape {list(kernel_shape)} != weight shape {kernel}")
    strides_ = spatial_attr(strides, nsp, 1)
    dil = spatial_attr(dilations, nsp, 1)
    p = spatial_attr(pads, 2 * nsp, 0)
    begin, end = p[:nsp], p[nsp:]
    out = _out_shape(in_shape, kernel, strides_, dil, begin, end)
    og = int(offset_group)
    k = math.prod(kernel)
    dt = compute_dtype(x.dtype)
    off = np.asarray(offset, dtype=dt).reshape(n_batch, og, k, nsp, *out)
    # Base sampling position of tap t at output o along axis a: o*s - pad_begin + t*d.
    taps = np.array(list(itertools.product(*(range(kk) for kk in kernel))), dtype=dt).reshape(
        k, nsp
    )
    coords = []
    for a in range(nsp):
        o = np.arange(out[a], dtype=dt) * strides_[a] - begin[a]
        oshape = [1] * nsp
        oshape[a] = out[a]
        base = taps[:, a].reshape((k,) + (1,) * nsp) * dil[a] + o.reshape(oshape)
        coords.append((off[:, :, :, a] + base).reshape(n_batch * og, k, *out))
    xg = np.asarray(x, dtype=dt).reshape(n_batch * og, c // og, *in_shape)
    cols = _bilinear_gather(xg, coords)  # (N*og, C/og, K, *out)
    cols = cols.reshape(n_batch, og, c // og, k, *out)
    if mask is not None:
        cols = cols * np.asarray(mask, dtype=dt).reshape(n_batch, og, 1, k, *out)
    g = int(group)
    m = w.shape[0]
    po = math.prod(out)
    cols = cols.reshape(n_batch, g, (c // g) * k, po)
    wg = np.asarray(w, dtype=dt).reshape(g, m // g, (c // g) * k)
    y = np.matmul(wg, cols).reshape(n_batch, m, *out)
    return _add_bias(y, b).astype(x.dtype, copy=False)


# -- Col2Im --------------------------------------------------------------------------------------


@register("Col2Im", since=18)
def col2im(
    x: np.ndarray,
    image_shape: np.ndarray,
    block_shape: np.ndarray,
    /,
    *,
    dilations: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> np.ndarray:
    """Sum sliding blocks (N, C*prod(block), L) back into images (N, C, *image_shape)."""
    image = tuple(int(v) for v in np.asarray(image_shape).reshape(-1))
    block = tuple(int(v) for v in np.asarray(block_shape).reshape(-1))
    n = len(image)
    strides_ = spatial_attr(strides, n, 1)
    dil = spatial_attr(dilations, n, 1)
    p = spatial_attr(pads, 2 * n, 0)
    begin, end = p[:n], p[n:]
    out = _out_shape(image, block, strides_, dil, begin, end)
    n_batch = x.shape[0]
    k = math.prod(block)
    if x.shape[1] % k or x.shape[2] != math.prod(out):
        raise ValueError(f"input shape {x.shape} does not match blocks {block} over {out}")
    cols = x.reshape((n_batch, x.shape[1] // k, *block, *out))
    padded = [i + bb + e for i, bb, e in zip(image, begin, end, strict=True)]
    full = _scatter_taps(cols, block, strides_, dil, out, padded, x.dtype)
    return np.ascontiguousarray(_crop(full, begin, image))
