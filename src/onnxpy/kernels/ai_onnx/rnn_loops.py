"""The fast time loops of RNN, GRU and LSTM: every direction in one loop, weights laid out once.

They serve the common case: default activations (RNN: Tanh or Relu), no clip, every sequence
full length, and for LSTM no peepholes and no coupled input/forget gates (``rnn.py`` runs the
rest step by step). Per time step a handful of in-place NumPy calls on preallocated buffers
remain, and each of them serves every direction at once: the buffers stack the directions
(see :class:`_Layout`), the reverse direction reading its inputs time-flipped, so a
bidirectional layer costs the calls of one (its recurrent products are one stacked matmul).

Sigmoid is ``0.5 * tanh(0.5 * x) + 0.5``: the sigmoid gates' input and recurrent weights and
biases are halved when laid out (exact: a power of two), and one tanh call serves every gate of
a step. :class:`Weights` holds that layout; a kernel builds it once for constant weights.
"""

from __future__ import annotations

import numpy as np

from onnxpy.kernels.blas import SMALL_PRODUCT, fit_blas_threads
from onnxpy.kernels.blas import matmul as blas_matmul

__all__ = ["Weights", "fit_time_loop", "gru_loop", "lstm_loop", "rnn_loop"]


class Weights:
    """W, R and B of every direction laid out once for the fast loops.

    ``w3`` [G*D, I, H]: the input weights gate by gate (one stacked product projects every
    step of every gate and direction, a little faster with OpenBLAS than one [T*B, I] x
    [I, D*G*H] GEMM: 0.35 instead of 0.42 ms for the zoo LSTM's second layer); ``r_t``
    [D, H, G*H] the recurrent weights transposed; ``bias`` [G, D, 1, H] what is added to the
    projection. The first ``halved`` gates (the sigmoid ones) are scaled by 0.5 throughout.
    For GRU with ``linear_before_reset`` ``rbh`` [D, 1, H] is the recurrent bias of the h
    gate, which the reset gate multiplies.
    """

    __slots__ = ("w3", "r_t", "bias", "rbh", "hidden", "gates")

    def __init__(
        self,
        w: np.ndarray,
        r: np.ndarray,
        b: np.ndarray | None,
        gates: int,
        halved: int,
        dtype: np.dtype,
        linear_before_reset: int | None = None,
    ) -> None:
        w = np.asarray(w).astype(dtype, copy=False)
        r = np.asarray(r).astype(dtype, copy=False)
        dirs, size, hid = r.shape[0], r.shape[1], r.shape[2]
        if size != gates * hid or w.ndim != 3 or w.shape[:2] != (dirs, size):
            raise ValueError(f"W {w.shape} and R {r.shape} do not hold {gates} gates of {hid}")
        scale = np.ones((gates, 1, 1), dtype=dtype)
        scale[:halved] = 0.5
        self.hidden, self.gates = hid, gates
        w4 = w.reshape(dirs, gates, hid, -1) * scale  # [D, G, H, I]
        self.w3 = np.ascontiguousarray(w4.transpose(1, 0, 3, 2).reshape(gates * dirs, -1, hid))
        r_scaled = (r.reshape(dirs, gates, hid, hid) * scale).reshape(dirs, size, hid)
        self.r_t = np.ascontiguousarray(r_scaled.transpose(0, 2, 1))
        self.rbh = None
        if b is None:
            wb = rb = np.zeros((dirs, size), dtype=dtype)
        else:
            bb = np.asarray(b).astype(dtype, copy=False).reshape(dirs, 2 * size)
            wb, rb = bb[:, :size], bb[:, size:]
        if linear_before_reset:
            bias = wb + np.concatenate([rb[:, : 2 * hid], np.zeros((dirs, hid), dtype)], axis=1)
            self.rbh = np.ascontiguousarray(rb[:, None, 2 * hid :])
        else:
            bias = wb + rb
        bias = bias.reshape(dirs, gates, 1, hid) * scale
        self.bias = np.ascontiguousarray(bias.transpose(1, 0, 2, 3))


# Recurrent products of at least this many weights (G * D * H * H) use the full-width layout
# below even for two directions. Measured on whole bidirectional layers at batch 1 (noisy):
# LSTM hidden 384 and 512 ran 10-20 % faster full-width, hidden 256 (2^19) about even or a
# little faster; GRU hidden 128 ran 1.1 instead of 1.4 ms gate-major.
_FULL_WIDTH = 1 << 19


class _Layout:
    """Where the gates of a step live, chosen per (directions, batch, hidden).

    *Gate-major* ``[G, D, B, H]``: each gate a contiguous block (a strided slice costs NumPy
    about twice the call overhead, ~1 instead of ~0.5 us), and the recurrent product is G*D
    small GEMMs in one call; with OpenBLAS and a few batch rows that is several times faster
    than one [B, H] x [H, G*H] GEMM (hidden 256, batch 8: ~40 instead of ~140 us).
    *Full-width* ``[D, B, G*H]``: one GEMV per direction, 7-15 % faster than G GEMVs at batch
    1; with one direction its gates are contiguous too. Two directions at batch 1 use it
    when the product is large enough for that to outweigh the strided gate slices.
    """

    def __init__(self, gates: int, dirs: int, batch: int, hid: int) -> None:
        self.g, self.h = gates, hid
        self.full = batch == 1 and (dirs == 1 or gates * dirs * hid * hid >= _FULL_WIDTH)
        self.step = (dirs, batch, gates * hid) if self.full else (gates, dirs, batch, hid)
        self.state = (dirs, batch, hid) if self.full else (1, dirs, batch, hid)

    def gates(self, a: np.ndarray, first: int, stop: int) -> np.ndarray:
        """Gates ``first:stop`` of ``a`` [..., *step]."""
        if self.full:
            return a[..., first * self.h : stop * self.h]
        return a[..., first:stop, :, :, :]

    def gate(self, a: np.ndarray, k: int) -> np.ndarray:
        """Gate ``k`` of ``a`` [..., *step], shaped like the states (NumPy takes its fast
        path only when every operand has the same shape: ~0.75 instead of ~1.6 us a call)."""
        return self.gates(a, k, k + 1)

    def recurrent(self, wt: Weights, first: int, stop: int) -> np.ndarray:
        """The recurrent weights of gates ``first:stop`` for this layout's product."""
        if self.full:
            return wt.r_t[..., first * self.h : stop * self.h]
        dirs = wt.r_t.shape[0]
        return wt.r_t.reshape(dirs, self.h, self.g, self.h).transpose(2, 0, 1, 3)[first:stop]

    def projections(self, x: np.ndarray, wt: Weights, reverse: tuple[bool, ...]) -> np.ndarray:
        """[T, *step]: input projections plus biases in loop order (reverse directions' steps
        time-flipped), from one stacked product over every step, gate and direction."""
        seq, batch, size = x.shape
        dirs, hid = len(reverse), self.h
        proj = blas_matmul(x.reshape(1, seq * batch, size), wt.w3)  # [G*D, T*B, H]
        proj = proj.reshape(self.g, dirs, seq, batch, hid)
        out = np.empty((seq, *self.step), dtype=proj.dtype)
        for d, rev in enumerate(reverse):
            src = proj[:, d].transpose(1, 0, 2, 3)  # [T, G, B, H]
            if self.full:
                dst = out[:, d].reshape(seq, batch, self.g, hid).transpose(0, 2, 1, 3)
            else:
                dst = out[:, :, d]
            np.add(src[::-1] if rev else src, wt.bias[:, d], out=dst)
        return out


def fit_time_loop(batch: int, hidden: int, size: int) -> None:
    """One BLAS thread for the loop's [B, H] x [H, G*H] products, however large.

    A chain of GEMVs interleaved with small NumPy calls gains little from a second thread
    and suffers when the cores are shared (see ``kernels.blas``): hidden 512, batch 1, a
    direction's GEMV alone took 88 instead of 106 us on two threads, but a whole
    bidirectional layer took 9.4-21 ms on two threads (or as ``blas.matmul`` chose per
    product) against 9.0-9.3 ms on one while other processes kept the cores busy.
    """
    fit_blas_threads(min(batch * hidden * size, SMALL_PRODUCT - 1))


def _start(x, wt: Weights, h0, reverse: tuple[bool, ...]):
    """(layout, projections, outputs [T, *state] in loop order, initial state, temp, 0.5).

    0.5 is a 0-d array of the compute dtype: a Python float costs each call ~0.4 us more.
    """
    batch = x.shape[1]
    lay = _Layout(wt.gates, len(reverse), batch, wt.hidden)
    pl = lay.projections(x, wt, reverse)
    hs = np.empty((pl.shape[0], *lay.state), dtype=pl.dtype)
    h = np.asarray(h0, dtype=pl.dtype).reshape(lay.state)
    fit_time_loop(batch, wt.hidden, wt.gates * wt.hidden)
    half = np.array(0.5, dtype=pl.dtype)
    return lay, pl, hs, h, np.empty(lay.state, dtype=pl.dtype), half


def _results(hs: np.ndarray, h: np.ndarray, reverse: tuple[bool, ...]):
    """(Y [T, D, B, H], final hidden state [D, B, H]) from the loop-order outputs."""
    dirs, batch, hid = h.shape[-3:]
    last = np.array(h.reshape(dirs, batch, hid))  # loop order: every direction's last step
    y = hs.reshape(hs.shape[0], dirs, batch, hid)
    if all(reverse):
        y = y[::-1]
    elif any(reverse):
        for d, rev in enumerate(reverse):
            if rev:
                y[:, d] = y[::-1, d].copy()
    return y, last


def lstm_loop(x, wt: Weights, h0, c0, reverse: tuple[bool, ...]):
    """(Y [T, D, B, H], Y_h [D, B, H], Y_c [D, B, H]) of LSTM gates i, o, f (halved), c."""
    lay, pl, hs, h, tmp, half = _start(x, wt, h0, reverse)
    g = np.empty(lay.step, dtype=pl.dtype)
    sig = lay.gates(g, 0, 3)
    i, o, f, cand = (lay.gate(g, k) for k in range(4))
    cell = np.array(c0, dtype=pl.dtype).reshape(lay.state)
    r = lay.recurrent(wt, 0, 4)
    for s in range(pl.shape[0]):
        np.matmul(h, r, out=g)
        g += pl[s]
        np.tanh(g, out=g)
        sig *= half
        sig += half
        cell *= f
        np.multiply(i, cand, out=tmp)
        cell += tmp
        np.tanh(cell, out=tmp)
        h = hs[s]
        np.multiply(o, tmp, out=h)
    y, last = _results(hs, h, reverse)
    return y, last, cell.reshape(last.shape)


def gru_loop(x, wt: Weights, h0, reverse: tuple[bool, ...]):
    """(Y [T, D, B, H], Y_h [D, B, H]) of GRU gates z, r (halved), h."""
    lay, pl, hs, h, tmp, half = _start(x, wt, h0, reverse)
    g = np.empty(lay.step, dtype=pl.dtype)
    zr = lay.gates(g, 0, 2)
    z, rg, hh = (lay.gate(g, k) for k in range(3))
    if wt.rbh is not None:
        # linear_before_reset: one product for every gate. The h gate's projection is added
        # after the reset gate; its recurrent bias before, in the call that adds the z and r
        # projections.
        add_h = lay.gate(pl, 2).copy()
        lay.gate(pl, 2)[...] = wt.rbh
        r_all = lay.recurrent(wt, 0, 3)
        for s in range(pl.shape[0]):
            np.matmul(h, r_all, out=g)
            g += pl[s]
            np.tanh(zr, out=zr)
            zr *= half
            zr += half
            hh *= rg
            hh += add_h[s]
            np.tanh(hh, out=hh)
            np.subtract(h, hh, out=tmp)  # h' = hh + z * (h - hh)
            tmp *= z
            h = hs[s]
            np.add(hh, tmp, out=h)
    else:
        r_zr, r_h = lay.recurrent(wt, 0, 2), wt.r_t[..., 2 * wt.hidden :]
        add_zr, add_h = lay.gates(pl, 0, 2), lay.gate(pl, 2)
        for s in range(pl.shape[0]):
            np.matmul(h, r_zr, out=zr)
            zr += add_zr[s]
            np.tanh(zr, out=zr)
            zr *= half
            zr += half
            np.multiply(rg, h, out=tmp)
            np.matmul(tmp, r_h, out=hh)
            hh += add_h[s]
            np.tanh(hh, out=hh)
            np.subtract(h, hh, out=tmp)
            tmp *= z
            h = hs[s]
            np.add(hh, tmp, out=h)
    return _results(hs, h, reverse)


def rnn_loop(x, wt: Weights, h0, reverse: tuple[bool, ...], relu: bool):
    """(Y [T, D, B, H], Y_h [D, B, H]) of RNN with Tanh (or Relu) activation."""
    lay, pl, hs, h, _, half = _start(x, wt, h0, reverse)
    r = lay.recurrent(wt, 0, 1)
    zero = np.zeros_like(half)
    for s in range(pl.shape[0]):
        new = hs[s]
        np.matmul(h, r, out=new)
        new += pl[s]
        if relu:
            np.maximum(new, zero, out=new)
        else:
            np.tanh(new, out=new)
        h = new
    return _results(hs, h, reverse)
