"""Signatures of control-flow nodes against their bodies: If, Loop and Scan.

A body whose inputs or outputs do not fit its node cannot be run correctly: onnxpy would feed
it the wrong values or read outputs that are not there (an ``IndexError`` deep in a run).
These rules follow the operator specifications:

- If: ``cond`` is a bool tensor; both branches have as many outputs as the node, and where
  both declare an output's element type, they agree.
- Loop: inputs ``(M, cond, v_initial...)``; the body takes ``(iteration_num, condition,
  v...)`` and returns ``(condition, v..., scan_outputs...)``; ``M`` and ``iteration_num`` are
  int64, ``cond`` and both conditions bool.
- Scan (opset 9+): the body takes the N state values then ``num_scan_inputs`` slices and
  returns the N new states then one value per scan output of the node (opset 8 has a leading
  ``sequence_lens`` input).

Types come from what is declared and, for the enclosing graph's values, from shape inference;
a type nobody knows is not a problem.
"""

from __future__ import annotations

from collections.abc import Iterator

from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto

from onnxpy import errors

__all__ = ["subgraph_problems"]

_GRAPH_KINDS = (AttributeProto.GRAPH, AttributeProto.GRAPHS)


def _elem(tp: TypeProto | None) -> int | None:
    if tp is None or tp.WhichOneof("value") != "tensor_type":
        return None
    return tp.tensor_type.elem_type or None


def _declared(vi) -> TypeProto | None:
    return vi.type if vi.type.WhichOneof("value") else None


def _name(elem: int) -> str:
    return (
        TensorProto.DataType.Name(elem).lower()
        if elem in TensorProto.DataType.values()
        else str(elem)
    )


def _attr(node: NodeProto, name: str) -> AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _problem(node: NodeProto, message: str):
    from onnxpy.model.validate import Problem

    return Problem(errors.InvalidGraph, f"Node '{node.name}' ({node.op_type})", message)


def _expect_elem(node, what: str, tp: TypeProto | None, want: int) -> Iterator:
    got = _elem(tp)
    if got is not None and got != want:
        yield _problem(node, f"{what} must be a tensor of {_name(want)}, got {_name(got)}")


def _if(node: NodeProto, types: dict[str, TypeProto]) -> Iterator:
    if node.input:
        yield from _expect_elem(
            node, f"condition '{node.input[0]}'", types.get(node.input[0]), TensorProto.BOOL
        )
    then, other = _attr(node, "then_branch"), _attr(node, "else_branch")
    if then is None or other is None:
        return  # the checker names a missing required attribute
    a, b = then.g, other.g
    if len(a.output) != len(b.output):
        yield _problem(
            node,
            f"then_branch has {len(a.output)} outputs but else_branch has {len(b.output)}",
        )
        return
    if len(node.output) != len(a.output):
        yield _problem(
            node, f"the node has {len(node.output)} outputs but its branches have {len(a.output)}"
        )
    for i, (x, y) in enumerate(zip(a.output, b.output)):
        ex, ey = _elem(_declared(x)), _elem(_declared(y))
        if ex is not None and ey is not None and ex != ey:
            yield _problem(
                node,
                f"output {i} is {_name(ex)} in then_branch ('{x.name}') but {_name(ey)} in "
                f"else_branch ('{y.name}')",
            )


def _loop(node: NodeProto, types: dict[str, TypeProto]) -> Iterator:
    body_attr = _attr(node, "body")
    if body_attr is None:
        return
    body = body_attr.g
    carried = max(len(node.input) - 2, 0)
    if len(node.input) >= 1 and node.input[0]:
        yield from _expect_elem(
            node, f"trip count M '{node.input[0]}'", types.get(node.input[0]), TensorProto.INT64
        )
    if len(node.input) >= 2 and node.input[1]:
        yield from _expect_elem(
            node, f"condition '{node.input[1]}'", types.get(node.input[1]), TensorProto.BOOL
        )
    if len(body.input) != 2 + carried:
        yield _problem(
            node,
            f"the body takes {len(body.input)} inputs but must take {2 + carried} "
            f"(iteration_num, condition and the {carried} loop-carried values)",
        )
        return
    if len(body.output) < 1 + carried:
        yield _problem(
            node,
            f"the body returns {len(body.output)} outputs but must return at least {1 + carried} "
            f"(condition and the {carried} loop-carried values)",
        )
        return
    scans = len(body.output) - 1 - carried
    if len(node.output) > carried + scans:
        yield _problem(
            node,
            f"the node has {len(node.output)} outputs but its body yields only "
            f"{carried} loop-carried values and {scans} scan outputs",
        )
    yield from _expect_elem(
        node,
        f"the body's iteration_num input '{body.input[0].name}'",
        _declared(body.input[0]),
        TensorProto.INT64,
    )
    yield from _expect_elem(
        node,
        f"the body's condition input '{body.input[1].name}'",
        _declared(body.input[1]),
        TensorProto.BOOL,
    )
    yield from _expect_elem(
        node,
        f"the body's condition output '{body.output[0].name}'",
        _declared(body.output[0]),
        TensorProto.BOOL,
    )


def _scan(node: NodeProto, opset: int) -> Iterator:
    body_attr, n_scan = _attr(node, "body"), _attr(node, "num_scan_inputs")
    if body_attr is None or n_scan is None:
        return
    body, scan_inputs = body_attr.g, int(n_scan.i)
    inputs = len(node.input) - (1 if opset == 8 else 0)
    state = inputs - scan_inputs
    if scan_inputs < 1 or state < 0:
        yield _problem(
            node, f"num_scan_inputs={scan_inputs} does not fit the node's {inputs} inputs"
        )
        return
    if len(body.input) != inputs:
        yield _problem(
            node,
            f"the body takes {len(body.input)} inputs but must take {inputs} "
            f"({state} state values and {scan_inputs} scan slices)",
        )
    if len(body.output) != len(node.output):
        yield _problem(
            node,
            f"the body returns {len(body.output)} outputs but the node has {len(node.output)} "
            f"(its {state} final states and one per scan output)",
        )
    elif len(body.output) < state:
        yield _problem(
            node, f"the body returns {len(body.output)} outputs, fewer than its {state} states"
        )


def _graph_types(graph: GraphProto, outer: dict[str, TypeProto]) -> dict[str, TypeProto]:
    types = dict(outer)
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.WhichOneof("value"):
            types[vi.name] = vi.type
    for t in graph.initializer:
        tp = TypeProto()
        tp.tensor_type.elem_type = t.data_type
        types[t.name] = tp
    return types


def _walk(graph: GraphProto, types: dict[str, TypeProto], opsets: dict[str, int]) -> Iterator:
    scope = _graph_types(graph, types)
    opset = opsets.get("", 0)
    for node in graph.node:
        if node.domain in ("", "ai.onnx"):
            if node.op_type == "If":
                yield from _if(node, scope)
            elif node.op_type == "Loop":
                yield from _loop(node, scope)
            elif node.op_type == "Scan":
                yield from _scan(node, opset)
        for a in node.attribute:
            subs = [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs)
            for sub in subs:
                yield from _walk(sub, scope, opsets)


def subgraph_problems(model: ModelProto) -> list:
    """Problems of every If/Loop/Scan node of the model (nested bodies included)."""
    from onnxpy.model.skeleton import infer_types

    if not any(a.type in _GRAPH_KINDS for n in model.graph.node for a in n.attribute):
        return []  # no bodies (every If/Loop/Scan has one): no shape inference needed

    try:
        inferred = infer_types(model).graph
    except Exception:  # noqa: BLE001 - without inference, only declared types are used
        inferred = model.graph
    types = _graph_types(inferred, {})
    opsets = {
        ("" if i.domain == "ai.onnx" else i.domain): int(i.version) for i in model.opset_import
    }
    return list(_walk(model.graph, types, opsets))
