"""Training losses of the default domain: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss.

Both weigh each sample by ``weight[target]`` (1 without weights, 0 where the target equals
``ignore_index``); 'mean' divides the weighted sum by the sum of those sample weights.
"""

from __future__ import annotations

import numpy as np

from onnxpy.kernels.ai_onnx.elementwise import as_compute
from onnxpy.kernels.registry import register

_REDUCTIONS = ("none", "sum", "mean")


def _compute(x: np.ndarray) -> np.ndarray:
    cx = as_compute(x)
    return cx.astype(np.float32) if cx.dtype == np.float16 else cx


def _nll(
    log_prob: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None,
    reduction: str,
    ignore_index: int | None,
) -> np.ndarray:
    """Weighted, reduced -log_prob[n, target[n, ...], ...] in log_prob's compute dtype."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if log_prob.ndim < 2:
        raise ValueError(f"input must have shape (N, C, ...), got {list(log_prob.shape)}")
    n, c = log_prob.shape[:2]
    target = np.asarray(target).astype(np.int64)
    if target.shape != (n,) + log_prob.shape[2:]:
        raise ValueError(
            f"target shape {list(target.shape)} does not match input {list(log_prob.shape)}"
        )
    ignored = target == ignore_index if ignore_index is not None else np.zeros(target.shape, bool)
    safe = np.where(ignored, 0, target)
    if np.any((safe < 0) | (safe >= c)):
        raise ValueError(f"target values must be in [0, {c}) or equal ignore_index")
    picked = np.take_along_axis(log_prob, safe[:, None], axis=1)[:, 0]
    if weight is not None:
        w = _compute(np.asarray(weight)).astype(log_prob.dtype)[safe]
    else:
        w = np.ones(target.shape, dtype=log_prob.dtype)
    w = np.where(ignored, 0, w).astype(log_prob.dtype)
    loss = -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum(dtype=log_prob.dtype))
    with np.errstate(all="ignore"):
        return np.asarray(loss.sum(dtype=log_prob.dtype) / w.sum(dtype=log_prob.dtype))


@register("NegativeLogLikelihoodLoss", since=(12, 13, 22))
def negative_log_likelihood_loss(
    input, target, weight=None, /, *, ignore_index=None, reduction="mean"
):  # noqa: A002
    """input: log-probabilities (N, C, d1..dk); target: classes (N, d1..dk)."""
    x = np.asarray(input)
    loss = _nll(_compute(x), target, weight, reduction, ignore_index)
    return loss.astype(x.dtype, copy=False)


@register("SoftmaxCrossEntropyLoss", since=(12, 13))
def softmax_cross_entropy_loss(
    scores, labels, weights=None, /, *, ignore_index=None, reduction="mean"
):
    """Returns (loss, log_prob) where log_prob = LogSoftmax(scores, axis=1)."""
    x = np.asarray(scores)
    cx = _compute(x)
    if cx.ndim < 2:
        raise ValueError(f"scores must have shape (N, C, ...), got {list(cx.shape)}")
    with np.errstate(all="ignore"):
        shifted = cx - np.max(cx, axis=1, keepdims=True)
        log_prob = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    loss = _nll(log_prob, labels, weights, reduction, ignore_index)
    return loss.astype(x.dtype, copy=False), log_prob.astype(x.dtype, copy=False)
