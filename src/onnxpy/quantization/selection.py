"""Which nodes a quantizer touches, and in what role.

Static quantization knows these operator kinds:

* ``weighted`` - Conv, MatMul, Gemm: activation in, constant weight (per tensor or per channel)
  and bias (int32, in the input scale x weight scale) as integers, output quantized;
* ``binary`` - Add, Mul: both operands and the output quantized;
* ``unary`` - Sigmoid, LeakyRelu, AveragePool, GlobalAveragePool, Softmax, Clip, Relu (kept
  when it cannot be folded into its producer's output range);
* ``concat`` - Concat: every input and the output;
* ``same`` - MaxPool, Reshape, Flatten, Transpose, Squeeze, Unsqueeze: move values without
  changing them, so the output keeps the input's parameters (quantized only when the input
  already is, unless ``ForceQuantizeNoInputCheck``).

Dynamic quantization covers MatMul, Gemm, Conv and Gather of a constant table (embeddings;
Gemm deliberately, unlike onnxruntime's default list, so scikit-learn and Keras-style MLPs are
quantized too).
"""

from __future__ import annotations

from onnx import ModelProto, NodeProto

from onnxpy.quantization.model_io import GraphEdit

__all__ = ["STATIC_KINDS", "DYNAMIC_OPS", "select_nodes", "weight_axis"]

STATIC_KINDS: dict[str, str] = {
    "Conv": "weighted",
    "MatMul": "weighted",
    "Gemm": "weighted",
    "Add": "binary",
    "Mul": "binary",
    "Sigmoid": "unary",
    "LeakyRelu": "unary",
    "AveragePool": "unary",
    "GlobalAveragePool": "unary",
    "Softmax": "unary",
    "Clip": "unary",
    "Relu": "unary",
    "Concat": "concat",
    "MaxPool": "same",
    "Reshape": "same",
    "Flatten": "same",
    "Transpose": "same",
    "Squeeze": "same",
    "Unsqueeze": "same",
}
DYNAMIC_OPS = ("MatMul", "Gemm", "Conv", "Gather")


def _attr(node: NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return a.i if a.type == a.INT else a.f
    return default


def weight_axis(node: NodeProto, overrides: dict[str, int] | None = None) -> int:
    """The output-channel axis of a weighted node's weight (per-channel quantization)."""
    if overrides and node.op_type in overrides:
        return int(overrides[node.op_type])
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if _attr(node, "transB", 0) else 1
    return -1  # MatMul: [.., K, N] -> per column


def weight_input_ok(edit: GraphEdit, node: NodeProto) -> bool:
    """A weighted node whose weight is a usable constant (Gemm also needs plain A)."""
    if len(node.input) < 2:
        return False
    w = edit.constant(node.input[1])
    if node.op_type == "Conv":
        return w is not None and w.ndim >= 3 and w.dtype.kind == "f"
    if node.op_type == "Gemm":
        return w is not None and w.ndim == 2 and not _attr(node, "transA", 0)
    return w is None or (w.dtype.kind == "f" and w.ndim == 2)


def select_nodes(
    model: ModelProto,
    edit: GraphEdit,
    op_types: set[str],
    nodes_to_quantize: set[str],
    nodes_to_exclude: set[str],
    const_b_only: bool,
) -> list[NodeProto]:
    """The nodes to quantize, in graph order."""
    chosen = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in op_types:
            continue
        if nodes_to_quantize and node.name not in nodes_to_quantize:
            continue
        if node.name in nodes_to_exclude:
            continue
        if node.op_type == "Gather":
            table = edit.constant(node.input[0])
            if table is None or table.dtype != "float32" or _attr(node, "axis", 0) != 0:
                continue
        elif node.op_type in ("Conv", "MatMul", "Gemm"):
            if not weight_input_ok(edit, node):
                continue
            if const_b_only and edit.constant(node.input[1]) is None:
                continue
        chosen.append(node)
    return chosen
