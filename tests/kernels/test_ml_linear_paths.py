"""LinearClassifier / LinearRegressor evaluation paths against onnxruntime.

The kernels add the bias as a tiled flat run on small batches (a broadcast add past
``_TILED_BIAS_MAX`` scores), pick labels by one comparison for binary batches and by argmax
with onnxruntime's NaN rule otherwise, and compute one-row LOGISTIC in Python floats. Every
path is compared with onnxruntime on the same model, including batches that change size
between runs and scores that are NaN or infinite.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import onnxpy
from onnxpy.kernels.ai_onnx_ml import linear
from tests.kernels import single_node

ML = "ai.onnx.ml"


def _model(coefficients, intercepts, n_features, labels=None, post="NONE", targets=None):
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])
    if labels is None:
        node = helper.make_node(
            "LinearRegressor",
            ["X"],
            ["Y"],
            domain=ML,
            coefficients=coefficients,
            intercepts=intercepts,
            targets=targets,
            post_transform=post,
        )
        outs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, targets])]
    else:
        node = helper.make_node(
            "LinearClassifier",
            ["X"],
            ["L", "P"],
            domain=ML,
            coefficients=coefficients,
            intercepts=intercepts,
            classlabels_ints=labels,
            post_transform=post,
        )
        width = len(intercepts)
        outs = [
            helper.make_tensor_value_info("L", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("P", TensorProto.FLOAT, [None, width]),
        ]
    model = single_node.graph_model([node], [x], outs, {"": 17, ML: 1}, ir_version=8)
    return model.SerializeToString()


def _both(model: bytes, x: np.ndarray):
    mine = onnxpy.InferenceSession(model).run(None, {"X": x})
    theirs = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})
    return mine, theirs


def _classifier(classes: int, features: int, post: str, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=classes * features).round(3).tolist()
    bias = rng.normal(size=classes).round(3).tolist()
    return _model(coef, bias, features, labels=list(range(classes)), post=post)


@pytest.mark.parametrize("classes", [2, 3, 5])
@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX"])
def test_batches_of_changing_size_match_onnxruntime(classes, post):
    """One session run on 1, 1000, 3, 17 and 40,000 rows (the tiled bias is re-made for each
    size; 40,000 x 2 scores take the broadcast add) gives onnxruntime's labels and scores."""
    model = _classifier(classes, 6, post)
    sess = onnxpy.InferenceSession(model)
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(classes)
    for n in (1, 1000, 3, 17, 40_000, 1):
        x = rng.normal(size=(n, 6)).astype(np.float32) * 3
        (label, proba), (want_label, want_proba) = sess.run(None, {"X": x}), ref.run(None, {"X": x})
        np.testing.assert_array_equal(label, want_label)
        np.testing.assert_allclose(proba, want_proba, rtol=1e-5, atol=1e-6)


def test_tiled_bias_switches_to_broadcast_past_the_cap():
    scores = linear._Scores(np.ones((2, 3)), np.array([0.5, -0.5]))
    n = linear._TILED_BIAS_MAX // 2 + 1  # one row past the cap
    for rows in (4, n, 4):
        x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
        want = x.astype(np.float64).sum(axis=1, keepdims=True) + [0.5, -0.5]
        np.testing.assert_array_equal(scores(x), want)


@pytest.mark.parametrize("rows", [1, 4, 40])
@pytest.mark.parametrize("classes", [2, 3])
def test_nan_and_infinite_scores_pick_onnxruntimes_label(rows, classes):
    """A score is NaN where an infinite feature meets a zero weight (0 * inf); onnxruntime
    keeps the first score greater than all before it, so a NaN never wins after column 0 and
    a NaN in column 0 wins its row. Rows mix NaN in each column, ties, and plain values."""
    # Scores: s0 = x0, s1 = x1, s2 = x0 + x1 (three classes).
    coef = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0][: 2 * classes]
    model = _model(coef, [0.0] * classes, 2, labels=list(range(classes)))
    patterns = np.array(
        [[np.inf, 1], [1, np.inf], [2, 2], [1, 3], [-np.inf, -np.inf], [np.inf, -np.inf], [5, 1]],
        dtype=np.float32,
    )
    x = np.resize(patterns, (rows, 2)) if rows > 1 else patterns[[1]]
    (label, proba), (want_label, want_proba) = _both(model, x)
    assert np.isnan(proba).any() == np.isnan(want_proba).any()
    np.testing.assert_array_equal(label, want_label)
    np.testing.assert_array_equal(np.isnan(proba), np.isnan(want_proba))


def test_best_class_careful_path_directly():
    nan, inf = np.nan, np.inf
    scores = np.array([[nan, inf, 1.0], [1.0, nan, 3.0], [3.0, nan, 1.0], [-inf, -inf, -inf]])
    np.testing.assert_array_equal(linear.best_class(scores), [0, 2, 0, 0])
    many = np.tile(scores, (30, 1))  # over 64 scores: the dot-product check
    np.testing.assert_array_equal(linear.best_class(many), np.tile([0, 2, 0, 0], 30))
    one = np.array([[1.0, nan, 2.0]])
    np.testing.assert_array_equal(linear.best_class(one), [2])


def test_one_row_logistic_matches_the_array_path_bit_for_bit():
    rng = np.random.default_rng(3)
    for scale in (1.0, 30.0, 1000.0):
        s = rng.normal(size=(200, 2)) * scale
        want = linear._logistic32(s.copy())  # 400 scores: the NumPy path
        got = np.concatenate([linear._logistic32(s[i : i + 1].copy()) for i in range(200)])
        np.testing.assert_array_equal(got, want)
    edge = np.array([[np.nan, np.inf, -np.inf, -1e300, 1e300, 0.0]])
    got = linear._logistic32(edge.copy())
    np.testing.assert_array_equal(got, [[np.nan, 1.0, 0.0, 0.0, 1.0, 0.5]])


def test_regressor_logistic_one_row_and_batch_match_onnxruntime():
    model = _model([0.5, -1.0, 2.0, 0.25], [0.1, -0.3], 2, post="LOGISTIC", targets=2)
    rng = np.random.default_rng(7)
    for n in (1, 500):
        x = rng.normal(size=(n, 2)).astype(np.float32) * 4
        (y,), (want,) = _both(model, x)
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-7)
