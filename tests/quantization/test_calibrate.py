"""Calibration ranges against NumPy over the same data, the reader protocol, the options."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpy
from onnxpy import quantization as oq
from onnxpy.quantization.calibrate import best_kl_bins
from tests.quantization import models


def _values(model, name, feeds):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = onnxpy.InferenceSession(model.SerializeToString(), sess_options=so)
    return [sess.run([name], f)[0] for f in feeds]


def test_reader_iterates_until_none():
    r = models.Reader("mlp", 3)
    assert len(list(r)) == 3
    assert r.get_next() is None


def test_minmax_is_the_extremes_of_every_batch():
    model = models.cnn()
    cal = oq.create_calibrator(model)
    cal.collect_data(models.Reader("cnn", 5))
    data = cal.compute_data()
    seen = _values(model, "c2", models.feeds("cnn", 5))
    assert data["c2"].lowest == np.float32(min(v.min() for v in seen))
    assert data["c2"].highest == np.float32(max(v.max() for v in seen))
    assert data["x"].lowest == min(f["x"].min() for f in models.feeds("cnn", 5))
    assert data.calibration_method == oq.CalibrationMethod.MinMax


def test_minmax_moving_average_and_symmetric():
    model = models.mlp()
    cal = oq.create_calibrator(
        model, extra_options={"moving_average": True, "averaging_constant": 0.5, "symmetric": True}
    )
    cal.collect_data(models.Reader("mlp", 3))
    seen = _values(model, "h", models.feeds("mlp", 3))
    lo, hi = seen[0].min(), seen[0].max()
    for v in seen[1:]:
        lo, hi = lo + 0.5 * (v.min() - lo), hi + 0.5 * (v.max() - hi)
    m = max(abs(lo), abs(hi))
    got = cal.compute_data()["h"]
    np.testing.assert_allclose([got.lowest, got.highest], [-m, m], rtol=1e-6)


def test_percentile_matches_numpy_within_a_bin():
    model = models.mlp()
    cal = oq.create_calibrator(
        model,
        calibrate_method=oq.CalibrationMethod.Percentile,
        extra_options={"percentile": 99.0, "num_bins": 4096},
    )
    cal.collect_data(models.Reader("mlp", 6))
    seen = np.concatenate([v.ravel() for v in _values(model, "h", models.feeds("mlp", 6))])
    expected = np.percentile(np.abs(seen), 99.0)
    width = np.abs(seen).max() / 4096
    got = cal.compute_data()["h"]
    assert abs(got.highest - expected) <= 2 * width
    assert got.lowest == pytest.approx(-got.highest)  # h has negative values


def test_entropy_clips_outliers():
    counts = np.zeros(2048)
    counts[:200] = 1000.0  # the bulk
    counts[2047] = 1.0  # one far outlier
    bins = best_kl_bins(counts, 128)
    assert 128 <= bins < 2047


def test_entropy_calibrator_on_a_model():
    model = models.cnn()
    cal = oq.create_calibrator(
        model, calibrate_method=oq.CalibrationMethod.Entropy, extra_options={"num_bins": 512}
    )
    cal.collect_data(models.Reader("cnn", 4))
    r1 = cal.compute_data()["r1"]
    seen = _values(model, "r1", models.feeds("cnn", 4))
    assert r1.lowest == 0.0  # a Relu output: no negative side
    assert 0 < r1.highest <= max(v.max() for v in seen) * (1 + 1e-6)


def test_empty_reader_and_unsupported_method_are_refused():
    cal = oq.create_calibrator(models.mlp())
    with pytest.raises(onnxpy.InvalidArgument, match="no data"):
        cal.collect_data(models.Reader("mlp", 0))
    with pytest.raises(onnxpy.NotImplemented):
        oq.create_calibrator(models.mlp(), calibrate_method=oq.CalibrationMethod.Distribution)
