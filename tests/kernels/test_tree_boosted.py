"""Boosted forests as converters write them (LightGBM through onnxmltools, scikit-learn's
gradient boosting through skl2onnx), run by onnxpy against onnxruntime as the oracle.

These are the forests the prefix tables (``_tree_prefix.RowPrefix``) are for: many small
trees splitting on few distinct thresholds. Single rows (``_OneRow``), small batches and
large ones take different evaluators; each must agree with onnxruntime, NaN rows included
(LightGBM sends missing values down a chosen side, ``nodes_missing_value_tracks_true``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
lightgbm = pytest.importorskip("lightgbm")
pytest.importorskip("onnxmltools")
pytest.importorskip("skl2onnx")

import onnxpy  # noqa: E402
from onnxpy.kernels.ai_onnx_ml import _tree_eval as trees  # noqa: E402
from onnxpy.kernels.ai_onnx_ml import _tree_prefix  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _numpy_walks(monkeypatch):
    monkeypatch.setattr(trees, "_JIT_DISABLED", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _data(n_features, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, n_features)).astype(np.float32)
    signal = x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - np.abs(x[:, 3])
    rows = rng.normal(size=(120, n_features)).astype(np.float32)
    rows[::7, 1] = np.nan  # LightGBM's missing-value side
    rows[3, :] = np.nan
    rows[5, 0] = x[10, 0]  # a training value: on a split's threshold or next to it
    return x, signal, rows


def _lightgbm_onnx(model, n_features):
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_lightgbm(
        model,
        initial_types=[("X", FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=15,
    )
    return onx.SerializeToString()


def _assert_as_onnxruntime(data, rows, calls):
    """onnxpy's outputs (batches, then each of the first rows alone) against onnxruntime's,
    within 1e-5 of each output's largest magnitude; ``calls`` records the evaluators."""
    sess = onnxpy.InferenceSession(data)
    oracle = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    # A batch with NaN rows walks level by level (missing values go their own way), without
    # them it takes the batch masks; single rows, with or without, alone.
    clean = rows[~np.isnan(rows).any(axis=1)]
    for batch in [rows, clean] + [rows[i : i + 1] for i in range(25)]:
        got = sess.run(None, {"X": batch})
        expected = oracle.run(None, {"X": batch})
        for g, e in zip(got, expected, strict=True):
            if e.dtype.kind in "iuO":
                np.testing.assert_array_equal(g, e)
            else:
                scale = max(float(np.abs(e).max()), 1e-30)
                np.testing.assert_allclose(g, e, rtol=0, atol=1e-5 * scale)
    return calls


def _spy(monkeypatch, calls, cls, method):
    original = getattr(cls, method)
    name = f"{cls.__name__}.{method}"
    monkeypatch.setattr(cls, method, lambda self, x: calls.append(name) or original(self, x))


@pytest.fixture
def calls(monkeypatch):
    made = []
    _spy(monkeypatch, made, _tree_prefix.RowPrefix, "cells")
    _spy(monkeypatch, made, _tree_prefix.RowPrefix, "leaves_batch")
    return made


def test_lightgbm_multiclass(calls):
    x, signal, rows = _data(10)
    y = np.digitize(signal, [-0.8, 0.4])
    model = lightgbm.LGBMClassifier(n_estimators=80, num_leaves=31, verbose=-1, n_jobs=1).fit(x, y)
    _assert_as_onnxruntime(_lightgbm_onnx(model, 10), rows, calls)
    # Rows without NaN took the prefix tables, alone and in the batch.
    assert "RowPrefix.cells" in calls and "RowPrefix.leaves_batch" in calls


def test_lightgbm_regressor_depth_six(calls):
    x, signal, rows = _data(8, seed=1)
    model = lightgbm.LGBMRegressor(
        n_estimators=120, num_leaves=63, max_depth=6, verbose=-1, n_jobs=1
    ).fit(x, signal)
    _assert_as_onnxruntime(_lightgbm_onnx(model, 8), rows, calls)
    assert "RowPrefix.cells" in calls


def test_lightgbm_binary(calls):
    x, signal, rows = _data(6, seed=2)
    model = lightgbm.LGBMClassifier(n_estimators=150, num_leaves=15, verbose=-1, n_jobs=1)
    model.fit(x, (signal > 0).astype(np.int64))
    _assert_as_onnxruntime(_lightgbm_onnx(model, 6), rows, calls)


@pytest.mark.parametrize("classes", [2, 3])
def test_sklearn_gradient_boosting(classes):
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier

    x, signal, rows = _data(12, seed=3)
    y = np.digitize(signal, [-0.8, 0.4][: classes - 1])
    model = GradientBoostingClassifier(n_estimators=120, max_depth=3, random_state=0)
    onx = to_onnx(
        model.fit(x, y), x[:1], target_opset={"": 17, "ai.onnx.ml": 3}, options={"zipmap": False}
    )
    _assert_as_onnxruntime(onx.SerializeToString(), np.nan_to_num(rows), [])
