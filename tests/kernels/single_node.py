"""Build a small ONNX model and run it through an onnxpy session.

``run`` is the one-node builder the kernel tests share (inputs by position), ``run_named``
its form with named feeds; ``run_graph`` runs a graph given as nodes and value infos (both
build on it), and ``graph_model`` is the model it builds, for tests that also hand the bytes
to onnxruntime or write them to a file.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnxpy
from onnxpy.types import elem_type_of


def graph_model(nodes, inputs, outputs, imports, *, inits=(), ir_version=None):
    """The model of ``nodes`` (graph ``inputs`` / ``outputs`` as value infos) importing
    ``imports`` (domain -> opset version; empty: the installed onnx's default opset).
    ``ir_version`` None is the installed onnx's, capped at the highest it knows."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in imports.items()] or None
    )
    model.ir_version = min(model.ir_version, onnx.IR_VERSION) if ir_version is None else ir_version
    return model


def run_graph(
    nodes,
    inputs,
    outputs,
    feeds,
    opset=None,
    *,
    domain="",
    opsets=None,
    inits=(),
    ir_version=None,
    infer_shapes=False,
):
    """Run ``nodes`` (graph ``inputs`` / ``outputs`` as value infos) on ``feeds``; all outputs.

    ``opset`` is the version imported for ``domain`` (None with the default domain: the
    installed onnx's default); ``opsets`` maps further domains to versions. ``ir_version``
    None is the installed onnx's, capped at the highest it knows. ``infer_shapes`` lets ONNX
    shape inference fill in the output shapes, and declares an (advisory) empty shape where
    inference cannot (the checker wants a shape on every graph output).
    """
    imports = {**(opsets or {}), **({domain: opset} if opset is not None else {})}
    model = graph_model(nodes, inputs, outputs, imports, inits=inits, ir_version=ir_version)
    if infer_shapes:
        model = onnx.shape_inference.infer_shapes(model)
        for o in model.graph.output:
            o.type.tensor_type.shape.SetInParent()
    return onnxpy.InferenceSession(model.SerializeToString()).run(None, feeds)


def _input_info(name, value, unknown_dims):
    if isinstance(value, dict):  # a map: key and value types from the first entry
        key = TensorProto.STRING if isinstance(next(iter(value), ""), str) else TensorProto.INT64
        sample = next(iter(value.values()), 0.0)
        val = (
            TensorProto.STRING
            if isinstance(sample, str)
            else TensorProto.INT64
            if isinstance(sample, int)
            else TensorProto.FLOAT
        )
        tp = helper.make_map_type_proto(key, helper.make_tensor_type_proto(val, None))
        return helper.make_value_info(name, tp)
    arr = np.asarray(value)
    shape = [None] * arr.ndim if unknown_dims else arr.shape
    return helper.make_tensor_value_info(name, elem_type_of(arr.dtype), shape)


def _output_info(name, tp, rank):
    if isinstance(tp, onnx.TypeProto):
        return helper.make_value_info(name, tp)
    elem = tp if isinstance(tp, int) else elem_type_of(np.dtype(tp))
    return helper.make_tensor_value_info(name, elem, [None] * rank)


def _inferred_elem_types(node, graph_inputs, inits, imports):
    """Each output's element type as ONNX inference gives it (float where it cannot tell):
    declared outputs must agree with what the node makes, or the session refuses the model."""
    graph = helper.make_graph(
        [node], "g", graph_inputs, [onnx.ValueInfoProto(name=o) for o in node.output], inits
    )
    opset_imports = [helper.make_opsetid(d, v) for d, v in imports.items()] or None
    model = helper.make_model(graph, opset_imports=opset_imports)
    model.ir_version = min(model.ir_version, onnx.IR_VERSION)
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph.output
    except Exception:  # noqa: BLE001 - unknown ops (custom domains): float, as before
        return TensorProto.FLOAT
    types = []
    for vi in inferred:
        tp = vi.type
        if tp.WhichOneof("value") == "tensor_type" and tp.tensor_type.elem_type:
            types.append(tp.tensor_type.elem_type)
        elif tp.WhichOneof("value") not in (None, "tensor_type"):
            types.append(tp)
        else:
            types.append(TensorProto.FLOAT)
    return types


def run(
    op,
    inputs,
    opset=None,
    outputs=1,
    *,
    domain="",
    opsets=None,
    ir_version=None,
    constants=(),
    unknown_dims=False,
    like_input=False,
    out_types=None,
    out_rank=None,
    **attrs,
):
    """Run one ``op`` node on ``inputs``; the output, or the list of them when ``outputs > 1``.

    ``inputs`` are arrays (strings as object arrays), dicts (maps) or None (an omitted optional
    input). Positions in ``constants`` become initializers instead of graph inputs, and
    ``unknown_dims`` declares the inputs with unknown dimensions. The node is in ``domain``;
    ``opset``, ``opsets`` and ``ir_version`` are as for ``run_graph``.

    Outputs are declared as float of rank 1, or with ``like_input`` as the first input's type
    and the inputs' largest rank. ``out_types`` overrides the types (an ONNX element type, a
    NumPy dtype or a TypeProto; a list of them, one per output) and ``out_rank`` the rank (an
    int, or a list of them).
    """
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    given = [(i, n, v) for i, (n, v) in enumerate(zip(names, inputs, strict=True)) if n]
    arrays = [np.asarray(v) for _, _, v in given if not isinstance(v, dict)]
    out_names = [f"y{i}" for i in range(outputs)]
    graph_inputs = [_input_info(n, v, unknown_dims) for i, n, v in given if i not in constants]
    inits = [numpy_helper.from_array(np.asarray(v), n) for i, n, v in given if i in constants]
    node = helper.make_node(op, names, out_names, domain=domain or None, **attrs)
    if out_types is None and like_input:
        out_types = arrays[0].dtype
    elif out_types is None:
        imports = {**(opsets or {}), **({domain: opset} if opset is not None else {})}
        out_types = _inferred_elem_types(node, graph_inputs, inits, imports)
    if out_rank is None:
        out_rank = max(a.ndim for a in arrays) if like_input else 1
    out_types = out_types if isinstance(out_types, list) else [out_types] * outputs
    out_rank = out_rank if isinstance(out_rank, list) else [out_rank] * outputs
    graph_outputs = [
        _output_info(n, t, r) for n, t, r in zip(out_names, out_types, out_rank, strict=True)
    ]
    feeds = {
        n: v if isinstance(v, dict) else np.asarray(v) for i, n, v in given if i not in constants
    }
    res = run_graph(
        [node],
        graph_inputs,
        graph_outputs,
        feeds,
        opset,
        domain=domain,
        opsets=opsets,
        inits=inits,
        ir_version=ir_version,
    )
    return res[0] if outputs == 1 else res


def run_named(op, feeds, out_types, opset=18, initializers=None, **attrs):
    """Run one ``op`` node on named ``feeds`` (in input order; '' = an omitted input), then
    ``initializers``; outputs y0, y1... of element types ``out_types``, shapes as inferred.
    """
    initializers = initializers or {}
    inputs = [
        helper.make_tensor_value_info(n, elem_type_of(np.asarray(v).dtype), np.shape(v))
        for n, v in feeds.items()
        if n
    ]
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in initializers.items()]
    outputs = [helper.make_tensor_value_info(f"y{i}", t, None) for i, t in enumerate(out_types)]
    node = helper.make_node(op, [*feeds, *initializers], [o.name for o in outputs], **attrs)
    feeds = {n: v for n, v in feeds.items() if n}
    res = run_graph([node], inputs, outputs, feeds, opset, inits=inits, infer_shapes=True)
    return res[0] if len(res) == 1 else res
