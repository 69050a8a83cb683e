"""Erf and the GELU kernels: the fast float32 path against math.erf, special values, dtypes,
and the com.microsoft Gelu / BiasGelu against onnxruntime."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxpy
from onnxpy.kernels.ai_onnx.elementwise import erf, gelu_float32
from onnxpy.kernels.com_microsoft.transformer import bias_gelu
from onnxpy.kernels.com_microsoft.transformer import gelu as ms_gelu

_math_erf = np.vectorize(math.erf, otypes=[np.float64])


def _dense_grid() -> np.ndarray:
    """Every 211th float32 in [0, 7) (about 5 million values), both signs, plus 0 and 7."""
    lo, hi = np.float32(0).view(np.int32), np.float32(7).view(np.int32)
    bits = np.arange(lo, hi, 211, dtype=np.int32)
    x = bits.view(np.float32)
    return np.concatenate([x, -x, np.float32([7.0, 0.0])])


def test_float32_erf_matches_math_erf_on_dense_grid():
    x = _dense_grid()
    y = erf(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    # math.erf on a sample (it is slow per element), the float64 kernel on the rest.
    sample = x[::97]
    err_math = np.abs(y[::97].astype(np.float64) - _math_erf(sample.astype(np.float64)))
    assert err_math.max() <= 2e-7
    reference = erf(x.astype(np.float64))
    assert np.abs(y - reference).max() <= 2e-7
    # About 2 ulp: relative error bound where |erf| is small.
    small = np.abs(x) < 0.5
    rel = np.abs(y[small] - reference[small]) / np.maximum(np.abs(reference[small]), 1e-30)
    assert rel.max() <= 3e-7


def test_float32_erf_special_values_and_symmetry():
    x = np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30, 20.0, -20.0, 4.0])
    y = erf(x)
    assert y[0] == 1.0 and y[1] == -1.0 and np.isnan(y[2])
    assert y[3] == 0.0 and y[4] == 0.0 and np.signbit(y[4])
    assert y[5] == pytest.approx(2 / math.sqrt(math.pi) * 1e-30, rel=1e-6)
    assert y[6] == 1.0 and y[7] == -1.0
    assert abs(float(y[8]) - math.erf(4.0)) <= 6e-8  # within an ulp of 1
    grid = np.linspace(-8, 8, 200001, dtype=np.float32)
    assert np.array_equal(erf(-grid), -erf(grid))
    assert np.all(np.diff(erf(grid)) >= 0)  # monotone
    assert erf(np.float32(0.5)).shape == ()  # 0-d works


def test_erf_float64_stays_accurate_and_narrow_floats_round_once():
    x = np.linspace(-6, 6, 2001)
    np.testing.assert_allclose(erf(x), _math_erf(x), rtol=0, atol=1e-15)
    assert erf(x).dtype == np.float64
    for dtype in (np.float16, ml_dtypes.bfloat16):
        xs = np.linspace(-3, 3, 301).astype(dtype)
        y = erf(xs)
        assert y.dtype == np.float32  # the caller rounds once
        np.testing.assert_allclose(y, _math_erf(xs.astype(np.float64)), atol=3e-7)


def _session(node, inputs, outputs):
    graph = helper.make_graph([node], "g", inputs, outputs)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)],
    )
    model.ir_version = 9
    return model


def test_erf_node_dtypes():
    x = np.linspace(-4, 4, 41).astype(np.float16)
    m = _session(
        helper.make_node("Erf", ["X"], ["Y"]),
        [helper.make_tensor_value_info("X", TensorProto.FLOAT16, [41])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT16, [41])],
    )
    (y,) = onnxpy.InferenceSession(m.SerializeToString()).run(None, {"X": x})
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, _math_erf(x.astype(np.float64)).astype(np.float16))


def _gelu_reference(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float64)
    return 0.5 * v * (1 + _math_erf(v / math.sqrt(2)))


def test_gelu_float32_against_math():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20000) * 3, np.linspace(-10, 10, 2001)])
    x = x.astype(np.float32)
    y = gelu_float32(x)
    assert y.dtype == np.float32
    ref = _gelu_reference(x)
    np.testing.assert_allclose(y, ref, rtol=5e-7, atol=5e-7)
    b = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(gelu_float32(x, b), _gelu_reference(x + b), rtol=5e-7, atol=5e-7)
    assert gelu_float32(np.float32(1.0), np.float32(0.5)).shape == ()
    special = gelu_float32(np.float32([np.inf, np.nan, 0.0]))
    assert special[0] == np.inf and np.isnan(special[1]) and special[2] == 0.0


def test_gelu_kernels_do_not_write_inputs():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    a0, b0 = a.copy(), b.copy()
    a.flags.writeable = False
    b.flags.writeable = False
    np.testing.assert_allclose(bias_gelu(a, b), _gelu_reference(a + b), atol=5e-7)
    np.testing.assert_allclose(ms_gelu(a), _gelu_reference(a), atol=5e-7)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("elem", [TensorProto.FLOAT, TensorProto.FLOAT16])
def test_ms_gelu_and_bias_gelu_match_onnxruntime(elem):
    ort = pytest.importorskip("onnxruntime")
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    rng = np.random.default_rng(2)
    a = (rng.standard_normal((2, 16, 64)) * 3).astype(dtype)
    b = rng.standard_normal(64).astype(dtype)
    for node, feeds in (
        (helper.make_node("Gelu", ["A"], ["Y"], domain="com.microsoft"), {"A": a}),
        (helper.make_node("BiasGelu", ["A", "B"], ["Y"], domain="com.microsoft"), {"A": a, "B": b}),
    ):
        inputs = [helper.make_tensor_value_info("A", elem, [2, 16, 64])]
        if "B" in feeds:
            inputs.append(helper.make_tensor_value_info("B", elem, [64]))
        m = _session(node, inputs, [helper.make_tensor_value_info("Y", elem, [2, 16, 64])])
        blob = m.SerializeToString()
        expected = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, feeds)
        (actual,) = onnxpy.InferenceSession(blob).run(None, feeds)
        assert actual.dtype == dtype
        tol = 1e-5 if elem == TensorProto.FLOAT else 2e-3
        np.testing.assert_allclose(actual, expected[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_onnx_gelu_20(dtype):
    x = np.linspace(-6, 6, 121).astype(dtype)
    m = _session(
        helper.make_node("Gelu", ["X"], ["Y"]),
        [
            helper.make_tensor_value_info(
                "X", helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), [121]
            )
        ],
        [
            helper.make_tensor_value_info(
                "Y", helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), [121]
            )
        ],
    )
    (y,) = onnxpy.InferenceSession(m.SerializeToString()).run(None, {"X": x})
    assert y.dtype == dtype
    tol = {np.float32: 5e-7, np.float16: 2e-3, np.float64: 1e-14}[dtype]
    np.testing.assert_allclose(y.astype(np.float64), _gelu_reference(x), rtol=tol, atol=tol)
