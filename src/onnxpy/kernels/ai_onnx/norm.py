"""Normalization operators: BatchNormalization, InstanceNormalization, LayerNormalization,
GroupNormalization, RMSNormalization, LRN, LpNormalization and MeanVarianceNormalization.

Statistics of 16-bit float inputs are computed in float32 (float64 stays float64) and results
are rounded back to the input's type once. Where the spec has a ``stash_type``, the first stage
(statistics and standardization) runs in that precision and the second (scale, bias) in the
input's type. Per-channel parameters are viewed as ``(C, 1, ..., 1)`` so they broadcast against
``(N, C, D1, ...)`` inputs without copies.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from onnxpy.kernels.registry import NodeInfo, register

# TensorProto element types a stash_type / precision attribute may name.
_FLOAT_TYPES = {
    1: np.dtype(np.float32),
    10: np.dtype(np.float16),
    11: np.dtype(np.float64),
    16: np.dtype(ml_dtypes.bfloat16),
}


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; every other float type is computed in float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _stash(stash_type: int) -> tuple[np.dtype, np.dtype]:
    """(dtype the stage-one results are reported in, dtype they are computed in)."""
    if stash_type not in _FLOAT_TYPES:
        raise ValueError(f"unsupported stash_type {stash_type}")
    declared = _FLOAT_TYPES[stash_type]
    return declared, _compute_dtype(declared)


def _as(x: object, dtype: np.dtype) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != dtype:
        with np.errstate(all="ignore"):
            x = x.astype(dtype)
    return x


def _channel_view(p: object, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A per-channel parameter shaped to broadcast over ``(N, C, D1, ...)``.

    A parameter with more than one dimension (legacy non-spatial BatchNormalization) already
    has the shape ``(C, D1, ...)`` and broadcasts as is.
    """
    p = _as(p, dtype)
    if p.ndim <= 1 and x.ndim >= 2:
        return p.reshape((-1,) + (1,) * (x.ndim - 2))
    return p


def _check_rank(x: np.ndarray, op: str, rank: int = 2) -> None:
    if x.ndim < rank:
        raise ValueError(f"{op} needs an input of rank >= {rank}, got rank {x.ndim}")


# -- BatchNormalization ----------------------------------------------------------------------


def _bn_inference(x: np.ndarray, scale, bias, mean, var, epsilon: float) -> np.ndarray:
    """Y = (X - mean) / sqrt(var + epsilon) * scale + B with given statistics."""
    cd = _compute_dtype(x.dtype)
    # Parameters are tiny: fold them in float64, then round once.
    inv = _as(scale, np.float64) / np.sqrt(_as(var, np.float64) + epsilon)
    y = _as(x, cd) - _channel_view(mean, x, cd)
    y *= _channel_view(inv, x, cd)
    y += _channel_view(bias, x, cd)
    return _as(y, x.dtype)


def _bn_training(
    x: np.ndarray, scale, bias, mean, var, epsilon: float, momentum: float, spatial: int = 1
) -> tuple[np.ndarray, ...]:
    """(Y, running_mean, running_var, batch_mean, batch_var) from batch statistics."""
    cd = _compute_dtype(x.dtype)
    xc = _as(x, cd)
    axes = (0,) + tuple(range(2, x.ndim)) if spatial else (0,)
    cur_mean = xc.mean(axis=axes, keepdims=True)
    d = xc - cur_mean
    cur_var = np.mean(d * d, axis=axes, keepdims=True)
    d *= _channel_view(scale, x, cd) / np.sqrt(cur_var + cd.type(epsilon))
    d += _channel_view(bias, x, cd)
    stat_dtype = np.asarray(mean).dtype
    stat_shape = np.shape(mean)
    bm = cur_mean.reshape(stat_shape)
    bv = cur_var.reshape(stat_shape)
    running_mean = _as(mean, cd) * cd.type(momentum) + bm * cd.type(1 - momentum)
    running_var = _as(var, cd) * cd.type(momentum) + bv * cd.type(1 - momentum)
    return (
        _as(d, x.dtype),
        _as(running_mean, stat_dtype),
        _as(running_var, stat_dtype),
        _as(bm, stat_dtype),
        _as(bv, stat_dtype),
    )


@register("BatchNormalization", since=(1, 6, 7, 9), factory=True)
def batch_normalization_legacy(
    info: NodeInfo, *, epsilon=1e-5, momentum=0.9, spatial=1, is_test=0, consumed_inputs=None
):
    """Opsets 1-9: training statistics only when the node asks for the extra outputs.

    The backend runtimes treat a single-output node as inference whatever ``is_test`` says;
    ``spatial=0`` (opsets 1-7) takes parameters of shape ``(C, D1, ...)``.
    """
    training = info.num_outputs > 1 and not is_test

    def run(x, scale, b, mean, var, /):
        x = np.asarray(x)
        _check_rank(x, "BatchNormalization")
        if training:
            return _bn_training(x, scale, b, mean, var, epsilon, momentum, spatial)
        return _bn_inference(x, scale, b, mean, var, epsilon)

    return run


@register("BatchNormalization", since=(14, 15), factory=True)
def batch_normalization(info: NodeInfo, *, epsilon=1e-5, momentum=0.9, training_mode=0):
    """Inference with the given statistics, or (training_mode) with the batch's own.

    Extra outputs are invalid in inference; a node asking anyway gets the statistics unchanged.
    """
    extra = info.num_outputs > 1

    def run(x, scale, b, input_mean, input_var, /):
        x = np.asarray(x)
        _check_rank(x, "BatchNormalization")
        if training_mode:
            return _bn_training(x, scale, b, input_mean, input_var, epsilon, momentum)[:3]
        y = _bn_inference(x, scale, b, input_mean, input_var, epsilon)
        return (y, np.array(input_mean), np.array(input_var)) if extra else y

    return run


# -- Instance / Group / Layer / RMS normalization --------------------------------------------


def standardize_last(x: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((x - mean) * inv_std, mean, inv_std) over the last axis, statistics with keepdims.

    A fresh array (x is left as it is) in few passes: row sums and sums of squares by einsum
    (vectorized, no temporary, and no BLAS call whose threads may stall on a busy machine),
    then the centred rows scaled in place. Serves LayerNormalization, InstanceNormalization,
    GroupNormalization and the com.microsoft (Skip)LayerNormalization kernels.
    """
    n = x.shape[-1]
    if n == 0:
        raise ValueError("cannot normalize over an empty set of values")
    mean = np.einsum("...i->...", x)[..., None]
    mean /= x.dtype.type(n)
    d = np.subtract(x, mean)
    var = np.einsum("...i,...i->...", d, d)[..., None]
    var /= x.dtype.type(n)
    var += x.dtype.type(epsilon)
    inv = np.sqrt(var, out=var)
    np.divide(x.dtype.type(1), inv, out=inv)
    d *= inv
    return d, mean, inv


@register("InstanceNormalization", since=(1, 6, 22))
def instance_normalization(x, scale, b, /, *, epsilon=1e-5, consumed_inputs=None):
    """Per instance and channel: (x - mean) / sqrt(var + epsilon) * scale + B."""
    x = np.asarray(x)
    _check_rank(x, "InstanceNormalization", 3)
    cd = _compute_dtype(x.dtype)
    n, c = x.shape[:2]
    normalized = standardize_last(_as(x, cd).reshape(n, c, -1), epsilon)[0]
    y = normalized.reshape(x.shape)
    y *= _channel_view(scale, x, cd)
    y += _channel_view(b, x, cd)
    return _as(y, x.dtype)


def _group_norm(
    x: np.ndarray, scale, bias, num_groups, epsilon: float, cd: np.dtype, out_cd: np.dtype
):
    if num_groups is None:
        raise ValueError("GroupNormalization needs the 'num_groups' attribute")
    _check_rank(x, "GroupNormalization", 2)
    n, c = x.shape[:2]
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"num_groups={num_groups} does not divide the {c} channels")
    normalized = standardize_last(_as(x, cd).reshape(n, num_groups, -1), epsilon)[0]
    y = _as(normalized.reshape(x.shape), x.dtype)
    y = _as(y, out_cd)

    def per_channel(p: object) -> np.ndarray:
        p = np.asarray(p).reshape(-1)
        if p.size == num_groups and p.size != c:
            p = np.repeat(p, c // num_groups)
        if p.size != c:
            raise ValueError(f"GroupNormalization parameter of size {p.size} for {c} channels")
        return _channel_view(p, x, out_cd)

    y *= per_channel(scale)
    y += per_channel(bias)
    return _as(y, x.dtype)


@register("GroupNormalization", since=18)
def group_normalization_18(x, scale, bias, /, *, num_groups=None, epsilon=1e-5):
    """Opset 18: scale and bias per group (per-channel ones, as runtimes accept, also work)."""
    x = np.asarray(x)
    cd = _compute_dtype(x.dtype)
    return _group_norm(x, scale, bias, num_groups, epsilon, cd, cd)


@register("GroupNormalization", since=21)
def group_normalization(x, scale, bias, /, *, num_groups=None, epsilon=1e-5, stash_type=1):
    """Opset 21: per-channel scale and bias; stage one in ``stash_type`` precision."""
    x = np.asarray(x)
    return _group_norm(
        x, scale, bias, num_groups, epsilon, _stash(stash_type)[1], _compute_dtype(x.dtype)
    )


def _first_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for a tensor of rank {rank}")
    return axis % rank


def _scale_in_place(y: np.ndarray, p: np.ndarray, op) -> np.ndarray:
    """``op(y, p)``, written into ``y`` when that keeps y's shape and type."""
    if (
        y.flags.writeable
        and p.dtype == y.dtype
        and np.broadcast_shapes(y.shape, p.shape) == y.shape
    ):
        return op(y, p, out=y)
    return op(y, p)


@register("LayerNormalization", since=17)
def layer_normalization(x, scale, b=None, /, *, axis=-1, epsilon=1e-5, stash_type=1):
    """Standardize over axes [axis, rank) in stash precision, then scale and shift in X's type.

    Returns (Y, Mean, InvStdDev); the statistics have shape ``X.shape[:axis] + (1,) * ...``.
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("LayerNormalization needs an input of rank >= 1")
    ax = _first_axis(axis, x.ndim)
    declared, cd = _stash(stash_type)
    outer = int(np.prod(x.shape[:ax], dtype=np.int64))
    normalized, mean, inv = standardize_last(_as(x, cd).reshape(outer, -1), epsilon)
    stat_shape = x.shape[:ax] + (1,) * (x.ndim - ax)
    y = _as(normalized.reshape(x.shape), x.dtype)
    y = _as(y, _compute_dtype(x.dtype))
    y = _scale_in_place(y, _as(scale, y.dtype), np.multiply)
    if b is not None:
        y = _scale_in_place(y, _as(b, y.dtype), np.add)
    return (
        _as(y, x.dtype),
        _as(mean.reshape(stat_shape), declared),
        _as(inv.reshape(stat_shape), declared),
    )


@register("RMSNormalization", since=23)
def rms_normalization(x, scale, /, *, axis=-1, epsilon=1e-5, stash_type=1):
    """X / sqrt(mean(X**2 over [axis, rank)) + epsilon) in stash precision, times Scale."""
    x = np.asarray(x)
    scale = np.asarray(scale)
    if x.ndim == 0:
        raise ValueError("RMSNormalization needs an input of rank >= 1")
    ax = _first_axis(axis, x.ndim)
    cd = _stash(stash_type)[1]
    outer = int(np.prod(x.shape[:ax], dtype=np.int64))
    x2 = _as(x, cd).reshape(outer, -1)
    n = x2.shape[-1]
    mean_square = np.einsum("ij,ij->i", x2, x2)[:, None] / cd.type(max(n, 1))
    normalized = x2 / np.sqrt(mean_square + cd.type(epsilon))
    y = _as(_as(normalized.reshape(x.shape), x.dtype), scale.dtype)
    out_cd = _compute_dtype(scale.dtype)
    y = _as(y, out_cd)
    return _as(_scale_in_place(y, _as(scale, out_cd), np.multiply), scale.dtype)


# -- LRN, LpNormalization, MeanVarianceNormalization -----------------------------------------


@register("LRN", since=(1, 13))
def lrn(x, /, *, size=None, alpha=0.0001, beta=0.75, bias=1.0):
    """X / (bias + alpha / size * sum of squares over a channel window) ** beta."""
    if size is None:
        raise ValueError("LRN needs the 'size' attribute")
    x = np.asarray(x)
    _check_rank(x, "LRN", 2)
    cd = _compute_dtype(x.dtype)
    xc = _as(x, cd)
    sq = xc * xc
    c = x.shape[1]
    before = (size - 1) // 2
    after = size - 1 - before  # ceil((size - 1) / 2)
    total = np.zeros_like(sq)
    # window offsets are few: one vectorized add per offset
    for off in range(-before, after + 1):
        lo, hi = max(0, -off), min(c, c - off)
        if lo < hi:
            total[:, lo:hi] += sq[:, lo + off : hi + off]
    denom = np.power(cd.type(bias) + cd.type(alpha / size) * total, cd.type(beta))
    return _as(xc / denom, x.dtype)


@register("LpNormalization", since=(1, 22))
def lp_normalization(x, /, *, axis=-1, p=2):
    """x / ||x||_p along ``axis``; zero where the norm is zero."""
    x = np.asarray(x)
    if p not in (1, 2):
        raise ValueError(f"LpNormalization supports p=1 or p=2, got {p}")
    cd = _compute_dtype(x.dtype)
    xc = _as(x, cd)
    ax = _first_axis(axis, max(x.ndim, 1)) if x.ndim else None
    norm = (
        np.sum(np.abs(xc), axis=ax, keepdims=True)
        if p == 1
        else np.sqrt(np.sum(xc * xc, axis=ax, keepdims=True))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(norm == 0, cd.type(0), xc / norm)
    return _as(y, x.dtype)


@register("MeanVarianceNormalization", since=(9, 13))
def mean_variance_normalization(x, /, *, axes=(0, 2, 3)):
    """(X - E[X]) / (sqrt(E[(X - E[X])**2]) + 1e-9) over ``axes``."""
    x = np.asarray(x)
    cd = _compute_dtype(x.dtype)
    xc = _as(x, cd)
    ax = tuple(sorted({_first_axis(a, x.ndim) for a in axes}))
    mean = xc.mean(axis=ax, keepdims=True)
    d = xc - mean
    std = np.sqrt(np.mean(d * d, axis=ax, keepdims=True))
    d /= std + cd.type(1e-9)
    return _as(d, x.dtype)
