"""Feeds written as Python: nested lists and scalars convert to the declared element type;
what would need a guess is refused, naming the input, what was given and what is expected."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper

import onnxpy


def identity(elem, shape):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", elem, shape)],
        [helper.make_tensor_value_info("Y", elem, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnxpy.InferenceSession(model.SerializeToString())


def out(sess, value):
    return sess.run(None, {"X": value})[0]


def test_nested_list_of_floats_becomes_float32():
    y = out(identity(T.FLOAT, [1, 4]), [[5.1, 3.5, 1.4, 0.2]])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.array([[5.1, 3.5, 1.4, 0.2]], np.float32))


def test_ints_for_a_float_input_and_float16_rounding():
    np.testing.assert_array_equal(out(identity(T.FLOAT, [2]), [1, 2]), [1.0, 2.0])
    y = out(identity(T.FLOAT16, [2]), [0.1, 1])
    assert y.dtype == np.float16 and y[0] == np.float16(0.1)


@pytest.mark.parametrize("scalar", [3, 3.0, np.float64(3.0), np.int32(3)])
def test_python_and_numpy_scalars(scalar):
    y = out(identity(T.FLOAT, []), scalar)
    assert y.dtype == np.float32 and y.shape == () and y == 3.0


def test_integer_input_takes_integral_values_only():
    sess = identity(T.INT64, ["N"])
    y = out(sess, [1, 2.0, -3])
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [1, 2, -3])
    with pytest.raises(onnxpy.InvalidArgument, match=r"'X'.*integers.*\[1\.5, 2\]"):
        out(sess, [1.5, 2])
    with pytest.raises(onnxpy.InvalidArgument, match="not integers"):
        out(sess, [float("nan")])


def test_integer_range_is_checked():
    sess = identity(T.UINT8, [2])
    with pytest.raises(onnxpy.InvalidArgument, match=r"'X'.*\[300, 1\].*uint8.*\[0, 255\]"):
        out(sess, [300, 1])
    with pytest.raises(onnxpy.InvalidArgument, match="range"):
        out(sess, [-1, 1])


def test_bool_input_takes_bools_only_and_numbers_take_no_bools():
    np.testing.assert_array_equal(out(identity(T.BOOL, [2]), [True, False]), [True, False])
    with pytest.raises(onnxpy.InvalidArgument, match=r"'X' expects bools.*\[1, 0\]"):
        out(identity(T.BOOL, [2]), [1, 0])
    with pytest.raises(onnxpy.InvalidArgument, match="got bools"):
        out(identity(T.FLOAT, [2]), [True, False])


def test_ragged_lists_and_strings_for_numbers_are_refused():
    sess = identity(T.FLOAT, ["N", "M"])
    with pytest.raises(onnxpy.InvalidArgument, match=r"'X'.*ragged.*\[\[1, 2\], \[3\]\]"):
        out(sess, [[1, 2], [3]])
    with pytest.raises(onnxpy.InvalidArgument, match=r"'X' expects numbers.*strings"):
        out(sess, [["1", "2"]])


def test_strings_for_a_string_input():
    y = out(identity(T.STRING, [2]), ["a", "bc"])
    assert y.dtype == object and y.tolist() == ["a", "bc"]
    with pytest.raises(onnxpy.InvalidArgument, match="expects strings"):
        out(identity(T.STRING, [2]), [1, 2])


def test_rank_and_dims_still_checked_after_conversion():
    sess = identity(T.FLOAT, [1, 4])
    with pytest.raises(onnxpy.InvalidArgument, match="Invalid rank"):
        out(sess, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(onnxpy.InvalidArgument, match="invalid dimensions"):
        out(sess, [[1.0, 2.0]])


def test_numpy_arrays_of_another_dtype_stay_refused():
    with pytest.raises(onnxpy.InvalidArgument, match="Unexpected input data type"):
        out(identity(T.FLOAT, [2]), np.array([1.0, 2.0]))  # float64


def test_other_objects_are_refused():
    with pytest.raises(onnxpy.InvalidArgument, match="got dict"):
        out(identity(T.FLOAT, [2]), {"a": 1})


def test_iris_forest_from_a_list_agrees_with_scikit_learn():
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    clf = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    sess = onnxpy.InferenceSession(to_onnx(clf, x[:1].astype(np.float32)).SerializeToString())
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    labels = sess.run(["output_label"], {sess.get_inputs()[0].name: rows})[0]
    np.testing.assert_array_equal(labels, clf.predict(np.array(rows, np.float32)))
