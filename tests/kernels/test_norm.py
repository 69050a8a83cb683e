"""Normalization operators beyond the backend cases: float16/float64, legacy BatchNormalization
forms, mixed parameter types, stash precision, per-group GroupNormalization (opset 18), LRN
windows, zero Lp norms.

Expectations are the spec formulas written out directly with NumPy in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxpy.kernels.ai_onnx.norm import group_normalization_18
from tests.kernels.single_node import run

RNG = np.random.default_rng(7)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def bn_ref(x, s, b, m, v, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x = x.astype(np.float64)
    r = [np.asarray(p, dtype=np.float64).reshape(shape) for p in (s, b, m, v)]
    return (x - r[2]) / np.sqrt(r[3] + eps) * r[0] + r[1]


# -- BatchNormalization -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "rtol"), [(np.float64, 1e-12), (np.float16, 2e-3), (np.float32, 1e-5)]
)
def test_batchnorm_inference_dtypes(dtype, rtol):
    x = rand(2, 3, 4, 5, dtype=dtype)
    s, b, m = rand(3, dtype=dtype), rand(3, dtype=dtype), rand(3, dtype=dtype)
    v = np.abs(rand(3, dtype=dtype)) + dtype(0.5)
    y = run("BatchNormalization", [x, s, b, m, v], opset=15)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float64), bn_ref(x, s, b, m, v), rtol=rtol, atol=rtol)


def test_batchnorm_mixed_parameter_types():
    x = rand(2, 3, 4, dtype=np.float16)
    s, b, m = rand(3), rand(3), rand(3)
    v = np.abs(rand(3)) + 0.5
    y, rm, rv = run(
        "BatchNormalization", [x, s, b, m, v], opset=15, outputs=3, training_mode=1, momentum=0.8
    )
    assert y.dtype == np.float16 and rm.dtype == np.float32 and rv.dtype == np.float32
    xd = x.astype(np.float64)
    mean = xd.mean(axis=(0, 2))
    var = xd.var(axis=(0, 2))
    np.testing.assert_allclose(
        y.astype(np.float64), bn_ref(xd, s, b, mean, var), rtol=3e-3, atol=3e-3
    )
    np.testing.assert_allclose(rm, m * 0.8 + mean * 0.2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, v * 0.8 + var * 0.2, rtol=1e-5, atol=1e-6)


def test_batchnorm_2d_input():
    x = rand(5, 3, dtype=np.float64)
    s, b, m, v = (
        rand(3, dtype=np.float64),
        rand(3, dtype=np.float64),
        rand(3, dtype=np.float64),
        np.ones(3),
    )
    y = run("BatchNormalization", [x, s, b, m, v], opset=9)
    np.testing.assert_allclose(y, bn_ref(x, s, b, m, v), rtol=1e-12)


def test_batchnorm_legacy_non_spatial_parameters():
    x = rand(2, 3, 4, dtype=np.float64)
    s, b, m = (
        rand(3, 4, dtype=np.float64),
        rand(3, 4, dtype=np.float64),
        rand(3, 4, dtype=np.float64),
    )
    v = np.abs(rand(3, 4, dtype=np.float64)) + 0.5
    y = run("BatchNormalization", [x, s, b, m, v], opset=7, spatial=0)
    np.testing.assert_allclose(y, (x - m) / np.sqrt(v + 1e-5) * s + b, rtol=1e-12)


def test_batchnorm_legacy_single_output_is_inference_even_without_is_test():
    x = rand(2, 3, 2, 2, dtype=np.float64)
    s, b, m, v = np.ones(3), np.zeros(3), np.full(3, 10.0), np.full(3, 4.0)
    y = run("BatchNormalization", [x, s, b, m, v], opset=6, epsilon=0.0)
    np.testing.assert_allclose(y, (x - 10) / 2, rtol=1e-12)


def test_batchnorm_legacy_training_outputs():
    x = rand(4, 2, 3, dtype=np.float64)
    s, b, m, v = np.ones(2), np.zeros(2), np.zeros(2), np.ones(2)
    y, rm, rv, sm, sv = run("BatchNormalization", [x, s, b, m, v], opset=9, outputs=5, momentum=0.5)
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    np.testing.assert_allclose(y, bn_ref(x, s, b, mean, var), rtol=1e-10)
    np.testing.assert_allclose(rm, 0.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.5 + 0.5 * var, rtol=1e-12)
    np.testing.assert_allclose(sm, mean, rtol=1e-12)
    np.testing.assert_allclose(sv, var, rtol=1e-12)


def test_batchnorm_does_not_modify_inputs():
    x = rand(2, 3, 4)
    keep = x.copy()
    run(
        "BatchNormalization",
        [x, np.ones(3, np.float32), np.zeros(3, np.float32), rand(3), np.ones(3, np.float32)],
        opset=15,
    )
    np.testing.assert_array_equal(x, keep)


# -- Instance / Layer / Group / RMS -----------------------------------------------------------


@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-12), (np.float16, 3e-3)])
def test_instancenorm_dtypes(dtype, tol):
    x = rand(2, 3, 5, dtype=dtype)
    s, b = rand(3, dtype=dtype), rand(3, dtype=dtype)
    y = run("InstanceNormalization", [x, s, b], opset=22, epsilon=1e-3)
    xd = x.astype(np.float64)
    mean = xd.mean(axis=2, keepdims=True)
    var = xd.var(axis=2, keepdims=True)
    eps = float(np.float32(1e-3))  # attributes are stored as float32
    ref = (xd - mean) / np.sqrt(var + eps) * s.astype(np.float64)[:, None] + b.astype(np.float64)[
        :, None
    ]
    assert y.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=tol, atol=tol)


def layer_norm_ref(x, axis, eps=1e-5):
    xd = x.astype(np.float64)
    axes = tuple(range(axis, x.ndim))
    mean = xd.mean(axis=axes, keepdims=True)
    var = xd.var(axis=axes, keepdims=True)
    return (xd - mean) / np.sqrt(var + eps), mean, 1 / np.sqrt(var + eps)


def test_layernorm_float64_with_float32_stash():
    x = rand(2, 3, 4, dtype=np.float64)
    w, b = rand(3, 4, dtype=np.float64), rand(3, 4, dtype=np.float64)
    y, mean, inv = run("LayerNormalization", [x, w, b], opset=17, outputs=3, axis=1)
    norm, rmean, rinv = layer_norm_ref(x, 1)
    assert y.dtype == np.float64 and mean.dtype == np.float32 and inv.dtype == np.float32
    assert mean.shape == (2, 1, 1) and inv.shape == (2, 1, 1)
    np.testing.assert_allclose(y, norm * w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mean, rmean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inv, rinv, rtol=1e-5)


def test_layernorm_float64_stash_and_no_bias():
    x = rand(3, 5, dtype=np.float64)
    w = rand(5, dtype=np.float64)
    y, mean, inv = run("LayerNormalization", [x, w], opset=17, outputs=3, stash_type=11)
    norm, rmean, rinv = layer_norm_ref(x, 1)
    assert mean.dtype == np.float64
    np.testing.assert_allclose(y, norm * w, rtol=1e-12)
    np.testing.assert_allclose(inv, rinv, rtol=1e-12)


def test_layernorm_float16():
    x = rand(4, 8, dtype=np.float16)
    w, b = rand(8, dtype=np.float16), rand(8, dtype=np.float16)
    y = run("LayerNormalization", [x, w, b], opset=17)
    norm = layer_norm_ref(x, 1)[0]
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float64), norm * w + b, rtol=5e-3, atol=5e-3)


def group_norm_ref(x, groups, eps=1e-5):
    n, c = x.shape[:2]
    xg = x.astype(np.float64).reshape(n, groups, -1)
    norm = (xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + eps)
    return norm.reshape(x.shape)


def test_groupnorm_18_per_group_parameters():
    # the checker refuses opset-18 GroupNormalization (deprecated): call the kernel directly
    x = rand(2, 4, 3, dtype=np.float64)
    s, b = np.array([2.0, -1.0]), np.array([0.5, 1.5])
    y = group_normalization_18(x, s, b, num_groups=2)
    per_channel = np.repeat(s, 2)[:, None], np.repeat(b, 2)[:, None]
    np.testing.assert_allclose(
        y, group_norm_ref(x, 2) * per_channel[0] + per_channel[1], rtol=1e-12
    )


def test_groupnorm_21_per_channel_float16():
    x = rand(2, 6, 5, dtype=np.float16)
    s, b = rand(6, dtype=np.float16), rand(6, dtype=np.float16)
    y = run("GroupNormalization", [x, s, b], opset=21, num_groups=3)
    ref = group_norm_ref(x, 3) * s.astype(np.float64)[:, None] + b.astype(np.float64)[:, None]
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=5e-3, atol=5e-3)


def test_rmsnorm_float16_input_float32_scale():
    x = rand(2, 3, 4, dtype=np.float16)
    w = rand(4)
    y = run("RMSNormalization", [x, w], opset=23)
    xd = x.astype(np.float64)
    ref = xd / np.sqrt((xd * xd).mean(-1, keepdims=True) + 1e-5) * w
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=2e-3, atol=2e-3)


def test_rmsnorm_float64_axis0():
    x = rand(2, 3, dtype=np.float64)
    w = rand(2, 3, dtype=np.float64)
    y = run("RMSNormalization", [x, w], opset=23, axis=0, stash_type=11, epsilon=0.0)
    np.testing.assert_allclose(y, x / np.sqrt((x * x).mean()) * w, rtol=1e-12)


# -- LRN / LpNormalization / MVN --------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_lrn_window(size):
    x = rand(2, 5, 3, dtype=np.float64)
    y = run("LRN", [x], opset=13, size=size, alpha=0.5, beta=0.6, bias=2.0)
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    ref = np.empty_like(x)
    for c in range(5):
        sq = (x[:, max(0, c - lo) : min(4, c + hi) + 1] ** 2).sum(axis=1)
        ref[:, c] = x[:, c] / (2.0 + 0.5 / size * sq) ** float(np.float32(0.6))  # float32 attribute
    np.testing.assert_allclose(y, ref, rtol=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_lpnorm_zero_rows(p):
    x = np.array([[3.0, -4.0], [0.0, 0.0]], dtype=np.float64)
    y = run("LpNormalization", [x], opset=22, p=p, axis=1)
    norm = 7.0 if p == 1 else 5.0
    np.testing.assert_allclose(y, [[3 / norm, -4 / norm], [0.0, 0.0]])


def test_lpnorm_float16_axis0():
    x = np.array([[3.0, 1.0], [4.0, 0.0]], dtype=np.float16)
    y = run("LpNormalization", [x], opset=22, axis=0)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float64), [[0.6, 1.0], [0.8, 0.0]], rtol=1e-3)


def test_mvn_custom_axes_float64():
    x = rand(2, 3, 4, dtype=np.float64)
    y = run("MeanVarianceNormalization", [x], opset=13, axes=[1, 2])
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / (std + 1e-9), rtol=1e-10)


def test_batchnorm_inference_node_with_extra_outputs_passes_statistics_through():
    x = rand(2, 3, 4, dtype=np.float64)
    m, v = rand(3, dtype=np.float64), np.ones(3)
    y, rm, rv = run("BatchNormalization", [x, np.ones(3), np.zeros(3), m, v], opset=15, outputs=3)
    np.testing.assert_allclose(y, bn_ref(x, np.ones(3), np.zeros(3), m, v), rtol=1e-12)
    np.testing.assert_array_equal(rm, m)
    np.testing.assert_array_equal(rv, v)
