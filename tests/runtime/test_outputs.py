"""Outputs are fresh, writable arrays that alias nothing: not the feeds, not the model's
constants or weights, not each other, not the previous run's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

import onnxpy
from onnxpy import GraphOptimizationLevel as Level

ALL_LEVELS = [Level.ORT_DISABLE_ALL, Level.ORT_ENABLE_BASIC, Level.ORT_ENABLE_ALL]


def make(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def session(model, level, path=None):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = level
    return onnxpy.InferenceSession(path or model.SerializeToString(), so)


def tv(name, shape, elem=T.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def assert_own(a, *others):
    assert isinstance(a, np.ndarray) and a.flags.writeable
    for o in others:
        assert not np.shares_memory(a, o)


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_constant_output_is_a_new_writable_array_each_run(level):
    c = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "C")
    m = make([helper.make_node("Identity", ["C"], ["Y"])], [tv("X", [1])], [tv("Y", [2])], [c])
    sess = session(m, level)
    feeds = {"X": np.zeros(1, np.float32)}
    first = sess.run(None, feeds)[0]
    assert_own(first)
    first *= 2
    second = sess.run(None, feeds)[0]
    np.testing.assert_array_equal(second, [1.0, 2.0])
    assert second is not first and not np.shares_memory(first, second)


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("op", ["Identity", "Reshape", "Flatten", "Squeeze"])
def test_outputs_never_alias_the_callers_input(level, op):
    if op == "Reshape":
        shape = numpy_helper.from_array(np.array([6], np.int64), "S")
        node, inits = helper.make_node("Reshape", ["X", "S"], ["Y"]), [shape]
    elif op == "Squeeze":
        node, inits = helper.make_node("Squeeze", ["X"], ["Y"]), []
    else:
        node, inits = helper.make_node(op, ["X"], ["Y"]), []
    out_shape = {"Identity": [2, 3], "Reshape": [6], "Flatten": [2, 3], "Squeeze": [2, 3]}[op]
    m = make([node], [tv("X", [2, 3])], [tv("Y", out_shape)], inits)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = session(m, level).run(None, {"X": x})[0]
    assert_own(y, x)
    np.testing.assert_array_equal(y.reshape(-1), np.arange(6))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_two_outputs_of_one_value_do_not_share_memory(level):
    nodes = [
        helper.make_node("Relu", ["X"], ["Y"]),
        helper.make_node("Identity", ["Y"], ["Z"]),
    ]
    m = make(nodes, [tv("X", [3])], [tv("Y", [3]), tv("Z", [3])])
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    y, z = session(m, level).run(None, {"X": x})
    assert_own(y, x, z)
    assert_own(z, x)
    np.testing.assert_array_equal(y, z)


def test_the_same_name_twice_gives_two_arrays():
    m = make([helper.make_node("Relu", ["X"], ["Y"])], [tv("X", [3])], [tv("Y", [3])])
    a, b = session(m, Level.ORT_ENABLE_ALL).run(["Y", "Y"], {"X": np.ones(3, np.float32)})
    assert_own(a, b)


def test_weights_in_external_data_come_back_as_copies(tmp_path):
    w = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "W")
    m = make([helper.make_node("Identity", ["W"], ["Y"])], [tv("X", [1])], [tv("Y", [4096])], [w])
    path = tmp_path / "m.onnx"
    onnx.save(m, path, save_as_external_data=True, location="m.data", size_threshold=0)
    sess = session(m, Level.ORT_DISABLE_ALL, str(path))
    y = sess.run(None, {"X": np.zeros(1, np.float32)})[0]
    assert_own(y)
    y[:] = -1
    np.testing.assert_array_equal(sess.run(None, {"X": np.zeros(1, np.float32)})[0][:3], [0, 1, 2])


def test_sequence_of_constants_is_copied():
    c = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "C")
    m = make(
        [helper.make_node("SequenceConstruct", ["C", "X"], ["S"])],
        [tv("X", [2])],
        [helper.make_tensor_sequence_value_info("S", T.FLOAT, None)],
        [c],
    )
    x = np.zeros(2, np.float32)
    sess = session(m, Level.ORT_DISABLE_ALL)
    seq = sess.run(None, {"X": x})[0]
    assert_own(seq[0])
    assert_own(seq[1], x)
    seq[0][0] = 9
    np.testing.assert_array_equal(sess.run(None, {"X": x})[0][0], [1.0, 2.0])


def test_one_fresh_output_listed_twice_comes_back_as_two_arrays():
    # MatMul's outputs are fresh: handed out as they are, unless two outputs are one array.
    w = numpy_helper.from_array(np.eye(2, dtype=np.float32), "W")
    m = make(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        [tv("X", [1, 2])],
        [tv("Y", [1, 2]), tv("Y", [1, 2])],
        [w],
    )
    sess = session(m, Level.ORT_ENABLE_ALL)
    x = np.array([[1.0, 2.0]], np.float32)
    a, b = sess.run(None, {"X": x})
    assert_own(a, b, x)
    a[...] = 0
    np.testing.assert_array_equal(b, x)


@pytest.mark.parametrize("rows", [0, 1, 3])
def test_classifier_outputs_alias_nothing_kept_between_runs(rows):
    # A two-leaf tree and a linear model over 2 features, both with string labels: the labels
    # of every batch, empty included, are new arrays that a caller may overwrite.
    tree = helper.make_node(
        "TreeEnsembleClassifier",
        ["X"],
        ["L1", "P1"],
        domain="ai.onnx.ml",
        nodes_treeids=[0, 0, 0],
        nodes_nodeids=[0, 1, 2],
        nodes_featureids=[0, 0, 0],
        nodes_values=[0.5, 0.0, 0.0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0],
        nodes_falsenodeids=[2, 0, 0],
        class_treeids=[0, 0, 0],
        class_nodeids=[1, 2, 2],
        class_ids=[0, 1, 2],
        class_weights=[1.0, 0.5, 0.25],
        classlabels_strings=["a", "b", "c"],
    )
    linear = helper.make_node(
        "LinearClassifier",
        ["X"],
        ["L2", "P2"],
        domain="ai.onnx.ml",
        coefficients=[1.0, 0.0, 0.0, 1.0, -1.0, -1.0],
        intercepts=[0.0, 0.0, 0.0],
        classlabels_strings=["a", "b", "c"],
    )
    graph = helper.make_graph(
        [tree, linear],
        "g",
        [tv("X", [None, 2])],
        [tv("L1", [None], T.STRING), tv("P1", [None, 3]), tv("L2", [None], T.STRING)]
        + [tv("P2", [None, 3])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    sess = onnxpy.InferenceSession(model.SerializeToString())
    x = np.tile(np.array([[0.0, 1.0]], np.float32), (rows, 1))
    first = sess.run(None, {"X": x})
    for i, out in enumerate(first):
        assert_own(out, x, *first[:i])
        out[...] = "z" if out.dtype.kind in "OU" else -1
    second = sess.run(None, {"X": x})
    assert second[0].tolist() == ["a"] * rows and second[2].tolist() == ["b"] * rows
    np.testing.assert_allclose(second[1], np.tile([1.0, 0.0, 0.0], (rows, 1)))
    np.testing.assert_allclose(second[3], np.tile([0.0, 1.0, -1.0], (rows, 1)))
