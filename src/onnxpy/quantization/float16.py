"""float32 -> float16 conversion of a model, in standard ONNX.

Weights, constants and the values between converted nodes become float16; nodes of the block
lists (by op type or name, plus operators without float16 kernels in common runtimes, and any
non-standard domain but com.microsoft) keep float32, with a Cast at each boundary. By default
the model keeps float32 inputs and outputs (``keep_io_types=True``, a deliberate difference
from the converter in onnxruntime's transformers tools, whose default is False): callers feed
the same arrays as before. Weights are clipped to +/-``max_finite_val`` and tiny ones raised to
+/-``min_positive_val`` so none overflows to inf or flushes to 0.

onnxpy runs such a model by computing in float32 inside with one Cast at the boundary
(``passes/fusion/float16_compute.py``) rather than a conversion per operator.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, TensorProto, helper, numpy_helper

from onnxpy.quantization.model_io import GraphEdit, ensure_names, load, topological_sort

__all__ = ["convert_float_to_float16", "DEFAULT_OP_BLOCK_LIST"]

DEFAULT_OP_BLOCK_LIST = frozenset(
    {
        "NonMaxSuppression",
        "TopK",
        "RoiAlign",
        "Range",
        "CumSum",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Multinomial",
        "EyeLike",
        "Loop",
        "If",
        "Scan",
        "DFT",
        "STFT",
    }
)
# Inputs that must stay float32 whatever the node's data type (e.g. Resize's scales).
_FLOAT32_INPUTS = {"Resize": {2}, "Upsample": {1}}
_F32, _F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _to_half(a: np.ndarray, min_positive: float, max_finite: float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    tiny = (np.abs(a) < min_positive) & (a != 0)
    a = np.where(tiny, np.copysign(min_positive, a), a)
    return np.clip(a, -max_finite, max_finite).astype(np.float16)


def _elem_types(model: ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    g = inferred.graph
    types = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    for t in g.initializer:
        types[t.name] = t.data_type
    return types


def convert_float_to_float16(
    model: ModelProto | str | os.PathLike,
    min_positive_val: float = 1e-7,
    max_finite_val: float = 1e4,
    keep_io_types: bool = True,
    disable_shape_infer: bool = False,
    op_block_list=None,
    node_block_list=None,
    force_fp16_initializers: bool = False,
) -> ModelProto:
    """The float16 form of ``model`` (a ModelProto or path; the input is not changed)."""
    model = load(model)
    ensure_names(model)
    blocked_ops = DEFAULT_OP_BLOCK_LIST if op_block_list is None else frozenset(op_block_list)
    blocked_nodes = set(node_block_list or [])
    types = {} if disable_shape_infer else _elem_types(model)
    g = model.graph
    edit = GraphEdit(model)

    def is_blocked(n: NodeProto) -> bool:
        if n.domain not in ("", "ai.onnx", "com.microsoft"):
            return True
        return n.op_type in blocked_ops or n.name in blocked_nodes

    def is_float(name: str) -> bool:
        return types.get(name) == _F32 if types else True

    converted = {n.name for n in g.node if not is_blocked(n)}
    half: set[str] = set()  # float32 values that become float16
    for n in g.node:
        if n.name in converted:
            half.update(o for o in n.output if o and is_float(o))
    # Initializers read only by converted nodes (or all, when forced) become float16.
    for t in g.initializer:
        if t.data_type != _F32:
            continue
        readers = edit.consumers.get(t.name, [])
        pinned = any(
            r.name not in converted or k in _FLOAT32_INPUTS.get(r.op_type, ())
            for r in readers
            for k, x in enumerate(r.input)
            if x == t.name
        )
        if readers and (not pinned or force_fp16_initializers):
            value = _to_half(numpy_helper.to_array(t), min_positive_val, max_finite_val)
            t.CopyFrom(numpy_helper.from_array(value, t.name))
            half.add(t.name)
    new_nodes: list[NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            out = edit.fresh(f"{name}_cast_to_{'fp16' if to == _F16 else 'fp32'}")
            new_nodes.append(
                helper.make_node("Cast", [name], [out], name=edit.fresh(f"{out}_node"), to=to)
            )
            casts[key] = out
        return casts[key]

    float_inputs = [
        v
        for v in g.input
        if v.type.tensor_type.elem_type == _F32 and v.name not in edit.initializers
    ]
    if keep_io_types:
        for v in float_inputs:
            half.discard(v.name)
    else:
        for v in float_inputs:
            v.type.tensor_type.elem_type = _F16
            half.add(v.name)
    for n in g.node:
        inside = n.name in converted
        for k, x in enumerate(n.input):
            if not x:
                continue
            must32 = k in _FLOAT32_INPUTS.get(n.op_type, ())
            if inside and not must32 and x not in half and _is_float_value(x, types, edit):
                n.input[k] = cast(x, _F16)
            elif (not inside or must32) and x in half:
                n.input[k] = cast(x, _F32)
        if inside:
            _retype_attributes(n, min_positive_val, max_finite_val)
    for o in g.output:
        if o.name not in half:
            continue
        if keep_io_types:
            producer = edit.producer.get(o.name)
            inner = edit.fresh(f"{o.name}_fp16")
            if producer is not None:
                producer.output[list(producer.output).index(o.name)] = inner
                for r in edit.consumers.get(o.name, []):
                    r.input[:] = [inner if x == o.name else x for x in r.input]
            new_nodes.append(
                helper.make_node(
                    "Cast", [inner], [o.name], name=edit.fresh(f"{o.name}_cast"), to=_F32
                )
            )
        else:
            o.type.tensor_type.elem_type = _F16
    g.node.extend(new_nodes)
    topological_sort(g)
    kept = [vi for vi in g.value_info if vi.name not in half]
    del g.value_info[:]
    g.value_info.extend(kept)
    return model


def _is_float_value(name: str, types: dict[str, int], edit: GraphEdit) -> bool:
    if types:
        return types.get(name) == _F32
    t = edit.initializers.get(name)
    return t is not None and t.data_type == _F32


def _retype_attributes(n: NodeProto, min_positive: float, max_finite: float) -> None:
    """Attributes that name or hold float32 inside a converted node."""
    for a in n.attribute:
        if n.op_type == "Cast" and a.name == "to" and a.i == _F32:
            a.i = _F16
        elif a.type == onnx.AttributeProto.TENSOR and a.t.data_type == _F32:
            value = _to_half(numpy_helper.to_array(a.t), min_positive, max_finite)
            a.t.CopyFrom(numpy_helper.from_array(value, a.t.name))
