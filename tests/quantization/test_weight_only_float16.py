"""Weight-only blocked int4/int8 against a hand dequantization; float16 conversion and the
float32-inside execution of float16 models."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

import onnxpy
from onnxpy import quantization as oq
from onnxpy.quantization.weight_only import blocked_quantize
from tests.quantization import models


def test_blocked_quantize_by_hand():
    w = np.array([[1.0, -2.0], [0.5, 4.0], [-0.25, 1.0], [7.0, 0.0]], dtype=np.float32)
    q, scale, zero = blocked_quantize(w, 4, 2, symmetric=True)
    assert zero is None and q.dtype == ml_dtypes.int4
    np.testing.assert_allclose(scale, [[1 / 7, 4 / 7], [1.0, 1 / 7]], rtol=1e-6)
    np.testing.assert_array_equal(q.astype(int), [[7, -4], [4, 7], [0, 7], [7, 0]])
    q8, s8, z8 = blocked_quantize(w, 8, 2, symmetric=False)
    assert q8.dtype == np.uint8 and z8.shape == (2, 2)
    back = (q8.astype(float) - np.repeat(z8, 2, axis=0)) * np.repeat(s8, 2, axis=0)
    assert np.abs(back - w).max() <= s8.max() / 2 + 1e-6


@pytest.mark.parametrize("bits,symmetric", [(4, True), (4, False), (8, True)])
def test_weight_only_model(tmp_path, bits, symmetric):
    path = models.save(models.mlp(), tmp_path / "m.onnx")
    out = tmp_path / "q.onnx"
    oq.quantize_weight_only(path, out, bits=bits, block_size=16, symmetric=symmetric)
    m = onnx.load(str(out))
    assert next(o.version for o in m.opset_import if o.domain == "") >= 21
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    q, s = inits["w1_quantized"], inits["w1_scale"]
    assert s.shape == (3, 64)
    z = inits.get("w1_zero_point")
    zz = 0 if z is None else np.repeat(z.astype(float), 16, axis=0)
    w1 = (q.astype(float) - zz) * np.repeat(s, 16, axis=0)
    feed = models.feeds("mlp", 1)[0]
    expected = (
        np.maximum(feed["x"] @ w1 + inits["b1"], 0)
        @ (
            (
                inits["w2_quantized"].astype(float)
                - (0 if z is None else np.repeat(inits["w2_zero_point"].astype(float), 16, axis=0))
            )
            * np.repeat(inits["w2_scale"], 16, axis=0)
        )
        + inits["b2"]
    )
    got = onnxpy.InferenceSession(str(out)).run(None, feed)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(onnxpy.InvalidArgument):
        oq.quantize_weight_only(path, out, bits=3)


def test_float16_keeps_float32_io_and_blocks_ops(tmp_path):
    model = models.cnn()
    half = oq.convert_float_to_float16(model, op_block_list=["Softmax"])
    onnx.checker.check_model(half)
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    inits = {t.name: t.data_type for t in half.graph.initializer}
    assert inits["w1"] == TensorProto.FLOAT16
    softmax = next(n for n in half.graph.node if n.op_type == "Softmax")
    producer = next(n for n in half.graph.node if softmax.input[0] in n.output)
    assert producer.op_type == "Cast"  # the blocked node reads float32
    plain = oq.convert_float_to_float16(model, keep_io_types=False)
    assert plain.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16


def test_float16_model_computes_in_float32_inside(tmp_path):
    model = models.cnn()
    half = oq.convert_float_to_float16(model)
    so = onnxpy.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    sess = onnxpy.InferenceSession(half.SerializeToString(), sess_options=so)
    opt = onnx.load(str(tmp_path / "opt.onnx"))
    assert all(t.data_type != TensorProto.FLOAT16 for t in opt.graph.initializer)
    assert "Cast" not in {n.op_type for n in opt.graph.node}  # float32 I/O: no cast at all
    # The result: the float model with float16-rounded weights, computed in float32.
    rounded = onnx.ModelProto()
    rounded.CopyFrom(model)
    for t in rounded.graph.initializer:
        v = numpy_helper.to_array(t).astype(np.float16).astype(np.float32)
        t.CopyFrom(numpy_helper.from_array(v, t.name))
    ref = onnxpy.InferenceSession(rounded.SerializeToString())
    for feed in models.feeds("cnn", 2):
        np.testing.assert_allclose(
            sess.run(None, feed)[0], ref.run(None, feed)[0], rtol=1e-5, atol=1e-6
        )


def test_float16_io_model_casts_once_at_each_end(tmp_path):
    half = oq.convert_float_to_float16(models.mlp(), keep_io_types=False)
    so = onnxpy.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    sess = onnxpy.InferenceSession(half.SerializeToString(), sess_options=so)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert ops.count("Cast") == 2
    feed = {"x": models.feeds("mlp", 1)[0]["x"].astype(np.float16)}
    assert sess.run(None, feed)[0].dtype == np.float16


def test_float16_with_a_comparison_is_left_per_operator():
    """A float16 value reaching Less keeps per-operator float16 rounding (its meaning)."""
    from onnx import helper

    nodes = [
        helper.make_node("Mul", ["x", "x"], ["sq"]),
        helper.make_node("Less", ["sq", "t"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [3])],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, [3])],
        [numpy_helper.from_array(np.array([1.0, 2.0, 4.0], np.float16), "t")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    x = np.array([0.9995, 1.4141, 2.0], np.float16)
    got = onnxpy.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, (x * x) < np.array([1.0, 2.0, 4.0], np.float16))
