"""Signal processing: DFT, STFT, the cosine-sum windows and MelWeightMatrix.

Complex values travel as a trailing dimension of size 2 (real, imaginary); a trailing size 1
means a real signal. Transforms run through ``numpy.fft`` in the input's precision (complex128
for float64, complex64 otherwise; float16/bfloat16 are rounded back at the end).
"""

from __future__ import annotations

import math

import numpy as np

from onnxpy.kernels.registry import register
from onnxpy.types import ELEM_TYPE_TO_DTYPE


def _real_dtype(dtype: np.dtype) -> np.dtype:
    """The precision transforms run in: float64 for float64 input, float32 otherwise."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _to_complex(x: np.ndarray) -> np.ndarray:
    """[..., 1] real or [..., 2] complex -> complex array without the last dimension."""
    real = _real_dtype(x.dtype)
    if x.shape[-1] == 1:
        return x[..., 0].astype(real)
    if x.shape[-1] == 2:
        v = x.astype(real)
        return v[..., 0] + 1j * v[..., 1]
    raise ValueError(f"the last dimension must be 1 (real) or 2 (complex), got {x.shape[-1]}")


def _from_complex(z: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.stack([z.real, z.imag], axis=-1).astype(dtype)


def _scalar_int(v: object, name: str) -> int:
    a = np.asarray(v)
    if a.size != 1:
        raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
    return int(a.reshape(()))


def _dft(x: object, dft_length: object, axis: int, inverse: int, onesided: int) -> np.ndarray:
    x = np.asarray(x)
    rank = x.ndim
    if not (-rank <= axis <= -2 or 0 <= axis <= rank - 2):
        raise ValueError(f"axis {axis} out of range for an input of rank {rank}")
    ax = axis + rank if axis < 0 else axis
    z = _to_complex(x)
    n = None if dft_length is None else _scalar_int(dft_length, "dft_length")
    if n is not None and n < 1:
        raise ValueError(f"dft_length must be positive, got {n}")
    if onesided and inverse:  # IRFFT: one-sided spectrum -> real signal
        out = np.fft.irfft(z, n=n, axis=ax)
        return out[..., None].astype(x.dtype)
    if inverse:
        return _from_complex(np.fft.ifft(z, n=n, axis=ax), x.dtype)
    full = np.fft.fft(z, n=n, axis=ax)
    if onesided:
        bins = full.shape[ax] // 2 + 1
        full = np.take(full, np.arange(bins), axis=ax)
    return _from_complex(full, x.dtype)


@register("DFT", since=17)
def dft_17(input, dft_length=None, /, *, axis=1, inverse=0, onesided=0):
    """The axis is an attribute (default 1, the first axis after the batch)."""
    return _dft(input, dft_length, int(axis), inverse, onesided)


@register("DFT", since=20)
def dft_20(input, dft_length=None, axis=None, /, *, inverse=0, onesided=0):
    """The axis is an optional scalar input (default -2, the last signal axis)."""
    ax = -2 if axis is None else _scalar_int(axis, "axis")
    return _dft(input, dft_length, ax, inverse, onesided)


@register("STFT", since=17)
def stft(signal, frame_step, window=None, frame_length=None, /, *, onesided=1):
    """DFT of each frame ``signal[b, k*step : k*step + length]`` times the window."""
    signal = np.asarray(signal)
    if signal.ndim != 3:
        raise ValueError(f"STFT expects a signal of rank 3, got rank {signal.ndim}")
    z = _to_complex(signal)  # [B, L]
    step = _scalar_int(frame_step, "frame_step")
    length = None if frame_length is None else _scalar_int(frame_length, "frame_length")
    if window is not None:
        win = np.asarray(window).reshape(-1)
        if length is not None and length != win.shape[0]:
            raise ValueError(f"window has length {win.shape[0]}, frame_length is {length}")
        length = win.shape[0]
    elif length is None:
        length = z.shape[1]
    if step < 1 or length < 1 or length > z.shape[1]:
        raise ValueError(f"invalid frame_step {step} / frame_length {length}")
    frames = (z.shape[1] - length) // step + 1
    idx = np.arange(frames)[:, None] * step + np.arange(length)[None, :]
    segments = z[:, idx]  # [B, F, N]
    if window is not None:
        segments = segments * win.astype(segments.real.dtype)
    spectrum = np.fft.fft(segments, axis=-1)
    if onesided:
        if signal.shape[-1] == 2:
            raise ValueError("STFT: onesided output needs a real signal")
        spectrum = spectrum[..., : length // 2 + 1]
    return _from_complex(spectrum, signal.dtype)


# -- windows ---------------------------------------------------------------------------------------


def _output_dtype(output_datatype: int) -> np.dtype:
    dtype = ELEM_TYPE_TO_DTYPE.get(int(output_datatype))
    if dtype is None:
        raise ValueError(f"unsupported output_datatype {output_datatype}")
    return dtype


def _cosine_window(size, periodic, output_datatype, a0: float, a1: float, a2: float):
    """a0 - a1 cos(2 pi k / N) + a2 cos(4 pi k / N), N = size (periodic) or size - 1."""
    n = _scalar_int(size, "size")
    if n < 0:
        raise ValueError(f"window size must be non-negative, got {n}")
    denom = n if periodic else n - 1
    k = np.arange(n, dtype=np.float64)
    if denom <= 0:
        w = np.ones(n, dtype=np.float64)
    else:
        angle = 2 * math.pi * k / denom
        w = a0 - a1 * np.cos(angle) + a2 * np.cos(2 * angle)
    return w.astype(_output_dtype(output_datatype))


@register("HannWindow", since=17)
def hann_window(size, /, *, output_datatype=1, periodic=1):
    return _cosine_window(size, periodic, output_datatype, 0.5, 0.5, 0.0)


@register("HammingWindow", since=17)
def hamming_window(size, /, *, output_datatype=1, periodic=1):
    return _cosine_window(size, periodic, output_datatype, 25 / 46, 21 / 46, 0.0)


@register("BlackmanWindow", since=17)
def blackman_window(size, /, *, output_datatype=1, periodic=1):
    return _cosine_window(size, periodic, output_datatype, 0.42, 0.5, 0.08)


# -- mel filter bank -----------------------------------------------------------------------------


@register("MelWeightMatrix", since=17)
def mel_weight_matrix(
    num_mel_bins,
    dft_length,
    sample_rate,
    lower_edge_hertz,
    upper_edge_hertz,
    /,
    *,
    output_datatype=1,
):
    """Triangular filters with peak 1 between mel-spaced points mapped to DFT bins.

    ``num_mel_bins + 2`` points are spaced by ``(mel(upper) - mel(lower)) / (num_mel_bins + 2)``
    from mel(lower), converted back to hertz and to the bin ``floor((dft_length + 1) * f /
    sample_rate)``; filter ``i`` rises from point ``i`` to ``i + 1`` and falls to ``i + 2``.
    """
    mels = _scalar_int(num_mel_bins, "num_mel_bins")
    n_fft = _scalar_int(dft_length, "dft_length")
    rate = _scalar_int(sample_rate, "sample_rate")
    low = float(np.asarray(lower_edge_hertz, dtype=np.float64).reshape(()))
    high = float(np.asarray(upper_edge_hertz, dtype=np.float64).reshape(()))
    if mels < 1 or n_fft < 1 or rate < 1:
        raise ValueError("num_mel_bins, dft_length and sample_rate must be positive")
    low_mel = 2595 * np.log10(1 + low / 700)
    high_mel = 2595 * np.log10(1 + high / 700)
    step = (high_mel - low_mel) / (mels + 2)
    hz = 700 * (10 ** ((low_mel + np.arange(mels + 2) * step) / 2595) - 1)
    points = np.floor((n_fft + 1) * hz / rate).astype(np.int64)
    left, center, right = points[:-2], points[1:-1], points[2:]
    j = np.arange(n_fft // 2 + 1, dtype=np.float64)[:, None]
    rise_width = np.maximum(center - left, 1)
    fall_width = np.maximum(right - center, 1)
    rising = np.where(center > left, (j - left) / rise_width, 1.0)
    out = np.where((j >= left) & (j <= center), rising, 0.0)
    falling = (right - j) / fall_width
    out = np.where((j >= center) & (j < right), falling, out)
    return out.astype(_output_dtype(output_datatype))
