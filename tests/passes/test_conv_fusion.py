"""Conv / Gemm + activation (and Conv + residual Add) fusion into com.microsoft ops.

Each fused model must compute what the original computes (``check``: onnxpy with optimizations
off on both), and onnxruntime must compute the same from the fused model as from the original:
that pins the contrib-operator attribute encoding (``activation_params`` order, Z) to
onnxruntime's own reading of it.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnxpy.passes.fusion import ConvActivationFusion, GemmActivationFusion
from tests.passes.test_passes import check, init, make_model, ops, random_feeds, vi

MS = "com.microsoft"
RNG = np.random.default_rng(5)


def _w(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def _ort(model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _check_both(model, passes, feeds=None):
    """``check`` in onnxpy, then original vs fused in onnxruntime."""
    feeds = random_feeds(model) if feeds is None else feeds
    opt = check(model, passes, feeds, rtol=1e-5, atol=1e-5)
    for a, e in zip(_ort(opt, feeds), _ort(model, feeds), strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
    return opt


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv_then(tail, inits=(), opset=17, extra_inputs=(), conv_out_shape=(1, 6, 5, 5)):
    """x -> Conv(3x3, pad 1) -> ``tail`` nodes reading "c" and writing "Y"."""
    nodes = [helper.make_node("Conv", ["X", "W", "B"], ["c"], pads=[1, 1, 1, 1])]
    nodes += tail
    inits = [init("W", _w(6, 3, 3, 3)), init("B", _w(6)), *inits]
    inputs = [vi("X", [1, 3, 5, 5]), *extra_inputs]
    return make_model(nodes, inputs, [vi("Y", list(conv_out_shape))], inits, opset=opset)


ACTIVATIONS = [
    ("Relu", {}, None),
    ("Tanh", {}, None),
    ("Sigmoid", {}, None),
    ("LeakyRelu", {"alpha": 0.3}, [0.3]),
    ("LeakyRelu", {}, [0.01]),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, [0.3, 0.4]),
    ("HardSigmoid", {}, [0.2, 0.5]),
]


@pytest.mark.parametrize(("op", "attrs", "params"), ACTIVATIONS)
def test_conv_activation_fused(op, attrs, params):
    m = _conv_then([helper.make_node(op, ["c"], ["Y"], **attrs)])
    opt = _check_both(m, [ConvActivationFusion()])
    assert ops(opt) == {"FusedConv": 1}
    (node,) = opt.graph.node
    assert node.domain == MS and list(node.input) == ["X", "W", "B"]
    a = _attrs(node)
    assert a["activation"] == op.encode()
    assert a["pads"] == [1, 1, 1, 1]
    if params is None:
        assert "activation_params" not in a
    else:
        np.testing.assert_allclose(a["activation_params"], params, rtol=1e-6)
    assert any(o.domain == MS for o in opt.opset_import)


def test_conv_clip_constant_bounds_fused():
    m = _conv_then(
        [helper.make_node("Clip", ["c", "lo", "hi"], ["Y"])],
        [init("lo", np.array(-0.5, np.float32)), init("hi", np.array(0.25, np.float32))],
    )
    opt = _check_both(m, [ConvActivationFusion()])
    (node,) = opt.graph.node
    assert node.op_type == "FusedConv"
    np.testing.assert_allclose(_attrs(node)["activation_params"], [-0.5, 0.25])


def test_conv_clip_attribute_bounds_fused_opset6():
    m = _conv_then([helper.make_node("Clip", ["c"], ["Y"], min=-0.1, max=0.2)], opset=10)
    opt = _check_both(m, [ConvActivationFusion()])
    (node,) = opt.graph.node
    np.testing.assert_allclose(_attrs(node)["activation_params"], [-0.1, 0.2], rtol=1e-6)


def test_conv_clip_only_max_given():
    m = _conv_then(
        [helper.make_node("Clip", ["c", "", "hi"], ["Y"])], [init("hi", np.float32(0.3))]
    )
    opt = _check_both(m, [ConvActivationFusion()])
    lo, hi = _attrs(opt.graph.node[0])["activation_params"]
    assert lo < -1e30 and hi == pytest.approx(0.3)


def test_conv_clip_non_constant_bound_left_alone():
    m = _conv_then([helper.make_node("Clip", ["c", "lo"], ["Y"])], extra_inputs=[vi("lo", [])])
    feeds = random_feeds(m)
    opt = check(m, [ConvActivationFusion()], feeds)
    assert ops(opt) == {"Conv": 1, "Clip": 1}


def test_conv_add_relu_becomes_fused_conv_with_z():
    m = _conv_then(
        [helper.make_node("Add", ["Z", "c"], ["s"]), helper.make_node("Relu", ["s"], ["Y"])],
        extra_inputs=[vi("Z", [1, 6, 5, 5])],
    )
    opt = _check_both(m, [ConvActivationFusion()])
    assert ops(opt) == {"FusedConv": 1}
    (node,) = opt.graph.node
    assert list(node.input) == ["X", "W", "B", "Z"]
    assert _attrs(node)["activation"] == b"Relu"


def test_conv_add_without_activation_and_without_bias():
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["c"], strides=[2, 2]),
        helper.make_node("Add", ["c", "Z"], ["Y"]),
    ]
    m = make_model(
        nodes,
        [vi("X", ["N", 3, 7, 7]), vi("Z", ["N", 4, 3, 3])],
        [vi("Y", ["N", 4, 3, 3])],
        [init("W", _w(4, 3, 3, 3))],
    )
    opt = _check_both(m, [ConvActivationFusion()])
    (node,) = opt.graph.node
    assert node.op_type == "FusedConv" and list(node.input) == ["X", "W", "", "Z"]
    assert "activation" not in _attrs(node)


def test_conv_add_broadcast_z_left_alone():
    # Z broadcasts up to the Conv output: onnxruntime's FusedConv wants Z of the output's shape.
    m = _conv_then(
        [helper.make_node("Add", ["c", "Z"], ["s"]), helper.make_node("Relu", ["s"], ["Y"])],
        extra_inputs=[vi("Z", [1, 6, 1, 1])],
    )
    opt = check(m, [ConvActivationFusion()])
    assert ops(opt) == {"Conv": 1, "Add": 1, "Relu": 1}


def test_conv_add_used_twice_keeps_relu_separate():
    # The Add's result is also a graph output: the Add folds in as Z, the Relu stays.
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "Z"], ["S"]),
        helper.make_node("Relu", ["S"], ["Y"]),
    ]
    m = make_model(
        nodes,
        [vi("X", [1, 3, 5, 5]), vi("Z", [1, 6, 5, 5])],
        [vi("Y", [1, 6, 5, 5]), vi("S", [1, 6, 5, 5])],
        [init("W", _w(6, 3, 3, 3)), init("B", _w(6))],
    )
    opt = _check_both(m, [ConvActivationFusion()])
    assert ops(opt) == {"FusedConv": 1, "Relu": 1}
    assert "activation" not in _attrs(next(n for n in opt.graph.node if n.op_type == "FusedConv"))


def test_multi_use_conv_output_left_alone():
    m = _conv_then(
        [
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Add", ["r", "c"], ["Y"]),
        ]
    )
    opt = check(m, [ConvActivationFusion()])
    assert ops(opt) == {"Conv": 1, "Relu": 1, "Add": 1}


def test_conv_output_that_is_graph_output_left_alone():
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["C"]),
        helper.make_node("Relu", ["C"], ["Y"]),
    ]
    m = make_model(
        nodes,
        [vi("X", [1, 3, 4, 4])],
        [vi("Y", [1, 2, 2, 2]), vi("C", [1, 2, 2, 2])],
        [init("W", _w(2, 3, 3, 3))],
    )
    opt = check(m, [ConvActivationFusion()])
    assert ops(opt) == {"Conv": 1, "Relu": 1}


def test_double_conv_and_unsupported_activation_left_alone():
    d = _conv_then([helper.make_node("Relu", ["c"], ["Y"])], opset=17)
    d.graph.initializer[0].CopyFrom(init("W", _w(6, 3, 3, 3, dtype=np.float64)))
    d.graph.initializer[1].CopyFrom(init("B", _w(6, dtype=np.float64)))
    d.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    d.graph.output[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    assert ops(check(d, [ConvActivationFusion()])) == {"Conv": 1, "Relu": 1}
    e = _conv_then([helper.make_node("Elu", ["c"], ["Y"])])
    assert ops(check(e, [ConvActivationFusion()])) == {"Conv": 1, "Elu": 1}


def test_resnet_block_chain():
    """Conv-Relu-Conv-Add(identity)-Relu: both fusions in one sweep."""
    nodes = [
        helper.make_node("Conv", ["X", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "W2", "B2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "X"], ["s"]),
        helper.make_node("Relu", ["s"], ["Y"]),
    ]
    m = make_model(
        nodes,
        [vi("X", ["N", 4, 6, 6])],
        [vi("Y", ["N", 4, 6, 6])],
        [
            init("W1", _w(4, 4, 3, 3)),
            init("B1", _w(4)),
            init("W2", _w(4, 4, 3, 3)),
            init("B2", _w(4)),
        ],
    )
    opt = _check_both(m, [ConvActivationFusion()])
    assert ops(opt) == {"FusedConv": 2}
    assert [len(n.input) for n in opt.graph.node] == [3, 4]
    onnx.checker.check_model(opt)


GEMM_ACTIVATIONS = [
    ("Relu", {}, {}),
    ("Tanh", {}, {}),
    ("Sigmoid", {}, {}),
    ("Softsign", {}, {}),
    ("Softplus", {}, {}),
    ("LeakyRelu", {"alpha": 0.2}, {"activation_alpha": 0.2}),
    ("LeakyRelu", {}, {"activation_alpha": 0.01}),
    ("HardSigmoid", {"beta": 0.3}, {"activation_alpha": 0.2, "activation_beta": 0.3}),
    ("Elu", {"alpha": 0.5}, {"activation_alpha": 0.5}),
    ("Selu", {}, {"activation_alpha": 1.6732632, "activation_gamma": 1.050701}),
    ("ThresholdedRelu", {"alpha": 0.1}, {"activation_alpha": 0.1}),
]


@pytest.mark.parametrize(("op", "attrs", "expected"), GEMM_ACTIVATIONS)
def test_gemm_activation_fused(op, attrs, expected):
    nodes = [
        helper.make_node("Gemm", ["A", "Bm", "C"], ["g"], transB=1, alpha=0.5),
        helper.make_node(op, ["g"], ["Y"], **attrs),
    ]
    m = make_model(
        nodes,
        [vi("A", ["N", 5])],
        [vi("Y", ["N", 4])],
        [init("Bm", _w(4, 5)), init("C", _w(4))],
    )
    opt = _check_both(m, [GemmActivationFusion()])
    assert ops(opt) == {"FusedGemm": 1}
    (node,) = opt.graph.node
    a = _attrs(node)
    assert node.domain == MS and a["activation"] == op.encode()
    assert a["transB"] == 1 and a["alpha"] == 0.5
    for k, v in expected.items():
        assert a[k] == pytest.approx(v, rel=1e-6)


def test_gemm_multi_use_or_unsupported_left_alone():
    nodes = [
        helper.make_node("Gemm", ["A", "Bm"], ["g"]),
        helper.make_node("Relu", ["g"], ["r"]),
        helper.make_node("Add", ["r", "g"], ["Y"]),
    ]
    m = make_model(nodes, [vi("A", [2, 5])], [vi("Y", [2, 4])], [init("Bm", _w(5, 4))])
    assert ops(check(m, [GemmActivationFusion()])) == {"Gemm": 1, "Relu": 1, "Add": 1}
    nodes = [helper.make_node("Gemm", ["A", "Bm"], ["g"]), helper.make_node("Clip", ["g"], ["Y"])]
    m = make_model(nodes, [vi("A", [2, 5])], [vi("Y", [2, 4])], [init("Bm", _w(5, 4))])
    assert ops(check(m, [GemmActivationFusion()])) == {"Gemm": 1, "Clip": 1}
