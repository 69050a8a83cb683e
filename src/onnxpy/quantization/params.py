"""Scales and zero points: from a real range to quantization parameters, and weights to
integers (per tensor or per channel), following the formulas onnxruntime documents.

Asymmetric: the range is widened to contain 0, ``scale = (rmax - rmin) / (qmax - qmin)`` and
``zero_point = round(qmin - rmin / scale)``. Symmetric: ``absmax = max(|rmin|, |rmax|)``,
``scale = 2 * absmax / (qmax - qmin)`` and the zero point is the middle of the range (0 for
signed types, whose range becomes -127..127 for int8). An all-zero range gets scale 1.
"""

from __future__ import annotations

import numpy as np

from onnxpy.quantization.config import QuantType

__all__ = ["QuantParams", "range_params", "quantize_weight", "quantize_bias"]


class QuantParams:
    """Scale (float32) and zero point (the quantized type) of one tensor; ``axis`` when per
    channel."""

    def __init__(self, scale, zero_point, qtype: QuantType, axis: int | None = None) -> None:
        self.scale = np.asarray(scale, dtype=np.float32)
        self.zero_point = np.asarray(zero_point).astype(qtype.dtype)
        self.qtype = qtype
        self.axis = axis

    def same_as(self, other: QuantParams) -> bool:
        return (
            self.qtype == other.qtype
            and self.scale.shape == other.scale.shape
            and bool(np.all(self.scale == other.scale))
            and bool(np.all(self.zero_point == other.zero_point))
        )

    def __repr__(self) -> str:
        return f"QuantParams(scale={self.scale}, zero_point={self.zero_point}, {self.qtype})"


def _params(rmin, rmax, qtype: QuantType, symmetric: bool, reduce_range: bool, min_range=None):
    rmin = np.minimum(np.asarray(rmin, dtype=np.float64), 0.0)
    rmax = np.maximum(np.asarray(rmax, dtype=np.float64), 0.0)
    if min_range is not None:
        rmax = np.maximum(rmax, rmin + float(min_range))
    qmin, qmax = qtype.qrange(symmetric, reduce_range)
    if symmetric:
        absmax = np.maximum(np.abs(rmin), np.abs(rmax))
        scale = 2.0 * absmax / (qmax - qmin)
        zero = np.full(scale.shape, (qmax + qmin + 1) // 2, dtype=np.float64)
    else:
        scale = (rmax - rmin) / (qmax - qmin)
        with np.errstate(divide="ignore", invalid="ignore"):
            zero = np.rint(qmin - rmin / scale)
    degenerate = scale == 0
    scale = np.where(degenerate, 1.0, scale).astype(np.float32)
    zero = np.where(degenerate, 0 if qmin < 0 else qmin, np.clip(zero, qmin, qmax))
    return scale, zero


def range_params(
    rmin: float,
    rmax: float,
    qtype: QuantType,
    symmetric: bool = False,
    reduce_range: bool = False,
    min_real_range: float | None = None,
) -> QuantParams:
    """Per-tensor parameters for a calibrated range."""
    scale, zero = _params(rmin, rmax, qtype, symmetric, reduce_range, min_real_range)
    return QuantParams(scale.reshape(()), zero.reshape(()), qtype)


def quantize_weight(
    w: np.ndarray,
    qtype: QuantType,
    symmetric: bool,
    reduce_range: bool = False,
    axis: int | None = None,
) -> tuple[np.ndarray, QuantParams]:
    """(integer weight, its parameters); per channel along ``axis`` when given."""
    w = np.asarray(w, dtype=np.float32)
    if axis is None:
        params = range_params(
            float(w.min(initial=0)), float(w.max(initial=0)), qtype, symmetric, reduce_range
        )
        s, z = params.scale, params.zero_point.astype(np.float64)
    else:
        axis = axis % w.ndim
        others = tuple(i for i in range(w.ndim) if i != axis)
        scale, zero = _params(
            w.min(axis=others), w.max(axis=others), qtype, symmetric, reduce_range
        )
        params = QuantParams(scale, zero, qtype, axis)
        shape = [-1 if i == axis else 1 for i in range(w.ndim)]
        s, z = scale.reshape(shape), zero.reshape(shape)
    qmin, qmax = qtype.qrange(False, False)
    q = np.clip(np.rint(w.astype(np.float64) / s.astype(np.float64)) + z, qmin, qmax)
    return q.astype(qtype.dtype), params


def quantize_bias(b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A float bias as int32 in ``scale`` (input scale x weight scale, per channel or not)."""
    b = np.asarray(b, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    s = np.where(s == 0, 1.0, s)
    q = np.rint(b / s)
    return np.clip(q, -(2**31), 2**31 - 1).astype(np.int32)
