"""Interop both ways: models quantized by onnxpy run in onnxruntime, and models quantized by
onnxruntime.quantization run in onnxpy, with outputs within one quantization step of the
output (float rounding only, for outputs that are not quantized)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnxruntime import quantization as ortq

import onnxpy
from onnxpy import quantization as oq
from tests.quantization import models


def _step(path: str, output: str) -> float:
    """The output's quantization step when it is dequantized from integers, else 0."""
    m = onnx.load(path)
    inits = {t.name: t for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and output in n.output:
            return float(numpy_helper.to_array(inits[n.input[1]]).max())
    return 0.0


def assert_same(path: str, kind: str, ort_level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL) -> None:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort_level
    ort_sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ours = onnxpy.InferenceSession(path)
    step = _step(path, "y")
    for feed in models.feeds(kind, 3, seed=500):
        expected = ort_sess.run(None, feed)[0]
        got = ours.run(None, feed)[0]
        assert got.dtype == expected.dtype and got.shape == expected.shape
        scale = float(np.abs(expected).max())
        tol = step * 1.001 + 1e-6 if step else 1e-4 * scale + 1e-6
        np.testing.assert_allclose(got, expected, rtol=0, atol=tol)


KINDS = ["cnn", "mlp", "gemm_mlp"]


@pytest.fixture(scope="module")
def float_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("float")
    return {k: models.save(models.BUILDERS[k](), d / f"{k}.onnx") for k in KINDS}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("per_channel", [False, True])
def test_onnxpy_dynamic_runs_in_onnxruntime(float_models, tmp_path, kind, per_channel):
    out = str(tmp_path / "q.onnx")
    oq.quantize_dynamic(float_models[kind], out, per_channel=per_channel)
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert "DynamicQuantizeLinear" in ops
    assert ops & {"MatMulInteger", "ConvInteger"}
    if kind == "gemm_mlp":  # Gemm is quantized too (onnxruntime's dynamic list leaves it out)
        assert "Gemm" not in ops
    assert_same(out, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "fmt,per_channel,activation",
    [
        (oq.QuantFormat.QDQ, False, oq.QuantType.QUInt8),
        (oq.QuantFormat.QDQ, True, oq.QuantType.QInt8),
        (oq.QuantFormat.QOperator, False, oq.QuantType.QUInt8),
        (oq.QuantFormat.QOperator, True, oq.QuantType.QUInt8),
    ],
)
def test_onnxpy_static_runs_in_onnxruntime(
    float_models, tmp_path, kind, fmt, per_channel, activation
):
    out = str(tmp_path / "q.onnx")
    oq.quantize_static(
        float_models[kind],
        out,
        models.Reader(kind),
        quant_format=fmt,
        per_channel=per_channel,
        activation_type=activation,
    )
    ops = {n.op_type for n in onnx.load(out).graph.node}
    if fmt == oq.QuantFormat.QDQ:
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    else:
        assert ops & {"QLinearConv", "QLinearMatMul", "QGemm"}
    assert_same(out, kind)


@pytest.mark.parametrize("kind", ["mlp", "gemm_mlp"])
def test_onnxpy_weight_only_int4_runs_in_onnxruntime(float_models, tmp_path, kind):
    out = str(tmp_path / "q.onnx")
    oq.quantize_weight_only(float_models[kind], out, bits=4, block_size=16)
    dq = [n for n in onnx.load(out).graph.node if n.op_type == "DequantizeLinear"]
    assert dq and all(any(a.name == "block_size" and a.i == 16 for a in n.attribute) for n in dq)
    # onnxruntime's extended optimizations turn DQ + MatMul into MatMulNBits, which on CPU
    # also quantizes the activations (2e-2 off here): the model's own meaning is the basic one.
    assert_same(out, kind, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)


@pytest.mark.parametrize("kind", KINDS)
def test_onnxpy_float16_runs_in_onnxruntime(float_models, tmp_path, kind):
    out = str(tmp_path / "h.onnx")
    onnx.save(oq.convert_float_to_float16(float_models[kind]), out)
    assert_same(out, kind)


# -- onnxruntime.quantization -> onnxpy ----------------------------------------------------------


class OrtReader(ortq.CalibrationDataReader):
    """A reader written against onnxruntime's own base class."""

    def __init__(self, kind: str) -> None:
        self.it = iter(models.feeds(kind, 8))

    def get_next(self):
        return next(self.it, None)


@pytest.mark.parametrize("kind", KINDS)
def test_onnxruntime_dynamic_runs_in_onnxpy(float_models, tmp_path, kind):
    out = str(tmp_path / "q.onnx")
    ortq.quantize_dynamic(float_models[kind], out)
    assert_same(out, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "fmt,per_channel,activation",
    [
        (ortq.QuantFormat.QDQ, False, ortq.QuantType.QInt8),
        (ortq.QuantFormat.QDQ, True, ortq.QuantType.QUInt8),
        (ortq.QuantFormat.QOperator, False, ortq.QuantType.QUInt8),
        (ortq.QuantFormat.QOperator, True, ortq.QuantType.QInt8),
    ],
)
def test_onnxruntime_static_runs_in_onnxpy(
    float_models, tmp_path, kind, fmt, per_channel, activation
):
    out = str(tmp_path / "q.onnx")
    ortq.quantize_static(
        float_models[kind],
        out,
        OrtReader(kind),
        quant_format=fmt,
        per_channel=per_channel,
        activation_type=activation,
    )
    if fmt == ortq.QuantFormat.QOperator and kind == "cnn":
        domains = {n.domain for n in onnx.load(out).graph.node}
        assert "com.microsoft" in domains  # QLinearAdd, QGemm, QLinearSoftmax, ...
    assert_same(out, kind)


@pytest.mark.slow  # onnxruntime's quantizer imports onnx_ir (~5 s)
@pytest.mark.parametrize("symmetric", [True, False])
def test_onnxruntime_matmul_nbits_runs_in_onnxpy(float_models, tmp_path, symmetric):
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(onnx.load(float_models["mlp"]), block_size=16, is_symmetric=symmetric)
    q.process()
    out = str(tmp_path / "nbits.onnx")
    q.model.save_model_to_file(out)
    assert "MatMulNBits" in {n.op_type for n in onnx.load(out).graph.node}
    assert_same(out, "mlp")


def test_onnxpy_reader_works_with_onnxruntime_quantizer(float_models, tmp_path):
    """Calibration code written for either library runs with the other."""
    out = str(tmp_path / "q.onnx")
    ortq.quantize_static(float_models["cnn"], out, models.Reader("cnn"))
    oq.quantize_static(float_models["cnn"], str(tmp_path / "p.onnx"), OrtReader("cnn"))
    assert_same(out, "cnn")
