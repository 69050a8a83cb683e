"""Random generators: RandomNormal/Uniform(+Like), Multinomial and Bernoulli.

Every call builds its own ``numpy.random.Generator`` (nothing shared between threads). With a
``seed`` attribute the generator is seeded from the seed's float64 bits, so the same seed gives
the same values on every run and in every session; without one it draws fresh OS entropy each
run. Values are drawn in float64 and rounded to the requested type. The numbers differ from
other runtimes' generators for the same seed: the specification leaves the generator open.
"""

from __future__ import annotations

import threading

import numpy as np
from onnx import TensorProto

from onnxpy.kernels.registry import register
from onnxpy.types import ELEM_TYPE_TO_DTYPE

_T = TensorProto
_FLOATS = frozenset(ELEM_TYPE_TO_DTYPE[t] for t in (_T.FLOAT, _T.FLOAT16, _T.DOUBLE, _T.BFLOAT16))
_BERNOULLI_TYPES = _FLOATS | frozenset(
    ELEM_TYPE_TO_DTYPE[t]
    for t in (
        _T.UINT8,
        _T.INT8,
        _T.UINT16,
        _T.INT16,
        _T.INT32,
        _T.INT64,
        _T.BOOL,
        _T.UINT32,
        _T.UINT64,
    )
)


# set_default_seed (onnxruntime's set_seed): unseeded nodes then draw from one seeded sequence,
# so a process that sets the seed and runs the same calls sees the same values.
_default_seed: list[np.random.SeedSequence] = []
_seed_lock = threading.Lock()


def set_default_seed(seed: int | None) -> None:
    """Seed what nodes without a ``seed`` attribute draw (None: fresh entropy again)."""
    with _seed_lock:
        _default_seed[:] = [] if seed is None else [np.random.SeedSequence(int(seed))]


def _generator(seed: float | None) -> np.random.Generator:
    if seed is None:
        if _default_seed:  # unlocked peek: the common, unseeded case takes no lock
            with _seed_lock:
                if _default_seed:
                    return np.random.default_rng(_default_seed[0].spawn(1)[0])
        return np.random.default_rng()
    bits = int(np.asarray(float(seed), dtype=np.float64).view(np.uint64))
    return np.random.default_rng(bits)


def _dtype(elem_type: int | None, fallback: np.dtype | None, allowed=_FLOATS) -> np.dtype:
    dtype = fallback if elem_type is None else ELEM_TYPE_TO_DTYPE.get(int(elem_type))
    if dtype is None or dtype not in allowed:
        raise ValueError(f"unsupported output type {elem_type if elem_type is not None else dtype}")
    return dtype


def _shape(shape: list | None) -> tuple[int, ...]:
    if shape is None:
        raise ValueError("the 'shape' attribute is required")
    return tuple(int(d) for d in shape)


def _normal(shape, dtype, mean, scale, seed) -> np.ndarray:
    values = _generator(seed).normal(float(mean), float(scale), size=shape)
    return values.astype(dtype)


def _uniform(shape, dtype, low, high, seed) -> np.ndarray:
    values = _generator(seed).uniform(float(low), float(high), size=shape)
    return values.astype(dtype)


@register("RandomNormal", since=(1, 22))
def random_normal(*, shape=None, dtype=1, mean=0.0, scale=1.0, seed=None):
    return _normal(_shape(shape), _dtype(dtype, None), mean, scale, seed)


@register("RandomUniform", since=(1, 22))
def random_uniform(*, shape=None, dtype=1, low=0.0, high=1.0, seed=None):
    return _uniform(_shape(shape), _dtype(dtype, None), low, high, seed)


@register("RandomNormalLike", since=(1, 22))
def random_normal_like(input, /, *, dtype=None, mean=0.0, scale=1.0, seed=None):
    """Shape of the input; dtype from the attribute, else the input's."""
    x = np.asarray(input)
    return _normal(x.shape, _dtype(dtype, x.dtype), mean, scale, seed)


@register("RandomUniformLike", since=(1, 22))
def random_uniform_like(input, /, *, dtype=None, low=0.0, high=1.0, seed=None):
    """Shape of the input; dtype from the attribute, else the input's."""
    x = np.asarray(input)
    return _uniform(x.shape, _dtype(dtype, x.dtype), low, high, seed)


@register("Multinomial", since=(7, 22))
def multinomial(input, /, *, dtype=6, sample_size=1, seed=None):
    """``sample_size`` draws per row of unnormalized log-probabilities [batch, classes]."""
    logits = np.asarray(input).astype(np.float64)
    if logits.ndim != 2:
        raise ValueError(f"Multinomial expects [batch_size, class_size], got shape {logits.shape}")
    out_dtype = ELEM_TYPE_TO_DTYPE.get(int(dtype))
    if out_dtype not in (np.int32, np.int64):
        raise ValueError(f"Multinomial output type must be int32 or int64, got {dtype}")
    batch, classes = logits.shape
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    u = _generator(seed).random((batch, int(sample_size)))
    # Inverse CDF: the first class whose cumulative probability exceeds u.
    picks = (cdf[:, None, :] <= u[:, :, None]).sum(axis=2)
    return np.minimum(picks, classes - 1).astype(out_dtype)


@register("Bernoulli", since=(15, 22))
def bernoulli(input, /, *, dtype=None, seed=None):
    """1 with probability p (the input), else 0."""
    p = np.asarray(input)
    out_dtype = _dtype(dtype, p.dtype, _BERNOULLI_TYPES)
    u = _generator(seed).random(p.shape)
    return (u < p.astype(np.float64)).astype(out_dtype)
