"""Linear models of the ai.onnx.ml domain: LinearClassifier and LinearRegressor.

Scores are X @ W.T + b in float64 (scikit-learn's precision), cast to float32 at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from onnxpy.kernels.ai_onnx_ml._common import as_rows, class_labels, logistic, post_transform_code
from onnxpy.kernels.ai_onnx_ml._common import post_transform as apply_post
from onnxpy.kernels.registry import NodeInfo, register

ML = "ai.onnx.ml"


def _weights(
    coefficients: Sequence[float] | None, intercepts: Sequence[float] | None, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients as [rows, F] float64 and intercepts as [rows] (zeros when omitted)."""
    if coefficients is None:
        raise ValueError("attribute coefficients is required")
    coef = np.asarray(coefficients, dtype=np.float32).astype(np.float64)
    if rows <= 0 or len(coef) % rows:
        raise ValueError(f"{len(coef)} coefficients do not split into {rows} rows")
    bias = np.zeros(rows)
    if intercepts:
        bias = np.asarray(intercepts, dtype=np.float32).astype(np.float64)
        if len(bias) != rows:
            raise ValueError(f"{len(bias)} intercepts for {rows} coefficient rows")
    return coef.reshape(rows, -1), bias


def _scores(x: np.ndarray, coef: np.ndarray, bias: np.ndarray) -> np.ndarray:
    rows = as_rows(np.asarray(x))
    if rows.dtype.kind not in "fiu":
        raise TypeError(f"linear models take numeric input, got {rows.dtype}")
    if rows.shape[1] != coef.shape[1]:
        raise ValueError(f"the input has {rows.shape[1]} features, the model {coef.shape[1]}")
    return rows.astype(np.float64) @ coef.T + bias


@register("LinearClassifier", since=1, domain=ML, factory=True)
def linear_classifier(
    info: NodeInfo,
    *,
    classlabels_ints=None,
    classlabels_strings=None,
    coefficients=None,
    intercepts=None,
    multi_class=0,
    post_transform="NONE",
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """One score per class (label = best score), or one score for two classes.

    With a single coefficient row and two labels the score ``s`` is the second class's margin:
    label 1 when s > 0 and columns [1 - s, s] (LOGISTIC: [1 - p, p] with p = logistic(s)),
    as onnxruntime returns them.
    """
    labels = class_labels(classlabels_strings, classlabels_ints)
    post = post_transform_code(post_transform)
    rows = len(intercepts) if intercepts else len(labels)
    coef, bias = _weights(coefficients, intercepts, rows)
    binary = rows == 1 and len(labels) == 2
    if not binary and rows != len(labels):
        raise ValueError(f"{rows} coefficient rows for {len(labels)} class labels")

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = _scores(x, coef, bias)
        if binary:
            s = scores[:, 0]
            label = labels[(s > 0).astype(np.intp)]
            if post == "LOGISTIC":
                p = logistic(s)
                return label, np.stack([1.0 - p, p], axis=1).astype(np.float32)
            z = np.stack([1.0 - s, s], axis=1)
            return label, (apply_post(z, post) if post == "PROBIT" else z).astype(np.float32)
        label = labels[np.argmax(scores, axis=1)] if len(scores) else labels[:0]
        return label, apply_post(scores, post).astype(np.float32)

    return run


@register("LinearRegressor", since=1, domain=ML, factory=True)
def linear_regressor(
    info: NodeInfo, *, coefficients=None, intercepts=None, post_transform="NONE", targets=1
) -> Callable[[np.ndarray], np.ndarray]:
    """[N, targets] = X @ W.T + b, then the post-transform; float32 out."""
    post = post_transform_code(post_transform)
    coef, bias = _weights(coefficients, intercepts, int(targets))

    def run(x: np.ndarray) -> np.ndarray:
        return apply_post(_scores(x, coef, bias), post).astype(np.float32)

    return run
