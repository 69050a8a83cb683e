"""Load-time validation: invalid models are refused naming the culprit; valid forms that the
checker is stricter about than the IR, or that are merely fixable, are accepted and run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper

import onnxpy
from onnxpy.model.validate import find_problems

X = helper.make_tensor_value_info("X", T.FLOAT, [2])
Y = helper.make_tensor_value_info("Y", T.FLOAT, [2])
B = helper.make_tensor_value_info("B", T.BOOL, [])
M = helper.make_tensor_value_info("M", T.INT64, [])
C = helper.make_tensor("C", T.FLOAT, [2], [1.0, 2.0])
X_VALUE = np.array([1.0, -2.0], np.float32)


def model(nodes, inputs, outputs, inits=(), opset=17, ir=8, extra=(), value_info=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), value_info=value_info)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra])
    m.ir_version = ir
    return m


def relu(**kw):
    return model([helper.make_node("Relu", ["X"], ["Y"])], [X], [Y], **kw)


def refused(m, error, *fragments):
    with pytest.raises(error) as info:
        onnxpy.InferenceSession(m.SerializeToString())
    for f in fragments:
        assert f in str(info.value), (f, str(info.value))
    return str(info.value)


def body(inputs, outputs, nodes):
    return helper.make_graph(nodes, "body", inputs, outputs)


def vi(name, elem, shape=()):
    return helper.make_tensor_value_info(name, elem, list(shape))


# -- IR version and opsets ----------------------------------------------------------------


def test_ir_version_missing_negative_or_unknown():
    m = relu()
    m.ir_version = 0
    refused(m, onnxpy.InvalidGraph, "ir_version", "missing")
    m.ir_version = -3
    refused(m, onnxpy.InvalidGraph, "ir_version", "-3")
    m.ir_version = onnx.IR_VERSION + 1
    refused(m, onnxpy.NotImplemented, "ir_version", str(onnx.IR_VERSION + 1), "newer")


def test_opset_newer_than_known_zero_or_conflicting():
    newest = onnx.defs.onnx_opset_version()
    refused(relu(opset=newest + 1), onnxpy.NotImplemented, "ai.onnx", str(newest + 1))
    refused(relu(opset=0), onnxpy.InvalidGraph, "ai.onnx", "version 0")
    m = relu(extra=[helper.make_opsetid("", 16)])
    refused(m, onnxpy.InvalidGraph, "ai.onnx", "17", "16")


def test_known_domain_version_beyond_newest_is_refused():
    ml = helper.make_opsetid("ai.onnx.ml", 99)
    node = helper.make_node("Normalizer", ["X"], ["Y"], domain="ai.onnx.ml")
    m = model([node], [X], [Y], extra=[ml])
    refused(m, onnxpy.NotImplemented, "ai.onnx.ml", "99")


def test_domain_in_use_without_opset_import():
    node = helper.make_node("Relu", ["X"], ["Y"], domain="com.example")
    refused(model([node], [X], [Y]), onnxpy.InvalidGraph, "com.example")


def test_repeated_identical_opset_import_is_accepted():
    # skl2onnx writes the default domain twice with the same version.
    m = relu(extra=[helper.make_opsetid("", 17)])
    out = onnxpy.InferenceSession(m.SerializeToString()).run(None, {"X": X_VALUE})[0]
    np.testing.assert_array_equal(out, [1.0, 0.0])


# -- declared types ---------------------------------------------------------------------------


@pytest.mark.parametrize("elem", [0, 77])
def test_graph_input_and_output_element_types(elem):
    bad_in = model([helper.make_node("Relu", ["X"], ["Y"])], [vi("X", elem, [2])], [Y])
    refused(bad_in, onnxpy.InvalidGraph, "input 'X'", f"element type {elem}")
    bad_out = model([helper.make_node("Relu", ["X"], ["Y"])], [X], [vi("Y", elem, [2])])
    refused(bad_out, onnxpy.InvalidGraph, "output 'Y'", f"element type {elem}")


def test_sequence_element_type_undefined():
    seq = helper.make_tensor_sequence_value_info("S", 0, None)
    node = helper.make_node("SequenceLength", ["S"], ["L"])
    m = model([node], [seq], [vi("L", T.INT64)])
    refused(m, onnxpy.InvalidGraph, "input 'S'", "sequence element", "UNDEFINED")


def test_declared_output_type_contradicted_by_its_node():
    m = model([helper.make_node("Relu", ["X"], ["Y"])], [X], [vi("Y", T.INT64, [2])])
    refused(m, onnxpy.InvalidGraph, "'Y'", "tensor(int64)", "Relu", "tensor(float)")


def test_value_info_contradicted_by_its_node():
    nodes = [helper.make_node("Relu", ["X"], ["H"]), helper.make_node("Relu", ["H"], ["Y"])]
    m = model(nodes, [X], [Y], value_info=[vi("H", T.INT32, [2])])
    refused(m, onnxpy.InvalidGraph, "'H'", "tensor(int32)", "tensor(float)")


# -- names ----------------------------------------------------------------------------------------


def test_duplicate_initializer_name():
    m = model([helper.make_node("Add", ["X", "C"], ["Y"])], [X], [Y], inits=[C, C])
    refused(m, onnxpy.InvalidGraph, "C", "not unique")


def test_value_defined_twice():
    nodes = [helper.make_node("Relu", ["X"], ["Y"]), helper.make_node("Neg", ["X"], ["Y"])]
    refused(model(nodes, [X], [Y]), onnxpy.InvalidGraph, "'Y'", "single static assignment")


def test_constant_redefining_a_graph_input():
    nodes = [
        helper.make_node("Constant", [], ["X"], value=C),
        helper.make_node("Relu", ["X"], ["Y"]),
    ]
    refused(model(nodes, [X], [Y]), onnxpy.InvalidGraph, "'X'")


# -- If / Loop / Scan ---------------------------------------------------------------------------


def _then():
    return body([], [vi("a", T.FLOAT, [2])], [helper.make_node("Relu", ["X"], ["a"])])


def test_if_branches_with_different_output_counts():
    other = body(
        [],
        [vi("b", T.FLOAT, [2]), vi("b2", T.FLOAT, [2])],
        [helper.make_node("Relu", ["X"], ["b"]), helper.make_node("Neg", ["X"], ["b2"])],
    )
    node = helper.make_node("If", ["B"], ["Y"], then_branch=_then(), else_branch=other)
    refused(model([node], [X, B], [Y]), onnxpy.InvalidGraph, "If", "1 outputs", "2")


def test_if_branches_with_different_types():
    other = body([], [vi("b", T.INT64, [2])], [helper.make_node("Cast", ["X"], ["b"], to=T.INT64)])
    node = helper.make_node("If", ["B"], ["Y"], then_branch=_then(), else_branch=other)
    refused(model([node], [X, B], [Y]), onnxpy.InvalidGraph, "If", "float", "int64", "'b'")


def test_if_condition_must_be_bool():
    other = body([], [vi("b", T.FLOAT, [2])], [helper.make_node("Neg", ["X"], ["b"])])
    node = helper.make_node("If", ["F"], ["Y"], then_branch=_then(), else_branch=other)
    m = model([node], [X, vi("F", T.FLOAT)], [Y])
    refused(m, onnxpy.InvalidGraph, "condition 'F'", "bool", "float")


def _loop_body(inputs=None, outputs=None, nodes=None):
    return body(
        inputs
        if inputs is not None
        else [vi("i", T.INT64), vi("c", T.BOOL), vi("v", T.FLOAT, [2])],
        outputs if outputs is not None else [vi("co", T.BOOL), vi("vo", T.FLOAT, [2])],
        nodes
        if nodes is not None
        else [helper.make_node("Identity", ["c"], ["co"]), helper.make_node("Relu", ["v"], ["vo"])],
    )


def _loop(b, trip="M", trip_info=M):
    node = helper.make_node("Loop", [trip, "", "X"], ["Y"], body=b)
    return model([node], [X, trip_info], [Y])


def test_valid_loop_runs():
    sess = onnxpy.InferenceSession(_loop(_loop_body()).SerializeToString())
    out = sess.run(None, {"X": X_VALUE, "M": np.array(3, np.int64)})[0]
    np.testing.assert_array_equal(out, [1.0, 0.0])


def test_loop_body_missing_a_carried_output():
    b = _loop_body(outputs=[vi("co", T.BOOL)], nodes=[helper.make_node("Identity", ["c"], ["co"])])
    refused(_loop(b), onnxpy.InvalidGraph, "Loop", "returns 1 outputs", "at least 2")


def test_loop_body_input_count():
    b = _loop_body(
        inputs=[vi("i", T.INT64), vi("c", T.BOOL)],
        nodes=[
            helper.make_node("Identity", ["c"], ["co"]),
            helper.make_node("Relu", ["X"], ["vo"]),
        ],
    )
    refused(_loop(b), onnxpy.InvalidGraph, "Loop", "takes 2 inputs", "must take 3")


def test_loop_iteration_number_and_condition_types():
    b = _loop_body(inputs=[vi("i", T.FLOAT), vi("c", T.BOOL), vi("v", T.FLOAT, [2])])
    refused(_loop(b), onnxpy.InvalidGraph, "iteration_num input 'i'", "int64", "float")
    b = _loop_body(inputs=[vi("i", T.INT64), vi("c", T.FLOAT), vi("v", T.FLOAT, [2])])
    refused(_loop(b), onnxpy.InvalidGraph, "condition input 'c'", "bool", "float")


def test_loop_float_trip_count():
    m = _loop(_loop_body(), trip="MF", trip_info=vi("MF", T.FLOAT))
    refused(m, onnxpy.InvalidGraph, "trip count M 'MF'", "int64", "float")


def _scan(b):
    node = helper.make_node("Scan", ["S0", "XS"], ["SF", "YS"], body=b, num_scan_inputs=1)
    return model(
        [node],
        [vi("S0", T.FLOAT, [2]), vi("XS", T.FLOAT, [3, 2])],
        [vi("SF", T.FLOAT, [2]), vi("YS", T.FLOAT, [3, 2])],
    )


def test_valid_scan_runs():
    b = body(
        [vi("s", T.FLOAT, [2]), vi("x", T.FLOAT, [2])],
        [vi("so", T.FLOAT, [2]), vi("yo", T.FLOAT, [2])],
        [helper.make_node("Add", ["s", "x"], ["so"]), helper.make_node("Identity", ["so"], ["yo"])],
    )
    sess = onnxpy.InferenceSession(_scan(b).SerializeToString())
    final, ys = sess.run(None, {"S0": np.zeros(2, np.float32), "XS": np.ones((3, 2), np.float32)})
    np.testing.assert_array_equal(final, [3.0, 3.0])
    np.testing.assert_array_equal(ys[:, 0], [1.0, 2.0, 3.0])


def test_scan_body_signature_mismatches():
    b = body(
        [vi("s", T.FLOAT, [2])],
        [vi("so", T.FLOAT, [2]), vi("yo", T.FLOAT, [2])],
        [helper.make_node("Relu", ["s"], ["so"]), helper.make_node("Identity", ["so"], ["yo"])],
    )
    refused(_scan(b), onnxpy.InvalidGraph, "Scan", "takes 1 inputs", "must take 2")
    b = body(
        [vi("s", T.FLOAT, [2]), vi("x", T.FLOAT, [2])],
        [vi("so", T.FLOAT, [2])],
        [helper.make_node("Add", ["s", "x"], ["so"])],
    )
    refused(_scan(b), onnxpy.InvalidGraph, "Scan", "returns 1 outputs", "node has 2")


# -- valid forms the checker is stricter about than the IR ----------------------------------------


def test_output_declared_without_shape_runs_and_reports_inferred_shape():
    m = model([helper.make_node("Relu", ["X"], ["Y"])], [X], [vi_no_shape("Y", T.FLOAT)])
    sess = onnxpy.InferenceSession(m.SerializeToString())
    np.testing.assert_array_equal(sess.run(None, {"X": X_VALUE})[0], [1.0, 0.0])
    assert sess.get_outputs()[0].shape == [2]


def vi_no_shape(name, elem):
    v = helper.make_tensor_value_info(name, elem, None)
    assert not v.type.tensor_type.HasField("shape")
    return v


def test_ir3_initializer_not_listed_as_input_is_a_constant():
    m = model([helper.make_node("Add", ["X", "C"], ["Y"])], [X], [Y], inits=[C], ir=3, opset=8)
    sess = onnxpy.InferenceSession(m.SerializeToString())
    np.testing.assert_array_equal(sess.run(None, {"X": X_VALUE})[0], [2.0, 0.0])
    assert sess.get_overridable_initializers() == []


def test_nodes_out_of_topological_order_are_ordered():
    nodes = [
        helper.make_node("Relu", ["H"], ["Y"], name="second"),
        helper.make_node("Neg", ["X"], ["H"], name="first"),
    ]
    sess = onnxpy.InferenceSession(model(nodes, [X], [Y]).SerializeToString())
    np.testing.assert_array_equal(sess.run(None, {"X": X_VALUE})[0], [0.0, 2.0])


def test_a_real_cycle_is_still_refused():
    nodes = [
        helper.make_node("Relu", ["H"], ["G"], name="a"),
        helper.make_node("Add", ["X", "G"], ["H"], name="b"),
        helper.make_node("Identity", ["H"], ["Y"], name="c"),
    ]
    refused(model(nodes, [X], [Y]), onnxpy.InvalidGraph)


def test_find_problems_lists_every_problem():
    other = body([], [vi("b", T.INT64, [2])], [helper.make_node("Cast", ["X"], ["b"], to=T.INT64)])
    if_node = helper.make_node("If", ["F"], ["Z"], then_branch=_then(), else_branch=other)
    nodes = [helper.make_node("Relu", ["X"], ["Y"]), if_node]
    m = model(nodes, [X, vi("F", T.FLOAT)], [vi("Y", T.INT64, [2]), vi("Z", T.FLOAT, [2])])
    problems = [str(p) for p in find_problems(m)]
    assert any("condition 'F'" in p for p in problems)
    assert any("then_branch" in p and "else_branch" in p for p in problems)
    assert any("'Y'" in p and "tensor(int64)" in p for p in problems)
