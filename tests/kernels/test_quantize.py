"""Quantization kernels beyond the backend cases: blocks, rounding, saturation, precision,
QLinearConv / QLinearMatMul with per-channel parameters.

Expectations are hand-worked or computed by explicit loops written here.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto

import onnxpy
from tests.kernels import single_node


def run(op, inputs, opset=25, **kw):
    return single_node.run(op, inputs, opset, **kw)


def test_quantize_rounds_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49], dtype=np.float32)
    y = run("QuantizeLinear", [x, np.float32(1.0), np.int8(0)])
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, [0, 2, 2, 0, -2, -2, 3])


def test_quantize_default_output_is_uint8_and_saturates():
    x = np.array([-10.0, 0.0, 600.0], dtype=np.float32)
    y = run("QuantizeLinear", [x, np.float32(2.0)])
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, [0, 0, 255])


def test_blocked_quantization_with_a_partial_last_block():
    x = np.arange(10, dtype=np.float32).reshape(2, 5) - 3  # axis 1 has 5 = 2 + 2 + 1
    scale = np.array([[1.0, 2.0, 4.0], [0.5, 1.0, 2.0]], dtype=np.float32)
    zp = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.int8)
    y = run("QuantizeLinear", [x, scale, zp], axis=1, block_size=2)
    expected = np.zeros((2, 5), dtype=np.int64)
    for i in range(2):
        for j in range(5):
            q = x[i, j] / scale[i, j // 2]
            expected[i, j] = min(127, max(-128, round(float(q)) + zp[i, j // 2]))
    np.testing.assert_array_equal(y, expected)
    back = run("DequantizeLinear", [y, scale, zp], axis=1, block_size=2)
    for i in range(2):
        for j in range(5):
            assert back[i, j] == (int(y[i, j]) - zp[i, j // 2]) * scale[i, j // 2]


def test_blocked_scale_with_the_wrong_block_count_fails():
    x = np.zeros((2, 5), dtype=np.float32)
    scale = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(onnxpy.Fail):
        run("QuantizeLinear", [x, scale], axis=1, block_size=2)


def test_per_axis_negative_axis():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    scale = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    y = run("QuantizeLinear", [x, scale, np.zeros(3, dtype=np.uint8)], axis=-1)
    np.testing.assert_array_equal(y, [[1, 1, 1], [4, 2, 2]])  # 2.5 -> 2, 1.5 -> 2, 0.75 -> 1


def test_float8_saturation_modes():
    x = np.array([1000.0, -1000.0, np.inf, 3.0], dtype=np.float32)
    zp_fn = np.zeros((), dtype=ml_dtypes.float8_e4m3fn)
    sat = run("QuantizeLinear", [x, np.float32(1.0), zp_fn])
    np.testing.assert_array_equal(sat.astype(np.float32), [448, -448, 448, 3])
    raw = run("QuantizeLinear", [x, np.float32(1.0), zp_fn], saturate=0)
    assert np.isnan(raw.astype(np.float32)[:3]).all()
    zp_e5 = np.zeros((), dtype=ml_dtypes.float8_e5m2)
    raw5 = run("QuantizeLinear", [x * 100, np.float32(1.0), zp_e5], saturate=0)
    np.testing.assert_array_equal(raw5.astype(np.float32)[:3], [np.inf, -np.inf, np.inf])


def test_int4_output_dtype_attribute_and_round_trip():
    x = np.array([-20.0, -3.0, 0.0, 5.0, 20.0], dtype=np.float32)
    y = run("QuantizeLinear", [x, np.float32(1.0)], output_dtype=TensorProto.INT4)
    assert y.dtype == ml_dtypes.int4
    np.testing.assert_array_equal(y.astype(np.int8), [-8, -3, 0, 5, 7])
    back = run("DequantizeLinear", [y, np.float32(0.5)], output_dtype=TensorProto.FLOAT16)
    assert back.dtype == np.float16
    np.testing.assert_array_equal(back, [-4.0, -1.5, 0.0, 2.5, 3.5])


def test_precision_attribute_rounds_the_quotient_first():
    # 0.5 + 2**-24 rounds up to 1 in float32 precision; in float16 it is 0.5, which rounds to 0.
    x = np.array([0.50000006], dtype=np.float32)
    default = run("QuantizeLinear", [x, np.float32(1.0), np.int8(0)])
    half = run("QuantizeLinear", [x, np.float32(1.0), np.int8(0)], precision=TensorProto.FLOAT16)
    np.testing.assert_array_equal(default, [1])
    np.testing.assert_array_equal(half, [0])


def test_dequantize_int32_without_zero_point_and_float16_scale():
    x = np.array([-60000, 3, 60000], dtype=np.int32)
    y = run("DequantizeLinear", [x, np.float16(0.5)])
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, [-30000.0, 1.5, 30000.0])


def test_dynamic_quantize_all_zeros():
    y, scale, zp = run(
        "DynamicQuantizeLinear", [np.zeros(4, dtype=np.float32)], opset=11, outputs=3
    )
    assert y.dtype == np.uint8 and scale.dtype == np.float32 and zp.dtype == np.uint8
    np.testing.assert_array_equal(y, 0)
    assert scale == 0 and zp == 0


def conv_loop(x, w, b, stride, pad, group):
    """Integer 2-D convolution by loops (x, w already zero-point corrected)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, m, oh, ow), dtype=np.int64)
    for bn in range(n):
        for oc in range(m):
            grp = oc // (m // group)
            for i in range(oh):
                for j in range(ow):
                    acc = b[oc]
                    for ic in range(cg):
                        for di in range(kh):
                            for dj in range(kw):
                                acc += int(
                                    xp[bn, grp * cg + ic, i * stride + di, j * stride + dj]
                                ) * int(w[oc, ic, di, dj])
                    out[bn, oc, i, j] = acc
    return out


def test_qlinearconv_groups_stride_padding_per_channel_bias():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(1, 4, 5, 5)).astype(np.uint8)
    w = rng.integers(-128, 128, size=(4, 2, 3, 3)).astype(np.int8)
    x_zp, w_zp = np.uint8(120), np.array([0, 1, -2, 3], dtype=np.int8)
    x_scale, w_scale = np.float32(0.02), np.array([0.01, 0.02, 0.03, 0.04], dtype=np.float32)
    y_scale, y_zp = np.float32(0.5), np.uint8(100)
    bias = np.array([100, -200, 300, -400], dtype=np.int32)
    y = run(
        "QLinearConv",
        [x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias],
        opset=10,
        group=2,
        strides=[2, 2],
        pads=[1, 1, 1, 1],
    )
    xc = x.astype(np.int64) - 120
    wc = w.astype(np.int64) - w_zp.astype(np.int64).reshape(4, 1, 1, 1)
    acc = conv_loop(xc, wc, bias.astype(np.int64), 2, 1, 2)
    mult = (np.float64(x_scale) * w_scale.astype(np.float64) / np.float64(y_scale)).reshape(
        1, 4, 1, 1
    )
    expected = np.clip(np.rint(acc * mult) + 100, 0, 255).astype(np.uint8)
    assert y.dtype == np.uint8 and y.shape == (1, 4, 3, 3)
    np.testing.assert_array_equal(y, expected)


def test_qlinearmatmul_per_row_and_per_column():
    a = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)
    b = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int8)
    a_scale = np.array([0.5, 0.25], dtype=np.float32)  # per row of a
    a_zp = np.array([10, 20], dtype=np.uint8)
    b_scale = np.array([1.0, 2.0], dtype=np.float32)  # per column of b
    b_zp = np.array([1, 0], dtype=np.int8)
    y = run(
        "QLinearMatMul",
        [a, a_scale, a_zp, b, b_scale, b_zp, np.float32(4.0), np.int8(0)],
        opset=21,
    )
    expected = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            acc = sum(
                (int(a[i, k]) - int(a_zp[i])) * (int(b[k, j]) - int(b_zp[j])) for k in range(3)
            )
            expected[i, j] = np.clip(np.rint(acc * a_scale[i] * b_scale[j] / 4.0), -128, 127)
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, expected)
