"""Conv bias and FusedConv's Z written before the product, which BLAS accumulates onto them
(``kernels.blas.matmul_accumulate``), against onnxruntime; and the fallbacks where NumPy's BLAS
offers no such call."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpy.kernels import blas
from onnxpy.kernels.ai_onnx import conv as conv_module
from tests.kernels.test_conv import naive_conv
from tests.kernels.test_conv import run as run_node
from tests.kernels.test_conv_fast_paths import _compare, _model

RNG = np.random.default_rng(81)


def _spy(monkeypatch) -> list[int]:
    """Count the calls of conv's accumulate-onto path."""
    calls: list[int] = []
    inner = conv_module._gemm_onto

    def counted(*args):
        calls.append(1)
        return inner(*args)

    monkeypatch.setattr(conv_module, "_gemm_onto", counted)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("m", "k", "n"), [(3, 5, 4), (64, 96, 200)])
def test_matmul_accumulate_adds_the_product_onto_c(monkeypatch, dtype, m, k, n):
    monkeypatch.setattr(blas, "SMALL_PRODUCT", 1)  # the larger one is timed and chosen too
    a = RNG.standard_normal((m, k)).astype(dtype)
    b = RNG.standard_normal((k, n)).astype(dtype)
    c = RNG.standard_normal((m, n)).astype(dtype)
    expected = c.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    assert blas.accumulates(dtype)
    for _ in range(3):  # first sight, the one-thread run, then as chosen
        got = c.copy()
        assert blas.matmul_accumulate(a, b, got) is got
        tol = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "operands",
    ["a transposed view", "c strided view", "float16", "int32", "mixed dtypes", "k = 0"],
)
def test_matmul_accumulate_falls_back_to_numpy_for_other_operands(operands):
    """Operands the BLAS call cannot take still get ``c += a @ b``."""
    a = RNG.standard_normal((6, 4))
    b = RNG.standard_normal((4, 5))
    c = RNG.standard_normal((6, 10))[:, :5].copy()
    if operands == "a transposed view":
        a = np.ascontiguousarray(a.T).T
    elif operands == "c strided view":
        c = RNG.standard_normal((6, 10))[:, ::2]
    elif operands == "float16":
        a, b, c = a.astype(np.float16), b.astype(np.float16), c.astype(np.float16)
    elif operands == "int32":
        a, b, c = (np.round(v * 10).astype(np.int32) for v in (a, b, c))
    elif operands == "mixed dtypes":
        a = a.astype(np.float32)
    elif operands == "k = 0":
        a, b = a[:, :0], b[:0]
    expected = c + np.matmul(a, b).astype(c.dtype)
    got = blas.matmul_accumulate(a, b, c)
    assert got is c
    tol = 1e-2 if c.dtype == np.float16 else 1e-6
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    assert not blas.accumulates(np.float16) and not blas.accumulates(np.int32)


GEOMETRIES = [
    # (x shape, w shape, attrs): 1x1 on the input itself, strided 1x1, padded 1x1, 3x3
    # im2col with pads and dilation, a 7x7 stride-2 stem from phase planes, 1-D, 3-D
    ((2, 8, 9, 9), (24, 8, 1, 1), {}),
    ((2, 8, 9, 10), (16, 8, 1, 1), {"strides": [2, 3]}),
    ((2, 8, 9, 9), (16, 8, 1, 1), {"pads": [1, 0, 0, 1]}),
    ((2, 8, 9, 9), (12, 8, 3, 3), {"pads": [2, 1, 2, 1], "dilations": [2, 1]}),
    ((2, 3, 19, 19), (8, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}),
    ((2, 4, 13), (6, 4, 3), {"pads": [1, 2]}),
    ((2, 2, 5, 6, 7), (4, 2, 3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}),
]


def _out_shape(x_shape, w_shape, attrs):
    n = len(x_shape) - 2
    pads = attrs.get("pads", [0] * 2 * n)
    strides = attrs.get("strides", [1] * n)
    dil = attrs.get("dilations", [1] * n)
    return (x_shape[0], w_shape[0]) + tuple(
        (x_shape[2 + i] + pads[i] + pads[i + n] - dil[i] * (w_shape[2 + i] - 1) - 1) // strides[i]
        + 1
        for i in range(n)
    )


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), GEOMETRIES)
@pytest.mark.parametrize(
    ("with_bias", "with_z", "activation"),
    [
        (True, False, None),
        (False, True, "Relu"),
        (True, True, "Relu"),
        (True, True, "LeakyRelu"),
        (True, False, "HardSigmoid"),
        (False, False, "Tanh"),
    ],
)
@pytest.mark.parametrize("blas_call", [True, False], ids=["beta1", "fallback"])
def test_bias_and_z_under_the_product_match_onnxruntime(
    monkeypatch, x_shape, w_shape, attrs, with_bias, with_z, activation, blas_call
):
    calls = _spy(monkeypatch)
    if not blas_call:
        monkeypatch.setattr(blas, "_gemms", {})  # as with a BLAS that has no such call
    x = RNG.standard_normal(x_shape).astype(np.float32)
    w = RNG.standard_normal(w_shape).astype(np.float32)
    b = RNG.standard_normal(w_shape[0]).astype(np.float32) if with_bias else None
    feeds = {"x": x}
    z_shape = _out_shape(x_shape, w_shape, attrs) if with_z else None
    if with_z:
        feeds["z"] = RNG.standard_normal(z_shape).astype(np.float32)
    if activation is None:
        model = _model(x_shape, w, b, attrs)
    else:
        params = {"LeakyRelu": [0.2], "HardSigmoid": [0.3, 0.4]}.get(activation)
        fused = {"activation": activation, **attrs}
        if params:
            fused["activation_params"] = params
        extra = ("z",) if with_z else ()
        model = _model(x_shape, w, b, fused, "FusedConv", extra, "com.microsoft")
    _compare(model, feeds)
    assert bool(calls) == (blas_call and (with_bias or with_z))


@pytest.mark.parametrize("blas_call", [True, False], ids=["beta1", "fallback"])
def test_float64_bias_under_the_product_matches_the_definition(monkeypatch, blas_call):
    calls = _spy(monkeypatch)
    if not blas_call:
        monkeypatch.setattr(blas, "_gemms", {})
    x = RNG.standard_normal((3, 4, 8, 7))
    w = RNG.standard_normal((5, 4, 3, 3))
    b = RNG.standard_normal(5)
    attrs = {"pads": [1, 0, 1, 2], "strides": [1, 2]}
    got = run_node("Conv", [x, w, b], constants=(1, 2), **attrs)
    assert got.dtype == np.float64 and bool(calls) == blas_call
    np.testing.assert_allclose(got, naive_conv(x, w, b, **attrs), rtol=1e-12, atol=1e-12)


def test_z_that_does_not_fit_the_output_is_refused():
    x = RNG.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((8, 4, 1, 1)).astype(np.float32)
    b = RNG.standard_normal(8).astype(np.float32)
    from onnxpy.kernels.registry import NodeInfo

    info = NodeInfo("n", "FusedConv", "com.microsoft", 1, 4, 1, constant_inputs={1: w, 2: b})
    run = conv_module.conv_runner(info)
    with pytest.raises(ValueError, match="does not match the output"):
        run(x, w, b, np.zeros((1, 8, 5, 6), np.float32))
