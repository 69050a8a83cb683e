"""RNN / GRU / LSTM beyond the backend cases: float64, sequence_lens, reverse, layout, clip.

Expectations come from plain per-batch-entry, per-step loops written here from the equations
of the specification.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxpy
from tests.kernels import single_node

RNG = np.random.default_rng(1234)


def run(op, inputs, outputs, opset=22, **attrs):
    return single_node.run(op, inputs, opset, outputs, **attrs)


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# -- reference loops: one batch entry, one direction, time order given by the caller -----------


def lstm_ref(xs, w, r, b, p, h, c, input_forget=False):
    """xs: [steps, I]; w: [4H, I]; r: [4H, H]; b: [8H]; p: [3H]. Returns hs, h, c."""
    hid = r.shape[1]
    wi, wo, wf, wc = np.split(w, 4)
    ri, ro, rf, rc = np.split(r, 4)
    wbi, wbo, wbf, wbc, rbi, rbo, rbf, rbc = np.split(b, 8)
    pi, po, pf = p[:hid], p[hid : 2 * hid], p[2 * hid :]
    hs = []
    for xt in xs:
        i = sigmoid(xt @ wi.T + h @ ri.T + pi * c + wbi + rbi)
        if input_forget:
            f = 1 - i
        else:
            f = sigmoid(xt @ wf.T + h @ rf.T + pf * c + wbf + rbf)
        cand = np.tanh(xt @ wc.T + h @ rc.T + wbc + rbc)
        c = f * c + i * cand
        o = sigmoid(xt @ wo.T + h @ ro.T + po * c + wbo + rbo)
        h = o * np.tanh(c)
        hs.append(h)
    return hs, h, c


def gru_ref(xs, w, r, b, h, linear_before_reset):
    wz, wr, wh = np.split(w, 3)
    rz, rr, rh = np.split(r, 3)
    wbz, wbr, wbh, rbz, rbr, rbh = np.split(b, 6)
    hs = []
    for xt in xs:
        z = sigmoid(xt @ wz.T + h @ rz.T + wbz + rbz)
        rg = sigmoid(xt @ wr.T + h @ rr.T + wbr + rbr)
        if linear_before_reset:
            hh = np.tanh(xt @ wh.T + rg * (h @ rh.T + rbh) + wbh)
        else:
            hh = np.tanh(xt @ wh.T + (rg * h) @ rh.T + rbh + wbh)
        h = (1 - z) * hh + z * h
        hs.append(h)
    return hs, h


def directional(step_fn, x, lens, reverse, hidden, n_states):
    """Run a reference cell per batch entry over its valid steps; padding rows stay zero."""
    seq, batch = x.shape[:2]
    y = np.zeros((seq, batch, hidden))
    finals = [np.zeros((batch, hidden)) for _ in range(n_states)]
    for bi in range(batch):
        n = int(lens[bi])
        order = list(range(n))[::-1] if reverse else list(range(n))
        hs, *states = step_fn(bi, x[order, bi])
        for t, hv in zip(order, hs, strict=True):
            y[t, bi] = hv
        for k in range(n_states):
            finals[k][bi] = states[k]
    return y, finals


def random_lstm(seq, batch, inp, hid, dirs, dtype=np.float64):
    x = RNG.standard_normal((seq, batch, inp)).astype(dtype)
    w = (RNG.standard_normal((dirs, 4 * hid, inp)) * 0.5).astype(dtype)
    r = (RNG.standard_normal((dirs, 4 * hid, hid)) * 0.5).astype(dtype)
    b = (RNG.standard_normal((dirs, 8 * hid)) * 0.3).astype(dtype)
    p = (RNG.standard_normal((dirs, 3 * hid)) * 0.3).astype(dtype)
    h0 = (RNG.standard_normal((dirs, batch, hid)) * 0.5).astype(dtype)
    c0 = (RNG.standard_normal((dirs, batch, hid)) * 0.5).astype(dtype)
    return x, w, r, b, p, h0, c0


# -- LSTM ----------------------------------------------------------------------------------------


def test_lstm_float64_bidirectional_with_sequence_lens_and_peepholes():
    seq, batch, inp, hid = 5, 3, 4, 3
    x, w, r, b, p, h0, c0 = random_lstm(seq, batch, inp, hid, 2)
    lens = np.array([5, 2, 3], dtype=np.int32)
    y, yh, yc = run(
        "LSTM", [x, w, r, b, lens, h0, c0, p], 3, hidden_size=hid, direction="bidirectional"
    )
    assert y.dtype == yh.dtype == yc.dtype == np.float64
    assert y.shape == (seq, 2, batch, hid) and yh.shape == yc.shape == (2, batch, hid)
    for d, reverse in enumerate((False, True)):

        def step(bi, xs, d=d):
            return lstm_ref(xs, w[d], r[d], b[d], p[d], h0[d, bi], c0[d, bi])

        ey, (eh, ec) = directional(step, x, lens, reverse, hid, 2)
        np.testing.assert_allclose(y[:, d], ey, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(yh[d], eh, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(yc[d], ec, rtol=1e-12, atol=1e-12)
    # Steps past an entry's length are zero in Y.
    assert np.all(y[2:, :, 1] == 0) and np.all(y[3:, :, 2] == 0)


def test_lstm_reverse_with_sequence_lens_starts_at_each_last_valid_step():
    seq, batch, inp, hid = 4, 2, 2, 2
    x, w, r, b, p, h0, c0 = random_lstm(seq, batch, inp, hid, 1)
    lens = np.array([2, 4], dtype=np.int32)
    y, yh = run("LSTM", [x, w, r, b, lens], 2, hidden_size=hid, direction="reverse")
    zeros = np.zeros(hid)

    def step(bi, xs):
        return lstm_ref(xs, w[0], r[0], b[0], np.zeros(3 * hid), zeros, zeros)

    ey, (eh, _) = directional(step, x, lens, True, hid, 2)
    np.testing.assert_allclose(y[:, 0], ey, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(yh[0], eh, rtol=1e-12, atol=1e-12)
    # Entry 0 (length 2) reads x[1] first: its Y_h is the state after x[1], x[0].
    np.testing.assert_allclose(yh[0, 0], y[0, 0, 0], rtol=0, atol=0)


def test_lstm_input_forget_couples_gates():
    x, w, r, b, p, h0, c0 = random_lstm(3, 2, 3, 2, 1)
    y, yh, yc = run("LSTM", [x, w, r, b, None, h0, c0, p], 3, hidden_size=2, input_forget=1)
    lens = np.array([3, 3])

    def step(bi, xs):
        return lstm_ref(xs, w[0], r[0], b[0], p[0], h0[0, bi], c0[0, bi], input_forget=True)

    ey, (eh, ec) = directional(step, x, lens, False, 2, 2)
    np.testing.assert_allclose(y[:, 0], ey, rtol=1e-12)
    np.testing.assert_allclose(yc[0], ec, rtol=1e-12)


def test_lstm_layout_1_is_the_batch_major_transpose():
    x, w, r, b, p, h0, c0 = random_lstm(4, 3, 2, 5, 2, np.float32)
    y0, h_0, c_0 = run("LSTM", [x, w, r, b, None, h0, c0], 3, direction="bidirectional")
    y1, h_1, c_1 = run(
        "LSTM",
        [x.transpose(1, 0, 2), w, r, b, None, h0.transpose(1, 0, 2), c0.transpose(1, 0, 2)],
        3,
        direction="bidirectional",
        layout=1,
    )
    np.testing.assert_array_equal(y1, y0.transpose(2, 0, 1, 3))
    np.testing.assert_array_equal(h_1, h_0.transpose(1, 0, 2))
    np.testing.assert_array_equal(c_1, c_0.transpose(1, 0, 2))


def test_lstm_float16_keeps_its_type():
    x, w, r, *_ = random_lstm(2, 1, 2, 2, 1, np.float16)
    y, yh = run("LSTM", [x, w, r], 2, hidden_size=2)
    assert y.dtype == yh.dtype == np.float16
    y32, _ = run("LSTM", [x.astype(np.float32), w.astype(np.float32), r.astype(np.float32)], 2)
    np.testing.assert_allclose(y.astype(np.float32), y32, rtol=2e-3, atol=1e-3)


# -- GRU -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lbr", [0, 1])
def test_gru_float64_bidirectional_with_sequence_lens(lbr):
    seq, batch, inp, hid = 4, 3, 3, 2
    x = RNG.standard_normal((seq, batch, inp))
    w = RNG.standard_normal((2, 3 * hid, inp)) * 0.5
    r = RNG.standard_normal((2, 3 * hid, hid)) * 0.5
    b = RNG.standard_normal((2, 6 * hid)) * 0.3
    h0 = RNG.standard_normal((2, batch, hid)) * 0.5
    lens = np.array([4, 1, 3], dtype=np.int32)
    y, yh = run(
        "GRU",
        [x, w, r, b, lens, h0],
        2,
        hidden_size=hid,
        direction="bidirectional",
        linear_before_reset=lbr,
    )
    assert y.dtype == np.float64
    for d, reverse in enumerate((False, True)):

        def step(bi, xs, d=d):
            return gru_ref(xs, w[d], r[d], b[d], h0[d, bi], lbr)

        ey, (eh,) = directional(step, x, lens, reverse, hid, 1)
        np.testing.assert_allclose(y[:, d], ey, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(yh[d], eh, rtol=1e-12, atol=1e-12)


# -- RNN -----------------------------------------------------------------------------------------


def test_rnn_activation_alpha_clip_and_opset7():
    seq, batch, inp, hid = 3, 2, 2, 3
    x = RNG.standard_normal((seq, batch, inp)) * 3
    w = RNG.standard_normal((1, hid, inp))
    r = RNG.standard_normal((1, hid, hid))
    b = RNG.standard_normal((1, 2 * hid))
    alpha = float(np.float32(0.2))  # FLOAT attributes are stored as float32
    y, yh = run(
        "RNN",
        [x, w, r, b],
        2,
        opset=7,
        hidden_size=hid,
        activations=["LeakyRelu"],
        activation_alpha=[0.2],
        clip=1.5,
    )
    h = np.zeros((batch, hid))
    for t in range(seq):
        pre = np.clip(x[t] @ w[0].T + h @ r[0].T + b[0, :hid] + b[0, hid:], -1.5, 1.5)
        h = np.where(pre >= 0, pre, alpha * pre)
        np.testing.assert_allclose(y[t, 0], h, rtol=1e-12)
    np.testing.assert_allclose(yh[0], h, rtol=1e-12)


def test_rnn_hardsigmoid_defaults_and_zero_length_entry_keeps_initial_state():
    x = RNG.standard_normal((2, 2, 1))
    w = np.ones((1, 1, 1))
    r = np.zeros((1, 1, 1))
    h0 = np.array([[[0.25], [0.75]]])
    lens = np.array([0, 2], dtype=np.int32)
    y, yh = run("RNN", [x, w, r, None, lens, h0], 2, activations=["HardSigmoid"])
    expected = np.clip(0.2 * x[:, 1, 0] + 0.5, 0, 1)  # defaults alpha 0.2, beta 0.5
    np.testing.assert_allclose(y[:, 0, 1, 0], expected, rtol=1e-12)
    assert np.all(y[:, 0, 0] == 0)
    assert yh[0, 0, 0] == 0.25 and yh[0, 1, 0] == expected[-1]


# -- the in-place time loops (default activations, no clip, full lengths) ------------------------


def _recurrent_inputs(op, directions, batch, hid=5, inp=3, steps=6, dtype=np.float32):
    gates = {"LSTM": 4, "GRU": 3}[op]
    x = RNG.standard_normal((steps, batch, inp)).astype(dtype)
    w = RNG.standard_normal((directions, gates * hid, inp)).astype(dtype)
    r = RNG.standard_normal((directions, gates * hid, hid)).astype(dtype)
    b = RNG.standard_normal((directions, 2 * gates * hid)).astype(dtype)
    h0 = RNG.standard_normal((directions, batch, hid)).astype(dtype)
    ins = [x, w, r, b, None, h0]
    if op == "LSTM":
        ins.append(RNG.standard_normal((directions, batch, hid)).astype(dtype))
    return ins, hid


@pytest.mark.parametrize(("op", "linear_before_reset"), [("LSTM", 0), ("GRU", 0), ("GRU", 1)])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_loop_matches_general_loop(op, direction, batch, linear_before_reset):
    """A clip no value reaches takes the general per-step path: both must agree."""
    dirs = 2 if direction == "bidirectional" else 1
    ins, hid = _recurrent_inputs(op, dirs, batch)
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    attrs = dict(hidden_size=hid, direction=direction, layout=batch % 2)  # batch 1: layout 1
    if op == "GRU":
        attrs["linear_before_reset"] = linear_before_reset
    if attrs["layout"]:
        ins = [
            None
            if a is None
            else np.ascontiguousarray(np.swapaxes(a, 0, 1))
            if k in (0, 5, 6)
            else a
            for k, a in enumerate(ins)
        ]
    fast = run(op, ins, len(outs), **attrs)
    general = run(op, ins, len(outs), clip=1e30, **attrs)
    for a, e in zip(fast, general, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
        assert a.shape == e.shape and a.dtype == e.dtype


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_fast_loop_against_onnxruntime(op):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    ins, hid = _recurrent_inputs(op, 2, 2)
    names = ["X", "W", "R", "B", "", "H0"] + (["C0"] if op == "LSTM" else [])
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    attrs = dict(hidden_size=hid, direction="bidirectional")
    if op == "GRU":
        attrs["linear_before_reset"] = 1  # as PyTorch exports it
    node = helper.make_node(op, names, outs, **attrs)
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, f, a.shape) for n, a in zip(names, ins) if n],
        [helper.make_tensor_value_info(n, f, None) for n in outs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    feeds = {n: a for n, a in zip(names, ins) if n}
    expected = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, feeds)
    got = run(op, ins, len(outs), opset=14, **attrs)
    for a, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


# -- weights laid out once, every direction in one loop, RNN's loop -----------------------------


def _sessions(op, ins, constants, opset=17, oracle=True, **attrs):
    """(onnxpy session, onnxruntime session or None without ``oracle``, feeds) of one
    recurrent node; input positions in ``constants`` are initializers."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    names = ["X", "W", "R", "B", "L", "H0", "C0"][: len(ins)]
    names = [n if a is not None else "" for n, a in zip(names, ins, strict=True)]
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    graph = helper.make_graph(
        [helper.make_node(op, names, outs, **attrs)],
        "g",
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape)
            for k, (n, a) in enumerate(zip(names, ins, strict=True))
            if n and k not in constants
        ],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outs],
        [numpy_helper.from_array(ins[k], names[k]) for k in constants],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    data = model.SerializeToString()
    feeds = {n: a for k, (n, a) in enumerate(zip(names, ins, strict=True)) if n}
    feeds = {n: a for n, a in feeds.items() if names.index(n) not in constants}
    expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]) if oracle else None
    return onnxpy.InferenceSession(data), expected, feeds


def _rnn_inputs(directions, batch, hid=5, inp=3, steps=6):
    x = RNG.standard_normal((steps, batch, inp)).astype(np.float32)
    w = (RNG.standard_normal((directions, hid, inp)) * 0.5).astype(np.float32)
    r = (RNG.standard_normal((directions, hid, hid)) * 0.5).astype(np.float32)
    b = RNG.standard_normal((directions, 2 * hid)).astype(np.float32)
    h0 = RNG.standard_normal((directions, batch, hid)).astype(np.float32)
    return [x, w, r, b, None, h0], hid


def _inputs_of(op, directions, batch, **kw):
    if op == "RNN":
        return _rnn_inputs(directions, batch, **kw)
    return _recurrent_inputs(op, directions, batch, **kw)


def _assert_matches(got, expected):
    for a, e in zip(got, expected, strict=True):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


CASES = [("LSTM", {}), ("GRU", {"linear_before_reset": 0}), ("GRU", {"linear_before_reset": 1})]
CASES += [("RNN", {}), ("RNN", {"activations": ["Relu"]})]


@pytest.mark.parametrize(("op", "extra"), CASES)
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("batch", [1, 3])
def test_constant_weights_are_laid_out_once(monkeypatch, op, extra, direction, batch):
    """Initializer W, R, B: laid out by the first run, reused by the next, and the loop over
    all directions at once agrees with onnxruntime."""
    from onnxpy.kernels.ai_onnx import rnn

    built = []

    class Counted(rnn.Weights):
        def __init__(self, *args, **kw):
            built.append(1)
            super().__init__(*args, **kw)

    monkeypatch.setattr(rnn, "Weights", Counted)
    dirs = 2 if direction == "bidirectional" else 1
    ins, hid = _inputs_of(op, dirs, batch)
    if op == "RNN" and "activations" in extra and dirs == 2:
        extra = {"activations": ["Relu", "Relu"]}
    ours, theirs, feeds = _sessions(
        op, ins, constants=(1, 2, 3), hidden_size=hid, direction=direction, **extra
    )
    assert not built
    for _ in range(2):
        _assert_matches(ours.run(None, feeds), theirs.run(None, feeds))
    assert len(built) == 1


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_weights_given_as_inputs_are_laid_out_per_run(op):
    """Constant W and R but B fed at run time: each run lays out what it was given."""
    ins, hid = _inputs_of(op, 2, 2)
    attrs = dict(hidden_size=hid, direction="bidirectional")
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    ours, theirs, feeds = _sessions(op, ins, constants=(1, 2), **attrs)
    _assert_matches(ours.run(None, feeds), theirs.run(None, feeds))
    feeds["B"] = feeds["B"] * 2
    _assert_matches(ours.run(None, feeds), theirs.run(None, feeds))


@pytest.mark.parametrize(("op", "extra"), CASES)
@pytest.mark.parametrize("full_width", [0, 1 << 60])
def test_both_step_layouts_for_two_directions(monkeypatch, op, extra, full_width):
    """Batch 1 with two directions uses the full-width product when it is large; both layouts
    (forced here on a small model) agree with onnxruntime, and so does the batch-major form
    (``layout=1``, checked against onnxruntime's time-major results transposed)."""
    from onnxpy.kernels.ai_onnx import rnn_loops

    monkeypatch.setattr(rnn_loops, "_FULL_WIDTH", full_width)
    ins, hid = _inputs_of(op, 2, 1)
    if "activations" in extra:
        extra = {"activations": ["Relu", "Relu"]}
    attrs = dict(hidden_size=hid, direction="bidirectional", **extra)
    ours, theirs, feeds = _sessions(op, ins, constants=(1, 2, 3), **attrs)
    expected = theirs.run(None, feeds)
    _assert_matches(ours.run(None, feeds), expected)

    swapped = [
        a if a is None or k in (1, 2, 3) else np.swapaxes(a, 0, 1) for k, a in enumerate(ins)
    ]
    # onnxruntime refuses layout=1 for recurrent ops
    ours, _, feeds = _sessions(op, swapped, (1, 2, 3), oracle=False, layout=1, **attrs)
    batch_major = [expected[0].transpose(2, 0, 1, 3)] + [s.transpose(1, 0, 2) for s in expected[1:]]
    _assert_matches(ours.run(None, feeds), batch_major)


@pytest.mark.parametrize("activation", ["Tanh", "Relu"])
def test_rnn_fast_loop_matches_general_loop(activation):
    """A clip no value reaches takes the general per-step path; sequence_lens all full length
    keep the fast one."""
    ins, hid = _rnn_inputs(2, 3)
    acts = [activation, activation]
    attrs = dict(hidden_size=hid, direction="bidirectional", activations=acts)
    fast = run("RNN", ins, 2, **attrs)
    general = run("RNN", ins, 2, clip=1e30, **attrs)
    ins[4] = np.full(3, ins[0].shape[0], dtype=np.int32)
    full_lens = run("RNN", ins, 2, **attrs)
    for a, e, f in zip(fast, general, full_lens, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(a, f)


def test_mixed_rnn_activations_take_the_general_loop():
    """Relu forward, Tanh reverse: not one loop's activation, so step by step, per direction."""
    ins, hid = _rnn_inputs(2, 2)
    acts = ["Relu", "Tanh"]
    ours, theirs, feeds = _sessions(
        "RNN", ins, (1, 2, 3), hidden_size=hid, direction="bidirectional", activations=acts
    )
    _assert_matches(ours.run(None, feeds), theirs.run(None, feeds))


def test_float16_constant_weights_compute_in_float32():
    """float16 initializers are laid out in float32 (the compute type) and the results rounded
    back: they match the float32 model's up to float16 rounding."""
    ins, hid = _recurrent_inputs("GRU", 2, 2)
    attrs = dict(hidden_size=hid, direction="bidirectional", linear_before_reset=1)
    half = [None if a is None else a.astype(np.float16) for a in ins]
    exact = [None if a is None else a.astype(np.float32) for a in half]
    got = run("GRU", half, 2, constants=(1, 2, 3), **attrs)
    want = run("GRU", exact, 2, constants=(1, 2, 3), **attrs)
    for a, e in zip(got, want, strict=True):
        assert a.dtype == np.float16
        np.testing.assert_allclose(a.astype(np.float32), e, rtol=2e-3, atol=2e-3)
