"""Activation, softmax-family and loss kernels: legacy opset semantics, dtypes, edge cases.

Expectations are worked by hand or from NumPy identities, never from the kernels.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import onnxpy
from tests.kernels.test_elementwise import run


def _softmax_rows(m: np.ndarray) -> np.ndarray:
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- softmax family: pre-13 2-D coercion vs per-axis ---------------------------------------------


def test_softmax_opset11_coerces_to_2d():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    y = run("Softmax", [x], opset=11, axis=1)
    expected = _softmax_rows(x.reshape(2, 12).astype(np.float64)).reshape(2, 3, 4)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    np.testing.assert_allclose(y.sum(axis=(1, 2)), [1.0, 1.0], rtol=1e-5)


def test_softmax_opset1_default_axis_is_1():
    x = np.arange(8, dtype=np.float64).reshape(2, 2, 2)
    expected = _softmax_rows(x.reshape(2, 4)).reshape(2, 2, 2)
    np.testing.assert_allclose(run("Softmax", [x], opset=1), expected, rtol=1e-12)


def test_softmax_opset13_default_last_axis():
    x = np.arange(8, dtype=np.float64).reshape(2, 2, 2)
    y = run("Softmax", [x], opset=13)
    np.testing.assert_allclose(y.sum(axis=-1), np.ones((2, 2)), rtol=1e-12)
    np.testing.assert_allclose(y[0, 0], [1 / (1 + math.e), math.e / (1 + math.e)], rtol=1e-12)


def test_log_softmax_opset11_axis0_is_one_row():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = run("LogSoftmax", [x], opset=11, axis=0)
    lse = math.log(sum(math.exp(v) for v in (1.0, 2.0, 3.0, 4.0)))
    np.testing.assert_allclose(y, x - lse, rtol=1e-12)


def test_log_softmax_negative_axis_opset13():
    x = np.array([[1000.0, 1000.0]], np.float32)  # must not overflow
    np.testing.assert_allclose(run("LogSoftmax", [x], opset=13, axis=-1), [[-math.log(2)] * 2])


def test_hardmax_first_max_wins_and_legacy_coercion():
    x = np.array([[[1.0, 3.0], [3.0, 0.0]]], np.float32)  # shape (1, 2, 2)
    legacy = run("Hardmax", [x], opset=11)  # one row of 4: first 3.0 wins
    np.testing.assert_array_equal(legacy, [[[0, 1], [0, 0]]])
    modern = run("Hardmax", [x], opset=13)  # per last axis
    np.testing.assert_array_equal(modern, [[[0, 1], [1, 0]]])
    assert modern.dtype == np.float32


def test_softmax_float16_keeps_dtype():
    y = run("Softmax", [np.array([0.0, 0.0], np.float16)], opset=13)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, [0.5, 0.5])


# -- pointwise activations -----------------------------------------------------------------------


def test_selu_opset1_defaults_differ_from_opset6():
    x = np.array([-1.0], np.float64)
    y1 = run("Selu", [x], opset=1)
    y6 = run("Selu", [x], opset=6)
    np.testing.assert_allclose(y1, [1.0506999492645264 * 1.673200011253357 * (math.exp(-1) - 1)])
    np.testing.assert_allclose(y6, [1.0507010221481323 * 1.6732631921768188 * (math.exp(-1) - 1)])


def test_prelu_opset6_channel_slope():
    x = -np.ones((2, 3, 4), np.float32)
    slope = np.array([1.0, 2.0, 3.0], np.float32)
    y = run("PRelu", [x, slope], opset=6)
    np.testing.assert_array_equal(y[:, :, 0], [[-1, -2, -3], [-1, -2, -3]])


def test_prelu_opset9_integers():
    y = run("PRelu", [np.array([-4, 5], np.int32), np.array([3], np.int32)], opset=9)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [-12, 5])


def test_prelu_slope_must_broadcast_to_x():
    with pytest.raises(onnxpy.Fail):
        run("PRelu", [np.ones(3, np.float32), np.ones((2, 3), np.float32)], opset=16)


def test_relu_integer_opset14():
    y = run("Relu", [np.array([-3, 0, 7], np.int8)], opset=14)
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, [0, 0, 7])


def test_leaky_relu_opset1_consumed_inputs():
    y = run("LeakyRelu", [np.array([-2.0, 2.0], np.float64)], opset=1, consumed_inputs=[0])
    np.testing.assert_allclose(y, [-0.02, 2.0])


@pytest.mark.parametrize(
    "op, attrs, x, expected",
    [
        ("Elu", {"alpha": 2.0}, [-1.0, 1.0], [2.0 * (math.exp(-1) - 1), 1.0]),
        ("Celu", {"alpha": 2.0}, [-2.0, 3.0], [2.0 * (math.exp(-1) - 1), 3.0]),
        ("ThresholdedRelu", {"alpha": 1.5}, [1.0, 1.5, 2.0], [0.0, 0.0, 2.0]),
        ("HardSigmoid", {}, [-10.0, 0.0, 10.0], [0.0, 0.5, 1.0]),
        ("HardSwish", {}, [-4.0, 0.0, 1.0, 4.0], [0.0, 0.0, 1.0 * (1 / 6 + 0.5), 4.0]),
        ("Softsign", {}, [-1.0, 3.0], [-0.5, 0.75]),
        ("Softplus", {}, [0.0, 1000.0], [math.log(2), 1000.0]),
        ("Sigmoid", {}, [-1000.0, 0.0, 1000.0], [0.0, 0.5, 1.0]),
        ("Mish", {}, [1.0], [math.tanh(math.log1p(math.e))]),
        ("Swish", {"alpha": 2.0}, [1.0], [1.0 / (1 + math.exp(-2.0))]),
        ("Gelu", {}, [1.0], [0.5 * (1 + math.erf(1 / math.sqrt(2)))]),
        (
            "Gelu",
            {"approximate": "tanh"},
            [1.0],
            [0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))],
        ),
    ],
)
def test_pointwise_values_float64(op, attrs, x, expected):
    y = run(op, [np.array(x, np.float64)], **attrs)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "Gelu", "Elu", "Softplus", "Mish"])
def test_low_precision_keeps_dtype(op, dtype):
    y = run(op, [np.array([-1.0, 0.0, 2.0], dtype)])
    assert y.dtype == np.dtype(dtype)


def test_swiglu_and_shape_check():
    a = np.array([1.0, -1.0], np.float64)
    b = np.array([2.0, 3.0], np.float64)
    sig = [1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(1.0))]
    np.testing.assert_allclose(run("SwiGLU", [a, b], opset=28), [2.0 * sig[0], -3.0 * sig[1]])
    with pytest.raises(onnxpy.Fail):
        run("SwiGLU", [a, b[:1]], opset=28)


# -- losses --------------------------------------------------------------------------------------


def test_nll_loss_weighted_mean_with_ignore_index():
    x = np.array([[-1.0, -2.0, -3.0], [-0.5, -1.5, -2.5]], np.float64)
    target = np.array([2, 1], np.int64)
    weight = np.array([1.0, 4.0, 2.0])
    y = run("NegativeLogLikelihoodLoss", [x, target, weight], opset=22)
    np.testing.assert_allclose(y, (3.0 * 2.0 + 1.5 * 4.0) / (2.0 + 4.0))
    y = run("NegativeLogLikelihoodLoss", [x, target, weight], opset=22, ignore_index=1)
    np.testing.assert_allclose(y, 3.0)  # only the first sample counts
    y = run("NegativeLogLikelihoodLoss", [x, target], opset=22, reduction="none")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [3.0, 1.5])


def test_softmax_cross_entropy_returns_log_prob():
    scores = np.array([[0.0, 0.0], [0.0, math.log(3.0)]], np.float32)
    labels = np.array([0, 1], np.int32)
    loss, log_prob = run(
        "SoftmaxCrossEntropyLoss", [scores, labels], opset=13, outputs=2, reduction="sum"
    )
    assert loss.shape == () and loss.dtype == np.float32
    np.testing.assert_allclose(loss, math.log(2) + math.log(4 / 3), rtol=1e-6)
    np.testing.assert_allclose(log_prob[1], [math.log(1 / 4), math.log(3 / 4)], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_hard_swish_on_a_dying_input_in_place_and_fresh(dtype):
    """HardSwish of an Add's output (which dies there, so the planner may reuse it) and of a
    graph input (which must stay untouched), against the definition in float64."""
    from onnx import helper

    from onnxpy.types import elem_type_of

    x = (np.linspace(-5, 5, 41).reshape(1, 41) * np.ones((3, 1))).astype(dtype)
    et = elem_type_of(np.dtype(dtype))
    nodes = [
        helper.make_node("Add", ["x", "x"], ["s"]),
        helper.make_node("HardSwish", ["s"], ["y"]),
        helper.make_node("HardSwish", ["x"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", et, [3, 41])],
        [helper.make_tensor_value_info(n, et, [3, 41]) for n in ("y", "z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    kept = x.copy()
    y, z = onnxpy.InferenceSession(model.SerializeToString()).run(None, {"x": x})

    def definition(v):
        v = v.astype(np.float64)
        return v * np.clip(v / 6 + 0.5, 0, 1)

    tol = 2e-3 if dtype == np.float16 else 1e-6
    assert y.dtype == dtype and z.dtype == dtype
    np.testing.assert_allclose(y, definition(2 * x), rtol=tol, atol=tol)
    np.testing.assert_allclose(z, definition(x), rtol=tol, atol=tol)
    np.testing.assert_array_equal(x, kept)
