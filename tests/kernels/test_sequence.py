"""Sequence and optional operators: positions, splitting, stacking, mapping, empty optionals.

Expectations are worked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper

import onnxpy
from tests.kernels import single_node


def seq_type(elem=T.FLOAT, shape=None):
    return helper.make_sequence_type_proto(helper.make_tensor_type_proto(elem, shape))


def value(name, tp):
    return helper.make_value_info(name, tp)


def tensor(name, elem=T.FLOAT, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def run(nodes, inputs, outputs, feeds, opset=18):
    return single_node.run_graph(nodes, inputs, outputs, feeds, opset)


A = np.array([1.0], np.float32)
B = np.array([2.0, 3.0], np.float32)
C = np.array([4.0, 5.0, 6.0], np.float32)


def seq_op(op, extra_inputs=(), feeds=None, out=None, **attrs):
    """Run ``op`` on the sequence [A, B, C] plus scalar int64 inputs ``extra_inputs``."""
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b", "c"], ["s"]),
        helper.make_node(op, ["s", *[n for n, _ in extra_inputs]], ["y"], **attrs),
    ]
    inputs = [tensor(n, T.FLOAT, [None]) for n in "abc"]
    inputs += [tensor(n, T.INT64, []) for n, _ in extra_inputs]
    feeds = {"a": A, "b": B, "c": C, **{n: np.array(v, np.int64) for n, v in extra_inputs}}
    return run(nodes, inputs, [out or value("y", seq_type(T.FLOAT, [None]))], feeds)[0]


def test_sequence_at_negative_position():
    np.testing.assert_array_equal(
        seq_op("SequenceAt", [("p", -1)], out=tensor("y", T.FLOAT, [None])), C
    )
    np.testing.assert_array_equal(
        seq_op("SequenceAt", [("p", -3)], out=tensor("y", T.FLOAT, [None])), A
    )


def test_sequence_at_out_of_range():
    with pytest.raises(onnxpy.errors.OnnxpyError, match="out of range"):
        seq_op("SequenceAt", [("p", 3)], out=tensor("y", T.FLOAT, [None]))


def test_sequence_insert_negative_position_and_default():
    # Insert at -1 goes before the last element: [A, B, X, C].
    x = np.array([9.0], np.float32)
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b", "c"], ["s"]),
        helper.make_node("SequenceInsert", ["s", "x", "p"], ["s2"]),
        helper.make_node("SequenceInsert", ["s", "x"], ["s3"]),
        helper.make_node("SequenceLength", ["s"], ["n"]),
    ]
    inputs = [tensor(n, T.FLOAT, [None]) for n in "abcx"] + [tensor("p", T.INT64, [])]
    outputs = [
        value("s2", seq_type(T.FLOAT, [None])),
        value("s3", seq_type(T.FLOAT, [None])),
        tensor("n", T.INT64, []),
    ]
    feeds = {"a": A, "b": B, "c": C, "x": x, "p": np.array(-1, np.int64)}
    s2, s3, n = run(nodes, inputs, outputs, feeds)
    assert [v.tolist() for v in s2] == [[1.0], [2.0, 3.0], [9.0], [4.0, 5.0, 6.0]]
    assert [v.tolist() for v in s3] == [[1.0], [2.0, 3.0], [4.0, 5.0, 6.0], [9.0]]
    # The input sequence itself is untouched: still three tensors.
    assert n == 3 and n.dtype == np.int64


def test_sequence_erase_default_is_last_and_negative():
    assert [v.tolist() for v in seq_op("SequenceErase")] == [[1.0], [2.0, 3.0]]
    got = seq_op("SequenceErase", [("p", -3)])
    assert [v.tolist() for v in got] == [[2.0, 3.0], [4.0, 5.0, 6.0]]


def test_sequence_empty_then_length_zero():
    nodes = [
        helper.make_node("SequenceEmpty", [], ["s"], dtype=T.INT32),
        helper.make_node("SequenceLength", ["s"], ["n"]),
    ]
    (n,) = run(nodes, [], [tensor("n", T.INT64, [])], {})
    assert n == 0 and n.dtype == np.int64


def split(x, split_value=None, **attrs):
    names = ["x"] + (["split"] if split_value is not None else [])
    inputs = [tensor("x", T.FLOAT, list(x.shape))]
    feeds = {"x": x}
    if split_value is not None:
        inputs.append(tensor("split", T.INT64, list(np.shape(split_value))))
        feeds["split"] = np.array(split_value, np.int64)
    node = helper.make_node("SplitToSequence", names, ["y"], **attrs)
    return run([node], inputs, [value("y", seq_type(T.FLOAT, None))], feeds)[0]


def test_split_to_sequence_scalar_split_leaves_short_last_chunk():
    # 5 along axis 0 in chunks of 2: [0 1], [2 3], [4].
    parts = split(np.arange(5, dtype=np.float32), 2)
    assert [p.tolist() for p in parts] == [[0.0, 1.0], [2.0, 3.0], [4.0]]


def test_split_to_sequence_default_split_without_keepdims():
    # [[0 1 2], [3 4 5]] split one by one along axis -1 without the axis: [0 3], [1 4], [2 5].
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    parts = split(x, axis=-1, keepdims=0)
    assert [p.shape for p in parts] == [(2,), (2,), (2,)]
    assert [p.tolist() for p in parts] == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    kept = split(x, axis=1)
    assert [p.shape for p in kept] == [(2, 1)] * 3


def test_split_to_sequence_bad_sizes():
    with pytest.raises(onnxpy.errors.OnnxpyError, match="add up"):
        split(np.arange(5, dtype=np.float32), [2, 2])


def concat(arrays, **attrs):
    names = [f"t{i}" for i in range(len(arrays))]
    nodes = [
        helper.make_node("SequenceConstruct", names, ["s"]),
        helper.make_node("ConcatFromSequence", ["s"], ["y"], **attrs),
    ]
    inputs = [tensor(n, T.INT32, list(a.shape)) for n, a in zip(names, arrays, strict=True)]
    return run(
        nodes, inputs, [tensor("y", T.INT32, [None, None])], dict(zip(names, arrays, strict=True))
    )[0]


def test_concat_from_sequence_new_axis_last():
    # Stacking [1 2] and [3 4] on a new last axis: [[1 3], [2 4]].
    y = concat([np.array([1, 2], np.int32), np.array([3, 4], np.int32)], axis=-1, new_axis=1)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [[1, 3], [2, 4]])


def test_concat_from_sequence_existing_axis():
    y = concat([np.array([[1]], np.int32), np.array([[2, 3]], np.int32)], axis=1)
    np.testing.assert_array_equal(y, [[1, 2, 3]])


def _map_body():
    return helper.make_graph(
        [helper.make_node("Add", ["e", "t"], ["o"])],
        "body",
        [tensor("e", T.FLOAT, [None]), tensor("t", T.FLOAT, [1])],
        [tensor("o", T.FLOAT, [None])],
    )


def test_sequence_map_with_tensor_extra_input():
    # [1], [2 3] each plus 10: [11], [12 13].
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
        helper.make_node("SequenceMap", ["s", "t"], ["y"], body=_map_body()),
    ]
    inputs = [tensor("a", T.FLOAT, [1]), tensor("b", T.FLOAT, [2]), tensor("t", T.FLOAT, [1])]
    feeds = {"a": A, "b": B, "t": np.array([10.0], np.float32)}
    (y,) = run(nodes, inputs, [value("y", seq_type(T.FLOAT, [None]))], feeds)
    assert [v.tolist() for v in y] == [[11.0], [12.0, 13.0]]


def test_sequence_map_over_empty_sequence():
    nodes = [
        helper.make_node("SequenceEmpty", [], ["s"]),
        helper.make_node("SequenceMap", ["s", "t"], ["y"], body=_map_body()),
    ]
    feeds = {"t": np.array([10.0], np.float32)}
    out = [value("y", seq_type(T.FLOAT, [None]))]
    (y,) = run(nodes, [tensor("t", T.FLOAT, [1])], out, feeds)
    assert y == []


def _optional_model(with_input):
    opt_type = helper.make_optional_type_proto(helper.make_tensor_type_proto(T.FLOAT, [2]))
    attrs = {} if with_input else {"type": helper.make_tensor_type_proto(T.FLOAT, [2])}
    nodes = [
        helper.make_node("Optional", ["x"] if with_input else [], ["o"], **attrs),
        helper.make_node("OptionalHasElement", ["o"], ["has"]),
    ]
    inputs = [tensor("x", T.FLOAT, [2])] if with_input else []
    outputs = [value("o", opt_type), tensor("has", T.BOOL, [])]
    return nodes, inputs, outputs


def test_optional_empty_and_full():
    nodes, inputs, outputs = _optional_model(False)
    o, has = run(nodes, inputs, outputs, {})
    assert o is None and has.dtype == np.bool_ and not has
    nodes, inputs, outputs = _optional_model(True)
    x = np.array([1.0, 2.0], np.float32)
    o, has = run(nodes, inputs, outputs, {"x": x})
    np.testing.assert_array_equal(o, x)
    assert has


def test_optional_get_element_of_empty_fails():
    nodes, inputs, _ = _optional_model(False)
    nodes.append(helper.make_node("OptionalGetElement", ["o"], ["y"]))
    with pytest.raises(onnxpy.errors.OnnxpyError, match="empty"):
        run(nodes, inputs, [tensor("y", T.FLOAT, [2])], {})
