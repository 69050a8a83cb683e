"""Helpers shared by the ai.onnx.ml kernels: score post-transforms, class labels, inputs.

Scores are computed in float64 (scikit-learn computes in double; the float32 outputs are then
within one rounding of it) and cast by the kernels to the dtype the schema requires.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "POST_TRANSFORMS",
    "post_transform",
    "post_transform_code",
    "class_labels",
    "as_rows",
    "floats_attr",
    "probit",
    "logistic",
    "softmax",
    "sorted_unique",
]

# The enumeration used by TreeEnsemble (opset 5) for its integer post_transform attribute.
POST_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")


def post_transform_code(name: str | int) -> str:
    """Normalize a post_transform attribute (string, or TreeEnsemble's integer) to its name."""
    if isinstance(name, int):
        if not 0 <= name < len(POST_TRANSFORMS):
            raise ValueError(f"post_transform {name} is not one of 0..{len(POST_TRANSFORMS) - 1}")
        return POST_TRANSFORMS[name]
    text = name.decode() if isinstance(name, bytes) else str(name)
    if text not in POST_TRANSFORMS:
        raise ValueError(f"post_transform '{text}' is not one of {POST_TRANSFORMS}")
    return text


def logistic(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow warnings for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis (ufunc reductions: a one-row call is ~4 NumPy calls,
    without np.max/np.sum's Python wrappers)."""
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    # One row (the common serving call): whole-array reductions to scalars, cheaper still.
    axis, keep = (None, False) if x.ndim == 2 and len(x) == 1 else (-1, True)
    e = np.subtract(x, np.maximum.reduce(x, axis=axis, keepdims=keep))
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=axis, keepdims=keep)
    return e


def softmax_zero(x: np.ndarray) -> np.ndarray:
    """Softmax over the non-zero scores of each row; zero scores stay zero (all-zero rows too)."""
    nonzero = x != 0
    masked = np.where(nonzero, x, -np.inf)
    top = np.max(masked, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(nonzero, np.exp(masked - top), 0.0)
    total = np.sum(e, axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def _erfinv(y: np.ndarray) -> np.ndarray:
    """Inverse error function, M. Giles' single-precision polynomial approximation (2010)."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = -np.log((1.0 - y) * (1.0 + y))
        central = w - 2.5
        p = np.full_like(y, 2.81022636e-08)
        for c in (
            3.43273939e-07,
            -3.5233877e-06,
            -4.39150654e-06,
            0.00021858087,
            -0.00125372503,
            -0.00417768164,
            0.246640727,
            1.50140941,
        ):
            p = c + p * central
        tail = np.sqrt(w) - 3.0
        q = np.full_like(y, -0.000200214257)
        for c in (
            0.000100950558,
            0.00134934322,
            -0.00367342844,
            0.00573950773,
            -0.0076224613,
            0.00943887047,
            1.00167406,
            2.83297682,
        ):
            q = c + q * tail
        out = np.where(w < 5.0, p, q) * y
    out = np.where(y >= 1.0, np.inf, out)
    out = np.where(y <= -1.0, -np.inf, out)
    return np.where(np.abs(y) > 1.0, np.nan, out)


def probit(p: np.ndarray) -> np.ndarray:
    """The quantile function of the standard normal: sqrt(2) * erfinv(2p - 1)."""
    return np.sqrt(2.0) * _erfinv(2.0 * np.asarray(p, dtype=np.float64) - 1.0)


def post_transform(scores: np.ndarray, name: str) -> np.ndarray:
    """Apply a named post-transform to float64 scores of shape [N, C]."""
    if name == "NONE":
        return scores
    if name == "SOFTMAX":
        return softmax(scores)
    if name == "LOGISTIC":
        return logistic(scores)
    if name == "SOFTMAX_ZERO":
        return softmax_zero(scores)
    if name == "PROBIT":
        return probit(scores)
    raise ValueError(f"unknown post_transform '{name}'")


def class_labels(
    strings: Sequence[str] | None, ints: Sequence[int] | None, what: str = "classlabels"
) -> np.ndarray:
    """The class label list as an object (str) or int64 array; exactly one must be given."""
    has_strings = strings is not None and len(strings) > 0
    has_ints = ints is not None and len(ints) > 0
    if has_strings and has_ints:
        raise ValueError(f"only one of the {what}_* attributes may be set")
    if has_strings:
        return np.array([s if isinstance(s, str) else s.decode() for s in strings], dtype=object)
    if has_ints:
        return np.asarray(ints, dtype=np.int64)
    raise ValueError(f"one of the {what}_* attributes (strings or integers) must be set")


def as_rows(x: np.ndarray) -> np.ndarray:
    """View an input as [N, F]: a 1-D tensor is one row, higher ranks flatten after axis 0."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 0:
        return x.reshape(1, 1)
    if x.ndim > 2:
        return x.reshape(x.shape[0], -1)
    return x


def floats_attr(values: Sequence[float] | None, tensor: np.ndarray | None) -> np.ndarray | None:
    """A FLOATS attribute or its ``*_as_tensor`` double form, as float64 (None if neither)."""
    if tensor is not None:
        return np.asarray(tensor, dtype=np.float64).ravel()
    if values is not None:
        return np.asarray(values, dtype=np.float32).astype(np.float64)
    return None


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (NaNs as one), like ``np.unique(values)``.

    NumPy 2's ``unique`` asks ``np.ma.is_masked`` when it returns values only, which imports
    numpy.ma: 10-16 ms of the first forest session in a process, for nothing.
    """
    s = np.sort(np.asarray(values).ravel())
    if s.size < 2:
        return s
    keep = np.empty(s.shape, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    if s.dtype.kind in "fc" and np.isnan(s[-1]):
        first_nan = int(np.argmax(np.isnan(s)))
        keep[first_nan + 1 :] = False
    return s[keep]
