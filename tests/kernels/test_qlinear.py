"""Quantized products and com.microsoft quantized operators against onnxruntime (the oracle),
and the exact-product planner against integer arithmetic done by NumPy in int64."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpy
from onnxpy.kernels.intgemm import EXACT_FLOAT32, ExactWeights

MS = "com.microsoft"
_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.int32): TensorProto.INT32,
}


def _model(node, feeds, consts, out_type, opset=17, rank=None):
    inputs = [helper.make_tensor_value_info(k, _TYPES[v.dtype], v.shape) for k, v in feeds.items()]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    rank = next(iter(feeds.values())).ndim if rank is None else rank
    out = helper.make_tensor_value_info(node.output[0], out_type, [f"d{i}" for i in range(rank)])
    graph = helper.make_graph([node], "g", inputs, [out], inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)]
    )
    model.ir_version = 9
    return model.SerializeToString()


def both(node, feeds, consts, out_type=TensorProto.UINT8, opset=17):
    data = _model(node, feeds, consts, out_type, opset)
    ours = onnxpy.InferenceSession(data).run(None, feeds)[0]
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    return ours, theirs


def assert_within_one_step(ours, theirs, fraction=0.1):
    """Integer outputs: at most one step apart, and rarely (values that land near a .5 tie
    round either way with float32 or float64 rescaling)."""
    diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
    assert diff.max() <= 1
    assert (diff > 0).sum() <= max(1, fraction * diff.size)


rng = np.random.default_rng(7)


def test_exact_weights_split_the_reduction_when_float32_could_round():
    w = np.full((3, 3000), 127.0)  # row L1 381,000 x 128 > 2**24: needs chunks
    ew = ExactWeights(w, np.dtype(np.uint8))
    assert len(ew.chunks) > 1 and ew.dtype == np.float32
    for a, b in ew.chunks:
        assert 128 * np.abs(w[:, a:b]).sum(axis=1).max() < EXACT_FLOAT32
    a = np.full((2, 3000), -128.0, dtype=np.float32)
    exact = a.astype(np.int64) @ w.T.astype(np.int64)
    np.testing.assert_array_equal(ew.right(a), exact)
    cols = a.T.copy()
    np.testing.assert_array_equal(ew.left(cols), exact.T)


def test_exact_weights_single_chunk_when_bounded():
    w = rng.integers(-5, 6, (4, 64)).astype(np.float64)
    ew = ExactWeights(w, np.dtype(np.int8))
    assert ew.chunks == [(0, 64)]


@pytest.mark.parametrize("a_type", [np.uint8, np.int8])
def test_matmul_integer_long_rows_exact(a_type):
    lo, hi = (0, 255) if a_type == np.uint8 else (-128, 127)
    a = rng.integers(lo, hi + 1, (5, 4000)).astype(a_type)
    b = rng.integers(-128, 128, (4000, 6)).astype(np.int8)
    za = np.array(7 if a_type == np.uint8 else -3, dtype=a_type)
    node = helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])
    ours, theirs = both(node, {"a": a}, {"b": b, "za": za, "zb": np.int8(2)}, TensorProto.INT32)
    expected = (a.astype(np.int64) - int(za)) @ (b.astype(np.int64) - 2)
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_matmul_matches_onnxruntime(per_channel):
    a = rng.integers(0, 256, (2, 3, 40)).astype(np.uint8)
    b = rng.integers(-127, 128, (40, 8)).astype(np.int8)
    bs = (rng.random(8) * 0.02 + 0.01).astype(np.float32) if per_channel else np.float32(0.02)
    bz = np.zeros(8, np.int8) if per_channel else np.int8(0)
    consts = dict(sa=np.float32(0.05), za=np.uint8(120), b=b, sb=bs, zb=bz)
    consts.update(sy=np.float32(0.7), zy=np.uint8(128))
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
    ours, theirs = both(node, {"a": a}, consts, opset=21 if per_channel else 17)
    assert_within_one_step(ours, theirs)


@pytest.mark.parametrize(
    "shape,kernel,attrs",
    [
        ((1, 8, 9, 9), 3, dict(pads=[1, 1, 1, 1])),
        ((2, 6, 10, 7), 3, dict(strides=[2, 1], group=2)),
        ((1, 16, 6, 6), 1, {}),
        ((1, 4, 7, 7), 3, dict(pads=[2, 1, 2, 1], dilations=[2, 2])),
    ],
)
def test_qlinear_conv_matches_onnxruntime(shape, kernel, attrs):
    c = shape[1]
    g = attrs.get("group", 1)
    m = 6
    x = rng.integers(0, 256, shape).astype(np.uint8)
    w = rng.integers(-127, 128, (m, c // g, kernel, kernel)).astype(np.int8)
    ws = (rng.random(m) * 0.01 + 0.005).astype(np.float32)
    consts = dict(sx=np.float32(0.03), zx=np.uint8(100), w=w, sw=ws, zw=np.zeros(m, np.int8))
    consts.update(
        sy=np.float32(0.4), zy=np.uint8(60), bias=rng.integers(-900, 900, m).astype(np.int32)
    )
    ins = ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "bias"]
    node = helper.make_node("QLinearConv", ins, ["y"], **attrs)
    ours, theirs = both(node, {"x": x}, consts)
    assert_within_one_step(ours, theirs)


def test_conv_integer_per_channel_weight_zero_point():
    x = rng.integers(0, 256, (1, 3, 6, 6)).astype(np.uint8)
    w = rng.integers(0, 256, (4, 3, 3, 3)).astype(np.uint8)
    node = helper.make_node("ConvInteger", ["x", "w", "zx", "zw"], ["y"], pads=[1, 1, 1, 1])
    consts = dict(w=w, zx=np.uint8(9), zw=np.array([1, 2, 3, 200], np.uint8))
    data = _model(node, {"x": x}, consts, TensorProto.INT32)
    ours = onnxpy.InferenceSession(data).run(None, {"x": x})[0]
    # The convolution by explicit loops in int64.
    xp = np.pad(x.astype(np.int64) - 9, [(0, 0), (0, 0), (1, 1), (1, 1)])
    wc = w.astype(np.int64) - np.array([1, 2, 3, 200]).reshape(-1, 1, 1, 1)
    expected = np.zeros((1, 4, 6, 6), np.int64)
    for i in range(6):
        for j in range(6):
            expected[0, :, i, j] = np.einsum("mckl,ckl->m", wc, xp[0, :, i : i + 3, j : j + 3])
    np.testing.assert_array_equal(ours, expected)


def _triple(prefix, scale, zp):
    return {f"{prefix}s": np.float32(scale), f"{prefix}z": zp}


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_qlinear_binary(op):
    a = rng.integers(0, 256, (2, 3, 4)).astype(np.uint8)
    b = rng.integers(0, 256, (3, 4)).astype(np.uint8)
    consts = {"b": b, **_triple("a", 0.05, np.uint8(128)), **_triple("b", 0.02, np.uint8(3))}
    consts.update(_triple("c", 0.08 if op == "QLinearAdd" else 0.3, np.uint8(100)))
    node = helper.make_node(op, ["a", "as", "az", "b", "bs", "bz", "cs", "cz"], ["y"], domain=MS)
    assert_within_one_step(*both(node, {"a": a}, consts))


@pytest.mark.parametrize("op,attrs", [("QLinearSigmoid", {}), ("QLinearLeakyRelu", {"alpha": 0.2})])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_unary_tables(op, attrs, dtype):
    lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
    x = np.arange(lo, hi + 1).astype(dtype).reshape(16, 16)
    zp = np.array(30, dtype=dtype)
    consts = {
        **_triple("x", 0.05, zp),
        **_triple("y", 0.01 if op == "QLinearSigmoid" else 0.04, zp),
    }
    node = helper.make_node(op, ["x", "xs", "xz", "ys", "yz"], ["y"], domain=MS, **attrs)
    out_type = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    assert_within_one_step(*both(node, {"x": x}, consts, out_type))


@pytest.mark.parametrize("channels_last", [0, 1])
def test_qlinear_pools(channels_last):
    x = rng.integers(0, 256, (2, 5, 6, 4)).astype(np.uint8)
    consts = {**_triple("x", 0.05, np.uint8(10)), **_triple("y", 0.03, np.uint8(20))}
    ins = ["x", "xs", "xz", "ys", "yz"]
    node = helper.make_node(
        "QLinearGlobalAveragePool", ins, ["y"], domain=MS, channels_last=channels_last
    )
    assert_within_one_step(*both(node, {"x": x}, consts))
    node = helper.make_node(
        "QLinearAveragePool",
        ins,
        ["y"],
        domain=MS,
        kernel_shape=[2, 2],
        strides=[2, 2],
        channels_last=channels_last,
    )
    assert_within_one_step(*both(node, {"x": x}, consts))


def test_qlinear_softmax_and_concat():
    x = rng.integers(-128, 128, (3, 10)).astype(np.int8)
    consts = {**_triple("x", 0.1, np.int8(-5)), **_triple("y", 1 / 256, np.int8(-128))}
    node = helper.make_node(
        "QLinearSoftmax", ["x", "xs", "xz", "ys", "yz"], ["y"], domain=MS, opset=13
    )
    assert_within_one_step(*both(node, {"x": x}, consts, TensorProto.INT8), fraction=0.05)
    a = rng.integers(0, 256, (2, 3)).astype(np.uint8)
    b = rng.integers(0, 256, (2, 5)).astype(np.uint8)
    consts = {"b": b, **_triple("y", 0.1, np.uint8(50)), **_triple("a", 0.05, np.uint8(1))}
    consts.update(_triple("b", 0.2, np.uint8(200)))
    ins = ["ys", "yz", "a", "as", "az", "b", "bs", "bz"]
    node = helper.make_node("QLinearConcat", ins, ["y"], domain=MS, axis=1)
    assert_within_one_step(*both(node, {"a": a}, consts))


@pytest.mark.parametrize("quantized_output", [True, False])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_qgemm(quantized_output, trans_b):
    a = rng.integers(0, 256, (4, 30)).astype(np.uint8)
    b = rng.integers(-127, 128, (30, 7)).astype(np.int8)
    b = np.ascontiguousarray(b.T) if trans_b else b
    consts = {"b": b, **_triple("a", 0.05, np.uint8(128)), **_triple("b", 0.01, np.int8(0))}
    consts["c"] = rng.integers(-3000, 3000, 7).astype(np.int32)
    ins = ["a", "as", "az", "b", "bs", "bz", "c"]
    if quantized_output:
        consts.update(_triple("y", 0.2, np.uint8(90)))
        ins += ["ys", "yz"]
    node = helper.make_node("QGemm", ins, ["y"], domain=MS, transB=trans_b, alpha=0.5)
    out_type = TensorProto.UINT8 if quantized_output else TensorProto.FLOAT
    ours, theirs = both(node, {"a": a}, consts, out_type)
    if quantized_output:
        assert_within_one_step(ours, theirs)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_matmul_integer_to_float_and_dynamic_quantize_matmul():
    a = rng.integers(0, 256, (3, 2, 24)).astype(np.uint8)
    b = rng.integers(-127, 128, (24, 5)).astype(np.int8)
    consts = dict(b=b, sa=np.float32(0.02), sb=np.float32(0.03), za=np.uint8(77), zb=np.int8(0))
    consts["bias"] = rng.standard_normal(5).astype(np.float32)
    node = helper.make_node(
        "MatMulIntegerToFloat", ["a", "b", "sa", "sb", "za", "zb", "bias"], ["y"], domain=MS
    )
    ours, theirs = both(node, {"a": a}, consts, TensorProto.FLOAT)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    x = rng.standard_normal((6, 24)).astype(np.float32)
    consts = dict(b=b, sb=np.float32(0.03), zb=np.int8(0), bias=consts["bias"])
    node = helper.make_node(
        "DynamicQuantizeMatMul", ["x", "b", "sb", "zb", "bias"], ["y"], domain=MS
    )
    ours, theirs = both(node, {"x": x}, consts, TensorProto.FLOAT)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("bits,with_zp", [(4, False), (4, True), (8, True)])
def test_matmul_nbits(bits, with_zp):
    k, n, block = 48, 5, 16
    blocks = k // block
    q = rng.integers(0, 1 << bits, (n, blocks, block)).astype(np.uint8)
    per = 8 // bits
    packed = np.zeros((n, blocks, block // per), np.uint8)
    for i in range(per):
        packed |= (q[..., i::per] << (i * bits)).astype(np.uint8)
    scales = (rng.random((n, blocks)) * 0.1 + 0.01).astype(np.float32)
    consts = {"b": packed, "s": scales.reshape(-1)}
    ins = ["a", "b", "s"]
    zq = rng.integers(0, 1 << bits, (n, blocks)).astype(np.uint8)
    if with_zp:
        zpb = -(-blocks * bits // 8)
        zpk = np.zeros((n, zpb), np.uint8)
        for j in range(blocks):
            zpk[:, j * bits // 8] |= (zq[:, j] << ((j * bits) % 8)).astype(np.uint8)
        consts["z"] = zpk.reshape(-1)
        ins.append("z")
    node = helper.make_node(
        "MatMulNBits", ins, ["y"], domain=MS, K=k, N=n, bits=bits, block_size=block
    )
    a = rng.standard_normal((2, 3, k)).astype(np.float32)
    ours, theirs = both(node, {"a": a}, consts, TensorProto.FLOAT)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    z = zq if with_zp else np.full((n, blocks), 1 << (bits - 1))
    w = ((q.astype(np.float64) - z[..., None]) * scales[..., None]).reshape(n, k).T
    np.testing.assert_allclose(ours, a.astype(np.float64) @ w, rtol=1e-4, atol=1e-4)


def test_onnx_checker_accepts_the_models():
    node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    a = np.zeros((2, 2), np.uint8)
    onnx.checker.check_model(
        onnx.load_from_string(_model(node, {"a": a}, {"b": a}, TensorProto.INT32))
    )
