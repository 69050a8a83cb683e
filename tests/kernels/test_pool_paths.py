"""MaxPool's padding-free path (each tap updates the outputs whose read lands in the input).

Expectations come from a loop over output positions: the maximum of the input elements the
window covers (padding never wins), with the output size from the spec's formula.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tests.kernels.test_conv import run as run_node

RNG = np.random.default_rng(9)


def naive_max_pool(x, kernel, strides, pads, dilations, ceil_mode):
    nsp = len(kernel)
    in_shape = x.shape[2:]
    out = []
    for a in range(nsp):
        span = in_shape[a] + pads[a] + pads[a + nsp] - (kernel[a] - 1) * dilations[a] - 1
        o = (math.ceil(span / strides[a]) if ceil_mode else span // strides[a]) + 1
        if ceil_mode and (o - 1) * strides[a] >= in_shape[a] + pads[a]:
            o -= 1
        out.append(o)
    y = np.empty(x.shape[:2] + tuple(out), dtype=x.dtype)
    for o in itertools.product(*(range(v) for v in out)):
        best = None
        for k in itertools.product(*(range(v) for v in kernel)):
            pos = [o[a] * strides[a] + k[a] * dilations[a] - pads[a] for a in range(nsp)]
            if all(0 <= p < s for p, s in zip(pos, in_shape)):
                v = x[(slice(None), slice(None), *pos)]
                best = v if best is None else np.maximum(best, v)
        y[(slice(None), slice(None), *o)] = best
    return y


CASES = [
    ((1, 3, 12, 12), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0),
    ((2, 2, 9, 10), [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 1),
    ((1, 2, 7, 8), [2, 3], [1, 2], [0, 1, 1, 0], [1, 1], 0),
    ((1, 2, 11, 9), [3, 2], [3, 2], [2, 0, 1, 1], [2, 1], 1),
    ((2, 3, 10), [4], [3], [1, 2], [1], 1),
    ((1, 2, 5, 6, 7), [2, 3, 2], [2, 1, 2], [0, 1, 1, 1, 0, 0], [1, 1, 2], 0),
    ((1, 1, 4, 4), [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 0),
]


@pytest.mark.parametrize(("shape", "kernel", "strides", "pads", "dilations", "ceil"), CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.int8])
def test_max_pool_matches_windows(shape, kernel, strides, pads, dilations, ceil, dtype):
    x = (RNG.standard_normal(shape) * 50).astype(dtype)
    got = run_node(
        "MaxPool",
        [x],
        opset=12,
        kernel_shape=kernel,
        strides=strides,
        pads=pads,
        dilations=dilations,
        ceil_mode=ceil,
    )
    expected = naive_max_pool(x, kernel, strides, pads, dilations, ceil)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


def test_max_pool_all_negative_input_ignores_padding():
    x = -np.abs(RNG.standard_normal((1, 1, 4, 4))).astype(np.float32) - 1
    got = run_node("MaxPool", [x], opset=12, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    assert (got < 0).all()
    np.testing.assert_array_equal(got[0, 0, 0, 0], x[0, 0, :2, :2].max())


def test_max_pool_does_not_return_its_input():
    x = RNG.standard_normal((1, 2, 3, 3)).astype(np.float32)
    got = run_node("MaxPool", [x], opset=12, kernel_shape=[1, 1])
    np.testing.assert_array_equal(got, x)
    assert not np.shares_memory(got, x)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((1, 72, 56, 56), np.float32),
        ((2, 960, 7, 7), np.float32),
        ((3, 5, 17), np.float32),
        ((2, 3, 4, 5, 6), np.float64),
        ((2, 6, 9, 9), np.float16),
        ((2, 4, 1, 1), np.float32),
    ],
)
def test_global_average_pool_matches_mean_in_float64(shape, dtype):
    """GlobalAveragePool's sums (one matrix-vector product) against a float64 mean."""
    x = (RNG.standard_normal(shape) * 3 + 1).astype(dtype)
    got = run_node("GlobalAveragePool", [x])
    expected = x.astype(np.float64).mean(axis=tuple(range(2, x.ndim)), keepdims=True)
    assert got.dtype == dtype and got.shape == expected.shape
    tol = 2e-3 if dtype == np.float16 else 1e-6
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
