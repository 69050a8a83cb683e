"""Scale and zero-point formulas, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpy
from onnxpy.quantization.config import Options, QuantType
from onnxpy.quantization.params import quantize_bias, quantize_weight, range_params


def test_asymmetric_uint8():
    p = range_params(-1.0, 3.0, QuantType.QUInt8)
    assert p.scale == pytest.approx(4 / 255)
    assert int(p.zero_point) == 64  # round(0 - (-1) / (4 / 255)) = round(63.75)
    assert p.zero_point.dtype == np.uint8


def test_range_is_widened_to_contain_zero():
    p = range_params(2.0, 6.0, QuantType.QUInt8)
    assert p.scale == pytest.approx(6 / 255) and int(p.zero_point) == 0


def test_symmetric_int8_uses_minus_127_to_127():
    p = range_params(-2.0, 1.0, QuantType.QInt8, symmetric=True)
    assert p.scale == pytest.approx(4 / 254) and int(p.zero_point) == 0
    assert QuantType.QInt8.qrange(symmetric=True) == (-127, 127)
    assert QuantType.QInt8.qrange(reduce_range=True) == (-64, 63)
    assert QuantType.QUInt8.qrange(reduce_range=True) == (0, 127)


def test_zero_range_gets_scale_one():
    p = range_params(0.0, 0.0, QuantType.QInt8)
    assert p.scale == 1.0 and int(p.zero_point) == 0


def test_per_channel_weight():
    w = np.array([[1.0, -0.5], [0.25, 2.0], [-4.0, 0.0]], dtype=np.float32)  # [K=3, N=2]
    q, p = quantize_weight(w, QuantType.QInt8, symmetric=True, axis=1)
    np.testing.assert_allclose(p.scale, [4 / 127, 2 / 127], rtol=1e-6)
    np.testing.assert_array_equal(q[:, 0], np.rint(w[:, 0] / (4 / 127)))
    np.testing.assert_array_equal(q[:, 1], np.rint(w[:, 1] / (2 / 127)))
    assert q.dtype == np.int8


def test_bias_in_the_product_scale():
    b = quantize_bias(np.array([0.5, -1.0]), np.array([0.01, 0.02]))
    np.testing.assert_array_equal(b, [50, -50])
    assert b.dtype == np.int32


def test_unknown_extra_option_is_refused():
    with pytest.raises(onnxpy.InvalidArgument, match="NotAnOption"):
        Options.parse({"NotAnOption": True})
    assert Options.parse({"ActivationSymmetric": True}).activation_symmetric
