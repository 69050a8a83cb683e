"""MatMul operand handling: flattened stacks, transposed and non-BLAS-strided views.

The kernel function is called directly with views (a session would hand it whatever layout
the producing kernel returned); expectations are float64 products by einsum.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxpy.kernels.ai_onnx.matmul import matmul

RNG = np.random.default_rng(4)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def expected(a, b):
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (rand(1, 7, 5), rand(5, 3)),  # [1, S, K] @ [K, N]: one 2-D product
        (rand(2, 3, 7, 5), rand(5, 3)),  # stacked rows, flattened
        (rand(2, 5, 7).transpose(0, 2, 1), rand(5, 3)),  # non-contiguous stack: per matrix
        (rand(1, 3, 7, 4), rand(1, 3, 4, 6)),  # batched
        (rand(1, 7, 3, 4).transpose(0, 2, 1, 3), rand(1, 7, 3, 4).transpose(0, 2, 3, 1)),
        (rand(2, 6, 8)[:, ::2, ::2], rand(4, 5)),  # no unit stride: copied for BLAS
        (rand(3, 4), rand(8, 10)[::2, ::2]),
        (rand(4), rand(2, 4, 3)),
        (rand(2, 1, 3, 4), rand(5, 4, 2)),
    ],
)
def test_matmul_layouts(a, b):
    got = matmul(a, b)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected(a, b), rtol=1e-5, atol=1e-5)


def test_matmul_flattened_stack_float64_and_float16():
    a, b = rand(2, 3, 4, dtype=np.float64), rand(4, 5, dtype=np.float64)
    np.testing.assert_allclose(matmul(a, b), expected(a, b), rtol=1e-12)
    h = matmul(a.astype(np.float16), b.astype(np.float16))
    assert h.dtype == np.float16 and h.shape == (2, 3, 5)
    np.testing.assert_allclose(h, expected(a, b), rtol=1e-2, atol=1e-2)


def test_matmul_shape_mismatch_raises():
    with pytest.raises(ValueError):
        matmul(rand(2, 3, 4), rand(5, 6))
