"""Small models built with onnx.helper for the runtime tests."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def model(nodes, inputs, outputs, initializers=(), opset=OPSET, **kw):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kw)
    m.ir_version = 8
    return m


def add_relu(shape=("N", 3)):
    """Y = Relu(X + B) with B = [1, -2, 3]; also exposes the intermediate 'S'."""
    b = numpy_helper.from_array(np.array([1.0, -2.0, 3.0], dtype=np.float32), "B")
    return model(
        [
            helper.make_node("Add", ["X", "B"], ["S"], name="add"),
            helper.make_node("Relu", ["S"], ["Y"], name="relu"),
        ],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, list(shape))],
        [b],
    )


def two_inputs():
    """Z = A + B with both inputs fed; W = A * B."""
    return model(
        [
            helper.make_node("Add", ["A", "B"], ["Z"], name="add"),
            helper.make_node("Mul", ["A", "B"], ["W"], name="mul"),
        ],
        [
            helper.make_tensor_value_info("A", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("B", TensorProto.FLOAT, [None, 4]),
        ],
        [
            helper.make_tensor_value_info("Z", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, ["N", 4]),
        ],
    )
