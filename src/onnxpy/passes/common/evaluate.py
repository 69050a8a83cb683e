"""Evaluate one node on constant inputs with onnxpy's own kernels (for constant folding)."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
from onnx import NodeProto, TensorProto, numpy_helper

import onnxpy.kernels  # noqa: F401 - importing the package registers the kernels
from onnxpy.kernels.registry import NodeInfo, lookup
from onnxpy.model.tensors import tensor_to_array
from onnxpy.passes.context import GraphContext
from onnxpy.runtime.attributes import decode_attribute
from onnxpy.types import DTYPE_TO_ELEM_TYPE

__all__ = ["evaluate_node", "array_to_tensor"]


def evaluate_node(
    ctx: GraphContext, node: NodeProto, inputs: list[np.ndarray | None]
) -> list[np.ndarray] | None:
    """The node's outputs as arrays, or None if it cannot be evaluated here (no kernel,
    unsupported attribute, error, or a non-tensor result): the node is then left to run."""
    opset = ctx.opset(node)
    kernel = lookup(node.domain, node.op_type, opset)
    if kernel is None or kernel.subgraph_attributes:
        return None
    names = {a.name for a in node.attribute}
    if kernel.attributes is not None and not names <= kernel.attributes:
        return None
    try:
        attrs = {a.name: decode_attribute(a, ctx.base_dir) for a in node.attribute}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fn = _bind(ctx, node, kernel, opset, attrs, inputs)
            result = fn(*inputs)
    except Exception:  # noqa: BLE001 - the runtime will raise the error itself, in context
        return None
    outs = result if isinstance(result, tuple) else (result,)
    if len(outs) < len(node.output):
        return None
    arrays = []
    for v in outs[: len(node.output)]:
        if isinstance(v, np.generic):
            v = np.asarray(v)
        if not isinstance(v, np.ndarray):
            return None  # sequences, maps, optionals: not tensors
        arrays.append(v)
    return arrays


def _bind(
    ctx: GraphContext,
    node: NodeProto,
    kernel: Any,
    opset: int,
    attrs: dict[str, Any],
    inputs: list[np.ndarray | None],
) -> Any:
    if not kernel.factory:
        return functools.partial(kernel.fn, **attrs) if attrs else kernel.fn
    info = NodeInfo(
        name=node.name,
        op_type=node.op_type,
        domain=node.domain,
        opset=opset,
        num_inputs=len(node.input),
        num_outputs=len(node.output),
        input_types=tuple(ctx.type_of(n) if n else None for n in node.input),
        output_types=tuple(ctx.type_of(n) if n else None for n in node.output),
        constant_inputs={i: v for i, v in enumerate(inputs) if v is not None},
        graph=ctx.graph,
        opsets=dict(ctx.opsets),
    )
    return kernel.fn(info, **attrs)


def array_to_tensor(array: np.ndarray, name: str) -> TensorProto | None:
    """``array`` as a TensorProto that decodes back to exactly the same dtype and values."""
    if array.dtype not in DTYPE_TO_ELEM_TYPE and array.dtype.kind != "O":
        return None
    try:
        t = numpy_helper.from_array(array, name)
        back = tensor_to_array(t)
    except Exception:  # noqa: BLE001 - a type numpy_helper cannot encode is simply not folded
        return None
    if back.dtype != array.dtype or back.shape != array.shape:
        return None
    if array.dtype.kind == "O":
        same = bool(np.all(back == array))
    else:
        a, b = (np.ascontiguousarray(x).reshape(-1).view(np.uint8) for x in (array, back))
        same = np.array_equal(a, b)
    return t if same else None
