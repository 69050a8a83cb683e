"""Element-wise math kernels: dtypes, integer semantics, legacy broadcasting, variadic ops.

Expectations are worked by hand or from NumPy identities, never from the kernels.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import onnxpy
from tests.kernels.single_node import run

# -- legacy broadcasting (opsets 1-6) ------------------------------------------------------------


def test_add_opset6_broadcast_with_axis():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b = np.array([10, 20, 30], dtype=np.float32)
    y = run("Add", [a, b], opset=6, broadcast=1, axis=1)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, a + b.reshape(3, 1))


def test_mul_opset6_broadcast_suffix():
    a = np.ones((2, 3, 4), dtype=np.float64)
    b = np.array([1.0, 2.0, 3.0, 4.0])
    y = run("Mul", [a, b], opset=6, broadcast=1)
    np.testing.assert_array_equal(y[1, 2], [1.0, 2.0, 3.0, 4.0])


def test_sub_opset1_consumed_inputs_is_accepted():
    a = np.array([5.0, 6.0], dtype=np.float32)
    b = np.array([1.0, 2.0], dtype=np.float32)
    np.testing.assert_array_equal(run("Sub", [a, b], opset=1, consumed_inputs=[0, 0]), [4.0, 4.0])


def test_add_opset6_without_broadcast_needs_equal_shapes():
    a = np.ones((2, 3), dtype=np.float32)
    b = np.ones((3,), dtype=np.float32)
    with pytest.raises(onnxpy.Fail):
        run("Add", [a, b], opset=6)


def test_opset7_broadcasts_multidirectionally():
    a = np.arange(3, dtype=np.int32).reshape(3, 1)
    b = np.arange(4, dtype=np.int32).reshape(1, 4)
    y = run("Add", [a, b], opset=7)
    assert y.shape == (3, 4) and y.dtype == np.int32
    assert y[2, 3] == 5


def test_equal_opset1_broadcast_axis():
    a = np.array([[1, 2], [3, 4]], dtype=np.int32)
    b = np.array([1, 4], dtype=np.int32)
    y = run("Equal", [a, b], opset=1, broadcast=1, axis=0)
    np.testing.assert_array_equal(y, [[True, False], [False, True]])


# -- integer semantics ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_integer_div_truncates_toward_zero(dtype):
    a = np.array([-7, 7, -7, 7, 6], dtype=dtype)
    b = np.array([2, 2, -2, -2, 3], dtype=dtype)
    y = run("Div", [a, b], opset=14)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, [-3, 3, 3, -3, 2])


def test_unsigned_div():
    y = run("Div", [np.array([7, 255], np.uint8), np.array([2, 16], np.uint8)], opset=14)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, [3, 15])


def test_mod_integer_sign_rules():
    a = np.array([-4, 7, 5, 4, -7, 8], dtype=np.int32)
    b = np.array([2, -3, 8, -2, 3, 5], dtype=np.int32)
    np.testing.assert_array_equal(run("Mod", [a, b], opset=13), [0, -2, 5, 0, 2, 3])
    np.testing.assert_array_equal(run("Mod", [a, b], opset=13, fmod=1), [0, 1, 5, 0, -1, 3])


def test_mod_float64_fmod():
    y = run("Mod", [np.array([-5.5, 5.5]), np.array([2.0, -2.0])], opset=13, fmod=1)
    np.testing.assert_allclose(y, [-1.5, 1.5])


def test_pow_keeps_base_type():
    y = run("Pow", [np.array([2.0, 3.0], np.float32), np.array([3, 2], np.int64)], opset=15)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [8.0, 9.0])
    y = run("Pow", [np.array([2, 3], np.int64), np.array([0.5, 2.0], np.float32)], opset=15)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [1, 9])  # sqrt(2) = 1.41 truncated


@pytest.mark.parametrize("exponent", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("exp_dtype", [np.float32, np.int64, np.float64])
def test_pow_by_products_matches_power(exponent, dtype, exp_dtype):
    """Squares and cubes are computed as products: within 2 ulp of NumPy's pow, same
    infinities, NaNs, signed zeros and overflow, the base's type and the broadcast shape."""
    x = np.random.default_rng(3).standard_normal((4, 33)).astype(dtype) * 3
    x[0, :6] = [np.inf, -np.inf, np.nan, -0.0, 0.0, np.finfo(dtype).max]
    e = np.array([[exponent]], dtype=exp_dtype)  # 2-D exponent: the result shape is x's
    y = run("Pow", [x, e], opset=15)
    with np.errstate(all="ignore"):
        expected = np.power(x.astype(np.float64), float(exponent)).astype(dtype)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_array_equal(np.signbit(y), np.signbit(expected))
    np.testing.assert_allclose(y, expected, rtol=4 * np.finfo(dtype).eps, atol=0)
    one = run("Pow", [np.array([2.0], dtype), np.array([[[exponent]]], exp_dtype)], opset=15)
    assert one.shape == (1, 1, 1)  # a higher-rank exponent broadcasts the result up


def test_pow_integer_negative_exponent():
    y = run("Pow", [np.array([2, -1, 1], np.int32), np.array([-1, -3, -2], np.int32)], opset=15)
    np.testing.assert_array_equal(y, [0, -1, 1])


def test_bitshift_out_of_range_shifts():
    x = np.array([-8, 4, -1, 3], dtype=np.int16)
    y = np.array([16, 20, -1, 1], dtype=np.int16)
    np.testing.assert_array_equal(
        run("BitShift", [x, y], opset=28, direction="RIGHT"), [-1, 0, -1, 1]
    )
    np.testing.assert_array_equal(run("BitShift", [x, y], opset=28, direction="LEFT"), [0, 0, 0, 6])


def test_bitwise_ops_int():
    a = np.array([0b1100, -1], dtype=np.int8)
    b = np.array([0b1010, 0x0F], dtype=np.int8)
    np.testing.assert_array_equal(run("BitwiseAnd", [a, b], opset=18), [0b1000, 0x0F])
    np.testing.assert_array_equal(run("BitwiseXor", [a, b], opset=18), [0b0110, -16])
    np.testing.assert_array_equal(run("BitwiseNot", [a], opset=18), [-13, 0])


# -- unary ---------------------------------------------------------------------------------------


def test_round_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.3, -2.7, np.inf], dtype=np.float64)
    np.testing.assert_array_equal(run("Round", [x], opset=22), [0, 2, 2, -0.0, -2, 2, -3, np.inf])
    y = run("Round", [x.astype(np.float16)], opset=22)
    assert y.dtype == np.float16


def test_erf_against_math_erf():
    x = np.array([-3.5, -1.0, 0.0, 1e-6, 0.5, 2.0, 4.0, 7.0], dtype=np.float64)
    expected = [math.erf(v) for v in x]
    np.testing.assert_allclose(run("Erf", [x], opset=13), expected, rtol=1e-13, atol=1e-300)


def test_erf_integer_input_opset9():
    y = run("Erf", [np.array([-3, 0, 5], np.int32)], opset=9)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [0, 0, 0])  # |erf| < 1 truncates to 0


@pytest.mark.parametrize(
    "op, x, expected",
    [
        ("Abs", np.array([-128, -3, 4], np.int8), [-128, 3, 4]),
        ("Neg", np.array([-3, 4], np.int16), [3, -4]),
        ("Sign", np.array([0, 7], np.uint8), [0, 1]),
        ("Sign", np.array([-2.5, 0.0, 3.0], np.float64), [-1.0, 0.0, 1.0]),
        ("Sqrt", np.array([4.0, 9.0], np.float16), [2.0, 3.0]),
        ("Reciprocal", np.array([4.0, -0.5], np.float64), [0.25, -2.0]),
        ("Ceil", np.array([-1.5, 1.2], np.float16), [-1.0, 2.0]),
        ("Floor", np.array([-1.5, 1.2], np.float64), [-2.0, 1.0]),
    ],
)
def test_unary_keeps_dtype(op, x, expected):
    y = run(op, [x])
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, expected)


def test_opset1_unary_consumed_inputs():
    y = run("Exp", [np.array([0.0], np.float32)], opset=1, consumed_inputs=[0])
    np.testing.assert_array_equal(y, [1.0])


def test_bfloat16_arithmetic_keeps_type():
    a = np.array([1.5, 2.0], dtype=ml_dtypes.bfloat16)
    y = run("Add", [a, a], opset=14)
    assert y.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(y.astype(np.float32), [3.0, 4.0])


# -- Clip ----------------------------------------------------------------------------------------


def test_clip_attributes_opset6_and_defaults():
    x = np.array([-2.0, 0.0, 2.0], np.float32)
    np.testing.assert_array_equal(run("Clip", [x], opset=6, min=-1.0, max=1.0), [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(run("Clip", [x], opset=6, max=1.0), [-2.0, 0.0, 1.0])


def test_clip_opset1_only_min():
    x = np.array([-2.0, 5.0], np.float64)
    np.testing.assert_array_equal(run("Clip", [x], opset=1, min=0.0), [0.0, 5.0])


def test_clip_inputs_int_and_omitted_min():
    x = np.array([-100, 0, 100], np.int8)
    y = run("Clip", [x, None, np.array(10, np.int8)], opset=13)
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, [-100, 0, 10])


# -- variadic ------------------------------------------------------------------------------------


def test_max_min_propagate_nan_and_broadcast():
    a = np.array([[1.0, np.nan]], np.float64)
    b = np.array([[3.0], [0.0]], np.float64)
    mx = run("Max", [a, b], opset=13)
    mn = run("Min", [a, b], opset=13)
    assert mx.shape == (2, 2)
    np.testing.assert_array_equal(mx, [[3.0, np.nan], [1.0, np.nan]])
    np.testing.assert_array_equal(mn, [[1.0, np.nan], [0.0, np.nan]])


def test_max_integers_three_inputs():
    xs = [np.array([1, 9], np.uint16), np.array([5, 2], np.uint16), np.array([3], np.uint16)]
    y = run("Max", xs, opset=13)
    assert y.dtype == np.uint16
    np.testing.assert_array_equal(y, [5, 9])


def test_sum_and_mean_variadic():
    xs = [np.array([1.0, 2.0]), np.array([3.0]), np.array([[0.0], [6.0]])]
    np.testing.assert_array_equal(run("Sum", xs, opset=13), [[4.0, 5.0], [10.0, 11.0]])
    np.testing.assert_allclose(run("Mean", xs, opset=13), [[4 / 3, 5 / 3], [10 / 3, 11 / 3]])


def test_single_input_sum_is_a_copy():
    x = np.array([1.0, 2.0], np.float32)
    y = run("Sum", [x], opset=8)
    np.testing.assert_array_equal(y, x)


# -- logic, comparison, selection ----------------------------------------------------------------


def test_equal_strings_broadcast():
    a = np.array([["a", "b"], ["c", "a"]], dtype=object)
    b = np.array(["a", "b"], dtype=object)
    np.testing.assert_array_equal(run("Equal", [a, b], opset=19), [[True, True], [False, False]])


def test_comparisons_on_unsigned():
    a = np.array([0, 200], np.uint8)
    b = np.array([1, 100], np.uint8)
    np.testing.assert_array_equal(run("Less", [a, b], opset=13), [True, False])
    np.testing.assert_array_equal(run("GreaterOrEqual", [a, b], opset=16), [False, True])


def test_where_broadcast_strings():
    cond = np.array([[True], [False]])
    y = run("Where", [cond, np.array(["x", "y"], dtype=object), np.array("z", dtype=object)])
    np.testing.assert_array_equal(y, [["x", "y"], ["z", "z"]])


def test_isinf_flags():
    x = np.array([-np.inf, 1.0, np.inf, np.nan], np.float32)
    np.testing.assert_array_equal(run("IsInf", [x], opset=20), [True, False, True, False])
    np.testing.assert_array_equal(
        run("IsInf", [x], opset=20, detect_negative=0), [False, False, True, False]
    )
    np.testing.assert_array_equal(
        run("IsInf", [x], opset=20, detect_positive=0), [True, False, False, False]
    )


def test_xor_opset1_broadcast():
    a = np.array([[True, False], [True, True]])
    b = np.array([True, False])
    y = run("Xor", [a, b], opset=1, broadcast=1)
    np.testing.assert_array_equal(y, [[False, False], [False, True]])


# -- Det, Shrink ---------------------------------------------------------------------------------


def test_det_batch_and_dtype():
    x = np.array([[[2.0, 0.0], [0.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]], np.float64)
    y = run("Det", [x], opset=22)
    assert y.shape == (2,) and y.dtype == np.float64
    np.testing.assert_allclose(y, [6.0, -2.0])
    y16 = run("Det", [x[0].astype(np.float16)], opset=22)
    assert y16.shape == () and y16.dtype == np.float16


def test_shrink_integer_input():
    x = np.array([-5, -1, 0, 1, 5], np.int32)
    y = run("Shrink", [x], opset=9, lambd=1.5, bias=1.0)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [-4, 0, 0, 0, 4])
