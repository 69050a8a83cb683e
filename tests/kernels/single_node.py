"""Run one ONNX node through an onnxpy session (outputs declared float, shape unknown)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

import onnxpy
from onnxpy.types import elem_type_of


def run(op, inputs, opset, outputs=1, **attrs):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    node = helper.make_node(op, names, [f"y{i}" for i in range(outputs)], **attrs)
    graph_inputs = [
        helper.make_tensor_value_info(n, elem_type_of(np.asarray(v).dtype), np.shape(v))
        for n, v in zip(names, inputs, strict=True)
        if n
    ]
    graph_outputs = [
        helper.make_tensor_value_info(f"y{i}", onnx.TensorProto.FLOAT, [None])
        for i in range(outputs)
    ]
    graph = helper.make_graph([node], "g", graph_inputs, graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    sess = onnxpy.InferenceSession(model.SerializeToString())
    feeds = {n: np.asarray(v) for n, v in zip(names, inputs, strict=True) if n}
    res = sess.run(None, feeds)
    return res[0] if outputs == 1 else res
