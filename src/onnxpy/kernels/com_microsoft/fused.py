"""Fused operators of onnxruntime's graph optimizer: FusedConv, FusedGemm, FusedMatMul.

onnxruntime folds an activation (and for FusedConv an optional residual ``Z``) into the
producing Conv/Gemm, and transposes and scalar multiplies into MatMul. Their semantics are
onnxruntime's contrib-operator documentation; the arithmetic reuses the default-domain Conv and
Gemm kernels. Half-precision tensors are computed in float32 and rounded once at the end.

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

from onnxpy.kernels.ai_onnx.conv import compute_dtype
from onnxpy.kernels.ai_onnx.conv import conv as _conv_factory
from onnxpy.kernels.ai_onnx.matmul import gemm as _gemm_kernel
from onnxpy.kernels.registry import NodeInfo, register

__all__ = ["activation_function"]

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


def _apply(act: Activation | None, y: np.ndarray) -> np.ndarray:
    if act is None:
        return y
    with np.errstate(all="ignore"):
        return np.asarray(act(y), dtype=y.dtype)


def _cast(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == dtype:
        return y
    with np.errstate(all="ignore"):
        return y.astype(dtype)


# -- FusedConv -------------------------------------------------------------------------------


@register("FusedConv", since=1, domain=MS, factory=True)
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
    """Y = activation(Conv(X, W, B) + Z): the default-domain Conv, then the fused tail."""
    act = None
    if activation:
        act = activation_function(activation, activation_params or [], _CONV_ACTIVATIONS)
    conv_run = _conv_factory(
        info,
        auto_pad=auto_pad,
        dilations=dilations,
        group=group,
        kernel_shape=kernel_shape,
        pads=pads,
        strides=strides,
    )

    def run(x, w, b=None, z=None) -> np.ndarray:
        x = np.asarray(x)
        # Conv computes a float32 input in float32 (its cached weight serves any input type).
        y = conv_run(x.astype(compute_dtype(x.dtype), copy=False), w, b)
        if z is not None:
            zc = np.asarray(z, dtype=y.dtype)
            if np.broadcast_shapes(zc.shape, y.shape) != y.shape:
                raise ValueError(f"Z of shape {zc.shape} does not match the output {y.shape}")
            y = y + zc
        return _cast(_apply(act, y), x.dtype)

    return run


# -- FusedGemm -------------------------------------------------------------------------------


@register("FusedGemm", since=1, domain=MS, factory=True)
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
    """Y = activation(alpha * A' @ B' + beta * C): Gemm followed by the fused activation."""
    act = None
    if activation:
        by_name = {"alpha": activation_alpha, "beta": activation_beta, "gamma": activation_gamma}
        needed, _ = _ACTIVATIONS.get(activation, ((), None))
        missing = [p for p in needed if by_name[p] is None]
        if missing:
            raise ValueError(f"activation '{activation}' needs activation_{missing[0]}")
        act = activation_function(activation, [by_name[p] for p in needed], _GEMM_ACTIVATIONS)

    def run(a, b, c=None) -> np.ndarray:
        a = np.asarray(a)
        dtype = a.dtype
        if dtype.kind not in "iu" and dtype not in (np.float32, np.float64):
            a, b = a.astype(np.float32), np.asarray(b, dtype=np.float32)
            c = None if c is None else np.asarray(c, dtype=np.float32)
        y = _gemm_kernel(a, b, c, alpha=alpha, beta=beta, transA=transA, transB=transB)
        return _cast(_apply(act, y), dtype)

    return run


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
    y = np.matmul(ca, cb)
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
