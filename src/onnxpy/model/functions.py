"""Inline function bodies: model-local functions and operators the spec defines as functions.

A node calling a function is replaced by the function's nodes, with values renamed so they
cannot clash and attribute references (``ref_attr_name``) replaced by the caller's attributes
or the declared defaults. Inlined nodes keep the opsets their function imports, which can
differ from the model's.
"""

from __future__ import annotations

import itertools

import onnx
from onnx import AttributeProto, FunctionProto, GraphProto, NodeProto

__all__ = ["ScopedNode", "inline_function", "schema_function"]

_counter = itertools.count()


class ScopedNode:
    """A node together with the opsets its operator names resolve against."""

    __slots__ = ("node", "opsets")

    def __init__(self, node: NodeProto, opsets: dict[str, int]) -> None:
        self.node = node
        self.opsets = opsets


def _norm_domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def schema_function(node: NodeProto, opset: int, input_types: list) -> FunctionProto | None:
    """The spec's function body for ``node`` at ``opset``, if the operator defines one."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return None
    versions = [v for v in schema.function_opset_versions if v <= opset]
    if versions:
        fn = FunctionProto()
        fn.ParseFromString(schema.get_function_with_opset_version(max(versions)))
        return fn
    versions = [v for v in schema.context_dependent_function_opset_versions if v <= opset]
    if versions and all(t is not None for t in input_types):
        try:
            data = schema.get_context_dependent_function_with_opset_version(
                max(versions),
                node.SerializeToString(),
                [t.SerializeToString() for t in input_types],
            )
        except Exception:  # noqa: BLE001 - the builder refuses some contexts; no body then
            return None
        if data:
            fn = FunctionProto()
            fn.ParseFromString(data)
            return fn
    return None


def _rename_graph(graph: GraphProto, mapping: dict[str, str]) -> None:
    """Rename outer-scope references inside a subgraph (names it does not define itself)."""
    local = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    for n in graph.node:
        local.update(o for o in n.output if o)
    inner = {k: v for k, v in mapping.items() if k not in local}
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name in inner:
                n.input[i] = inner[name]
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                _rename_graph(a.g, inner)
            elif a.type == AttributeProto.GRAPHS:
                for g in a.graphs:
                    _rename_graph(g, inner)
    for o in graph.output:
        if o.name in inner:
            o.name = inner[o.name]


def inline_function(
    node: NodeProto,
    fn: FunctionProto,
    outer_opsets: dict[str, int],
    attr_defaults: dict[str, AttributeProto] | None = None,
) -> list[ScopedNode]:
    """The nodes that replace ``node``, a call of ``fn``."""
    tag = f"__{node.op_type}_{next(_counter)}__"
    mapping: dict[str, str] = {}
    for i, formal in enumerate(fn.input):
        mapping[formal] = node.input[i] if i < len(node.input) else ""
    for i, formal in enumerate(fn.output):
        # An output the caller leaves out ('' or missing) may still be read inside the body:
        # it gets a private name like any other internal value.
        given_name = node.output[i] if i < len(node.output) else ""
        mapping[formal] = given_name or tag + formal
    given = {a.name: a for a in node.attribute}
    defaults = dict(attr_defaults or {})
    for a in fn.attribute_proto:
        defaults.setdefault(a.name, a)

    opsets = dict(outer_opsets)
    for imp in fn.opset_import:
        opsets[_norm_domain(imp.domain)] = int(imp.version)

    out: list[ScopedNode] = []
    for body_node in fn.node:
        new = NodeProto()
        new.CopyFrom(body_node)
        for i, name in enumerate(new.input):
            if name:
                new.input[i] = mapping.get(name, tag + name)
        for i, name in enumerate(new.output):
            if name:
                new.output[i] = mapping.setdefault(name, tag + name)
        if new.name:
            new.name = tag + new.name
        attrs = []
        for a in new.attribute:
            if a.ref_attr_name:
                src = given.get(a.ref_attr_name) or defaults.get(a.ref_attr_name)
                if src is None:
                    continue
                b = AttributeProto()
                b.CopyFrom(src)
                b.name = a.name
                attrs.append(b)
            else:
                if a.type == AttributeProto.GRAPH:
                    _rename_graph(a.g, mapping)
                elif a.type == AttributeProto.GRAPHS:
                    for g in a.graphs:
                        _rename_graph(g, mapping)
                attrs.append(a)
        del new.attribute[:]
        new.attribute.extend(attrs)
        out.append(ScopedNode(new, opsets))
    return out
