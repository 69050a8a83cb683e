"""The quantized kernels' fast paths (constant parameters taken once, dynamic ranges from two
reductions, three-pass requantization) against onnxruntime as the oracle and against integer
arithmetic done in int64: zero points at the ends of their range, per-channel scales,
saturation, int8 and uint8 types, one row and many, all-equal activations, repeated runs of one
session (the reused output stage)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import onnxpy
from onnxpy.kernels.ai_onnx.qlinear import ConvGeometry, IntegerConv, integer_product_rows
from onnxpy.kernels.intgemm import BAKE_MIN, Requantizer
from tests.kernels.test_qlinear import _model, assert_within_one_step

rng = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def _same_data_in_any_order():
    """Each test draws from a fresh generator: its data do not depend on which tests ran
    before it in this worker."""
    global rng
    rng = np.random.default_rng(11)


_OUT = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}


def _run_both(node, feeds, consts, out_type, runs=2):
    """Our outputs for ``runs`` runs of one session (the later ones take the reused path), and
    onnxruntime's."""
    data = _model(node, feeds, consts, out_type)
    sess = onnxpy.InferenceSession(data)
    ours = [sess.run(None, feeds)[0] for _ in range(runs)]
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    for o in ours:
        assert o.dtype == theirs.dtype and o.shape == theirs.shape
    return ours, theirs


@pytest.mark.parametrize("zero_point", [0, 1, 128, 255])
# Dyadic multipliers: float32 arithmetic is exact, so ties (x.5) must round to even exactly.
@pytest.mark.parametrize("multiplier", [1.0, 0.375, [0.015625, 0.5, 2.0]])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("rows", [5, 4000])  # one-call rounding below 8,192 values, two above
def test_requantizer_matches_integer_reference(zero_point, multiplier, dtype, rows):
    dtype = np.dtype(dtype)
    if dtype == np.int8:
        zero_point -= 128
    acc = rng.integers(-2000, 2000, (rows, 3)).astype(np.float32)
    acc[0] = [-1e6, 1e6, 0.5]  # saturates both ways; an exact half (0.5 * 1.0 rounds to 0)
    offset = np.array([3.0, -7.0, 0.0])
    m = np.asarray(multiplier, dtype=np.float64)
    info = np.iinfo(dtype)
    expected = np.clip(np.rint((acc + offset) * m) + zero_point, info.min, info.max)
    got = Requantizer(offset, multiplier, zero_point, dtype)(acc.copy())
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected.astype(dtype))


@pytest.mark.parametrize(
    "kind", ["normal", "positive", "negative", "all_equal", "zeros", "one_value", "nan"]
)
@pytest.mark.parametrize("rows", [1, 37])
def test_dynamic_quantize_linear_matches_onnxruntime(kind, rows):
    x = rng.standard_normal((rows, 24)).astype(np.float32) * 3
    if kind == "positive":
        x = np.abs(x) + 0.25
    elif kind == "negative":
        x = -np.abs(x) - 0.25
    elif kind == "all_equal":
        x = np.full_like(x, 0.7)  # min == max: the range is [0, 0.7]
    elif kind == "zeros":
        x = np.zeros_like(x)
    elif kind == "one_value":
        x = np.zeros_like(x)
        x[0, 3] = -2.5
    elif kind == "nan":
        x[0, 0] = np.nan
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "ys", "yz"])
    outs = [
        helper.make_tensor_value_info("y", TensorProto.UINT8, x.shape),
        helper.make_tensor_value_info("ys", TensorProto.FLOAT, []),
        helper.make_tensor_value_info("yz", TensorProto.UINT8, []),
    ]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)], outs
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data.ir_version = 9
    ours = onnxpy.InferenceSession(data.SerializeToString()).run(None, {"x": x})
    theirs = ort.InferenceSession(data.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = theirs.run(None, {"x": x})
    if kind == "nan":  # onnxruntime's handling of NaN is its own; ours: the scale is 0
        assert ours[1] == 0 and not ours[0].any()
        return
    if kind == "zeros":  # the spec's scale is 0; onnxruntime writes 1 (no value depends on it)
        ours, theirs = [ours[0], ours[2]], [theirs[0], theirs[2]]
    for o, t in zip(ours, theirs):
        np.testing.assert_array_equal(o, t)


@pytest.mark.parametrize("rows", [1, 9])
@pytest.mark.parametrize("kind", ["normal", "all_equal", "negative", "zeros"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_dynamic_quantize_matmul_fast_path(rows, kind, per_channel):
    x = rng.standard_normal((rows, 40)).astype(np.float32)
    if kind == "all_equal":
        x = np.full_like(x, -1.25)
    elif kind == "negative":
        x = -np.abs(x)
    elif kind == "zeros":
        x = np.zeros_like(x)
    b = rng.integers(-127, 128, (40, 6)).astype(np.int8)
    sb = (rng.random(6) * 0.05 + 0.01).astype(np.float32) if per_channel else np.float32(0.03)
    consts = dict(b=b, sb=sb, zb=np.int8(0), bias=rng.standard_normal(6).astype(np.float32))
    node = helper.make_node(
        "DynamicQuantizeMatMul", ["x", "b", "sb", "zb", "bias"], ["y"], domain="com.microsoft"
    )
    ours, theirs = _run_both(node, {"x": x}, consts, TensorProto.FLOAT)
    for o in ours:
        np.testing.assert_allclose(o, theirs, rtol=1e-4, atol=1e-3)


def test_dynamic_quantize_matmul_scale_as_input():
    """A b_scale that is a graph input (not constant) takes the per-call scale product."""
    x = rng.standard_normal((3, 16)).astype(np.float32)
    b = rng.integers(-127, 128, (16, 4)).astype(np.int8)
    sb = (rng.random(4) * 0.05 + 0.01).astype(np.float32)
    node = helper.make_node(
        "DynamicQuantizeMatMul", ["x", "b", "sb"], ["y"], domain="com.microsoft"
    )
    ours, theirs = _run_both(node, {"x": x, "sb": sb}, {"b": b}, TensorProto.FLOAT)
    np.testing.assert_allclose(ours[1], theirs, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dtype,zero_point", [(np.uint8, 0), (np.uint8, 255), (np.int8, -128)])
@pytest.mark.parametrize("rows", [1, 8])
def test_qgemm_constant_parameters_reused(dtype, zero_point, rows):
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max + 1, (rows, 30)).astype(dtype)  # A and y share a type
    b = rng.integers(-127, 128, (5, 30)).astype(np.int8)
    consts = {"b": b, "as": np.float32(0.05), "az": np.dtype(dtype).type(info.max)}
    consts["bz"] = np.zeros(5, np.int8)
    consts["bs"] = (rng.random(5) * 0.02 + 0.005).astype(np.float32)  # per channel
    consts["c"] = rng.integers(-3000, 3000, 5).astype(np.int32)
    consts.update(ys=np.float32(0.3), yz=np.dtype(dtype).type(zero_point))
    ins = ["a", "as", "az", "b", "bs", "bz", "c", "ys", "yz"]
    node = helper.make_node("QGemm", ins, ["y"], domain="com.microsoft", transB=1)
    ours, theirs = _run_both(node, {"a": a}, consts, _OUT[np.dtype(dtype)], runs=3)
    for o in ours:
        assert_within_one_step(o, theirs)
    assert (theirs == info.min).any() or (theirs == info.max).any()  # saturation happens


@pytest.mark.parametrize("dtype,zero_point", [(np.uint8, 0), (np.uint8, 200), (np.int8, 127)])
@pytest.mark.parametrize("batch", [1, 3])
def test_qlinear_conv_constant_parameters_reused(dtype, zero_point, batch):
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (batch, 4, 6, 6)).astype(dtype)  # x and y: one type
    w = rng.integers(-127, 128, (5, 4, 3, 3)).astype(np.int8)
    ws = (rng.random(5) * 0.01 + 0.005).astype(np.float32)
    consts = dict(sx=np.float32(0.03), zx=np.dtype(dtype).type(info.min), w=w, sw=ws)
    consts["zw"] = np.zeros(5, np.int8)
    consts.update(sy=np.float32(0.2), zy=np.dtype(dtype).type(zero_point))
    consts["bias"] = rng.integers(-900, 900, 5).astype(np.int32)
    ins = ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "bias"]
    node = helper.make_node("QLinearConv", ins, ["y"], pads=[1, 1, 1, 1])
    ours, theirs = _run_both(node, {"x": x}, consts, _OUT[np.dtype(dtype)], runs=3)
    for o in ours:
        assert_within_one_step(o, theirs)


@pytest.mark.parametrize(
    "dtype,zero_point", [(np.uint8, 0), (np.uint8, 255), (np.int8, -128), (np.int8, 127)]
)
@pytest.mark.parametrize("rows", [1, 50])
def test_quantize_dequantize_constant_parameters(dtype, zero_point, rows):
    x = (rng.standard_normal((rows, 7)) * 20).astype(np.float32)  # saturates both ways
    x[0, :3] = [0.5, 1.5, -2.5]  # exact halves (scale 1): ties to even
    scale = np.float32(1.0) if rows == 1 else np.float32(0.1)
    consts = {"s": scale, "z": np.dtype(dtype).type(zero_point)}
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    ours, theirs = _run_both(q, {"x": x}, consts, _OUT[np.dtype(dtype)])
    for o in ours:
        np.testing.assert_array_equal(o, theirs)
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])
    ours, theirs = _run_both(dq, {"q": theirs}, consts, TensorProto.FLOAT)
    for o in ours:
        np.testing.assert_array_equal(o, theirs)


def test_quantize_linear_nan_and_parameters_as_inputs():
    """NaN quantizes to 0 on the constant-parameter path as on the general one (parameters
    given as graph inputs); finite values match onnxruntime."""
    x = np.array([[np.nan, 1.0, -300.0, 2.6]], np.float32)
    consts = {"s": np.float32(0.5), "z": np.uint8(10)}
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    fast, _ = _run_both(node, {"x": x}, consts, TensorProto.UINT8)
    np.testing.assert_array_equal(fast[0], [[0, 12, 0, 15]])
    as_input = {"x": x, "s": np.array(0.5, np.float32)}
    data = _model(node, as_input, {"z": consts["z"]}, TensorProto.UINT8)
    general = onnxpy.InferenceSession(data).run(None, as_input)[0]
    np.testing.assert_array_equal(fast[0], general)
    feeds = {"x": x[:, 1:], "s": np.array(0.5, np.float32)}
    ours, theirs = _run_both(node, feeds, {"z": np.uint8(10)}, TensorProto.UINT8)
    np.testing.assert_array_equal(ours[0], theirs)


@pytest.mark.parametrize("group,kernel,pads", [(1, 3, [1, 1, 1, 1]), (2, 1, [0, 0, 0, 0])])
def test_baked_offset_conv_with_another_zero_point(group, kernel, pads):
    """A convolution laid out with (x_zp 5, bias) baked in, called with x_zp 9: product plus
    term is still the exact (x - 9) * w + ... sum, checked in int64."""
    x = rng.integers(0, 256, (2, 4, 5, 5)).astype(np.uint8)
    w = rng.integers(-127, 128, (6, 4 // group, kernel, kernel)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 6).astype(np.int32)
    geom = ConvGeometry("NOTSET", None, group, None, pads, None)
    acc, term = IntegerConv(w, None, geom, bake=(5.0, bias))(x, 9.0)
    got = acc + term.reshape(-1, 1, 1)
    xs = np.pad(x.astype(np.int64) - 9, [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
    cg, m = 4 // group, 6
    ref = np.zeros(acc.shape, np.int64)
    for o in range(m):
        gi = o // (m // group)
        for i in range(acc.shape[2]):
            for j in range(acc.shape[3]):
                patch = xs[:, gi * cg : (gi + 1) * cg, i : i + kernel, j : j + kernel]
                ref[:, o, i, j] = (patch * w[o].astype(np.int64)).sum(axis=(1, 2, 3))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("rows", [5, 2100])  # 5 x 4 outputs: too small to read the offset
def test_baked_offset_rows_exact_when_the_offset_is_large(rows):
    """An offset near 2**24 is planned into the exactness bound (the product splits or
    widens instead of rounding); another zero point gets the difference as its term."""
    b = rng.integers(-127, 128, (300, 4)).astype(np.int8)
    bias = np.array([2**24 - 3, -(2**24) + 1, 7, 0], np.int32)
    product = integer_product_rows(b, None, np.dtype(np.uint8), bake=(3.0, bias))
    a = rng.integers(0, 256, (rows, 300)).astype(np.uint8)
    for za in (3.0, 200.0):
        acc, term = product(a, za)
        ref = (a.astype(np.int64) - int(za)) @ b.astype(np.int64)
        np.testing.assert_array_equal(acc.astype(np.float64) + term, ref)  # the caller adds C
        if rows * 4 >= BAKE_MIN:  # the baked zero point and bias: the product is the whole sum
            np.testing.assert_array_equal(acc, ref + (int(za) - 3) * b.sum(0) + bias)


@pytest.mark.parametrize("op", ["QGemm", "QLinearMatMul", "QLinearConv"])
def test_small_and_large_batches_alternate_in_one_session(op):
    """Small products leave the baked offset out and large ones read it: one session switching
    between them keeps a correct output stage for each (checked against onnxruntime)."""
    zp = dict(az=np.uint8(131), yz=np.uint8(7))
    if op == "QLinearConv":
        w = rng.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8)
        consts = dict(w=w, **{"as": np.float32(0.02)}, ws=np.float32(0.01), wz=np.int8(0))
        consts.update(ys=np.float32(0.5), bias=rng.integers(-900, 900, 8).astype(np.int32), **zp)
        ins = ["a", "as", "az", "w", "ws", "wz", "ys", "yz", "bias"]
        node = helper.make_node(op, ins, ["y"], pads=[1, 1, 1, 1])
        shapes = [(1, 3, 4, 4), (40, 3, 16, 16), (1, 3, 4, 4)]
    else:
        b = rng.integers(-127, 128, (20, 6)).astype(np.int8)
        consts = dict(b=b, **{"as": np.float32(0.02)}, bs=np.float32(0.01), bz=np.int8(0))
        consts.update(ys=np.float32(0.3), **zp)
        ins = ["a", "as", "az", "b", "bs", "bz"]
        if op == "QGemm":
            consts["c"] = rng.integers(-900, 900, 6).astype(np.int32)
            ins.append("c")
        node = helper.make_node(
            op, ins + ["ys", "yz"], ["y"], domain="com.microsoft" if op == "QGemm" else ""
        )
        shapes = [(1, 20), (3000, 20), (1, 20)]
    feeds = {"a": rng.integers(0, 256, shapes[0]).astype(np.uint8)}
    rank = len(shapes[0])
    model = onnx.load_from_string(_model(node, feeds, consts, TensorProto.UINT8, rank=rank))
    for i, dim in enumerate(model.graph.input[0].type.tensor_type.shape.dim):
        dim.dim_param = f"a{i}"  # any batch (and image) size
    data = model.SerializeToString()
    ours = onnxpy.InferenceSession(data)
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for shape in shapes:
        feed = {"a": rng.integers(0, 256, shape).astype(np.uint8)}
        assert_within_one_step(ours.run(None, feed)[0], theirs.run(None, feed)[0])
