"""com.microsoft CDist: pairwise distances between the rows of two matrices.

``CDist(A [M, K], B [N, K], metric)`` is the [M, N] matrix of distances between each row of A
and each row of B; ``metric`` is ``sqeuclidean`` (the default) or ``euclidean``, as in
onnxruntime's contrib-operator documentation. onnxpy also reaches it from the optimizer, which
turns skl2onnx's per-row distance ``Scan`` (one ``Sub`` and ``ReduceSumSquare`` per stored row)
into one CDist (``passes/fusion/scan_cdist.py``).

The squared distance is ``|a|^2 + |b|^2 - 2 a.b``: one matrix product instead of an [M, N, K]
difference. Computed in float64 and rounded once, so the cancellation of that form costs
nothing measurable (float32 data: within an ulp or two of the direct sum's exact value); it is
clamped at 0, which rounding could otherwise undershoot for equal rows.
"""

from __future__ import annotations

import numpy as np

from onnxpy import errors
from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.kernels.registry import NodeInfo, register

__all__ = ["squared_distances"]


def _norms(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a)


def squared_distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray | None = None):
    """[M, N] float64 squared euclidean distances between the rows of ``a`` and ``b``."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    d = blas_matmul(a64, b64.T)
    d *= -2.0
    d += _norms(a64)[:, None]
    d += (_norms(b64) if b_norms is None else b_norms)[None, :]
    return np.maximum(d, 0.0, out=d)


@register("CDist", since=1, domain="com.microsoft", factory=True, fresh=True)
def cdist(info: NodeInfo, *, metric: str = "sqeuclidean"):
    name = metric.decode() if isinstance(metric, bytes) else str(metric)
    if name not in ("sqeuclidean", "euclidean"):
        raise errors.NotImplemented(f"CDist: metric '{name}' (sqeuclidean and euclidean are)")
    const_a = info.constant_inputs.get(0)
    a_cache = None if const_a is None else np.asarray(const_a, dtype=np.float64)

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"CDist needs [M, K] and [N, K] inputs, got {a.shape}, {b.shape}")
        if a.dtype not in (np.float32, np.float64) or b.dtype != a.dtype:
            raise TypeError(f"CDist takes float or double inputs of one type: {a.dtype}, {b.dtype}")
        d = squared_distances(a_cache if a is const_a else a, b)
        if name == "euclidean":
            np.sqrt(d, out=d)
        return d.astype(a.dtype, copy=False)

    return run
