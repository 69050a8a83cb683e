"""Layer normalization written out in primitives -> one standard ``LayerNormalization``.

Exporters that predate the operator (and some that do not) spell it over the last axis as::

    m = ReduceMean(x)            d = Sub(x, m)           p = Pow(d, 2)  (or Mul(d, d))
    v = ReduceMean(p)            s = Sqrt(Add(v, eps))   n = Div(d, s)
    [y = Mul(n, gamma)]          [z = Add(y, beta)]

Both ReduceMeans must reduce the last axis only, keeping it. ``d`` is read by exactly the
Pow/Mul and the Div; every other intermediate by the next node only, and none may be a graph
output. ``eps`` is a one-element constant; gamma and beta are constants of shape ``[H]`` (H,
the last dimension, statically known); without gamma a ones vector takes its place. The
operator exists from opset 17, so older models are left as they are.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._pattern import only_reader, other_input
from onnxpy.passes.shapes import dims_of, elem_type

__all__ = ["LayerNormFusion"]

_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}


class LayerNormFusion(Pass):
    name = "layer_norm_fusion"
    level = EXTENDED
    requires = frozenset({"ReduceMean"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, node in list(ctx.nodes()):
            if i in ctx.removed or node.op_type != "ReduceMean" or not ctx.is_standard(node):
                continue
            if ctx.opset(node) < 17:
                continue
            match = _match(ctx, i, node)
            if match is None:
                continue
            x, eps, gamma, beta, last, removed = match
            ln = helper.make_node(
                "LayerNormalization",
                [x, gamma, beta] if beta else [x, gamma],
                [last[1].output[0]],
                name=ctx.fresh_name(f"{node.name or 'ReduceMean'}_layernorm"),
                axis=-1,
                epsilon=eps,
            )
            ctx.fuse(removed, last[0], ln)
            changed = True
        return changed


def _last_axis_mean(ctx: GraphContext, node: NodeProto, rank: int) -> bool:
    """A ReduceMean over the last axis only, keeping it (axes as attribute or input)."""
    attrs = {a.name: a for a in node.attribute}
    if "keepdims" in attrs and attrs["keepdims"].i != 1:
        return False
    if ctx.opset(node) >= 18:
        if len(node.input) < 2 or not node.input[1]:
            return False
        axes = ctx.constant_value(node.input[1])
        if axes is None:
            return False
        axes = [int(a) for a in np.asarray(axes).ravel()]
    else:
        if "axes" not in attrs:
            return False
        axes = list(attrs["axes"].ints)
    return len(axes) == 1 and axes[0] in (-1, rank - 1)


def _is_square(ctx: GraphContext, node: NodeProto, d: str) -> bool:
    if node.op_type == "Mul":
        return list(node.input) == [d, d]
    if node.op_type == "Pow" and node.input[0] == d:
        e = ctx.constant_value(node.input[1])
        return e is not None and e.size == 1 and float(e.reshape(())) == 2.0
    return False


def _one_value(ctx: GraphContext, name: str) -> float | None:
    v = ctx.constant_value(name)
    if v is None or v.size != 1 or v.dtype.kind != "f":
        return None
    return float(v.reshape(()))


def _vector(ctx: GraphContext, name: str, h: int) -> bool:
    """A constant of shape [h] (gamma or beta)."""
    v = ctx.constant_value(name)
    return v is not None and v.shape == (h,)


def _match(ctx: GraphContext, i: int, mean: NodeProto):
    x = mean.input[0]
    t = ctx.type_of(x)
    dims = dims_of(t)
    if (
        dims is None
        or not dims
        or not isinstance(dims[-1], int)
        or elem_type(t) not in _FLOAT_TYPES
    ):
        return None
    h = dims[-1]
    if not _last_axis_mean(ctx, mean, len(dims)):
        return None
    sub = only_reader(ctx, mean.output[0], "Sub")
    if sub is None or list(sub[1].input) != [x, mean.output[0]]:
        return None
    d = sub[1].output[0]
    readers = set(ctx.uses(d))
    if ctx.is_pinned(d) or len(readers) != 2:
        return None
    nodes = {ctx.graph.node[j].op_type: (j, ctx.graph.node[j]) for j in readers}
    div = nodes.get("Div")
    square = nodes.get("Pow") or nodes.get("Mul")
    if div is None or square is None or div[1].input[0] != d:
        return None
    if not _is_square(ctx, square[1], d):
        return None
    var = only_reader(ctx, square[1].output[0], "ReduceMean")
    if var is None or not _last_axis_mean(ctx, var[1], len(dims)):
        return None
    add = only_reader(ctx, var[1].output[0], "Add")
    if add is None:
        return None
    eps_name = other_input(add[1], var[1].output[0])
    eps = _one_value(ctx, eps_name) if eps_name else None
    if eps is None:
        return None
    sqrt = only_reader(ctx, add[1].output[0], "Sqrt")
    if (
        sqrt is None
        or div[1].input[1] != sqrt[1].output[0]
        or ctx.single_use(sqrt[1].output[0]) is None
    ):
        return None
    chain = [(i, mean), sub, square, var, add, sqrt, div]
    last = div
    gamma = beta = None
    mul = only_reader(ctx, div[1].output[0], "Mul")
    if mul is not None:
        g = other_input(mul[1], div[1].output[0])
        if g and _vector(ctx, g, h):
            gamma, last = g, mul
            chain.append(mul)
            badd = only_reader(ctx, mul[1].output[0], "Add")
            if badd is not None:
                b = other_input(badd[1], mul[1].output[0])
                if b and _vector(ctx, b, h):
                    beta, last = b, badd
                    chain.append(badd)
    if gamma is None:
        dtype = helper.tensor_dtype_to_np_dtype(elem_type(t))
        gamma = ctx.fresh_name(f"{mean.name or 'layernorm'}_ones")
        ctx.add_initializer(numpy_helper.from_array(np.ones(h, dtype=dtype), gamma))
    removed = [j for j, _ in chain if j != last[0]]
    return x, eps, gamma, beta, last, removed
