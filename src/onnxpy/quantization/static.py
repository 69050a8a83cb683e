"""Static quantization: calibrate activation ranges on data, then write the model in QDQ format
(QuantizeLinear/DequantizeLinear pairs around the float operators, the format onnxruntime
recommends) or QOperator format (quantized operators, ``qoperator.py``).

``plan_static`` decides, for the selected nodes, every activation tensor's parameters (from its
calibrated range; the output of a value-preserving op such as MaxPool or Reshape keeps its
input's), folds a Relu into its producer's output range when activations are asymmetric (the
quantization's lower bound then clips exactly at 0), and leaves out a node whose tensors have no
range (not float). Names follow onnxruntime's conventions (``T_scale``, ``T_zero_point``,
``T_QuantizeLinear_Output``, ``T_DequantizeLinear_Output``, ``W_quantized``) so tools that know
one know the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import ModelProto, NodeProto, helper

from onnxpy.errors import InvalidArgument
from onnxpy.errors import NotImplemented as NotSupported
from onnxpy.quantization.calibrate import (
    CalibrationDataReader,
    Progress,
    TensorsData,
    create_calibrator,
)
from onnxpy.quantization.config import CalibrationMethod, Options, QuantFormat, QuantType
from onnxpy.quantization.model_io import (
    GraphEdit,
    check_names,
    ensure_names,
    ensure_opset,
    load,
    save,
    topological_sort,
)
from onnxpy.quantization.params import QuantParams, quantize_bias, quantize_weight, range_params
from onnxpy.quantization.selection import STATIC_KINDS, select_nodes, weight_axis

__all__ = ["quantize_static", "StaticSettings", "calibrate", "build_static", "plan_static"]


@dataclass
class StaticSettings:
    quant_format: QuantFormat = QuantFormat.QDQ
    activation_type: QuantType = QuantType.QInt8
    weight_type: QuantType = QuantType.QInt8
    per_channel: bool = False
    reduce_range: bool = False
    op_types: set[str] = field(default_factory=lambda: set(STATIC_KINDS))
    nodes_to_quantize: set[str] = field(default_factory=set)
    nodes_to_exclude: set[str] = field(default_factory=set)
    options: Options = field(default_factory=Options)

    @property
    def weight_symmetric(self) -> bool:
        sym = self.options.weight_symmetric
        return (
            self.weight_type in (QuantType.QInt8, QuantType.QInt16, QuantType.QInt4)
            if (sym is None)
            else bool(sym)
        )


@dataclass
class Plan:
    nodes: list[NodeProto]
    kinds: dict[str, str]
    params: dict[str, QuantParams]


def calibrate(
    model_input: str | os.PathLike | ModelProto,
    reader: CalibrationDataReader,
    method: CalibrationMethod,
    tensors: list[str],
    options: Options,
    progress: Progress | None = None,
) -> TensorsData:
    """Ranges of ``tensors`` over the reader's batches (an onnxpy session, no optimization)."""
    extra = {
        "symmetric": options.calib_symmetric,
        "moving_average": options.calib_moving_average,
        "averaging_constant": options.calib_moving_average_constant,
    }
    if options.calib_num_bins is not None:
        extra["num_bins"] = options.calib_num_bins
    if options.calib_num_quantized_bins is not None:
        extra["num_quantized_bins"] = options.calib_num_quantized_bins
    if options.calib_percentile is not None:
        extra["percentile"] = options.calib_percentile
    calibrator = create_calibrator(model_input, calibrate_method=method, extra_options=extra)
    calibrator.set_tensors(tensors)
    calibrator.collect_data(reader, progress)
    return calibrator.compute_data()


def _activation_params(name: str, ranges: TensorsData, s: StaticSettings) -> QuantParams | None:
    overrides = s.options.tensor_overrides.get(name)
    if overrides:
        o = overrides[0]
        qtype = o.get("quant_type", s.activation_type)
        if "scale" in o:
            return QuantParams(o["scale"], o["zero_point"], qtype)
    data = ranges.get(name)
    if data is None:
        return None
    lo, hi = float(data.lowest), float(data.highest)
    qtype, sym = s.activation_type, s.options.activation_symmetric
    if overrides:
        lo, hi = overrides[0].get("rmin", lo), overrides[0].get("rmax", hi)
        qtype = overrides[0].get("quant_type", qtype)
        sym = overrides[0].get("symmetric", sym)
    return range_params(lo, hi, qtype, sym, False, s.options.minimum_real_range)


def _softmax_params(qtype: QuantType) -> QuantParams:
    """Softmax's output lies in [0, 1]: a fixed 1/256 step."""
    lo = qtype.qrange()[0]
    return QuantParams(np.float32(1.0 / 256), lo, qtype)


def _fold_relus(model: ModelProto, plan: Plan, edit: GraphEdit, s: StaticSettings) -> None:
    """Drop a Relu right after a quantized Conv/MatMul/Gemm/Add/Mul whose output only the
    Relu reads: the producer writes the Relu's output, quantized with the Relu output's range,
    whose lower end (0, at the lowest integer) clips exactly as the Relu did."""
    if s.options.keep_removable_activations or s.options.activation_symmetric:
        return
    planned = {n.name: n for n in plan.nodes}
    dropped = set()
    for relu in list(plan.nodes):
        if relu.op_type != "Relu":
            continue
        src, out = relu.input[0], relu.output[0]
        producer = edit.producer.get(src)
        if producer is None or producer.name not in planned or src in edit.graph_outputs:
            continue
        if plan.kinds[producer.name] not in ("weighted", "binary"):
            continue
        if len(edit.consumers.get(src, [])) != 1 or out not in plan.params:
            continue
        if float(plan.params[out].zero_point) != plan.params[out].qtype.qrange()[0]:
            continue  # the range does not start at 0 (no calibration data went through)
        producer.output[list(producer.output).index(src)] = out
        plan.params.pop(src, None)
        dropped.add(relu.name)
    if dropped:
        keep = [n for n in model.graph.node if n.name not in dropped]
        del model.graph.node[:]
        model.graph.node.extend(keep)
        plan.nodes[:] = [n for n in model.graph.node if n.name in planned and n.name not in dropped]


def plan_static(model: ModelProto, ranges: TensorsData, s: StaticSettings) -> Plan:
    """Nodes to quantize (Relus folded into the model) and every activation's parameters."""
    edit = GraphEdit(model)
    chosen = select_nodes(
        model,
        edit,
        s.op_types,
        s.nodes_to_quantize,
        s.nodes_to_exclude,
        s.options.matmul_const_b_only,
    )
    params: dict[str, QuantParams] = {}
    nodes, kinds = [], {}
    qoperator = s.quant_format == QuantFormat.QOperator
    for node in chosen:
        kind = STATIC_KINDS[node.op_type]
        if qoperator and node.op_type == "Clip":
            continue  # no quantized operator: it stays float
        acts = [x for x in _activation_inputs(node, kind, edit)]
        if kind == "same":
            src = node.input[0]
            if src not in params and not s.options.force_quantize_no_input_check:
                continue
        new: dict[str, QuantParams] = {}
        missing = False
        for x in acts:
            p = params.get(x) or _activation_params(x, ranges, s)
            if p is None:
                missing = True
                break
            new[x] = p
        if missing:
            continue
        out = node.output[0]
        if kind == "same":
            new[out] = new[node.input[0]]
        elif node.op_type == "Softmax":
            new[out] = _softmax_params(s.activation_type)
        elif node.op_type not in s.options.op_types_to_exclude_output_quantization or qoperator:
            p = _activation_params(out, ranges, s)
            if p is None:
                continue
            new[out] = p
        for x, p in new.items():
            params.setdefault(x, p)
        nodes.append(node)
        kinds[node.name] = kind
    plan = Plan(nodes, kinds, params)
    _fold_relus(model, plan, edit, s)
    if qoperator:  # a Relu that could not be folded has no quantized operator: it stays float
        plan.nodes[:] = [n for n in plan.nodes if n.op_type != "Relu"]
    return plan


def _activation_inputs(node: NodeProto, kind: str, edit: GraphEdit) -> list[str]:
    """The inputs that are quantized as activations (not constants, not shape operands)."""
    if kind == "weighted":
        ins = [node.input[0]]
        if node.op_type == "MatMul" and edit.constant(node.input[1]) is None:
            ins.append(node.input[1])
        return ins
    if kind in ("binary", "concat"):
        return [x for x in node.input if x and edit.constant(x) is None]
    return [node.input[0]]


# -- QDQ writer ----------------------------------------------------------------------------------


class QDQWriter:
    def __init__(self, model: ModelProto, plan: Plan, s: StaticSettings) -> None:
        self.model, self.plan, self.s = model, plan, s
        self.edit = GraphEdit(model)
        self.new_nodes: list[NodeProto] = []

    def _params_inputs(self, base: str, p: QuantParams) -> tuple[str, str]:
        scale = self.edit.add_initializer(f"{base}_scale", p.scale)
        zero = self.edit.add_initializer(f"{base}_zero_point", p.zero_point)
        return scale, zero

    def _dq(self, q_name: str, scale: str, zero: str, out: str, axis: int | None = None):
        attrs = {} if axis is None else {"axis": axis}
        self.new_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [q_name, scale, zero],
                [out],
                name=self.edit.fresh(f"{out}_node"),
                **attrs,
            )
        )

    def activations(self) -> None:
        for t, p in self.plan.params.items():
            scale, zero = self._params_inputs(t, p)
            readers = list(self.edit.consumers.get(t, []))
            if t in self.edit.graph_outputs:
                src = self.edit.fresh(f"{t}_QuantizeLinear_Input")
                producer = self.edit.producer.get(t)
                if producer is None:
                    continue  # a graph input passed straight through
                producer.output[list(producer.output).index(t)] = src
                dq_out = t
            else:
                src, dq_out = t, self.edit.fresh(f"{t}_DequantizeLinear_Output")
            q_out = self.edit.fresh(f"{t}_QuantizeLinear_Output")
            self.new_nodes.append(
                helper.make_node(
                    "QuantizeLinear",
                    [src, scale, zero],
                    [q_out],
                    name=self.edit.fresh(f"{t}_QuantizeLinear"),
                )
            )
            self._dq(q_out, scale, zero, dq_out)
            for r in readers:
                for k, name in enumerate(r.input):
                    if name == t:
                        r.input[k] = dq_out

    def weight(self, node: NodeProto, index: int, axis: int | None, qtype: QuantType, sym: bool):
        w = self.edit.constant(node.input[index])
        name = node.input[index]
        q, p = quantize_weight(
            w, qtype, sym, self.s.reduce_range if qtype == self.s.weight_type else False, axis
        )
        if axis is not None:
            p.axis = axis % w.ndim
        scale, zero = self._params_inputs(name, p)
        dq_out = self.edit.fresh(f"{name}_DequantizeLinear_Output")
        if self.s.options.add_qdq_pair_to_weight:
            q_out = self.edit.fresh(f"{name}_QuantizeLinear_Output")
            self.new_nodes.append(
                helper.make_node(
                    "QuantizeLinear",
                    [name, scale, zero],
                    [q_out],
                    name=self.edit.fresh(f"{name}_QuantizeLinear"),
                    **({} if axis is None else {"axis": p.axis}),
                )
            )
            self._dq(q_out, scale, zero, dq_out, p.axis)
        else:
            qname = self.edit.add_initializer(f"{name}_quantized", q)
            self._dq(qname, scale, zero, dq_out, p.axis)
        node.input[index] = dq_out
        return p

    def bias(self, node: NodeProto, index: int, x_params: QuantParams, w_params: QuantParams):
        b = self.edit.constant(node.input[index])
        name = node.input[index]
        scale = (x_params.scale.astype(np.float64) * w_params.scale.astype(np.float64)).astype(
            np.float32
        )
        q = quantize_bias(b.reshape(-1), scale)
        qname = self.edit.add_initializer(f"{name}_quantized", q.reshape(b.shape))
        s_name = self.edit.add_initializer(
            f"{name}_quantized_scale", scale.reshape(-1) if scale.size > 1 else scale.reshape(())
        )
        z_name = self.edit.add_initializer(
            f"{name}_quantized_zero_point",
            np.zeros(scale.shape, np.int32).reshape(-1) if scale.size > 1 else np.int32(0),
        )
        dq_out = self.edit.fresh(f"{name}_DequantizeLinear_Output")
        self._dq(qname, s_name, z_name, dq_out, 0 if scale.size > 1 else None)
        node.input[index] = dq_out

    def write(self) -> ModelProto:
        s = self.s
        for node in self.plan.nodes:
            kind = self.plan.kinds[node.name]
            if kind == "weighted":
                x_params = self.plan.params[node.input[0]]
                if self.edit.constant(node.input[1]) is None:
                    continue
                axis = weight_axis(node, s.options.per_channel_axis) if s.per_channel else None
                w_params = self.weight(node, 1, axis, s.weight_type, s.weight_symmetric)
                if len(node.input) > 2 and node.input[2] and _bias_ok(node, self.edit):
                    self.bias(node, 2, x_params, w_params)
            elif kind == "binary":
                for k, x in enumerate(node.input):
                    if (
                        self.edit.constant(x) is not None
                        and self.edit.constant(x).dtype.kind == "f"
                    ):
                        self.weight(node, k, None, s.activation_type, False)
        self.activations()
        self.model.graph.node.extend(self.new_nodes)
        topological_sort(self.model.graph)
        self.edit.drop_unused_initializers()
        return self.model


def _bias_ok(node: NodeProto, edit: GraphEdit) -> bool:
    b = edit.constant(node.input[2])
    if b is None or b.dtype.kind != "f":
        return False
    if node.op_type == "Gemm":
        attrs = {a.name: a.f for a in node.attribute if a.type == a.FLOAT}
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            return False
        return b.ndim == 1 or (b.ndim == 2 and b.shape[0] == 1)
    return b.ndim == 1


def _needed_opset(s: StaticSettings) -> int:
    small = {QuantType.QInt4, QuantType.QUInt4, QuantType.QInt16, QuantType.QUInt16}
    if s.weight_type in small or s.activation_type in small:
        return 21
    return 13 if s.per_channel else 10


def build_static(model: ModelProto, ranges: TensorsData, s: StaticSettings) -> ModelProto:
    """The quantized model for calibrated ``ranges`` (``model`` is edited)."""
    model = ensure_opset(model, _needed_opset(s))
    ensure_names(model)
    plan = plan_static(model, ranges, s)
    if s.quant_format == QuantFormat.QOperator:
        from onnxpy.quantization.qoperator import QOperatorWriter

        return QOperatorWriter(model, plan, s).write()
    return QDQWriter(model, plan, s).write()


def static_settings(
    quant_format=QuantFormat.QDQ,
    op_types_to_quantize=None,
    per_channel=False,
    reduce_range=False,
    activation_type=QuantType.QInt8,
    weight_type=QuantType.QInt8,
    nodes_to_quantize=None,
    nodes_to_exclude=None,
    extra_options=None,
) -> StaticSettings:
    if not isinstance(quant_format, QuantFormat):
        raise InvalidArgument(f"quant_format must be a QuantFormat, got {quant_format!r}")
    for name, v in (("activation_type", activation_type), ("weight_type", weight_type)):
        if not isinstance(v, QuantType):
            raise InvalidArgument(f"{name} must be a QuantType, got {v!r}")
        if v == QuantType.QFLOAT8E4M3FN:
            raise NotSupported(f"{name}={v}: onnxpy.quantization writes integer types only")
    return StaticSettings(
        quant_format=quant_format,
        activation_type=activation_type,
        weight_type=weight_type,
        per_channel=bool(per_channel),
        reduce_range=bool(reduce_range),
        op_types=set(op_types_to_quantize or STATIC_KINDS),
        nodes_to_quantize=set(nodes_to_quantize or []),
        nodes_to_exclude=set(nodes_to_exclude or []),
        options=Options.parse(extra_options),
    )


def quantize_static(
    model_input: str | os.PathLike | ModelProto,
    model_output: str | os.PathLike,
    calibration_data_reader: CalibrationDataReader,
    quant_format=QuantFormat.QDQ,
    op_types_to_quantize=None,
    per_channel=False,
    reduce_range=False,
    activation_type=QuantType.QInt8,
    weight_type=QuantType.QInt8,
    nodes_to_quantize=None,
    nodes_to_exclude=None,
    use_external_data_format=False,
    calibrate_method=CalibrationMethod.MinMax,
    calibration_providers=None,
    extra_options=None,
    progress: Progress | None = None,
) -> None:
    """Quantize weights and activations with ranges calibrated on ``calibration_data_reader``
    and write the model to ``model_output`` (QDQ or QOperator format)."""
    s = static_settings(
        quant_format,
        op_types_to_quantize,
        per_channel,
        reduce_range,
        activation_type,
        weight_type,
        nodes_to_quantize,
        nodes_to_exclude,
        extra_options,
    )
    if calibration_data_reader is None or not hasattr(calibration_data_reader, "get_next"):
        raise InvalidArgument("quantize_static needs a calibration data reader (get_next())")
    model = load(model_input)
    ensure_names(model)
    check_names(model, s.nodes_to_exclude | s.nodes_to_quantize, "nodes_to_exclude/quantize")
    source = model_input if isinstance(model_input, (str, os.PathLike)) else model
    tensors = _tensors_to_calibrate(model, s)
    ranges = calibrate(
        source, calibration_data_reader, calibrate_method, tensors, s.options, progress
    )
    save(build_static(model, ranges, s), Path(model_output), use_external_data_format)


def _tensors_to_calibrate(model: ModelProto, s: StaticSettings) -> list[str]:
    edit = GraphEdit(model)
    names: dict[str, None] = {}
    for node in model.graph.node:
        if node.op_type not in s.op_types or node.domain not in ("", "ai.onnx"):
            continue
        for x in (*node.input, *node.output):
            if x and edit.constant(x) is None:
                names[x] = None
    return list(names)
