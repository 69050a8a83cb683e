"""Bad input gets a clear error naming what was expected, and the session keeps working."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpy as rt
from onnxpy.capi.onnxruntime_pybind11_state import (
    Fail,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
    NoSuchFile,
    NotImplemented,
)
from tests.runtime.models import add_relu, model, two_inputs

X = np.ones((2, 3), np.float32)


def test_error_classes_share_one_base():
    for cls in (Fail, InvalidArgument, NoSuchFile, InvalidProtobuf, NotImplemented, InvalidGraph):
        assert issubclass(cls, rt.OnnxpyError)


def test_missing_file(tmp_path):
    with pytest.raises(NoSuchFile, match="does not exist"):
        rt.InferenceSession(str(tmp_path / "nope.onnx"))


def test_garbage_bytes():
    with pytest.raises(InvalidProtobuf):
        rt.InferenceSession(b"\x00\xffthis is not a model\x13\x37" * 10)


def test_garbage_file(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InvalidProtobuf):
        rt.InferenceSession(str(path))


def test_truncated_file(tmp_path):
    data = add_relu().SerializeToString()
    path = tmp_path / "trunc.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises((InvalidProtobuf, InvalidGraph)):
        rt.InferenceSession(str(path))


def test_unknown_op_names_node_op_domain_and_opset():
    m = model(
        [helper.make_node("Frobnicate", ["X"], ["Y"], name="frob1")],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
    )
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    m.graph.node[0].domain = "com.example"
    with pytest.raises(NotImplemented) as info:
        rt.InferenceSession(m.SerializeToString())
    msg = str(info.value)
    assert "frob1" in msg and "Frobnicate" in msg and "com.example" in msg and "opset 1" in msg


def test_unknown_default_domain_op_is_refused_by_validation():
    m = model(
        [helper.make_node("Frobnicate", ["X"], ["Y"], name="frob1")],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(InvalidGraph, match="Frobnicate"):
        rt.InferenceSession(m.SerializeToString())


def test_domain_without_opset_import_is_refused():
    m = model(
        [helper.make_node("Frobnicate", ["X"], ["Y"], name="frob1", domain="com.nowhere")],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises((InvalidGraph, NotImplemented), match="com.nowhere"):
        rt.InferenceSession(m.SerializeToString())


def test_undefined_value_is_refused():
    m = model(
        [helper.make_node("Add", ["X", "ghost"], ["Y"], name="add")],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(InvalidGraph, match="ghost"):
        rt.InferenceSession(onnx.load_from_string(m.SerializeToString()), sess_options=None)


def test_missing_input_lists_required_and_given():
    sess = rt.InferenceSession(two_inputs().SerializeToString())
    with pytest.raises(ValueError) as info:
        sess.run(None, {"A": np.ones((1, 4), np.float32)})
    assert "['B']" in str(info.value) and "['A']" in str(info.value)


def test_wrong_input_name():
    sess = rt.InferenceSession(add_relu().SerializeToString())
    with pytest.raises(InvalidArgument, match="Invalid input name: 'Q'"):
        sess.run(None, {"X": X, "Q": X})


def test_wrong_dtype_names_expected_and_actual():
    sess = rt.InferenceSession(add_relu().SerializeToString())
    with pytest.raises(InvalidArgument) as info:
        sess.run(None, {"X": X.astype(np.float64)})
    msg = str(info.value)
    assert "'X'" in msg and "tensor(double)" in msg and "tensor(float)" in msg


def test_wrong_rank():
    sess = rt.InferenceSession(add_relu().SerializeToString())
    with pytest.raises(InvalidArgument, match="Invalid rank for input: X Got: 3 Expected: 2"):
        sess.run(None, {"X": np.ones((1, 2, 3), np.float32)})


def test_wrong_fixed_dimension_names_index():
    sess = rt.InferenceSession(add_relu().SerializeToString())
    with pytest.raises(InvalidArgument, match=r"(?s)input: X.*index: 1 Got: 4 Expected: 3"):
        sess.run(None, {"X": np.ones((2, 4), np.float32)})


def test_non_array_feed_is_refused():
    sess = rt.InferenceSession(add_relu().SerializeToString())
    with pytest.raises(InvalidArgument, match="numpy array"):
        sess.run(None, {"X": object()})


def test_unknown_output_name():
    sess = rt.InferenceSession(add_relu().SerializeToString())
    with pytest.raises(InvalidArgument, match="nonexistent"):
        sess.run(["nonexistent"], {"X": X})


def test_kernel_failure_names_node_and_op_and_session_survives():
    sess = rt.InferenceSession(two_inputs().SerializeToString())
    with pytest.raises(Fail) as info:
        sess.run(None, {"A": np.ones((2, 4), np.float32), "B": np.ones((3, 4), np.float32)})
    assert "'add'" in str(info.value) and "Add" in str(info.value)
    z, w = sess.run(None, {"A": np.ones((2, 4), np.float32), "B": np.ones((2, 4), np.float32)})
    np.testing.assert_array_equal(z, np.full((2, 4), 2, np.float32))


def test_failure_in_a_later_node_names_that_node():
    """The compiled run loop maps a failure back to its node, not to the first or last one."""
    f = TensorProto.FLOAT
    m = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Relu", ["A"], ["r"], name="first"),
                helper.make_node("Split", ["r"], ["s0", "s1"], name="split", axis=0),
                helper.make_node("Add", ["s0", "B"], ["t"], name="second_add"),
                helper.make_node("Neg", ["t"], ["Y"], name="last"),
            ],
            "g",
            [
                helper.make_tensor_value_info("A", f, [None, 3]),
                helper.make_tensor_value_info("B", f, [None, 3]),
            ],
            [
                helper.make_tensor_value_info("Y", f, [None, 3]),
                helper.make_tensor_value_info("s1", f, [None, 3]),
            ],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    sess = rt.InferenceSession(m.SerializeToString())
    with pytest.raises(Fail, match="'second_add' \\(op Add\\)"):
        sess.run(None, {"A": np.ones((4, 3), np.float32), "B": np.ones((5, 3), np.float32)})
    a = np.arange(12, dtype=np.float32).reshape(4, 3) - 5
    y, s1 = sess.run(None, {"A": a, "B": np.ones((2, 3), np.float32)})
    np.testing.assert_array_equal(y, -(np.maximum(a[:2], 0) + 1))
    np.testing.assert_array_equal(s1, np.maximum(a[2:], 0))


def test_unsupported_attribute_is_refused_at_creation():
    m = add_relu()
    m.graph.node[1].attribute.append(helper.make_attribute("made_up", 3))
    with pytest.raises((NotImplemented, InvalidGraph), match="made_up"):
        rt.InferenceSession(m.SerializeToString(), sess_options=None)


def test_external_data_escaping_the_folder_is_refused(tmp_path):
    m = add_relu()
    t = numpy_helper.from_array(np.ones(3, np.float32), "B")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../outside.bin"), ("offset", "0"), ("length", "12")):
        e = t.external_data.add()
        e.key, e.value = k, v
    (tmp_path.parent / "outside.bin").write_bytes(np.ones(3, np.float32).tobytes())
    del m.graph.initializer[:]
    m.graph.initializer.append(t)
    d = tmp_path / "m"
    d.mkdir()
    path = d / "m.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises((InvalidGraph, rt.OnnxpyError), match="outside.bin|escape"):
        rt.InferenceSession(str(path))


def test_missing_external_data_file(tmp_path):
    m = add_relu()
    t = numpy_helper.from_array(np.ones(3, np.float32), "B")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "missing.bin"
    del m.graph.initializer[:]
    m.graph.initializer.append(t)
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises((NoSuchFile, InvalidGraph), match="missing.bin"):
        rt.InferenceSession(str(path))


def test_initializer_whose_bytes_do_not_match_its_dims():
    m = add_relu()
    big = numpy_helper.from_array(np.ones(2048, np.float32), "BIG")
    big.dims[0] = 4096  # claims twice the data it holds
    m.graph.initializer.append(big)
    with pytest.raises(InvalidGraph, match="BIG"):
        rt.InferenceSession(m.SerializeToString())
