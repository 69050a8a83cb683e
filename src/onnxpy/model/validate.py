"""onnxpy's own load-time rules: what makes a model impossible to run correctly.

``onnx.checker`` catches most structural errors (SSA, undefined names, schema violations) but
lets through models that a runtime can only run on a guess: an opset newer than any known,
inputs of element type UNDEFINED, an output declared int64 that a node makes float, If
branches that disagree, Loop and Scan bodies whose signature does not fit their node, external
data that points past its file. onnxruntime accepts several of these; onnxpy refuses them at
session creation, naming the node, value or field and what was expected.

Missing *optional* facts (an output's shape, a value_info's type) are never a reason to refuse.
:func:`find_problems` lists every problem (for ``onnxpy check``); :func:`validate_model` raises
the first one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto, TypeProto

from onnxpy import errors
from onnxpy.model.subgraphs import subgraph_problems

__all__ = [
    "Problem",
    "find_problems",
    "header_problems",
    "graph_problems",
    "validate_model",
    "raise_first",
    "known_opsets",
]

_ELEM_TYPES = frozenset(v for v in TensorProto.DataType.values() if v != TensorProto.UNDEFINED)
_MAP_KEY_TYPES = frozenset(
    {
        TensorProto.STRING,
        TensorProto.INT8,
        TensorProto.INT16,
        TensorProto.INT32,
        TensorProto.INT64,
        TensorProto.UINT8,
        TensorProto.UINT16,
        TensorProto.UINT32,
        TensorProto.UINT64,
    }
)


@dataclass(frozen=True)
class Problem:
    """One reason a model cannot run correctly: the error class, where, and what is wrong."""

    error: type[errors.OnnxpyError]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def exception(self) -> errors.OnnxpyError:
        return self.error(str(self))


def known_opsets() -> dict[str, int]:
    """The newest opset version onnxpy knows per standard domain ('' is ai.onnx)."""
    ranges = onnx.defs.C.schema_version_map()
    return {domain: hi for domain, (_, hi) in ranges.items()}


def _model_fields(model: ModelProto) -> Iterator[Problem]:
    ir = int(model.ir_version)
    where = "ModelProto.ir_version"
    if ir == 0:
        yield Problem(errors.InvalidGraph, where, "missing: every model must state its IR version")
    elif ir < 0:
        yield Problem(errors.InvalidGraph, where, f"{ir} is not a valid IR version (must be > 0)")
    elif ir > onnx.IR_VERSION:
        yield Problem(
            errors.NotImplemented,
            where,
            f"{ir} is newer than the newest IR version onnxpy knows ({onnx.IR_VERSION})",
        )
    known = known_opsets()
    seen: dict[str, int] = {}
    for imp in model.opset_import:
        domain = "" if imp.domain in ("", "ai.onnx") else imp.domain
        label = domain or "ai.onnx"
        where = f"opset_import of domain '{label}'"
        # skl2onnx repeats an import with the same version: harmless, so accepted.
        if seen.get(domain, imp.version) != imp.version:
            yield Problem(
                errors.InvalidGraph,
                where,
                f"imported twice with different versions ({seen[domain]} and {imp.version})",
            )
        seen[domain] = imp.version
        if imp.version < 1:
            yield Problem(
                errors.InvalidGraph, where, f"version {imp.version} is not valid (must be >= 1)"
            )
        elif domain in known and imp.version > known[domain]:
            yield Problem(
                errors.NotImplemented,
                where,
                f"version {imp.version} is newer than the newest onnxpy knows ({known[domain]})",
            )


def _type_problem(tp: TypeProto, path: str) -> str | None:
    """What is wrong with a declared type (None if nothing)."""
    which = tp.WhichOneof("value")
    if which in ("tensor_type", "sparse_tensor_type"):
        elem = getattr(tp, which).elem_type
        if elem == TensorProto.UNDEFINED:
            return f"{path} has element type 0 (UNDEFINED); a concrete element type is required"
        if elem not in _ELEM_TYPES:
            return f"{path} has element type {elem}, which the ONNX IR does not define"
        return None
    if which == "sequence_type":
        return _type_problem(tp.sequence_type.elem_type, f"{path} (sequence element)")
    if which == "optional_type":
        return _type_problem(tp.optional_type.elem_type, f"{path} (optional element)")
    if which == "map_type":
        key = tp.map_type.key_type
        if key not in _MAP_KEY_TYPES:
            return f"{path} is a map whose key type {key} is not an integer or string type"
        return _type_problem(tp.map_type.value_type, f"{path} (map value)")
    return None


def _io_types(graph: GraphProto) -> Iterator[Problem]:
    for kind, values in (("input", graph.input), ("output", graph.output)):
        for vi in values:
            where = f"Graph {kind} '{vi.name}'"
            if not vi.type.WhichOneof("value"):
                yield Problem(
                    errors.InvalidGraph,
                    where,
                    "has no type; main graph inputs and outputs must declare one",
                )
                continue
            msg = _type_problem(vi.type, "its type")
            if msg:
                yield Problem(errors.InvalidGraph, where, msg)


def _kind_and_elem(tp: TypeProto) -> tuple[str | None, int | None]:
    which = tp.WhichOneof("value")
    if which in ("tensor_type", "sparse_tensor_type"):
        return which, getattr(tp, which).elem_type or None
    if which == "sequence_type":
        inner = _kind_and_elem(tp.sequence_type.elem_type)
        return f"sequence of {inner[0]}", inner[1]
    if which == "optional_type":
        inner = _kind_and_elem(tp.optional_type.elem_type)
        return f"optional of {inner[0]}", inner[1]
    return which, None


def _type_name(tp: TypeProto) -> str:
    from onnxpy.types import type_string

    return type_string(tp)


def _declared_vs_produced(model: ModelProto) -> Iterator[Problem]:
    """Declared element types (outputs, value_info) that the producing node contradicts."""
    from onnxpy.model.skeleton import skeleton

    g = model.graph
    declared = {
        vi.name: vi.type
        for vi in list(g.value_info) + list(g.output)
        if vi.type.WhichOneof("value")
    }
    if not declared:
        return
    sk = skeleton(model)
    bare = ModelProto()
    bare.CopyFrom(sk)
    del bare.graph.value_info[:]
    inputs = {i.name for i in bare.graph.input} | {t.name for t in bare.graph.initializer}
    for vi in bare.graph.output:
        if vi.name not in inputs:
            vi.ClearField("type")
    try:
        inferred = onnx.shape_inference.infer_shapes(bare, check_type=False, strict_mode=False)
    except Exception:  # noqa: BLE001 - no facts, no contradiction to report
        return
    produced = {
        vi.name: vi.type
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
        if vi.type.WhichOneof("value")
    }
    producer = {o: n for n in g.node for o in n.output if o}
    for name, tp in declared.items():
        got = produced.get(name)
        node = producer.get(name)
        if got is None or node is None:
            continue
        (dk, de), (gk, ge) = _kind_and_elem(tp), _kind_and_elem(got)
        if dk is None or gk is None or de is None or ge is None:
            continue
        if dk != gk or de != ge:
            yield Problem(
                errors.InvalidGraph,
                f"Value '{name}'",
                f"declared as {_type_name(tp)} but node '{node.name}' ({node.op_type}) produces "
                f"{_type_name(got)}",
            )


def _external_data(model: ModelProto, base_dir: str | None) -> Iterator[Problem]:
    from onnxpy.model.tensors import external_data_path
    from onnxpy.model.weights import is_inline

    for t in _all_tensors(model):
        if t.data_location != TensorProto.EXTERNAL or is_inline(t):
            continue
        if base_dir is None:
            continue  # reported, with its reason, when the tensor is decoded
        try:
            external_data_path(t, base_dir)
        except errors.NoSuchFile:
            continue  # SessionOptions may supply it (add_external_initializers); else decoding says
        except errors.OnnxpyError as e:
            yield Problem(type(e), f"Initializer '{t.name}'", str(e))


def _all_tensors(model: ModelProto) -> Iterator[TensorProto]:
    yield from model.graph.initializer
    stack = [model.graph]
    while stack:
        g = stack.pop()
        for n in g.node:
            for a in n.attribute:
                if a.type == AttributeProto.TENSOR:
                    yield a.t
                elif a.type == AttributeProto.GRAPH:
                    yield from a.g.initializer
                    stack.append(a.g)
                elif a.type == AttributeProto.GRAPHS:
                    for sub in a.graphs:
                        yield from sub.initializer
                        stack.append(sub)


def _graphs(graph: GraphProto) -> Iterator[GraphProto]:
    yield graph
    for n in graph.node:
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                yield from _graphs(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _graphs(g)


def _text(model: ModelProto) -> Iterator[Problem]:
    """Names and operator ids must be text: protobuf hands back bytes for invalid UTF-8."""
    for imp in model.opset_import:
        if not isinstance(imp.domain, str):
            yield Problem(errors.InvalidGraph, "opset_import", "a domain is not valid UTF-8 text")
    for g in _graphs(model.graph):
        for vi in list(g.input) + list(g.output) + list(g.value_info) + list(g.initializer):
            if not isinstance(vi.name, str):
                yield Problem(
                    errors.InvalidGraph,
                    f"Graph '{g.name}'",
                    f"the value name {vi.name!r} is not valid UTF-8 text",
                )
        for i, n in enumerate(g.node):
            fields = [
                n.op_type,
                n.domain,
                n.name,
                *n.input,
                *n.output,
                *(a.name for a in n.attribute),
            ]
            bad = [f for f in fields if not isinstance(f, str)]
            if bad:
                yield Problem(
                    errors.InvalidGraph,
                    f"Node {i} of graph '{g.name}'",
                    f"{bad[0]!r} (an operator, domain, name or attribute) is not valid UTF-8 text",
                )


def header_problems(model: ModelProto) -> list[Problem]:
    """IR version, opset imports, text fields and the main graph's input/output types: the
    facts every other rule (and ``onnx.checker``) relies on."""
    problems = list(_model_fields(model)) + list(_text(model))
    return problems or list(_io_types(model.graph))


def graph_problems(model: ModelProto, base_dir: str | None = None) -> list[Problem]:
    """Control-flow signatures, declared types that nodes contradict, external data."""
    problems = subgraph_problems(model)
    problems += _declared_vs_produced(model)
    problems += _external_data(model, base_dir)
    return problems


def find_problems(model: ModelProto, base_dir: str | None = None) -> list[Problem]:
    """Every reason (found by onnxpy's rules) that ``model`` cannot run correctly."""
    return header_problems(model) or graph_problems(model, base_dir)


def raise_first(problems: list[Problem]) -> None:
    """Raise the first of ``problems`` as its onnxpy error (nothing if the list is empty)."""
    if problems:
        raise problems[0].exception()


def validate_model(model: ModelProto, base_dir: str | None = None) -> None:
    """Raise the first problem :func:`find_problems` reports (an onnxpy error)."""
    raise_first(find_problems(model, base_dir))
