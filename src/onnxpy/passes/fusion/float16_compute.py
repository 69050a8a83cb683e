"""A float16 graph computed in float32, with one Cast at each graph boundary.

CPUs have no float16 arithmetic worth using from NumPy: every float16 operator would convert
its operands to float32, compute, and round back, and a weight read by a MatMul would be
converted on every run. When every node touching a float16 value is arithmetic whose float32
result rounded once at the end is at least as accurate as rounding after each operator, the
whole float16 region is retyped to float32 here: float16 weights and constants become float32
(exactly), ``Cast(to=FLOAT16)`` inside becomes ``Cast(to=FLOAT)`` (removed by cast
elimination when it then changes nothing), float16 graph inputs are cast up once and float16
graph outputs rounded once.

"Exact enough" is enforced by refusing the rewrite when a float16 value reaches an operator
whose result can change discretely with the last bit of its input (comparisons, ArgMax/TopK,
Floor/Ceil/Round, Mod, casts to integer types, ...): there, per-operator float16 rounding is
part of the model's meaning. Subgraphs and non-standard domains are refused too.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from onnxpy.model.tensors import tensor_to_array
from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext, has_subgraph
from onnxpy.passes.shapes import elem_type

__all__ = ["Float16Compute"]

_F16, _F32 = TensorProto.FLOAT16, TensorProto.FLOAT
_DISCRETE = frozenset(
    {
        "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "ArgMax", "ArgMin", "TopK",
        "Floor", "Ceil", "Round", "Mod", "IsInf", "IsNaN", "Sign", "Hardmax", "NonZero",
        "BitShift", "Unique", "Bernoulli", "Multinomial", "RandomNormalLike",
        "RandomUniformLike", "EyeLike", "RandomNormal", "RandomUniform", "QuantizeLinear",
        "DynamicQuantizeLinear", "CastLike", "StringNormalizer", "NonMaxSuppression",
    }
)  # fmt: skip


class Float16Compute(Pass):
    name = "float16_compute"
    level = EXTENDED

    def run(self, ctx: GraphContext) -> bool:
        if not _mentions_half(ctx):
            return False
        boundary = ctx.graph_inputs | ctx.graph_outputs
        half = self._half_values(ctx, boundary)
        if not half or not self._all_convertible(ctx, half):
            return False
        g = ctx.graph
        for k, t in enumerate(g.initializer):
            if t.name in half and t.data_type == _F16:
                value = tensor_to_array(t, ctx.base_dir).astype(np.float32)
                g.initializer[k].CopyFrom(numpy_helper.from_array(value, t.name))
        ctx.initializers = {t.name: t for t in g.initializer}
        for _, node in list(ctx.nodes()):
            self._retype(node)
        for name in sorted(ctx.graph_inputs):
            if self._is_half(ctx, name) and ctx.uses(name):
                up = ctx.fresh_name(f"{name}_float32")
                ctx.replace_uses(name, up)
                ctx.append_node(
                    helper.make_node(
                        "Cast", [name], [up], name=ctx.fresh_name(f"{name}_to_float32"), to=_F32
                    )
                )
        for name in sorted(ctx.graph_outputs):
            p = ctx.producer_of(name)
            if p is None or not self._is_half(ctx, name) or p[1].op_type == "Cast":
                if p is not None and p[1].op_type == "Cast" and self._is_half(ctx, name):
                    _set_to(p[1], _F16)
                continue
            inner = ctx.fresh_name(f"{name}_float32")
            ctx.rename_output(p[0], name, inner)
            ctx.append_node(
                helper.make_node(
                    "Cast", [inner], [name], name=ctx.fresh_name(f"{name}_to_float16"), to=_F16
                )
            )
        keep = [vi for vi in g.value_info if vi.name not in half]
        del g.value_info[:]
        g.value_info.extend(keep)
        ctx.invalidate_types()
        return True

    @staticmethod
    def _is_half(ctx: GraphContext, name: str) -> bool:
        return elem_type(ctx.type_of(name)) == _F16

    def _half_values(self, ctx: GraphContext, boundary: set[str]) -> set[str]:
        names: set[str] = set()
        for _, node in ctx.nodes():
            for x in (*node.input, *node.output):
                if x and x not in boundary and x not in names and self._is_half(ctx, x):
                    names.add(x)
        return names

    def _all_convertible(self, ctx: GraphContext, half: set[str]) -> bool:
        for _, node in ctx.nodes():
            touches = any(x in half for x in (*node.input, *node.output))
            if not touches:
                continue
            if not ctx.is_standard(node) or has_subgraph(node) or node.op_type in _DISCRETE:
                return False
            if node.op_type == "Cast" and _to(node) not in (_F16, _F32, TensorProto.DOUBLE):
                return False
        return True

    @staticmethod
    def _retype(node: NodeProto) -> None:
        if node.op_type == "Cast" and _to(node) == _F16:
            _set_to(node, _F32)
            return
        for a in node.attribute:
            if a.type == a.TENSOR and a.t.data_type == _F16:
                value = numpy_helper.to_array(a.t).astype(np.float32)
                a.t.CopyFrom(numpy_helper.from_array(value, a.t.name))


def _mentions_half(ctx: GraphContext) -> bool:
    """Whether any float16 value can exist: every one starts at a declared type, a tensor, a
    Cast or a ``dtype`` attribute saying so. Asking every value's inferred type instead cost
    GPT-2 (3,300 nodes, no float16) 260 ms of its session creation."""
    g = ctx.graph
    for vi in (*g.input, *g.output, *g.value_info):
        which = vi.type.WhichOneof("value")
        if which not in (None, "tensor_type") or vi.type.tensor_type.elem_type == _F16:
            return True  # sequences, maps, optionals: let the full analysis decide
    if any(t.data_type == _F16 for t in g.initializer):
        return True
    if any(t.values.data_type == _F16 for t in g.sparse_initializer):
        return True
    for _, node in ctx.nodes():
        for a in node.attribute:
            if a.type == a.INT and a.i == _F16 and a.name in ("to", "dtype"):
                return True
            if a.type == a.TENSOR and a.t.data_type == _F16:
                return True
            if a.type in (a.GRAPH, a.GRAPHS):
                return True  # let the full analysis decide (it refuses subgraphs)
    return False


def _to(node: NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "to"), 0)


def _set_to(node: NodeProto, to: int) -> None:
    for a in node.attribute:
        if a.name == "to":
            a.i = to
