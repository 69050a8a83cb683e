"""The float32 fast paths of the layer norms and Softmax against float64 NumPy formulas:
precision on offset data, outputs that share buffers, inputs left untouched."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpy.kernels.ai_onnx.activation import log_softmax, softmax
from onnxpy.kernels.ai_onnx.norm import layer_normalization
from onnxpy.kernels.com_microsoft.transformer import skip_layer_normalization


def _ln64(s: np.ndarray, gamma, beta, eps: float) -> np.ndarray:
    s = s.astype(np.float64)
    mean = s.mean(-1, keepdims=True)
    var = ((s - mean) ** 2).mean(-1, keepdims=True)
    y = (s - mean) / np.sqrt(var + eps) * gamma
    return y + beta if beta is not None else y


def _readonly(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_skip_layer_norm_float32_precision_and_outputs(offset):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 7, 96)) + offset).astype(np.float32)
    skip = rng.standard_normal((2, 7, 96)).astype(np.float32)
    gamma, beta, bias = (rng.standard_normal(96).astype(np.float32) for _ in range(3))
    copies = [a.copy() for a in (x, skip, gamma, beta, bias)]
    _readonly(x, skip, gamma, beta, bias)
    y, mean, inv, s = skip_layer_normalization(x, skip, gamma, beta, bias, epsilon=1e-5)
    s64 = x.astype(np.float64) + skip + bias
    assert y.dtype == mean.dtype == inv.dtype == s.dtype == np.float32
    np.testing.assert_allclose(y, _ln64(s64, gamma, beta, 1e-5), rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(s, s64, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mean[..., 0], s64.mean(-1), rtol=1e-5)
    np.testing.assert_allclose(inv[..., 0], 1 / np.sqrt(s64.var(-1) + 1e-5), rtol=2e-4)
    assert mean.shape == inv.shape == (2, 7, 1)
    assert not np.shares_memory(y, s)
    for a, c in zip((x, skip, gamma, beta, bias), copies):
        np.testing.assert_array_equal(a, c)


def test_skip_layer_norm_without_beta_and_bias():
    rng = np.random.default_rng(1)
    x, skip = rng.standard_normal((2, 3, 16)).astype(np.float32), np.ones((2, 3, 16), np.float32)
    gamma = rng.standard_normal(16).astype(np.float32)
    y = skip_layer_normalization(x, skip, gamma, epsilon=1e-12)[0]
    np.testing.assert_allclose(y, _ln64(x + 1.0, gamma, None, 1e-12), rtol=1e-4, atol=1e-5)


def test_layer_normalization_float32_with_offset():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((4, 5, 64)) * 0.1 + 50).astype(np.float32)
    gamma, beta = (
        rng.standard_normal(64).astype(np.float32),
        rng.standard_normal(64).astype(np.float32),
    )
    y, mean, inv = layer_normalization(x, gamma, beta, axis=-1, epsilon=1e-5)
    np.testing.assert_allclose(y, _ln64(x, gamma, beta, 1e-5), rtol=1e-3, atol=1e-3)
    assert y.dtype == np.float32 and mean.shape == (4, 5, 1)


def test_softmax_fast_path():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 3, 4, 10)) * 30).astype(np.float32)
    x[0, 0, 0, :5] = -np.inf
    (x0,) = _readonly(x.copy())
    y = softmax(x0, axis=-1)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(-1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert y.dtype == np.float32 and y[0, 0, 0, :5].sum() == 0
    ls = log_softmax(x0, axis=1)
    ref = x64 - x64.max(1, keepdims=True)
    ref -= np.log(np.exp(ref).sum(1, keepdims=True))
    np.testing.assert_allclose(ls, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(x0, x)
