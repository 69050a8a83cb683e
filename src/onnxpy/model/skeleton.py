"""A model's skeleton: the graph without its big weights, for the checker and shape inference.

Both tools serialize the whole model into C++ and back; on a 440 MB BERT that is seconds and
gigabytes spent copying weights they do not need. The skeleton turns each big initializer into
a graph input of the same type and shape (what inference needs to know about it) and keeps
small ones (shape tensors, whose values inference propagates). The weights' own consistency
(bytes vs dims) is checked when they are decoded.
"""

from __future__ import annotations

import onnx
from onnx import ModelProto, NodeProto, TensorProto, helper

from onnxpy.model.tensors import tensor_nbytes

__all__ = ["skeleton", "infer_types", "BIG_TENSOR_BYTES"]

BIG_TENSOR_BYTES = 4096


def _is_big(t: TensorProto) -> bool:
    return t.data_location == TensorProto.EXTERNAL or tensor_nbytes(t) > BIG_TENSOR_BYTES


# Tree ensembles keep their weights in attributes: one entry per node or leaf, millions in a
# big forest. Types and schema need one entry of each (lists of one group stay equally long);
# the kernel's setup checks the full lists. Class labels decide output types: never trimmed.
_TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})
_TREE_WEIGHT_PREFIXES = ("nodes_", "class_", "target_", "leaf_", "membership_values")
_TRIM_ABOVE = 1024


def _heavy_tree_node(node: NodeProto) -> bool:
    return (
        node.domain == "ai.onnx.ml"
        and node.op_type in _TREE_OPS
        and any(len(a.ints) + len(a.floats) + len(a.strings) > _TRIM_ABOVE for a in node.attribute)
    )


def _trim_tree_attributes(node: NodeProto) -> None:
    for a in node.attribute:
        if a.name.startswith(_TREE_WEIGHT_PREFIXES):
            for values in (a.ints, a.floats, a.strings):
                del values[1:]


def skeleton(model: ModelProto) -> ModelProto:
    """A copy of ``model`` with big top-level initializers replaced by typed graph inputs
    and tree ensembles' per-node attribute lists cut to one entry."""
    g = model.graph
    heavy = [i for i, n in enumerate(g.node) if _heavy_tree_node(n)]
    if not heavy and not any(_is_big(t) for t in g.initializer):
        return model
    out = ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version"):
        setattr(out, field, getattr(model, field))
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    sg = out.graph
    sg.name = g.name
    sg.node.extend(g.node)
    for i in heavy:
        _trim_tree_attributes(sg.node[i])
    sg.input.extend(g.input)
    sg.output.extend(g.output)
    sg.value_info.extend(g.value_info)
    sg.sparse_initializer.extend(g.sparse_initializer)
    listed = {i.name for i in g.input}
    for t in g.initializer:
        if not _is_big(t):
            sg.initializer.append(t)
        elif t.name not in listed:
            sg.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return out


def infer_types(model: ModelProto) -> ModelProto:
    """Shape/type inference on the skeleton; returns the skeleton with value_info filled in."""
    return onnx.shape_inference.infer_shapes(skeleton(model), check_type=False, strict_mode=False)
