"""``onnxpy quantize``: modes, calibration files, report, target agreement, exit codes."""

from __future__ import annotations

import json

import numpy as np
import onnx

import onnxpy
from onnxpy.cli import main
from tests.quantization import models


def _npz(tmp_path, kind="cnn", n=16):
    shape = models.SHAPES[kind]
    x = np.random.default_rng(3).standard_normal((n, *shape[1:])).astype(np.float32)
    path = tmp_path / "cal.npz"
    np.savez(path, x=x)
    return str(path)


def test_static_with_report_json(tmp_path, capsys):
    f = models.save(models.cnn(), tmp_path / "cnn.onnx")
    out, js = tmp_path / "q.onnx", tmp_path / "r.json"
    code = main(
        ["quantize", f, "-o", str(out), "--mode", "static", "--calibration-data", _npz(tmp_path),
         "--per-channel", "--report", "--report-json", str(js)]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr()
    assert "conv1" in text.out and "top-1 agreement" in text.out
    assert "calibrating" not in text.err  # no progress bar outside a terminal
    data = json.loads(js.read_text())
    assert any(n["node"] == "conv2" and n["quantized"] for n in data["nodes"])
    onnxpy.InferenceSession(str(out))


def test_folder_of_feeds_and_qoperator(tmp_path):
    f = models.save(models.cnn(), tmp_path / "cnn.onnx")
    d = tmp_path / "feeds"
    d.mkdir()
    for i, feed in enumerate(models.feeds("cnn", 3)):
        np.savez(d / f"{i}.npz", **feed)
    out = tmp_path / "q.onnx"
    args = ["quantize", f, "-o", str(out), "--mode", "static", "--calibration-data", str(d)]
    assert main(args + ["--format", "qoperator", "--method", "percentile"]) == 0
    assert "QLinearConv" in {n.op_type for n in onnx.load(str(out)).graph.node}


def test_dynamic_target_agreement_and_exclude(tmp_path, capsys):
    f = models.save(models.gemm_mlp(), tmp_path / "m.onnx")
    out = tmp_path / "q.onnx"
    data = _npz(tmp_path, "gemm_mlp", 32)
    assert (
        main(["quantize", f, "-o", str(out), "--exclude", "fc2", "--calibration-data", data]) == 0
    )
    gemms = [n.name for n in onnx.load(str(out)).graph.node if n.op_type == "Gemm"]
    assert gemms == ["fc2"]
    assert (
        main(
            ["quantize", f, "-o", str(out), "--target-agreement", "0.9", "--calibration-data", data]
        )
        == 0
    )
    assert "top-1 agreement" in capsys.readouterr().out


def test_int4_and_fp16_modes(tmp_path):
    f = models.save(models.mlp(), tmp_path / "m.onnx")
    assert (
        main(
            ["quantize", f, "-o", str(tmp_path / "a.onnx"), "--mode", "int4", "--block-size", "16"]
        )
        == 0
    )
    assert main(["quantize", f, "-o", str(tmp_path / "b.onnx"), "--mode", "fp16"]) == 0
    b = onnx.load(str(tmp_path / "b.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in b.graph.initializer)


def test_usage_errors(tmp_path, capsys):
    f = models.save(models.cnn(), tmp_path / "cnn.onnx")
    assert main(["quantize", f, "-o", str(tmp_path / "q.onnx"), "--mode", "static"]) == 3
    assert "needs --calibration-data" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, nope=np.zeros((2, 2), np.float32))
    args = [
        "quantize",
        f,
        "-o",
        str(tmp_path / "q.onnx"),
        "--mode",
        "static",
        "--calibration-data",
        str(bad),
    ]
    assert main(args) == 3
    assert "not an input" in capsys.readouterr().err
    assert main(["quantize", f, "-o", str(tmp_path / "q.onnx"), "--mode", "nope"]) == 2
