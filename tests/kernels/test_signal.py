"""DFT, STFT, windows and MelWeightMatrix beyond the backend cases.

Expectations use the DFT matrix exp(-2 pi i k n / N) written out here, hand-worked window values
and a loop-based mel filter bank.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto

import onnxpy
from tests.kernels import single_node

RNG = np.random.default_rng(7)


def run(op, inputs, opset=20, **kw):
    return single_node.run(op, inputs, opset, **kw)


def dft_matrix(n_out, n_in, inverse=False):
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    sign = 1 if inverse else -1
    return np.exp(sign * 2j * math.pi * k * n / max(n_out, n_in))


def as_pairs(z):
    return np.stack([z.real, z.imag], axis=-1)


def test_dft_complex_float64_zero_padded_along_axis_input():
    z = RNG.standard_normal((2, 5, 3)) + 1j * RNG.standard_normal((2, 5, 3))
    x = as_pairs(z)  # [2, 5, 3, 2]
    y = run("DFT", [x, np.array(8, dtype=np.int64), np.array(1, dtype=np.int64)])
    assert y.dtype == np.float64 and y.shape == (2, 8, 3, 2)
    padded = np.concatenate([z, np.zeros((2, 3, 3))], axis=1)
    expected = np.einsum("kn,bnc->bkc", dft_matrix(8, 8), padded)
    np.testing.assert_allclose(y, as_pairs(expected), rtol=1e-10, atol=1e-10)


def test_dft_truncates_when_dft_length_is_smaller():
    x = RNG.standard_normal((1, 6, 1))
    y = run("DFT", [x, np.array(4, dtype=np.int32)])  # default axis -2 (opset 20)
    expected = dft_matrix(4, 4) @ x[0, :4, 0]
    np.testing.assert_allclose(y[0], as_pairs(expected), rtol=1e-10, atol=1e-10)


def test_dft_opset17_negative_axis_attribute():
    x = RNG.standard_normal((2, 3, 4, 1)).astype(np.float32)
    y = run("DFT", [x], opset=17, axis=-2)
    expected = np.einsum("kn,abn->abk", dft_matrix(4, 4), x[..., 0].astype(np.float64))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, as_pairs(expected), rtol=1e-5, atol=1e-5)


def test_inverse_dft_undoes_forward():
    x = as_pairs(RNG.standard_normal((1, 7)) + 1j * RNG.standard_normal((1, 7)))
    forward = run("DFT", [x, None, np.array(1, dtype=np.int64)])
    back = run("DFT", [forward, None, np.array(1, dtype=np.int64)], inverse=1)
    np.testing.assert_allclose(back, x, rtol=1e-10, atol=1e-12)


def test_rfft_and_irfft_round_trip_with_odd_length():
    x = RNG.standard_normal((3, 9, 1))
    spec = run("DFT", [x, None, np.array(1, dtype=np.int64)], onesided=1)
    assert spec.shape == (3, 5, 2)
    full = np.einsum("kn,bn->bk", dft_matrix(9, 9), x[..., 0])
    np.testing.assert_allclose(spec, as_pairs(full[:, :5]), rtol=1e-10, atol=1e-10)
    back = run(
        "DFT",
        [spec, np.array(9, dtype=np.int64), np.array(1, dtype=np.int64)],
        onesided=1,
        inverse=1,
    )
    assert back.shape == (3, 9, 1)
    np.testing.assert_allclose(back, x, rtol=1e-10, atol=1e-12)


def test_dft_rejects_the_complex_axis():
    x = np.zeros((2, 4, 1), dtype=np.float32)
    with pytest.raises(onnxpy.Fail):
        run("DFT", [x, None, np.array(2, dtype=np.int64)])


def test_stft_complex_signal_two_sided_with_window():
    z = RNG.standard_normal((2, 10)) + 1j * RNG.standard_normal((2, 10))
    window = np.array([0.5, 1.0, 1.0, 0.5])
    y = run("STFT", [as_pairs(z), np.array(3, dtype=np.int64), window], opset=17, onesided=0)
    assert y.shape == (2, 3, 4, 2)
    for f in range(3):
        frame = z[:, 3 * f : 3 * f + 4] * window
        np.testing.assert_allclose(
            y[:, f], as_pairs(frame @ dft_matrix(4, 4).T), rtol=1e-10, atol=1e-10
        )


def test_stft_real_onesided_frame_length_input():
    x = RNG.standard_normal((1, 12, 1)).astype(np.float32)
    y = run("STFT", [x, np.array(4, dtype=np.int64), None, np.array(6, dtype=np.int64)], opset=17)
    assert y.shape == (1, 2, 4, 2) and y.dtype == np.float32
    frame = x[0, 4:10, 0].astype(np.float64)
    np.testing.assert_allclose(
        y[0, 1], as_pairs(dft_matrix(6, 6)[:4] @ frame), rtol=1e-5, atol=1e-5
    )


def test_windows_hand_values():
    size = np.array(4, dtype=np.int64)
    np.testing.assert_allclose(run("HannWindow", [size], opset=17), [0, 0.5, 1, 0.5], atol=1e-7)
    sym = run("HannWindow", [np.array(5, dtype=np.int32)], opset=17, periodic=0)
    np.testing.assert_allclose(sym, [0, 0.5, 1, 0.5, 0], atol=1e-7)
    # Hamming with a0 = 25/46: endpoints are 2 * 25/46 - 1 = 4/46.
    ham = run("HammingWindow", [size], opset=17, output_datatype=TensorProto.DOUBLE)
    assert ham.dtype == np.float64
    np.testing.assert_allclose(ham, [4 / 46, 25 / 46, 1, 25 / 46], rtol=1e-12)
    black = run("BlackmanWindow", [size], opset=17)
    np.testing.assert_allclose(black, [0, 0.34, 1, 0.34], atol=1e-6)


def test_window_integer_output_truncates():
    y = run(
        "HannWindow", [np.array(4, dtype=np.int64)], opset=17, output_datatype=TensorProto.INT32
    )
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [0, 0, 1, 0])


def mel_loop(num_mel, n_fft, rate, low, high):
    """Loop form: triangles between mel-spaced points floor((n_fft + 1) * hz / rate)."""
    to_mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    to_hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    step = (to_mel(high) - to_mel(low)) / (num_mel + 2)
    pts = [
        math.floor((n_fft + 1) * to_hz(to_mel(low) + i * step) / rate) for i in range(num_mel + 2)
    ]
    out = np.zeros((n_fft // 2 + 1, num_mel))
    for i in range(num_mel):
        lo, mid, hi = pts[i], pts[i + 1], pts[i + 2]
        for j in range(lo, mid + 1):
            out[j, i] = 1.0 if mid == lo else (j - lo) / (mid - lo)
        for j in range(mid, hi):
            out[j, i] = (hi - j) / (hi - mid)
    return out


def test_mel_weight_matrix_matches_loop_form():
    args = [
        np.array(5, dtype=np.int64),
        np.array(64, dtype=np.int64),
        np.array(16000, dtype=np.int64),
        np.array(100.0, dtype=np.float32),
        np.array(6000.0, dtype=np.float32),
    ]
    y = run("MelWeightMatrix", args, opset=17, output_datatype=TensorProto.DOUBLE)
    assert y.shape == (33, 5) and y.dtype == np.float64
    np.testing.assert_allclose(y, mel_loop(5, 64, 16000, 100.0, 6000.0), atol=1e-12)
    assert np.allclose(y.max(axis=0), 1.0)
