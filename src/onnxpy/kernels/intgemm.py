"""Exact integer matrix products on float BLAS, for the quantized kernels.

NumPy has no int8 GEMM (an integer ``matmul`` runs an unvectorized loop, ~100x slower than
BLAS). Integers are exact in float32 up to 2**24, so a float32 GEMM of integer operands is
exact as long as no partial sum leaves that range, whatever order BLAS adds in. Every partial
sum of ``sum_k a[k] * w[r, k]`` is bounded by ``max|a| * sum_k |w[r, k]|``: the weight's row L1
norm is known when the session is created, and ``max|a|`` by the activation's type once it is
centred (uint8 values minus 128 lie in [-128, 127]). When that bound passes 2**24, the reduction
axis is split into chunks that each stay below it (each chunk's product is exact, and the chunks
are summed in float64); beyond a few chunks one float64 product (exact to 2**53) is cheaper.

Centring: ``(a - za)`` is computed as ``(a - c) + (c - za)`` with a fixed centre ``c`` of the
type's range, so the product reads ``a - c`` (one subtraction fused into the float conversion)
and the zero point's term ``(c - za) * sum_k w[r, k]`` is a per-output constant added in the
output pass, together with the bias. ``requantize`` then applies the scale, the output zero
point, rounding (half to even) and saturation in place on the product's buffer.
"""

from __future__ import annotations

import numpy as np

from onnxpy.kernels.blas import fit_blas_threads
from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.types import INTEGER_RANGES

__all__ = [
    "EXACT_FLOAT32",
    "ExactWeights",
    "integer_range",
    "centre_of",
    "centred",
    "requantize",
    "Requantizer",
    "fast_clip",
]

EXACT_FLOAT32 = float(2**24)
# More chunks than this: one float64 product is cheaper than several float32 ones plus sums.
MAX_CHUNKS = 4


def integer_range(dtype: np.dtype) -> tuple[int, int]:
    """(lowest, highest) value of an integer quantization type."""
    try:
        return INTEGER_RANGES[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"{np.dtype(dtype)} is not an integer quantization type") from None


def centre_of(dtype: np.dtype) -> int:
    """The value subtracted before a product: the middle of an unsigned range, 0 if signed."""
    lo, hi = integer_range(dtype)
    return (hi + 1) // 2 if lo == 0 else 0


def _bound(dtype: np.dtype) -> int:
    lo, hi = integer_range(dtype)
    c = centre_of(dtype)
    return max(abs(lo - c), abs(hi - c))


def centred(a: np.ndarray, centre: int, dtype: np.dtype, out: np.ndarray | None = None):
    """``a - centre`` converted to ``dtype`` in one pass (into ``out`` when given)."""
    if out is None:
        out = np.empty(a.shape, dtype=dtype)
    if centre:
        np.subtract(a, dtype.type(centre), out=out, dtype=dtype, casting="unsafe")
    else:
        np.copyto(out, a, casting="unsafe")
    return out


class ExactWeights:
    """A constant integer operand ``w[..., R, K]`` (zero point already subtracted, given as
    float64) laid out for exact BLAS products with activations of type ``activation_dtype``.

    ``left(cols)`` is ``w @ cols`` (cols ``[..., K, P]``, a convolution's im2col), ``right(a)``
    is ``a @ w^T`` (a ``[..., M, K]``, a MatMul/Gemm), both exact. ``row_sums`` (float64,
    ``[..., R]``) serves the zero-point correction.
    """

    def __init__(
        self,
        w: np.ndarray,
        activation_dtype: np.dtype | None,
        bound: int = 0,
        offset: np.ndarray | None = None,
    ) -> None:
        """``bound``: the largest |activation| when not given by ``activation_dtype``.
        ``offset`` (integers, ``[..., R]``): a constant added to every product, laid out as an
        extra weight column that reads a column (row, for ``left``) of ones the caller appends
        to the activation (``rows`` does); ``baked`` holds it, and ``extra`` is 1."""
        w = np.asarray(w, dtype=np.float64)
        self.shape = w.shape  # without the offset column
        self.row_sums = w.sum(axis=-1)
        bound = _bound(activation_dtype) if activation_dtype is not None else bound
        self.baked, self.extra = None, 0
        if offset is not None:
            self.baked = np.broadcast_to(np.asarray(offset, dtype=np.float64), w.shape[:-1])
            self.extra = 1
        k = w.shape[-1] + self.extra
        # |w| with the offset's column, written in place (no concatenated copies: the largest
        # layer's float64 temporaries set the session's peak memory).
        absw = np.empty((*w.shape[:-1], k), dtype=np.float64)
        np.abs(w, out=absw[..., : w.shape[-1]])
        if self.extra:
            # Read against 1, not ``bound``: the planner's bound * |w| is then |offset| (+ a hair).
            np.multiply(np.abs(self.baked), (1 + 1e-9) / max(bound, 1), out=absw[..., -1])
        self.chunks = _plan_chunks(absw.reshape(-1, k), bound)
        del absw
        self.dtype = np.dtype(np.float32)
        if len(self.chunks) > MAX_CHUNKS:
            self.dtype = np.dtype(np.float64)
            self.chunks = [(0, k)]
        self.mat = np.empty((*w.shape[:-1], k), dtype=self.dtype)
        self.mat[..., : w.shape[-1]] = w
        if self.extra:
            self.mat[..., -1] = self.baked
        # Per operand length: (matrix, chunks, chunk views, 2-D transposed view or None). With
        # a baked offset the matrix without its last column serves operands that carry no
        # ones (small ones, where the extra column costs more than the pass it saves); the
        # chunks planned with the column bound the products without it too.
        self._forms = {k: self._form(self.mat, self.chunks)}
        if self.extra:
            plain = [(a, min(b, k - 1)) for a, b in self.chunks if a < k - 1]
            self._forms[k - 1] = self._form(self.mat[..., : k - 1], plain)

    @staticmethod
    def _form(mat: np.ndarray, chunks: list[tuple[int, int]]) -> tuple:
        t = mat.T if mat.ndim == 2 and len(chunks) == 1 else None  # ``right``: one BLAS call
        return mat, chunks, [mat[..., a:b] for a, b in chunks], t

    def rows(self, a: np.ndarray, centre: int) -> np.ndarray:
        """``a - centre`` in this layout's float type, with the column of ones the baked
        offset reads (one pass, plus the ones)."""
        if not self.extra:
            return centred(a, centre, self.dtype)
        buf = np.empty((*a.shape[:-1], a.shape[-1] + 1), dtype=self.dtype)
        centred(a, centre, self.dtype, out=buf[..., :-1])
        buf[..., -1] = 1
        return buf

    def left(self, cols: np.ndarray) -> np.ndarray:
        """``w @ cols`` exactly (float32 when one chunk serves, else float64); ``cols`` with
        or without the ones row of a baked offset."""
        mat, chunks, views, _ = self._forms.get(cols.shape[-2], self._forms[self.shape[-1]])
        if len(chunks) == 1:
            return blas_matmul(mat, cols)
        fit_blas_threads(mat.shape[-2] * mat.shape[-1] * cols.shape[-1])
        acc = None
        for (a, b), wv in zip(chunks, views):
            part = np.matmul(wv, cols[..., a:b, :])
            acc = part.astype(np.float64) if acc is None else np.add(acc, part, out=acc)
        return acc

    def right(self, a: np.ndarray) -> np.ndarray:
        """``a @ w^T`` exactly (float32 when one chunk serves, else float64); ``a`` with or
        without the ones column of a baked offset."""
        mat, chunks, views, t = self._forms.get(a.shape[-1], self._forms[self.shape[-1]])
        if t is not None and a.ndim == 2:
            return blas_matmul(a, t)
        if len(chunks) == 1:
            return _matmul_rows(a, mat)
        acc = None
        for (lo, hi), wv in zip(chunks, views):
            part = _matmul_rows(a[..., lo:hi], wv)
            acc = part.astype(np.float64) if acc is None else np.add(acc, part, out=acc)
        return acc

    def operand_rows(self, a: np.ndarray, centre: int) -> tuple[np.ndarray, bool]:
        """(``a - centre`` for ``right``, whether the baked offset is in the product): with
        the ones column when the product is large enough for the saved pass to pay."""
        if self.extra and a.size * self.shape[-2] >= BAKE_MIN * self.shape[-1]:
            return self.rows(a, centre), True
        return centred(a, centre, self.dtype), False


# A baked offset is read (a ones column or row appended to the operand) when the product has
# at least this many elements: below it the append costs more than the offset's pass.
BAKE_MIN = 8192


def _matmul_rows(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a @ w.T`` with a stack of rows flattened into one BLAS call when ``w`` is 2-D."""
    if a.ndim > 2 and w.ndim == 2:
        flat = a.reshape(-1, a.shape[-1])
        return blas_matmul(flat, w.T).reshape((*a.shape[:-1], w.shape[0]))
    return blas_matmul(a, np.swapaxes(w, -1, -2))


def _plan_chunks(absw: np.ndarray, bound: int) -> list[tuple[int, int]]:
    """Split [0, K) so that ``bound * (row L1 norm within a chunk) < 2**24`` for every row."""
    k = absw.shape[1]
    if k == 0 or bound * float(absw.sum(axis=1).max(initial=0.0)) < EXACT_FLOAT32:
        return [(0, k)]
    cum = np.concatenate([np.zeros((absw.shape[0], 1)), np.cumsum(absw, axis=1)], axis=1)
    limit = EXACT_FLOAT32 / bound
    chunks = []
    start = 0
    while start < k:
        lo, hi = start + 1, k  # the largest end with max_r(cum[r, end] - cum[r, start]) < limit
        if float((cum[:, lo] - cum[:, start]).max()) >= limit:
            return [(0, k)] * (MAX_CHUNKS + 1)  # one column alone is too large: float64
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if float((cum[:, mid] - cum[:, start]).max()) < limit:
                lo = mid
            else:
                hi = mid - 1
        chunks.append((start, lo))
        start = lo
        if len(chunks) > MAX_CHUNKS:
            break
    return chunks


# The clip ufunc itself: ``np.clip``'s Python wrapper costs ~1.5 us a call, which is most of a
# one-row layer's requantization.
fast_clip = getattr(getattr(np, "_core", None), "umath", None)
fast_clip = getattr(fast_clip, "clip", np.clip)


# Below this many elements a rounding pass that writes the integer type itself (one call)
# beats rounding in place and converting (two calls); above it, the two plain passes win.
_FUSED_CAST = 8192


class Requantizer:
    """``saturate(round((acc + offset) * multiplier) + zero_point)`` as ``dtype``, with the
    constants folded once into ``rint(clip(acc * m + a, lo - zp, hi - zp)) + zp``: clipping
    before rounding is the same (the bounds are integers), and with a zero point of 0 the
    rounding pass writes the integer result itself, so a fresh product takes three passes
    (four with an offset or a zero point). ``offset`` and ``multiplier`` broadcast against the
    product (per output column or channel)."""

    def __init__(self, offset, multiplier, zero_point: float, dtype: np.dtype) -> None:
        m = np.asarray(multiplier, dtype=np.float64)
        self.mult = m.astype(np.float32) if m.ndim else np.float32(m)
        if not m.ndim and m == 1.0:
            self.mult = None  # the product is already in the output's scale
        self.add = None
        if offset is not None and np.any(offset):
            self.add = np.asarray(np.asarray(offset, dtype=np.float64) * m, dtype=np.float32)
        self.zero = np.float32(zero_point) if zero_point else None
        self.dtype = np.dtype(dtype)
        lo, hi = integer_range(self.dtype)
        self.lo, self.hi = np.float32(lo - zero_point), np.float32(hi - zero_point)

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        if self.mult is not None:
            np.multiply(acc, self.mult, out=acc)
        if self.add is not None:
            np.add(acc, self.add, out=acc)
        fast_clip(acc, self.lo, self.hi, out=acc)
        if acc.size < _FUSED_CAST:
            out = np.empty(acc.shape, dtype=self.dtype)
            if self.zero is None:
                np.rint(acc, out=out, casting="unsafe")
            else:
                np.rint(acc, out=acc)
                np.add(acc, self.zero, out=out, casting="unsafe")  # the zero point after rounding
            return out
        # Large: a ufunc writing another type runs buffered, slower than its pass plus a copy.
        np.rint(acc, out=acc)
        if self.zero is not None:
            np.add(acc, self.zero, out=acc)
        return acc.astype(self.dtype)


def requantize(
    acc: np.ndarray,
    offset: np.ndarray | float | None,
    multiplier: np.ndarray | float,
    zero_point: float,
    dtype: np.dtype,
) -> np.ndarray:
    """``saturate(round((acc + offset) * multiplier) + zero_point)`` as ``dtype``; ``acc`` (a
    fresh float product) is updated in place."""
    return Requantizer(offset, multiplier, zero_point, dtype)(acc)
