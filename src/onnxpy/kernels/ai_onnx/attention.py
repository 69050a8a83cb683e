"""Attention-family operators: Attention, RotaryEmbedding, LinearAttention,
CausalConvWithState and (domain ai.onnx.preview) FlexAttention.

Heads are kept in ``(batch, heads, sequence, head_size)`` layout. Grouped-query attention never
repeats K/V: the query heads sharing one K/V head are folded into the sequence axis, so each
product is one batched BLAS call. Masks (boolean, additive float, causal, sliding window, padded
key counts) are combined into one additive bias whose ``-inf`` entries disable keys; a query row
with no allowed key yields zero probabilities (and a zero output row), never NaN. 16-bit float
inputs are computed in float32 and rounded back once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from onnxpy.kernels.blas import matmul as blas_matmul
from onnxpy.kernels.registry import NodeInfo, register

_PRECISIONS = {
    1: np.dtype(np.float32),
    10: np.dtype(np.float16),
    11: np.dtype(np.float64),
    16: np.dtype(ml_dtypes.bfloat16),
}


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _as(x: object, dtype: np.dtype) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != dtype:
        with np.errstate(all="ignore"):
            x = x.astype(dtype)
    return x


def _precision(softmax_precision: int | None, default: np.dtype | None) -> np.dtype | None:
    if softmax_precision is None:
        return default
    if softmax_precision not in _PRECISIONS:
        raise ValueError(f"unsupported softmax_precision {softmax_precision}")
    return _PRECISIONS[softmax_precision]


def _masked_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in place; rows that are entirely -inf become zeros."""
    m = scores.max(axis=-1, keepdims=True)
    m[~np.isfinite(m)] = 0
    scores -= m
    np.exp(scores, out=scores)
    total = scores.sum(axis=-1, keepdims=True)
    total[total == 0] = np.inf  # an empty row: 0 / inf = 0
    scores /= total
    return scores


def _grouped_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` where ``a`` has ``g`` times the heads of ``b`` (head h uses b's head h // g).

    a: (B, Hq, L, X), b: (B, Hkv, X, Y) -> (B, Hq, L, Y).
    """
    bsz, hq, length, x = a.shape
    hkv = b.shape[1]
    if hq == hkv:
        return blas_matmul(a, b)
    if hkv == 0 or hq % hkv:
        raise ValueError(f"{hq} query heads are not a multiple of {hkv} key/value heads")
    g = hq // hkv
    folded = blas_matmul(a.reshape(bsz, hkv, g * length, x), b)
    return folded.reshape(bsz, hq, length, b.shape[-1])


def _split_heads(x: np.ndarray, heads: int | None, what: str) -> np.ndarray:
    """(B, S, H * D) -> (B, H, S, D); 4-D inputs are returned unchanged."""
    if x.ndim == 4:
        return x
    if x.ndim != 3:
        raise ValueError(f"{what} must be a 3-D or 4-D tensor, got rank {x.ndim}")
    if not heads:
        raise ValueError(f"3-D {what} needs the number of heads attribute")
    b, s, hidden = x.shape
    if hidden % heads:
        raise ValueError(f"{what} hidden size {hidden} is not a multiple of {heads} heads")
    return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)


# -- Attention ---------------------------------------------------------------------------------


def _structural_mask(
    q_len: int,
    total: int,
    offset: np.ndarray,
    is_causal: int,
    left: int,
    right: int,
    nonpad: np.ndarray | None,
) -> np.ndarray | None:
    """Boolean (B or 1, 1, q_len, total) mask of keys allowed by causality, window and padding.

    ``offset`` (shape (B or 1,)) is the absolute position of the first query.
    """
    if not is_causal and left < 0 and right < 0 and nonpad is None:
        return None
    pos = offset[:, None, None, None] + np.arange(q_len)[None, None, :, None]  # query positions
    key = np.arange(total)[None, None, None, :]
    allowed = np.ones((offset.shape[0], 1, q_len, total), dtype=bool)
    if is_causal:
        allowed &= key <= pos
    if left >= 0:
        allowed &= key >= pos - left
    if right >= 0:
        allowed &= key <= pos + right
    if nonpad is not None:
        allowed &= key < nonpad[:, None, None, None]
    return allowed


def _mask_bias(attn_mask: object, total: int, dtype: np.dtype) -> np.ndarray:
    """The additive bias of ``attn_mask``, its last axis padded to ``total`` with -inf."""
    mask = np.asarray(attn_mask)
    if mask.dtype == np.bool_:
        bias = np.where(mask, dtype.type(0), dtype.type(-np.inf))
    else:
        bias = _as(mask, dtype)
    if bias.ndim == 0:
        bias = bias.reshape(1)
    short = total - bias.shape[-1]
    if short > 0:
        pad = np.full(bias.shape[:-1] + (short,), -np.inf, dtype=dtype)
        bias = np.concatenate([bias, pad], axis=-1)
    elif short < 0:
        raise ValueError(f"attn_mask has {bias.shape[-1]} keys, more than the {total} available")
    return bias


@dataclass(frozen=True)
class _AttentionOptions:
    is_causal: int
    kv_num_heads: int | None
    q_num_heads: int | None
    qk_mode: int
    scale: float | None
    softcap: float
    softmax_dtype: np.dtype | None
    left_window: int
    right_window: int
    want_present: bool  # the node uses present_key / present_value
    want_qk: bool  # the node uses qk_matmul_output


def _attention(opts: _AttentionOptions, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen):
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    t1, t2 = q.dtype, v.dtype
    three_d = q.ndim == 3
    q4 = _split_heads(q, opts.q_num_heads, "Q")
    k4 = _split_heads(k, opts.kv_num_heads, "K")
    v4 = _split_heads(v, opts.kv_num_heads, "V")
    if (past_key is None) != (past_value is None):
        raise ValueError("past_key and past_value must be given together")
    past_len = 0
    if past_key is not None:
        past_len = np.shape(past_key)[2]
        k4 = np.concatenate([_as(past_key, k4.dtype), k4], axis=2)
        v4 = np.concatenate([_as(past_value, v4.dtype), v4], axis=2)
    present_key = present_value = None
    if opts.want_present:
        # fresh arrays, never views of the inputs
        present_key = _as(k4, t1) if past_key is not None else np.array(k4, dtype=t1)
        present_value = _as(v4, t2) if past_key is not None else np.array(v4, dtype=t2)

    bsz, _, q_len, head = q4.shape
    total = k4.shape[2]
    cd = _compute_dtype(t1)
    sd = np.dtype(np.float64) if opts.softmax_dtype == np.float64 else cd
    scale = 1.0 / np.sqrt(head) if opts.scale is None else opts.scale
    mode = opts.qk_mode if opts.want_qk else -1

    scores = _grouped_matmul(_as(q4, sd), np.swapaxes(_as(k4, sd), -1, -2))
    scores *= sd.type(scale)
    qk_out = scores.copy() if mode == 0 else None
    if opts.softcap > 0:
        np.tanh(scores / sd.type(opts.softcap), out=scores)
        scores *= sd.type(opts.softcap)
    if mode == 1:
        qk_out = scores.copy()

    nonpad = None
    offset = np.full(1, past_len, dtype=np.int64)
    if nonpad_kv_seqlen is not None:
        nonpad = np.asarray(nonpad_kv_seqlen, dtype=np.int64).reshape(-1)
        if past_key is None:
            offset = nonpad - q_len
    allowed = _structural_mask(
        q_len, total, offset, opts.is_causal, opts.left_window, opts.right_window, nonpad
    )
    if allowed is not None:
        scores += np.where(allowed, sd.type(0), sd.type(-np.inf))
    if attn_mask is not None:
        scores += _mask_bias(attn_mask, total, sd)
    if mode == 2:
        qk_out = scores.copy()

    probs = _masked_softmax(scores)
    if mode == 3:
        qk_out = probs
    y = _grouped_matmul(_as(probs, cd), _as(v4, cd))
    if three_d:
        y = y.transpose(0, 2, 1, 3).reshape(bsz, q_len, -1)
    qk_out = None if qk_out is None else _as(qk_out, t1)
    return _as(y, t1), present_key, present_value, qk_out


@register("Attention", since=(23, 24, 25), factory=True)
def attention(
    info: NodeInfo,
    *,
    is_causal=0,
    kv_num_heads=None,
    q_num_heads=None,
    qk_matmul_output_mode=0,
    scale=None,
    softcap=0.0,
    softmax_precision=None,
    left_window_size=-1,
    right_window_size=-1,
):
    """Scaled dot-product attention (MHA/GQA/MQA) with optional cache, mask and softcap.

    Opset 24 adds ``nonpad_kv_seqlen`` (external cache: keys past it are masked and the causal
    frontier is offset by ``nonpad_kv_seqlen - q_sequence_length``); opset 25 adds sliding
    window bounds around each query's absolute position. Outputs the node does not use
    (present key/value, qk_matmul_output) are not materialized.
    """
    if qk_matmul_output_mode not in (0, 1, 2, 3):
        raise ValueError(f"qk_matmul_output_mode must be 0..3, got {qk_matmul_output_mode}")
    opts = _AttentionOptions(
        is_causal=is_causal,
        kv_num_heads=kv_num_heads,
        q_num_heads=q_num_heads,
        qk_mode=qk_matmul_output_mode,
        scale=scale,
        softcap=softcap,
        softmax_dtype=_precision(softmax_precision, None),
        left_window=left_window_size,
        right_window=right_window_size,
        want_present=info.num_outputs > 1,
        want_qk=info.num_outputs > 3,
    )

    def run(q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None, /):
        return _attention(opts, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen)

    return run


# -- RotaryEmbedding ---------------------------------------------------------------------------


@register("RotaryEmbedding", since=23)
def rotary_embedding(
    x,
    cos_cache,
    sin_cache,
    position_ids=None,
    /,
    *,
    interleaved=0,
    num_heads=None,
    rotary_embedding_dim=0,
):
    """Rotate pairs of the first ``rotary_embedding_dim`` features by position angles.

    Pairs are (i, i + d/2) or, interleaved, (2i, 2i + 1); the rest passes through.
    """
    x = np.asarray(x)
    dtype = x.dtype
    cd = _compute_dtype(dtype)
    cos, sin = _as(cos_cache, cd), _as(sin_cache, cd)
    if position_ids is not None:
        pid = np.asarray(position_ids, dtype=np.int64)
        cos, sin = cos[pid], sin[pid]  # (B, S, rd / 2)
    elif cos.ndim == 2:  # one row per position, shared by the batch
        cos, sin = cos[None], sin[None]
    if x.ndim == 4:  # (B, H, S, D): angles broadcast over heads
        xs = _as(x, cd)
        cos, sin = cos[:, None], sin[:, None]
    elif x.ndim == 3:  # (B, S, H * D): view as (B, S, H, D)
        if not num_heads:
            raise ValueError("RotaryEmbedding with a 3-D input needs num_heads")
        b, s, hidden = x.shape
        xs = _as(x, cd).reshape(b, s, num_heads, hidden // num_heads)
        cos, sin = cos[:, :, None], sin[:, :, None]
    else:
        raise ValueError(f"RotaryEmbedding needs a 3-D or 4-D input, got rank {x.ndim}")
    head = xs.shape[-1]
    rd = rotary_embedding_dim or head
    half = rd // 2
    if cos.shape[-1] != half or sin.shape[-1] != half:
        raise ValueError(
            f"cos/sin caches must have {half} values per position, got {cos.shape[-1]}"
        )
    if interleaved:
        x1, x2 = xs[..., 0:rd:2], xs[..., 1:rd:2]
    else:
        x1, x2 = xs[..., :half], xs[..., half:rd]
    out = np.empty_like(xs)
    real = cos * x1 - sin * x2
    imag = sin * x1 + cos * x2
    if interleaved:
        out[..., 0:rd:2], out[..., 1:rd:2] = real, imag
    else:
        out[..., :half], out[..., half:rd] = real, imag
    out[..., rd:] = xs[..., rd:]
    return _as(out.reshape(x.shape), dtype)


# -- LinearAttention ---------------------------------------------------------------------------


def _per_head(x: np.ndarray, heads: int) -> np.ndarray:
    """(B, T, H * d) or (B, T, H) or (B, T, 1) -> (B, T, H or 1, d or 1)."""
    b, t, last = x.shape
    if last in (heads, 1):
        return x.reshape(b, t, last, 1)
    return x.reshape(b, t, heads, last // heads)


@register("LinearAttention", since=27, factory=True)
def linear_attention(
    info: NodeInfo,
    *,
    q_num_heads=None,
    kv_num_heads=None,
    scale=0.0,
    update_rule="gated_delta",
    chunk_size=64,
):
    """Recurrent linear attention, run token by token over (B, H_kv, d_k, d_v) states."""
    if not q_num_heads or not kv_num_heads:
        raise ValueError("LinearAttention needs q_num_heads and kv_num_heads")
    if q_num_heads % kv_num_heads:
        raise ValueError("q_num_heads must be a multiple of kv_num_heads")
    rule = update_rule.decode() if isinstance(update_rule, bytes) else update_rule
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise ValueError(f"unknown update_rule '{rule}'")
    gated = rule in ("gated", "gated_delta")
    delta = rule in ("delta", "gated_delta")

    def run(query, key, value, past_state=None, decay=None, beta=None, /):
        query, key, value = np.asarray(query), np.asarray(key), np.asarray(value)
        dtype = query.dtype
        cd = _compute_dtype(dtype)
        b, t, _ = query.shape
        dk = query.shape[-1] // q_num_heads
        dv = value.shape[-1] // kv_num_heads
        g = q_num_heads // kv_num_heads
        q = _as(query, cd).reshape(b, t, kv_num_heads, g, dk)
        k = _as(key, cd).reshape(b, t, kv_num_heads, dk)
        v = _as(value, cd).reshape(b, t, kv_num_heads, dv)
        if gated and decay is None:
            raise ValueError(f"update_rule '{rule}' needs the decay input")
        if delta and beta is None:
            raise ValueError(f"update_rule '{rule}' needs the beta input")
        gate = np.exp(_per_head(_as(decay, cd), kv_num_heads)) if gated else None  # (B,T,H,dk|1)
        rate = _per_head(_as(beta, cd), kv_num_heads) if delta else None  # (B,T,H|1,1)
        state_dtype = np.asarray(past_state).dtype if past_state is not None else dtype
        state = (
            _as(past_state, cd).copy()
            if past_state is not None
            else np.zeros((b, kv_num_heads, dk, dv), dtype=cd)
        )
        factor = cd.type(scale if scale else 1.0 / np.sqrt(dk))
        out = np.empty((b, t, kv_num_heads, g, dv), dtype=cd)
        for i in range(t):
            kt, vt = k[:, i], v[:, i]
            if gated:
                state *= gate[:, i][..., None]
            if delta:
                predicted = np.einsum("bhk,bhkv->bhv", kt, state)
                vt = rate[:, i] * (vt - predicted)
            state += kt[..., :, None] * vt[..., None, :]
            out[:, i] = np.matmul(q[:, i], state) * factor
        return _as(out.reshape(b, t, -1), dtype), _as(state, state_dtype)

    return run


# -- CausalConvWithState -----------------------------------------------------------------------


@register("CausalConvWithState", since=27)
def causal_conv_with_state(x, weight, bias=None, past_state=None, /, *, activation="none"):
    """Depthwise causal 1-D convolution over [past_state | x]; also returns the new carry."""
    act = activation.decode() if isinstance(activation, bytes) else activation
    if act not in ("none", "silu", "swish"):
        raise ValueError(f"unknown activation '{act}'")
    x = np.asarray(x)
    dtype = x.dtype
    cd = _compute_dtype(dtype)
    b, c, length = x.shape
    w = _as(weight, cd).reshape(c, -1)
    ksize = w.shape[1]
    carry = _as(past_state, cd) if past_state is not None else np.zeros((b, c, ksize - 1), dtype=cd)
    padded = np.concatenate([carry, _as(x, cd)], axis=2)
    y = (
        np.zeros((b, c, length), dtype=cd)
        if bias is None
        else np.broadcast_to(_as(bias, cd)[:, None], (b, c, length)).copy()
    )
    for i in range(ksize):
        y += w[:, i, None] * padded[:, :, i : i + length]
    if act != "none":
        y *= 1 / (1 + np.exp(-y))
    present = padded[:, :, padded.shape[2] - (ksize - 1) :]
    return _as(y, dtype), _as(present, dtype)


# -- FlexAttention (ai.onnx.preview) -----------------------------------------------------------


def _apply_mod(mod: Callable[..., list] | None, x: np.ndarray, what: str) -> np.ndarray:
    if mod is None:
        return x
    out = mod(x)
    if len(out) != 1:
        raise ValueError(f"{what} must produce exactly one output, got {len(out)}")
    y = np.asarray(out[0])
    if y.shape != x.shape:
        raise ValueError(f"{what} changed the shape {x.shape} to {y.shape}")
    return _as(y, x.dtype)


@register("FlexAttention", since=1, domain="ai.onnx.preview", subgraphs=("score_mod", "prob_mod"))
def flex_attention(
    q, k, v, /, *, scale=None, softmax_precision=None, score_mod=None, prob_mod=None
):
    """Softmax((Q @ K^T) * scale), with optional score/probability modifier subgraphs, @ V."""
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError("FlexAttention needs rank-4 Q, K and V")
    dtype = q.dtype
    default = np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)
    sd = _precision(softmax_precision, default)
    cd = _compute_dtype(sd)
    factor = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = _grouped_matmul(_as(q, cd), np.swapaxes(_as(k, cd), -1, -2))
    scores *= cd.type(factor)
    if score_mod is not None:
        scores = np.array(_apply_mod(score_mod, _as(scores, sd), "score_mod"), dtype=cd)
    probs = _masked_softmax(scores)
    if prob_mod is not None:
        probs = _as(_apply_mod(prob_mod, _as(probs, sd), "prob_mod"), cd)
    return _as(_grouped_matmul(probs, _as(v, cd)), dtype)
