"""MatMul, Gemm, Einsum and MatMulInteger beyond the backend cases: dtypes, 1-D promotion,
broadcasting, legacy Gemm, implicit Einsum output order, zero points and exactness.

Expectations are worked by hand or from plain NumPy products in float64 / int64.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import helper

import onnxpy
from tests.kernels.single_node import run

RNG = np.random.default_rng(11)


def ints(*shape, lo=-5, hi=6, dtype=np.int64):
    return RNG.integers(lo, hi, size=shape).astype(dtype)


# -- MatMul ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float64, np.int32, np.int64, np.uint32, np.uint64, ml_dtypes.bfloat16]
)
def test_matmul_dtypes_exact_on_small_integers(dtype):
    a = ints(2, 3, 4, lo=0)
    b = ints(4, 5, lo=0)
    y = run("MatMul", [a.astype(dtype), b.astype(dtype)], opset=13)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y.astype(np.int64), a @ b)


@pytest.mark.parametrize(
    ("sa", "sb", "expected"),
    [
        ((4,), (4,), ()),
        ((4,), (2, 4, 3), (2, 3)),
        ((2, 3, 4), (4,), (2, 3)),
        ((2, 1, 3, 4), (5, 4, 2), (2, 5, 3, 2)),
    ],
)
def test_matmul_promotion_and_broadcasting(sa, sb, expected):
    a, b = ints(*sa), ints(*sb)
    y = run("MatMul", [a.astype(np.float64), b.astype(np.float64)], opset=13)
    assert y.shape == expected
    np.testing.assert_array_equal(y, np.matmul(a, b))


def test_matmul_float16_accumulates_accurately():
    # 3000 products of 1 * 1: float16 step-by-step accumulation would stall at 2048.
    a = np.ones((1, 3000), dtype=np.float16)
    b = np.ones((3000, 1), dtype=np.float16)
    assert float(run("MatMul", [a, b], opset=13)[0, 0]) == 3000


def test_matmul_shape_mismatch_fails():
    with pytest.raises(onnxpy.Fail):
        run("MatMul", [np.ones((2, 3), np.float32), np.ones((4, 2), np.float32)], opset=13)


# -- Gemm --------------------------------------------------------------------------------------


def gemm_ref(a, b, c, alpha, beta, ta, tb):
    a = a.T if ta else a
    b = b.T if tb else b
    return alpha * (a.astype(np.float64) @ b.astype(np.float64)) + (0 if c is None else beta * c)


@pytest.mark.parametrize("c_shape", [(), (1,), (5,), (3, 1), (3, 5)])
@pytest.mark.parametrize(("ta", "tb"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_float64_transposes_and_bias_shapes(c_shape, ta, tb):
    a = RNG.standard_normal((4, 3) if ta else (3, 4))
    b = RNG.standard_normal((5, 4) if tb else (4, 5))
    c = RNG.standard_normal(c_shape)
    y = run("Gemm", [a, b, c], opset=13, alpha=0.5, beta=-2.0, transA=ta, transB=tb)
    assert y.dtype == np.float64 and y.shape == (3, 5)
    np.testing.assert_allclose(y, gemm_ref(a, b, c, 0.5, -2.0, ta, tb), rtol=1e-12)


def test_gemm_without_c_and_float16():
    a = ints(3, 4).astype(np.float16)
    b = ints(4, 2).astype(np.float16)
    y = run("Gemm", [a, b], opset=11, alpha=2.0)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, 2 * (a.astype(np.float64) @ b.astype(np.float64)))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32])
def test_gemm_integers(dtype):
    a, b, c = ints(2, 3, lo=0), ints(3, 4, lo=0), ints(4, lo=0)
    y = run(
        "Gemm", [a.astype(dtype), b.astype(dtype), c.astype(dtype)], opset=13, alpha=1.0, beta=1.0
    )
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, a @ b + c)


def test_gemm_legacy_broadcast_and_inputs_untouched():
    a = RNG.standard_normal((3, 4)).astype(np.float32)
    b = RNG.standard_normal((4, 2)).astype(np.float32)
    c = np.array([1.0, -1.0], dtype=np.float32)
    keep = [a.copy(), b.copy(), c.copy()]
    y = run("Gemm", [a, b, c], opset=6, broadcast=1, beta=3.0)
    np.testing.assert_allclose(y, gemm_ref(a, b, c, 1.0, 3.0, 0, 0), rtol=1e-5, atol=1e-6)
    for before, now in zip(keep, (a, b, c), strict=True):
        np.testing.assert_array_equal(before, now)


def test_gemm_legacy_bias_of_full_shape_without_broadcast():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
    c = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    np.testing.assert_array_equal(run("Gemm", [a, b, c], opset=1, transA=0), [[4, 5], [6, 7]])


# -- Einsum ------------------------------------------------------------------------------------


def test_einsum_implicit_output_is_ascii_sorted():
    x = ints(2, 3).astype(np.float64)
    # implicit "ba": output indices sorted -> "ab", i.e. the transpose
    np.testing.assert_array_equal(run("Einsum", [x], opset=12, equation="ba"), x.T)
    # upper case sorts before lower case: "aB" -> output "Ba"
    np.testing.assert_array_equal(run("Einsum", [x], opset=12, equation="aB"), x.T)


def test_einsum_implicit_contraction_and_spaces():
    a, b = ints(2, 3), ints(3, 4)
    y = run("Einsum", [a.astype(np.float32), b.astype(np.float32)], opset=12, equation="ij, jk")
    np.testing.assert_array_equal(y, a @ b)


def test_einsum_ellipsis_broadcast_and_integers():
    a, b = ints(2, 1, 3, 4, dtype=np.int32), ints(5, 4, 2, dtype=np.int32)
    y = run("Einsum", [a, b], opset=12, equation="...ij,...jk->...ik")
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, np.matmul(a.astype(np.int64), b.astype(np.int64)))
    # implicit mode puts the ellipsis dimensions first
    y = run("Einsum", [a], opset=12, equation="...ij")
    np.testing.assert_array_equal(y, a)


def test_einsum_trace_diagonal_and_three_operands():
    m = ints(3, 3).astype(np.float64)
    assert float(run("Einsum", [m], opset=12, equation="ii->")) == float(np.trace(m))
    np.testing.assert_array_equal(run("Einsum", [m], opset=12, equation="ii->i"), np.diag(m))
    a, b, c = ints(2, 3), ints(3, 4), ints(4, 5)
    y = run(
        "Einsum",
        [a.astype(np.float64), b.astype(np.float64), c.astype(np.float64)],
        opset=12,
        equation="ij,jk,kl->il",
    )
    np.testing.assert_array_equal(y, a @ b @ c)


def test_einsum_float16_and_bfloat16():
    a, b = ints(2, 3), ints(3, 2)
    for dtype in (np.float16, ml_dtypes.bfloat16):
        y = run("Einsum", [a.astype(dtype), b.astype(dtype)], opset=28, equation="ij,jk->ik")
        assert y.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(y.astype(np.int64), a @ b)


# -- MatMulInteger -----------------------------------------------------------------------------


def test_matmulinteger_per_row_and_per_column_zero_points():
    a = ints(3, 4, lo=0, hi=256, dtype=np.uint8)
    b = ints(4, 2, lo=-128, hi=128, dtype=np.int8)
    za = np.array([1, 200, 255], dtype=np.uint8)
    zb = np.array([-128, 127], dtype=np.int8)
    y = run("MatMulInteger", [a, b, za, zb], opset=10)
    ref = (a.astype(np.int64) - za[:, None]) @ (b.astype(np.int64) - zb[None, :])
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, ref)


def test_matmulinteger_scalar_zero_points_nd():
    a = ints(2, 3, 5, lo=-128, hi=128, dtype=np.int8)
    b = ints(2, 5, 4, lo=0, hi=256, dtype=np.uint8)
    y = run("MatMulInteger", [a, b, np.array(-3, np.int8), np.array(7, np.uint8)], opset=10)
    np.testing.assert_array_equal(y, (a.astype(np.int64) + 3) @ (b.astype(np.int64) - 7))


def test_matmulinteger_nd_zero_point_shapes():
    a = ints(2, 3, 5, lo=0, hi=256, dtype=np.uint8)
    b = ints(2, 5, 4, lo=0, hi=256, dtype=np.uint8)
    za = ints(2, 3, 1, lo=0, hi=256, dtype=np.uint8)
    zb = ints(2, 1, 4, lo=0, hi=256, dtype=np.uint8)
    y = run("MatMulInteger", [a, b, za, zb], opset=10)
    ref = (a.astype(np.int64) - za) @ (b.astype(np.int64) - zb)
    np.testing.assert_array_equal(y, ref)


def test_matmulinteger_is_exact_for_long_rows():
    # every product is 255 * 255 = 65025; 4099 of them exceed float32's exact integer range
    k = 4099
    a = np.full((2, k), 255, dtype=np.uint8)
    b = np.full((k, 3), 255, dtype=np.uint8)
    y = run("MatMulInteger", [a, b], opset=10)
    assert np.all(y == 65025 * k)
    b2 = b.copy()
    b2[0, 0] = 254  # one product smaller by 255
    y = run("MatMulInteger", [a, b2], opset=10)
    assert y[0, 0] == 65025 * k - 255 and y[0, 1] == 65025 * k


# -- Attention (float64 and 3-D GQA with cache, checked against a per-head loop) --------------


def attention_ref(q, k, v, scale, causal_offset=None):
    """q: (B, Hq, L, D), k/v: (B, Hkv, S, D); head h uses K/V head h // (Hq / Hkv)."""
    b, hq, length, _ = q.shape
    g = hq // k.shape[1]
    out = np.zeros((b, hq, length, v.shape[-1]))
    for bi in range(b):
        for h in range(hq):
            s = q[bi, h] @ k[bi, h // g].T * scale
            if causal_offset is not None:
                i, j = np.indices(s.shape)
                s = np.where(j <= i + causal_offset, s, -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            out[bi, h] = (p / p.sum(-1, keepdims=True)) @ v[bi, h // g]
    return out


def test_attention_float64_4d():
    q, k, v = (RNG.standard_normal(s) for s in ((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 6)))
    y = run("Attention", [q, k, v], opset=23)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, attention_ref(q, k, v, 0.5), rtol=1e-12)


def test_attention_3d_gqa_with_past_and_causal():
    b, hq, hkv, d, length, past = 2, 4, 2, 3, 2, 3
    q = RNG.standard_normal((b, length, hq * d)).astype(np.float32)
    k = RNG.standard_normal((b, length, hkv * d)).astype(np.float32)
    v = RNG.standard_normal((b, length, hkv * d)).astype(np.float32)
    pk = RNG.standard_normal((b, hkv, past, d)).astype(np.float32)
    pv = RNG.standard_normal((b, hkv, past, d)).astype(np.float32)
    names = ["q", "k", "v", "", "pk", "pv"]
    node = helper.make_node(
        "Attention",
        names,
        ["y", "present_k", "present_v"],
        q_num_heads=hq,
        kv_num_heads=hkv,
        is_causal=1,
    )
    feeds = {"q": q, "k": k, "v": v, "pk": pk, "pv": pv}
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, a.shape)
            for n, a in feeds.items()
        ],
        [
            helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [None])
            for n in ("y", "present_k", "present_v")
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 9
    y, present_k, present_v = onnxpy.InferenceSession(model.SerializeToString()).run(None, feeds)

    def heads(x, h):
        return x.reshape(b, length, h, d).transpose(0, 2, 1, 3).astype(np.float64)

    k4 = np.concatenate([pk, heads(k, hkv)], axis=2)
    v4 = np.concatenate([pv, heads(v, hkv)], axis=2)
    ref = attention_ref(heads(q, hq), k4, v4, 1 / np.sqrt(d), causal_offset=past)
    np.testing.assert_allclose(
        y, ref.transpose(0, 2, 1, 3).reshape(b, length, hq * d), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_array_equal(present_k, k4.astype(np.float32))
    np.testing.assert_array_equal(present_v, v4.astype(np.float32))
