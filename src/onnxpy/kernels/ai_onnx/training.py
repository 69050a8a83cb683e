"""Optimizers of the ``ai.onnx.preview.training`` domain: Adagrad, Adam, Momentum.

Each updates n tensors at once: the variadic inputs are ``X_1..X_n`` followed by the per-tensor
state groups (G, then H / V / ...), and the outputs are the new X's followed by the new states.
Arithmetic follows each tensor's own float type (the attribute coefficients are rounded to it,
like float literals mixed with float32 arrays in NumPy).

``Gradient`` is not a kernel here: it needs the forward graph (see the module's report).
"""

from __future__ import annotations

import numpy as np

from onnxpy.kernels.registry import register

_DOMAIN = "ai.onnx.preview.training"


def _groups(tensors: tuple, count: int, op: str) -> list[list[np.ndarray]]:
    """Split the variadic inputs into ``count`` equal groups (X, G, ...)."""
    if not tensors or len(tensors) % count:
        raise ValueError(f"{op} expects {count} inputs per optimized tensor, got {len(tensors)}")
    n = len(tensors) // count
    return [[np.asarray(t) for t in tensors[i * n : (i + 1) * n]] for i in range(count)]


def _scalar(v: object) -> float:
    return float(np.asarray(v).reshape(()))


def _c(value: float, like: np.ndarray) -> np.ndarray:
    """A coefficient in ``like``'s float type."""
    return np.asarray(value, dtype=like.dtype)


@register("Adagrad", since=1, domain=_DOMAIN)
def adagrad(r, t, /, *tensors, decay_factor=0.0, epsilon=1e-6, norm_coefficient=0.0):
    """X_new = X - r * G_reg / (sqrt(H_new) + eps) with H_new = H + G_reg^2."""
    xs, gs, hs = _groups(tensors, 3, "Adagrad")
    rate = _scalar(r) / (1 + _scalar(t) * decay_factor)
    new_x, new_h = [], []
    for x, g, h in zip(xs, gs, hs, strict=True):
        g_reg = _c(norm_coefficient, x) * x + g
        h_new = h + g_reg * g_reg
        x_new = x - _c(rate, x) * g_reg / (np.sqrt(h_new) + _c(epsilon, x))
        new_x.append(x_new.astype(x.dtype, copy=False))
        new_h.append(h_new.astype(h.dtype, copy=False))
    return tuple(new_x + new_h)


@register("Adam", since=1, domain=_DOMAIN)
def adam(
    r,
    t,
    /,
    *tensors,
    alpha=0.9,
    beta=0.999,
    epsilon=1e-6,
    norm_coefficient=0.0,
    norm_coefficient_post=0.0,
):
    """Bias-corrected Adam step with optional L2 terms before and after the update."""
    xs, gs, vs, hs = _groups(tensors, 4, "Adam")
    step = _scalar(t)
    rate = _scalar(r)
    if step > 0:
        rate = rate * np.sqrt(1 - beta**step) / (1 - alpha**step)
    new_x, new_v, new_h = [], [], []
    for x, g, v, h in zip(xs, gs, vs, hs, strict=True):
        g_reg = _c(norm_coefficient, x) * x + g
        v_new = _c(alpha, x) * v + _c(1 - alpha, x) * g_reg
        h_new = _c(beta, x) * h + _c(1 - beta, x) * (g_reg * g_reg)
        h_sqrt = np.sqrt(h_new) + _c(epsilon, x)
        x_new = x - _c(rate, x) * (v_new / h_sqrt)
        x_final = _c(1 - norm_coefficient_post, x) * x_new
        new_x.append(x_final.astype(x.dtype, copy=False))
        new_v.append(v_new.astype(v.dtype, copy=False))
        new_h.append(h_new.astype(h.dtype, copy=False))
    return tuple(new_x + new_v + new_h)


@register("Momentum", since=1, domain=_DOMAIN)
def momentum(r, t, /, *tensors, alpha=None, beta=None, mode=None, norm_coefficient=None):
    """Standard or Nesterov momentum; beta is 1 on the first step (T == 0)."""
    for name, value in (
        ("alpha", alpha),
        ("beta", beta),
        ("mode", mode),
        ("norm_coefficient", norm_coefficient),
    ):
        if value is None:
            raise ValueError(f"Momentum needs the '{name}' attribute")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in ("standard", "nesterov"):
        raise ValueError(f"Momentum mode must be 'standard' or 'nesterov', got {mode!r}")
    xs, gs, vs = _groups(tensors, 3, "Momentum")
    rate = _scalar(r)
    beta_adjusted = beta if _scalar(t) > 0 else 1.0
    new_x, new_v = [], []
    for x, g, v in zip(xs, gs, vs, strict=True):
        g_reg = _c(norm_coefficient, x) * x + g
        v_new = _c(alpha, x) * v + _c(beta_adjusted, x) * g_reg
        if mode == "standard":
            x_new = x - _c(rate, x) * v_new
        else:
            x_new = x - _c(rate, x) * (g_reg + _c(alpha, x) * v_new)
        new_x.append(x_new.astype(x.dtype, copy=False))
        new_v.append(v_new.astype(v.dtype, copy=False))
    return tuple(new_x + new_v)
