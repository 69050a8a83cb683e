"""Depthwise taps copied one stride phase at a time, phase planes zeroed only around the input,
the im2col matrix of large strided kernels copied from phase planes, Winograd on 64-channel
layers, and Conv biases on every product path, against onnxruntime.

Each case runs the same one-node model (constant weight and bias, as exported models carry
them) in onnxpy and in onnxruntime. The thread's scratch buffer is filled with NaN first, so a
zero the kernel forgot to write, or a bias row it forgot to set, shows up in the output.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpy
from onnxpy.kernels import depthwise
from onnxpy.kernels.ai_onnx import conv as conv_module
from onnxpy.kernels.scratch import scratch
from tests.kernels.test_conv import naive_conv
from tests.kernels.test_conv import run as run_node

RNG = np.random.default_rng(18)


def _model(x_shape, w, b, attrs, op="Conv", extra_inputs=(), domain="", bias_fed=False):
    """One ``op`` node; ``b`` an initializer, or with ``bias_fed`` a graph input named "b"
    of that many channels (``b`` then gives its length); without ``b``, ``extra_inputs``
    follow an empty bias name, as onnxruntime expects."""
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if b is not None:
        if not bias_fed:
            inits.append(numpy_helper.from_array(b, "b"))
        inputs.append("b")
    elif extra_inputs:
        inputs.append("")
    inputs += list(extra_inputs)
    node = helper.make_node(op, inputs, ["y"], domain=domain, **attrs)
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    if bias_fed:
        graph_inputs.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, [len(b)]))
    graph_inputs += [
        helper.make_tensor_value_info(
            name, TensorProto.FLOAT, list(x_shape[:1]) + [None] * (len(x_shape) - 1)
        )
        for name in extra_inputs
    ]
    graph = helper.make_graph(
        [node],
        "g",
        graph_inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def _poison_scratch() -> None:
    """Fill this thread's scratch buffer with NaN (grown to 64 MiB), as stale data would be."""
    (buf,) = scratch((16 << 20,), dtype=np.float32)
    buf.fill(np.nan)


def _compare(model: bytes, feeds: dict[str, np.ndarray]) -> np.ndarray:
    expected = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    session = onnxpy.InferenceSession(model)
    for _ in range(2):  # the second run reuses the (poisoned) scratch and cached weights
        _poison_scratch()
        got = session.run(None, feeds)[0]
        assert got.shape == expected.shape
        scale = max(float(np.abs(expected).max()), 1.0)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)
    return got


DEPTHWISE = [
    # (x shape, kernel, multiplier, attrs): strides 1-3, dilations 1-3, asymmetric pads,
    # pads wider than a stride, 1-D and 3-D, batches
    ((1, 6, 12, 12), (3, 3), 1, {"pads": [1, 1, 1, 1]}),
    ((2, 6, 13, 11), (3, 3), 1, {"pads": [0, 0, 1, 1], "strides": [2, 2]}),
    ((1, 4, 14, 14), (5, 5), 1, {"pads": [2, 2, 2, 2], "strides": [2, 2]}),
    ((3, 4, 15, 16), (5, 5), 2, {"pads": [2, 1, 2, 3], "strides": [3, 2]}),
    ((1, 5, 16, 15), (3, 3), 1, {"pads": [2, 2, 2, 2], "dilations": [2, 2]}),
    ((2, 3, 17, 17), (3, 5), 3, {"pads": [3, 1, 3, 2], "dilations": [3, 2], "strides": [2, 3]}),
    ((1, 4, 16, 16), (4, 4), 1, {"pads": [1, 2, 2, 1], "strides": [2, 2], "dilations": [2, 1]}),
    ((1, 3, 2, 2), (3, 3), 1, {"pads": [2, 2, 2, 2], "strides": [3, 3]}),
    ((2, 5, 23), (5,), 1, {"pads": [2, 2], "strides": [2]}),
    ((1, 4, 19), (3,), 2, {"pads": [2, 0], "dilations": [3]}),
    ((1, 3, 7, 8, 9), (3, 3, 3), 1, {"pads": [1, 1, 1, 1, 1, 1], "strides": [2, 2, 2]}),
    ((2, 2, 6, 7, 5), (3, 1, 3), 2, {"pads": [0, 0, 1, 2, 0, 1], "dilations": [1, 1, 2]}),
]


@pytest.mark.parametrize(("x_shape", "kernel", "mult", "attrs"), DEPTHWISE)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("border_bytes", [0, 1 << 60], ids=["borders", "whole"])
def test_depthwise_matches_onnxruntime(
    monkeypatch, x_shape, kernel, mult, attrs, with_bias, border_bytes
):
    monkeypatch.setattr(depthwise, "BORDER_FILL_BYTES", border_bytes)
    c = x_shape[1]
    w = RNG.standard_normal((c * mult, 1, *kernel)).astype(np.float32)
    b = RNG.standard_normal(c * mult).astype(np.float32) if with_bias else None
    x = RNG.standard_normal(x_shape).astype(np.float32)
    model = _model(x_shape, w, b, {"group": c, **attrs})
    _compare(model, {"x": x})


def test_depthwise_in_channel_chunks_with_large_planes(monkeypatch):
    """Several chunks of channels, and phase planes past the size that gets border zeros."""
    monkeypatch.setattr(depthwise, "CHUNK_BYTES", 64 << 10)
    x = RNG.standard_normal((2, 40, 57, 58)).astype(np.float32)
    w = RNG.standard_normal((40, 1, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(40).astype(np.float32)
    assert x.nbytes >= depthwise.BORDER_FILL_BYTES  # the planes are larger still
    for attrs in ({"pads": [1, 1, 1, 1]}, {"pads": [0, 0, 1, 1], "strides": [2, 2]}):
        _compare(_model(x.shape, w, b, {"group": 40, **attrs}), {"x": x})


BIASED = [
    # (x shape, w shape, attrs): 1x1 expansions and projections, strided 1x1, im2col kernels,
    # grouped
    ((1, 8, 9, 9), (24, 8, 1, 1), {}),
    ((3, 8, 9, 9), (24, 8, 1, 1), {}),
    ((2, 24, 9, 9), (8, 24, 1, 1), {}),
    ((2, 8, 9, 10), (16, 8, 1, 1), {"strides": [2, 3]}),
    ((1, 8, 9, 9), (16, 8, 1, 1), {"pads": [1, 0, 0, 1]}),
    ((2, 3, 16, 15), (8, 3, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((1, 4, 11, 12), (6, 4, 3, 2), {"dilations": [2, 1]}),
    ((2, 4, 13), (6, 4, 3), {"pads": [1, 2]}),
    ((1, 2, 5, 6, 7), (4, 2, 3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}),
    ((2, 8, 9, 9), (12, 4, 1, 1), {"group": 2}),
    ((2, 8, 9, 9), (12, 4, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),
]


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), BIASED)
def test_conv_bias_on_every_product_path_matches_onnxruntime(x_shape, w_shape, attrs):
    w = RNG.standard_normal(w_shape).astype(np.float32)
    b = RNG.standard_normal(w_shape[0]).astype(np.float32)
    x = RNG.standard_normal(x_shape).astype(np.float32)
    _compare(_model(x_shape, w, b, attrs), {"x": x})


@pytest.mark.parametrize(
    ("w_shape", "attrs"),
    [
        ((24, 8, 1, 1), {}),
        ((24, 8, 3, 3), {"pads": [1, 1, 1, 1]}),
        ((8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
    ],
)
@pytest.mark.parametrize("with_z", [False, True])
def test_fused_conv_bias_then_z_and_clip(w_shape, attrs, with_z):
    """FusedConv: the bias, then Z, then the activation, in that order."""
    x = RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)
    w = RNG.standard_normal(w_shape).astype(np.float32)
    b = RNG.standard_normal(w_shape[0]).astype(np.float32)
    fused = {"activation": "Clip", "activation_params": [-0.5, 1.5], **attrs}
    extra = ("z",) if with_z else ()
    model = _model(x.shape, w, b, fused, "FusedConv", extra, "com.microsoft")
    feeds = {"x": x}
    if with_z:
        feeds["z"] = RNG.standard_normal((2, w_shape[0], 9, 9)).astype(np.float32)
    got = _compare(model, feeds)
    assert got.min() >= -0.5 and got.max() <= 1.5


def test_conv_fed_bias_changes_between_runs():
    """A bias fed at run time is added with that run's values (nothing kept from a run)."""
    w = RNG.standard_normal((16, 4, 3, 3)).astype(np.float32)
    data = _model((1, 4, 6, 6), w, np.zeros(16, np.float32), {"pads": [1, 1, 1, 1]}, bias_fed=True)
    reference = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    session = onnxpy.InferenceSession(data)
    x = RNG.standard_normal((1, 4, 6, 6)).astype(np.float32)
    for shift in (0.0, 5.0, -3.0):
        b = RNG.standard_normal(16).astype(np.float32) + shift
        expected = reference.run(None, {"x": x, "b": b})[0]
        np.testing.assert_allclose(session.run(None, {"x": x, "b": b})[0], expected, atol=1e-4)


def test_conv_geometry_follows_the_input_shape_run_by_run():
    """Geometry resolved per input shape (and remembered): sizes change between runs of one
    session, SAME_UPPER pads change with them."""
    w = RNG.standard_normal((6, 1, 3, 3)).astype(np.float32)
    attrs = {"group": 6, "strides": [2, 2], "auto_pad": "SAME_UPPER"}
    data = _model((None, 6, None, None), w, None, attrs)
    reference = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    session = onnxpy.InferenceSession(data)
    for shape in ((1, 6, 9, 9), (2, 6, 12, 7), (1, 6, 9, 9), (1, 6, 4, 16)):
        x = RNG.standard_normal(shape).astype(np.float32)
        expected = reference.run(None, {"x": x})[0]
        got = session.run(None, {"x": x})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)


PHASED = [
    # (x shape, w shape, attrs): kernels with >= 4 taps per stride phase, so their im2col
    # matrix comes from phase planes: a stem, asymmetric pads, mixed strides, a dilation that
    # shares the stride's factor, stride 3 unpadded, grouped, 1-D, 3-D
    ((1, 3, 23, 23), (8, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}),
    ((2, 4, 17, 16), (6, 4, 5, 5), {"pads": [2, 1, 2, 3], "strides": [2, 2]}),
    ((1, 4, 19, 18), (6, 4, 5, 5), {"pads": [2, 2, 2, 2], "strides": [2, 1]}),
    ((1, 3, 21, 21), (4, 3, 5, 5), {"pads": [4, 4, 4, 4], "strides": [2, 2], "dilations": [2, 2]}),
    ((1, 3, 20, 22), (4, 3, 7, 7), {"strides": [3, 3], "dilations": [1, 2]}),
    ((2, 6, 15, 15), (4, 3, 7, 7), {"group": 2, "pads": [3, 3, 3, 3], "strides": [2, 2]}),
    ((2, 3, 40), (5, 3, 9), {"pads": [4, 4], "strides": [2]}),
    ((1, 2, 9, 9, 9), (3, 2, 5, 5, 5), {"pads": [2, 2, 2, 2, 2, 2], "strides": [2, 2, 2]}),
]


def _count_calls(monkeypatch, name: str) -> list[int]:
    """Wrap conv.``name`` so the test can check that its path was taken."""
    calls: list[int] = []
    inner = getattr(conv_module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(conv_module, name, counted)
    return calls


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), PHASED)
@pytest.mark.parametrize("with_bias", [True, False])
def test_strided_large_kernel_columns_from_phase_planes(
    monkeypatch, x_shape, w_shape, attrs, with_bias
):
    calls = _count_calls(monkeypatch, "phase_columns")
    w = RNG.standard_normal(w_shape).astype(np.float32)
    b = RNG.standard_normal(w_shape[0]).astype(np.float32) if with_bias else None
    x = RNG.standard_normal(x_shape).astype(np.float32)
    _compare(_model(x_shape, w, b, attrs), {"x": x})
    assert calls


@pytest.mark.parametrize("with_z", [False, True])
@pytest.mark.parametrize("activation", ["Relu", "LeakyRelu", "Sigmoid"])
def test_fused_conv_on_phase_columns_and_64_channel_winograd(monkeypatch, with_z, activation):
    """FusedConv's bias, Z and activation on both new paths: a 7x7 stride-2 stem and a
    64-channel 3x3 layer (Winograd from 64 channels on, on one thread), batch 2."""
    monkeypatch.setattr(conv_module, "intra_op_threads", lambda: 1)
    phased = _count_calls(monkeypatch, "phase_columns")
    winograd = _count_calls(monkeypatch, "_winograd")
    params = {"activation_params": [0.1]} if activation == "LeakyRelu" else {}
    for x_shape, w_shape, attrs, out in (
        ((2, 3, 30, 30), (16, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}, 15),
        ((2, 64, 12, 12), (64, 64, 3, 3), {"pads": [1, 1, 1, 1]}, 12),
    ):
        x = RNG.standard_normal(x_shape).astype(np.float32)
        w = (RNG.standard_normal(w_shape) * 0.1).astype(np.float32)
        b = RNG.standard_normal(w_shape[0]).astype(np.float32)
        fused = {"activation": activation, **params, **attrs}
        extra = ("z",) if with_z else ()
        model = _model(x_shape, w, b, fused, "FusedConv", extra, "com.microsoft")
        feeds = {"x": x}
        if with_z:
            feeds["z"] = RNG.standard_normal((2, w_shape[0], out, out)).astype(np.float32)
        _compare(model, feeds)
    assert phased and winograd


def test_phase_columns_float64_match_the_definition(monkeypatch):
    """Float64 through the phase planes, against the convolution's defining sum."""
    calls = _count_calls(monkeypatch, "phase_columns")
    x = RNG.standard_normal((2, 3, 13, 14))
    w = RNG.standard_normal((5, 3, 5, 5))
    b = RNG.standard_normal(5)
    attrs = {"pads": [2, 1, 2, 2], "strides": [2, 2]}
    got = run_node("Conv", [x, w, b], constants=(1, 2), **attrs)
    assert got.dtype == np.float64 and calls
    np.testing.assert_allclose(got, naive_conv(x, w, b, **attrs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("threads", "channels", "winograd"),
    [(1, 64, True), (2, 64, False), (2, 192, True), (1, 63, False)],
)
@pytest.mark.parametrize("with_bias", [True, False])
def test_winograd_channel_bound_follows_the_thread_count(
    monkeypatch, threads, channels, winograd, with_bias
):
    """64 channels take Winograd on one thread, 192 on more (BLAS splits only its products);
    either way the result is the convolution's, with its bias (added to one of the 16
    products) or without."""
    monkeypatch.setattr(conv_module, "intra_op_threads", lambda: threads)
    calls = _count_calls(monkeypatch, "_winograd")
    x = RNG.standard_normal((1, channels, 11, 12)).astype(np.float32)
    w = (RNG.standard_normal((channels, channels, 3, 3)) * 0.1).astype(np.float32)
    b = RNG.standard_normal(channels).astype(np.float32) if with_bias else None
    _compare(_model(x.shape, w, b, {"pads": [1, 1, 1, 1]}), {"x": x})
    assert bool(calls) == winograd
