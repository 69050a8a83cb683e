"""QOperator format: each planned node becomes its quantized operator.

Conv -> QLinearConv, MatMul -> QLinearMatMul, Gemm -> com.microsoft QGemm, Add/Mul ->
QLinearAdd/QLinearMul, Sigmoid/LeakyRelu/AveragePool/GlobalAveragePool/Softmax/Concat -> their
com.microsoft QLinear forms, and value-preserving operators (MaxPool, Reshape, ...) run on the
integers directly. Quantized values travel between quantized nodes as ``T_quantized``; a float
reader or a graph output gets one DequantizeLinear, a quantized reader of a float value one
QuantizeLinear.
"""

from __future__ import annotations

import numpy as np
from onnx import ModelProto, NodeProto, helper

from onnxpy.passes.fusion.qdq import QLINEAR_UNARY
from onnxpy.quantization.model_io import GraphEdit, topological_sort
from onnxpy.quantization.params import QuantParams, quantize_bias, quantize_weight
from onnxpy.quantization.selection import weight_axis

__all__ = ["QOperatorWriter"]

MS = "com.microsoft"


class QOperatorWriter:
    def __init__(self, model: ModelProto, plan, settings) -> None:
        self.model, self.plan, self.s = model, plan, settings
        self.edit = GraphEdit(model)
        self.planned = {n.name for n in plan.nodes}
        self.quantized: dict[str, str] = {}
        self.param_names: dict[str, tuple[str, str]] = {}
        self.out: list[NodeProto] = []
        self.outputs: list[str] = []  # float values whose quantized form a planned node writes

    def _pnames(self, t: str, p: QuantParams) -> tuple[str, str]:
        if t not in self.param_names:
            self.param_names[t] = (
                self.edit.add_initializer(f"{t}_scale", p.scale),
                self.edit.add_initializer(f"{t}_zero_point", p.zero_point),
            )
        return self.param_names[t]

    def _q_input(self, t: str) -> list[str]:
        """[quantized name, scale, zero point] of activation ``t`` (quantizing it if needed)."""
        p = self.plan.params[t]
        scale, zero = self._pnames(t, p)
        if t not in self.quantized:
            q = self.edit.fresh(f"{t}_quantized")
            self.out.append(
                helper.make_node(
                    "QuantizeLinear",
                    [t, scale, zero],
                    [q],
                    name=self.edit.fresh(f"{t}_QuantizeLinear"),
                )
            )
            self.quantized[t] = q
        return [self.quantized[t], scale, zero]

    def _q_const(self, t: str, axis: int | None, weight: bool) -> tuple[list[str], QuantParams]:
        s = self.s
        w = self.edit.constant(t)
        qtype = s.weight_type if weight else s.activation_type
        sym = s.weight_symmetric if weight else False
        q, p = quantize_weight(w, qtype, sym, s.reduce_range if weight else False, axis)
        name = self.edit.add_initializer(f"{t}_quantized", q)
        scale = self.edit.add_initializer(f"{t}_scale", p.scale)
        zero = self.edit.add_initializer(f"{t}_zero_point", p.zero_point)
        return [name, scale, zero], p

    def _operand(self, t: str) -> tuple[list[str], QuantParams]:
        if self.edit.constant(t) is not None:
            return self._q_const(t, None, weight=False)
        return self._q_input(t), self.plan.params[t]

    def _output(self, node: NodeProto) -> tuple[str, list[str]]:
        y = node.output[0]
        p = self.plan.params[y]
        scale, zero = self._pnames(y, p)
        yq = self.edit.fresh(f"{y}_quantized")
        self.quantized[y] = yq
        self.outputs.append(y)
        return yq, [scale, zero]

    def _emit(
        self, op: str, inputs: list[str], yq: str, node: NodeProto, domain: str = "", **attrs
    ):
        new = helper.make_node(op, inputs, [yq], name=node.name + "_quant", domain=domain, **attrs)
        self.out.append(new)

    def _attrs(self, node: NodeProto, drop: tuple[str, ...] = ()) -> dict:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name not in drop}

    def _weighted(self, node: NodeProto) -> None:
        s = self.s
        x, xp = self._operand(node.input[0])
        if self.edit.constant(node.input[1]) is None:  # MatMul of two activations
            w, wp = self._operand(node.input[1])
        else:
            axis = weight_axis(node, s.options.per_channel_axis) if s.per_channel else None
            if node.op_type == "MatMul":
                axis = None  # QLinearMatMul before opset 21: per-tensor b
            w, wp = self._q_const(node.input[1], axis, weight=True)
        yq, y = self._output(node)
        attrs = self._attrs(node)
        product = (xp.scale.astype(np.float64) * wp.scale.astype(np.float64)).astype(np.float32)
        if node.op_type == "Conv":
            ins = x + w + y
            if len(node.input) > 2 and node.input[2]:
                b = self.edit.constant(node.input[2])
                ins.append(
                    self.edit.add_initializer(
                        f"{node.input[2]}_quantized", quantize_bias(b, product)
                    )
                )
            self._emit("QLinearConv", ins, yq, node, **attrs)
        elif node.op_type == "MatMul":
            self._emit("QLinearMatMul", x + w + y, yq, node)
        else:  # Gemm -> QGemm: alpha * (A B + C_int) * sa * sb
            alpha, beta = float(attrs.pop("alpha", 1.0)), float(attrs.pop("beta", 1.0))
            c = ""
            if len(node.input) > 2 and node.input[2]:
                cv = self.edit.constant(node.input[2])
                cq = quantize_bias(beta * cv / alpha, product)
                c = self.edit.add_initializer(f"{node.input[2]}_quantized", cq)
            self.edit.use_domain(MS)
            self._emit("QGemm", x + w + [c] + y, yq, node, domain=MS, alpha=alpha, **attrs)

    def _node(self, node: NodeProto) -> None:
        kind = self.plan.kinds[node.name]
        if kind == "weighted":
            self._weighted(node)
        elif kind == "binary":
            (a, _), (b, _) = self._operand(node.input[0]), self._operand(node.input[1])
            yq, y = self._output(node)
            self.edit.use_domain(MS)
            self._emit(f"QLinear{node.op_type}", a + b + y, yq, node, domain=MS)
        elif kind == "concat":
            ins = []
            for t in node.input:
                ins += self._operand(t)[0]
            yq, y = self._output(node)
            self.edit.use_domain(MS)
            self._emit("QLinearConcat", y + ins, yq, node, domain=MS, **self._attrs(node))
        elif kind == "unary":
            x = self._q_input(node.input[0])
            yq, y = self._output(node)
            attrs = self._attrs(node)
            if node.op_type == "Softmax":
                attrs["opset"] = self.edit.opset("")
                attrs.setdefault("axis", -1 if self.edit.opset("") >= 13 else 1)
            self.edit.use_domain(MS)
            self._emit(QLINEAR_UNARY[node.op_type], x + y, yq, node, domain=MS, **attrs)
        else:  # same: the operator itself on integers, the output sharing the input's params
            x = self._q_input(node.input[0])
            yq, _ = self._output(node)
            new = helper.make_node(
                node.op_type,
                [x[0], *node.input[1:]],
                [yq],
                name=node.name + "_quant",
                **self._attrs(node),
            )
            self.out.append(new)

    def write(self) -> ModelProto:
        for node in self.model.graph.node:
            if node.name in self.planned:
                self._node(node)
            else:
                self.out.append(node)
        # Dequantize what a float reader or a graph output needs.
        readers: dict[str, list[NodeProto]] = {}
        for n in self.out:
            for i in n.input:
                readers.setdefault(i, []).append(n)
        for t in self.outputs:
            q = self.quantized[t]
            if not readers.get(t) and t not in self.edit.graph_outputs:
                continue
            scale, zero = self.param_names[t]
            self.out.append(
                helper.make_node(
                    "DequantizeLinear",
                    [q, scale, zero],
                    [t],
                    name=self.edit.fresh(f"{t}_DequantizeLinear"),
                )
            )
        del self.model.graph.node[:]
        self.model.graph.node.extend(self.out)
        topological_sort(self.model.graph)
        self.edit.drop_unused_initializers()
        return self.model
