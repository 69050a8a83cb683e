"""Depthwise convolution (one input channel per group) as one small matrix product per channel.

Each channel's output is ``w[channel] (multiplier x taps) @ cols (taps x positions)``, where
row ``t`` of ``cols`` is the input shifted by kernel tap ``t``. The padded input is first split
into its stride phases (for stride 2 in 2-D: even/odd rows x even/odd columns, each a plane of
``ceil(size / stride)`` per axis; for stride 1 the padded input itself), written straight from
the unpadded input into a reused buffer laid out [N, phase, C, *plane]. Every tap then reads
one phase plane at a fixed offset with unit step, so the tap's row of ``cols`` for a whole
chunk of channels is one contiguous run of that buffer, and the products stream over long
rows, computing only the outputs the stride keeps. The taps that read the same phase sit on a
regular grid of offsets (and of rows of ``cols``), so all of them are copied by one call
(``_tap_groups``): one per chunk at stride 1, four at stride 2 in 2-D, instead of one per tap.
The positions computed between output rows (the plane's padding) are dropped when the result
is copied out.

A bias rides along as one more tap whose row is all ones, so it costs no pass of its own.

Why products rather than ``acc += w[t] * shifted`` per tap (what this replaced): NumPy needs
two passes over the output per tap for that (a multiply, then an add), while a copy per tap
plus one BLAS product that reads the copies once is about half the work; on MobileNetV2's
layers (2 shared cores, one thread) 1.6-2x faster at 7x7-28x28, as fast at 56x56-112x112.
The ``cols`` of a few channels at a time stay near ``CHUNK_BYTES``, so they are still cached
when the product reads them.

``phase_columns`` uses the same phase planes for the im2col matrix of a dense strided
convolution with a large kernel (a 7x7 stride-2 stem): copying its tap rows from a strided
window view reads every element with a step of the stride, from the phase planes with unit
step (ResNet-50's stem, one thread: 0.64 -> 0.35 ms). Small kernels (3x3 stride 2) gain
nothing: the split is one more pass over the input for a copy that was cheap already.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np

from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.kernels.scratch import scratch

__all__ = ["CHUNK_BYTES", "depthwise_conv", "phase_columns", "weight_with_bias"]

# The copied tap rows of one chunk of channels stay near this size. Measured on MobileNetV2's
# 112x112 and 56x56 layers: 2 MiB as fast as per-tap multiply-adds, 0.5 MiB 10-25 % slower,
# the whole image (14 MB at 112x112) 1.8-2.7x slower.
CHUNK_BYTES = 2 << 20
# Phase planes at least this large get zeros only around the copied input, not everywhere.
BORDER_FILL_BYTES = 1 << 20


def _phase_planes(
    x: np.ndarray,
    begin: Sequence[int],
    end: Sequence[int],
    strides: Sequence[int],
    buf: np.ndarray,
) -> None:
    """Fill ``buf`` [N, phases, C, *pitch] with the zero-padded ``x`` split by stride phase.

    Phase ``ph`` holds the padded positions ``ph + stride * i`` of every axis (row-major
    phase order); positions in the padding, or past the padded end, are zero.
    """
    sp = x.shape[2:]
    pitch = buf.shape[3:]
    # Small planes: one fill costs less than the calls that would zero only the borders.
    whole = buf.size * buf.itemsize < BORDER_FILL_BYTES
    if whole:
        buf.fill(0)
    for k, ph in enumerate(itertools.product(*(range(s) for s in strides))):
        dst, src = [], []
        for p, s, b, size in zip(ph, strides, begin, sp, strict=True):
            first = max(0, -(-(b - p) // s))  # first plane index inside the input
            start = p + s * first - b  # its input index
            count = len(range(start, size, s))
            if count <= 0:
                if not whole:
                    buf[:, k].fill(0)
                break
            dst.append(slice(first, first + count))
            src.append(slice(start, None, s))
        else:
            # Zero only the padding around the copied block: the rest is overwritten.
            for a, (sl, n) in enumerate(zip(dst, pitch, strict=True) if not whole else ()):
                lead = (slice(None), k, slice(None), *dst[:a])
                if sl.start:
                    buf[(*lead, slice(0, sl.start))] = 0
                if sl.stop < n:
                    buf[(*lead, slice(sl.stop, None))] = 0
            buf[(slice(None), k, slice(None), *dst)] = x[(Ellipsis, *src)]


@functools.lru_cache(maxsize=256)
def _tap_groups(
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    steps: tuple[int, ...],
) -> tuple[tuple[int, int, tuple[int, ...], tuple[int, ...], int, tuple[int, ...]], ...]:
    """The kernel taps grouped by the stride phase they read, each group a regular grid.

    Along an axis the taps ``k`` whose offset ``k * d`` falls in phase ``r`` form an
    arithmetic progression, and so do their plane offsets ``(k * d) // s`` and their rows in
    row-major tap order: a group's rows are one strided view of its phase plane, copied by
    one call into one strided view of the tap rows. Per group: (phase, first plane offset,
    grid shape, grid steps in the plane, first tap row, grid steps in tap rows).
    """
    per_axis = []
    for k, s, d in zip(kernel, strides, dilations, strict=True):
        by_phase = []
        for r in range(s):
            ks = range(next((t for t in range(k) if (t * d) % s == r), k), k, s // math.gcd(d, s))
            by_phase.append((ks, (ks[0] * d) // s if ks else 0, d // math.gcd(d, s)))
        per_axis.append(by_phase)
    tap_steps = [math.prod(kernel[a + 1 :]) for a in range(len(kernel))]
    groups = []
    for phase, combo in enumerate(itertools.product(*per_axis)):
        if any(not ks for ks, _, _ in combo):
            continue
        groups.append(
            (
                phase,
                sum(q0 * st for (_, q0, _), st in zip(combo, steps, strict=True)),
                tuple(len(ks) for ks, _, _ in combo),
                tuple(dq * st for (_, _, dq), st in zip(combo, steps, strict=True)),
                sum(ks[0] * ts for (ks, _, _), ts in zip(combo, tap_steps, strict=True)),
                tuple(ks.step * ts for (ks, _, _), ts in zip(combo, tap_steps, strict=True)),
            )
        )
    return tuple(groups)


def _phase_layout(x_shape, kernel, strides, dilations, begin, end):
    """(plane pitch, its row-major steps, ``_tap_groups``) of the stride-phase planes."""
    padded = [i + b + e for i, b, e in zip(x_shape[2:], begin, end, strict=True)]
    pitch = tuple(-(-p // s) for p, s in zip(padded, strides, strict=True))
    steps = tuple(math.prod(pitch[a + 1 :]) for a in range(len(pitch)))
    return pitch, steps, _tap_groups(tuple(kernel), tuple(strides), tuple(dilations), steps)


def weight_with_bias(mat: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(G, multiplier, taps + 1): ``mat`` with the [G * multiplier] bias as an extra tap."""
    b = np.asarray(bias, dtype=mat.dtype)
    if b.size != mat.shape[0] * mat.shape[1]:
        raise ValueError(
            f"bias of shape {b.shape} does not match {mat.shape[0] * mat.shape[1]} channels"
        )
    return np.concatenate([mat, b.reshape(mat.shape[0], mat.shape[1], 1)], axis=2)


def depthwise_conv(
    x: np.ndarray,
    wmat: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    begin: Sequence[int],
    end: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:
    """Depthwise convolution of the unpadded ``x`` [N, C, *spatial] as a fresh C-contiguous
    [N, C * multiplier, *out] array.

    ``wmat`` is the weight laid out (C, multiplier, taps), taps in row-major kernel order, or
    (C, multiplier, taps + 1) with the bias last (``weight_with_bias``).
    """
    n_batch, c = x.shape[:2]
    g, mult, rows = wmat.shape
    taps = math.prod(kernel)
    if g != c:
        raise ValueError(f"input channels {c} != depthwise groups {g}")
    pitch, steps, groups = _phase_layout(x.shape, kernel, strides, dilations, begin, end)
    n_phase = math.prod(strides)
    plane = math.prod(pitch)
    slack = max(
        first + sum((n - 1) * st for n, st in zip(shape, spacing, strict=True))
        for _, first, shape, spacing, _, _ in groups
    )
    dt = x.dtype
    item = dt.itemsize
    size = max(1, min(c, CHUNK_BYTES // (rows * plane * item)))
    total = n_batch * n_phase * c * plane
    flat, cols, acc = scratch((total + slack,), (rows, size, plane), (size, mult, plane), dtype=dt)
    flat[total:] = 0  # read only for dropped positions; kept finite all the same
    _phase_planes(x, begin, end, strides, flat[:total].reshape(n_batch, n_phase, c, *pitch))
    if rows > taps:
        cols[taps] = 1
    row_bytes = cols.strides[0]
    y = np.empty((n_batch, g * mult, *out), dtype=dt)
    y4 = y.reshape(n_batch, g, mult, *out)
    # The products' positions as the output grid (dropping those between rows).
    grid = np.ndarray(
        (size, mult, *out), dt, acc, 0, acc.strides[:2] + tuple(st * item for st in steps)
    )
    for i in range(n_batch):
        for c0 in range(0, c, size):
            n = min(c, c0 + size) - c0
            for phase, first, shape, spacing, row, row_steps in groups:
                # One copy per phase: its taps' rows for this chunk of channels. Views made
                # by ndarray(buffer=...): as_strided costs ~10 us a call.
                at = ((i * n_phase + phase) * c + c0) * plane + first
                src = np.ndarray(
                    (*shape, n, plane),
                    dt,
                    flat,
                    at * item,
                    tuple(st * item for st in spacing) + (plane * item, item),
                )
                dst = np.ndarray(
                    (*shape, n, plane),
                    dt,
                    cols,
                    row * row_bytes,
                    tuple(st * row_bytes for st in row_steps) + (plane * item, item),
                )
                np.copyto(dst, src)
            blas_matmul(wmat[c0 : c0 + n], cols[:, :n].transpose(1, 0, 2), out=acc[:n])
            np.copyto(y4[i, c0 : c0 + n], grid[:n])
    return y


def phase_columns(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    begin: Sequence[int],
    end: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:
    """The im2col matrix [N, C * taps, prod(out)] of a strided convolution of the unpadded
    ``x`` (rows channel-major, taps row-major), copied from its stride-phase planes.

    A scratch array (``kernels.scratch``): valid until the thread's next ``scratch`` call.
    """
    n_batch, c = x.shape[:2]
    pitch, steps, groups = _phase_layout(x.shape, kernel, strides, dilations, begin, end)
    n_phase = math.prod(strides)
    plane = math.prod(pitch)
    taps = math.prod(kernel)
    p = math.prod(out)
    dt = x.dtype
    item = dt.itemsize
    planes, cols = scratch((n_batch, n_phase, c, *pitch), (n_batch, c * taps, p), dtype=dt)
    _phase_planes(x, begin, end, strides, planes)
    src_out = tuple(st * item for st in steps)
    dst_out = tuple(math.prod(out[a + 1 :]) * item for a in range(len(out)))
    for i in range(n_batch):
        for phase, first, shape, spacing, row, row_steps in groups:
            # Every channel's taps of one phase: a grid of windows of one phase plane.
            src = np.ndarray(
                (c, *shape, *out),
                dt,
                planes,
                ((i * n_phase + phase) * c * plane + first) * item,
                (plane * item, *(st * item for st in spacing), *src_out),
            )
            dst = np.ndarray(
                (c, *shape, *out),
                dt,
                cols,
                (i * c * taps + row) * p * item,
                (taps * p * item, *(st * p * item for st in row_steps), *dst_out),
            )
            np.copyto(dst, src)
    return cols
