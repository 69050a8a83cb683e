"""Cast, CastLike and BitCast: every conversion family of the Cast specification.

Expectations are worked by hand (bit patterns, powers of two, two's complement wrap).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto as T

import onnxpy
from tests.kernels.test_elementwise import run


def cast(x, to, opset=None, **attrs):
    return run("Cast", [x], opset=opset, to=to, **attrs)


# -- numeric -------------------------------------------------------------------------------------


def test_opset1_to_is_a_type_name():
    y = cast(np.array([1, 2], np.int32), "FLOAT", opset=1)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [1.0, 2.0])


def test_integer_narrowing_wraps():
    y = cast(np.array([200, -129, 65535], np.int32), T.INT8)
    np.testing.assert_array_equal(y, [-56, 127, -1])
    y = cast(np.array([-1, 256], np.int64), T.UINT8)
    np.testing.assert_array_equal(y, [255, 0])


def test_float_to_int_truncates():
    y = cast(np.array([-2.7, -0.5, 0.5, 2.7], np.float64), T.INT32)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [-2, 0, 0, 2])


def test_to_bool_nan_is_true():
    y = cast(np.array([0.0, -0.0, np.nan, 0.1], np.float32), T.BOOL)
    np.testing.assert_array_equal(y, [False, False, True, True])


def test_bool_to_float16():
    y = cast(np.array([True, False]), T.FLOAT16)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, [1.0, 0.0])


def test_double_to_bfloat16():
    y = cast(np.array([1.0, 3.0, 1.0 + 2.0**-9], np.float64), T.BFLOAT16)
    assert y.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(y.astype(np.float32), [1.0, 3.0, 1.0])  # 7 mantissa bits


def test_same_type_is_a_copy():
    x = np.array([1.0], np.float32)
    y = cast(x, T.FLOAT)
    assert y is not x
    np.testing.assert_array_equal(y, x)


# -- float8 --------------------------------------------------------------------------------------


def test_float8_e4m3fn_saturation():
    x = np.array([460.0, 470.0, 1e6, np.inf, -np.inf, np.nan], np.float32)
    y = cast(x, T.FLOAT8E4M3FN).astype(np.float32)
    np.testing.assert_array_equal(y, [448.0, 448.0, 448.0, 448.0, -448.0, np.nan])
    # Without saturation: 460 still rounds (to nearest even) to 448; 470 overflows.
    y = cast(x, T.FLOAT8E4M3FN, saturate=0).astype(np.float32)
    np.testing.assert_array_equal(y, [448.0, np.nan, np.nan, np.nan, np.nan, np.nan])


def test_float8_e5m2_no_saturate_gives_inf():
    x = np.array([1e6, -1e6, 60000.0], np.float32)
    y = cast(x, T.FLOAT8E5M2, saturate=0).astype(np.float32)
    np.testing.assert_array_equal(y, [np.inf, -np.inf, 57344.0])
    y = cast(x, T.FLOAT8E5M2).astype(np.float32)
    np.testing.assert_array_equal(y, [57344.0, -57344.0, 57344.0])


def test_float8_fnuz_has_no_negative_zero():
    y = cast(np.array([-0.0], np.float32), T.FLOAT8E4M3FNUZ)
    assert not np.signbit(y.astype(np.float32))[0]


def test_int_to_float8():
    y = cast(np.array([3, 1000], np.int64), T.FLOAT8E4M3FN).astype(np.float32)
    np.testing.assert_array_equal(y, [3.0, 448.0])


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("up", [2.0**-127, 0.125, 4.0, 4.0, 2.0]),
        ("down", [2.0**-127, 0.0625, 2.0, 2.0, 2.0]),
        ("nearest", [2.0**-127, 0.125, 4.0, 2.0, 2.0]),
    ],
)
def test_float8_e8m0_round_modes(mode, expected):
    x = np.array([0.0, 0.1, 3.0, 2.9, 2.0], np.float32)
    y = cast(x, T.FLOAT8E8M0, round_mode=mode)
    assert y.dtype == np.dtype(ml_dtypes.float8_e8m0fnu)
    np.testing.assert_array_equal(y.view(np.uint8).astype(np.int32) - 127, np.log2(expected))


def test_float8_e8m0_without_saturation():
    x = np.array([0.0, 1e39, np.inf, 1.0], np.float64)
    y = cast(x, T.FLOAT8E8M0, saturate=0, round_mode="nearest")
    np.testing.assert_array_equal(y.view(np.uint8), [255, 255, 255, 127])


# -- sub-byte types ------------------------------------------------------------------------------


def test_int4_and_uint2_wrap():
    y = cast(np.array([-9, 8, 7, 100], np.int64), T.INT4)
    assert y.dtype == np.dtype(ml_dtypes.int4)
    np.testing.assert_array_equal(y.astype(np.int8), [7, -8, 7, 4])
    y = cast(np.array([-1.5, 4.0, 5.9], np.float32), T.UINT2)
    np.testing.assert_array_equal(y.astype(np.uint8), [3, 0, 1])


# Out-of-range float -> fixed point is undefined by the spec. onnxpy's choice: truncate toward
# zero like every other float -> integer cast, then keep the low bits (two's complement), the
# rule the spec gives for fixed -> fixed; NaN and +/-inf give 0. That is what onnxruntime returns
# for integral values (it rounds fractions to nearest, half away from zero, before wrapping) and
# what ml_dtypes < 0.7 returned; ml_dtypes 0.7 returns 0 for every out-of-range value instead.
_OUT_OF_RANGE = np.array([8, 9, 16, 17, -9, -16, -17, 100, -100, 1e10, np.inf, -np.inf, np.nan])


@pytest.mark.parametrize(
    "to, expected",
    [
        (T.INT4, [-8, -7, 0, 1, 7, 0, -1, 4, -4, 0, 0, 0, 0]),
        (T.UINT4, [8, 9, 0, 1, 7, 0, 15, 4, 12, 0, 0, 0, 0]),
        (T.INT2, [0, 1, 0, 1, -1, 0, -1, 0, 0, 0, 0, 0, 0]),
        (T.UINT2, [0, 1, 0, 1, 3, 0, 3, 0, 0, 0, 0, 0, 0]),
    ],
)
@pytest.mark.parametrize("src", [np.float32, np.float16, np.float64])
def test_out_of_range_float_to_sub_byte_truncates_then_wraps(to, expected, src):
    x = _OUT_OF_RANGE.astype(src) if src is not np.float16 else _OUT_OF_RANGE[:-4].astype(src)
    want = expected if src is not np.float16 else expected[:-4]
    if src is np.float16:  # 1e10 is inf in float16; check the specials separately
        x = np.concatenate([x, np.array([np.inf, -np.inf, np.nan], src)])
        want = want + [0, 0, 0]
    y = cast(x, to)
    np.testing.assert_array_equal(y.astype(np.int16), want)


@pytest.mark.parametrize("to", [T.INT4, T.UINT4, T.INT2, T.UINT2])
def test_integral_out_of_range_casts_agree_with_onnxruntime(to):
    import onnxruntime as ort  # a dev dependency: the oracle
    from onnx import helper

    x = np.arange(-40, 41, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["t"], to=to),
            helper.make_node("Cast", ["t"], ["y"], to=T.FLOAT),
        ],
        "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [x.size])],
        [helper.make_tensor_value_info("y", T.FLOAT, [x.size])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)], ir_version=11)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    theirs = ort.InferenceSession(model.SerializeToString(), so).run(None, {"x": x})[0]
    ours = onnxpy.InferenceSession(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(ours, theirs)


def test_float4_saturates():
    y = cast(np.array([100.0, -np.inf, 0.25, 0.75], np.float32), T.FLOAT4E2M1)
    np.testing.assert_array_equal(y.astype(np.float32), [6.0, -6.0, 0.0, 1.0])


def test_int4_to_float():
    x = np.array([-8, 7], dtype=ml_dtypes.int4)
    np.testing.assert_array_equal(cast(x, T.FLOAT), [-8.0, 7.0])


# -- strings -------------------------------------------------------------------------------------


def test_string_to_float_special_literals():
    x = np.array(["1.5", "INF", "+inf", "-INF", "NaN", "1e-5", "-2E3"], dtype=object)
    y = cast(x, T.FLOAT)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(
        y, np.array([1.5, np.inf, np.inf, -np.inf, np.nan, 1e-5, -2000.0], np.float32)
    )


def test_string_to_integers():
    y = cast(np.array(["100", "-3", "100.5"], dtype=object), T.INT64)
    np.testing.assert_array_equal(y, [100, -3, 100])
    y = cast(np.array(["18446744073709551615"], dtype=object), T.UINT64)
    assert y[0] == np.uint64(2**64 - 1)
    y = cast(np.array(["300"], dtype=object), T.UINT8)
    np.testing.assert_array_equal(y, [44])


def test_string_to_bool():
    y = cast(np.array(["0", "1", "2.5", "0.0"], dtype=object), T.BOOL)
    np.testing.assert_array_equal(y, [False, True, True, False])


def test_numbers_to_string():
    y = cast(np.array([314.15926, 1e-7, 3.0, -0.0, np.nan, np.inf, -np.inf], np.float32), T.STRING)
    assert y.dtype == object
    assert y.tolist() == ["314.15927", "1e-07", "3", "-0", "NaN", "INF", "-INF"]
    assert cast(np.array([1 / 3], np.float64), T.STRING).tolist() == ["0.33333333"]
    assert cast(np.array([-5, 7], np.int8), T.STRING).tolist() == ["-5", "7"]
    assert cast(np.array([True, False]), T.STRING).tolist() == ["1", "0"]


# -- CastLike, BitCast ---------------------------------------------------------------------------


def test_castlike_takes_the_target_type():
    y = run("CastLike", [np.array([1.7, -1.7], np.float64), np.array([0], np.int16)], opset=21)
    assert y.dtype == np.int16
    np.testing.assert_array_equal(y, [1, -1])
    y = run("CastLike", [np.array([2], np.int32), np.array(["a"], dtype=object)], opset=21)
    assert y.tolist() == ["2"]


def test_castlike_saturate_attribute():
    x = np.array([1000.0], np.float32)
    target = np.array([0.0], dtype=ml_dtypes.float8_e4m3fn)
    y = run("CastLike", [x, target], opset=19, saturate=0)
    assert np.isnan(y.astype(np.float32)[0])


def test_bitcast_bit_patterns():
    y = run("BitCast", [np.array([1.0, -2.0], np.float32)], opset=26, to=T.INT32)
    np.testing.assert_array_equal(y, [0x3F800000, -0x40000000])  # -2.0 is 0xC0000000
    y = run("BitCast", [np.array([-1, 7], np.int8)], opset=26, to=T.UINT8)
    np.testing.assert_array_equal(y, [255, 7])
    y = run("BitCast", [np.array([-1, -8], dtype=ml_dtypes.int4)], opset=26, to=T.UINT4)
    np.testing.assert_array_equal(y.astype(np.uint8), [15, 8])


def test_bitcast_width_mismatch_fails():
    with pytest.raises(onnxpy.Fail):
        run("BitCast", [np.array([1.0], np.float32)], opset=26, to=T.INT64)
