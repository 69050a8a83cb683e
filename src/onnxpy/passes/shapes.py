"""Type and shape facts for the optimizer, from ONNX shape inference on a light copy.

Inference runs on the model's skeleton (``onnxpy.model.skeleton``): large initializers become
typed graph inputs, so the weights are neither serialized nor copied, while small ones (shape
vectors, axes) stay so that inference can propagate their values.
"""

from __future__ import annotations

import onnx
from onnx import ModelProto, TensorProto, TypeProto, helper

from onnxpy.model.skeleton import skeleton

__all__ = ["infer_types", "dims_of", "static_shape", "elem_type", "tensor_type_of"]


def tensor_type_of(t: TensorProto) -> TypeProto:
    """The TypeProto of an initializer / constant tensor."""
    return helper.make_tensor_type_proto(t.data_type, [int(d) for d in t.dims])


def infer_types(model: ModelProto) -> dict[str, TypeProto]:
    """name -> TypeProto for every value whose type is known (declared or inferred)."""
    types: dict[str, TypeProto] = {}
    inferred = None
    sk = skeleton(model)
    for data_prop in (True, False):
        try:
            inferred = onnx.shape_inference.infer_shapes(
                sk, check_type=False, strict_mode=False, data_prop=data_prop
            )
            break
        except Exception:  # noqa: BLE001 - inference is advisory: unknown types disable passes
            continue
    graph = inferred.graph if inferred is not None else model.graph
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.type.WhichOneof("value"):
            types[vi.name] = vi.type
    for t in model.graph.initializer:
        types.setdefault(t.name, tensor_type_of(t))
    return types


def elem_type(tp: TypeProto | None) -> int | None:
    """Element type of a tensor type (None if not a tensor or unknown)."""
    if tp is None or tp.WhichOneof("value") != "tensor_type":
        return None
    return tp.tensor_type.elem_type or None


def dims_of(tp: TypeProto | None) -> list[int | str | None] | None:
    """Dims of a tensor type: int when static, the symbol or None otherwise; None if no rank."""
    if tp is None or tp.WhichOneof("value") != "tensor_type":
        return None
    tt = tp.tensor_type
    if not tt.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def static_shape(tp: TypeProto | None) -> tuple[int, ...] | None:
    """The shape if every dim is a known integer."""
    dims = dims_of(tp)
    if dims is None or not all(isinstance(d, int) for d in dims):
        return None
    return tuple(dims)  # type: ignore[arg-type]
