"""What the quantizers write: structure, options, exclusions, config form, external data,
and accuracy against the float model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxpy
from onnxpy import quantization as oq
from tests.quantization import models


@pytest.fixture
def cnn_path(tmp_path):
    return models.save(models.cnn(), tmp_path / "cnn.onnx")


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _inits(path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def _max_error(float_path, quant_path, kind):
    f, q = onnxpy.InferenceSession(float_path), onnxpy.InferenceSession(str(quant_path))
    errs = []
    for feed in models.feeds(kind, 4, seed=900):
        a, b = f.run(None, feed)[0], q.run(None, feed)[0]
        errs.append(np.abs(a - b).max() / np.abs(a).max())
    return max(errs)


def test_qdq_structure_with_relus_folded(cnn_path, tmp_path):
    out = tmp_path / "q.onnx"
    oq.quantize_static(cnn_path, out, models.Reader("cnn"), activation_type=oq.QuantType.QUInt8)
    ops = _ops(out)
    assert ops["Relu"] == 0  # folded into the Conv outputs' ranges (asymmetric uint8)
    assert ops["Conv"] == 2 and ops["Gemm"] == 1
    inits = _inits(out)
    assert inits["w1_quantized"].dtype == np.int8 and inits["w1_zero_point"] == 0
    assert inits["b1_quantized"].dtype == np.int32
    assert inits["r1_zero_point"] == 0  # a Relu output's range starts at 0
    # MaxPool's output keeps its input's parameters (so it can run on the integers).
    assert inits["p1_scale"] == inits["r1_scale"]
    assert _max_error(cnn_path, out, "cnn") < 0.05


def test_symmetric_activations_keep_relus_and_zero_points(cnn_path, tmp_path):
    out = tmp_path / "q.onnx"
    oq.quantize_static(
        cnn_path, out, models.Reader("cnn"), extra_options={"ActivationSymmetric": True}
    )
    assert _ops(out)["Relu"] == 2
    zps = {k: v for k, v in _inits(out).items() if k.endswith("_zero_point")}
    # Softmax's output keeps its fixed [0, 1] range: 1/256 steps from -128.
    assert int(zps.pop("y_zero_point")) == -128
    assert all(int(np.max(np.abs(z))) == 0 for z in zps.values())


def test_weight_asymmetric_and_per_channel(cnn_path, tmp_path):
    out = tmp_path / "q.onnx"
    oq.quantize_static(
        cnn_path,
        out,
        models.Reader("cnn"),
        per_channel=True,
        weight_type=oq.QuantType.QUInt8,
        extra_options={"WeightSymmetric": False},
    )
    inits = _inits(out)
    assert inits["w1_scale"].shape == (6,) and inits["w1_quantized"].dtype == np.uint8
    assert np.any(inits["w1_zero_point"] != 0)
    assert _max_error(cnn_path, out, "cnn") < 0.05


def test_nodes_to_exclude_and_op_types(cnn_path, tmp_path):
    out = tmp_path / "q.onnx"
    oq.quantize_static(cnn_path, out, models.Reader("cnn"), nodes_to_exclude=["conv2"])
    graph = onnx.load(str(out)).graph
    conv2 = next(n for n in graph.node if n.name == "conv2")
    assert conv2.input[1] == "w2"  # still the float weight
    out2 = tmp_path / "q2.onnx"
    oq.quantize_static(cnn_path, out2, models.Reader("cnn"), op_types_to_quantize=["Gemm"])
    assert "w1_quantized" not in _inits(out2) and "wf_quantized" in _inits(out2)
    with pytest.raises(onnxpy.InvalidArgument, match="no node named"):
        oq.quantize_static(cnn_path, out2, models.Reader("cnn"), nodes_to_exclude=["nope"])


def test_qoperator_format(cnn_path, tmp_path):
    out = tmp_path / "q.onnx"
    oq.quantize_static(
        cnn_path,
        out,
        models.Reader("cnn"),
        quant_format=oq.QuantFormat.QOperator,
        activation_type=oq.QuantType.QUInt8,
    )
    ops = _ops(out)
    assert ops["QLinearConv"] == 2 and ops["QGemm"] == 1 and ops["QLinearAdd"] == 1
    assert ops["QLinearGlobalAveragePool"] == 1 and ops["QLinearSoftmax"] == 1
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 1
    assert _max_error(cnn_path, out, "cnn") < 0.05


def test_dynamic_covers_gemm_and_per_channel(tmp_path):
    path = models.save(models.gemm_mlp(), tmp_path / "m.onnx")
    out = tmp_path / "q.onnx"
    oq.quantize_dynamic(path, out, per_channel=True)
    ops = _ops(out)
    assert ops["MatMulInteger"] == 2 and ops["Gemm"] == 0 and ops["DynamicQuantizeLinear"] == 2
    assert _inits(out)["w1_scale"].shape == (32,)
    assert _max_error(path, out, "gemm_mlp") < 0.05
    out2 = tmp_path / "q2.onnx"
    oq.quantize_dynamic(path, out2, op_types_to_quantize=["MatMul"])
    assert _ops(out2)["Gemm"] == 2
    with pytest.raises(onnxpy.InvalidArgument):
        oq.quantize_dynamic(path, out2, weight_type=oq.QuantType.QInt4)


def test_config_form(cnn_path, tmp_path):
    out = tmp_path / "q.onnx"
    oq.quantize(cnn_path, out, oq.StaticQuantConfig(models.Reader("cnn"), per_channel=True))
    assert _inits(out)["w1_scale"].shape == (6,)
    out2 = tmp_path / "d.onnx"
    oq.quantize(cnn_path, out2, oq.DynamicQuantConfig())
    assert _ops(out2)["ConvInteger"] == 2


def test_external_data_in_and_out(tmp_path):
    """Weights in external files both ways (the form of models over 2 GB)."""
    src = tmp_path / "src"
    src.mkdir()
    path = str(src / "m.onnx")
    onnx.save(
        models.mlp(), path, save_as_external_data=True, location="m.weights", size_threshold=0
    )
    assert (src / "m.weights").exists()
    out = tmp_path / "q.onnx"
    oq.quantize_static(path, out, models.Reader("mlp"), use_external_data_format=True)
    assert (tmp_path / "q.onnx.data").exists()  # the 48 x 64 int8 weight is over 1 KB
    # (int8 activations calibrated on 8 batches: inputs outside that range clip)
    assert _max_error(path, out, "mlp") < 0.15
    out2 = tmp_path / "d.onnx"
    oq.quantize_dynamic(path, out2, use_external_data_format=True)
    assert (tmp_path / "d.onnx.data").exists()
    assert _max_error(path, out2, "mlp") < 0.05


def test_pre_process_keeps_outputs(cnn_path, tmp_path):
    out = tmp_path / "pre.onnx"
    oq.quant_pre_process(cnn_path, out)
    m = onnx.load(str(out))
    assert len(m.graph.value_info) > 0  # shapes recorded
    assert _max_error(cnn_path, out, "cnn") < 1e-5


def test_dynamic_quantizes_embedding_tables(tmp_path):
    """Gather of a constant table: int8 rows gathered, then dequantized; onnxruntime agrees."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    table = rng.standard_normal((50, 16)).astype(np.float32)
    w = rng.standard_normal((16, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"], name="embed"),
        helper.make_node("MatMul", ["e", "w"], ["y"], name="proj"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 4])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(w, "w")],
    )
    f = tmp_path / "e.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(f))
    out = tmp_path / "q.onnx"
    oq.quantize_dynamic(str(f), str(out))
    inits = _inits(out)
    assert inits["table_quantized"].dtype == np.int8 and "table" not in inits
    ids = {"ids": rng.integers(0, 50, (2, 7)).astype(np.int64)}
    ref = onnxpy.InferenceSession(str(f)).run(None, ids)[0]
    ours = onnxpy.InferenceSession(str(out)).run(None, ids)[0]
    theirs = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, ids)[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert np.abs(ours - ref).max() < 0.05 * np.abs(ref).max()


def test_bad_arguments_are_refused(cnn_path, tmp_path):
    out = tmp_path / "q.onnx"
    with pytest.raises(onnxpy.InvalidArgument, match="calibration data reader"):
        oq.quantize_static(cnn_path, out, None)
    with pytest.raises(onnxpy.NotImplemented, match="integer types"):
        oq.quantize_static(
            cnn_path, out, models.Reader("cnn"), activation_type=oq.QuantType.QFLOAT8E4M3FN
        )
    with pytest.raises(onnxpy.InvalidArgument, match="QuantFormat"):
        oq.quantize_static(cnn_path, out, models.Reader("cnn"), quant_format="QDQ")
    with pytest.raises(onnxpy.NoSuchFile):
        oq.quantize_dynamic(tmp_path / "missing.onnx", out)
