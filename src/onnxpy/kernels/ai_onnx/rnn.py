"""Recurrent layers: RNN, GRU and LSTM.

The input projection ``X @ W^T + biases`` is computed for every time step with one matrix
product; only the recurrence ``H @ R^T`` runs in the time loop. With ``sequence_lens`` a batch
entry stops updating its state after its length (its ``Y`` rows there are zero), and the
reverse direction starts at each entry's last valid step. float16/bfloat16 are computed in
float32 and rounded back. ``activation_alpha``/``activation_beta`` are consumed, in order, only
by the activation functions that take that parameter (others use the ONNX defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from onnxpy.kernels.ai_onnx.rnn_loops import (
    Weights,
    fit_time_loop,
    gru_loop,
    lstm_loop,
    rnn_loop,
)
from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.kernels.registry import NodeInfo, register

Activation = Callable[[np.ndarray], np.ndarray]


# -- activation functions ------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.zeros((), dtype=x.dtype), x)


def _make(name: str, alpha: float, beta: float) -> Activation:
    """The function ``name`` with its parameters bound (alpha/beta as given or defaulted)."""
    if name == "relu":
        return lambda x: np.maximum(x, 0)
    if name == "tanh":
        return np.tanh
    if name == "sigmoid":
        return _sigmoid
    if name == "affine":
        return lambda x: alpha * x + beta
    if name == "leakyrelu":
        return lambda x: np.where(x >= 0, x, alpha * x)
    if name == "thresholdedrelu":
        return lambda x: np.where(x >= alpha, x, 0)
    if name == "scaledtanh":
        return lambda x: alpha * np.tanh(beta * x)
    if name == "hardsigmoid":
        return lambda x: np.clip(alpha * x + beta, 0, 1)
    if name == "elu":
        return lambda x: np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0)))
    if name == "softsign":
        return lambda x: x / (1 + np.abs(x))
    if name == "softplus":
        return _softplus
    raise ValueError(f"unknown activation function '{name}'")


# name -> (default alpha or None when unused, default beta or None when unused)
_PARAMS: dict[str, tuple[float | None, float | None]] = {
    "relu": (None, None),
    "tanh": (None, None),
    "sigmoid": (None, None),
    "affine": (1.0, 0.0),
    "leakyrelu": (0.01, None),
    "thresholdedrelu": (1.0, None),
    "scaledtanh": (1.0, 1.0),
    "hardsigmoid": (0.2, 0.5),
    "elu": (1.0, None),
    "softsign": (None, None),
    "softplus": (None, None),
}


def _activations(
    names: list | None,
    alphas: list | None,
    betas: list | None,
    defaults: tuple[str, ...],
    num_directions: int,
) -> list[list[Activation]]:
    """Per direction, the bound activation functions (``len(defaults)`` of them)."""
    count = len(defaults)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in (names or defaults)]
    if len(names) == count and num_directions == 2:
        names = names * 2
    if len(names) < count * num_directions:
        raise ValueError(f"expected {count * num_directions} activations, got {len(names)}")
    alpha_iter, beta_iter = iter(alphas or []), iter(betas or [])
    funcs = []
    for name in names[: count * num_directions]:
        key = name.lower()
        if key not in _PARAMS:
            raise ValueError(f"unknown activation function '{name}'")
        default_alpha, default_beta = _PARAMS[key]
        alpha = next(alpha_iter, default_alpha) if default_alpha is not None else 0.0
        beta = next(beta_iter, default_beta) if default_beta is not None else 0.0
        funcs.append(_make(key, float(alpha), float(beta)))
    return [funcs[d * count : (d + 1) * count] for d in range(num_directions)]


def _default_functions(names: list | None, defaults: tuple[str, ...]) -> bool:
    """True when ``activations`` is omitted or names exactly the defaults (per direction)."""
    if not names:
        return True
    low = [(n.decode() if isinstance(n, bytes) else str(n)).lower() for n in names]
    want = [d.lower() for d in defaults]
    return low in (want, want * 2)


# -- shared driver -------------------------------------------------------------------------------


@dataclass
class _Common:
    """Inputs normalized to layout 0 and the compute dtype."""

    x: np.ndarray  # [T, B, I]
    dtype: np.dtype  # result dtype
    num_directions: int
    directions: tuple[bool, ...]  # reverse flag per direction
    hidden: int
    lens: np.ndarray | None  # [B] int64, None when every sequence is full length
    clip: float | None


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _common(x, r, sequence_lens, direction, layout, hidden_size, clip) -> _Common:
    x = np.asarray(x)
    dtype = x.dtype
    cx = x.astype(_compute_dtype(dtype), copy=False)
    if layout == 1:
        cx = cx.transpose(1, 0, 2)
    elif layout != 0:
        raise ValueError(f"layout must be 0 or 1, got {layout}")
    if isinstance(direction, bytes):
        direction = direction.decode()
    if direction in ("forward", "foward"):
        directions: tuple[bool, ...] = (False,)
    elif direction == "reverse":
        directions = (True,)
    elif direction == "bidirectional":
        directions = (False, True)
    else:
        raise ValueError(f"unknown direction '{direction}'")
    hidden = int(hidden_size) if hidden_size is not None else int(np.shape(r)[-1])
    seq_len, batch = cx.shape[0], cx.shape[1]
    lens = None
    if sequence_lens is not None:
        lens = np.asarray(sequence_lens, dtype=np.int64).reshape(batch)
        if np.any(lens < 0) or np.any(lens > seq_len):
            raise ValueError(f"sequence_lens must lie in [0, {seq_len}], got {lens.tolist()}")
        if np.all(lens == seq_len):
            lens = None
    if np.asarray(r).shape[0] != len(directions):
        raise ValueError(f"R has {np.asarray(r).shape[0]} directions, expected {len(directions)}")
    return _Common(cx, dtype, len(directions), directions, hidden, lens, clip)


def _weight(w: object, cdt: np.dtype) -> np.ndarray:
    return np.asarray(w).astype(cdt, copy=False)


def _initial(value: object, c: _Common, layout: int) -> np.ndarray:
    """A [D, B, H] initial state (zeros when omitted)."""
    batch = c.x.shape[1]
    if value is None:
        return np.zeros((c.num_directions, batch, c.hidden), dtype=c.x.dtype)
    v = np.asarray(value).astype(c.x.dtype, copy=False)
    return v.transpose(1, 0, 2) if layout == 1 else v


def _order(c: _Common, reverse: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(time index read at each step [T, B] or None for plain order, step validity or None).

    Reversing each entry's valid prefix and leaving its padding in place is a permutation
    that is its own inverse, so the same index gathers inputs and scatters outputs back.
    """
    seq_len, batch = c.x.shape[:2]
    steps = np.arange(seq_len)[:, None]
    if c.lens is None:
        if not reverse:
            return None, None
        return np.broadcast_to(seq_len - 1 - steps, (seq_len, batch)), None
    valid = steps < c.lens[None, :]
    if not reverse:
        return None, valid
    return np.where(valid, c.lens[None, :] - 1 - steps, steps), valid


def _gather(a: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    if idx is None:
        return a
    return a[idx, np.arange(a.shape[1])[None, :]]


def _clip(c: _Common) -> Callable[[np.ndarray], np.ndarray]:
    if c.clip is None:
        return lambda v: v
    bound = float(c.clip)
    return lambda v: np.clip(v, -bound, bound)


Cell = Callable[[np.ndarray, list[np.ndarray]], list[np.ndarray]]


def _run(c: _Common, proj: np.ndarray, states: list[np.ndarray], cell: Cell, reverse: bool):
    """Loop ``cell`` over time for one direction.

    ``proj`` [T, B, G*H] is the input projection, ``states`` the initial [B, H] states (hidden
    first). Returns Y [T, B, H] and the final states.
    """
    idx, valid = _order(c, reverse)
    proj = _gather(proj, idx)
    seq_len, batch = proj.shape[:2]
    ys = np.zeros((seq_len, batch, c.hidden), dtype=proj.dtype)
    fit_time_loop(batch, c.hidden, proj.shape[-1])
    for s in range(seq_len):
        new = cell(proj[s], states)
        if valid is None:
            states = new
            ys[s] = new[0]
        else:
            m = valid[s][:, None]
            states = [np.where(m, n, o) for n, o in zip(new, states, strict=True)]
            ys[s] = np.where(m, new[0], 0)
    return _gather(ys, idx), states


def _projection(c: _Common, w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    seq_len, batch, size = c.x.shape
    proj = blas_matmul(c.x.reshape(seq_len * batch, size), w.T)
    proj += bias
    return proj.reshape(seq_len, batch, -1)


def _outputs(c: _Common, layout: int, ys: list, finals: list[list[np.ndarray]]) -> tuple:
    """Y and the final states from per-direction results of the general loop."""
    y = np.stack(ys, axis=1)
    states = [np.stack(s, axis=0) for s in zip(*finals, strict=True)]
    return _finish(c, layout, y, states)


def _biases(b: object, d: int, gates: int, hidden: int, cdt: np.dtype):
    """(Wb, Rb) of direction ``d``, zeros when B is omitted."""
    if b is None:
        z = np.zeros(gates * hidden, dtype=cdt)
        return z, z
    row = _weight(b, cdt)[d]
    return row[: gates * hidden], row[gates * hidden :]


_GRU_DEFAULTS = ("Sigmoid", "Tanh")
_LSTM_DEFAULTS = ("Sigmoid", "Tanh", "Tanh")


def _finish(c: _Common, layout: int, y: np.ndarray, states: list[np.ndarray]) -> tuple:
    """Y [T, D, B, H] and the final states [D, B, H] in the node's layout and dtype."""
    if layout == 1:
        y = y.transpose(2, 0, 1, 3)
        states = [s.transpose(1, 0, 2) for s in states]
    return tuple(np.ascontiguousarray(v).astype(c.dtype, copy=False) for v in [y, *states])


class _Prepared:
    """:class:`Weights` for the fast loops. When W and R (and B, if given) are constants of the
    model, those same arrays arrive at every run: they are laid out on the first run that
    takes a fast loop and kept (a node that never does keeps nothing). Other weights are laid
    out per run."""

    def __init__(self, info: NodeInfo, gates: int, halved: int, lbr: int | None = None):
        self.w, self.r, self.b = (info.constant_inputs.get(k) for k in (1, 2, 3))
        self.layout = (gates, halved, lbr)
        self.ready: dict[np.dtype, Weights] = {}

    def get(self, w, r, b, dt: np.dtype) -> Weights:
        gates, halved, lbr = self.layout
        if (
            self.w is None
            or self.r is None
            or w is not self.w
            or r is not self.r
            or b is not self.b
        ):
            return Weights(w, r, b, gates, halved, dt, lbr)
        ready = self.ready.get(dt)
        if ready is None:
            ready = self.ready[dt] = Weights(w, r, b, gates, halved, dt, lbr)
        return ready


# -- RNN -----------------------------------------------------------------------------------------


@register("RNN", since=(1, 7, 14, 22), factory=True)
def rnn(
    info: NodeInfo,
    *,
    activation_alpha=None,
    activation_beta=None,
    activations=None,
    clip=None,
    direction="forward",
    hidden_size=None,
    layout=0,
    output_sequence=0,
):
    """Ht = f(Xt*Wi^T + Ht-1*Ri^T + Wbi + Rbi)."""
    prepared = _Prepared(info, 1, 0)
    tanh, relu = (_default_functions(activations, (n,)) for n in ("Tanh", "Relu"))

    def run(x, w, r, b=None, sequence_lens=None, initial_h=None, /):
        c = _common(x, r, sequence_lens, direction, layout, hidden_size, clip)
        h0 = _initial(initial_h, c, layout)
        if c.clip is None and c.lens is None and (tanh or relu):
            wt = prepared.get(w, r, b, c.x.dtype)
            y, yh = rnn_loop(c.x, wt, h0, c.directions, relu=not tanh)
            return _finish(c, layout, y, [yh])
        cdt = c.x.dtype
        funcs = _activations(
            activations, activation_alpha, activation_beta, ("Tanh",), c.num_directions
        )
        clip_fn = _clip(c)
        ys, finals = [], []
        for d, reverse in enumerate(c.directions):
            wb, rb = _biases(b, d, 1, c.hidden, cdt)
            rt = _weight(r, cdt)[d].T
            f = funcs[d][0]

            def cell(xp, states, rt=rt, f=f):
                return [f(clip_fn(xp + states[0] @ rt))]

            proj = _projection(c, _weight(w, cdt)[d], wb + rb)
            y, st = _run(c, proj, [h0[d]], cell, reverse)
            ys.append(y)
            finals.append(st)
        return _outputs(c, layout, ys, finals)

    return run


# -- GRU -----------------------------------------------------------------------------------------


@register("GRU", since=(1, 3, 7, 14, 22), factory=True)
def gru(
    info: NodeInfo,
    *,
    activation_alpha=None,
    activation_beta=None,
    activations=None,
    clip=None,
    direction="forward",
    hidden_size=None,
    layout=0,
    linear_before_reset=0,
    output_sequence=0,
):
    """Gates z, r, h; ``linear_before_reset`` applies r after the recurrent product."""
    prepared = _Prepared(info, 3, 2, 1 if linear_before_reset else 0)
    default_functions = _default_functions(activations, _GRU_DEFAULTS)

    def run(x, w, r, b=None, sequence_lens=None, initial_h=None, /):
        c = _common(x, r, sequence_lens, direction, layout, hidden_size, clip)
        h0 = _initial(initial_h, c, layout)
        if c.clip is None and c.lens is None and default_functions:
            y, yh = gru_loop(c.x, prepared.get(w, r, b, c.x.dtype), h0, c.directions)
            return _finish(c, layout, y, [yh])
        funcs = _activations(
            activations, activation_alpha, activation_beta, _GRU_DEFAULTS, c.num_directions
        )
        return _gru_general(c, w, r, b, h0, layout, linear_before_reset, funcs)

    return run


def _gru_general(c: _Common, w, r, b, h0, layout: int, lbr: int, funcs) -> tuple:
    """GRU step by step: any activations, clip, sequence_lens."""
    cdt, hid = c.x.dtype, c.hidden
    clip_fn = _clip(c)
    ys, finals = [], []
    for d, reverse in enumerate(c.directions):
        wb, rb = _biases(b, d, 3, hid, cdt)
        rd = _weight(r, cdt)[d]
        r_zr, r_h = rd[: 2 * hid].T, rd[2 * hid :].T
        f, g = funcs[d]
        if lbr:
            bias = wb + np.concatenate([rb[: 2 * hid], np.zeros(hid, dtype=cdt)])
            rbh = rb[2 * hid :]
        else:
            bias, rbh = wb + rb, None

        def cell(xp, states, r_zr=r_zr, r_h=r_h, f=f, g=g, rbh=rbh):
            h = states[0]
            zr = f(clip_fn(xp[:, : 2 * hid] + h @ r_zr))
            z, rg = zr[:, :hid], zr[:, hid:]
            if rbh is None:
                hh = g(clip_fn(xp[:, 2 * hid :] + (rg * h) @ r_h))
            else:
                hh = g(clip_fn(xp[:, 2 * hid :] + rg * (h @ r_h + rbh)))
            return [(1 - z) * hh + z * h]

        y, st = _run(c, _projection(c, _weight(w, cdt)[d], bias), [h0[d]], cell, reverse)
        ys.append(y)
        finals.append(st)
    return _outputs(c, layout, ys, finals)


# -- LSTM ----------------------------------------------------------------------------------------


@register("LSTM", since=(1, 7, 14, 22), factory=True)
def lstm(
    info: NodeInfo,
    *,
    activation_alpha=None,
    activation_beta=None,
    activations=None,
    clip=None,
    direction="forward",
    hidden_size=None,
    input_forget=0,
    layout=0,
    output_sequence=0,
):
    """Gates i, o, f, c with optional peepholes P[iof] and coupled input/forget gates."""
    prepared = _Prepared(info, 4, 3)
    default_functions = _default_functions(activations, _LSTM_DEFAULTS)

    def run(x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, /):
        c = _common(x, r, sequence_lens, direction, layout, hidden_size, clip)
        h0 = _initial(initial_h, c, layout)
        c0 = _initial(initial_c, c, layout)
        simple = p is None and not input_forget and default_functions
        if simple and c.clip is None and c.lens is None:
            wt = prepared.get(w, r, b, c.x.dtype)
            y, yh, yc = lstm_loop(c.x, wt, h0, c0, c.directions)
            return _finish(c, layout, y, [yh, yc])
        funcs = _activations(
            activations, activation_alpha, activation_beta, _LSTM_DEFAULTS, c.num_directions
        )
        return _lstm_general(c, w, r, b, p, h0, c0, layout, input_forget, funcs)

    return run


def _lstm_general(c: _Common, w, r, b, p, h0, c0, layout: int, input_forget: int, funcs):
    """LSTM step by step: peepholes, coupled gates, any activations, clip, sequence_lens."""
    cdt, hid = c.x.dtype, c.hidden
    clip_fn = _clip(c)
    ys, finals = [], []
    for d, reverse in enumerate(c.directions):
        wb, rb = _biases(b, d, 4, hid, cdt)
        rt = _weight(r, cdt)[d].T
        if p is None:
            pi = po = pf = np.zeros(hid, dtype=cdt)
        else:
            pd = _weight(p, cdt)[d]
            pi, po, pf = pd[:hid], pd[hid : 2 * hid], pd[2 * hid :]
        f, g, h_fn = funcs[d]

        def cell(xp, states, rt=rt, f=f, g=g, h_fn=h_fn, pi=pi, po=po, pf=pf):
            h, cp = states
            gates = xp + h @ rt
            i = f(clip_fn(gates[:, :hid] + pi * cp))
            if input_forget:
                fg = 1 - i
            else:
                fg = f(clip_fn(gates[:, 2 * hid : 3 * hid] + pf * cp))
            cand = g(clip_fn(gates[:, 3 * hid :]))
            cell_state = fg * cp + i * cand
            o = f(clip_fn(gates[:, hid : 2 * hid] + po * cell_state))
            return [o * h_fn(clip_fn(cell_state)), cell_state]

        proj = _projection(c, _weight(w, cdt)[d], wb + rb)
        y, st = _run(c, proj, [h0[d], c0[d]], cell, reverse)
        ys.append(y)
        finals.append(st)
    return _outputs(c, layout, ys, finals)
