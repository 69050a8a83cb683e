"""Conv / Gemm + activation (and Conv + residual Add) -> com.microsoft FusedConv / FusedGemm.

onnxruntime's contrib operators fold the activation that follows a product into the product's
kernel, which applies it in place on the output buffer:

* ``act(Conv(X, W, B))`` -> ``FusedConv(X, W, B, activation=act, activation_params=...)``;
* ``act(Add(Conv(X, W, B), Z))`` (or without ``act``) -> ``FusedConv(X, W, B, Z, ...)``, whose
  fourth input Z is added to the convolution before the activation. Z must have the Conv
  output's exact (statically equal) shape, as onnxruntime's kernel requires;
* ``act(Gemm(A, B, C))`` -> ``FusedGemm(A, B, C, activation=act, activation_alpha/beta/gamma)``.

The intermediate value (Conv/Gemm output, and the Add output) must be read by the next node
only and not be a graph output. Only float32 tensors are fused (the type onnxruntime's CPU
kernels take). Activation attributes omitted in the model take their ONNX defaults; a Clip's
bounds must be constants. FusedConv's ``activation_params`` are [alpha] for LeakyRelu,
[alpha, beta] for HardSigmoid and [min, max] for Clip.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import NodeProto, TensorProto, helper

from onnxpy.passes.base import EXTENDED, Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.fusion._pattern import MS, only_reader, other_input
from onnxpy.passes.shapes import dims_of, elem_type

__all__ = ["ConvActivationFusion", "GemmActivationFusion"]


# Standard activation -> its attributes, in FusedConv's activation_params order.
_CONV_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "Relu": (),
    "Tanh": (),
    "Sigmoid": (),
    "LeakyRelu": ("alpha",),
    "HardSigmoid": ("alpha", "beta"),
    "Clip": ("min", "max"),
}
# Standard activation -> its attributes, each stored as FusedGemm's activation_<name>.
_GEMM_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "Relu": (),
    "Tanh": (),
    "Sigmoid": (),
    "Softplus": (),
    "Softsign": (),
    "LeakyRelu": ("alpha",),
    "HardSigmoid": ("alpha", "beta"),
    "Elu": ("alpha",),
    "Selu": ("alpha", "gamma"),
    "ThresholdedRelu": ("alpha",),
}


def _float_attrs(ctx: GraphContext, node: NodeProto, names: tuple[str, ...]) -> list[float]:
    """The node's FLOAT attributes ``names``, defaulted from the operator's schema."""
    given = {a.name: a.f for a in node.attribute if a.type == onnx.AttributeProto.FLOAT}
    out = []
    for name in names:
        if name in given:
            out.append(float(given[name]))
        else:
            schema = onnx.defs.get_schema(node.op_type, ctx.opset(node))
            out.append(float(schema.attributes[name].default_value.f))
    return out


def _clip_bounds(ctx: GraphContext, node: NodeProto) -> list[float] | None:
    """[min, max] of a Clip whose bounds are attributes or constant scalars (else None)."""
    lo, hi = float(np.finfo(np.float32).min), float(np.finfo(np.float32).max)
    if ctx.opset(node) < 11:
        for a in node.attribute:
            if a.name == "min":
                lo = float(a.f)
            elif a.name == "max":
                hi = float(a.f)
        return [lo, hi]
    bounds = [lo, hi]
    for k in (1, 2):
        if len(node.input) > k and node.input[k]:
            v = ctx.constant_value(node.input[k])
            if v is None or v.size != 1:
                return None
            bounds[k - 1] = float(v.reshape(-1)[0])
    return bounds


def _activation(
    ctx: GraphContext, node: NodeProto, table: dict[str, tuple[str, ...]]
) -> tuple[str, list[float]] | None:
    """(activation name, its parameters) if ``node`` is an activation ``table`` can fuse."""
    if node.op_type not in table or not ctx.is_standard(node) or len(node.output) != 1:
        return None
    if node.op_type == "Clip":
        bounds = _clip_bounds(ctx, node)
        return None if bounds is None else ("Clip", bounds)
    if len(node.input) != 1:
        return None
    return node.op_type, _float_attrs(ctx, node, table[node.op_type])


def _is_float32(ctx: GraphContext, name: str) -> bool:
    return elem_type(ctx.type_of(name)) == TensorProto.FLOAT


def _same_static_shape(ctx: GraphContext, a: str, b: str) -> bool:
    """Both values have a known rank and the same dims (equal numbers or equal symbols)."""
    da, db = dims_of(ctx.type_of(a)), dims_of(ctx.type_of(b))
    if da is None or db is None or len(da) != len(db):
        return False
    return all(x is not None and x == y for x, y in zip(da, db))


class ConvActivationFusion(Pass):
    """Conv [+ Add(Z)] [+ activation] -> com.microsoft FusedConv."""

    name = "conv_activation_fusion"
    level = EXTENDED
    requires = frozenset({"Conv"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, conv in list(ctx.nodes()):
            if i in ctx.removed or not self._fusable_conv(ctx, conv):
                continue
            out = conv.output[0]
            found = only_reader(ctx, out)
            if found is None:
                continue
            j, nxt = found
            z = None
            last, last_index = nxt, j
            if nxt.op_type == "Add" and ctx.is_standard(nxt) and len(nxt.input) == 2:
                z = other_input(nxt, out)
                if not _same_static_shape(ctx, z, out) or not _same_static_shape(
                    ctx, nxt.output[0], out
                ):
                    continue
                act = None
                after = only_reader(ctx, nxt.output[0])
                if after is not None:
                    act = _activation(ctx, after[1], _CONV_ACTIVATIONS)
                    if act is not None:
                        last_index, last = after
            else:
                act = _activation(ctx, nxt, _CONV_ACTIVATIONS)
                if act is None:
                    continue
            inputs = list(conv.input[:3])
            if z is not None:
                inputs += [""] * (3 - len(inputs)) + [z]
            attrs = {}
            if act is not None:
                attrs["activation"] = act[0]
                if act[1]:
                    attrs["activation_params"] = act[1]
            fused = helper.make_node(
                "FusedConv",
                inputs,
                [last.output[0]],
                name=ctx.fresh_name(f"{conv.name or 'Conv'}_fused"),
                domain=MS,
                **attrs,
            )
            fused.attribute.extend(conv.attribute)
            ctx.use_domain(MS, 1)
            ctx.fuse([i] if last_index == j else [i, j], last_index, fused)
            changed = True
        return changed

    @staticmethod
    def _fusable_conv(ctx: GraphContext, node: NodeProto) -> bool:
        return (
            node.op_type == "Conv"
            and ctx.is_standard(node)
            and len(node.output) == 1
            and len(node.input) >= 2
            and _is_float32(ctx, node.output[0])
        )


class GemmActivationFusion(Pass):
    """Gemm + activation -> com.microsoft FusedGemm."""

    name = "gemm_activation_fusion"
    level = EXTENDED
    requires = frozenset({"Gemm"})

    def run(self, ctx: GraphContext) -> bool:
        changed = False
        for i, gemm in list(ctx.nodes()):
            if i in ctx.removed or gemm.op_type != "Gemm" or not ctx.is_standard(gemm):
                continue
            if ctx.opset(gemm) < 7 or not _is_float32(ctx, gemm.output[0]):
                continue
            found = only_reader(ctx, gemm.output[0])
            if found is None:
                continue
            j, nxt = found
            act = _activation(ctx, nxt, _GEMM_ACTIVATIONS)
            if act is None:
                continue
            name, params = act
            attrs = {"activation": name}
            for pname, value in zip(_GEMM_ACTIVATIONS[name], params, strict=True):
                attrs[f"activation_{pname}"] = value
            fused = helper.make_node(
                "FusedGemm",
                list(gemm.input),
                [nxt.output[0]],
                name=ctx.fresh_name(f"{gemm.name or 'Gemm'}_fused"),
                domain=MS,
                **attrs,
            )
            fused.attribute.extend(gemm.attribute)
            ctx.use_domain(MS, 1)
            ctx.fuse([i], j, fused)
            changed = True
        return changed
