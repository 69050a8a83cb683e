"""Floating-point exceptions inside a run are ONNX semantics (inf, nan), never warnings or
errors, whatever NumPy error state the caller has set; and the caller's state is back after
the run, whether it succeeded or a node failed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxpy as rt


def _divide_then_reshape():
    nodes = [
        helper.make_node("Div", ["X", "Z"], ["Q"]),
        helper.make_node("Reshape", ["Q", "S"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("Z", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("S", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return rt.InferenceSession(model.SerializeToString())


FEEDS = {
    "X": np.array([1.0, 0.0, -1.0], np.float32),
    "Z": np.zeros(3, np.float32),
    "S": np.array([3], np.int64),
}


@pytest.mark.parametrize("caller", [None, "warn", "raise"])
def test_inf_and_nan_without_warnings_in_any_caller_state(caller):
    sess = _divide_then_reshape()
    with warnings.catch_warnings(), np.errstate(all=caller or "warn"):
        warnings.simplefilter("error")
        before = np.geterr()
        (y,) = sess.run(None, FEEDS)
        (again,) = sess.run(None, FEEDS)
        assert np.geterr() == before
    np.testing.assert_array_equal(y, [np.inf, np.nan, -np.inf])
    np.testing.assert_array_equal(again, y)


def test_caller_state_is_back_after_a_failing_node():
    sess = _divide_then_reshape()
    with np.errstate(divide="raise"):
        with pytest.raises(rt.OnnxpyError, match="Reshape"):
            sess.run(None, {**FEEDS, "S": np.array([4], np.int64)})  # 3 values into 4
        assert np.geterr()["divide"] == "raise"
        with pytest.raises(FloatingPointError):
            np.float32(1) / np.zeros(1, np.float32)
