"""The mutable view of a model that passes share: indexes, constants, types and edits.

Passes edit the main graph in place through this object so the producer/consumer indexes stay
right within a sweep; removed nodes are only marked and disappear at :meth:`commit`. Every
edit keeps a value name bound to the same value (renames replace a name by an equal one), so
type facts stay valid for a whole pipeline iteration and are recomputed only between them.
Subgraph bodies (If/Loop/Scan) are never edited: names they read are *pinned*.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, helper

from onnxpy.model.graph_names import outer_reads, stable_topological_order, unused_name
from onnxpy.model.tensors import tensor_nbytes, tensor_to_array
from onnxpy.model.weights import is_inline
from onnxpy.passes.shapes import infer_types, tensor_type_of

__all__ = ["GraphContext", "FOLD_LIMIT_BYTES", "EXTERNAL_LIMIT_BYTES"]

# Largest constant (input or result) a pass materializes from data held in the proto.
FOLD_LIMIT_BYTES = 16 << 20
# Largest tensor a pass reads from external (memory-mapped) data: bigger ones stay on disk.
EXTERNAL_LIMIT_BYTES = 1 << 20


_GRAPH, _GRAPHS = AttributeProto.GRAPH, AttributeProto.GRAPHS


def _graphs(a: AttributeProto) -> list[GraphProto]:
    if a.type == AttributeProto.GRAPH:
        return [a.g]
    if a.type == AttributeProto.GRAPHS:
        return list(a.graphs)
    return []


def has_subgraph(node: NodeProto) -> bool:
    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute)


def _all_names(graph: GraphProto, out: set[str]) -> None:
    out.update(v.name for v in graph.input)
    out.update(v.name for v in graph.output)
    out.update(v.name for v in graph.value_info)
    out.update(t.name for t in graph.initializer)
    for n in graph.node:
        out.update(n.input)
        out.update(n.output)
        for a in n.attribute:
            for g in _graphs(a):
                _all_names(g, out)


def constant_node_tensor(node: NodeProto) -> TensorProto | None:
    """The value of a Constant node as a TensorProto (None: sparse or unknown form)."""
    if len(node.attribute) != 1:
        return None
    a = node.attribute[0]
    name = node.output[0]
    if a.name == "value":
        t = TensorProto()
        t.CopyFrom(a.t)
        t.name = name
        return t
    if a.name == "value_float":
        return helper.make_tensor(name, TensorProto.FLOAT, [], [a.f])
    if a.name == "value_floats":
        return helper.make_tensor(name, TensorProto.FLOAT, [len(a.floats)], list(a.floats))
    if a.name == "value_int":
        return helper.make_tensor(name, TensorProto.INT64, [], [a.i])
    if a.name == "value_ints":
        return helper.make_tensor(name, TensorProto.INT64, [len(a.ints)], list(a.ints))
    return None  # sparse_value, strings: left as they are


class GraphContext:
    """Indexes over ``model.graph`` plus the helpers passes need to read and edit it."""

    def __init__(self, model: ModelProto, base_dir: str | None = None) -> None:
        self.model = model
        self.graph = model.graph
        self.base_dir = base_dir
        self.opsets = {
            ("" if o.domain == "ai.onnx" else o.domain): int(o.version) for o in model.opset_import
        }
        self.local_functions = {(f.domain, f.name) for f in model.functions}
        self._names: set[str] = set()
        _all_names(self.graph, self._names)
        self._values: dict[str, np.ndarray | None] = {}
        self._constant_nodes: dict[str, TensorProto | None] = {}
        self._pending_sort = False
        self._types: dict[str, TypeProto] | None = None
        self.refresh()

    # -- indexes -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild every index from the graph (after :meth:`commit` or outside edits)."""
        g = self.graph
        self.removed: set[int] = set()
        self.graph_inputs = {v.name for v in g.input}
        self.graph_outputs = {v.name for v in g.output}
        self.initializers = {t.name: t for t in g.initializer}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        self.implicit: set[str] = set()
        for i, n in enumerate(g.node):
            self._index(i, n)

    def _index(self, i: int, n: NodeProto) -> None:
        consumers = self.consumers
        for name in n.input:
            if name:
                if name in consumers:
                    consumers[name].append(i)
                else:
                    consumers[name] = [i]
        for name in n.output:
            if name:
                self.producer[name] = i
        for a in n.attribute:
            if a.type == _GRAPH or a.type == _GRAPHS:
                for sub in _graphs(a):
                    self.implicit |= outer_reads(sub)

    def _unindex(self, i: int, n: NodeProto) -> None:
        for name in n.input:
            if name and i in self.consumers.get(name, ()):
                self.consumers[name].remove(i)
        for name in n.output:
            if name and self.producer.get(name) == i:
                del self.producer[name]

    def nodes(self) -> Iterator[tuple[int, NodeProto]]:
        """(index, node) for every node not removed in this sweep, in graph order."""
        # Enumerating the repeated field beats indexing it per node (GPT-2's 3,300 nodes,
        # ~20 passes, up to 8 sweeps: 0.19 s of its session creation went to this loop).
        # Like the index loop it replaces, nodes appended during the sweep are not visited
        # and nodes removed during it are skipped.
        removed, nodes = self.removed, self.graph.node
        return ((i, n) for i, n in zip(range(len(nodes)), nodes) if i not in removed)

    def producer_of(self, name: str) -> tuple[int, NodeProto] | None:
        i = self.producer.get(name)
        return None if i is None else (i, self.graph.node[i])

    def uses(self, name: str) -> list[int]:
        """Indexes of live nodes reading ``name`` (once per reading node)."""
        return sorted(set(self.consumers.get(name, ())))

    def is_pinned(self, name: str) -> bool:
        """A graph output or a name read by a subgraph: it may not be renamed away."""
        return name in self.graph_outputs or name in self.implicit

    def single_use(self, name: str) -> int | None:
        """The only node reading ``name`` (and reading it once), if the name is not pinned."""
        readers = self.consumers.get(name, [])
        return readers[0] if len(readers) == 1 and not self.is_pinned(name) else None

    # -- edits -------------------------------------------------------------------------------
    def remove(self, i: int) -> None:
        self._unindex(i, self.graph.node[i])
        self.removed.add(i)

    def replace_node(self, i: int, new: NodeProto) -> None:
        """Put ``new`` at position ``i`` (its inputs must be defined before ``i``)."""
        self._unindex(i, self.graph.node[i])
        self.graph.node[i].CopyFrom(new)
        self._index(i, self.graph.node[i])
        self._names.update(new.input)
        self._names.update(new.output)

    def fuse(self, removed: Iterable[int], at: int, new: NodeProto) -> None:
        """Replace a matched pattern: drop nodes ``removed`` and put ``new`` at ``at`` (the
        position of the pattern's last node, so every input of ``new`` is defined before)."""
        for j in removed:
            self.remove(j)
        self.replace_node(at, new)

    def _redirect_readers(self, old: str, new: str) -> None:
        for i in self.uses(old):
            node = self.graph.node[i]
            for k, name in enumerate(node.input):
                if name == old:
                    node.input[k] = new
                    self.consumers.setdefault(new, []).append(i)
        self.consumers.pop(old, None)

    def replace_uses(self, old: str, new: str) -> bool:
        """Make every reader of ``old`` read ``new`` (refused when ``old`` is pinned)."""
        if self.is_pinned(old):
            return False
        self._redirect_readers(old, new)
        return True

    def rename_output(self, i: int, old: str, new: str) -> None:
        """Node ``i`` now writes ``new`` instead of ``old``; readers of ``old`` follow."""
        node = self.graph.node[i]
        for k, name in enumerate(node.output):
            if name == old:
                node.output[k] = new
        self.producer.pop(old, None)
        self.producer[new] = i
        self._redirect_readers(old, new)

    def fresh_name(self, base: str) -> str:
        """A value or node name used nowhere in the model."""
        return unused_name(base, self._names)

    def add_initializer(self, tensor: TensorProto) -> None:
        """Add a constant value (named ``tensor.name``) available to every node."""
        if self.model.ir_version < 4:
            # Before IR 4 an initializer is also a graph input: use a Constant node instead.
            self.append_node(helper.make_node("Constant", [], [tensor.name], value=tensor))
        else:
            self.graph.initializer.add().CopyFrom(tensor)
            self.initializers[tensor.name] = self.graph.initializer[-1]
        self._names.add(tensor.name)

    def append_node(self, node: NodeProto) -> int:
        """Add ``node`` at the end; :meth:`commit` moves it to a topologically valid place."""
        added = self.graph.node.add()
        added.CopyFrom(node)
        i = len(self.graph.node) - 1
        self._index(i, added)
        self._names.update(node.input)
        self._names.update(node.output)
        self._pending_sort = True
        return i

    def commit(self) -> None:
        """Drop removed nodes, restore topological order and rebuild the indexes."""
        g = self.graph
        kept = [i for i in range(len(g.node)) if i not in self.removed]
        order = stable_topological_order(g, kept) if self._pending_sort else None
        if order is not None and order != kept:
            copies = [NodeProto() for _ in order]
            for c, i in zip(copies, order):
                c.CopyFrom(g.node[i])
            del g.node[:]
            g.node.extend(copies)
        else:
            for i in sorted(self.removed, reverse=True):
                del g.node[i]
        self._pending_sort = False
        self.refresh()

    # -- constants ---------------------------------------------------------------------------
    def constant_tensor(self, name: str) -> TensorProto | None:
        """The TensorProto holding ``name`` if it is a fixed value (not an overridable input)."""
        if not name or name in self.graph_inputs:
            return None
        t = self.initializers.get(name)
        if t is not None:
            return t
        p = self.producer_of(name)
        if p is None or p[1].op_type != "Constant" or p[1].domain not in ("", "ai.onnx"):
            return None
        if name not in self._constant_nodes:
            self._constant_nodes[name] = constant_node_tensor(p[1])
        return self._constant_nodes[name]

    def is_constant(self, name: str) -> bool:
        return self.constant_tensor(name) is not None

    def constant_value(self, name: str, limit: int = FOLD_LIMIT_BYTES) -> np.ndarray | None:
        """The value of a constant, or None when not constant, too large or unreadable."""
        t = self.constant_tensor(name)
        if t is None:
            return None
        # Weights onnxpy holds in memory (inline) are as cheap to read as raw_data.
        external = t.data_location == TensorProto.EXTERNAL and not is_inline(t)
        if tensor_nbytes(t) > (min(limit, EXTERNAL_LIMIT_BYTES) if external else limit):
            return None
        if name not in self._values:
            try:
                self._values[name] = tensor_to_array(t, self.base_dir)
            except Exception:  # noqa: BLE001 - an unreadable constant is just not folded
                self._values[name] = None
        return self._values[name]

    # -- types -------------------------------------------------------------------------------
    def type_of(self, name: str) -> TypeProto | None:
        t = self.constant_tensor(name)
        if t is not None:
            return tensor_type_of(t)
        if self._types is None:
            self._types = infer_types(self.model)
        return self._types.get(name)

    def invalidate_types(self) -> None:
        self._types = None

    def known_types(self) -> dict[str, TypeProto] | None:
        """The types inferred since the last invalidation (None if none were asked for)."""
        return self._types

    def opset(self, node: NodeProto) -> int:
        return self.opsets.get("" if node.domain == "ai.onnx" else node.domain, 0)

    def use_domain(self, domain: str, version: int = 1) -> None:
        """Import ``domain`` (e.g. com.microsoft for fused kernels) so new nodes may use it."""
        if domain in self.opsets:
            return
        self.model.opset_import.add(domain=domain, version=version)
        self.opsets[domain] = version

    def is_standard(self, node: NodeProto) -> bool:
        """A default-domain operator (not a model-local function call)."""
        return node.domain in ("", "ai.onnx") and (node.domain, node.op_type) not in (
            self.local_functions
        )
