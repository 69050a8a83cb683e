"""Decomposed multi-head attention -> com.microsoft ``MultiHeadAttention``.

PyTorch exports ``softmax(q k^T / sqrt(d) + mask) v`` over heads as::

    Qh = Transpose[0,2,1,3](Reshape(Q, [B, S, H, d]))        (Q = P_q or Add(P_q, b_q))
    Kt = Transpose[0,2,3,1](Reshape(K, [B, T, H, d]))        (or Transpose[0,2,1,3] then
                                                              Transpose[0,1,3,2])
    Vh = Transpose[0,2,1,3](Reshape(V, [B, T, H, d]))
    W  = Softmax[axis -1](Add(Div(MatMul(Qh, Kt), c), M))   (Div by c or Mul by 1/c, either
                                                              Add order; both optional)
    Y  = Reshape(Transpose[0,2,1,3](MatMul(W, Vh)), [B, S, H * d])

which is ``MultiHeadAttention(P_q, P_k, P_v, bias, , attention_bias)`` with ``num_heads = H``,
``scale = 1 / c`` (written only when it is not 1 / sqrt(d)) and ``bias`` the three 1-D
projection biases concatenated (zeros stand in for a missing one; no bias input without any).

Each Reshape's shape must provably keep the first two axes (B and the sequence) and split or
merge only the last one: its elements are constants (0 copies an axis, an integer equal to a
static dim, -1 only in the split tail where H * d pins it) or pieces of a Concat read from
``Shape(t)[i]`` of a tensor whose dim ``i`` has the same static value or symbol as Q's. Q, K
and V are 3-D with one element type (float32 or float16), provably equal batch dims and a
static hidden size H * d; K and V have provably the same sequence length. Every intermediate
value is read by the next node of the pattern only (and is no graph output).

The mask M (rank 4 or less, Q's element type) may broadcast onto the scores [B, H, S, T] but
must not widen them: then the output Reshape to [B, S, H * d], with B and S read from Q's
shape, would fail on any input where it did, so where the original runs, M's dims are 1 or
B, H, S, T. A 0 (copy) in that Reshape would follow a widened batch or query axis instead,
so it is accepted only when M's first and third dims are provably 1 or B and S.

onnxruntime wants an attention_bias of shape [B or 1, H or 1, S, T] while exported masks are
usually [B, 1, 1, T]. Unless M is 4-D with last dims provably S and T, it is expanded to
``[1, 1, S, T]`` (``Expand`` broadcasts both ways, so the result is [B or 1, H or 1, S, T] and
holds exactly what the Add added). S and T come from ``Shape(P_q)[1]`` and ``Shape(P_k)[1]``;
one expansion serves every attention of the graph with the same mask and the same (static or
symbolic) S and T. A key_padding_mask would be cheaper but is not equivalent: it reads the
integer mask before the ``(1 - m) * -10000`` arithmetic, which gives other values than 0 or
-10000 for mask values other than 0 and 1.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._pattern import FUSED_TYPES, MS, attribute, only_reader, standard_node
from onnxpy.passes.shapes import dims_of, elem_type

__all__ = ["AttentionFusion"]

_HEADS_PERM = [0, 2, 1, 3]
_KEY_PERM = [0, 2, 3, 1]
_LAST_TWO_PERM = [0, 1, 3, 2]


def _perm_is(node: NodeProto, perm: list[int]) -> bool:
    p = attribute(node, "perm")
    return p is not None and list(p) == perm


def _same_dim(a: int | str | None, b: int | str | None) -> bool:
    """Two dims provably equal: the same integer or the same symbol."""
    return a is not None and a == b


def _int_constant(ctx: GraphContext, name: str) -> list[int] | None:
    v = ctx.constant_value(name)
    if v is None or v.dtype.kind not in "iu" or v.ndim > 1:
        return None
    return [int(x) for x in v.reshape(-1)]


# A shape element: ("const", value) or ("dim", tensor, axis) = Shape(tensor)[axis].
_Element = tuple


def _dim_piece(ctx: GraphContext, name: str) -> _Element | None:
    """``Shape(t)[i]`` as a one-element 1-D tensor: Unsqueeze(Gather(Shape(t), scalar i), 0)
    or Gather(Shape(t), [i])."""
    p = standard_node(ctx, name, "Unsqueeze")
    scalar = True
    if p is not None:
        node = p[1]
        axes = attribute(node, "axes") if ctx.opset(node) < 13 else None
        if ctx.opset(node) >= 13:
            axes = _int_constant(ctx, node.input[1]) if len(node.input) > 1 else None
        if axes is None or list(axes) != [0]:
            return None
        name = node.input[0]
    else:
        scalar = False
    g = standard_node(ctx, name, "Gather")
    if g is None or len(g[1].input) != 2 or attribute(g[1], "axis") not in (None, 0):
        return None
    idx = ctx.constant_value(g[1].input[1])
    if idx is None or idx.dtype.kind not in "iu" or idx.size != 1:
        return None
    if idx.ndim != (0 if scalar else 1):
        return None
    s = standard_node(ctx, g[1].input[0], "Shape")
    if s is None or attribute(s[1], "start") is not None or attribute(s[1], "end") is not None:
        return None
    t = s[1].input[0]
    dims = dims_of(ctx.type_of(t))
    i = int(idx.reshape(()))
    if dims is None or not -len(dims) <= i < len(dims):
        return None
    return ("dim", t, i % len(dims))


def _shape_elements(ctx: GraphContext, name: str) -> list[_Element] | None:
    """The elements of a 1-D shape tensor, each a constant or a dim of some tensor."""
    const = _int_constant(ctx, name)
    if const is not None:
        return [("const", c) for c in const]
    p = standard_node(ctx, name, "Concat")
    if p is None or attribute(p[1], "axis") != 0:
        return None
    out: list[_Element] = []
    for piece in p[1].input:
        const = _int_constant(ctx, piece)
        if const is not None:
            v = ctx.constant_value(piece)
            if v is None or v.ndim != 1:
                return None
            out += [("const", c) for c in const]
            continue
        d = _dim_piece(ctx, piece)
        if d is None:
            return None
        out.append(d)
    return out


def _element_is_dim(ctx: GraphContext, e: _Element, dim: int | str | None, allow_zero: bool):
    """The shape element provably equals ``dim`` (0 means 'copy' unless allowzero)."""
    if e[0] == "const":
        return (e[1] == 0 and allow_zero) or (isinstance(dim, int) and e[1] == dim)
    tdims = dims_of(ctx.type_of(e[1]))
    return tdims is not None and _same_dim(tdims[e[2]], dim)


def _reshape_keeps(
    ctx: GraphContext,
    node: NodeProto,
    src_dims: list,
    tail: list[int],
    rest: int | None,
    allow_zero: bool = True,
) -> bool:
    """Reshape ``node``'s shape is ``[src_dims[0], src_dims[1], *tail]``: the first two
    elements copy (0) or provably equal those dims; one tail element may be -1 when ``rest``
    (the static size of the source's trailing axes) is given and resolves it to its value."""
    if len(node.input) != 2 or attribute(node, "allowzero") not in (None, 0):
        return False
    elems = _shape_elements(ctx, node.input[1])
    if elems is None or len(elems) != 2 + len(tail):
        return False
    minus = [k for k, e in enumerate(elems) if e == ("const", -1)]
    if len(minus) > 1 or (minus and (rest is None or minus[0] < 2)):
        return False
    for k, e in enumerate(elems):
        if k in minus:
            continue
        if k < 2:
            if not _element_is_dim(ctx, e, src_dims[k], allow_zero):
                return False
        elif e != ("const", tail[k - 2]) or tail[k - 2] <= 0:
            return False
    if minus and minus[0] >= 2:
        # -1 in the tail: the other tail entries must pin it to the wanted value
        known = int(np.prod([t for k, t in enumerate(tail) if k + 2 != minus[0]]))
        return known > 0 and rest % known == 0 and rest // known == tail[minus[0] - 2]
    return True


def _split_heads(
    ctx: GraphContext, name: str, perm: list[int]
) -> tuple[list[int], str, int, int] | None:
    """Nodes (Transpose with ``perm`` of Reshape of P into [B, L, H, d]) producing ``name``:
    (node indexes, P, H, d)."""
    tr = standard_node(ctx, name, "Transpose")
    if tr is None or not _perm_is(tr[1], perm):
        return None
    rs = standard_node(ctx, tr[1].input[0], "Reshape")
    if rs is None or only_reader(ctx, rs[1].output[0], "Transpose") is None:
        return None
    p = rs[1].input[0]
    pdims = dims_of(ctx.type_of(p))
    rdims = dims_of(ctx.type_of(rs[1].output[0]))
    if pdims is None or len(pdims) != 3 or not isinstance(pdims[2], int):
        return None
    # H and d from the shape constant (or the inferred output where -1 stands in for one)
    elems = _shape_elements(ctx, rs[1].input[1])
    if elems is None or len(elems) != 4:
        return None
    h, d = (e[1] if e[0] == "const" else None for e in elems[2:])
    if h == -1 and d is not None and d > 0 and pdims[2] % d == 0:
        h = pdims[2] // d
    if d == -1 and h is not None and h > 0 and pdims[2] % h == 0:
        d = pdims[2] // h
    if h is None or d is None or h <= 0 or d <= 0 or h * d != pdims[2]:
        return None
    if rdims is not None and len(rdims) != 4:
        return None
    if not _reshape_keeps(ctx, rs[1], pdims, [h, d], pdims[2]):
        return None
    return [tr[0], rs[0]], p, h, d


def _key_heads(ctx: GraphContext, name: str) -> tuple[list[int], str, int, int] | None:
    """K as (B, H, d, T): Transpose[0,2,3,1](Reshape) or Transpose[0,1,3,2] of the split."""
    tr = standard_node(ctx, name, "Transpose")
    if tr is None:
        return None
    if _perm_is(tr[1], _KEY_PERM):
        return _split_heads(ctx, name, _KEY_PERM)
    if not _perm_is(tr[1], _LAST_TWO_PERM):
        return None
    inner = tr[1].input[0]
    if only_reader(ctx, inner, "Transpose") is None:
        return None
    found = _split_heads(ctx, inner, _HEADS_PERM)
    if found is None:
        return None
    return [tr[0], *found[0]], found[1], found[2], found[3]


def _projection_bias(ctx: GraphContext, p: str, hidden: int) -> tuple[str, np.ndarray | None, int]:
    """(projection, its 1-D bias or None, Add index or -1) for Q/K/V ``p``: a single-use
    Add(x, b) with a constant b of length ``hidden`` splits into x and b."""
    add = standard_node(ctx, p, "Add")
    if add is None or len(add[1].input) != 2 or ctx.single_use(p) is None:
        return p, None, -1
    for x, c in (add[1].input, add[1].input[::-1]):
        b = ctx.constant_value(c)
        if b is None or b.ndim != 1 or b.shape[0] != hidden or ctx.is_constant(x):
            continue
        if b.dtype != _np_type(elem_type(ctx.type_of(p))):
            continue
        xd = dims_of(ctx.type_of(x))
        if xd is None or len(xd) != 3 or xd[2] != hidden:
            continue
        return x, b, add[0]
    return p, None, -1


def _np_type(t: int | None):
    if t == TensorProto.FLOAT:
        return np.dtype(np.float32)
    if t == TensorProto.FLOAT16:
        return np.dtype(np.float16)
    return None


def _scalar(ctx: GraphContext, name: str) -> float | None:
    v = ctx.constant_value(name)
    if v is None or v.size != 1 or v.dtype.kind != "f" or v.ndim > 4:
        return None
    return float(v.reshape(()))


def _scaled_scores(ctx: GraphContext, name: str) -> tuple[str, float, int] | None:
    """(QK MatMul output, scale, Div/Mul index or -1) when ``name`` is MatMul(Qh, Kt) divided
    by a constant, multiplied by one, or alone."""
    if standard_node(ctx, name, "MatMul") is not None:
        return name, 1.0, -1
    for op in ("Div", "Mul"):
        p = standard_node(ctx, name, op)
        if p is None or len(p[1].input) != 2:
            continue
        pairs = [p[1].input] if op == "Div" else [p[1].input, p[1].input[::-1]]
        for a, c in pairs:
            v = _scalar(ctx, c)
            if v is None or v == 0.0 or not math.isfinite(v):
                continue
            if standard_node(ctx, a, "MatMul") is not None and ctx.single_use(a) is not None:
                return a, (1.0 / v if op == "Div" else v), p[0]
    return None


class AttentionFusion(Pass):
    name = "attention_fusion"
    level = EXTENDED
    requires = frozenset({"Softmax"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        expanded: dict[tuple, str] = {}
        for i, node in list(ctx.nodes()):
            if i in ctx.removed or node.op_type != "Softmax" or not ctx.is_standard(node):
                continue
            found = self._match(ctx, node)
            if found is None:
                continue
            last, removed, inputs, bias, mask, heads, scale, d = found
            ctx.use_domain(MS)
            base = node.name or "Softmax"
            names = list(inputs)
            if bias is not None:
                bname = ctx.fresh_name(f"{base}_qkv_bias")
                ctx.add_initializer(numpy_helper.from_array(bias, bname))
                names.append(bname)
            else:
                names.append("")
            if mask is not None:
                names += ["", self._attention_bias(ctx, mask, inputs, expanded, base)]
            while names and not names[-1]:
                names.pop()
            attrs = {"num_heads": heads}
            if not math.isclose(scale, 1.0 / math.sqrt(d), rel_tol=1e-6):
                attrs["scale"] = scale
            fused = helper.make_node(
                "MultiHeadAttention",
                names,
                [ctx.graph.node[last].output[0]],
                name=ctx.fresh_name(f"{base}_mha"),
                domain=MS,
                **attrs,
            )
            ctx.fuse(removed, last, fused)
            changed = True
        return changed

    @staticmethod
    def _attention_bias(
        ctx: GraphContext, mask: tuple[str, bool, bool], qkv: list[str], cache: dict, base: str
    ) -> str:
        m, direct, _ = mask
        if direct:
            return m
        sq = dims_of(ctx.type_of(qkv[0]))[1]
        sk = dims_of(ctx.type_of(qkv[1]))[1]
        key = (m, sq, sk) if sq is not None and sk is not None else None
        if key is not None and key in cache:
            return cache[key]
        ones = ctx.fresh_name(f"{base}_bias_ones")
        one = ctx.fresh_name(f"{base}_bias_axis1")
        ctx.add_initializer(numpy_helper.from_array(np.ones(2, np.int64), ones))
        ctx.add_initializer(numpy_helper.from_array(np.ones(1, np.int64), one))
        parts = [ones]
        for src, what in ((qkv[0], "q"), (qkv[1], "k")):
            shape = ctx.fresh_name(f"{base}_bias_{what}_shape")
            length = ctx.fresh_name(f"{base}_bias_{what}_len")
            ctx.append_node(helper.make_node("Shape", [src], [shape], name=shape))
            ctx.append_node(helper.make_node("Gather", [shape, one], [length], name=length, axis=0))
            parts.append(length)
        target = ctx.fresh_name(f"{base}_bias_shape")
        ctx.append_node(helper.make_node("Concat", parts, [target], name=target, axis=0))
        out = ctx.fresh_name(f"{base}_attention_bias")
        ctx.append_node(helper.make_node("Expand", [m, target], [out], name=out))
        if key is not None:
            cache[key] = out
        return out

    @staticmethod
    def _match(ctx: GraphContext, sm: NodeProto):
        if len(sm.input) != 1 or len(sm.output) != 1:
            return None
        axis = attribute(sm, "axis")
        if axis is None:
            axis = -1 if ctx.opset(sm) >= 13 else 1
        if axis not in (-1, 3):
            return None
        sv = only_reader(ctx, sm.output[0], "MatMul")
        if sv is None or sv[1].input[0] != sm.output[0]:
            return None
        tr_out = only_reader(ctx, sv[1].output[0], "Transpose")
        if tr_out is None or not _perm_is(tr_out[1], _HEADS_PERM):
            return None
        rs_out = only_reader(ctx, tr_out[1].output[0], "Reshape")
        if rs_out is None or rs_out[1].input[0] != tr_out[1].output[0]:
            return None
        removed = [sv[0], tr_out[0]]

        # Softmax input: [Add(mask)] of [Div/Mul scale] of MatMul(Qh, Kt)
        x = sm.input[0]
        if ctx.single_use(x) is None:
            return None
        mask = None
        chain = _scaled_scores(ctx, x)
        if chain is None:
            add = standard_node(ctx, x, "Add")
            if add is None or len(add[1].input) != 2:
                return None
            for s, m in (add[1].input, add[1].input[::-1]):
                if ctx.single_use(s) is not None and s != m:
                    chain = _scaled_scores(ctx, s)
                    if chain is not None:
                        mask = m
                        break
            if chain is None:
                return None
            removed.append(add[0])
        x, scale, scale_node = chain
        if scale_node >= 0:
            removed.append(scale_node)
        qk = standard_node(ctx, x, "MatMul")
        if qk is None or ctx.single_use(x) is None:
            return None
        removed.append(qk[0])
        qh, kt = qk[1].input
        if ctx.single_use(qh) is None or ctx.single_use(kt) is None:
            return None
        if ctx.single_use(sv[1].input[1]) is None:
            return None
        q = _split_heads(ctx, qh, _HEADS_PERM)
        k = _key_heads(ctx, kt)
        v = _split_heads(ctx, sv[1].input[1], _HEADS_PERM)
        if q is None or k is None or v is None:
            return None
        heads, d = q[2], q[3]
        if (k[2], k[3]) != (heads, d) or (v[2], v[3]) != (heads, d):
            return None
        removed += q[0] + k[0] + v[0]
        hidden = heads * d

        # Q, K, V projections and biases
        projections, biases = [], []
        for p in (q[1], k[1], v[1]):
            src, b, j = _projection_bias(ctx, p, hidden)
            if j >= 0:
                removed.append(j)
            projections.append(src)
            biases.append(b)
        etype = elem_type(ctx.type_of(projections[0]))
        if etype not in FUSED_TYPES:
            return None
        pd = [dims_of(ctx.type_of(p)) for p in projections]
        if any(t is None or len(t) != 3 or t[2] != hidden for t in pd):
            return None
        if any(elem_type(ctx.type_of(p)) != etype for p in projections):
            return None
        if not (_same_dim(pd[0][0], pd[1][0]) and _same_dim(pd[0][0], pd[2][0])):
            return None
        if not _same_dim(pd[1][1], pd[2][1]):
            return None
        mask_info = None
        if mask is not None:
            mask_info = _mask_form(ctx, mask, etype, pd[0], pd[1][1])
            if mask_info is None:
                return None
        # the output Reshape: [B, S, H, d] -> [B, S, H * d] (see the module notes)
        copy_ok = mask_info is None or mask_info[2]
        if not _reshape_keeps(ctx, rs_out[1], pd[0][:2], [hidden], None, copy_ok):
            return None
        if len(set(projections)) != 3 and any(b is not None for b in biases):
            return None  # a shared projection cannot carry separate biases
        bias = None
        if any(b is not None for b in biases):
            dtype = _np_type(etype)
            bias = np.concatenate([np.zeros(hidden, dtype) if b is None else b for b in biases])

        if len(set(removed)) != len(removed) or rs_out[0] in removed:
            return None
        return rs_out[0], removed, projections, bias, mask_info, heads, scale, d


def _mask_form(
    ctx: GraphContext, m: str, etype: int, pq: list, t: int | str | None
) -> tuple[str, bool, bool] | None:
    """(mask, usable as attention_bias as it is, provably broadcasts neither the batch nor
    the query axis) for an additive mask of rank 4 or less."""
    if elem_type(ctx.type_of(m)) != etype:
        return None
    md = dims_of(ctx.type_of(m))
    if md is None or len(md) > 4:
        return None
    direct = len(md) == 4 and _same_dim(md[2], pq[1]) and _same_dim(md[3], t)
    md = [1] * (4 - len(md)) + md
    narrow = all(md[k] == 1 or _same_dim(md[k], pq[j]) for k, j in ((0, 0), (2, 1)))
    return m, direct, narrow
