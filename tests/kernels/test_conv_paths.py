"""Every Conv code path (1x1 / strided 1x1 / im2col / grouped / depthwise, batched or not,
constant or fed weights and bias), Gemm with constant operands, and the fused kernels on
models onnxruntime's own graph optimizer writes.

Conv expectations come from ``naive_conv`` (loops over the definition, in test_conv.py); the
fused kernels are compared with onnxruntime running the same optimized file.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpy
from onnxpy.kernels.ai_onnx import conv as conv_module
from tests.kernels.test_conv import naive_conv
from tests.kernels.test_conv import run as run_node

RNG = np.random.default_rng(3)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


CASES = [
    # (x shape, w shape, attrs)
    ((1, 6, 5, 5), (4, 6, 1, 1), {}),
    ((2, 6, 5, 5), (4, 6, 1, 1), {}),
    ((2, 6, 7, 6), (4, 6, 1, 1), {"strides": [2, 2]}),
    ((1, 6, 7, 6), (4, 6, 1, 1), {"strides": [2, 3]}),
    ((1, 6, 5, 5), (4, 6, 1, 1), {"pads": [1, 0, 0, 1]}),
    ((2, 6, 5, 5), (6, 3, 1, 1), {"group": 2}),
    ((1, 6, 5, 5), (12, 1, 1, 1), {"group": 6}),
    ((1, 3, 9, 9), (5, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((3, 3, 9, 8), (5, 3, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((1, 3, 11, 11), (4, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}),
    ((2, 4, 8, 8), (6, 2, 3, 3), {"group": 2, "dilations": [2, 1]}),
    ((2, 4, 8, 8), (4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),
    # depthwise: stride phases with TensorFlow's asymmetric "same" pads, odd sizes, a channel
    # multiplier, dilation, 1-D and 3-D, unpadded, 5x5 with a stride of 3
    ((2, 5, 9, 8), (5, 1, 3, 3), {"group": 5, "pads": [0, 0, 1, 1], "strides": [2, 2]}),
    ((1, 3, 7, 10), (6, 1, 3, 3), {"group": 3, "pads": [1, 2, 1, 0], "strides": [2, 1]}),
    ((1, 4, 9, 9), (4, 1, 3, 3), {"group": 4, "pads": [2, 2, 2, 2], "dilations": [2, 2]}),
    ((2, 3, 11), (3, 1, 3), {"group": 3, "pads": [1, 1]}),
    ((1, 3, 5, 6, 7), (3, 1, 3, 3, 3), {"group": 3, "pads": [1, 1, 1, 1, 1, 1]}),
    ((1, 4, 6, 6), (4, 1, 3, 3), {"group": 4}),
    ((1, 2, 13, 12), (2, 1, 5, 5), {"group": 2, "pads": [2, 2, 2, 2], "strides": [3, 3]}),
    ((2, 4, 9), (3, 4, 3), {"strides": [2]}),
    ((1, 2, 4, 5, 5), (3, 2, 1, 1, 1), {}),
    ((1, 2, 4, 5, 5), (3, 2, 2, 3, 3), {"pads": [0, 1, 1, 1, 1, 0]}),
]


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), CASES)
@pytest.mark.parametrize("constants", [(), (1, 2)])
def test_conv_paths_match_definition(x_shape, w_shape, attrs, constants):
    x, w, b = rand(*x_shape), rand(*w_shape), rand(w_shape[0])
    got = run_node("Conv", [x, w, b], constants=constants, **attrs)
    expected = naive_conv(x, w, b, **attrs)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_conv_pointwise_float64_and_float16_without_bias():
    x, w = rand(2, 4, 3, 3, dtype=np.float64), rand(5, 4, 1, 1, dtype=np.float64)
    got = run_node("Conv", [x, w], constants=(1,))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, naive_conv(x, w), rtol=1e-12)
    h = run_node("Conv", [x.astype(np.float16), w.astype(np.float16)], constants=(1,))
    assert h.dtype == np.float16
    np.testing.assert_allclose(h, naive_conv(x, w), rtol=2e-2, atol=2e-2)


def test_depthwise_float64_float16_without_bias_and_in_channel_chunks(monkeypatch):
    from onnxpy.kernels import depthwise

    x, w = rand(2, 6, 9, 8, dtype=np.float64), rand(12, 1, 3, 3, dtype=np.float64)
    attrs = {"group": 6, "pads": [1, 0, 1, 1], "strides": [2, 1]}
    expected = naive_conv(x, w, **attrs)
    got = run_node("Conv", [x, w], constants=(1,), **attrs)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    h = run_node("Conv", [x.astype(np.float16), w.astype(np.float16)], constants=(1,), **attrs)
    assert h.dtype == np.float16
    np.testing.assert_allclose(h, expected, rtol=2e-2, atol=2e-2)
    # a chunk budget of one channel's tap rows: every channel is its own product
    monkeypatch.setattr(depthwise, "CHUNK_BYTES", 1)
    b = rand(12, dtype=np.float64)
    got = run_node("Conv", [x, w, b], constants=(1, 2), **attrs)
    np.testing.assert_allclose(got, naive_conv(x, w, b, **attrs), rtol=1e-12)


def _session(model, level=onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = level
    return onnxpy.InferenceSession(model.SerializeToString(), so)


def test_conv_pointwise_does_not_alias_its_input():
    # The 1x1 path multiplies the input's own buffer: the result must be a new array.
    x, w = rand(1, 3, 4, 4), rand(3, 3, 1, 1)
    keep = x.copy()
    y = run_node("Conv", [x, w], constants=(1,))
    assert not np.shares_memory(x, y)
    np.testing.assert_array_equal(x, keep)


# -- Gemm with constant operands -----------------------------------------------------------------


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (4,), (1, 4), (3, 1), (3, 4)])
def test_gemm_constant_b_and_c(trans_b, c_shape):
    a = rand(3, 5)
    b = rand(4, 5) if trans_b else rand(5, 4)
    inputs = [a, b] + ([] if c_shape is None else [rand(*c_shape)])
    got = run_node("Gemm", inputs, opset=13, constants=(1, 2), transB=trans_b, alpha=0.5, beta=2.0)
    bb = b.T if trans_b else b
    expected = 0.5 * (a.astype(np.float64) @ bb) + (0 if c_shape is None else 2.0 * inputs[2])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_gemm_rejects_non_broadcasting_c():
    with pytest.raises(onnxpy.Fail, match="broadcast"):
        run_node("Gemm", [rand(3, 5), rand(5, 4), rand(2, 4)], opset=13, constants=(1, 2))


# -- fused kernels on onnxruntime-optimized models ---------------------------------------------


def _ort_optimized(model, tmp_path):
    src = tmp_path / "m.onnx"
    dst = tmp_path / "m.opt.onnx"
    onnx.save(model, src)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    return onnx.load(dst)


def _compare(model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    expected = ort.InferenceSession(
        model.SerializeToString(), so, providers=["CPUExecutionProvider"]
    ).run(None, feeds)
    actual = _session(model).run(None, feeds)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def _model(nodes, inputs, outputs, inits, opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


CONV_TAILS = [
    ("Relu", {}, ()),
    ("Sigmoid", {}, ()),
    ("Tanh", {}, ()),
    ("LeakyRelu", {"alpha": 0.2}, ()),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, ()),
    ("Clip", {}, (-0.5, 0.75)),
]


@pytest.mark.parametrize(("op", "attrs", "bounds"), CONV_TAILS)
@pytest.mark.parametrize("kernel", [1, 3])
def test_fused_conv_from_onnxruntime_optimizer(tmp_path, op, attrs, bounds, kernel):
    inits = [
        numpy_helper.from_array(rand(8, 4, kernel, kernel), "w"),
        numpy_helper.from_array(rand(8), "b"),
    ]
    act_inputs = ["c"]
    if bounds:
        inits += [
            numpy_helper.from_array(np.float32(bounds[0]), "lo"),
            numpy_helper.from_array(np.float32(bounds[1]), "hi"),
        ]
        act_inputs += ["lo", "hi"]
    pad = kernel // 2
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[pad] * 4),
        helper.make_node(op, act_inputs, ["y"], **attrs),
    ]
    model = _model(nodes, [_vi("x", [2, 4, 6, 6])], [_vi("y", [2, 8, 6, 6])], inits)
    opt = _ort_optimized(model, tmp_path)
    assert collections.Counter(n.op_type for n in opt.graph.node) == {"FusedConv": 1}
    _compare(opt, {"x": rand(2, 4, 6, 6)})


@pytest.mark.parametrize(
    ("op", "attrs"),
    [("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("LeakyRelu", {"alpha": 0.1})],
)
@pytest.mark.parametrize("batch", [1, 7])
def test_fused_gemm_from_onnxruntime_optimizer(tmp_path, op, attrs, batch):
    inits = [numpy_helper.from_array(rand(6, 5), "w"), numpy_helper.from_array(rand(6), "b")]
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
        helper.make_node(op, ["g"], ["y"], **attrs),
    ]
    model = _model(nodes, [_vi("x", ["N", 5])], [_vi("y", ["N", 6])], inits)
    opt = _ort_optimized(model, tmp_path)
    assert collections.Counter(n.op_type for n in opt.graph.node) == {"FusedGemm": 1}
    _compare(opt, {"x": rand(batch, 5)})


def test_fused_conv_z_and_activation_in_place_on_fed_weights():
    """FusedConv with fed (non-constant) W, B and Z: the in-place tail on a fresh buffer."""
    x, w, b, z = rand(2, 4, 6, 6), rand(8, 4, 3, 3), rand(8), rand(2, 8, 6, 6)
    node = helper.make_node(
        "FusedConv",
        ["x", "w", "b", "z"],
        ["y"],
        domain="com.microsoft",
        activation="LeakyRelu",
        activation_params=[0.25],
        pads=[1, 1, 1, 1],
    )
    g = helper.make_graph(
        [node],
        "g",
        [_vi("x", x.shape), _vi("w", w.shape), _vi("b", b.shape), _vi("z", z.shape)],
        [_vi("y", z.shape)],
    )
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    m.ir_version = 8
    feeds = {"x": x, "w": w, "b": b, "z": z}
    keep = {k: v.copy() for k, v in feeds.items()}
    _compare(m, feeds)
    s = naive_conv(x, w, b, pads=[1, 1, 1, 1]) + z
    expected = np.where(s >= 0, s, 0.25 * s)
    np.testing.assert_allclose(_session(m).run(None, feeds)[0], expected, rtol=1e-4, atol=1e-4)
    for k, v in feeds.items():
        np.testing.assert_array_equal(v, keep[k])


def _conv_float64(x, w, pads):
    """Direct sum over the 3x3 taps in float64, from NumPy's sliding windows."""
    nsp = 2
    xp = np.pad(
        x.astype(np.float64), [(0, 0), (0, 0)] + [(pads[i], pads[i + nsp]) for i in range(2)]
    )
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    return np.einsum("nchwij,mcij->nmhw", win, w.astype(np.float64))


@pytest.mark.parametrize(
    ("x_shape", "m", "pads"),
    [
        ((1, 192, 14, 14), 200, [1, 1, 1, 1]),
        ((2, 196, 11, 12), 192, [0, 1, 2, 1]),
        ((1, 192, 13, 16), 192, [1, 0, 0, 2]),
        ((2, 64, 12, 10), 64, [1, 1, 1, 1]),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_wide_3x3_winograd_path(monkeypatch, x_shape, m, pads, dtype):
    """Wide 3x3 stride-1 layers take the Winograd path (from 64 channels on one thread): still
    the convolution's sum."""
    monkeypatch.setattr(conv_module, "intra_op_threads", lambda: 1)
    x = rand(*x_shape, dtype=dtype)
    w = rand(m, x_shape[1], 3, 3, dtype=dtype) * dtype(0.05)
    b = rand(m, dtype=dtype)
    got = run_node("Conv", [x, w, b], constants=(1, 2), pads=pads)
    expected = _conv_float64(x, w, pads) + b.reshape(-1, 1, 1)
    assert got.dtype == dtype and got.shape == expected.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * 10)


def test_gemm_constant_integer_b_with_alpha():
    a = RNG.integers(-5, 5, (3, 4)).astype(np.int32)
    b = RNG.integers(-5, 5, (4, 2)).astype(np.int32)
    c = RNG.integers(-5, 5, (2,)).astype(np.int32)
    got = run_node("Gemm", [a, b, c], opset=13, constants=(1, 2), alpha=2.0, beta=3.0)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, 2 * (a @ b) + 3 * c)


def test_fused_conv_relu_large_buffer_from_onnxruntime_optimizer(tmp_path):
    """An output of more than 4096 values takes the vectorized (zeros-array) Relu."""
    inits = [
        numpy_helper.from_array(rand(16, 4, 3, 3), "w"),
        numpy_helper.from_array(rand(16), "b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    model = _model(nodes, [_vi("x", [2, 4, 20, 20])], [_vi("y", [2, 16, 20, 20])], inits)
    opt = _ort_optimized(model, tmp_path)
    assert [n.op_type for n in opt.graph.node] == ["FusedConv"]
    x = rand(2, 4, 20, 20)
    _compare(opt, {"x": x})
    y = _session(opt).run(None, {"x": x})[0]
    assert (y >= 0).all() and (y == 0).any() and (y > 0).any()
