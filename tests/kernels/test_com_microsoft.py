"""com.microsoft contrib operators, checked against onnxruntime as a black-box oracle.

There is no ONNX spec (nor backend test case) for these operators: each one-node model is run
by onnxruntime and by onnxpy and the results must agree. Where onnxruntime's CPU provider has no
kernel (BiasAdd, packed MultiHeadAttention inputs) the expectation is the documented formula
written out with NumPy. The end-to-end tests export small PyTorch models, let onnxruntime's
graph optimizer (and its transformers optimizer) rewrite them with contrib operators, and run
the rewritten files in both runtimes.
"""

from __future__ import annotations

import collections
import logging
import math
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

import onnxpy
from onnxpy.errors import OnnxpyError
from onnxpy.kernels.com_microsoft.transformer import (
    layer_normalization_ort,
    simplified_layer_normalization,
)

MS = "com.microsoft"
F32, F16, I32, STR = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT32, TensorProto.STRING
RNG = np.random.default_rng(11)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def _elem(v) -> int:
    v = np.asarray(v)
    return STR if v.dtype == object else helper.np_dtype_to_tensor_dtype(v.dtype)


def _model(op, inputs, out_types, domain=MS, opset=17, out_ranks=None, **attrs):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    node = helper.make_node(
        op, names, [f"y{i}" for i in range(len(out_types))], domain=domain, **attrs
    )
    graph_inputs = [
        helper.make_tensor_value_info(n, _elem(v), np.shape(v))
        for n, v in zip(names, inputs, strict=True)
        if n
    ]
    ranks = out_ranks or [None] * len(out_types)
    graph_outputs = [
        helper.make_tensor_value_info(f"y{i}", t, None if r is None else [None] * r)
        for i, (t, r) in enumerate(zip(out_types, ranks, strict=True))
    ]
    graph = helper.make_graph([node], "g", graph_inputs, graph_outputs)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    feeds = {n: v for n, v in zip(names, inputs, strict=True) if n}
    return model, feeds


def run_onnxpy(op, inputs, out_types, out_ranks, domain=MS, opset=17, **attrs):
    model, feeds = _model(op, inputs, out_types, domain, opset, out_ranks, **attrs)
    return onnxpy.InferenceSession(model.SerializeToString()).run(None, feeds)


def run_ort(op, inputs, out_types, domain=MS, opset=17, **attrs):
    model, feeds = _model(op, inputs, out_types, domain, opset, **attrs)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_close(actual, expected, rtol=1e-5, atol=1e-5):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, a.shape, e.dtype, e.shape)
        if e.dtype == object:
            assert a.tolist() == e.tolist()
        elif e.dtype == np.float16:
            np.testing.assert_allclose(a.astype(np.float32), e.astype(np.float32), 2e-3, 2e-3)
        else:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def check(op, inputs, out_types=(F32,), domain=MS, opset=17, rtol=1e-5, atol=1e-5, **attrs):
    """Run ``op`` in onnxruntime, then in onnxpy (outputs declared with the ranks ORT gave)."""
    expected = run_ort(op, inputs, list(out_types), domain, opset, **attrs)
    ranks = [np.ndim(e) for e in expected]
    actual = run_onnxpy(op, inputs, list(out_types), ranks, domain, opset, **attrs)
    assert_close(actual, expected, rtol, atol)


# -- fused.py ----------------------------------------------------------------------------------

CONV_ACTIVATIONS = [
    ("Relu", None),
    ("Tanh", None),
    ("Sigmoid", None),
    ("HardSwish", None),
    ("LeakyRelu", [0.3]),
    ("Clip", [-0.5, 0.7]),
    ("HardSigmoid", [0.3, 0.4]),
]


@pytest.mark.parametrize(("activation", "params"), CONV_ACTIVATIONS)
@pytest.mark.parametrize("with_z", [False, True])
def test_fused_conv_activations(activation, params, with_z):
    x, w, b = rand(2, 3, 7, 7), rand(4, 3, 3, 3), rand(4)
    inputs = [x, w, b] + ([rand(2, 4, 4, 4)] if with_z else [])
    attrs = {"activation": activation, "pads": [1, 1, 1, 1], "strides": [2, 2]}
    if params:
        attrs["activation_params"] = params
    check("FusedConv", inputs, **attrs)


def test_fused_conv_grouped_without_bias_and_with_z():
    x, w, z = rand(1, 4, 6, 6), rand(6, 2, 3, 3), rand(1, 6, 6, 6)
    check("FusedConv", [x, w, None, z], activation="Relu", group=2, auto_pad="SAME_UPPER")


def test_fused_conv_depthwise_float16_and_plain():
    x, w, b = rand(1, 4, 8, 8, dtype=np.float16), rand(4, 1, 3, 3, dtype=np.float16), rand(4)
    check("FusedConv", [x, w, b.astype(np.float16)], (F16,), activation="Sigmoid", group=4)
    check("FusedConv", [x.astype(np.float32), w.astype(np.float32), b], dilations=[2, 2], group=4)


GEMM_ACTIVATIONS = [
    ("Relu", {}),
    ("Tanh", {}),
    ("Sigmoid", {}),
    ("Softplus", {}),
    ("Softsign", {}),
    ("LeakyRelu", {"activation_alpha": 0.2}),
    ("HardSigmoid", {"activation_alpha": 0.3, "activation_beta": 0.6}),
    ("Elu", {"activation_alpha": 0.7}),
    ("Selu", {"activation_alpha": 1.5, "activation_gamma": 1.1}),
    ("ThresholdedRelu", {"activation_alpha": 0.4}),
    ("ScaledTanh", {"activation_alpha": 0.5, "activation_beta": 2.0}),
    ("ParametricSoftplus", {"activation_alpha": 0.5, "activation_beta": 2.0}),
]


@pytest.mark.parametrize(("activation", "params"), GEMM_ACTIVATIONS)
def test_fused_gemm_activations(activation, params):
    check("FusedGemm", [rand(3, 4), rand(4, 5), rand(5)], activation=activation, **params)


def test_fused_gemm_transposes_scalars_and_types():
    a, b, c = rand(4, 3), rand(5, 4), rand(3, 5)
    attrs = {"activation": "LeakyRelu", "activation_alpha": 0.1, "alpha": 0.5, "beta": 2.0}
    check("FusedGemm", [a, b, c], transA=1, transB=1, **attrs)
    check("FusedGemm", [a.T.copy(), b.T.copy()], activation="Relu")
    h = [v.astype(np.float16) for v in (a.T, b.T, c)]
    check("FusedGemm", h, (F16,), activation="Tanh")


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "attrs"),
    [
        ((4, 5), (5, 6), {}),
        ((5, 4), (6, 5), {"transA": 1, "transB": 1, "alpha": 0.125}),
        ((3, 4, 5), (5, 6), {}),
        ((5,), (5, 6), {}),
        ((4, 5), (5,), {}),
        ((2, 4, 5), (3, 1, 5, 6), {"alpha": -2.0}),
        ((2, 3, 4, 5), (3, 4, 5, 6), {"transBatchA": 1}),
        ((2, 3, 4, 5), (3, 4, 2, 6), {"transBatchA": 1, "transA": 1}),
        ((3, 4, 7, 2), (2, 3, 4, 5), {"transBatchB": 1}),
        ((3, 4, 7, 5), (2, 3, 4, 5), {"transBatchB": 1, "transB": 1}),
        ((3, 4, 5), (4, 5, 6), {"transBatchA": 1}),
    ],
)
def test_fused_matmul(a_shape, b_shape, attrs):
    check("FusedMatMul", [rand(*a_shape), rand(*b_shape)], **attrs)


def test_fused_matmul_types_and_transpose_matmul():
    a, b = rand(2, 5, 4), rand(2, 6, 5)
    check(
        "FusedMatMul",
        [a.astype(np.float64), b.astype(np.float64)],
        (TensorProto.DOUBLE,),
        transA=1,
        transB=1,
    )
    check(
        "FusedMatMul",
        [a.astype(np.float16), b.astype(np.float16)],
        (F16,),
        transA=1,
        transB=1,
        alpha=0.5,
    )
    check("TransposeMatMul", [a, b], transA=1, transB=1, alpha=3.0)


def test_fused_ops_refuse_unknown_or_incomplete_activations():
    x, w = rand(1, 2, 4, 4), rand(2, 2, 1, 1)
    with pytest.raises(OnnxpyError, match="Elu"):
        run_onnxpy("FusedConv", [x, w], [F32], [4], activation="Elu")
    with pytest.raises(OnnxpyError, match="activation_alpha"):
        run_onnxpy("FusedGemm", [rand(2, 2), rand(2, 2)], [F32], [2], activation="LeakyRelu")
    with pytest.raises(OnnxpyError, match="rank >= 3"):
        run_onnxpy("FusedMatMul", [rand(2, 2), rand(2, 2)], [F32], [2], transBatchA=1)


# -- transformer.py: activations and normalizations -----------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_gelu_family(dtype):
    x, bias = rand(2, 3, 8, dtype=dtype) * 3, rand(8, dtype=dtype)
    t = F16 if dtype == np.float16 else F32
    check("Gelu", [x], (t,))
    check("BiasGelu", [x, bias], (t,))
    check("FastGelu", [x], (t,))
    check("FastGelu", [x, bias], (t,))
    check("QuickGelu", [x], (t,))
    check("QuickGelu", [x], (t,), alpha=0.6)


def test_fast_and_quick_gelu_double():
    x = rand(50, dtype=np.float64) * 4
    check("FastGelu", [x], (TensorProto.DOUBLE,), rtol=1e-6, atol=1e-6)
    check("QuickGelu", [x], (TensorProto.DOUBLE,), rtol=1e-6, atol=1e-6)


def test_bias_add_formula():
    # onnxruntime's CPU provider has no BiasAdd kernel: X + bias + skip, by hand.
    x, bias, skip = rand(2, 6, 4), rand(4), rand(2, 6, 4)
    (y,) = run_onnxpy("BiasAdd", [x, bias, skip], [F32], [3])
    expected = x.astype(np.float64) + bias + skip
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    assert y.dtype == np.float32


@pytest.mark.parametrize(
    ("skip_shape", "beta", "bias"),
    [
        ((2, 3, 8), True, True),
        ((1, 3, 8), True, False),
        ((3, 8), False, True),
        ((3, 8), False, False),
    ],
)
def test_skip_layer_normalization(skip_shape, beta, bias):
    x, g = rand(2, 3, 8), rand(8)
    inputs = [x, rand(*skip_shape), g, rand(8) if beta else None, rand(8) if bias else None]
    check("SkipLayerNormalization", inputs, (F32, F32, F32, F32), epsilon=1e-5)


def test_skip_layer_normalization_2d_and_float16():
    check("SkipLayerNormalization", [rand(5, 8), rand(5, 8), rand(8), rand(8)], (F32,) * 4)
    h = [
        rand(2, 3, 8, dtype=np.float16),
        rand(2, 3, 8, dtype=np.float16),
        rand(8, dtype=np.float16),
    ]
    check("SkipLayerNormalization", h, (F16, F32, F32, F16))
    check("SkipLayerNormalization", h[:3], (F16,))


def test_skip_simplified_layer_normalization():
    x, skip, g, bias = rand(2, 3, 8), rand(2, 3, 8), rand(8), rand(8)
    check("SkipSimplifiedLayerNormalization", [x, skip, g, bias], (F32,) * 4, epsilon=1e-5)
    check("SkipSimplifiedLayerNormalization", [x[0], skip[0], g], (F32,) * 4)
    h = [v.astype(np.float16) for v in (x, skip, g)]
    check("SkipSimplifiedLayerNormalization", h, (F16,))


# onnxruntime's default-domain SimplifiedLayerNormalization / LayerNormalization-1 are not ONNX
# operators, so the onnx checker in onnxpy's loader refuses a model holding them: the kernels
# are compared with onnxruntime's one-node results directly.
@pytest.mark.parametrize(
    ("x_dtype", "scale_dtype", "axis", "scale_shape"),
    [
        (np.float32, np.float32, -1, (8,)),
        (np.float16, np.float32, -1, (8,)),
        (np.float32, np.float16, -1, (8,)),
        (np.float32, np.float32, 1, (3, 8)),
        (np.float64, np.float64, -1, (8,)),
    ],
)
def test_default_domain_norms_of_onnxruntime(x_dtype, scale_dtype, axis, scale_shape):
    x, scale = rand(2, 3, 8, dtype=x_dtype), rand(*scale_shape, dtype=scale_dtype)
    y_type = _elem(scale)
    attrs = {"axis": axis, "epsilon": 1e-3}
    expected = run_ort("SimplifiedLayerNormalization", [x, scale], [y_type, F32], "", 14, **attrs)
    assert_close(simplified_layer_normalization(x, scale, **attrs), expected)
    b = rand(*scale_shape, dtype=scale_dtype)
    for stash_type, stat in ((1, F32), (11, TensorProto.DOUBLE)):
        out_types = [y_type, stat, stat]
        expected = run_ort(
            "LayerNormalization", [x, scale, b], out_types, "", 14, stash_type=stash_type, **attrs
        )
        actual = layer_normalization_ort(x, scale, b, stash_type=stash_type, **attrs)
        assert_close(actual, expected)


# -- transformer.py: attention ------------------------------------------------------------------

B, S, D, H = 2, 4, 8, 2
X_ATT, W_ATT, B_ATT = rand(B, S, D), rand(D, 3 * D), rand(3 * D)


@pytest.mark.parametrize(
    ("mask", "attrs"),
    [
        (None, {}),
        (None, {"unidirectional": 1}),
        (None, {"scale": 0.3}),
        (np.array([3, 2], np.int32), {}),
        (np.array([3, 2], np.int32), {"unidirectional": 1}),
        (np.array([4, 3, 1, 0], np.int32), {}),
        (np.array([[1, 1, 0, 1], [1, 0, 0, 0]], np.int32), {}),
        (np.array([[1, 1, 0, 1], [1, 0, 0, 0]], np.int32), {"mask_filter_value": -5.0}),
        (np.array([[1, 1, 0, 1], [1, 0, 0, 0]], np.int32), {"unidirectional": 1}),
        ((RNG.random((B, S, S)) > 0.3).astype(np.int32), {}),
    ],
)
def test_attention_masks(mask, attrs):
    check("Attention", [X_ATT, W_ATT, B_ATT, mask], num_heads=H, **attrs)


def test_attention_fully_masked_row_is_uniform_not_nan():
    mask = np.array([[0, 0, 0, 0], [1, 1, 0, 0]], np.int32)
    check("Attention", [X_ATT, W_ATT, B_ATT, mask], num_heads=H, atol=2e-3)


def test_attention_past_present_bias_sizes():
    past = rand(2, B, H, 3, D // H)
    mask = np.array([[1, 1, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]], np.int32)
    check("Attention", [X_ATT, W_ATT, B_ATT, None, past], (F32, F32), num_heads=H)
    check("Attention", [X_ATT, W_ATT, B_ATT, mask, past], (F32, F32), num_heads=H, unidirectional=1)
    check("Attention", [X_ATT, W_ATT, B_ATT], (F32, F32), num_heads=H)
    check("Attention", [X_ATT, W_ATT, B_ATT, None, None, rand(1, H, S, S)], num_heads=H)
    w, b = rand(D, 8 + 8 + 12), rand(28)
    check("Attention", [X_ATT, w, b], num_heads=H, qkv_hidden_sizes=[8, 8, 12])
    check("Attention", [X_ATT, W_ATT], num_heads=H)
    h = [v.astype(np.float16) for v in (X_ATT, W_ATT, B_ATT)]
    check("Attention", h, (F16,), num_heads=H)


def test_attention_refuses_what_it_does_not_implement():
    mask4 = np.ones((B, 1, 6, 6), np.int32)
    with pytest.raises(OnnxpyError, match="mask_index"):
        run_onnxpy("Attention", [X_ATT, W_ATT, B_ATT, mask4], [F32], [3], num_heads=H)
    with pytest.raises(OnnxpyError, match="do_rotary"):
        run_onnxpy("Attention", [X_ATT, W_ATT, B_ATT], [F32], [3], num_heads=H, do_rotary=1)


L = 5
Q_MHA, K_MHA, V_MHA, BIAS_MHA = rand(B, S, D), rand(B, L, D), rand(B, L, 12), rand(D + D + 12)


def _heads(t):
    return t.astype(np.float64).reshape(t.shape[0], t.shape[1], H, -1).transpose(0, 2, 1, 3)


@pytest.mark.parametrize(
    ("extra", "attrs"),
    [
        ([], {}),
        ([BIAS_MHA], {}),
        ([None, np.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0]], np.int32)], {}),
        (
            [BIAS_MHA, np.array([[1, 1, 0, 1, 0], [1, 0, 0, 1, 0]], np.int32)],
            {"mask_filter_value": -3.0},
        ),
        ([None, np.array([4, 2], np.int32)], {}),
        ([None, (RNG.random((B, S, L)) > 0.3).astype(np.int32)], {}),
        ([None, None, rand(B, 1, S, L)], {"scale": 0.2}),
    ],
)
def test_multi_head_attention(extra, attrs):
    check("MultiHeadAttention", [Q_MHA, K_MHA, V_MHA, *extra], num_heads=H, **attrs)


def test_multi_head_attention_self_causal_past_present_and_qk():
    k, v, bias = rand(B, S, D), rand(B, S, D), rand(3 * D)
    past_k, past_v = rand(B, H, 2, D // H), rand(B, H, 2, D // H)
    check("MultiHeadAttention", [Q_MHA, k, v], num_heads=H, unidirectional=1)
    inputs = [Q_MHA, k, v, bias, None, None, past_k, past_v]
    check("MultiHeadAttention", inputs, (F32,) * 3, num_heads=H)
    check("MultiHeadAttention", inputs, (F32,) * 3, num_heads=H, unidirectional=1)
    mask = np.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 1]], np.int32)
    inputs = [Q_MHA, K_MHA, V_MHA[..., :D].copy(), None, mask, rand(1, 1, S, L)]
    check("MultiHeadAttention", inputs, (F32,) * 4, num_heads=H)


def test_multi_head_attention_projected_key_value_and_float16():
    k4 = _heads(K_MHA).astype(np.float32)
    v4 = _heads(V_MHA[..., :D]).astype(np.float32)
    check("MultiHeadAttention", [Q_MHA, k4, v4, BIAS_MHA[: 3 * D]], (F32,) * 3, num_heads=H)
    h = [t.astype(np.float16) for t in (Q_MHA, K_MHA, V_MHA)]
    check("MultiHeadAttention", h, (F16,), num_heads=H)


def _sdpa(q, k, v):
    s = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])
    e = np.exp(s - s.max(-1, keepdims=True))
    o = (e / e.sum(-1, keepdims=True)) @ v
    return o.transpose(0, 2, 1, 3).reshape(o.shape[0], o.shape[2], -1)


def test_multi_head_attention_packed_inputs():
    # onnxruntime's CPU provider refuses packed QKV/KV: the expectation is plain attention
    # over the unpacked, bias-added projections, written out with NumPy.
    d = D // H
    q, k, v, bias = rand(B, S, D), rand(B, S, D), rand(B, S, D), rand(3 * D)
    packed = np.stack([t.reshape(B, S, H, d) for t in (q, k, v)], axis=3)
    (y,) = run_onnxpy("MultiHeadAttention", [packed, None, None, bias], [F32], [3], num_heads=H)
    qb, kb, vb = (_heads(t + bias[i * D : (i + 1) * D]) for i, t in enumerate((q, k, v)))
    np.testing.assert_allclose(y, _sdpa(qb, kb, vb), rtol=1e-5, atol=1e-5)
    kv = np.stack([t.reshape(B, S, H, d) for t in (k, v)], axis=3)
    (y,) = run_onnxpy("MultiHeadAttention", [q, kv], [F32], [3], num_heads=H)
    np.testing.assert_allclose(y, _sdpa(_heads(q), _heads(k), _heads(v)), rtol=1e-5, atol=1e-5)


def test_embed_layer_normalization():
    ids = RNG.integers(0, 20, (2, 5)).astype(np.int32)
    seg = RNG.integers(0, 2, (2, 5)).astype(np.int32)
    word, pos, segment, g, b = rand(20, D), rand(16, D), rand(2, D), rand(D), rand(D)
    mask = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], np.int32)
    outs = (F32, I32, F32)
    check("EmbedLayerNormalization", [ids, seg, word, pos, segment, g, b, mask], outs)
    check("EmbedLayerNormalization", [ids, None, word, pos, None, g, b], outs, epsilon=1e-5)
    pos_ids = RNG.integers(0, 16, (1, 5)).astype(np.int32)
    inputs = [ids, seg, word, pos, segment, g, b, None, pos_ids]
    check("EmbedLayerNormalization", inputs, outs)
    bad = ids.copy()
    bad[0, 0] = 20
    with pytest.raises(OnnxpyError, match="out of range"):
        run_onnxpy("EmbedLayerNormalization", [bad, None, word, pos, None, g, b], [F32], [3])


# -- text.py: Tokenizer ------------------------------------------------------------------------


def _strings(*values):
    return np.array(values, dtype=object)


TOKENIZER_CASES = [
    (["Hello World", "I love computer science !"], {"separators": [" "]}),
    (["Hello World", "I love computer science !"], {"separators": [" "], "mark": 1}),
    (["a  b", " lead", "trail ", ""], {"separators": [" "]}),
    (["a,b;c d", "x;;y"], {"separators": [",", ";", " "]}),
    (["xab", "abcabd", "a1b22c", "xaby"], {"separators": ["b", "ab", "\\d"]}),
    (["xabz", "a b  c"], {"separators": ["a|ab", " +"]}),
    (["abc", "de", "héllo"], {"separators": [""]}),
    (["abc", "a\nb", "wörld"], {"tokenexp": ".", "mark": 1}),
    (["ab abc a", "xyz"], {"tokenexp": "[a-z]+", "mincharnum": 2}),
    (["ab abc a", "xyz"], {"separators": [" "], "mincharnum": 2}),
    (["ab", "foo bar", "aab"], {"tokenexp": "a|ab|o+|o+ b|a*(ab)?"}),
    (["The quick, brown fox!", "HELLO_1 x"], {"tokenexp": "[a-zA-Z0-9_]+"}),
    (["hello world", "héllo wörld"], {"tokenexp": "\\b\\w+\\b|l+\\b"}),
    (["AbC dd", "été"], {"tokenexp": "(?i)[a-c]+|[^t ]+"}),
    (["ab\ncd"], {"tokenexp": ".+"}),
    (["", ""], {"separators": [" "], "mark": 1}),
    (["a b", "c d e f"], {"separators": [" "], "mincharnum": 2}),
    (["aad", "xyz"], {"separators": ["a*"]}),
    (["aaabcébbééa", "déébcb"], {"separators": ["\\b(ab)?"]}),
    (["babb cé", "abcd"], {"tokenexp": "((a|bc)?.{1,2}|a(b|ab)+\\w{1,2}|(b|ab){2}\\s+(ab)*)\\b"}),
]


@pytest.mark.parametrize(("texts", "attrs"), TOKENIZER_CASES)
def test_tokenizer(texts, attrs):
    attrs = {"mark": 0, "mincharnum": 1, "pad_value": "#", **attrs}
    check("Tokenizer", [_strings(*texts)], (STR,), **attrs)


def _random_pattern(rng: np.random.Generator) -> str:
    atoms = ["a", "b", "c", "[ab]", "[^a ]", "\\w", "\\s", ".", " ", "(ab)", "(a|bc)", "(b|ab)"]
    quantifiers = ["", "?", "*", "+", "{1,2}", "{2}"]

    def sequence() -> str:
        n = rng.integers(1, 4)
        return "".join(rng.choice(atoms) + rng.choice(quantifiers) for _ in range(n))

    pattern = "|".join(sequence() for _ in range(rng.integers(1, 4)))
    return pattern if rng.random() < 0.7 else f"({pattern})\\b"


def test_tokenizer_random_patterns_agree_with_onnxruntime():
    """Leftmost-longest RE2 matching emulated with Python's re, on random patterns."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        mode = "tokenexp" if rng.random() < 0.5 else "separators"
        pattern = _random_pattern(rng)
        attrs = {"mark": int(rng.integers(0, 2)), "mincharnum": int(rng.integers(1, 3))}
        attrs[mode] = pattern if mode == "tokenexp" else [pattern]
        texts = ["".join(rng.choice(list("abcd é"), rng.integers(0, 14))) for _ in range(12)]
        check("Tokenizer", [_strings(*texts)], (STR,), pad_value="#", **attrs)


def test_tokenizer_shapes():
    attrs = {"mark": 1, "mincharnum": 1, "pad_value": "<pad>", "separators": [" "]}
    check("Tokenizer", [np.array([["a b", "c"], ["d e f", ""]], dtype=object)], (STR,), **attrs)
    check("Tokenizer", [np.array([["", ""], ["", ""]], dtype=object)], (STR,), **attrs)
    check("Tokenizer", [np.zeros((0,), dtype=object)], (STR,), **attrs)
    check("Tokenizer", [np.zeros((2, 0), dtype=object)], (STR,), **attrs)


def test_tokenizer_refuses_what_onnxruntime_refuses():
    x = _strings("a b")
    base = {"mark": 0, "pad_value": "#"}
    for attrs in (
        {"mincharnum": 1, "tokenexp": "(?u)\\b\\w+\\b"},
        {"mincharnum": 0, "separators": [" "]},
        {"mincharnum": 1},
        {"mincharnum": 1, "tokenexp": ""},
    ):
        with pytest.raises(OnnxpyError):
            run_onnxpy("Tokenizer", [x], [STR], [2], **base, **attrs)


def test_tokenizer_in_a_skl2onnx_tfidf_model():
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = np.array(
        ["The quick brown fox.", "jumps over the lazy dog!", "Hello, World: hello", "a b c"]
    )
    for kwargs in ({}, {"ngram_range": (1, 2)}, {"analyzer": "char"}):
        vec = TfidfVectorizer(**kwargs).fit(corpus)
        model = to_onnx(vec, initial_types=[("x", StringTensorType([None, 1]))], target_opset=17)
        assert any(n.op_type == "Tokenizer" for n in model.graph.node)
        # (onnxruntime needs an en_US.UTF-8 locale for the model's StringNormalizer: sklearn's
        # own transform is the expectation.)
        feeds = {"x": corpus.reshape(-1, 1).astype(object)}
        (actual,) = onnxpy.InferenceSession(model.SerializeToString()).run(None, feeds)
        np.testing.assert_allclose(actual, vec.transform(corpus).toarray(), atol=1e-5)


# -- end to end: models rewritten by onnxruntime's optimizers ------------------------------------


class TinyBert(nn.Module):
    """One BERT layer with embeddings, written like the Hugging Face implementation."""

    def __init__(self, gelu: str = "none", vocab: int = 30, hidden: int = 16, heads: int = 2):
        super().__init__()
        self.hidden, self.heads, self.gelu = hidden, heads, gelu
        self.word, self.pos = nn.Embedding(vocab, hidden), nn.Embedding(16, hidden)
        self.segment = nn.Embedding(2, hidden)
        self.ln0 = nn.LayerNorm(hidden, eps=1e-12)
        self.q, self.k, self.v = (nn.Linear(hidden, hidden) for _ in range(3))
        self.o = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
        self.up, self.down = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)
        self.pool = nn.Linear(hidden, hidden)

    def forward(self, ids, mask, segment):
        b, n = ids.shape
        d = self.hidden // self.heads
        positions = torch.arange(n).unsqueeze(0)
        x = self.ln0(self.word(ids) + self.pos(positions) + self.segment(segment))
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * -10000.0

        def split(t):
            return t.view(b, n, self.heads, d).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + bias, dim=-1)
        ctx = torch.matmul(att, v).transpose(1, 2).reshape(b, n, self.hidden)
        x = self.ln1(x + self.o(ctx))
        x = self.ln2(x + self.down(nn.functional.gelu(self.up(x), approximate=self.gelu)))
        return x, torch.tanh(self.pool(x[:, 0]))


class Blocks(nn.Module):
    """Patterns the session optimizer fuses: Conv+activation, QuickGelu, Gelu, scaled MatMul."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x, img):
        a = torch.relu(self.c1(img))
        b = nn.functional.leaky_relu(self.c2(a), 0.2)
        c = torch.clip(self.c2(b), -0.5, 0.5)
        quick = x * torch.sigmoid(1.702 * x)
        scores = torch.matmul(x, x.transpose(-1, -2)) * 0.5
        return c, quick, scores, nn.functional.gelu(x)


class EncoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            16, 2, 32, dropout=0.0, batch_first=True, activation="gelu"
        )

    def forward(self, x):
        return self.layer(x)


class SkipRms(nn.Module):
    def __init__(self):
        super().__init__()
        self.w, self.lin = nn.Parameter(torch.randn(16)), nn.Linear(16, 16, bias=False)

    def forward(self, x, y):
        h = x + self.lin(y)
        return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w


def _export(module, args, path, names, dynamic=()):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            opset_version=17,
            input_names=names,
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in dynamic},
            dynamo=False,
        )
    return str(path)


def _session_optimized(src, level="EXTENDED"):
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level}")
    so.optimized_model_filepath = src.replace(".onnx", f".{level.lower()}.onnx")
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return so.optimized_model_filepath


def _transformers_optimized(src, **options):
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    fusion = FusionOptions("bert")
    for k, v in options.items():
        setattr(fusion, k, v)
    model = optimizer.optimize_model(
        src,
        model_type="bert",
        num_heads=2,
        hidden_size=16,
        opt_level=0,
        optimization_options=fusion,
    )
    out = src.replace(".onnx", f".tr{len(options)}.onnx")
    model.save_model_to_file(out)
    return out


def _contrib_ops(path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(path).graph.node if n.domain == MS)


def _compare_runtimes(path, feeds, atol=1e-4):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    expected = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)
    actual = onnxpy.InferenceSession(path).run(None, feeds)
    assert_close(actual, expected, rtol=1e-4, atol=atol)


@pytest.fixture(scope="module")
def bert_feeds():
    ids = RNG.integers(0, 30, (2, 6))
    mask = np.ones((2, 6), np.int64)
    mask[1, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": RNG.integers(0, 2, (2, 6))}


def _bert(tmp_path, feeds, gelu):
    args = tuple(
        torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask", "token_type_ids")
    )
    names = ["input_ids", "attention_mask", "token_type_ids"]
    return _export(TinyBert(gelu), args, tmp_path / f"bert_{gelu}.onnx", names, names)


def test_session_optimized_tiny_bert(tmp_path, bert_feeds):
    path = _session_optimized(_bert(tmp_path, bert_feeds, "none"))
    assert {"FusedMatMul", "BiasGelu", "FusedGemm"} <= set(_contrib_ops(path))
    _compare_runtimes(path, bert_feeds)


@pytest.mark.parametrize(
    ("gelu", "options", "expected_ops"),
    [
        (
            "none",
            {},
            {"EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu"},
        ),
        (
            "tanh",
            {},
            {"EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "FastGelu"},
        ),
        ("tanh", {"use_multi_head_attention": True}, {"MultiHeadAttention", "FastGelu"}),
    ],
)
def test_transformers_optimized_tiny_bert(tmp_path, bert_feeds, gelu, options, expected_ops):
    path = _transformers_optimized(_bert(tmp_path, bert_feeds, gelu), **options)
    assert expected_ops <= set(_contrib_ops(path))
    _compare_runtimes(path, bert_feeds)


def test_session_optimized_transformer_encoder_layer(tmp_path):
    x = rand(2, 5, 16)
    src = _export(EncoderLayer(), (torch.from_numpy(x),), tmp_path / "tel.onnx", ["x"])
    path = _session_optimized(src)
    assert {"FusedMatMul", "SkipLayerNormalization", "Gelu"} <= set(_contrib_ops(path))
    _compare_runtimes(path, {"x": x})


def test_session_optimized_blocks(tmp_path):
    x, img = rand(2, 5, 16), rand(1, 3, 8, 8)
    args = (torch.from_numpy(x), torch.from_numpy(img))
    path = _session_optimized(_export(Blocks(), args, tmp_path / "blocks.onnx", ["x", "img"]))
    assert {"FusedConv", "QuickGelu", "FusedMatMul", "Gelu"} <= set(_contrib_ops(path))
    _compare_runtimes(path, {"x": x, "img": img})


def test_transformers_optimized_skip_rms_norm(tmp_path):
    x, y = rand(2, 5, 16), rand(2, 5, 16)
    args = (torch.from_numpy(x), torch.from_numpy(y))
    path = _transformers_optimized(_export(SkipRms(), args, tmp_path / "rms.onnx", ["x", "y"]))
    assert "SkipSimplifiedLayerNormalization" in _contrib_ops(path)
    _compare_runtimes(path, {"x": x, "y": y})
