"""Small models for the onnxruntime-compatibility tests, built with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper

vi = helper.make_tensor_value_info
W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)


def model(nodes, inputs, outputs, initializers=(), opset=17, ir=8, extra=(), meta=None):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra])
    m.ir_version = ir
    for key, value in (meta or {}).items():
        m.metadata_props.add(key=key, value=value)
    return m


def mul_w(shape=(3, 2)) -> onnx.ModelProto:
    """Y = X * W with the initializer W = [[1, 2], [3, 4], [5, 6]]."""
    return model(
        [helper.make_node("Mul", ["X", "W"], ["Y"], name="mul")],
        [vi("X", T.FLOAT, list(shape))],
        [vi("Y", T.FLOAT, list(shape))],
        [numpy_helper.from_array(W, "W")],
    )


def matmul_dynamic() -> onnx.ModelProto:
    """Y[N, 1] = X[N, 2] @ [[1], [2]]."""
    w = numpy_helper.from_array(np.array([[1.0], [2.0]], dtype=np.float32), "W")
    return model(
        [helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")],
        [vi("X", T.FLOAT, ["N", 2])],
        [vi("Y", T.FLOAT, ["N", 1])],
        [w],
    )


def identity_string() -> onnx.ModelProto:
    return model(
        [helper.make_node("Identity", ["S"], ["T"])],
        [vi("S", T.STRING, [2, 2])],
        [vi("T", T.STRING, [2, 2])],
    )


def add_mul_add() -> onnx.ModelProto:
    """Y = (A + B) * C + D, nodes named add_0, mul_0, add_1."""
    return model(
        [
            helper.make_node("Add", ["A", "B"], ["s"], name="add_0"),
            helper.make_node("Mul", ["s", "C"], ["p"], name="mul_0"),
            helper.make_node("Add", ["p", "D"], ["Y"], name="add_1"),
        ],
        [vi(n, T.FLOAT, [3]) for n in "ABCD"],
        [vi("Y", T.FLOAT, [3])],
    )


def seq_construct() -> onnx.ModelProto:
    seq = helper.make_sequence_type_proto(helper.make_tensor_type_proto(T.INT64, None))
    return model(
        [helper.make_node("SequenceConstruct", ["A", "B"], ["S"])],
        [vi("A", T.INT64, [2]), vi("B", T.INT64, [2])],
        [helper.make_value_info("S", seq)],
    )


def free_dims() -> onnx.ModelProto:
    """Y = Abs(X), X[batch (DATA_BATCH), chan (DATA_CHANNEL), 5]."""
    x = vi("X", T.FLOAT, ["batch", "chan", 5])
    dims = x.type.tensor_type.shape.dim
    dims[0].denotation = "DATA_BATCH"
    dims[1].denotation = "DATA_CHANNEL"
    return model(
        [helper.make_node("Abs", ["X"], ["Y"])], [x], [vi("Y", T.FLOAT, ["batch", "chan", 5])]
    )


def pad_external(location: str = "pads.bin") -> onnx.ModelProto:
    """Y = Pad(X, pads) where the int64 'pads' initializer lives in a file that is not there."""
    pads = onnx.TensorProto(name="pads", data_type=T.INT64, dims=[4])
    pads.data_location = T.EXTERNAL
    for key, value in {"location": location, "offset": "8", "length": "32"}.items():
        pads.external_data.add(key=key, value=value)
    return model(
        [helper.make_node("Pad", ["X", "pads"], ["Y"])],
        [vi("X", T.FLOAT, [2, 2])],
        [vi("Y", T.FLOAT, [2, 4])],
        [pads],
    )


def lora_model() -> onnx.ModelProto:
    """out = x @ (W + a @ b), with overridable a[4, 2] and b[2, 4] zero by default."""
    w = np.arange(1, 17, dtype=np.float32).reshape(4, 4)
    return model(
        [
            helper.make_node("MatMul", ["lora_a", "lora_b"], ["ab"]),
            helper.make_node("Add", ["W", "ab"], ["w_eff"]),
            helper.make_node("MatMul", ["x", "w_eff"], ["out"]),
        ],
        [vi("x", T.FLOAT, [4, 4]), vi("lora_a", T.FLOAT, [4, 2]), vi("lora_b", T.FLOAT, [2, 4])],
        [vi("out", T.FLOAT, [4, 4])],
        [
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.zeros((4, 2), np.float32), "lora_a"),
            numpy_helper.from_array(np.zeros((2, 4), np.float32), "lora_b"),
        ],
    )


def mlp_with_weights(seed: int = 0) -> onnx.ModelProto:
    """Y = Relu(X @ W1 + B1) @ W2; initializers of 1024 (W1), 128 (B1) and 512 (W2) bytes."""
    rng = np.random.default_rng(seed)
    return model(
        [
            helper.make_node("MatMul", ["X", "W1"], ["h"]),
            helper.make_node("Add", ["h", "B1"], ["hb"]),
            helper.make_node("Relu", ["hb"], ["r"]),
            helper.make_node("MatMul", ["r", "W2"], ["Y"]),
        ],
        [vi("X", T.FLOAT, ["N", 8])],
        [vi("Y", T.FLOAT, ["N", 4])],
        [
            numpy_helper.from_array(rng.standard_normal((8, 32)).astype(np.float32), "W1"),
            numpy_helper.from_array(rng.standard_normal((32,)).astype(np.float32), "B1"),
            numpy_helper.from_array(rng.standard_normal((32, 4)).astype(np.float32), "W2"),
        ],
    )
