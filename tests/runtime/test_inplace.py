"""In-place elementwise execution: only where no one can observe the overwritten buffer."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpy as rt
from onnxpy.runtime.inplace import in_place_inputs

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, F, s) for n, s in outputs],
        initializer=[numpy_helper.from_array(v, n) for n, v in initializers],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _in_place_ops(sess: rt.InferenceSession) -> list[str]:
    return [s.op_type for s in sess._plan_for(None).steps if "in_place" in s.fn.__qualname__]


def test_chain_runs_in_place_and_leaves_feeds_and_initializers_alone():
    w = np.array([1.0, -2.0, 3.0], np.float32)
    m = _model(
        [
            helper.make_node("Relu", ["X"], ["a"]),
            helper.make_node("Neg", ["a"], ["b"]),
            helper.make_node("Add", ["b", "W"], ["c"]),
            helper.make_node("Sigmoid", ["c"], ["d"]),
            helper.make_node("Mul", ["W", "d"], ["Y"]),
        ],
        [("X", [2, 3])],
        [("Y", [2, 3])],
        [("W", w)],
    )
    sess = rt.InferenceSession(m)
    # Relu reads the feed and Mul's dying operand is d, not the initializer W.
    assert _in_place_ops(sess) == ["Neg", "Add", "Sigmoid", "Mul"]
    x = np.array([[1, -1, 2], [-3, 4, 0.5]], np.float32)
    x_before = x.copy()
    expected = w / (1 + np.exp(np.maximum(x, 0) - w))
    for _ in range(2):  # a second run sees the same initializer
        (y,) = sess.run(None, {"X": x})
        np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_array_equal(x, x_before)
    assert sess.run(None, {"X": x})[0] is not x


def test_value_read_later_is_not_overwritten():
    m = _model(
        [
            helper.make_node("Relu", ["X"], ["a"]),
            helper.make_node("Neg", ["a"], ["b"]),  # a is read again below
            helper.make_node("Add", ["a", "b"], ["Y"]),
        ],
        [("X", [4])],
        [("Y", [4])],
    )
    sess = rt.InferenceSession(m)
    assert _in_place_ops(sess) == ["Add"]  # Neg must not reuse a; Add may (a and b die there)
    (y,) = sess.run(None, {"X": np.array([1, -2, 3, -4], np.float32)})
    np.testing.assert_array_equal(y, np.zeros(4, np.float32))


def test_view_of_a_value_keeps_its_buffer_alive():
    """Reshape may return a view: a dying value whose view is read later keeps its buffer."""
    m = _model(
        [
            helper.make_node("Relu", ["X"], ["a"]),
            helper.make_node("Reshape", ["a", "shape"], ["view"]),
            helper.make_node("Neg", ["a"], ["b"]),  # a's last reader, but view is read below
            helper.make_node("Add", ["b", "view"], ["Y"]),
        ],
        [("X", [2, 2])],
        [("Y", [2, 2])],
        [("shape", np.array([2, 2], np.int64))],
    )
    sess = rt.InferenceSession(m)
    assert _in_place_ops(sess) == ["Add"]
    x = np.array([[1, -2], [3, -4]], np.float32)
    (y,) = sess.run(None, {"X": x})
    np.testing.assert_array_equal(y, np.zeros((2, 2), np.float32))  # -a + a, not -a + -a


def test_graph_output_is_not_overwritten():
    m = _model(
        [helper.make_node("Relu", ["X"], ["a"]), helper.make_node("Neg", ["a"], ["b"])],
        [("X", [3])],
        [("a", [3]), ("b", [3])],
    )
    sess = rt.InferenceSession(m)
    assert _in_place_ops(sess) == []
    a, b = sess.run(None, {"X": np.array([1, -1, 2], np.float32)})
    np.testing.assert_array_equal(a, [1, 0, 2])
    np.testing.assert_array_equal(b, [-1, 0, -2])


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32])
def test_broadcast_and_other_dtypes_fall_back_correctly(dtype):
    """The dying operand is the smaller one (no room for the result), or ints: computed fresh."""
    t = {np.float16: TensorProto.FLOAT16, np.float64: TensorProto.DOUBLE}.get(dtype, 6)
    graph = helper.make_graph(
        [
            helper.make_node("Abs", ["B"], ["b"]),
            helper.make_node("Abs", ["A"], ["a"]),
            helper.make_node("Sub", ["b", "a"], ["Y"]),  # b [3] dies, result is [2, 3]
        ],
        "g",
        [
            helper.make_tensor_value_info("A", t, [2, 3]),
            helper.make_tensor_value_info("B", t, [3]),
        ],
        [helper.make_tensor_value_info("Y", t, [2, 3])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    a = np.array([[1, -2, 3], [-4, 5, -6]], dtype)
    b = np.array([7, -8, 9], dtype)
    (y,) = rt.InferenceSession(m).run(None, {"A": a, "B": b})
    assert y.dtype == dtype and y.shape == (2, 3)
    np.testing.assert_array_equal(y, np.abs(b) - np.abs(a))


def _gelu_reference(v: np.ndarray) -> np.ndarray:
    from math import erf, sqrt

    return np.vectorize(lambda t: 0.5 * t * (1 + erf(t / sqrt(2))))(v.astype(np.float64))


def test_bias_gelu_and_gelu_write_into_the_product():
    """MatMul -> BiasGelu -> Gelu (com.microsoft): both overwrite the product they consume, the
    bias initializer stays intact, and the values match the exact GELU."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 700)).astype(np.float32)  # wide rows: several cache chunks
    bias = rng.normal(size=700).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["p"]),
            helper.make_node("BiasGelu", ["p", "B"], ["g"], domain="com.microsoft"),
            helper.make_node("Gelu", ["g"], ["Y"], domain="com.microsoft"),
        ],
        "g",
        [helper.make_tensor_value_info("X", F, [None, 4])],
        [helper.make_tensor_value_info("Y", F, [None, 700])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(bias, "B")],
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    ).SerializeToString()
    options = rt.SessionOptions()
    options.graph_optimization_level = rt.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = rt.InferenceSession(m, options)
    assert _in_place_ops(sess) == ["BiasGelu", "Gelu"]
    x = rng.normal(size=(300, 4)).astype(np.float32)
    expected = _gelu_reference(_gelu_reference(x.astype(np.float64) @ w + bias))
    for _ in range(2):  # a second run sees the same bias and weight
        (y,) = sess.run(None, {"X": x})
        np.testing.assert_allclose(y, expected, rtol=2e-6, atol=2e-7)


def test_planner_rules():
    # (fresh, capable, inputs, outputs); slot 1 is a graph input.
    steps = [
        (True, False, [1], [2]),  # 0: a = MatMul-like(x)
        (False, False, [2], [3]),  # 1: v = Reshape(a), a view of a
        (True, True, [2], [4]),  # 2: Relu(a): a dies here but v is read at 3
        (True, True, [3], [5]),  # 3: Neg(v): v is not owned (a view)
        (True, True, [4, 5], [6]),  # 4: Add(r, n): both owned and dying -> position 0
        (True, True, [1], [7]),  # 5: Relu(x): a graph input
    ]
    last_use = {1: 5, 2: 2, 3: 3, 4: 4, 5: 4, 6: 4, 7: 5}
    assert in_place_inputs(steps, kept={6, 7}, last_use=last_use) == {4: 0}
    # Once v is no longer read after step 2, Relu may take a's buffer.
    last_use[3] = 1
    steps[3] = (True, True, [2], [5])
    last_use[2] = 3
    assert in_place_inputs(steps, kept={6, 7}, last_use=last_use) == {3: 0, 4: 0}
