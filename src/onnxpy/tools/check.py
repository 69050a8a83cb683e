"""Is this model valid? Every problem found, each with the node it concerns.

Three sources of problems, each a function in :data:`CHECKS` yielding :class:`Problem` (add more
onnxpy validations there):

* ``checker``: onnx's checker in full mode; when the model fails, each node is also checked on
  its own so that every bad node is listed, not only the first;
* ``shapes``: strict shape and type inference, node by node, so one bad node does not hide the
  next, plus declared types contradicted by inference;
* ``onnxpy``: onnxpy's own load-time rules (every problem), then the refusal of the session it
  would create.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import onnx

from onnxpy.tools.graph import GraphIndex
from onnxpy.tools.io import load_model_proto

__all__ = ["Problem", "CheckReport", "check_model", "CHECKS"]


@dataclass
class Problem:
    """One thing wrong: which check found it, the node (or '' for the model), the message."""

    check: str
    node: str
    message: str
    op_type: str = ""


@dataclass
class CheckReport:
    path: str
    problems: list[Problem] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "checks": self.checks,
                "problems": [asdict(p) for p in self.problems]}  # fmt: skip

    def format(self) -> str:
        if self.ok:
            return f"{self.path}: valid ({', '.join(self.checks)} passed)"
        lines = [f"{self.path}: {len(self.problems)} problem(s)"]
        for p in self.problems:
            where = (
                f"node '{p.node}'" + (f" ({p.op_type})" if p.op_type else "") if p.node else "model"
            )
            lines.append(f"  [{p.check}] {where}: {p.message}")
        return "\n".join(lines)


_NODE_IN_MESSAGE = re.compile(r"node name: ([^)\s]*)\)|[Nn]ode \(([^)]*)\)|[Nn]ode '([^']*)'")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _node_named(index: GraphIndex, message: str) -> tuple[str, str]:
    """(label, op) of the node a message names, or ('', '')."""
    m = _NODE_IN_MESSAGE.search(message)
    if not m:
        return "", ""
    name = next(g for g in m.groups() if g is not None)
    for i, node in enumerate(index.graph.node):
        if node.name == name or index.label(i) == name:
            return index.label(i), node.op_type
    return name, ""


def _checker(model: onnx.ModelProto, index: GraphIndex, path: str) -> Iterator[Problem]:
    from onnxpy.model.loader import checkable

    try:
        # Relaxed where the checker is stricter than the IR (a shapeless output is valid).
        onnx.checker.check_model(checkable(model), full_check=True)
        return
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        whole = _first_line(e)
    ctx = onnx.checker.C.CheckerContext()
    ctx.ir_version = model.ir_version or onnx.IR_VERSION
    ctx.opset_imports = {i.domain: i.version for i in model.opset_import}
    found = False
    for i in index.order:
        node = model.graph.node[i]
        try:
            onnx.checker.check_node(node, ctx)
        except onnx.checker.ValidationError as e:
            found = True
            yield Problem("checker", index.label(i), _first_line(e), node.op_type)
    if not found:
        label, op = _node_named(index, whole)
        yield Problem("checker", label, whole, op)


def _shapes(model: onnx.ModelProto, index: GraphIndex, path: str) -> Iterator[Problem]:
    from onnxpy.model.skeleton import skeleton

    light = skeleton(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False)
    except Exception as e:  # noqa: BLE001
        label, op = _node_named(index, _first_line(e))
        yield Problem("shapes", label, _first_line(e), op)
        return
    g = inferred.graph
    types = {v.name: v.type for v in list(g.input) + list(g.value_info) + list(g.output)}
    consts = {t.name: t for t in light.graph.initializer}
    for name, t in consts.items():
        types.setdefault(name, onnx.helper.make_tensor_type_proto(t.data_type, list(t.dims)))
    opsets = {i.domain: i.version for i in model.opset_import}
    reported = set()
    for i in index.order:
        node = model.graph.node[i]
        domain = "" if node.domain == "ai.onnx" else node.domain
        try:
            schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
        except onnx.defs.SchemaError:
            continue  # no schema: the checker reports unknown ops
        if any(n and n not in types for n in node.input):
            continue  # an input whose type is unknown: nothing to check against
        inputs = {n: types[n] for n in node.input if n}
        try:
            onnx.shape_inference.infer_node_outputs(
                schema,
                node,
                inputs,
                {n: consts[n] for n in node.input if n in consts},
                opset_imports=list(model.opset_import),
                ir_version=model.ir_version or onnx.IR_VERSION,
            )
        except Exception as e:  # noqa: BLE001 - onnx raises InferenceError or RuntimeError
            reported.add(index.label(i))
            yield Problem("shapes", index.label(i), _first_line(e), node.op_type)
    try:
        onnx.shape_inference.infer_shapes(light, check_type=True, strict_mode=True)
    except Exception as e:  # noqa: BLE001
        message = _first_line(e)
        label, op = _node_named(index, message)
        if label not in reported:  # the same node's error, already listed on its own
            yield Problem("shapes", label, message, op)


def _onnxpy(model: onnx.ModelProto, index: GraphIndex, path: str) -> Iterator[Problem]:
    """onnxpy's load-time rules, every problem (model/validate.py); then, if they pass, the
    session onnxpy would create (kernels refuse what they cannot run)."""
    import onnxpy
    from onnxpy.model.validate import find_problems

    problems = find_problems(model, os.path.dirname(os.path.abspath(path)))
    for p in problems:
        message = f"{p.error.__name__}: {p}"
        label, op = _node_named(index, message)
        yield Problem("onnxpy", label, message, op)
    if problems:
        return
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        onnxpy.InferenceSession(path, so)
    except onnxpy.OnnxpyError as e:
        message = f"{type(e).__name__}: {_first_line(e)}"
        label, op = _node_named(index, message)
        yield Problem("onnxpy", label, message, op)


Check = Callable[[onnx.ModelProto, GraphIndex, str], Iterator[Problem]]
CHECKS: dict[str, Check] = {"checker": _checker, "shapes": _shapes, "onnxpy": _onnxpy}


def check_model(path: str | os.PathLike) -> CheckReport:
    """Run every check of :data:`CHECKS` on the model at ``path``; problems de-duplicated."""
    path = os.fspath(path)
    model = load_model_proto(path, weights=False)
    index = GraphIndex.of(model)
    report = CheckReport(path, checks=list(CHECKS))
    seen = set()
    for check in CHECKS.values():
        for p in check(model, index, path):
            key = (p.node, p.message)
            if key not in seen:
                seen.add(key)
                report.problems.append(p)
    return report
