"""Decomposed self-attention -> com.microsoft MultiHeadAttention.

Every model is the attention block as PyTorch exports it (see ``_attention_model``) with one
detail varied. A fused model must compute what the original did: in onnxpy (``check`` runs
both without further optimization) and in onnxruntime, which also proves it accepts the fused
node and its inputs (notably the attention_bias shape). Near misses stay unfused.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxpy.passes.fusion import AttentionFusion
from tests.passes.test_passes import check, init, make_model, vi
from tests.passes.test_transformer_fusion import ops

F = TensorProto.FLOAT
I64 = TensorProto.INT64
HID, HEADS = 16, 4
D = HID // HEADS
MHA = "com.microsoft:MultiHeadAttention"


def _attention_model(
    *,
    shapes: str = "dynamic",
    key: str = "0231",
    scale: str = "div",
    mask: str = "bert",
    biases: str = "qkv",
    perm_q=(0, 2, 1, 3),
    perm_out=(0, 2, 1, 3),
    softmax_axis: int = -1,
    extra_output: str | None = None,
    out_shape=None,
) -> onnx.ModelProto:
    """Y = attention(X) with a [batch, seq] attention mask, built the way torch exports it."""
    rng = np.random.default_rng(0)
    dims = ["batch", "seq", HID] if shapes == "dynamic" else [2, 5, HID]
    inputs = [vi("X", dims)]
    inits = []
    nodes = []
    for p in "qkv":
        inits.append(init(f"W{p}", rng.standard_normal((HID, HID)).astype(np.float32) * 0.5))
        inits.append(init(f"b{p}", rng.standard_normal(HID).astype(np.float32)))
        if p in biases:
            nodes.append(helper.make_node("MatMul", ["X", f"W{p}"], [f"{p}mm"]))
            nodes.append(helper.make_node("Add", [f"b{p}", f"{p}mm"], [f"{p}p"]))
        else:
            nodes.append(helper.make_node("MatMul", ["X", f"W{p}"], [f"{p}p"]))
    inits.append(init("heads_d", np.array([HEADS, D], np.int64)))
    inits.append(init("hid", np.array([HID], np.int64)))
    inits.append(init("zero", np.array(0, np.int64)))
    inits.append(init("one", np.array(1, np.int64)))
    inits.append(init("ax0", np.array([0], np.int64)))
    if shapes == "dynamic":
        nodes += [
            helper.make_node("Shape", ["X"], ["shp"]),
            helper.make_node("Gather", ["shp", "zero"], ["b"], axis=0),
            helper.make_node("Gather", ["shp", "one"], ["s"], axis=0),
            helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
            helper.make_node("Unsqueeze", ["s", "ax0"], ["s1"]),
            helper.make_node("Concat", ["b1", "s1", "heads_d"], ["split_shape"], axis=0),
            helper.make_node("Concat", ["b1", "s1", "hid"], ["merge_shape"], axis=0),
        ]
    else:
        inits.append(init("split_shape", np.array([0, 0, HEADS, D], np.int64)))
        inits.append(init("merge_shape", np.array([0, 0, HID], np.int64)))
    if out_shape is not None:
        inits.append(init("custom_merge", np.array(out_shape, np.int64)))
    for p in "qkv":
        nodes.append(helper.make_node("Reshape", [f"{p}p", "split_shape"], [f"{p}4"]))
    nodes.append(helper.make_node("Transpose", ["q4"], ["qh"], perm=list(perm_q)))
    nodes.append(helper.make_node("Transpose", ["v4"], ["vh"], perm=[0, 2, 1, 3]))
    if key == "0231":
        nodes.append(helper.make_node("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]))
    elif key == "two":
        nodes.append(helper.make_node("Transpose", ["k4"], ["kh"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 1, 3, 2]))
    else:
        nodes.append(helper.make_node("Transpose", ["k4"], ["kt"], perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("MatMul", ["qh", "kt"], ["sc"]))
    if scale == "div":
        inits.append(init("c", np.array(math.sqrt(D), np.float32)))
        nodes.append(helper.make_node("Div", ["sc", "c"], ["scs"]))
    elif scale == "mul_custom":
        inits.append(init("c", np.array(0.3, np.float32)))
        nodes.append(helper.make_node("Mul", ["c", "sc"], ["scs"]))
    elif scale == "input":  # not a constant: left alone
        inputs.append(vi("c", []))
        nodes.append(helper.make_node("Div", ["sc", "c"], ["scs"]))
    scs = "sc" if scale == "none" else "scs"
    if mask == "bert":
        inputs.append(vi("attention_mask", dims[:2], I64))
        inits.append(init("ax1", np.array([1], np.int64)))
        inits.append(init("ax2", np.array([2], np.int64)))
        inits.append(init("fone", np.array(1.0, np.float32)))
        inits.append(init("big", np.array(-10000.0, np.float32)))
        nodes += [
            helper.make_node("Unsqueeze", ["attention_mask", "ax1"], ["m1"]),
            helper.make_node("Unsqueeze", ["m1", "ax2"], ["m2"]),
            helper.make_node("Cast", ["m2"], ["mf"], to=F),
            helper.make_node("Sub", ["fone", "mf"], ["minv"]),
            helper.make_node("Mul", ["minv", "big"], ["mask"]),
            helper.make_node("Add", [scs, "mask"], ["scm"]),
        ]
    elif mask == "full":  # [B, 1, S, T] as it is
        inputs.append(vi("mask", [dims[0], 1, dims[1], dims[1]]))
        nodes.append(helper.make_node("Add", ["mask", scs], ["scm"]))
    scm = scs if mask == "none" else "scm"
    nodes.append(helper.make_node("Softmax", [scm], ["p"], axis=softmax_axis))
    nodes.append(helper.make_node("MatMul", ["p", "vh"], ["o"]))
    nodes.append(helper.make_node("Transpose", ["o"], ["ot"], perm=list(perm_out)))
    merge = "merge_shape" if out_shape is None else "custom_merge"
    nodes.append(helper.make_node("Reshape", ["ot", merge], ["Y"]))
    outputs = [vi("Y", dims if out_shape is None else [None] * len(out_shape))]
    if extra_output is not None:
        outputs.append(vi(extra_output, [None] * 4))
    return make_model(nodes, inputs, outputs, inits)


def _feeds(model, batch=2, seq=5, seed=1):
    rng = np.random.default_rng(seed)
    feeds = {"X": rng.standard_normal((batch, seq, HID)).astype(np.float32)}
    names = {v.name for v in model.graph.input}
    if "attention_mask" in names:
        m = np.ones((batch, seq), np.int64)
        m[1, seq - 2 :] = 0  # one padded row
        feeds["attention_mask"] = m
    if "mask" in names:
        feeds["mask"] = np.where(rng.random((batch, 1, seq, seq)) > 0.3, 0, -1e4).astype(np.float32)
    if "c" in names:
        feeds["c"] = np.array(math.sqrt(D), np.float32)
    return feeds


def _fuse(model, feeds=None, **kw):
    return check(model, [AttentionFusion()], feeds=feeds or _feeds(model, **kw), rtol=1e-4)


def _same_in_onnxruntime(original, fused, feeds):
    ort = pytest.importorskip("onnxruntime")

    def run(m):
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return s.run(None, feeds)

    for a, e in zip(run(fused), run(original)):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def _mha(model):
    (node,) = [n for n in model.graph.node if n.op_type == "MultiHeadAttention"]
    return node, {a.name: helper.get_attribute_value(a) for a in node.attribute}


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"shapes": "static"},
        {"key": "two"},
        {"scale": "none"},
        {"scale": "mul_custom"},
        {"mask": "full"},
        {"mask": "none"},
        {"biases": ""},
        {"biases": "qv"},
    ],
    ids=repr,
)
def test_attention_fuses_and_matches_onnxruntime(variant):
    m = _attention_model(**variant)
    feeds = _feeds(m)
    opt = _fuse(m, feeds)
    counts = ops(opt)
    assert counts[MHA] == 1
    for op in ("Softmax", "Transpose", "Reshape", "Div", "Mul"):
        assert op not in counts or (op == "Mul" and variant.get("mask", "bert") == "bert")
    node, attrs = _mha(opt)
    assert attrs["num_heads"] == HEADS
    expected_scale = {"none": 1.0, "mul_custom": 0.3}.get(variant.get("scale"))
    if expected_scale is None:
        assert "scale" not in attrs  # 1 / sqrt(head size), the default
    else:
        assert attrs["scale"] == pytest.approx(expected_scale)
    biases = variant.get("biases", "qkv")
    assert (len(node.input) > 3 and node.input[3] != "") == bool(biases)
    assert counts["Add"] == 0
    mask = variant.get("mask", "bert")
    if mask == "bert":  # [B, 1, 1, T] is expanded to [B, 1, S, T] for onnxruntime
        assert counts["Expand"] == 1 and node.input[5] != "mask"
    elif mask == "full":
        assert node.input[5] == "mask" and "Expand" not in counts
    else:
        assert len(node.input) <= 4
    _same_in_onnxruntime(m, opt, feeds)
    if variant.get("shapes") != "static":  # symbolic dims: another batch and length
        other = _feeds(m, batch=3, seq=7, seed=2)
        _same_in_onnxruntime(m, opt, other)
        _fuse(m, other)


def test_projection_biases_are_packed_in_order():
    m = _attention_model()
    opt = _fuse(m)
    node, _ = _mha(opt)
    packed = {t.name: onnx.numpy_helper.to_array(t) for t in opt.graph.initializer}[node.input[3]]
    original = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    np.testing.assert_array_equal(packed, np.concatenate([original[f"b{p}"] for p in "qkv"]))
    assert list(node.input[:3]) == ["qmm", "kmm", "vmm"]


def test_one_expansion_serves_layers_sharing_the_mask():
    """Two attention blocks over the same mask and lengths share one Expand."""
    m = _attention_model()
    mask_chain = {"m1", "m2", "mf", "minv", "mask"}
    second = []
    for n in m.graph.node:
        if n.output[0] in mask_chain:
            continue
        c = onnx.NodeProto()
        c.CopyFrom(n)
        c.output[:] = ["L2_" + x for x in n.output]
        produced = {o for k in m.graph.node if k.output[0] not in mask_chain for o in k.output}
        c.input[:] = ["Y" if x == "X" else ("L2_" + x if x in produced else x) for x in n.input]
        second.append(c)
    m2 = make_model(
        list(m.graph.node) + second,
        list(m.graph.input),
        [vi("L2_Y", ["batch", "seq", HID])],
        list(m.graph.initializer),
    )
    feeds = _feeds(m2)
    opt = _fuse(m2, feeds)
    assert ops(opt)[MHA] == 2 and ops(opt)["Expand"] == 1
    _same_in_onnxruntime(m2, opt, feeds)


@pytest.mark.parametrize(
    "variant",
    [
        {"perm_q": (0, 2, 3, 1)},  # Q not split as [B, H, S, d]
        {"perm_out": (0, 1, 2, 3)},
        {"key": "0213"},  # K not transposed: a different product
        {"softmax_axis": 2},
        {"scale": "input"},  # a scale that is not a constant
        {"extra_output": "p"},  # the attention probabilities have a second reader
        {"extra_output": "qh"},
        {"extra_output": "scs"},
        {"out_shape": [0, -1, HID]},  # -1 on a leading axis: not provably [B, S, hidden]
        {"out_shape": [-1, HID]},
    ],
    ids=repr,
)
def test_attention_near_misses_stay(variant):
    m = _attention_model(**variant)
    feeds = _feeds(m)
    if variant.get("perm_q") or variant.get("key") == "0213" or variant.get("perm_out"):
        feeds = _feeds(m, seq=HID // HEADS)  # square per-head shapes keep the graph valid
    opt = _fuse(m, feeds)
    assert MHA not in ops(opt)
    assert ops(opt)["Softmax"] == 1


def test_reshape_from_another_tensors_shape_stays():
    """The split shape reads Shape() of a tensor whose dims are not provably Q's."""
    m = _attention_model()
    m.graph.input.append(vi("Z", ["other", "seq", HID]))
    for n in m.graph.node:
        if n.op_type == "Shape":
            n.input[0] = "Z"
    feeds = _feeds(m)
    feeds["Z"] = np.zeros((2, 5, HID), np.float32)
    opt = _fuse(m, feeds)
    assert MHA not in ops(opt)


def test_mask_broadcasting_the_batch_stays():
    """A mask with a batch of its own (not provably 1 or B) could widen the result."""
    m = _attention_model(mask="full", shapes="static")
    m.graph.input[1].CopyFrom(vi("mask", [1, 1, 5, 5]))
    opt = _fuse(m, {**_feeds(m), "mask": np.zeros((1, 1, 5, 5), np.float32)})
    assert ops(opt)[MHA] == 1  # 1 broadcasts one way: fused
    m.graph.input[1].CopyFrom(vi("mask", ["mb", 1, 5, 5]))  # merged by [0, 0, hidden]
    opt = _fuse(m, {**_feeds(m), "mask": np.zeros((2, 1, 5, 5), np.float32)})
    assert MHA not in ops(opt)


# -- the MultiHeadAttention kernel on what the fusion feeds it ----------------------------------


def _mha_node_model(feeds: dict, heads: int) -> onnx.ModelProto:
    names = ["query", "key", "value", "bias", "key_padding_mask", "attention_bias"]
    used = [n if feeds.get(n) is not None else "" for n in names]
    while not used[-1]:
        used.pop()
    node = helper.make_node(
        "MultiHeadAttention", used, ["Y"], domain="com.microsoft", num_heads=heads
    )
    inputs = [
        vi(n, list(feeds[n].shape), helper.np_dtype_to_tensor_dtype(feeds[n].dtype))
        for n in used
        if n
    ]
    m = make_model([node], inputs, [vi("Y", [None] * 3)])
    m.opset_import.add(domain="com.microsoft", version=1)
    return m


@pytest.mark.parametrize("case", ["masked_batch", "row_far_below", "minus_inf", "all_minus_inf"])
def test_mha_kernel_rows_far_below_the_rest_match_onnxruntime(case):
    """The kernel shifts scores by their overall maximum and rebuilds rows that underflow."""
    ort = pytest.importorskip("onnxruntime")
    import onnxpy

    rng = np.random.default_rng(3)
    b, s, t, heads, d = 2, 5, 6, 2, 4
    feeds = {
        "query": rng.standard_normal((b, s, heads * d)).astype(np.float32) * 3,
        "key": rng.standard_normal((b, t, heads * d)).astype(np.float32) * 3,
        "value": rng.standard_normal((b, t, heads * d)).astype(np.float32),
        "bias": rng.standard_normal(3 * heads * d).astype(np.float32) * 5,
    }
    if case == "masked_batch":  # every key of batch 1 masked: -10000 on all its scores
        mask = np.ones((b, t), np.int32)
        mask[1] = 0
        feeds["key_padding_mask"] = mask
    else:
        bias = np.zeros((b, 1, s, t), np.float32)
        if case == "row_far_below":
            bias[0, 0, 2, :] = -1000.0
        elif case == "minus_inf":
            bias[1, 0, :, 3] = -np.inf
        else:
            bias[1, 0, 1, :] = -np.inf  # NaN in that row, as onnxruntime gives
        feeds["attention_bias"] = bias
    m = _mha_node_model(feeds, heads)
    given = {k: v for k, v in feeds.items() if v is not None}
    expected = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, given
    )[0]
    with np.errstate(invalid="ignore"):
        actual = onnxpy.InferenceSession(m.SerializeToString()).run(None, given)[0]
    assert np.isnan(expected).any() == (case == "all_minus_inf")
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5, equal_nan=True)
