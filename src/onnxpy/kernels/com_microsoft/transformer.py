"""Transformer operators of the com.microsoft domain: GELU variants, fused layer norms,
Attention, MultiHeadAttention and EmbedLayerNormalization.

These are what onnxruntime's graph optimizer and its transformers optimizer emit for BERT/GPT
style models. Semantics follow onnxruntime's contrib-operator documentation; details the
documentation leaves open were settled by comparing with onnxruntime as a black box:

* masks are additive: a masked key adds ``mask_filter_value`` (default -10000) to the scaled
  score, so a fully masked row attends uniformly rather than producing NaN;
* ``unidirectional`` lets query ``i`` see keys ``j <= i + past_length``;
* SkipLayerNormalization statistics have shape ``input.shape[:-1] + (1,)`` and are float32;
  SkipSimplifiedLayerNormalization reports a zero mean.

onnxruntime also registers two normalizations in the *default* domain at since-version 1,
and its optimizer writes them into models whatever their opset: ``SimplifiedLayerNormalization``
(RMS norm) and ``LayerNormalization`` (so a fused opset-14 model contains a LayerNormalization
node the ONNX opset 14 does not have). Both are registered here for that reason: Y takes the
type of Scale, the statistics float32 (``stash_type`` 1) or float64 (11).

float16/bfloat16 tensors are computed in float32 and rounded once at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxpy import errors
from onnxpy.kernels.ai_onnx.elementwise import erf, gelu_float32, unary_in_place
from onnxpy.kernels.ai_onnx.norm import standardize_last
from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.kernels.registry import NodeInfo, register

MS = "com.microsoft"
_MASK_FILTER = -10000.0


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


_FLOAT32 = frozenset({np.dtype(np.float32)})


def _as(x: object, dtype: np.dtype) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != dtype:
        with np.errstate(all="ignore"):
            x = x.astype(dtype)
    return x


def _float_input(x: object) -> tuple[np.ndarray, np.dtype]:
    """(x in its compute dtype, x's own dtype)."""
    x = np.asarray(x)
    return _as(x, _compute_dtype(x.dtype)), x.dtype


def _sigmoid(v: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e))


def _gelu(v: np.ndarray) -> np.ndarray:
    """Exact GELU in v's compute dtype."""
    if v.dtype == np.float32:
        with np.errstate(all="ignore"):
            return gelu_float32(v)
    return _as(0.5 * v * (1 + erf(v / np.sqrt(2.0))), v.dtype)


def _with_bias(x: object, bias: object) -> tuple[np.ndarray, np.dtype]:
    cx, dtype = _float_input(x)
    if bias is not None:
        cx = cx + _as(bias, cx.dtype)
    return cx, dtype


# -- activations -----------------------------------------------------------------------------


def _bias_gelu_in_place(position: int):
    """BiasGelu writing into A (position 0), a C-contiguous float32 array of the result's
    shape; the plain kernel otherwise."""

    def run(a, b):
        if (
            position == 0
            and a.__class__ is np.ndarray
            and a.dtype == np.float32
            and a.flags.c_contiguous
            and a.flags.writeable
            and b is not None
            and np.broadcast_shapes(a.shape, np.shape(b)) == a.shape
        ):
            with np.errstate(all="ignore"):
                return gelu_float32(a, _as(b, a.dtype), out=a)
        return bias_gelu(a, b)

    return run


def _gelu_into(x: np.ndarray) -> np.ndarray:
    """Gelu written into ``x`` when it is C-contiguous (else a fresh result)."""
    if not x.flags.c_contiguous:
        return gelu(x)
    with np.errstate(all="ignore"):
        return gelu_float32(x, out=x)


def gelu(x, /) -> np.ndarray:
    """0.5 x (1 + erf(x / sqrt 2)), the exact GELU."""
    cx, dtype = _float_input(x)
    return _as(_gelu(cx), dtype)


register(
    "Gelu", since=1, domain=MS, fresh=True, in_place=unary_in_place(_gelu_into, gelu, _FLOAT32)
)(gelu)


@register("BiasGelu", since=1, domain=MS, fresh=True, in_place=_bias_gelu_in_place)
def bias_gelu(a, b, /) -> np.ndarray:
    """Gelu(A + B), B a bias broadcast along the last axis."""
    a = np.asarray(a)
    if a.dtype == np.float32 and b is not None:
        with np.errstate(all="ignore"):
            return gelu_float32(a, _as(b, a.dtype))
    cx, dtype = _with_bias(a, b)
    return _as(_gelu(cx), dtype)


@register("FastGelu", since=1, domain=MS)
def fast_gelu(x, bias=None, /) -> np.ndarray:
    """The tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) of Gelu(X + bias)."""
    v, dtype = _with_bias(x, bias)
    k = v.dtype.type(np.sqrt(2.0 / np.pi))
    c = v.dtype.type(0.044715)
    return _as(0.5 * v * (1 + np.tanh(k * (v + c * v * v * v))), dtype)


@register("QuickGelu", since=1, domain=MS)
def quick_gelu(x, /, *, alpha=1.702) -> np.ndarray:
    """x * sigmoid(alpha * x)."""
    v, dtype = _float_input(x)
    return _as(v * _sigmoid(v * v.dtype.type(alpha)), dtype)


@register("BiasAdd", since=1, domain=MS)
def bias_add(x, bias, skip, /) -> np.ndarray:
    """X + bias + skip (bias of shape (C,) over (N, S, C))."""
    v, dtype = _with_bias(x, bias)
    return _as(v + _as(skip, v.dtype), dtype)


# -- layer normalizations --------------------------------------------------------------------


def _rms_last(s: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    inv = 1 / np.sqrt(np.mean(s * s, axis=-1, keepdims=True) + s.dtype.type(epsilon))
    return s * inv, inv


def _skip_sum(x, skip, bias) -> tuple[np.ndarray, np.dtype]:
    """(input + skip + bias as a fresh array in the compute dtype, input's dtype)."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"input must have rank 2 or 3, got {x.ndim}")
    cd = _compute_dtype(x.dtype)
    s = np.add(_as(x, cd), _as(skip, cd))
    if s.shape != x.shape:
        raise ValueError(f"skip of shape {np.shape(skip)} does not broadcast to {x.shape}")
    if bias is not None:
        b = _as(bias, cd)
        if np.broadcast_shapes(b.shape, s.shape) != s.shape:
            raise ValueError(f"bias of shape {list(b.shape)} does not fit {list(s.shape)}")
        s += b
    return s, x.dtype


def _affine(y: np.ndarray, gamma: object, beta: object) -> np.ndarray:
    """y * gamma (+ beta), in place on y (a fresh array of ours) when shapes allow."""
    g = _as(gamma, y.dtype)
    if np.broadcast_shapes(g.shape, y.shape) != y.shape:
        return _affine(np.broadcast_to(y, np.broadcast_shapes(g.shape, y.shape)).copy(), g, beta)
    y *= g
    if beta is not None:
        b = _as(beta, y.dtype)
        if np.broadcast_shapes(b.shape, y.shape) != y.shape:
            return y + b
        y += b
    return y


@register("SkipLayerNormalization", since=1, domain=MS)
def skip_layer_normalization(input, skip, gamma, beta=None, bias=None, /, *, epsilon=1e-12):
    """LayerNorm(input + skip + bias) over the last axis.

    Returns (output, mean, inv_std_var, input_skip_bias_sum).
    """
    s, dtype = _skip_sum(input, skip, bias)
    y, mean, inv = standardize_last(s, epsilon)
    y = _affine(y, gamma, beta)
    f32 = np.dtype(np.float32)
    return _as(y, dtype), _as(mean, f32), _as(inv, f32), _as(s, dtype)


@register("SkipSimplifiedLayerNormalization", since=1, domain=MS)
def skip_simplified_layer_normalization(input, skip, gamma, bias=None, /, *, epsilon=1e-12):
    """RMSNorm(input + skip + bias) over the last axis, times gamma.

    Returns (output, mean (zeros: RMS norm subtracts none), inv_std_var, input_skip_bias_sum).
    """
    s, dtype = _skip_sum(input, skip, bias)
    y, inv = _rms_last(s, epsilon)
    y = _affine(y, gamma, None)
    f32 = np.dtype(np.float32)
    return _as(y, dtype), np.zeros(inv.shape, f32), _as(inv, f32), _as(s, dtype)


def _stash_dtype(stash_type: int) -> np.dtype:
    if stash_type == 1:
        return np.dtype(np.float32)
    if stash_type == 11:
        return np.dtype(np.float64)
    raise ValueError(f"unsupported stash_type {stash_type} (1 or 11)")


def _flatten_from(x: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """x as (outer, inner) with inner = the axes [axis, rank), and the statistics' shape."""
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for rank {x.ndim}")
    ax = axis % x.ndim
    outer = int(np.prod(x.shape[:ax], dtype=np.int64))
    return x.reshape(outer, -1), x.shape[:ax] + (1,) * (x.ndim - ax)


@register("LayerNormalization", since=1)
def layer_normalization_ort(x, scale, b=None, /, *, axis=-1, epsilon=1e-5, stash_type=1):
    """onnxruntime's LayerNormalization-1: (Y in Scale's type, Mean, InvStdDev)."""
    x = np.asarray(x)
    scale = np.asarray(scale)
    stash = _stash_dtype(stash_type)
    cd = np.dtype(np.float64) if np.float64 in (x.dtype, stash) else np.dtype(np.float32)
    x2, stat_shape = _flatten_from(_as(x, cd), axis)
    y, mean, inv = standardize_last(x2, epsilon)
    y = y.reshape(x.shape) * _as(scale, cd)
    if b is not None:
        y = y + _as(b, cd)
    return (
        _as(y, scale.dtype),
        _as(mean.reshape(stat_shape), stash),
        _as(inv.reshape(stat_shape), stash),
    )


@register("SimplifiedLayerNormalization", since=1)
def simplified_layer_normalization(x, scale, /, *, axis=-1, epsilon=1e-5, stash_type=1):
    """RMS normalization over [axis, rank): (X / sqrt(mean(X^2) + eps) * scale, inv_std_var)."""
    x = np.asarray(x)
    scale = np.asarray(scale)
    stash = _stash_dtype(stash_type)
    cd = np.dtype(np.float64) if np.float64 in (x.dtype, stash) else np.dtype(np.float32)
    x2, stat_shape = _flatten_from(_as(x, cd), axis)
    y, inv = _rms_last(x2, epsilon)
    y = y.reshape(x.shape) * _as(scale, cd)
    return _as(y, scale.dtype), _as(inv.reshape(stat_shape), stash)


# -- attention -------------------------------------------------------------------------------


def _split_heads(t: np.ndarray, heads: int, what: str) -> np.ndarray:
    """(B, L, heads * d) -> (B, heads, L, d)."""
    b, n, hidden = t.shape
    if hidden % heads:
        raise ValueError(f"{what} hidden size {hidden} is not a multiple of num_heads {heads}")
    return t.reshape(b, n, heads, hidden // heads).transpose(0, 2, 1, 3)


def _merge_heads(t: np.ndarray) -> np.ndarray:
    """(B, H, S, d) -> (B, S, H * d)."""
    b, h, s, d = t.shape
    return t.transpose(0, 2, 1, 3).reshape(b, s, h * d)


def _key_mask(mask: object, batch: int, seq: int, total: int, what: str) -> np.ndarray | None:
    """Which keys each query may see, broadcastable to (B, 1, S, T), from a mask input.

    Accepted forms: (B) lengths of right-padded keys; (2B) exclusive ends then inclusive
    starts; raw 0/1 masks (B, T) and (B, S, T).
    """
    if mask is None:
        return None
    m = np.asarray(mask)
    keys = np.arange(total)
    if m.ndim == 1 and m.shape[0] == batch:
        return (keys[None, :] < m[:, None]).reshape(batch, 1, 1, total)
    if m.ndim == 1 and m.shape[0] == 2 * batch:
        ends, starts = m[:batch, None], m[batch:, None]
        return ((keys[None, :] < ends) & (keys[None, :] >= starts)).reshape(batch, 1, 1, total)
    if m.ndim == 2 and m.shape == (batch, total):
        return m.reshape(batch, 1, 1, total) != 0
    if m.ndim == 3 and m.shape == (batch, seq, total):
        return m.reshape(batch, 1, seq, total) != 0
    raise ValueError(
        f"{what} of shape {list(m.shape)} is not supported (batch {batch}, "
        f"sequence {seq}, total sequence {total})"
    )


def _attend(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    scale: float,
    keep: np.ndarray | None,
    mask_filter: float,
    bias: object,
    causal: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q k^T * scale + masks) v over (B, H, S, T); also the pre-softmax scores."""
    scores = blas_matmul(q, np.swapaxes(k, -1, -2))
    scores *= scores.dtype.type(scale)
    if keep is not None:
        scores += np.where(keep, 0, scores.dtype.type(mask_filter)).astype(scores.dtype)
    if bias is not None:
        scores += _as(bias, scores.dtype)
    logits = scores
    if causal:
        s, t = scores.shape[-2:]
        future = np.arange(t)[None, :] > np.arange(s)[:, None] + (t - s)
        logits = np.where(future, -np.inf, scores)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return blas_matmul(e, v), scores


# A row whose exponentials, taken from the largest score of the whole tensor, sum to at least
# this is within 60 of that score (for up to a million keys): its terms are normal floats, as
# precise as when shifted by the row's own maximum.
_ROW_SUM_FLOOR = 1e-20


def _exp_rows_inplace(
    x: np.ndarray, exact_rows: Callable[[tuple[np.ndarray, ...]], np.ndarray]
) -> np.ndarray:
    """exp(x - shift) over the last axis in place; returns the row sums (keepdims).

    The shift is the tensor's maximum, not each row's (one fast reduction instead of one per
    row, which numpy vectorizes poorly for short rows). Rows that sum below
    ``_ROW_SUM_FLOOR`` (a row far below the rest, e.g. fully masked) are rebuilt from their
    original scores, which ``exact_rows(index)`` recomputes, shifted by their own maximum.
    """
    top = x.max() if x.size else 0.0
    if not np.isfinite(top):  # inf or NaN scores: shift each row by its own maximum
        x -= x.max(axis=-1, keepdims=True)
        np.exp(x, out=x)
        return x.sum(axis=-1, keepdims=True)
    x -= top
    np.exp(x, out=x)
    total = x.sum(axis=-1, keepdims=True)
    low = total[..., 0] < _ROW_SUM_FLOOR
    if low.any():
        index = np.nonzero(low)
        rows = exact_rows(index)
        rows -= rows.max(axis=-1, keepdims=True)
        np.exp(rows, out=rows)
        x[index] = rows
        total[index] = rows.sum(axis=-1, keepdims=True)
    return total


def _mha_fused(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    bias: np.ndarray | None,
    heads: int,
    scale: float | None,
    keep_of: Callable[[int, int, int], np.ndarray | None],
    mask_filter: float,
    attention_bias: object,
) -> np.ndarray:
    """MultiHeadAttention's output for separate 3-D Q, K, V (compute dtype), in few passes.

    The heads are strided views that BLAS reads in place; the scale multiplies Q (S x d)
    rather than the scores (S x T); the softmax exponentiates in place and its normalization
    divides the (S x dv) context rather than the (S x T) probabilities; the context is written
    straight into the merged (B, S, H * dv) layout. Softmax rows sum to one, so the value
    bias is added to the context instead of V. The key bias is kept although the softmax
    cancels it in exact arithmetic: on scores a mask pushed to -10000 the float rounding shows
    it, as in onnxruntime's results.
    """
    b, s, hidden = q.shape
    t, v_hidden = k.shape[1], v.shape[2]
    if k.shape[0] != b or v.shape[0] != b or v.shape[1] != t or k.shape[2] != hidden:
        raise ValueError(
            f"query {list(q.shape)}, key {list(k.shape)} and value {list(v.shape)} do not fit"
        )
    if hidden % heads or v_hidden % heads:
        raise ValueError(f"hidden sizes {hidden}, {v_hidden} are not multiples of {heads} heads")
    d, dv = hidden // heads, v_hidden // heads
    sc = q.dtype.type(1.0 / np.sqrt(d) if scale is None else scale)
    vb = None
    if bias is None:
        qs = np.multiply(q, sc)
    else:
        if bias.shape != (2 * hidden + v_hidden,):
            raise ValueError(f"bias of shape {list(bias.shape)} does not fit Q, K and V")
        qs = np.add(q, bias[:hidden])
        qs *= sc
        k = k + bias[hidden : 2 * hidden]
        vb = bias[2 * hidden :]
    qh = qs.reshape(b, s, heads, d).transpose(0, 2, 1, 3)
    kt = k.reshape(b, t, heads, d).transpose(0, 2, 3, 1)
    scores = blas_matmul(qh, kt)  # (B, H, S, T), fresh
    keep = keep_of(b, s, t)
    masked = None if keep is None else ~keep
    if masked is not None:
        np.add(scores, scores.dtype.type(mask_filter), out=scores, where=masked)
    ab = None if attention_bias is None else _as(attention_bias, scores.dtype)
    if ab is not None:
        scores += ab

    def exact_rows(index: tuple[np.ndarray, ...]) -> np.ndarray:
        rows = np.matmul(qh[index][:, None, :], kt[index[0], index[1]])[:, 0, :]
        if masked is not None:
            rows[np.broadcast_to(masked, scores.shape)[index]] += scores.dtype.type(mask_filter)
        if ab is not None:
            rows += np.broadcast_to(ab, scores.shape)[index]
        return rows

    total = _exp_rows_inplace(scores, exact_rows)
    out = np.empty((b, s, heads, dv), dtype=q.dtype)
    by_head = out.swapaxes(1, 2)  # (B, H, S, dv) view of the merged layout
    blas_matmul(scores, v.reshape(b, t, heads, dv).transpose(0, 2, 1, 3), out=by_head)
    np.reciprocal(total, out=total)
    by_head *= total
    out = out.reshape(b, s, v_hidden)
    if vb is not None:
        out += vb
    return out


def _not_supported(name: str, value: object, where: str) -> None:
    if value:
        raise errors.NotImplemented(f"{where}: attribute {name}={value} is not supported")


@register("Attention", since=1, domain=MS, factory=True)
def attention(
    info: NodeInfo,
    *,
    num_heads: int | None = None,
    qkv_hidden_sizes: list[int] | None = None,
    unidirectional: int = 0,
    scale: float | None = None,
    mask_filter_value: float | None = None,
    do_rotary: int | None = None,
    past_present_share_buffer: int | None = None,
    rotary_embedding_dim: int | None = None,
) -> Callable[..., tuple[np.ndarray, ...]]:
    """Self-attention with packed input projection: input @ weights (+ bias) -> Q | K | V.

    past (2, B, H, P, d) is prepended to K and V; present returns them stacked the same way.
    """
    if num_heads is None:
        raise ValueError("Attention needs the num_heads attribute")
    _not_supported("do_rotary", do_rotary, "Attention")
    _not_supported("past_present_share_buffer", past_present_share_buffer, "Attention")
    heads = int(num_heads)
    mask_filter = _MASK_FILTER if mask_filter_value is None else float(mask_filter_value)
    want_present = info.num_outputs > 1

    def run(
        x,
        weights,
        bias=None,
        mask_index=None,
        past=None,
        attention_bias=None,
        past_sequence_length=None,
    ):
        if past_sequence_length is not None:
            raise ValueError("past_sequence_length (shared past/present buffer) is not supported")
        cx, dtype = _float_input(x)
        if cx.ndim != 3:
            raise ValueError(f"input must be (batch, sequence, hidden), got rank {cx.ndim}")
        proj = blas_matmul(cx, _as(weights, cx.dtype))
        if bias is not None:
            proj += _as(bias, cx.dtype)
        total = proj.shape[-1]
        sizes = list(qkv_hidden_sizes) if qkv_hidden_sizes else [total // 3] * 3
        if len(sizes) != 3 or sum(sizes) != total:
            raise ValueError(f"qkv_hidden_sizes {sizes} do not add up to the weights' {total}")
        q = _split_heads(proj[..., : sizes[0]], heads, "Q")
        k = _split_heads(proj[..., sizes[0] : sizes[0] + sizes[1]], heads, "K")
        v = _split_heads(proj[..., sizes[0] + sizes[1] :], heads, "V")
        if past is not None:
            p = _as(past, cx.dtype)
            k = np.concatenate([p[0], k], axis=2)
            v = np.concatenate([p[1], v], axis=2)
        b, _, s, d = q.shape
        t = k.shape[2]
        keep = _key_mask(mask_index, b, s, t, "mask_index")
        sc = 1.0 / np.sqrt(d) if scale is None else float(scale)
        out, _ = _attend(q, k, v, sc, keep, mask_filter, attention_bias, bool(unidirectional))
        y = _as(_merge_heads(out), dtype)
        if not want_present:
            return y
        return y, _as(np.stack([k, v]), dtype)

    return run


def _mha_inputs(query, key, value, bias, heads: int):
    """(Q, K, V) as (B, H, L, d) from the separate, packed or already split forms."""
    q = query
    if q.ndim == 5:  # packed QKV (B, L, H, 3, d)
        if key is not None or value is not None:
            raise ValueError("packed QKV query takes no key or value")
        if q.shape[3] != 3:
            raise ValueError(f"packed QKV must be (B, L, H, 3, d), got {list(q.shape)}")
        parts = [q[:, :, :, i, :] for i in range(3)]
        if bias is not None:
            parts = [p + bb.reshape(heads, -1) for p, bb in zip(parts, np.split(bias, 3))]
        return tuple(p.transpose(0, 2, 1, 3) for p in parts)
    if q.ndim != 3:
        raise ValueError(f"query must be (B, S, hidden) or packed QKV, got rank {q.ndim}")
    hidden = q.shape[-1]
    qb = kb = vb = None
    if bias is not None:
        qb, kb, vb = bias[:hidden], bias[hidden : 2 * hidden], bias[2 * hidden :]
    if qb is not None:
        q = q + qb
    q = _split_heads(q, heads, "query")
    if key is None:
        raise ValueError("MultiHeadAttention needs a key unless the query is packed QKV")
    if key.ndim == 5:  # packed KV (B, L, H, 2, d)
        if value is not None or key.shape[3] != 2:
            raise ValueError(f"packed KV must be (B, L, H, 2, d) alone, got {list(key.shape)}")
        k, v = key[:, :, :, 0, :], key[:, :, :, 1, :]
        if kb is not None:
            k, v = k + kb.reshape(heads, -1), v + vb.reshape(heads, -1)
        return q, k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    if value is None:
        raise ValueError("MultiHeadAttention needs a value with a separate key")
    if key.ndim == 4:  # already (B, H, L, d): used as is, the bias applies to Q only
        return q, key, value
    if kb is not None:
        key, value = key + kb, value + vb
    return q, _split_heads(key, heads, "key"), _split_heads(value, heads, "value")


@register("MultiHeadAttention", since=1, domain=MS, factory=True)
def multi_head_attention(
    info: NodeInfo,
    *,
    num_heads: int | None = None,
    unidirectional: int = 0,
    scale: float | None = None,
    mask_filter_value: float | None = None,
) -> Callable[..., tuple[np.ndarray, ...]]:
    """Attention over separate (or packed) Q, K, V with an optional input-projection bias.

    Returns (output, present_key, present_value, qk); qk is the scaled score plus mask and
    attention_bias, before the softmax.
    """
    if num_heads is None:
        raise ValueError("MultiHeadAttention needs the num_heads attribute")
    heads = int(num_heads)
    mask_filter = _MASK_FILTER if mask_filter_value is None else float(mask_filter_value)
    n_out = info.num_outputs

    def run(
        query,
        key=None,
        value=None,
        bias=None,
        key_padding_mask=None,
        attention_bias=None,
        past_key=None,
        past_value=None,
        past_sequence_length=None,
        cache_indirection=None,
    ):
        if past_sequence_length is not None or cache_indirection is not None:
            raise ValueError("past_sequence_length / cache_indirection are not supported")
        cq, dtype = _float_input(query)
        cd = cq.dtype
        if (
            n_out == 1
            and not unidirectional
            and past_key is None
            and past_value is None
            and cq.ndim == 3
            and np.ndim(key) == 3
            and np.ndim(value) == 3
            and (bias is None or np.ndim(bias) == 1)
        ):
            out = _mha_fused(
                cq,
                _as(key, cd),
                _as(value, cd),
                None if bias is None else _as(bias, cd),
                heads,
                scale,
                lambda b, s, t: _key_mask(key_padding_mask, b, s, t, "key_padding_mask"),
                mask_filter,
                attention_bias,
            )
            return _as(out, dtype)
        q, k, v = _mha_inputs(
            cq,
            None if key is None else _as(key, cd),
            None if value is None else _as(value, cd),
            None if bias is None else _as(bias, cd),
            heads,
        )
        if (past_key is None) != (past_value is None):
            raise ValueError("past_key and past_value must be given together")
        if past_key is not None:
            k = np.concatenate([_as(past_key, cd), k], axis=2)
            v = np.concatenate([_as(past_value, cd), v], axis=2)
        b, _, s, d = q.shape
        t = k.shape[2]
        keep = _key_mask(key_padding_mask, b, s, t, "key_padding_mask")
        sc = 1.0 / np.sqrt(d) if scale is None else float(scale)
        out, scores = _attend(q, k, v, sc, keep, mask_filter, attention_bias, bool(unidirectional))
        results = [_as(_merge_heads(out), dtype)]
        if n_out > 1:
            results += [_as(k, dtype), _as(v, dtype), _as(scores, dtype)]
            return tuple(results)
        return results[0]

    return run


# -- EmbedLayerNormalization -----------------------------------------------------------------


def _lookup(table: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
        raise ValueError(f"{what} out of range [0, {table.shape[0]})")
    return table[ids]


@register("EmbedLayerNormalization", since=1, domain=MS)
def embed_layer_normalization(
    input_ids,
    segment_ids,
    word_embedding,
    position_embedding,
    segment_embedding,
    gamma,
    beta,
    mask=None,
    position_ids=None,
    /,
    *,
    epsilon=1e-12,
    mask_index_type=None,
):
    """LayerNorm(word[ids] + position[pos] + segment[seg]) with the BERT mask index.

    Positions are ``position_ids`` or 0..S-1. Returns (output, mask_index = number of ones
    in each mask row, or zeros without a mask, embedding_sum).
    """
    ids = np.asarray(input_ids)
    if ids.ndim != 2:
        raise ValueError(f"input_ids must be (batch, sequence), got rank {ids.ndim}")
    word, dtype = _float_input(word_embedding)
    cd = word.dtype
    batch, seq = ids.shape
    pos = np.arange(seq)[None, :] if position_ids is None else np.asarray(position_ids)
    e = _lookup(word, ids, "input_ids") + _lookup(_as(position_embedding, cd), pos, "position")
    if segment_ids is not None and segment_embedding is not None:
        e = e + _lookup(_as(segment_embedding, cd), segment_ids, "segment_ids")
    y, _, _ = standardize_last(e, epsilon)
    y = y * _as(gamma, cd) + _as(beta, cd)
    if mask is None:
        mask_index = np.zeros(batch, dtype=np.int32)
    else:
        mask_index = (np.asarray(mask) != 0).sum(axis=1).astype(np.int32)
    return _as(y, dtype), mask_index, _as(e, dtype)
