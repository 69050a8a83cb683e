"""The quantization report and the target-agreement search."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from onnxpy import quantization as oq
from onnxpy.quantization import static
from onnxpy.quantization.model_io import ensure_names
from tests.quantization import models


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    f = models.save(models.cnn(), d / "cnn.onnx")
    q = str(d / "q.onnx")
    oq.quantize_static(f, q, models.Reader("cnn"), activation_type=oq.QuantType.QUInt8)
    return f, q


def test_report_per_node(cnn_files):
    f, q = cnn_files
    r = oq.report(f, q, models.feeds("cnn", 6, seed=50))
    by_node = {e.node: e for e in r.nodes}
    for name in ("conv1", "conv2", "fc", "add"):
        assert by_node[name].quantized
        assert 15 < by_node[name].sqnr_db < 80 and by_node[name].max_abs > 0
    # A node's own added error is never worse than its output's total.
    assert all(e.added_db >= e.sqnr_db - 1e-9 for e in r.nodes)
    assert r.metric == "top-1 agreement" and 0.8 <= r.value <= 1.0
    assert 0.99 < r.cosine <= 1.0 and r.samples == 6
    assert r.size_before > 0 and r.size_after > 0
    data = json.loads(r.to_json())
    assert {n["node"] for n in data["nodes"]} >= {"conv1", "fc"}
    assert "conv1" in r.table()


def test_report_sqnr_by_hand(cnn_files):
    """conv1's SQNR recomputed from the two models' values of its output."""
    import onnxpy

    f, q = cnn_files
    feeds = models.feeds("cnn", 2, seed=51)
    r = oq.report(f, q, feeds)
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
    fs, qs = (
        onnxpy.InferenceSession(f, sess_options=so),
        onnxpy.InferenceSession(q, sess_options=so),
    )
    sig = noise = 0.0
    for feed in feeds:
        ref = fs.run(["r1"], feed)[0].astype(np.float64)  # conv1 + its folded Relu
        got = qs.run(["r1_DequantizeLinear_Output"], feed)[0]
        sig += float((ref**2).sum())
        noise += float(((got - ref) ** 2).sum())
    conv1 = next(e for e in r.nodes if e.node == "conv1")
    assert conv1.sqnr_db == pytest.approx(10 * math.log10(sig / noise), rel=1e-6)


def test_meet_target_leaves_the_worst_node_in_float(tmp_path):
    f = models.save(models.cnn(), tmp_path / "cnn.onnx")
    model = models.cnn()
    ensure_names(model)
    s = static.static_settings(activation_type=oq.QuantType.QUInt8)
    # A deliberately bad range for conv2's output: that node adds most of the error.
    s.options.tensor_overrides = {"r2": [{"rmin": 0.0, "rmax": 1000.0}]}
    tensors = static._tensors_to_calibrate(model, s)
    ranges = static.calibrate(
        f, models.Reader("cnn"), oq.CalibrationMethod.MinMax, tensors, s.options
    )

    def build(excluded):
        s.nodes_to_exclude = set(excluded)
        m = models.cnn()
        return static.build_static(m, ranges, s)

    feeds = models.feeds("cnn", 8, seed=60)
    before = oq.report(f, build(set()), feeds)
    assert before.worst(1)[0].node == "conv2"
    model_out, r = oq.meet_target(f, build, feeds, target=0.99999)
    assert r.excluded[0] == "conv2"
    assert r.cosine > before.cosine
