"""If, Loop and Scan beyond the backend cases: outer-scope reads, nesting, zero iterations,
reversed scans, opset-8 batching. Expectations are worked by hand in each test's comments.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper

import onnxpy
from onnxpy.kernels.ai_onnx.control_flow import loop
from onnxpy.kernels.registry import NodeInfo


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def session(nodes, inputs, outputs, opset=17, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, onnx.IR_VERSION)
    return onnxpy.InferenceSession(model.SerializeToString())


def const(name, value):
    return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(value))


# -- Loop ------------------------------------------------------------------------------------


def test_loop_body_reads_outer_scope_value():
    # x_{k+1} = x_k + a, three times from 0: final 3a, scan [a, 2a, 3a].
    body = helper.make_graph(
        [
            helper.make_node("Add", ["x_in", "a"], ["x_out"]),
            helper.make_node("Add", ["x_out", "zero"], ["s"]),
        ],
        "body",
        [vi("i", T.INT64, []), vi("c_in", T.BOOL, []), vi("x_in", T.FLOAT, [2])],
        [vi("c_in", T.BOOL, []), vi("x_out", T.FLOAT, [2]), vi("s", T.FLOAT, [2])],
    )
    loop = helper.make_node("Loop", ["M", "", "x0"], ["x_final", "scan"], body=body)
    sess = session(
        [const("zero", np.zeros(2, np.float32)), loop],
        [vi("M", T.INT64, []), vi("x0", T.FLOAT, [2]), vi("a", T.FLOAT, [2])],
        [vi("x_final", T.FLOAT, [2]), vi("scan", T.FLOAT, [None, 2])],
    )
    a = np.array([1.5, -2.0], np.float32)
    final, scan = sess.run(
        None, {"M": np.array(3, np.int64), "x0": np.zeros(2, np.float32), "a": a}
    )
    np.testing.assert_array_equal(final, [4.5, -6.0])
    assert scan.dtype == np.float32
    np.testing.assert_array_equal(scan, [[1.5, -2.0], [3.0, -4.0], [4.5, -6.0]])


def _parity_loop_session():
    # Body: if i is even then y + 10 else y * 2; the branches read y_in from the loop body.
    then_g = helper.make_graph(
        [helper.make_node("Add", ["y_in", "ten"], ["t_out"])],
        "then",
        [],
        [vi("t_out", T.FLOAT, [])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Mul", ["y_in", "two"], ["e_out"])],
        "else",
        [],
        [vi("e_out", T.FLOAT, [])],
    )
    body = helper.make_graph(
        [
            helper.make_node("Mod", ["i", "two_i"], ["r"]),
            helper.make_node("Equal", ["r", "zero_i"], ["even"]),
            helper.make_node("If", ["even"], ["y_out"], then_branch=then_g, else_branch=else_g),
            helper.make_node("Add", ["y_out", "zero_f"], ["s"]),
        ],
        "body",
        [vi("i", T.INT64, []), vi("c_in", T.BOOL, []), vi("y_in", T.FLOAT, [])],
        [vi("c_in", T.BOOL, []), vi("y_out", T.FLOAT, []), vi("s", T.FLOAT, [])],
    )
    nodes = [
        const("ten", np.array(10, np.float32)),
        const("two", np.array(2, np.float32)),
        const("two_i", np.array(2, np.int64)),
        const("zero_i", np.array(0, np.int64)),
        const("zero_f", np.array(0, np.float32)),
        helper.make_node("Loop", ["M", "c", "y0"], ["y_final", "ys"], body=body),
    ]
    return session(
        nodes,
        [vi("M", T.INT64, []), vi("c", T.BOOL, []), vi("y0", T.FLOAT, [])],
        [vi("y_final", T.FLOAT, []), vi("ys", T.FLOAT, [None])],
    )


def test_nested_if_inside_loop():
    # y: 1 -> (i=0, even) 11 -> (i=1) 22 -> (i=2) 32 -> (i=3) 64
    sess = _parity_loop_session()
    feeds = {"M": np.array(4, np.int64), "c": np.array(True), "y0": np.array(1, np.float32)}
    final, ys = sess.run(None, feeds)
    assert final == 64.0
    np.testing.assert_array_equal(ys, [11.0, 22.0, 32.0, 64.0])


def test_loop_false_condition_runs_zero_times_with_typed_scan():
    # cond=False: no iteration; the final value is y0 and the scan output is empty float32.
    sess = _parity_loop_session()
    feeds = {"M": np.array(4, np.int64), "c": np.array(False), "y0": np.array(7, np.float32)}
    final, ys = sess.run(None, feeds)
    assert final == 7.0
    assert ys.dtype == np.float32 and ys.shape == (0,)


def _while_session(stop_at, with_cond=True, with_m=False):
    # x_{k+1} = x_k + 1 with cond_out = x_out < stop_at.
    body = helper.make_graph(
        [
            helper.make_node("Add", ["x_in", "one"], ["x_out"]),
            helper.make_node("Less", ["x_out", "stop"], ["c_out"]),
            helper.make_node("Add", ["x_out", "zero"], ["s"]),
        ],
        "body",
        [vi("i", T.INT64, []), vi("c_in", T.BOOL, []), vi("x_in", T.INT64, [])],
        [vi("c_out", T.BOOL, []), vi("x_out", T.INT64, []), vi("s", T.INT64, [])],
    )
    loop = helper.make_node(
        "Loop", ["M" if with_m else "", "c" if with_cond else "", "x0"], ["x", "xs"], body=body
    )
    nodes = [
        const("one", np.array(1, np.int64)),
        const("zero", np.array(0, np.int64)),
        const("stop", np.array(stop_at, np.int64)),
        const("c", np.array(True)),
        const("M", np.array(5, np.int64)),
        loop,
    ]
    return session(
        nodes, [vi("x0", T.INT64, [])], [vi("x", T.INT64, []), vi("xs", T.INT64, [None])]
    )


def test_loop_while_condition_without_trip_count():
    # x: 1 (1<3 go), 2 (go), 3 (3<3 false: stop) -> final 3, scan [1, 2, 3]
    x, xs = _while_session(3).run(None, {"x0": np.array(0, np.int64)})
    assert x == 3
    np.testing.assert_array_equal(xs, [1, 2, 3])


def test_loop_trip_count_without_cond_ignores_body_condition():
    # The spec's "for" form: the body's condition (false after the first step) is ignored,
    # so M=5 iterations run: final 5, scan [1..5].
    x, xs = _while_session(1, with_cond=False, with_m=True).run(None, {"x0": np.array(0, np.int64)})
    assert x == 5
    np.testing.assert_array_equal(xs, [1, 2, 3, 4, 5])


def test_loop_zero_trip_count_uses_declared_output_shape():
    # M=0: the scan output is typed from the node's declared type: float64 of shape [0, 2].
    body = helper.make_graph(
        [helper.make_node("Add", ["x_in", "x_in"], ["s"])],
        "body",
        [vi("i", T.INT64, []), vi("c_in", T.BOOL, []), vi("x_in", T.DOUBLE, [2])],
        [vi("c_in", T.BOOL, []), vi("x_in", T.DOUBLE, [2]), vi("s", T.DOUBLE, [2])],
    )
    loop = helper.make_node("Loop", ["M", "", "x0"], ["x", "xs"], body=body)
    sess = session(
        [loop],
        [vi("M", T.INT64, []), vi("x0", T.DOUBLE, [2])],
        [vi("x", T.DOUBLE, [2]), vi("xs", T.DOUBLE, [None, 2])],
    )
    x0 = np.array([1.0, 2.0])
    x, xs = sess.run(None, {"M": np.array(0, np.int64), "x0": x0})
    np.testing.assert_array_equal(x, x0)
    assert xs.dtype == np.float64 and xs.shape == (0, 2)


class _FakeBody:
    """A body that must not run, declaring (cond, carried, scan) output types."""

    num_outputs = 3

    def __init__(self, output_types):
        self.output_types = output_types

    def __call__(self, *args):
        raise AssertionError("a zero-trip loop must not run its body")


def test_loop_zero_trip_count_falls_back_to_body_declaration():
    # Nothing known about the node's outputs: the body's declared [3] int32 scan element
    # gives an empty [0, 3] int32 scan output.
    info = NodeInfo("loop", "Loop", "", 17, num_inputs=3, num_outputs=2)
    run = loop(info)
    declared = [
        helper.make_tensor_type_proto(T.BOOL, []),
        helper.make_tensor_type_proto(T.INT32, [None]),
        helper.make_tensor_type_proto(T.INT32, [3]),
    ]
    x0 = np.array([4, 5], np.int32)
    x, xs = run(np.array(0, np.int64), None, x0, body=_FakeBody(declared))
    assert x is x0
    assert xs.dtype == np.int32 and xs.shape == (0, 3)


# -- If --------------------------------------------------------------------------------------


def _if_sequence_session():
    then_g = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["a", "a"], ["seq_t"])],
        "then",
        [],
        [helper.make_tensor_sequence_value_info("seq_t", T.FLOAT, [2])],
    )
    else_g = helper.make_graph(
        [helper.make_node("SequenceEmpty", [], ["seq_e"], dtype=T.FLOAT)],
        "else",
        [],
        [helper.make_tensor_sequence_value_info("seq_e", T.FLOAT, [2])],
    )
    node = helper.make_node("If", ["c"], ["seq"], then_branch=then_g, else_branch=else_g)
    return session(
        [node],
        [vi("c", T.BOOL, []), vi("a", T.FLOAT, [2])],
        [helper.make_tensor_sequence_value_info("seq", T.FLOAT, [2])],
    )


def test_if_returns_sequences_from_either_branch():
    sess = _if_sequence_session()
    a = np.array([1.0, 2.0], np.float32)
    (seq,) = sess.run(None, {"c": np.array(True), "a": a})
    assert isinstance(seq, list) and len(seq) == 2
    np.testing.assert_array_equal(seq[1], a)
    (seq,) = sess.run(None, {"c": np.array(False), "a": a})
    assert seq == []


def test_if_condition_from_one_element_tensor():
    then_g = helper.make_graph(
        [const("t", np.array([1], np.int64))], "then", [], [vi("t", T.INT64, [1])]
    )
    else_g = helper.make_graph(
        [const("e", np.array([2, 3], np.int64))], "else", [], [vi("e", T.INT64, [None])]
    )
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    sess = session([node], [vi("c", T.BOOL, [1])], [vi("y", T.INT64, [None])])
    np.testing.assert_array_equal(sess.run(None, {"c": np.array([True])})[0], [1])
    np.testing.assert_array_equal(sess.run(None, {"c": np.array([False])})[0], [2, 3])


# -- Scan ------------------------------------------------------------------------------------


def _scan_session(opset=11, **attrs):
    # state_out = state_in + x_t ; scan_out = state_out
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
            helper.make_node("Add", ["s_out", "z"], ["y_t"]),
        ],
        "body",
        [vi("s_in", T.FLOAT, [2]), vi("x_t", T.FLOAT, [2])],
        [vi("s_out", T.FLOAT, [2]), vi("y_t", T.FLOAT, [2])],
    )
    node = helper.make_node("Scan", ["s0", "x"], ["s", "y"], body=body, num_scan_inputs=1, **attrs)
    return session(
        [const("z", np.zeros(2, np.float32)), node],
        [vi("s0", T.FLOAT, [2]), vi("x", T.FLOAT, [None, None])],
        [vi("s", T.FLOAT, [2]), vi("y", T.FLOAT, [None, None])],
        opset=opset,
    )


X3 = np.array([[1, 2], [3, 4], [5, 6]], np.float32)


def test_scan_reverse_input_direction():
    # Rows visited 5 6, 3 4, 1 2: running sums [5 6], [8 10], [9 12].
    s, y = _scan_session(scan_input_directions=[1]).run(
        None, {"s0": np.zeros(2, np.float32), "x": X3}
    )
    np.testing.assert_array_equal(s, [9, 12])
    np.testing.assert_array_equal(y, [[5, 6], [8, 10], [9, 12]])


def test_scan_prepending_output_direction():
    # Forward sums [1 2], [4 6], [9 12], each prepended: [9 12], [4 6], [1 2].
    s, y = _scan_session(scan_output_directions=[1]).run(
        None, {"s0": np.zeros(2, np.float32), "x": X3}
    )
    np.testing.assert_array_equal(s, [9, 12])
    np.testing.assert_array_equal(y, [[9, 12], [4, 6], [1, 2]])


def test_scan_input_and_output_axis_1():
    # x [[1 2 3], [4 5 6]] scanned along axis 1: columns [1 4], [2 5], [3 6];
    # sums [1 4], [3 9], [6 15], stacked on axis -1 (= 1): [[1 3 6], [4 9 15]].
    x = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    sess = _scan_session(scan_input_axes=[1], scan_output_axes=[-1])
    s, y = sess.run(None, {"s0": np.zeros(2, np.float32), "x": x})
    np.testing.assert_array_equal(s, [6, 15])
    np.testing.assert_array_equal(y, [[1, 3, 6], [4, 9, 15]])


def test_scan_empty_sequence():
    s, y = _scan_session().run(
        None, {"s0": np.ones(2, np.float32), "x": np.zeros((0, 2), np.float32)}
    )
    np.testing.assert_array_equal(s, [1, 1])
    assert y.dtype == np.float32 and y.shape[0] == 0


def test_scan8_sequence_lens_and_reverse():
    # Batch 0, length 3, reversed: 3, 3+2=5, 5+1=6. Batch 1, length 2 of [10 20 30],
    # reversed within its length (20 then 10): 20, 30, then padding 0.
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
            helper.make_node("Add", ["s_out", "z"], ["y_t"]),
        ],
        "body",
        [vi("s_in", T.FLOAT, [1]), vi("x_t", T.FLOAT, [1])],
        [vi("s_out", T.FLOAT, [1]), vi("y_t", T.FLOAT, [1])],
    )
    node = helper.make_node(
        "Scan", ["lens", "s0", "x"], ["s", "y"], body=body, num_scan_inputs=1, directions=[1]
    )
    sess = session(
        [const("z", np.zeros(1, np.float32)), node],
        [vi("lens", T.INT32, [2]), vi("s0", T.FLOAT, [2, 1]), vi("x", T.FLOAT, [2, 3, 1])],
        [vi("s", T.FLOAT, [2, 1]), vi("y", T.FLOAT, [2, 3, 1])],
        opset=8,
    )
    x = np.array([[1, 2, 3], [10, 20, 30]], np.float32).reshape(2, 3, 1)
    feeds = {"lens": np.array([3, 2], np.int32), "s0": np.zeros((2, 1), np.float32), "x": x}
    s, y = sess.run(None, feeds)
    np.testing.assert_array_equal(s, [[6], [30]])
    np.testing.assert_array_equal(y[..., 0], [[3, 5, 6], [20, 30, 0]])
