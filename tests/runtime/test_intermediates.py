"""``run(names)`` serves any value of the model as loaded, at every optimization level, with the
values the unoptimized model computes; model outputs keep the optimized plan."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

import onnxpy
from onnxpy import GraphOptimizationLevel as Level
from tests.passes.test_transformer_fusion import tiny_bert  # noqa: F401 - a fixture

LEVELS = [
    Level.ORT_DISABLE_ALL,
    Level.ORT_ENABLE_BASIC,
    Level.ORT_ENABLE_EXTENDED,
    Level.ORT_ENABLE_ALL,
]


def session(source, level):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = level
    return onnxpy.InferenceSession(source, so)


def value_names(model: onnx.ModelProto) -> list[str]:
    return [o for n in model.graph.node for o in n.output if o]


def assert_same(a, b, rtol=1e-5, atol=1e-6):
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y, rtol, atol)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype == object:
        assert a.tolist() == b.tolist()
    else:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def iris_forest():
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    clf = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    model = to_onnx(clf, x[:1].astype(np.float32))  # with ZipMap, as users convert it
    return model, {"X": x[::7].astype(np.float32)}


def test_every_value_of_the_iris_forest_at_every_level(iris_forest):
    model, feeds = iris_forest
    names = value_names(model)
    assert "label" in names  # the tree ensemble's own output, renamed away by the optimizer
    reference = session(model.SerializeToString(), Level.ORT_DISABLE_ALL)
    expected = {n: reference.run([n], feeds)[0] for n in names}
    for level in LEVELS:
        sess = session(model.SerializeToString(), level)
        for n in names:
            assert_same(sess.run([n], feeds)[0], expected[n])
        assert sess._original is None or level > 0
        both = sess.run(["probabilities", "label"], feeds)
        assert_same(both[0], expected["probabilities"])
        assert_same(both[1], expected["label"])


def _conv_bn():
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "scale"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "bias"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.random(4).astype(np.float32) + 0.5, "var"),
    ]
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["conv_out"], pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["conv_out", "scale", "bias", "mean", "var"], ["bn"]
        ),
        helper.make_node("Relu", ["bn"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", T.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("Y", T.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, {"X": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}


@pytest.mark.parametrize("source", ["bytes", "proto", "path"])
def test_conv_bn_values_fused_away_are_served(source, tmp_path):
    model, feeds = _conv_bn()
    reference = session(model.SerializeToString(), Level.ORT_DISABLE_ALL)
    expected = {n: reference.run([n], feeds)[0] for n in ("conv_out", "bn", "Y")}
    if source == "path":
        onnx.save(model, tmp_path / "m.onnx")
        src = str(tmp_path / "m.onnx")
    else:
        src = model if source == "proto" else model.SerializeToString()
    sess = session(src, Level.ORT_ENABLE_ALL)
    assert "BatchNormalization" not in [s.op_type for s in sess._plan_for(None).steps]
    sess.run(None, feeds)
    assert sess._original is None  # model outputs never need the unoptimized graph
    for n, want in expected.items():
        assert_same(sess.run([n], feeds)[0], want, rtol=1e-4, atol=1e-5)
    assert sess._original is not None  # conv_out was planned on the graph as loaded
    conv_out, y = sess.run(["conv_out", "Y"], feeds)
    assert_same(conv_out, expected["conv_out"], rtol=1e-4, atol=1e-5)
    assert_same(y, expected["Y"], rtol=1e-4, atol=1e-5)


def test_fused_transformer_block_intermediates(tiny_bert):  # noqa: F811
    model = onnx.load(str(tiny_bert))
    rng = np.random.default_rng(1)
    feeds = {
        "input_ids": rng.integers(0, 50, (1, 16)).astype(np.int64),
        "attention_mask": np.ones((1, 16), np.int64),
        "token_type_ids": np.zeros((1, 16), np.int64),
    }
    erf = next(n.output[0] for n in model.graph.node if n.op_type == "Erf")
    softmax = next(n.output[0] for n in model.graph.node if n.op_type == "Softmax")
    reference = session(str(tiny_bert), Level.ORT_DISABLE_ALL)
    want = reference.run([erf, softmax, "last_hidden_state"], feeds)
    sess = session(str(tiny_bert), Level.ORT_ENABLE_ALL)
    fused_ops = {s.op_type for s in sess._plan_for(None).steps}
    assert "MultiHeadAttention" in fused_ops and "Softmax" not in fused_ops
    got = sess.run([erf, softmax, "last_hidden_state"], feeds)
    for g, w in zip(got, want):
        assert_same(g, w, rtol=1e-4, atol=1e-5)
    # The model's outputs alone still run on the fused plan.
    assert sess._plan_for(["last_hidden_state"]) is not None
    assert_same(sess.run(["last_hidden_state"], feeds)[0], want[2], rtol=1e-4, atol=1e-5)


def test_unknown_name_is_refused_naming_it():
    model, feeds = _conv_bn()
    sess = session(model.SerializeToString(), Level.ORT_ENABLE_ALL)
    with pytest.raises(onnxpy.InvalidArgument, match="'nope'"):
        sess.run(["Y", "nope"], feeds)


def test_a_string_for_output_names_is_refused_not_split():
    model, feeds = _conv_bn()
    sess = session(model.SerializeToString(), Level.ORT_ENABLE_ALL)
    with pytest.raises(TypeError, match=r"\['Y'\]"):
        sess.run("Y", feeds)


def test_plan_cache_is_keyed_by_set_and_bounded():
    model, feeds = _conv_bn()
    sess = session(model.SerializeToString(), Level.ORT_DISABLE_ALL)
    a = sess.run(["Y", "conv_out"], feeds)
    b = sess.run(["conv_out", "Y"], feeds)
    assert len(sess._plans) == 1  # one plan serves both orders
    assert_same(a[0], b[1])
    assert_same(a[1], b[0])
    names = ["X", "W", "scale", "bias", "mean", "var", "conv_out", "bn", "Y"]
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            sess.run([names[i], names[j]], feeds)
    assert len(sess._plans) <= 16
