"""QDQ and dynamic-quantization fusions: which kernels a quantized model runs on, and the same
outputs as the unfused graph (within one output step; integer paths are exact)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime import quantization as ortq

import onnxpy
from onnxpy import quantization as oq
from tests.quantization import models


def _optimized(path, tmp_path) -> tuple[Counter, onnxpy.InferenceSession]:
    so = onnxpy.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    sess = onnxpy.InferenceSession(str(path), sess_options=so)
    return Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node), sess


def _unfused(path):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxpy.InferenceSession(str(path), sess_options=so)


def _same(path, sess, kind, atol):
    plain = _unfused(path)
    for feed in models.feeds(kind, 3, seed=70):
        np.testing.assert_allclose(
            sess.run(None, feed)[0], plain.run(None, feed)[0], atol=atol, rtol=0
        )


@pytest.mark.parametrize("writer", ["onnxpy", "onnxruntime"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_qdq_cnn_runs_on_quantized_kernels(tmp_path, writer, per_channel):
    f = models.save(models.cnn(), tmp_path / "cnn.onnx")
    q = tmp_path / "q.onnx"
    if writer == "onnxpy":
        oq.quantize_static(
            f, q, models.Reader("cnn"), per_channel=per_channel, activation_type=oq.QuantType.QUInt8
        )
    else:
        ortq.quantize_static(
            f,
            str(q),
            models.Reader("cnn"),
            per_channel=per_channel,
            activation_type=ortq.QuantType.QUInt8,
        )
    ops, sess = _optimized(q, tmp_path)
    assert ops["QLinearConv"] == 2 and ops["QGemm"] == 1 and ops["QLinearAdd"] == 1
    assert ops["QLinearGlobalAveragePool"] == 1 and ops["QLinearSoftmax"] == 1
    assert ops["Conv"] == 0 and ops["DequantizeLinear"] == 1 and ops["QuantizeLinear"] == 1
    _same(q, sess, "cnn", 1 / 256 + 1e-6)


def test_qdq_matmul_without_output_q_becomes_integer_to_float(tmp_path):
    f = models.save(models.mlp(), tmp_path / "m.onnx")
    q = tmp_path / "q.onnx"
    oq.quantize_static(
        f,
        q,
        models.Reader("mlp"),
        op_types_to_quantize=["MatMul"],
        extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"]},
    )
    ops, sess = _optimized(q, tmp_path)
    assert ops["MatMulIntegerToFloat"] == 2 and ops["MatMul"] == 0
    _same(q, sess, "mlp", 1e-5)


@pytest.mark.parametrize("writer", ["onnxpy", "onnxruntime"])
def test_dynamic_chain_becomes_matmul_integer_to_float(tmp_path, writer):
    f = models.save(models.mlp(), tmp_path / "m.onnx")
    q = tmp_path / "q.onnx"
    (oq.quantize_dynamic if writer == "onnxpy" else ortq.quantize_dynamic)(f, str(q))
    ops, sess = _optimized(q, tmp_path)
    # Each activation is quantized for one product only: quantize + product in one kernel.
    assert ops["DynamicQuantizeMatMul"] == 2 and ops["DynamicQuantizeLinear"] == 0
    assert ops["MatMulInteger"] == 0 and ops["Cast"] == 0
    _same(q, sess, "mlp", 1e-5)


def test_shared_dynamic_quantization_stays_shared(tmp_path):
    """x quantized once for two products (BERT's Q/K/V): one DynamicQuantizeLinear, two
    MatMulIntegerToFloat."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((48, 8)).astype(np.float32), "wa"),
        numpy_helper.from_array(rng.standard_normal((48, 8)).astype(np.float32), "wb"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "wa"], ["a"], name="ma"),
        helper.make_node("MatMul", ["x", "wb"], ["b"], name="mb"),
        helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 8])],
        inits,
    )
    f = tmp_path / "f.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(f))
    q = tmp_path / "q.onnx"
    oq.quantize_dynamic(str(f), str(q))
    ops, sess = _optimized(q, tmp_path)
    assert ops["DynamicQuantizeLinear"] == 1 and ops["MatMulIntegerToFloat"] == 2
    _same(q, sess, "mlp", 1e-5)


def test_bias_in_another_scale_is_not_fused(tmp_path):
    """Conv(DQ(x), DQ(W), DQ(B)) where B's scale is not x_scale * w_scale stays unfused."""
    x_s, w_s = 0.1, 0.02
    inits = [
        numpy_helper.from_array(np.float32(x_s), "xs"),
        numpy_helper.from_array(np.uint8(3), "xz"),
        numpy_helper.from_array(np.ones((2, 1, 1, 1), np.int8), "wq"),
        numpy_helper.from_array(np.float32(w_s), "ws"),
        numpy_helper.from_array(np.int8(0), "wz"),
        numpy_helper.from_array(np.array([5, -5], np.int32), "bq"),
        numpy_helper.from_array(np.float32(x_s * w_s * 3), "bs"),
        numpy_helper.from_array(np.int32(0), "bz"),
        numpy_helper.from_array(np.float32(0.05), "ys"),
        numpy_helper.from_array(np.uint8(128), "yz"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
        helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"]),
        helper.make_node("Conv", ["xd", "wd", "bd"], ["c"]),
        helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 2, 3, 3])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "c.onnx"
    onnx.save(m, str(path))
    ops, sess = _optimized(path, tmp_path)
    assert ops["QLinearConv"] == 0
    x = np.arange(9, dtype=np.uint8).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(
        sess.run(None, {"x": x})[0], _unfused(path).run(None, {"x": x})[0]
    )
