"""Small float models for the quantization tests, built with onnx.helper (no exporter), with
seeded weights, and readers of seeded calibration data."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxpy.quantization import CalibrationDataReader

F = TensorProto.FLOAT


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv-Relu-MaxPool-Conv-Relu + residual Add - GlobalAveragePool - Flatten - Gemm - Softmax."""
    rng = np.random.default_rng(seed)
    inits = [
        _init("w1", rng.standard_normal((6, 2, 3, 3)) * 0.4),
        _init("b1", rng.standard_normal(6) * 0.1),
        _init("w2", rng.standard_normal((6, 6, 3, 3)) * 0.2),
        _init("b2", rng.standard_normal(6) * 0.1),
        _init("wf", rng.standard_normal((5, 6)) * 0.5),
        _init("bf", rng.standard_normal(5) * 0.1),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node(
            "MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["p1", "r2"], ["s"], name="add"),
        helper.make_node("GlobalAveragePool", ["s"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=1),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", F, ["n", 2, 8, 8])],
        [helper.make_tensor_value_info("y", F, ["n", 5])],
        inits,
    )


def mlp(seed: int = 0, k: int = 48, hidden: int = 64, n: int = 10) -> onnx.ModelProto:
    """x [batch, seq, k] -> MatMul+Add -> Relu -> MatMul+Add (transformer-style 3-D MatMuls)."""
    rng = np.random.default_rng(seed)
    inits = [
        _init("w1", rng.standard_normal((k, hidden)) * 0.2),
        _init("b1", rng.standard_normal(hidden) * 0.1),
        _init("w2", rng.standard_normal((hidden, n)) * 0.2),
        _init("b2", rng.standard_normal(n) * 0.1),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
        helper.make_node("Relu", ["hb"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["o"], name="mm2"),
        helper.make_node("Add", ["o", "b2"], ["y"], name="bias2"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", F, ["b", "s", k])],
        [helper.make_tensor_value_info("y", F, ["b", "s", n])],
        inits,
    )


def gemm_mlp(seed: int = 0) -> onnx.ModelProto:
    """x [n, 20] -> Gemm -> Relu -> Gemm (skl2onnx / Keras style: Gemm, not MatMul)."""
    rng = np.random.default_rng(seed)
    inits = [
        _init("w1", rng.standard_normal((20, 32)) * 0.3),
        _init("b1", rng.standard_normal(32) * 0.1),
        _init("w2", rng.standard_normal((4, 32)) * 0.3),
        _init("b2", rng.standard_normal(4) * 0.1),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", F, ["n", 20])],
        [helper.make_tensor_value_info("y", F, ["n", 4])],
        inits,
    )


SHAPES = {"cnn": (2, 2, 8, 8), "mlp": (2, 3, 48), "gemm_mlp": (4, 20)}
BUILDERS = {"cnn": cnn, "mlp": mlp, "gemm_mlp": gemm_mlp}


def feeds(kind: str, count: int = 8, seed: int = 100) -> list[dict[str, np.ndarray]]:
    shape = SHAPES[kind]
    return [
        {"x": np.random.default_rng(seed + i).standard_normal(shape).astype(np.float32)}
        for i in range(count)
    ]


class Reader(CalibrationDataReader):
    """The reader users write for onnxruntime: get_next() until None."""

    def __init__(self, kind: str, count: int = 8) -> None:
        self.data = feeds(kind, count)
        self.index = 0

    def get_next(self):
        if self.index >= len(self.data):
            return None
        self.index += 1
        return self.data[self.index - 1]


def save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, str(path))
    return str(path)
