"""Linear models of the ai.onnx.ml domain: LinearClassifier and LinearRegressor.

Scores are X @ W.T + b in float64 (scikit-learn's precision), cast to float32 at the end.
"""

from __future__ import annotations

import math
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
    if intercepts is not None and len(intercepts):
        bias = np.asarray(intercepts, dtype=np.float32).astype(np.float64)
        if len(bias) != rows:
            raise ValueError(f"{len(bias)} intercepts for {rows} coefficient rows")
    return coef.reshape(rows, -1), bias


# Batches of at most this many scores add the bias as one flat run of the bias tiled per row:
# NumPy broadcasts a row of 2 slowly (1000 x 2 float64: 5.6 us, the tiled run 1.2 us).
_TILED_BIAS_MAX = 1 << 16


class _Scores:
    """X @ W.T + b in float64, with W.T laid out contiguous once."""

    def __init__(self, coef: np.ndarray, bias: np.ndarray) -> None:
        self.coef_t = np.ascontiguousarray(coef.T)  # [F, rows]
        self.bias = bias
        self.n_features = coef.shape[1]
        self._tiled = bias  # the bias repeated for the last small batch's rows

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not (x.__class__ is np.ndarray and x.ndim == 2 and x.shape[1] == self.n_features):
            x = as_rows(np.asarray(x))
            if x.shape[1] != self.n_features:
                raise ValueError(
                    f"the input has {x.shape[1]} features, the model {self.n_features}"
                )
        if x.dtype.kind not in "fiu":
            raise TypeError(f"linear models take numeric input, got {x.dtype}")
        scores = np.matmul(x.astype(np.float64), self.coef_t)
        if scores.size > _TILED_BIAS_MAX:
            scores += self.bias
            return scores
        flat = scores.reshape(-1)
        tiled = self._tiled
        if len(tiled) != len(flat):
            tiled = self._tiled = np.tile(self.bias, len(scores))
        np.add(flat, tiled, out=flat)
        return scores


def best_class(scores: np.ndarray) -> np.ndarray:
    """Index of each row's best score [N] as onnxruntime picks it: the first score greater
    than every score before it, so a NaN is never picked after the first column, and a NaN
    first column wins the row (NumPy's argmax picks the first NaN instead)."""
    if scores.shape[1] == 2 and len(scores) > 16:
        # Binary batches: one comparison (1000 rows: 1.6 us; argmax 4 us). On a few rows the
        # column views cost more than argmax.
        return np.greater(scores[:, 1], scores[:, 0]).view(np.uint8)
    best = scores.argmax(axis=1)
    if len(best) == 1:  # one row: argmax picks a NaN exactly when the row has one
        suspect = math.isnan(scores[0, best[0]])
    else:  # a NaN sum (a NaN, or inf - inf) takes the careful path
        flat = scores.reshape(-1)
        suspect = math.isnan(sum(flat.tolist()) if len(flat) <= 64 else np.dot(flat, flat))
    if suspect:
        best = np.where(np.isnan(scores), -np.inf, scores).argmax(axis=1)
        best[np.isnan(scores[:, 0])] = 0
    return best


def _logistic32(s: np.ndarray) -> np.ndarray:
    """logistic(s) rounded to float32, in place on the float64 scores ``s``.

    1 / (1 + exp(-s)) with s clipped at -110 from below: exp stays finite, and every s below
    -104 rounds to float32 0 either way. A row or two is done in Python floats (0.8 us
    where the five NumPy calls take 2.8 us).
    """
    if s.size <= 8:
        flat = [1.0 / (1.0 + math.exp(min(-v, 110.0))) for v in s.reshape(-1).tolist()]
        return np.array(flat, dtype=np.float32).reshape(s.shape)
    np.negative(s, out=s)
    np.minimum(s, 110.0, out=s)
    np.exp(s, out=s)
    s += 1.0
    np.divide(1.0, s, out=s)
    return s.astype(np.float32)


@register("LinearClassifier", since=1, domain=ML, factory=True, array_attributes=True, fresh=True)
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
    rows = len(intercepts) if intercepts is not None and len(intercepts) else len(labels)
    coef, bias = _weights(coefficients, intercepts, rows)
    binary = rows == 1 and len(labels) == 2
    if not binary and rows != len(labels):
        raise ValueError(f"{rows} coefficient rows for {len(labels)} class labels")

    scores_of = _Scores(coef, bias)

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = scores_of(x)
        if binary:
            s = scores[:, 0]
            label = labels.take(np.greater(s, 0.0).view(np.uint8))
            if post in ("LOGISTIC", "NONE"):
                # [1 - p, p] written into the float32 result (np.stack of the two columns
                # was a third of a batch-1 run); each value rounded once, as before.
                p = logistic(s) if post == "LOGISTIC" else s
                z = np.empty((len(s), 2), dtype=np.float32)
                np.subtract(1.0, p, out=z[:, 0])
                z[:, 1] = p
                return label, z
            z = np.stack([1.0 - s, s], axis=1)
            return label, (apply_post(z, post) if post == "PROBIT" else z).astype(np.float32)
        label = labels.take(best_class(scores)) if len(scores) else labels[:0].copy()
        if post == "LOGISTIC":
            return label, _logistic32(scores)
        return label, apply_post(scores, post).astype(np.float32)

    return run


@register("LinearRegressor", since=1, domain=ML, factory=True, array_attributes=True, fresh=True)
def linear_regressor(
    info: NodeInfo, *, coefficients=None, intercepts=None, post_transform="NONE", targets=1
) -> Callable[[np.ndarray], np.ndarray]:
    """[N, targets] = X @ W.T + b, then the post-transform; float32 out."""
    post = post_transform_code(post_transform)
    coef, bias = _weights(coefficients, intercepts, int(targets))
    scores_of = _Scores(coef, bias)

    def run(x: np.ndarray) -> np.ndarray:
        scores = scores_of(x)
        if post == "LOGISTIC":
            return _logistic32(scores)
        return apply_post(scores, post).astype(np.float32)

    return run
