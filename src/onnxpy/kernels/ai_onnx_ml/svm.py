"""Support vector machines of the ai.onnx.ml domain: SVMClassifier and SVMRegressor.

The attributes follow libsvm's layout: support vectors grouped by class (vectors_per_class),
coefficients [classes - 1, vectors], one rho per class pair (i < j, in order). The decision
value of pair (i, j) is ``f = sum(coef * K) + rho``; f > 0 votes for class i. Probabilities
use Platt's sigmoid per pair (prob_a, prob_b), then the pairwise coupling of Wu, Lin and Weng
(2004) that scikit-learn's libsvm applies for any number of classes (two included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from onnxpy.kernels.ai_onnx_ml._common import as_rows, class_labels, post_transform_code
from onnxpy.kernels.ai_onnx_ml._common import post_transform as apply_post
from onnxpy.kernels.registry import NodeInfo, register

ML = "ai.onnx.ml"
_KERNELS = ("LINEAR", "POLY", "RBF", "SIGMOID")
_MIN_PROB = 1e-7


def _floats(values: Sequence[float] | None) -> np.ndarray:
    return np.asarray(values if values is not None else [], dtype=np.float32).astype(np.float64)


def _kernel(
    kind: str, params: Sequence[float] | None
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """K(X [N, F], SV [M, F]) -> [N, M] for the named kernel and (gamma, coef0, degree)."""
    if kind not in _KERNELS:
        raise ValueError(f"kernel_type must be one of {_KERNELS}, got '{kind}'")
    p = list(_floats(params)) + [0.0, 0.0, 0.0]
    gamma, coef0, degree = p[0], p[1], p[2]

    def k(x: np.ndarray, sv: np.ndarray) -> np.ndarray:
        if kind == "RBF":
            sq = (x * x).sum(1)[:, None] + (sv * sv).sum(1)[None, :] - 2.0 * (x @ sv.T)
            return np.exp(-gamma * np.maximum(sq, 0.0))
        dot = x @ sv.T
        if kind == "LINEAR":
            return dot
        if kind == "POLY":
            return np.power(gamma * dot + coef0, degree)
        return np.tanh(gamma * dot + coef0)

    return k


def _input(x: np.ndarray, features: int) -> np.ndarray:
    rows = as_rows(np.asarray(x))
    if rows.dtype.kind not in "fiu":
        raise TypeError(f"SVMs take numeric input, got {rows.dtype}")
    if rows.shape[1] != features:
        raise ValueError(f"the input has {rows.shape[1]} features, the model {features}")
    return rows.astype(np.float64)


def _platt(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """libsvm's sigmoid_predict 1 / (1 + exp(f * A + B)), overflow-safe, clipped away from 0/1."""
    z = f * a + b
    e = np.exp(-np.abs(z))
    p = np.where(z >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
    return np.clip(p, _MIN_PROB, 1.0 - _MIN_PROB)


def _couple(r: np.ndarray) -> np.ndarray:
    """Class probabilities [N, k] from pairwise ones r[n, i, j] = P(i | i or j).

    Wu, Lin and Weng (2004), method 2, solved by the fixed-point iteration libsvm uses; each
    row stops on its own once max_t |(Qp)_t - p'Qp| < 0.005 / k.
    """
    n, k, _ = r.shape
    q = -r.transpose(0, 2, 1) * r  # Q[t, j] = -r[j, t] * r[t, j]
    sq = r * r
    diag = sq.sum(axis=1) - np.einsum("nii->ni", sq)  # sum over j != t of r[j, t]^2
    idx = np.arange(k)
    q[:, idx, idx] = diag
    p = np.full((n, k), 1.0 / k)
    active = np.arange(n)
    eps = 0.005 / k
    for _ in range(max(100, k)):
        qa, pa = q[active], p[active]
        qp = np.einsum("ntj,nj->nt", qa, pa)
        pqp = (pa * qp).sum(axis=1)
        done = np.abs(qp - pqp[:, None]).max(axis=1) < eps
        if done.any():
            keep = ~done
            active, qa, pa, qp, pqp = active[keep], qa[keep], pa[keep], qp[keep], pqp[keep]
        if len(active) == 0:
            break
        for t in range(k):
            qtt = qa[:, t, t]
            diff = (pqp - qp[:, t]) / qtt
            pa[:, t] += diff
            scale = 1.0 + diff
            pqp = (pqp + diff * (diff * qtt + 2.0 * qp[:, t])) / scale / scale
            qp = (qp + diff[:, None] * qa[:, t, :]) / scale[:, None]
            pa /= scale[:, None]
        p[active] = pa
    return p


@register("SVMClassifier", since=1, domain=ML, factory=True)
def svm_classifier(
    info: NodeInfo,
    *,
    classlabels_ints=None,
    classlabels_strings=None,
    coefficients=None,
    kernel_params=None,
    kernel_type="LINEAR",
    post_transform="NONE",
    prob_a=None,
    prob_b=None,
    rho=None,
    support_vectors=None,
    vectors_per_class=None,
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """One-vs-one voting; Z holds probabilities (prob_a/prob_b) or the pairwise decisions."""
    labels = class_labels(classlabels_strings, classlabels_ints)
    post = post_transform_code(post_transform)
    kernel = _kernel(kernel_type, kernel_params)
    coef = _floats(coefficients)
    rho_ = _floats(rho)
    counts = np.asarray(vectors_per_class or [], dtype=np.int64)
    if counts.sum() == 0:
        return _linear_svm(labels, coef, rho_, post)
    n_classes = len(labels)
    if len(counts) != n_classes:
        raise ValueError(f"vectors_per_class has {len(counts)} entries for {n_classes} classes")
    n_sv = int(counts.sum())
    sv = _floats(support_vectors)
    if len(sv) % n_sv or len(coef) != (n_classes - 1) * n_sv:
        raise ValueError("support_vectors / coefficients do not match vectors_per_class")
    sv = sv.reshape(n_sv, -1)
    coef = coef.reshape(n_classes - 1, n_sv)
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    if len(rho_) != len(pairs):
        raise ValueError(f"rho has {len(rho_)} values for {len(pairs)} class pairs")
    # Column p of `mix` weighs each support vector's kernel value in pair p's decision.
    start = np.concatenate([[0], np.cumsum(counts)])
    mix = np.zeros((n_sv, len(pairs)))
    for p, (i, j) in enumerate(pairs):
        mix[start[i] : start[i + 1], p] = coef[j - 1, start[i] : start[i + 1]]
        mix[start[j] : start[j + 1], p] = coef[i, start[j] : start[j + 1]]
    first = np.array([i for i, _ in pairs], dtype=np.intp)
    second = np.array([j for _, j in pairs], dtype=np.intp)
    a, b = _floats(prob_a), _floats(prob_b)
    with_proba = len(a) > 0
    if with_proba and (len(a) != len(pairs) or len(b) != len(pairs)):
        raise ValueError(f"prob_a / prob_b need {len(pairs)} values")

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = _input(x, sv.shape[1])
        f = kernel(rows, sv) @ mix + rho_  # [N, pairs]
        winner = np.where(f > 0, first, second)
        n = len(rows)
        votes = np.bincount(
            (np.arange(n)[:, None] * n_classes + winner).ravel(), minlength=n * n_classes
        ).reshape(n, n_classes)
        label = labels[np.argmax(votes, axis=1)] if n else labels[:0]
        if with_proba:
            r = _platt(f, a, b)
            # Two classes go through the coupling too, as in scikit-learn's libsvm.
            pair = np.zeros((n, n_classes, n_classes))
            pair[:, first, second] = r
            pair[:, second, first] = 1.0 - r
            z = _couple(pair)
        else:
            z = np.stack([-f[:, 0], f[:, 0]], axis=1) if n_classes == 2 else f
        # The transform applies to whatever Z holds, probabilities included (as onnxruntime).
        return label, apply_post(z, post).astype(np.float32)

    return run


def _linear_svm(
    labels: np.ndarray, coef: np.ndarray, rho: np.ndarray, post: str
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """No support vectors: one linear score per class, all offset by rho[0] (onnxruntime's way).

    Two classes: label 1 when the second score is positive; more: the best score.
    """
    n_classes = len(labels)
    if len(coef) == 0 or len(coef) % n_classes:
        raise ValueError(f"{len(coef)} coefficients do not split into {n_classes} classes")
    w = coef.reshape(n_classes, -1)
    offset = rho[0] if len(rho) else 0.0

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = _input(x, w.shape[1]) @ w.T + offset
        if n_classes == 2:
            label = labels[(scores[:, 1] > 0).astype(np.intp)]
        else:
            label = labels[np.argmax(scores, axis=1)] if len(scores) else labels[:0]
        return label, apply_post(scores, post).astype(np.float32)

    return run


@register("SVMRegressor", since=1, domain=ML, factory=True)
def svm_regressor(
    info: NodeInfo,
    *,
    coefficients=None,
    kernel_params=None,
    kernel_type="LINEAR",
    n_supports=0,
    one_class=0,
    post_transform="NONE",
    rho=None,
    support_vectors=None,
) -> Callable[[np.ndarray], np.ndarray]:
    """sum(coef * K(x, sv)) + rho (linear in x without support vectors); one_class: +1 / -1."""
    post = post_transform_code(post_transform)
    kernel = _kernel(kernel_type, kernel_params)
    coef = _floats(coefficients)
    offset = float(_floats(rho)[0]) if rho else 0.0
    sv = _floats(support_vectors)
    if n_supports:
        if len(coef) != n_supports or len(sv) % n_supports:
            raise ValueError("coefficients / support_vectors do not match n_supports")
        sv = sv.reshape(n_supports, -1)

    def run(x: np.ndarray) -> np.ndarray:
        if n_supports:
            y = kernel(_input(x, sv.shape[1]), sv) @ coef + offset
        else:
            y = _input(x, len(coef)) @ coef + offset
        if one_class:
            y = np.where(y > 0, 1.0, -1.0)
        return apply_post(y[:, None], post).astype(np.float32)

    return run
