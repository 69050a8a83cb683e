"""Transformer fusions: Erf-GELU -> Gelu, Add + Gelu -> BiasGelu, Add + LayerNormalization ->
SkipLayerNormalization. Each fused model computes what the original did (onnxpy without
optimizations as the oracle, see ``check``), the fused op appears, and near misses stay."""

from __future__ import annotations

import collections
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxpy
from onnxpy.passes import PassManager, passes_for_level
from onnxpy.passes.fusion import BiasGeluFusion, GeluFusion, SkipLayerNormFusion
from tests.passes.test_passes import check, init, make_model, vi

F = TensorProto.FLOAT
SQRT2 = np.float32(math.sqrt(2.0))


def ops(model):
    return collections.Counter(
        (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}")
        for n in model.graph.node
    )


def _gelu_nodes(form: str, x: str = "X", out: str = "Y") -> tuple[list, list]:
    """The erf GELU of x in one of the exported forms; (nodes, initializers)."""
    inits = [init("one", np.float32(1.0)), init("half", np.float32(0.5))]
    if form.startswith("mul_arg"):
        inits.append(init("c", np.float32(math.sqrt(0.5))))
        arg = helper.make_node("Mul", ["c", x], ["d"])
    else:
        inits.append(init("c", SQRT2))
        arg = helper.make_node("Div", [x, "c"], ["d"])
    nodes = [
        arg,
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["one", "e"], ["a"]),
    ]
    tail = form.split(":")[-1]
    if tail == "xa_half":
        nodes += [
            helper.make_node("Mul", [x, "a"], ["m"]),
            helper.make_node("Mul", ["m", "half"], [out]),
        ]
    elif tail == "x_ahalf":
        nodes += [
            helper.make_node("Mul", ["a", "half"], ["m"]),
            helper.make_node("Mul", [x, "m"], [out]),
        ]
    elif tail == "xhalf_a":
        nodes += [
            helper.make_node("Mul", ["half", x], ["m"]),
            helper.make_node("Mul", ["a", "m"], [out]),
        ]
    return nodes, inits


@pytest.mark.parametrize(
    "form", ["div:xa_half", "div:x_ahalf", "div:xhalf_a", "mul_arg:xa_half", "mul_arg:xhalf_a"]
)
def test_gelu_fusion_forms(form):
    nodes, inits = _gelu_nodes(form)
    m = make_model(nodes, [vi("X", [2, 5, 8])], [vi("Y", [2, 5, 8])], inits)
    feeds = {"X": (np.random.default_rng(0).standard_normal((2, 5, 8)) * 3).astype(np.float32)}
    opt = check(m, [GeluFusion()], feeds=feeds, rtol=1e-5, atol=1e-6)
    assert ops(opt) == {"com.microsoft:Gelu": 1}
    assert any(o.domain == "com.microsoft" for o in opt.opset_import)


def test_gelu_fusion_with_constant_nodes():
    nodes, inits = _gelu_nodes("div:xa_half")
    consts = [helper.make_node("Constant", [], [t.name], value=t) for t in inits]
    m = make_model(consts + nodes, [vi("X", ["N", 8])], [vi("Y", ["N", 8])])
    opt = check(m, [GeluFusion()], rtol=1e-5, atol=1e-6)
    assert ops(opt) == {"com.microsoft:Gelu": 1}


@pytest.mark.parametrize(
    "change",
    [
        "wrong_divisor",
        "wrong_half",
        "wrong_one",
        "vector_constant",
        "multi_use",
        "graph_output",
        "double",
    ],
)
def test_gelu_near_misses_stay(change):
    nodes, inits = _gelu_nodes("div:xa_half")
    outputs = [vi("Y", [2, 8])]
    elem = F
    if change == "wrong_divisor":
        inits[2] = init("c", np.float32(1.5))
    elif change == "wrong_half":
        inits[1] = init("half", np.float32(0.6))
    elif change == "wrong_one":
        inits[0] = init("one", np.float32(2.0))
    elif change == "vector_constant":
        inits[2] = init("c", np.full(8, SQRT2, np.float32))  # not one element
    elif change == "multi_use":
        nodes.append(helper.make_node("Neg", ["e"], ["Z"]))  # Erf output read twice
        outputs.append(vi("Z", [2, 8]))
    elif change == "graph_output":
        outputs.append(vi("a", [2, 8]))
    elif change == "double":
        elem = TensorProto.DOUBLE
        inits = [init(t.name, onnx.numpy_helper.to_array(t).astype(np.float64)) for t in inits]
        outputs = [vi("Y", [2, 8], TensorProto.DOUBLE)]
    m = make_model(nodes, [vi("X", [2, 8], elem)], outputs, inits)
    opt = check(m, [GeluFusion()])
    assert "com.microsoft:Gelu" not in ops(opt)
    assert ops(opt)["Erf"] == 1


def _bias_gelu_model(bias, x_shape=(2, 4, 8)):
    nodes, inits = _gelu_nodes("div:xa_half", x="t")
    nodes.insert(0, helper.make_node("Add", ["b", "X"], ["t"]))
    return make_model(
        nodes, [vi("X", list(x_shape))], [vi("Y", list(x_shape))], inits + [init("b", bias)]
    )


def test_bias_gelu_fusion():
    bias = np.random.default_rng(1).standard_normal(8).astype(np.float32)
    opt = check(_bias_gelu_model(bias), [GeluFusion(), BiasGeluFusion()], rtol=1e-5, atol=1e-6)
    assert ops(opt) == {"com.microsoft:BiasGelu": 1}
    (node,) = opt.graph.node
    assert list(node.input) == ["X", "b"]


@pytest.mark.parametrize("case", ["2d", "one_element", "graph_input"])
def test_bias_gelu_needs_constant_1d_bias_over_last_axis(case):
    bias = np.ones((4, 8) if case == "2d" else (1,) if case == "one_element" else (8,), np.float32)
    m = _bias_gelu_model(bias)
    if case == "graph_input":
        del m.graph.initializer[-1]
        m.graph.input.append(vi("b", [8]))
    opt = check(m, [GeluFusion(), BiasGeluFusion()], rtol=1e-5, atol=1e-6)
    assert ops(opt) == {"Add": 1, "com.microsoft:Gelu": 1}


def test_bias_gelu_leaves_shared_sum():
    m = _bias_gelu_model(np.ones(8, np.float32))
    m.graph.node.append(helper.make_node("Neg", ["t"], ["Z"]))
    m.graph.output.append(vi("Z", [2, 4, 8]))
    opt = check(m, [GeluFusion(), BiasGeluFusion()], rtol=1e-5, atol=1e-6)
    assert ops(opt)["com.microsoft:Gelu"] == 1 and ops(opt)["Add"] == 1


def _skip_ln_model(with_bias=True, shape=(2, 5, 8), extra_reader=False, beta=True):
    rng = np.random.default_rng(3)
    h = shape[-1]
    nodes = []
    inits = [init("gamma", rng.standard_normal(h).astype(np.float32))]
    if beta:
        inits.append(init("beta", rng.standard_normal(h).astype(np.float32)))
    if with_bias:
        inits.append(init("bias", rng.standard_normal(h).astype(np.float32)))
        nodes.append(helper.make_node("Add", ["bias", "A"], ["ab"]))
        nodes.append(helper.make_node("Add", ["B", "ab"], ["s"]))
    else:
        nodes.append(helper.make_node("Add", ["A", "B"], ["s"]))
    ln_in = ["s", "gamma"] + (["beta"] if beta else [])
    nodes.append(helper.make_node("LayerNormalization", ln_in, ["Y"], axis=-1, epsilon=1e-6))
    outputs = [vi("Y", list(shape))]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["s"], ["Z"]))
        outputs.append(vi("Z", list(shape)))
    return make_model(nodes, [vi("A", list(shape)), vi("B", list(shape))], outputs, inits)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("beta", [True, False])
def test_skip_layer_norm_fusion(with_bias, beta):
    opt = check(_skip_ln_model(with_bias, beta=beta), [SkipLayerNormFusion()], rtol=1e-5, atol=1e-5)
    assert ops(opt) == {"com.microsoft:SkipLayerNormalization": 1}
    (node,) = opt.graph.node
    assert len(node.input) == (5 if with_bias else (4 if beta else 3))
    assert node.attribute[0].f == pytest.approx(1e-6)


def test_skip_layer_norm_keeps_shared_sum_as_fourth_output():
    opt = check(_skip_ln_model(extra_reader=True), [SkipLayerNormFusion()], rtol=1e-5, atol=1e-5)
    assert ops(opt) == {"com.microsoft:SkipLayerNormalization": 1, "Relu": 1}
    fused = next(n for n in opt.graph.node if n.op_type == "SkipLayerNormalization")
    assert list(fused.output)[3] == "s"


def test_skip_layer_norm_symbolic_dims():
    m = _skip_ln_model(shape=("batch", "seq", 8))
    feeds = {
        k: np.random.default_rng(4).standard_normal((3, 7, 8)).astype(np.float32) for k in "AB"
    }
    opt = check(m, [SkipLayerNormFusion()], feeds=feeds, rtol=1e-5, atol=1e-5)
    assert ops(opt) == {"com.microsoft:SkipLayerNormalization": 1}


@pytest.mark.parametrize("case", ["2d", "broadcast_add", "gamma_input", "axis"])
def test_skip_layer_norm_near_misses_stay(case):
    if case == "2d":
        m = _skip_ln_model(shape=(5, 8))
    else:
        m = _skip_ln_model(with_bias=False)
        if case == "broadcast_add":
            m.graph.input[1].CopyFrom(vi("B", [5, 8]))  # broadcasts: shapes differ
        elif case == "gamma_input":
            del m.graph.initializer[0]
            m.graph.input.append(vi("gamma", [8]))
        elif case == "axis":
            ln = m.graph.node[-1]
            ln.attribute[0].i = 1
    opt = check(m, [SkipLayerNormFusion()], rtol=1e-5, atol=1e-5)
    assert "com.microsoft:SkipLayerNormalization" not in ops(opt)
    assert ops(opt)["LayerNormalization"] == 1


# -- a small BERT exported from PyTorch ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    torch = pytest.importorskip("torch", reason="the torch-exported model needs the dev extra")
    from benchmarks import zoo

    torch.manual_seed(0)
    model = zoo._bert_base(vocab=50, hidden=32, layers=2, heads=4)
    path = tmp_path_factory.mktemp("tiny_bert") / "tiny_bert.onnx"
    ids = torch.randint(0, 50, (1, 16))
    zoo._export_torch(
        model,
        (ids, torch.ones(1, 16, dtype=torch.int64), torch.zeros(1, 16, dtype=torch.int64)),
        path,
        ["input_ids", "attention_mask", "token_type_ids"],
        ["last_hidden_state", "pooler_output"],
        {n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids")},
    )
    return path


def test_tiny_bert_fuses_and_matches_onnxruntime(tiny_bert, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = onnx.load(str(tiny_bert))
    pm_model = onnx.ModelProto()
    pm_model.CopyFrom(model)
    PassManager(passes_for_level(onnxpy.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)).run(pm_model)
    counts = ops(pm_model)
    assert counts["com.microsoft:BiasGelu"] == 2
    assert counts["com.microsoft:SkipLayerNormalization"] == 4
    assert counts["com.microsoft:MultiHeadAttention"] == 2
    assert "Erf" not in counts and "Softmax" not in counts
    rng = np.random.default_rng(5)
    mask = np.ones((2, 16), np.int64)
    mask[1, 12:] = 0
    feeds = {
        "input_ids": rng.integers(0, 50, (2, 16)).astype(np.int64),
        "attention_mask": mask,
        "token_type_ids": (np.arange(16) >= 8).astype(np.int64)[None].repeat(2, 0),
    }
    expected = ort.InferenceSession(str(tiny_bert), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )
    fused = ort.InferenceSession(pm_model.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, e in zip(fused.run(None, feeds), expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)
    for level in (
        onnxpy.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL,
    ):
        so = onnxpy.SessionOptions()
        so.graph_optimization_level = level
        actual = onnxpy.InferenceSession(str(tiny_bert), so).run(None, feeds)
        for a, e in zip(actual, expected):
            assert a.dtype == e.dtype and a.shape == e.shape
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)
