"""Convolution operators: Conv, ConvTranspose, DeformConv, Col2Im (ConvInteger: ``qlinear.py``).

Conv is the hot operator of image models, so it is a factory: a constant weight is re-laid out
once as a matrix, and each run is one BLAS product written straight into the [N, M, *out]
result: a 1x1 stride-1 convolution multiplies the input itself (a [C, H*W] view), any other
kernel multiplies its im2col matrix (one copy of a strided window view into a reused per-thread
buffer; for large strided kernels, such as a 7x7 stride-2 stem, one copy per stride phase of
the input, ``kernels.depthwise.phase_columns``), 3x3 stride-1 layers of 64 channels or more
use Winograd F(2x2, 3x3) (16 smaller products), and depthwise ones one small product per
channel over its copied kernel taps (``kernels.depthwise``, which also adds the bias, as one
more tap whose row is all ones). On the single-group product paths the bias and com.microsoft
FusedConv's residual Z are written into the output first and the product is accumulated onto
them by BLAS (``kernels.blas.matmul_accumulate``, beta = 1: one write-only pass instead of a
read-write pass per term; ResNet-50 about 1 % faster on one thread); elsewhere they are added
in place after it. The activation is then applied in place (``conv_runner``).
(Carrying the bias in the product for the other paths too measured no faster on MobileNetV2,
and the weight copy with the extra column held ResNet-50's weights twice: 266 vs 206 MB.)
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

from onnxpy.kernels.blas import accumulates, matmul_accumulate
from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.kernels.depthwise import depthwise_conv, phase_columns, weight_with_bias
from onnxpy.kernels.registry import NodeInfo, register
from onnxpy.kernels.scratch import scratch
from onnxpy.kernels.threads import intra_op_threads

__all__ = [
    "conv_runner",
    "InplaceActivation",
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
        # (input shape, weight shape) -> resolved geometry: ~4 us of Python a call otherwise,
        # paid by every convolution of every run (MobileNets have 50 or more, on small maps).
        self._resolved: dict[tuple, tuple] = {}

    def resolve(self, x_shape: Sequence[int], w_shape: Sequence[int]):
        key = (tuple(x_shape), tuple(w_shape))
        found = self._resolved.get(key)
        if found is None:
            found = self._resolve(x_shape, w_shape)
            if len(self._resolved) >= 64:  # shapes that keep changing: keep the latest
                self._resolved.clear()
            self._resolved[key] = found
        return found

    def _resolve(self, x_shape: Sequence[int], w_shape: Sequence[int]):
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

    def __init__(self, w: np.ndarray, group: int, dtype: np.dtype, winograd: bool = False) -> None:
        m, cg = w.shape[0], w.shape[1]
        # Winograd-transformed weights, made on first use (only some input sizes use them).
        self.winograd = winograd and _winograd_worth_it(w.shape, group)
        self._wino: np.ndarray | None = None
        self._source = w if self.winograd else None
        if m % group:
            raise ValueError(f"output channels {m} not divisible by group {group}")
        self.shape = w.shape
        self.group = group
        self.depthwise = group > 1 and cg == 1
        k = int(np.prod(w.shape[2:], dtype=np.int64))
        w = np.asarray(w, dtype=dtype)
        self._with_bias: tuple[object, np.ndarray] | None = None
        if self.depthwise:
            # (group, multiplier, taps): one scale per channel and kernel tap.
            self.mat = np.ascontiguousarray(w.reshape(group, m // group, k))
        elif group == 1:
            self.mat = np.ascontiguousarray(w.reshape(m, cg * k))
        else:
            self.mat = np.ascontiguousarray(w.reshape(group, m // group, cg * k))


def _depthwise_weights(pw: _PreparedWeight, bias: np.ndarray | None) -> np.ndarray:
    """The depthwise weight, with ``bias`` as an extra tap (made once per bias array)."""
    if bias is None:
        return pw.mat
    held = pw._with_bias
    if held is None or held[0] is not bias:
        held = pw._with_bias = (bias, weight_with_bias(pw.mat, bias))
    return held[1]


def _winograd_weights(pw: _PreparedWeight, dtype: np.dtype) -> np.ndarray:
    if pw._wino is None:
        pw._wino = _winograd_weight(pw._source, dtype)
    return pw._wino


def _gemm_into(mat: np.ndarray, cols: np.ndarray, y: np.ndarray) -> None:
    """``y[...] = mat @ cols`` written by BLAS straight into ``y`` (one call when unbatched)."""
    if cols.shape[0] == 1:
        blas_matmul(mat, cols[0], out=y[0])
    else:
        blas_matmul(mat, cols, out=y)


def _checked_z(z: np.ndarray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """FusedConv's Z in the compute dtype, refused unless it broadcasts to the output."""
    zc = np.asarray(z, dtype=dtype)
    try:
        fits = np.broadcast_shapes(zc.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"Z of shape {zc.shape} does not match the output {shape}")
    return zc


def _gemm_onto(
    mat: np.ndarray, cols: np.ndarray, y: np.ndarray, bias: np.ndarray | None, z: np.ndarray | None
) -> None:
    """``y = mat @ cols + bias + z`` (``y`` [N, M, *out], ``cols`` [N, K, P]): the bias and
    Z written first, in one pass that only writes ``y``, and each product added onto them
    by BLAS as it is written (``matmul_accumulate``), instead of a pass that reads and
    writes the output for each term after the product."""
    if z is None:
        np.copyto(y, bias)
    elif bias is None:
        np.copyto(y, z)
    else:
        np.add(z, bias, out=y)
    y3 = y.reshape(y.shape[0], mat.shape[0], -1)
    for i in range(cols.shape[0]):
        matmul_accumulate(mat, np.ascontiguousarray(cols[i]), y3[i])


def _phase_split_pays(kernel: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether the im2col copy goes through stride-phase planes: strided kernels with at
    least 4 taps per phase on average (7x7 or 5x5 at stride 2, not 3x3 at stride 2 or
    non-overlapping patches; measured on one thread)."""
    phases = math.prod(strides)
    return phases > 1 and math.prod(kernel) >= 4 * phases


def _conv_core(
    x: np.ndarray,
    pw: _PreparedWeight,
    geom: _ConvGeometry,
    bias: np.ndarray | None = None,
    z: np.ndarray | None = None,
) -> tuple[np.ndarray, bool, bool]:
    """(Y = conv(x, W) as a fresh C-contiguous array in ``x.dtype`` (the compute dtype),
    whether ``bias`` is already added to it, whether ``z`` is): the depthwise path adds the
    bias; the single-group product paths add both, under the product, where NumPy's BLAS
    can accumulate (``_gemm_onto``); the others leave them.

    Every path but depthwise (``kernels.depthwise``) ends in one BLAS product written into
    the final [N, M, *out] buffer: a 1x1 stride-1 unpadded convolution multiplies the input
    itself, viewed as [C, H*W]; a strided 1x1 one multiplies a single subsampled copy; any
    other kernel multiplies its im2col matrix, built by one copy of a strided window view
    laid out [C * taps, H_out * W_out] (the order of the re-laid weight's columns), or for
    large strided kernels by one copy per stride phase from the phase planes.
    """
    kernel, strides, dilations, begin, end, out = geom.resolve(x.shape, pw.shape)
    n_batch, c = x.shape[:2]
    g = pw.group
    if c != pw.shape[1] * g:
        raise ValueError(f"input channels {c} != weight channels {pw.shape[1]} x group {g}")
    m = pw.shape[0]
    p = math.prod(out)
    padded = any(begin) or any(end)
    pointwise = all(k == 1 for k in kernel)
    if (
        pw.winograd
        and strides == (1, 1)
        and dilations == (1, 1)
        and min(out) >= _WINOGRAD_MIN_OUT
        and min(m, c) >= _winograd_min_channels()
    ):
        y = _winograd(x, _winograd_weights(pw, x.dtype), begin, out, bias)
        return y, bias is not None, False
    if pw.depthwise and not (pointwise and not padded):
        wmat = _depthwise_weights(pw, bias)
        y = depthwise_conv(x, wmat, kernel, strides, dilations, begin, end, out)
        return y, bias is not None, False
    y = np.empty((n_batch, m, *out), dtype=x.dtype)
    # group > 1: (G, M/G, K) @ (N, G, K, P) -> (N, G, M/G, P), one product per group.
    split = (n_batch, g) if g > 1 else (n_batch,)
    y3 = y.reshape((*split, m // g, p))
    kc = pw.mat.shape[-1]
    if pointwise and not padded:
        if all(s == 1 for s in strides):
            cols = x.reshape((*split, c // g, p))  # a view of a contiguous input
        else:
            sub = x[(Ellipsis, *(slice(None, None, s) for s in strides))]
            (cols,) = scratch((*split, c // g, p), dtype=x.dtype)
            np.copyto(cols.reshape(sub.shape), sub)
    elif _phase_split_pays(kernel, strides):
        cols = phase_columns(x, kernel, strides, dilations, begin, end, out)
        cols = cols.reshape((*split, kc, p))
    else:
        if padded:
            lead = x.shape[:2]
            inner = tuple(slice(b, b + i) for b, i in zip(begin, x.shape[2:], strict=True))
            shape = lead + tuple(i + b + e for i, b, e in zip(x.shape[2:], begin, end, strict=True))
            xp, cols = scratch(shape, (*split, kc, p), dtype=x.dtype)
            xp.fill(0)
            xp[(Ellipsis, *inner)] = x
        else:
            xp = x
            (cols,) = scratch((*split, kc, p), dtype=x.dtype)
        view = window_view(xp, kernel, strides, dilations, out)
        np.copyto(cols.reshape(view.shape), view)
    if g == 1 and (bias is not None or z is not None) and accumulates(x.dtype):
        if z is not None:
            z = _checked_z(z, x.dtype, y.shape)
        _gemm_onto(pw.mat, cols, y, bias, z)
        return y, True, True
    _gemm_into(pw.mat, cols, y3)
    return y, False, False


# -- Winograd F(2x2, 3x3) ------------------------------------------------------------------------
#
# A 3x3 stride-1 convolution computed on 4x4 input tiles (stride 2) giving 2x2 output tiles:
# Y = A^T [(G g G^T) . (B^T d B)] A, with the transforms below. The products become 16
# [M, C] @ [C, tiles] matrix products (2.25x fewer multiply-adds than im2col). The transforms
# only add, subtract and halve, so float32 results stay within a few ulps of the direct sum.
#
#   B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
#   G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
#   A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
#
# It pays off only where the im2col product is large against the transforms: outputs of at
# least 10x10, and on one thread layers with C, M >= 64, on more threads C, M >= 192 (BLAS
# splits the products over the threads, not NumPy's transforms). Measured on one thread (Zen 4,
# OpenBLAS 0.3.31), Winograd / im2col time: 64 channels at 56x56 0.75, 128 at 28x28 0.68, 128
# at 10x10 0.77, 256 at 14x14 0.72; 32 at 28x28 1.0, 16 at 28x28 1.4, 512 at 7x7 1.17 (tiles
# too few for the 16 products). The bound of 64 took ResNet-50 4 % and a ResNet-18 11 % faster
# on one thread, and 1.5-2 % slower on two (in-process A/B against 192).

_WINOGRAD_MIN_CHANNELS = 64
_WINOGRAD_MIN_CHANNELS_THREADED = 192
_WINOGRAD_MIN_OUT = 10


def _winograd_min_channels() -> int:
    """The channel bound for the thread count products run on now (intra_op_num_threads)."""
    return _WINOGRAD_MIN_CHANNELS if intra_op_threads() == 1 else _WINOGRAD_MIN_CHANNELS_THREADED


def _winograd_worth_it(w_shape: Sequence[int], group: int) -> bool:
    return (
        group == 1
        and tuple(w_shape[2:]) == (3, 3)
        and w_shape[0] >= _WINOGRAD_MIN_CHANNELS
        and w_shape[1] >= _WINOGRAD_MIN_CHANNELS
    )


def _apply_g(r0: np.ndarray, r1: np.ndarray, r2: np.ndarray, out: np.ndarray, s: np.ndarray):
    """``out[0..3]`` = G applied along one axis of three equally shaped planes:
    r0, (r0 + r1 + r2) / 2, (r0 - r1 + r2) / 2, r2 (``s`` is scratch)."""
    np.add(r0, r2, out=s)
    out[0] = r0
    np.add(s, r1, out=out[1])
    out[1] *= 0.5
    np.subtract(s, r1, out=out[2])
    out[2] *= 0.5
    out[3] = r2


def _winograd_weight(w: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """(16, M, C): G g G^T of every (output, input) channel pair, row-major over the 4x4.

    G's rows only add, subtract and halve, so the transform is done plane by plane over
    [M, C] (first along the kernel's rows, then its columns) in the compute dtype: within an
    ulp of the float64 result, and 7x faster than an einsum over float64 (2 vs 14 ms for a
    256x256 layer), which mattered because the first run pays it.
    """
    m, c = w.shape[:2]
    work = np.result_type(dtype, np.float32)
    taps = np.empty((3, 3, m, c), dtype=work)
    np.copyto(taps.reshape(9, m, c), np.moveaxis(np.asarray(w).reshape(m, c, 9), 2, 0))
    s = np.empty((m, c), dtype=work)
    rows = np.empty((4, 3, m, c), dtype=work)
    for j in range(3):
        _apply_g(taps[0, j], taps[1, j], taps[2, j], rows[:, j], s)
    u = np.empty((4, 4, m, c), dtype=work)
    for a in range(4):
        _apply_g(rows[a, 0], rows[a, 1], rows[a, 2], u[a], s)
    return u.reshape(16, m, c).astype(dtype, copy=False)


def _bt(f: Sequence[np.ndarray], out: Sequence[np.ndarray]) -> None:
    """out = B^T f along the index of the four equally shaped operands ``f``."""
    np.subtract(f[0], f[2], out=out[0])
    np.add(f[1], f[2], out=out[1])
    np.subtract(f[2], f[1], out=out[2])
    np.subtract(f[1], f[3], out=out[3])


def _winograd(
    x: np.ndarray,
    u: np.ndarray,
    begin: Sequence[int],
    out: Sequence[int],
    bias: np.ndarray | None = None,
):
    """3x3 stride-1 convolution of ``x`` (N, C, H, W) by transformed weights ``u``.

    The zero-padded input is split by row and column parity into four planes of
    (tiles_h + 1) x (tiles_w + 1), stored flat. Tap (a, b) of every tile is then the same
    contiguous run of a plane at offset (a//2, b//2), so each transform step is one long
    vectorized operation per channel; each plane row carries one junk tile, dropped at the end.
    """
    n, c, h, w = x.shape
    m = u.shape[1]
    oh, ow = out
    th, tw = -(-oh // 2), -(-ow // 2)
    pw = tw + 1
    plane = (th + 1) * pw + 1
    length = th * pw
    dt = x.dtype
    cl, ml = c * n * length, m * n * length
    ph, first, second, t = scratch(
        (2, 2, n, c, plane), (16 * max(cl, ml),), (max(16 * cl, 8 * ml),), (m, n * length), dtype=dt
    )
    # The B^T rows are dead once v is made, and v once the products are: the products reuse
    # the rows' memory and the output transform's sums v's (a third less scratch; ResNet-50's
    # 64-channel 56x56 layers otherwise grew it past the stem's, +8 MB peak RSS).
    rows = first[: 16 * cl].reshape(4, 4, n, c, length)
    prod = first[: 16 * ml].reshape(16, m, n * length)
    v = second[: 16 * cl].reshape(16, c, n, length)
    s = second[: 8 * ml].reshape(2, 4, m, n * length)
    ph[...] = 0
    bh, bw = begin
    for pr in (0, 1):
        fr = (pr - bh) % 2
        nr = len(range(fr, h, 2))
        r0 = (fr + bh) // 2
        for pc in (0, 1):
            fc = (pc - bw) % 2
            nc = len(range(fc, w, 2))
            c0 = (fc + bw) // 2
            if nr and nc:
                grid = ph[pr, pc, :, :, : (th + 1) * pw].reshape(n, c, th + 1, pw)
                grid[:, :, r0 : r0 + nr, c0 : c0 + nc] = x[:, :, fr::2, fc::2]

    def tap(a: int, b: int) -> np.ndarray:
        off = (a // 2) * pw + b // 2
        return ph[a % 2, b % 2, :, :, off : off + length]

    for b in range(4):
        _bt([tap(a, b) for a in range(4)], [rows[k, b] for k in range(4)])
    for k in range(4):
        _bt([rows[k, b] for b in range(4)], [v[4 * k + j].transpose(1, 0, 2) for j in range(4)])
    blas_matmul(u, v.reshape(16, c, n * length), out=prod)
    if bias is not None:
        # Both rows of A^T weigh the 4x4 tile's entry (1, 1) by 1, so a bias added to that
        # product reaches all four outputs of the tile: a pass over 1/16 of the products
        # instead of one over the output (ResNet-50 0.991-0.997 on one thread, A/B).
        prod[5] += bias.reshape(m, 1)
    prod = prod.reshape(4, 4, m, n * length)
    # A^T over the tile rows, then over the tile columns into the interleaved output.
    np.add(prod[0], prod[1], out=s[0])
    s[0] += prod[2]
    np.subtract(prod[1], prod[2], out=s[1])
    s[1] -= prod[3]
    y = np.empty((n, m, 2 * th, 2 * tw), dtype=dt)
    for r in (0, 1):
        sr = s[r]
        np.add(sr[0], sr[1], out=t)
        t += sr[2]
        np.copyto(y[:, :, r::2, 0::2], t.reshape(m, n, th, pw)[..., :tw].transpose(1, 0, 2, 3))
        np.subtract(sr[1], sr[2], out=t)
        t -= sr[3]
        np.copyto(y[:, :, r::2, 1::2], t.reshape(m, n, th, pw)[..., :tw].transpose(1, 0, 2, 3))
    if 2 * th != oh or 2 * tw != ow:
        y = np.ascontiguousarray(y[:, :, :oh, :ow])
    return y


def _add_bias(y: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    if b is not None:
        y += np.asarray(b, dtype=y.dtype).reshape((-1,) + (1,) * (y.ndim - 2))
    return y


InplaceActivation = Callable[[np.ndarray], None]


def conv_runner(
    info: NodeInfo,
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
    activation: InplaceActivation | None = None,
) -> Callable[..., np.ndarray]:
    """The run function of Conv, and of com.microsoft FusedConv (``activation``, input Z).

    ``run(x, w, b=None, z=None)`` computes ``activation(conv(x, w) + b + z)``: the bias, the
    residual ``z`` and the activation (which must update its argument in place) are applied
    to the product's buffer in place. A constant weight is re-laid out once, here.
    """
    geom = _ConvGeometry(auto_pad, dilations, group, kernel_shape, pads, strides)
    const_w = info.constant_inputs.get(1)
    const_b = info.constant_inputs.get(2)
    cached: dict[np.dtype, _PreparedWeight] = {}
    biases: dict[np.dtype, np.ndarray] = {}
    if const_w is not None:
        dt = compute_dtype(const_w.dtype)
        cached[dt] = _PreparedWeight(const_w, geom.group, dt, winograd=True)
        if const_b is not None:
            biases[dt] = _channel_vector(const_b, dt, const_w.ndim)

    def run(
        x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, z: np.ndarray | None = None
    ) -> np.ndarray:
        dt = compute_dtype(x.dtype)
        pw = cached.get(dt) if const_w is not None else None
        if pw is None:
            pw = _PreparedWeight(w, geom.group, dt)
        bias = biases.get(dt) if b is not None and b is const_b else None
        if b is not None and bias is None:
            bias = _channel_vector(b, dt, np.ndim(x))
        y, biased, z_added = _conv_core(np.asarray(x, dtype=dt), pw, geom, bias, z)
        if bias is not None and not biased:
            y += bias
        if z is not None and not z_added:
            y += _checked_z(z, dt, y.shape)
        if activation is not None:
            activation(y)
        if y.dtype != x.dtype:
            with np.errstate(all="ignore"):
                return y.astype(x.dtype)
        return y

    return run


def _channel_vector(b: np.ndarray, dtype: np.dtype, rank: int) -> np.ndarray:
    """A per-output-channel [M] vector shaped to broadcast over [N, M, *spatial]."""
    b = np.asarray(b, dtype=dtype)
    if b.ndim != 1:
        raise ValueError(f"Conv bias must be 1-D, got shape {b.shape}")
    return b.reshape((-1,) + (1,) * (rank - 2))


@register("Conv", since=(1, 11, 22), factory=True, fresh=True)
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
    run = conv_runner(
        info,
        auto_pad=auto_pad,
        dilations=dilations,
        group=group,
        kernel_shape=kernel_shape,
        pads=pads,
        strides=strides,
    )

    def conv_run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        return run(x, w, b)

    return conv_run


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
    cols = blas_matmul(wg, xg).reshape((n_batch, m, *kernel, *in_shape))
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
    y = blas_matmul(wg, cols).reshape(n_batch, m, *out)
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
