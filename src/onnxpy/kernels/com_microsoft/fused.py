"""Fused operators of onnxruntime's graph optimizer: FusedConv, FusedGemm, FusedMatMul.

onnxruntime folds an activation (and for FusedConv an optional residual ``Z``) into the
producing Conv/Gemm, and transposes and scalar multiplies into MatMul. Their semantics are
onnxruntime's contrib-operator documentation; the arithmetic reuses the default-domain Conv and
Gemm runners, which add the bias, Z and then apply the activation in place on the product's
fresh output buffer. Half-precision tensors are computed in float32 and rounded once at the end.

Activations, with their parameters (FusedConv: ``activation_params`` in this order; FusedGemm:
``activation_alpha/beta/gamma``), as onnxruntime accepts them:

* FusedConv: Relu, Tanh, Sigmoid, HardSwish, LeakyRelu [alpha], Clip [min, max],
  HardSigmoid [alpha, beta].
* FusedGemm: Relu, Tanh, Sigmoid, Softplus, Softsign, LeakyRelu (alpha), HardSigmoid (alpha,
  beta), Elu (alpha), Selu (alpha, gamma), ThresholdedRelu (alpha), ScaledTanh (alpha, beta),
  ParametricSoftplus (alpha, beta).

A parameter the activation needs must be given (onnxruntime refuses the node otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from onnxpy.kernels.ai_onnx.activation import (
    hard_swish_in_place,
    relu_in_place,
    sigmoid_in_place,
)
from onnxpy.kernels.ai_onnx.conv import InplaceActivation, compute_dtype, conv_runner
from onnxpy.kernels.ai_onnx.matmul import gemm_runner
from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.kernels.registry import NodeInfo, register

__all__ = ["activation_function", "inplace_activation"]

MS = "com.microsoft"

Activation = Callable[[np.ndarray], np.ndarray]


def _sigmoid(v: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(v: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.zeros((), dtype=v.dtype), v)


# name -> (parameter names, builder taking the parameters as floats)
_ACTIVATIONS: dict[str, tuple[tuple[str, ...], Callable[..., Activation]]] = {
    "Relu": ((), lambda: lambda v: np.maximum(v, 0)),
    "Tanh": ((), lambda: np.tanh),
    "Sigmoid": ((), lambda: _sigmoid),
    "Softplus": ((), lambda: _softplus),
    "Softsign": ((), lambda: lambda v: v / (1 + np.abs(v))),
    "HardSwish": ((), lambda: lambda v: v * np.clip(v / 6 + 0.5, 0, 1)),
    "LeakyRelu": (("alpha",), lambda a: lambda v: np.where(v >= 0, v, v * a)),
    "HardSigmoid": (("alpha", "beta"), lambda a, b: lambda v: np.clip(v * a + b, 0, 1)),
    "Clip": (("min", "max"), lambda lo, hi: lambda v: np.clip(v, lo, hi)),
    "Elu": (("alpha",), lambda a: lambda v: np.where(v > 0, v, a * np.expm1(np.minimum(v, 0)))),
    "Selu": (
        ("alpha", "gamma"),
        lambda a, g: lambda v: g * np.where(v > 0, v, a * np.expm1(np.minimum(v, 0))),
    ),
    "ThresholdedRelu": (("alpha",), lambda a: lambda v: np.where(v > a, v, 0)),
    "ScaledTanh": (("alpha", "beta"), lambda a, b: lambda v: a * np.tanh(b * v)),
    "ParametricSoftplus": (("alpha", "beta"), lambda a, b: lambda v: a * _softplus(b * v)),
}

_CONV_ACTIVATIONS = ("Relu", "Tanh", "Sigmoid", "HardSwish", "LeakyRelu", "Clip", "HardSigmoid")
_GEMM_ACTIVATIONS = (
    "Relu",
    "Tanh",
    "Sigmoid",
    "Softplus",
    "Softsign",
    "LeakyRelu",
    "HardSigmoid",
    "Elu",
    "Selu",
    "ThresholdedRelu",
    "ScaledTanh",
    "ParametricSoftplus",
)


def activation_function(name: str, params: Sequence[float], allowed: Sequence[str]) -> Activation:
    """The activation ``name`` bound to its parameters (in the documented order)."""
    if name not in allowed:
        raise ValueError(f"activation '{name}' is not supported here; expected one of {allowed}")
    param_names, build = _ACTIVATIONS[name]
    if len(params) < len(param_names):
        raise ValueError(f"activation '{name}' needs parameters {list(param_names)}")
    return build(*(float(p) for p in params[: len(param_names)]))


def _leaky_relu_inplace(alpha: float) -> InplaceActivation:
    def act(y: np.ndarray) -> None:
        scaled = y * y.dtype.type(alpha)
        # For 0 <= alpha <= 1 the larger of y and alpha*y is y where y >= 0, else alpha*y.
        if 0.0 <= alpha <= 1.0:
            np.maximum(y, scaled, out=y)
        else:
            np.copyto(y, scaled, where=y < 0)

    return act


def _hard_sigmoid_inplace(alpha: float, beta: float) -> InplaceActivation:
    def act(y: np.ndarray) -> None:
        y *= y.dtype.type(alpha)
        y += y.dtype.type(beta)
        np.clip(y, 0, 1, out=y)

    return act


def _clip_inplace(lo: float, hi: float) -> InplaceActivation:
    def act(y: np.ndarray) -> None:
        np.clip(y, y.dtype.type(lo), y.dtype.type(hi), out=y)

    return act


# Activations that update a float32/float64 buffer in place (no temporary the size of y for
# Relu, Tanh, Sigmoid, Clip, HardSigmoid).
_INPLACE: dict[str, Callable[..., InplaceActivation]] = {
    "Relu": lambda: relu_in_place,
    "Tanh": lambda: lambda y: np.tanh(y, out=y),
    "Sigmoid": lambda: sigmoid_in_place,
    "HardSwish": lambda: hard_swish_in_place,
    "LeakyRelu": _leaky_relu_inplace,
    "HardSigmoid": _hard_sigmoid_inplace,
    "Clip": _clip_inplace,
}


def inplace_activation(
    name: str, params: Sequence[float], allowed: Sequence[str]
) -> InplaceActivation:
    """The activation ``name`` as a function updating a float buffer in place."""
    if name not in allowed:
        raise ValueError(f"activation '{name}' is not supported here; expected one of {allowed}")
    param_names, _ = _ACTIVATIONS[name]
    if len(params) < len(param_names):
        raise ValueError(f"activation '{name}' needs parameters {list(param_names)}")
    values = [float(p) for p in params[: len(param_names)]]
    if name in _INPLACE:
        return _INPLACE[name](*values)
    fn = _ACTIVATIONS[name][1](*values)

    def act(y: np.ndarray) -> None:
        y[...] = fn(y)

    return act


def _cast(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == dtype:
        return y
    with np.errstate(all="ignore"):
        return y.astype(dtype)


# -- FusedConv -------------------------------------------------------------------------------


@register("FusedConv", since=1, domain=MS, factory=True, fresh=True)
def fused_conv(
    info: NodeInfo,
    *,
    activation: str | None = None,
    activation_params: list[float] | None = None,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Callable[..., np.ndarray]:
    """Y = activation(Conv(X, W, B) + Z): the Conv product with bias, Z and the activation
    applied in place on its output buffer."""
    act = None
    if activation:
        act = inplace_activation(activation, activation_params or [], _CONV_ACTIVATIONS)
    return conv_runner(
        info,
        auto_pad=auto_pad,
        dilations=dilations,
        group=group,
        kernel_shape=kernel_shape,
        pads=pads,
        strides=strides,
        activation=act,
    )


# -- FusedGemm -------------------------------------------------------------------------------


@register("FusedGemm", since=1, domain=MS, factory=True, fresh=True)
def fused_gemm(
    info: NodeInfo,
    *,
    activation: str | None = None,
    activation_alpha: float | None = None,
    activation_beta: float | None = None,
    activation_gamma: float | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
) -> Callable[..., np.ndarray]:
    """Y = activation(alpha * A' @ B' + beta * C): the Gemm kernel, then the activation in
    place on its (fresh) output."""
    act = None
    if activation:
        by_name = {"alpha": activation_alpha, "beta": activation_beta, "gamma": activation_gamma}
        needed, _ = _ACTIVATIONS.get(activation, ((), None))
        missing = [p for p in needed if by_name[p] is None]
        if missing:
            raise ValueError(f"activation '{activation}' needs activation_{missing[0]}")
        act = inplace_activation(activation, [by_name[p] for p in needed], _GEMM_ACTIVATIONS)
    return gemm_runner(info, alpha=alpha, beta=beta, transA=transA, transB=transB, activation=act)


# -- FusedMatMul / TransposeMatMul -----------------------------------------------------------


def _operand(x: np.ndarray, trans: int, trans_batch: int, what: str) -> np.ndarray:
    """The operand as multiplied: batch axes rotated first, then the last two swapped."""
    if trans_batch:
        if x.ndim < 3:
            raise ValueError(f"transBatch{what} needs an operand of rank >= 3, got {x.ndim}")
        # (d0, d1, ..., d[r-2], d[r-1]) -> (d1, ..., d[r-2], d0, d[r-1])
        x = np.moveaxis(x, 0, -2)
    if trans and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    return x


def _fused_matmul(a, b, alpha: float, trans_a: int, trans_b: int, tba: int, tbb: int):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        raise TypeError(f"operands differ in type: {a.dtype} and {b.dtype}")
    dtype = a.dtype
    ct = compute_dtype(dtype)
    ca = _operand(a.astype(ct, copy=False), trans_a, tba, "A")
    cb = _operand(b.astype(ct, copy=False), trans_b, tbb, "B")
    y = blas_matmul(ca, cb)
    if alpha != 1.0:
        y = y * np.asarray(alpha, dtype=ct)
    return _cast(y, dtype)


@register("FusedMatMul", since=1, domain=MS)
def fused_matmul(
    a, b, /, *, alpha=1.0, transA=0, transB=0, transBatchA=0, transBatchB=0
) -> np.ndarray:
    """alpha * matmul(A', B') with numpy.matmul broadcasting over the batch axes."""
    return _fused_matmul(a, b, alpha, transA, transB, transBatchA, transBatchB)


@register("TransposeMatMul", since=1, domain=MS)
def transpose_matmul(a, b, /, *, alpha=1.0, transA=0, transB=0) -> np.ndarray:
    """The older name of FusedMatMul, without the batch transposes."""
    return _fused_matmul(a, b, alpha, transA, transB, 0, 0)
