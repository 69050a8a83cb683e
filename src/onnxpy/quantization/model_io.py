"""Reading and writing the quantizer's models, and the small graph-editing vocabulary its
writers share (fresh names, initializers, who produces and reads a value)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, TensorProto, numpy_helper

from onnxpy.errors import InvalidArgument, NoSuchFile
from onnxpy.model.graph_names import unused_name

__all__ = ["load", "save", "GraphEdit", "TWO_GB"]

TWO_GB = 2**31


def load(model_input: str | os.PathLike | ModelProto) -> ModelProto:
    """A copy of the model (path or ModelProto), external data loaded."""
    if isinstance(model_input, ModelProto):
        model = ModelProto()
        model.CopyFrom(model_input)
        return model
    path = Path(model_input)
    if not path.is_file():
        raise NoSuchFile(f"no model file at {path}")
    return onnx.load(str(path), load_external_data=True)


def save(
    model: ModelProto, path: str | os.PathLike, use_external_data_format: bool = False
) -> None:
    """Write ``model``; its tensors go to ``<name>.data`` beside it when asked or when the
    model would not fit a 2 GB protobuf."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    external = use_external_data_format or model.ByteSize() >= TWO_GB
    if external:
        location = path.name + ".data"
        if (path.parent / location).exists():
            (path.parent / location).unlink()
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=location,
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(path))


class GraphEdit:
    """Indexes over a model's main graph for a writer that appends nodes and initializers."""

    def __init__(self, model: ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.initializers = {t.name: t for t in self.graph.initializer}
        self._arrays: dict[str, np.ndarray] = {}
        self.names: set[str] = set(self.initializers)
        self.names.update(v.name for v in self.graph.input)
        for n in self.graph.node:
            self.names.update(n.input)
            self.names.update(n.output)
            if n.name:
                self.names.add(n.name)
        self.graph_inputs = {v.name for v in self.graph.input}
        self.graph_outputs = {v.name for v in self.graph.output}
        self.producer: dict[str, NodeProto] = {}
        self.consumers: dict[str, list[NodeProto]] = {}
        for n in self.graph.node:
            for o in n.output:
                self.producer[o] = n
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.constants: dict[str, TensorProto] = {
            n.output[0]: n.attribute[0].t
            for n in self.graph.node
            if n.op_type == "Constant"
            and n.domain in ("", "ai.onnx")
            and n.attribute
            and n.attribute[0].name == "value"
        }

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer (not an overridable input) or Constant output."""
        if name in self._arrays:
            return self._arrays[name]
        t = self.initializers.get(name) if name not in self.graph_inputs else None
        t = t if t is not None else self.constants.get(name)
        if t is None:
            return None
        self._arrays[name] = numpy_helper.to_array(t)
        return self._arrays[name]

    def fresh(self, base: str) -> str:
        return unused_name(base, self.names)

    def add_initializer(self, name: str, value: np.ndarray) -> str:
        """Add ``value`` as an initializer named ``name`` (made unique); returns the name."""
        name = self.fresh(name)
        t = numpy_helper.from_array(np.asarray(value), name)
        self.graph.initializer.append(t)
        self.initializers[name] = self.graph.initializer[-1]
        self._arrays[name] = np.asarray(value)
        return name

    def opset(self, domain: str = "") -> int:
        for o in self.model.opset_import:
            if o.domain == domain or (domain == "" and o.domain == "ai.onnx"):
                return int(o.version)
        return 0

    def use_domain(self, domain: str, version: int = 1) -> None:
        if not any(o.domain == domain for o in self.model.opset_import):
            self.model.opset_import.add(domain=domain, version=version)

    def drop_unused_initializers(self) -> None:
        used = {i for n in self.graph.node for i in n.input}
        used |= {o.name for o in self.graph.output}
        keep = [t for t in self.graph.initializer if t.name in used]
        if len(keep) != len(self.graph.initializer):
            del self.graph.initializer[:]
            self.graph.initializer.extend(keep)
        # Graph inputs that were initializers (IR < 4) and are gone.
        names = {t.name for t in keep}
        stale = [v for v in self.graph.input if v.name in self.initializers and v.name not in names]
        for v in stale:
            self.graph.input.remove(v)


def node_name(node: NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def ensure_names(model: ModelProto) -> None:
    """Give every unnamed node a name (nodes_to_exclude and the report address them)."""
    used = {n.name for n in model.graph.node if n.name}
    for i, n in enumerate(model.graph.node):
        if not n.name:
            base = f"{n.op_type}_{i}"
            name, k = base, 0
            while name in used:
                k += 1
                name = f"{base}_{k}"
            n.name = name
            used.add(name)


def check_names(model: ModelProto, names: Iterable[str], what: str) -> None:
    """Refuse node names the model does not have (a typo would silently quantize everything)."""
    known = {n.name for n in model.graph.node}
    unknown = sorted(set(names) - known)
    if unknown:
        raise InvalidArgument(f"{what}: no node named {', '.join(unknown[:5])} in the model")


def topological_sort(graph) -> None:
    """Reorder ``graph.node`` so every node follows the producers of what it reads (writers
    append nodes at the end)."""
    from onnx import NodeProto

    nodes = list(graph.node)
    produced = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    deps = []
    users: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        d = {produced[x] for x in n.input if x in produced and produced[x] != i}
        deps.append(len(d))
        for j in d:
            users[j].append(i)
    ready = [i for i, d in enumerate(deps) if d == 0]
    order = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for u in users[i]:
            deps[u] -= 1
            if deps[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):
        raise InvalidArgument("the quantized graph has a cycle")
    copies = [NodeProto() for _ in order]
    for c, i in zip(copies, order):
        c.CopyFrom(nodes[i])
    del graph.node[:]
    graph.node.extend(copies)


def ensure_opset(model: ModelProto, version: int) -> ModelProto:
    """The model with its default-domain opset at least ``version`` (onnx's converter)."""
    current = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if current >= version:
        return model
    from onnx import version_converter

    converted = version_converter.convert_version(model, version)
    return converted
