"""Dynamic quantization: weights to 8-bit integers once, activations quantized at run time from
their own range (DynamicQuantizeLinear), all in standard ONNX operators (an embedding table
becomes ``DequantizeLinear(Gather(table_q, indices))``):

``MatMul(X, W)`` -> ``DynamicQuantizeLinear(X)`` (once per X) -> ``MatMulInteger(Xq, Wq, Xzp,
Wzp)`` -> ``Cast(float)`` -> ``Mul(X_scale * W_scale)``; Gemm adds ``beta * C`` after, with alpha
folded into the weight scale (and transB into the stored weight); Conv uses ConvInteger with
the scale and bias broadcast over channels. Per-channel weights scale per output column/channel
in the final Mul (their zero point stays 0: symmetric). onnxpy fuses each chain back into one
kernel at session creation (com.microsoft MatMulIntegerToFloat).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from onnx import ModelProto, NodeProto, TensorProto, helper

from onnxpy.errors import InvalidArgument
from onnxpy.quantization.config import Options, QuantType
from onnxpy.quantization.model_io import (
    GraphEdit,
    check_names,
    ensure_names,
    ensure_opset,
    load,
    save,
    topological_sort,
)
from onnxpy.quantization.params import quantize_weight
from onnxpy.quantization.selection import DYNAMIC_OPS, select_nodes

__all__ = ["quantize_dynamic", "build_dynamic"]


def _attrs(node: NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _DynamicWriter:
    def __init__(
        self,
        model: ModelProto,
        weight_type: QuantType,
        per_channel: bool,
        reduce_range: bool,
        opts: Options,
    ):
        self.model, self.edit = model, GraphEdit(model)
        self.weight_type, self.per_channel, self.reduce_range = (
            weight_type,
            per_channel,
            reduce_range,
        )
        sym = opts.weight_symmetric
        self.symmetric = weight_type == QuantType.QInt8 if sym is None else bool(sym)
        self.activations: dict[str, tuple[str, str, str]] = {}
        self.new: list[NodeProto] = []

    def _node(self, op: str, inputs: list[str], outputs: list[str], base: str, **attrs) -> None:
        self.new.append(helper.make_node(op, inputs, outputs, name=self.edit.fresh(base), **attrs))

    def _quantized_input(self, x: str) -> tuple[str, str, str]:
        if x not in self.activations:
            names = tuple(self.edit.fresh(f"{x}_{s}") for s in ("quantized", "scale", "zero_point"))
            self._node("DynamicQuantizeLinear", [x], list(names), f"{x}_QuantizeLinear")
            self.activations[x] = names
        return self.activations[x]

    def _weight(self, w: np.ndarray, name: str, axis: int | None):
        """(integer weight name, zero point name, float scale array)."""
        per_channel = axis is not None and self.symmetric
        q, p = quantize_weight(
            w, self.weight_type, self.symmetric, self.reduce_range, axis if per_channel else None
        )
        qname = self.edit.add_initializer(f"{name}_quantized", q)
        zp = p.zero_point.reshape(-1)[0] if per_channel else p.zero_point
        zname = self.edit.add_initializer(f"{name}_zero_point", np.asarray(zp))
        return qname, zname, p.scale.astype(np.float32)

    def matmul(self, node: NodeProto) -> None:
        attrs = _attrs(node)
        w = self.edit.constant(node.input[1])
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        if node.op_type == "Gemm" and attrs.get("transB", 0):
            w = w.T
        axis = 1 if self.per_channel else None
        wq, wz, wscale = self._weight(np.ascontiguousarray(w), node.input[1], axis)
        xq, xs, xz = self._quantized_input(node.input[0])
        y = node.output[0]
        acc = self.edit.fresh(f"{y}_MatMulInteger_Output")
        self._node("MatMulInteger", [xq, wq, xz, wz], [acc], f"{node.name}_MatMulInteger")
        cast = self.edit.fresh(f"{acc}_cast_output")
        self._node("Cast", [acc], [cast], f"{node.name}_cast", to=TensorProto.FLOAT)
        ws = self.edit.add_initializer(
            f"{node.input[1]}_scale", (wscale * alpha).astype(np.float32)
        )
        scales = self.edit.fresh(f"{y}_scales_mul_output")
        self._node("Mul", [xs, ws], [scales], f"{node.name}_scales_mul")
        c = (
            node.input[2]
            if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]
            else ""
        )
        scaled = self.edit.fresh(f"{y}_output_scale_mul_output") if c else y
        self._node("Mul", [cast, scales], [scaled], f"{node.name}_output_scale_mul")
        if c:
            if beta != 1.0:
                cv = self.edit.constant(c)
                if cv is None:
                    raise InvalidArgument(f"Gemm {node.name}: beta != 1 needs a constant C")
                c = self.edit.add_initializer(f"{c}_beta", (beta * cv).astype(np.float32))
            self._node("Add", [scaled, c], [y], f"{node.name}_bias_add")

    def conv(self, node: NodeProto) -> None:
        w = self.edit.constant(node.input[1])
        axis = 0 if self.per_channel else None
        wq, wz, wscale = self._weight(w, node.input[1], axis)
        xq, xs, xz = self._quantized_input(node.input[0])
        y = node.output[0]
        acc = self.edit.fresh(f"{y}_ConvInteger_Output")
        attrs = _attrs(node)
        self._node("ConvInteger", [xq, wq, xz, wz], [acc], f"{node.name}_ConvInteger", **attrs)
        cast = self.edit.fresh(f"{acc}_cast_output")
        self._node("Cast", [acc], [cast], f"{node.name}_cast", to=TensorProto.FLOAT)
        shape = [1, -1] + [1] * (w.ndim - 2)
        ws = self.edit.add_initializer(
            f"{node.input[1]}_scale", wscale.reshape(shape) if wscale.size > 1 else wscale
        )
        scales = self.edit.fresh(f"{y}_scales_mul_output")
        self._node("Mul", [xs, ws], [scales], f"{node.name}_scales_mul")
        has_bias = len(node.input) > 2 and node.input[2]
        scaled = self.edit.fresh(f"{y}_output_scale_mul_output") if has_bias else y
        self._node("Mul", [cast, scales], [scaled], f"{node.name}_output_scale_mul")
        if has_bias:
            b = self.edit.constant(node.input[2])
            bname = self.edit.add_initializer(
                f"{node.input[2]}_reshaped", b.reshape(shape).astype(np.float32)
            )
            self._node("Add", [scaled, bname], [y], f"{node.name}_bias_add")

    def gather(self, node: NodeProto) -> None:
        """An embedding table stored as 8-bit integers: the rows are gathered as integers and
        dequantized (per tensor, so any gathered row shares the parameters)."""
        table = self.edit.constant(node.input[0])
        q, p = quantize_weight(table, self.weight_type, self.symmetric, self.reduce_range, None)
        name = node.input[0]
        qname = self.edit.add_initializer(f"{name}_quantized", q)
        scale = self.edit.add_initializer(f"{name}_scale", p.scale)
        zero = self.edit.add_initializer(f"{name}_zero_point", p.zero_point)
        y = node.output[0]
        rows = self.edit.fresh(f"{y}_quantized")
        gather = helper.make_node(
            "Gather", [qname, node.input[1]], [rows], name=node.name, **_attrs(node)
        )
        self.new.append(gather)
        self._node("DequantizeLinear", [rows, scale, zero], [y], f"{node.name}_DequantizeLinear")

    def write(self, nodes: list[NodeProto]) -> ModelProto:
        names = {n.name for n in nodes}
        keep = []
        for node in self.model.graph.node:
            if node.name not in names:
                keep.append(node)
            elif node.op_type == "Gather":
                self.gather(node)
            elif node.op_type == "Conv":
                self.conv(node)
            else:
                self.matmul(node)
        del self.model.graph.node[:]
        self.model.graph.node.extend(keep + self.new)
        topological_sort(self.model.graph)
        self.edit.drop_unused_initializers()
        return self.model


def build_dynamic(
    model: ModelProto,
    op_types_to_quantize=None,
    per_channel=False,
    reduce_range=False,
    weight_type=QuantType.QInt8,
    nodes_to_quantize=None,
    nodes_to_exclude=None,
    extra_options=None,
) -> ModelProto:
    """The dynamically quantized model (``model`` is edited)."""
    if weight_type not in (QuantType.QInt8, QuantType.QUInt8):
        raise InvalidArgument(
            f"dynamic quantization takes QInt8 or QUInt8 weights, not {weight_type}"
        )
    opts = Options.parse(extra_options, matmul_const_b_only=True)
    model = ensure_opset(model, 11)
    ensure_names(model)
    check_names(
        model,
        set(nodes_to_exclude or []) | set(nodes_to_quantize or []),
        "nodes_to_exclude/quantize",
    )
    edit = GraphEdit(model)
    ops = set(op_types_to_quantize or DYNAMIC_OPS) & set(DYNAMIC_OPS)
    nodes = select_nodes(
        model, edit, ops, set(nodes_to_quantize or []), set(nodes_to_exclude or []), True
    )
    nodes = [n for n in nodes if n.op_type == "Gather" or _float_weight(edit, n)]
    return _DynamicWriter(model, weight_type, per_channel, reduce_range, opts).write(nodes)


def _float_weight(edit: GraphEdit, node: NodeProto) -> bool:
    w = edit.constant(node.input[1])
    return w is not None and w.dtype == np.float32


def quantize_dynamic(
    model_input: str | os.PathLike | ModelProto,
    model_output: str | os.PathLike,
    op_types_to_quantize=None,
    per_channel=False,
    reduce_range=False,
    weight_type=QuantType.QInt8,
    nodes_to_quantize=None,
    nodes_to_exclude=None,
    use_external_data_format=False,
    extra_options=None,
) -> None:
    """Quantize the weights of MatMul, Gemm and Conv (and Gather tables) to 8 bits;
    activations are quantized at run time. Writes the model to ``model_output``."""
    model = build_dynamic(
        load(model_input),
        op_types_to_quantize,
        per_channel,
        reduce_range,
        weight_type,
        nodes_to_quantize,
        nodes_to_exclude,
        extra_options,
    )
    save(model, Path(model_output), use_external_data_format)
