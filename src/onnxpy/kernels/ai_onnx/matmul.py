"""Matrix products: MatMul, Gemm and Einsum (MatMulInteger is in ``qlinear.py``).

Products go through ``numpy.matmul`` (BLAS for float32/float64); transposed operands are passed
as strided views, which BLAS consumes without copying. float16 and bfloat16 operands are
multiplied in float32 (BLAS, and float32 accumulation) and rounded back once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.kernels.registry import NodeInfo, register

__all__ = ["compute_float", "matmul_float", "gemm_runner"]


def compute_float(x: np.ndarray) -> np.ndarray:
    """``x`` as float32 unless it is float32/float64 or an integer (kept as is)."""
    if x.dtype.kind in "iub" or x.dtype in (np.float32, np.float64):
        return x
    return x.astype(np.float32)


def _as_type(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype != dtype:
        with np.errstate(all="ignore"):
            y = y.astype(dtype)
    return y


def _blas_operand(x: np.ndarray) -> np.ndarray:
    """``x`` itself when BLAS can read each of its matrices (rows or columns unit-strided, as
    numpy.matmul requires to call BLAS), else a contiguous copy: numpy would otherwise fall
    back to its unvectorized triple loop."""
    if x.ndim < 2 or x.dtype not in (np.float32, np.float64):
        return x
    r, c = x.shape[-2:]
    if r <= 1 or c <= 1:
        return x
    sr, sc = x.strides[-2:]
    it = x.itemsize
    if (sc == it and sr % it == 0 and sr // it >= c) or (
        sr == it and sc % it == 0 and sc // it >= r
    ):
        return x
    return np.ascontiguousarray(x)


def matmul_float(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy.matmul computed in a BLAS-friendly dtype, returned in a's dtype.

    A stack of rows times one matrix (``[..., M, K] @ [K, N]`` with a contiguous stack) is a
    single 2-D product over the flattened rows: one large BLAS call instead of one per matrix.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != b.dtype:
        raise TypeError(f"MatMul operands differ in type: {a.dtype} and {b.dtype}")
    ca, cb = compute_float(a), compute_float(b)
    if ca.ndim > 2 and cb.ndim == 2 and ca.flags.c_contiguous:
        y = blas_matmul(ca.reshape(-1, ca.shape[-1]), _blas_operand(cb))
        return _as_type(y.reshape((*ca.shape[:-1], cb.shape[-1])), a.dtype)
    return _as_type(blas_matmul(_blas_operand(ca), _blas_operand(cb)), a.dtype)


@register("MatMul", since=(1, 9, 13), fresh=True)
def matmul(a, b, /):
    """numpy.matmul semantics: N-d broadcasting over leading axes, 1-D operands promoted."""
    return matmul_float(a, b)


# -- Gemm --------------------------------------------------------------------------------------


def _gemm(a, b, c, alpha: float, beta: float, trans_a: int, trans_b: int) -> np.ndarray:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"Gemm needs 2-D A and B, got ranks {a.ndim} and {b.ndim}")
    cb = compute_float(b)
    return _gemm_tail(a, cb.T if trans_b else cb, _scaled_c(c, beta), alpha, trans_a, None)


def _scaled_c(c, beta: float) -> np.ndarray | None:
    """``beta * C`` in its compute type (None when C is absent or beta is 0)."""
    if c is None or beta == 0.0:
        return None
    cc = compute_float(np.asarray(c))
    if beta != 1.0:
        integer = cc.dtype.kind in "iu"
        cc = cc * (cc.dtype.type(beta) if integer else np.asarray(beta, dtype=cc.dtype))
    return cc


def _gemm_tail(a, cb, cc, alpha: float, trans_a: int, activation) -> np.ndarray:
    """``activation(alpha * A' @ cb + cc)``, everything after the product done in place."""
    dtype = a.dtype
    ca = compute_float(a)
    if trans_a:
        ca = ca.T
    y = blas_matmul(ca, cb)  # a fresh array: updated in place below
    if alpha != 1.0:
        y *= y.dtype.type(alpha) if y.dtype.kind in "iu" else alpha
    if cc is not None:
        _add_c(y, cc)
    if activation is not None:
        activation(y)
    return _as_type(y, dtype)


def _add_c(y: np.ndarray, cc: np.ndarray) -> None:
    """``y += cc`` for a C that broadcasts one way to y's shape (refused otherwise)."""
    if cc.ndim > 2:
        raise ValueError(f"Gemm: C of shape {cc.shape} does not broadcast to {y.shape}")
    try:
        y += cc  # NumPy refuses a C that does not broadcast to y's own shape
    except ValueError as e:
        raise ValueError(f"Gemm: C of shape {cc.shape} does not broadcast to {y.shape}") from e


def gemm_runner(
    info: NodeInfo,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
    activation: Callable[[np.ndarray], None] | None = None,
) -> Callable[..., np.ndarray]:
    """The run function of Gemm, and of com.microsoft FusedGemm (``activation``, in place).

    A constant B is laid out once as the contiguous [K, N] matrix the product reads (transB
    applied), and a constant C is scaled by beta once; the product's fresh buffer then takes
    alpha, C and the activation in place.
    """
    const_b = info.constant_inputs.get(1)
    const_c = info.constant_inputs.get(2)
    ready_b = None
    if const_b is not None and const_b.ndim == 2:
        cb = compute_float(np.asarray(const_b))
        ready_b = np.ascontiguousarray(cb.T if transB else cb)
    ready_c = _scaled_c(const_c, beta) if const_c is not None else None

    # The common inference case: a constant float32 / float64 B, used as given.
    fast = ready_b is not None and ready_b.dtype in (np.float32, np.float64)
    fast = fast and ready_b.dtype == const_b.dtype

    def run(a, b, c=None, /) -> np.ndarray:
        if fast and b is const_b and c is const_c and type(a) is np.ndarray:
            if a.dtype == ready_b.dtype and a.ndim == 2:
                # The common inference case, kept short: constant B (and C), float operands.
                y = blas_matmul(a.T if transA else a, ready_b)
                if alpha != 1.0:
                    y *= alpha
                if ready_c is not None:
                    _add_c(y, ready_c)
                if activation is not None:
                    activation(y)
                return y
        a = np.asarray(a)
        if b is const_b and ready_b is not None:
            if a.ndim != 2:
                raise ValueError(f"Gemm needs 2-D A and B, got ranks {a.ndim} and 2")
            cb = ready_b
        else:
            b = np.asarray(b)
            if a.ndim != 2 or b.ndim != 2:
                raise ValueError(f"Gemm needs 2-D A and B, got ranks {a.ndim} and {b.ndim}")
            cb = compute_float(b)
            if transB:
                cb = cb.T
        if compute_float(a).dtype != cb.dtype:
            raise TypeError(f"Gemm operands differ in type: {a.dtype} and {np.asarray(b).dtype}")
        cc = ready_c if (c is const_c and ready_c is not None) else _scaled_c(c, beta)
        return _gemm_tail(a, cb, cc, alpha, transA, activation)

    return run


@register("Gemm", since=(1, 6))
def gemm_legacy(a, b, c, /, *, alpha=1.0, beta=1.0, transA=0, transB=0, broadcast=0):
    """Opsets 1-6: C is required. Without ``broadcast`` it must already be (M, N); a
    broadcastable C is accepted either way (it has only one meaning)."""
    return _gemm(a, b, c, alpha, beta, transA, transB)


@register("Gemm", since=(7, 9, 11, 13), factory=True, fresh=True)
def gemm(info: NodeInfo, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    """alpha * A' @ B' + beta * C, C unidirectionally broadcast (optional from opset 11)."""
    return gemm_runner(info, alpha=alpha, beta=beta, transA=transA, transB=transB)


# -- Einsum ------------------------------------------------------------------------------------


def _parse_equation(equation: str, ranks: Sequence[int]) -> str:
    """The explicit (``->`` output given) form of ``equation`` without spaces.

    Implicit output: the letters seen exactly once, in ASCII order, after the ellipsis
    dimensions (if any operand has an ellipsis).
    """
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->", 1)
    else:
        lhs, rhs = eq, None
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(
            f"Einsum equation '{equation}' names {len(terms)} operands, got {len(ranks)}"
        )
    counts: dict[str, int] = {}
    has_ellipsis = False
    for term, rank in zip(terms, ranks):
        letters = term.replace("...", "")
        if not all(ch.isalpha() and ch.isascii() for ch in letters):
            raise ValueError(f"Einsum equation '{equation}' has an invalid term '{term}'")
        if "..." in term:
            has_ellipsis = True
        elif len(letters) != rank:
            raise ValueError(f"Einsum term '{term}' does not match an operand of rank {rank}")
        for ch in letters:
            counts[ch] = counts.get(ch, 0) + 1
    if rhs is None:
        rhs = ("..." if has_ellipsis else "") + "".join(
            sorted(ch for ch, n in counts.items() if n == 1)
        )
    return ",".join(terms) + "->" + rhs


@register("Einsum", since=(12, 28), factory=True)
def einsum(info: NodeInfo, *, equation=None):
    """Einstein summation via numpy.einsum; the contraction order is planned once per shapes."""
    if equation is None:
        raise ValueError("Einsum needs the 'equation' attribute")
    paths: dict[tuple[tuple[int, ...], ...], tuple[str, list]] = {}

    def run(*inputs):
        arrays = [np.asarray(x) for x in inputs]
        if not arrays:
            raise ValueError("Einsum needs at least one input")
        dtype = arrays[0].dtype
        ops = [compute_float(x) for x in arrays]
        key = tuple(x.shape for x in ops)
        cached = paths.get(key)
        if cached is None:
            explicit = _parse_equation(equation, [x.ndim for x in ops])
            path = np.einsum_path(explicit, *ops, optimize="greedy")[0] if len(ops) > 1 else False
            cached = paths[key] = (explicit, path)
        explicit, path = cached
        return _as_type(np.einsum(explicit, *ops, optimize=path), dtype)

    return run
