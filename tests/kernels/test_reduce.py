"""Reductions, ArgMax/ArgMin and CumSum/CumProd beyond the backend cases.

Covers float64/float16/integer inputs, empty and no-op axes, empty sets and legacy opsets.
Expectations are worked by hand or from elementary NumPy identities.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxpy
from tests.kernels import single_node


def run(op, inputs, opset=18, **kw):
    return single_node.run(op, inputs, opset, **kw)


X = np.array([[1, -2, 3], [4, 5, -6]])


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.float32])
def test_reduce_float_types_keep_dtype(dtype):
    x = X.astype(dtype)
    y = run("ReduceSum", [x, np.array([1], dtype=np.int64)], opset=13, keepdims=0)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np.array([2, 3], dtype=dtype))
    y = run("ReduceL1", [x, np.array([0], dtype=np.int64)])
    np.testing.assert_array_equal(y, np.array([[5, 7, 9]], dtype=dtype))
    y = run("ReduceL2", [x], keepdims=0)
    assert y.shape == () and y.dtype == dtype
    np.testing.assert_allclose(float(y), np.sqrt(1 + 4 + 9 + 16 + 25 + 36), rtol=1e-3)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_reduce_integer_types(dtype):
    x = np.array([[1, 2, 3], [4, 5, 7]], dtype=dtype)
    axes = np.array([1], dtype=np.int64)
    y = run("ReduceSum", [x, axes], opset=13)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np.array([[6], [16]], dtype=dtype))
    # integer mean truncates: 16 / 3 = 5
    np.testing.assert_array_equal(run("ReduceMean", [x, axes]), np.array([[2], [5]], dtype=dtype))
    np.testing.assert_array_equal(run("ReduceProd", [x, axes]), np.array([[6], [140]], dtype=dtype))
    np.testing.assert_array_equal(
        run("ReduceSumSquare", [x, axes]), np.array([[14], [90]], dtype=dtype)
    )
    np.testing.assert_array_equal(
        run("ReduceMax", [x, axes], opset=20), np.array([[3], [7]], dtype=dtype)
    )
    np.testing.assert_array_equal(
        run("ReduceMin", [x, axes], opset=20), np.array([[1], [4]], dtype=dtype)
    )


def test_integer_mean_truncates_toward_zero():
    x = np.array([[-3, -4]], dtype=np.int32)
    np.testing.assert_array_equal(run("ReduceMean", [x], keepdims=0), np.array(-3, dtype=np.int32))


def test_int32_sum_wraps_like_c():
    x = np.array([2**31 - 1, 1], dtype=np.int32)
    y = run("ReduceSum", [x], opset=13, keepdims=0)
    assert y.dtype == np.int32 and int(y) == -(2**31)


def test_missing_or_empty_axes_reduce_everything():
    x = X.astype(np.float32)
    for inputs in ([x], [x, np.array([], dtype=np.int64)]):
        y = run("ReduceMax", inputs)
        assert y.shape == (1, 1) and float(y[0, 0]) == 5


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("ReduceSum", X),
        ("ReduceMax", X),
        ("ReduceL1", np.abs(X)),
        ("ReduceL2", np.abs(X)),
        ("ReduceSumSquare", X * X),
        ("ReduceLogSumExp", X),
    ],
)
def test_noop_with_empty_axes_applies_only_the_elementwise_part(op, expected):
    x = X.astype(np.float64)
    opset = 13 if op == "ReduceSum" else 18
    y = run(op, [x, np.array([], dtype=np.int64)], opset=opset, noop_with_empty_axes=1)
    np.testing.assert_allclose(y, expected.astype(np.float64))


def test_noop_log_sum_is_log():
    x = np.array([[1.0, np.e]], dtype=np.float32)
    y = run("ReduceLogSum", [x], noop_with_empty_axes=1)
    np.testing.assert_allclose(y, [[0.0, 1.0]], rtol=1e-6)


@pytest.mark.parametrize(
    ("op", "opset", "expected"),
    [
        ("ReduceSum", 13, 0.0),
        ("ReduceProd", 18, 1.0),
        ("ReduceMax", 20, -np.inf),
        ("ReduceMin", 20, np.inf),
        ("ReduceL1", 18, 0.0),
        ("ReduceL2", 18, 0.0),
        ("ReduceSumSquare", 18, 0.0),
        ("ReduceLogSum", 18, -np.inf),
        ("ReduceLogSumExp", 18, -np.inf),
    ],
)
def test_empty_set(op, opset, expected):
    x = np.zeros((2, 0, 3), dtype=np.float64)
    y = run(op, [x, np.array([1], dtype=np.int64)], opset=opset)
    assert y.shape == (2, 1, 3) and y.dtype == np.float64
    assert np.all(y == expected)


def test_empty_set_integer_max_min_use_type_limits():
    x = np.zeros((0, 2), dtype=np.int32)
    axes = np.array([0], dtype=np.int64)
    np.testing.assert_array_equal(
        run("ReduceMax", [x, axes], keepdims=0), np.full(2, -(2**31), np.int32)
    )
    np.testing.assert_array_equal(
        run("ReduceMin", [x, axes], keepdims=0), np.full(2, 2**31 - 1, np.int32)
    )


def test_bool_max_min():
    x = np.array([[True, False], [False, False]])
    axes = np.array([1], dtype=np.int64)
    np.testing.assert_array_equal(run("ReduceMax", [x, axes], opset=20, keepdims=0), [True, False])
    np.testing.assert_array_equal(run("ReduceMin", [x, axes], opset=20, keepdims=0), [False, False])


def test_legacy_attribute_axes_and_negative_axes():
    # x[i, j, k] = 12 i + 4 j + k: the mean over i and k is 6 + 4 j + 1.5
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    y = run("ReduceMean", [x], opset=11, axes=[-1, 0], keepdims=0)
    np.testing.assert_allclose(y, [7.5, 11.5, 15.5])


def test_log_sum_exp_is_stable_for_large_values():
    x = np.array([1000.0, 1000.0], dtype=np.float32)
    y = run("ReduceLogSumExp", [x], keepdims=0)
    np.testing.assert_allclose(float(y), 1000 + np.log(2), rtol=1e-6)


def test_float16_sum_accumulates_beyond_float16_steps():
    # 4096 ones: float16 cannot count past 2048 by ones, but the result 4096 is representable.
    x = np.ones(4096, dtype=np.float16)
    y = run("ReduceSum", [x], opset=13, keepdims=0)
    assert y.dtype == np.float16 and float(y) == 4096


def test_rank0_input():
    x = np.array(3.0, dtype=np.float32)
    y = run("ReduceSum", [x], opset=13)
    assert y.shape == () and float(y) == 3.0


def test_axis_out_of_range_is_an_error():
    with pytest.raises(onnxpy.Fail):
        run("ReduceSum", [X.astype(np.float32), np.array([2], dtype=np.int64)], opset=13)


# -- ArgMax / ArgMin --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int8, np.uint8, np.int64])
def test_argmax_argmin_dtypes_and_ties(dtype):
    x = np.array([[1, 3, 3], [2, 0, 0]], dtype=dtype)
    assert run("ArgMax", [x], opset=13, axis=1, keepdims=0).tolist() == [1, 0]
    assert run("ArgMax", [x], opset=13, axis=1, keepdims=0, select_last_index=1).tolist() == [2, 0]
    assert run("ArgMin", [x], opset=13, axis=1, keepdims=0, select_last_index=1).tolist() == [0, 2]
    y = run("ArgMin", [x], opset=13, axis=-1)
    assert y.dtype == np.int64 and y.tolist() == [[0], [1]]


def test_argmax_legacy_opset():
    x = np.array([[1.0, 5.0], [7.0, 2.0]], dtype=np.float32)
    assert run("ArgMax", [x], opset=1).tolist() == [[1, 0]]


# -- CumSum / CumProd -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.float64, np.float16])
def test_cumsum_modes(dtype):
    x = np.array([1, 2, 3, 4], dtype=dtype)
    axis = np.array(0, dtype=np.int32)
    cases = {
        (0, 0): [1, 3, 6, 10],
        (1, 0): [0, 1, 3, 6],
        (0, 1): [10, 9, 7, 4],
        (1, 1): [9, 7, 4, 0],
    }
    for (exclusive, reverse), expected in cases.items():
        y = run("CumSum", [x, axis], opset=14, exclusive=exclusive, reverse=reverse)
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, np.array(expected, dtype=dtype))


def test_cumsum_2d_negative_axis_does_not_touch_input():
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    before = x.copy()
    y = run("CumSum", [x, np.array(-2, dtype=np.int64)], opset=14, exclusive=1)
    np.testing.assert_array_equal(y, [[0, 0], [1, 2]])
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64])
def test_cumprod_modes(dtype):
    x = np.array([[1, 2, 3], [2, 2, 2]], dtype=dtype)
    axis = np.array(1, dtype=np.int64)
    y = run("CumProd", [x, axis], opset=26)
    np.testing.assert_array_equal(y, np.array([[1, 2, 6], [2, 4, 8]], dtype=dtype))
    y = run("CumProd", [x, axis], opset=26, exclusive=1, reverse=1)
    np.testing.assert_array_equal(y, np.array([[6, 3, 1], [4, 2, 1]], dtype=dtype))
