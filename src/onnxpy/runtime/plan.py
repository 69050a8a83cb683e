"""Compile a graph once into a flat plan: integer slots, resolved kernels, lifetimes.

A run is then a tight loop over :class:`Step` objects (see ``executor.py``) with no name lookup,
schema read or attribute parsing. Subgraphs (If/Loop/Scan bodies) are compiled to plans of their
own; the names they read from enclosing scopes become extra inputs of the node that owns them,
so lifetimes in the outer plan stay right.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, TypeProto

from onnxpy import errors
from onnxpy.errors import InvalidGraph
from onnxpy.kernels.registry import Kernel, NodeInfo, lookup
from onnxpy.model.functions import ScopedNode, inline_function, schema_function
from onnxpy.model.graph_names import outer_reads
from onnxpy.model.tensors import tensor_to_array
from onnxpy.runtime.attributes import decode_attribute
from onnxpy.runtime.executor import compile_steps, current_stop, execute
from onnxpy.runtime.inplace import in_place_inputs

# Plans of at most this many steps are compiled before their first run (under ~10 ms).
COMPILE_AT_ONCE = 200

__all__ = ["Step", "Plan", "PlanBuilder", "BoundGraph"]

NONE_SLOT = 0  # always holds None: omitted optional inputs read from it


# Step, Plan and _Subgraph are plain classes: as dataclasses they cost ~3 ms of every
# ``import onnxpy`` (the generated methods are compiled at class creation).
class Step:
    """One node of a plan: its kernel and the slots it reads, writes and frees."""

    __slots__ = ("fn", "inputs", "outputs", "free", "name", "op_type", "domain")

    def __init__(
        self,
        fn: Callable[..., Any],
        inputs: tuple[int, ...],
        outputs: tuple[tuple[int, int], ...],
        free: tuple[int, ...],
        name: str,
        op_type: str,
        domain: str,
    ) -> None:
        self.fn = fn
        self.inputs = inputs
        # (position in the kernel's result, slot) for each output the graph uses.
        self.outputs = outputs
        self.free = free
        self.name = name
        self.op_type = op_type
        self.domain = domain

    def __repr__(self) -> str:
        return f"Step({self.op_type} '{self.name}', inputs={self.inputs}, outputs={self.outputs})"


class Plan:
    """An executable graph: fill input slots, run steps, read output slots."""

    def __init__(
        self,
        steps: list[Step],
        template: list[Any],
        input_slots: list[int],
        output_slots: list[int],
        input_names: list[str],
        output_names: list[str],
        required_inputs: list[str] | None = None,
        slot_names: list[str] | None = None,
        output_types: list[TypeProto | None] | None = None,
        output_fresh: list[bool] | None = None,
    ) -> None:
        self.steps = steps
        self.template = template
        self.input_slots = input_slots
        self.output_slots = output_slots
        self.input_names = input_names
        self.output_names = output_names
        # graph input names that have no initializer (must be fed)
        self.required_inputs = [] if required_inputs is None else required_inputs
        self.slot_names = [] if slot_names is None else slot_names
        # Declared types of the outputs where known (zero-trip Loop/Scan need them).
        self.output_types = [] if output_types is None else output_types
        # Per output: made by a kernel that returns new arrays aliasing nothing (no copy
        # needed before handing it to a caller). False for constants, feeds and views.
        self.output_fresh = [] if output_fresh is None else output_fresh
        self.slot_of_input: dict[str, int] = dict(zip(self.input_names, self.input_slots))
        self._runner: Callable[[list[Any]], None] | None = None

    @property
    def runner(self) -> Callable[[list[Any]], None]:
        """The steps compiled into one function of the slot list (built on first use).

        Compiling costs about 50 us a step (CPython's compiler: GPT-2's 1,250 steps took
        52 ms, half its first run), and saves about 1 us a step on every run after. So a
        plan of more than ``COMPILE_AT_ONCE`` steps runs its first time through the generic
        loop and is compiled when it runs again: a model run once does not pay for it.
        """
        if self._runner is None:
            if len(self.steps) <= COMPILE_AT_ONCE:
                self._runner = compile_steps(self.steps)
            else:
                self._runner = self._first_run
        return self._runner

    def _first_run(self, values: list[Any]) -> None:
        self._runner = self._compile_and_run
        execute(self.steps, values)

    def _compile_and_run(self, values: list[Any]) -> None:
        self._runner = compile_steps(self.steps)
        self._runner(values)

    def run_values(self, inputs: Sequence[Any]) -> list[Any]:
        """Run with positional input values (in ``input_slots`` order); no feed checks."""
        values = self.template.copy()
        for slot, v in zip(self.input_slots, inputs):
            values[slot] = v
        stop = current_stop()
        if stop is None:
            self.runner(values)
        else:  # inside a run given RunOptions: check terminate between the body's nodes
            execute(self.steps, values, stop)
        return [values[s] for s in self.output_slots]


class BoundGraph:
    """A compiled subgraph with its outer-scope values bound: ``body(*inputs) -> outputs``."""

    __slots__ = ("_plan", "_captured", "num_inputs", "num_outputs")

    def __init__(self, plan: Plan, captured: Sequence[Any], num_inputs: int) -> None:
        self._plan = plan
        self._captured = list(captured)
        self.num_inputs = num_inputs
        self.num_outputs = len(plan.output_slots)

    @property
    def output_types(self) -> list[TypeProto | None]:
        return self._plan.output_types

    def __call__(self, *inputs: Any) -> list[Any]:
        return self._plan.run_values(list(inputs) + self._captured)


class _Subgraph:
    __slots__ = ("plan", "free", "num_inputs")

    def __init__(self, plan: Plan, free: list[str], num_inputs: int) -> None:
        self.plan = plan
        self.free = free  # outer names it reads, appended after its formal inputs
        self.num_inputs = num_inputs


class PlanBuilder:
    """Turns a GraphProto (and its subgraphs) into plans for one model."""

    def __init__(self, opsets: dict[str, int], base_dir: str | None, functions: Iterable[Any] = ()):
        self.opsets = opsets
        self.base_dir = base_dir
        self.local_functions = {(f.domain, f.name): f for f in functions}

    # -- node expansion ----------------------------------------------------------------------
    def _expand(
        self, scoped: ScopedNode, types: dict[str, TypeProto], depth: int = 0
    ) -> list[tuple[ScopedNode, Kernel]]:
        node, opsets = scoped.node, scoped.opsets
        domain = "" if node.domain == "ai.onnx" else node.domain
        where = f"Node '{node.name}' (op {domain or 'ai.onnx'}::{node.op_type})"
        if depth > 64:
            raise InvalidGraph(f"{where}: function expansion is recursive")
        local = self.local_functions.get((node.domain, node.op_type))
        if local is not None:
            return self._expand_all(inline_function(node, local, opsets), types, depth + 1)
        if domain not in opsets:
            raise InvalidGraph(f"{where}: the model imports no opset for domain '{domain}'")
        opset = opsets[domain]
        kernel = lookup(domain, node.op_type, opset)
        if kernel is not None:
            return [(scoped, kernel)]
        in_types = [types.get(n) if n else None for n in node.input]
        body = schema_function(node, opset, in_types)
        if body is not None:
            try:
                schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
                defaults = {
                    name: a.default_value
                    for name, a in schema.attributes.items()
                    if a.default_value.type != AttributeProto.UNDEFINED
                }
            except onnx.defs.SchemaError:
                defaults = {}
            return self._expand_all(inline_function(node, body, opsets, defaults), types, depth + 1)
        raise errors.NotImplemented(
            f"{where}: no kernel for this operator at opset {opset} of domain "
            f"'{domain or 'ai.onnx'}'"
        )

    def _expand_all(
        self, nodes: Iterable[ScopedNode], types: dict[str, TypeProto], depth: int
    ) -> list[tuple[ScopedNode, Kernel]]:
        out: list[tuple[ScopedNode, Kernel]] = []
        for sn in nodes:
            expanded = self._expand(sn, types, depth)
            out.extend(expanded)
            if len(expanded) > 1 or expanded[0][0] is not sn:
                continue
            self._infer_types(sn, types)
        return out

    @staticmethod
    def _infer_types(sn: ScopedNode, types: dict[str, TypeProto]) -> None:
        """Propagate output types through a node (needed by context-dependent functions)."""
        node = sn.node
        if all(o in types for o in node.output if o):
            return
        try:
            schema = onnx.defs.get_schema(node.op_type, sn.opsets.get(node.domain, 1), node.domain)
            known = {n: types[n] for n in node.input if n and n in types}
            opset_imports = [onnx.helper.make_opsetid(d, v) for d, v in sn.opsets.items()]
            inferred = onnx.shape_inference.infer_node_outputs(
                schema, node, known, opset_imports=opset_imports
            )
        except Exception:  # noqa: BLE001 - inference is a best effort here
            return
        for name, tp in inferred.items():
            types.setdefault(name, tp)

    # -- compilation -------------------------------------------------------------------------
    def build(
        self,
        graph: GraphProto,
        outputs: Sequence[str] | None = None,
        extra_inputs: Sequence[str] = (),
        opsets: dict[str, int] | None = None,
        type_hints: dict[str, TypeProto] | None = None,
    ) -> Plan:
        """Compile ``graph`` computing ``outputs`` (default: the graph's outputs).

        ``extra_inputs`` are outer-scope names a subgraph reads; they follow its formal inputs.
        Any value name of the graph may be requested as an output.
        """
        opsets = opsets or self.opsets
        types: dict[str, TypeProto] = dict(type_hints or {})
        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            if vi.type.WhichOneof("value"):
                types[vi.name] = vi.type

        expanded = self._expand_all((ScopedNode(n, opsets) for n in graph.node), types, 0)

        names: list[str] = ["<none>"]
        slot_of: dict[str, int] = {}

        def slot(name: str) -> int:
            if not name:
                return NONE_SLOT
            s = slot_of.get(name)
            if s is None:
                s = slot_of[name] = len(names)
                names.append(name)
            return s

        template_values: dict[int, Any] = {}
        formal_inputs = [i.name for i in graph.input]
        for name in list(formal_inputs) + list(extra_inputs):
            slot(name)
        initializer_names = set()
        for init in graph.initializer:
            template_values[slot(init.name)] = tensor_to_array(init, self.base_dir)
            initializer_names.add(init.name)
        for sp in graph.sparse_initializer:
            from onnxpy.runtime.attributes import sparse_to_dense

            name = sp.values.name
            template_values[slot(name)] = sparse_to_dense(sp)
            initializer_names.add(name)

        # Producers, for pruning and ordering.
        producer: dict[str, int] = {}
        for idx, (sn, _) in enumerate(expanded):
            for o in sn.node.output:
                if o:
                    if o in producer or o in initializer_names or o in formal_inputs:
                        raise InvalidGraph(f"Value '{o}' is defined more than once in the graph")
                    producer[o] = idx

        # Free variables of subgraphs, per node.
        node_free: list[list[str]] = []
        for sn, _ in expanded:
            free: list[str] = []
            for a in sn.node.attribute:
                graphs = [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs)
                for g in graphs:
                    for x in sorted(outer_reads(g)):
                        if x not in free:
                            free.append(x)
            node_free.append(free)

        # An initializer that is also a graph input is a default the caller may override: its
        # value is only known at run time, so no kernel may prepare it as a constant.
        overridable = initializer_names & set(formal_inputs)
        known = set(formal_inputs) | set(extra_inputs) | initializer_names
        wanted = list(outputs) if outputs is not None else [o.name for o in graph.output]
        for w in wanted:
            if w not in producer and w not in known:
                raise InvalidGraph(f"Output '{w}' is not produced by any node of the graph")

        # Keep only what the wanted outputs need, in a topological order.
        order: list[int] = []
        state: dict[int, int] = {}

        def visit(name: str, consumer: str) -> None:
            idx = producer.get(name)
            if idx is None:
                if name in known:
                    return
                raise InvalidGraph(
                    f"{consumer} reads value '{name}', which no node, input or initializer defines"
                )
            stack = [(idx, False)]
            while stack:
                i, done = stack.pop()
                if done:
                    state[i] = 2
                    order.append(i)
                    continue
                st = state.get(i)
                if st == 2:
                    continue
                if st == 1:
                    raise InvalidGraph(
                        f"The graph has a cycle through node '{expanded[i][0].node.name}'"
                    )
                state[i] = 1
                stack.append((i, True))
                sn = expanded[i][0]
                where = f"Node '{sn.node.name}' ({sn.node.op_type})"
                for dep in list(sn.node.input) + node_free[i]:
                    if not dep:
                        continue
                    j = producer.get(dep)
                    if j is None:
                        if dep not in known:
                            raise InvalidGraph(
                                f"{where} reads value '{dep}', which no node, input or "
                                "initializer defines"
                            )
                        continue
                    if state.get(j) == 1:
                        raise InvalidGraph(f"The graph has a cycle through node '{sn.node.name}'")
                    if state.get(j) != 2:
                        stack.append((j, False))

        for w in wanted:
            visit(w, f"Graph output '{w}'")

        steps_raw: list[
            tuple[Callable[..., Any], list[int], list[tuple[int, int]], ScopedNode]
        ] = []
        kernels: list[Kernel] = []
        for idx in order:
            sn, kernel = expanded[idx]
            fn = self._bind(
                sn, kernel, types, template_values, slot_of, node_free[idx], graph, overridable
            )
            in_slots = [slot(n) for n in sn.node.input] + [slot(n) for n in node_free[idx]]
            out_slots = [(p, slot(o)) for p, o in enumerate(sn.node.output) if o]
            if kernel.op_type == "Constant" and kernel.domain == "" and not sn.node.input:
                # Constant values are known now: evaluate once, keep as a preset slot.
                value = fn()
                template_values[out_slots[0][1]] = value
                continue
            steps_raw.append((fn, in_slots, out_slots, sn))
            kernels.append(kernel)

        # Lifetimes: free a value right after its last reader.
        keep = {slot_of[w] for w in wanted}
        last_use: dict[int, int] = {}
        for i, (_, ins, outs, _) in enumerate(steps_raw):
            for s in ins:
                last_use[s] = i
            for _, s in outs:
                last_use.setdefault(s, i)
        frees: list[list[int]] = [[] for _ in steps_raw]
        for s, i in last_use.items():
            if s != NONE_SLOT and s not in keep:
                frees[i].append(s)

        # Elementwise nodes write into an input whose buffer nothing reads afterwards.
        reuse = in_place_inputs(
            [
                (
                    k.fresh,
                    k.in_place is not None and not sn.node.attribute,
                    ins,
                    [o for _, o in outs],
                )
                for k, (_, ins, outs, sn) in zip(kernels, steps_raw, strict=True)
            ],
            keep,
            last_use,
        )
        for i, position in reuse.items():
            fn, ins, outs, sn = steps_raw[i]
            steps_raw[i] = (kernels[i].in_place(position), ins, outs, sn)
        fresh_slots = {
            s
            for k, (_, _, outs, _) in zip(kernels, steps_raw, strict=True)
            if k.fresh
            for _, s in outs
        }

        steps = [
            Step(
                fn=fn,
                inputs=tuple(ins),
                outputs=tuple(outs),
                free=tuple(sorted(frees[i])),
                name=sn.node.name,
                op_type=sn.node.op_type,
                domain=sn.node.domain,
            )
            for i, (fn, ins, outs, sn) in enumerate(steps_raw)
        ]
        template: list[Any] = [None] * len(names)
        for s, v in template_values.items():
            if isinstance(v, np.ndarray):
                # Shared by every run and maybe returned (or viewed) to callers: never writable.
                v.setflags(write=False)
            template[s] = v
        input_names = list(formal_inputs) + list(extra_inputs)
        return Plan(
            steps=steps,
            template=template,
            input_slots=[slot_of[n] for n in input_names],
            output_slots=[slot_of[w] for w in wanted],
            input_names=input_names,
            output_names=wanted,
            required_inputs=[n for n in formal_inputs if n not in initializer_names],
            slot_names=names,
            output_types=[types.get(w) for w in wanted],
            output_fresh=[slot_of[w] in fresh_slots for w in wanted],
        )

    def _bind(
        self,
        sn: ScopedNode,
        kernel: Kernel,
        types: dict[str, TypeProto],
        template_values: dict[int, Any],
        slot_of: dict[str, int],
        free: list[str],
        graph: GraphProto,
        overridable: set[str] = frozenset(),
    ) -> Callable[..., Any]:
        """Decode attributes, compile subgraphs and produce the step's callable."""
        node = sn.node
        where = f"Node '{node.name}' (op {node.domain or 'ai.onnx'}::{node.op_type})"
        attrs: dict[str, Any] = {}
        graphs: dict[str, Any] = {}
        for a in node.attribute:
            if kernel.attributes is not None and a.name not in kernel.attributes:
                raise errors.NotImplemented(
                    f"{where}: attribute '{a.name}' is not supported by onnxpy's kernel "
                    f"(opset {kernel.since}+)"
                )
            if a.type == AttributeProto.GRAPH:
                graphs[a.name] = self._subgraph(a.g, sn.opsets, types)
            elif a.type == AttributeProto.GRAPHS:
                graphs[a.name] = [self._subgraph(g, sn.opsets, types) for g in a.graphs]
            else:
                try:
                    attrs[a.name] = decode_attribute(
                        a, self.base_dir, arrays=kernel.array_attributes
                    )
                except Exception as e:  # noqa: BLE001
                    raise InvalidGraph(f"{where}: cannot decode attribute '{a.name}': {e}") from e

        fn = kernel.fn
        if kernel.factory:
            constants = {}
            for i, name in enumerate(node.input):
                s = slot_of.get(name)
                if name and name not in overridable and s is not None and s in template_values:
                    constants[i] = template_values[s]
            info = NodeInfo(
                name=node.name,
                op_type=node.op_type,
                domain=node.domain,
                opset=sn.opsets.get("" if node.domain == "ai.onnx" else node.domain, 0),
                num_inputs=len(node.input),
                num_outputs=len(node.output),
                input_types=tuple(types.get(n) if n else None for n in node.input),
                output_types=tuple(types.get(n) if n else None for n in node.output),
                constant_inputs=constants,
                graph=graph,
                opsets=dict(sn.opsets),
                compile_graph=functools.partial(self._compile_graph, opsets=dict(sn.opsets)),
            )
            try:
                fn = kernel.fn(info, **attrs)
            except (errors.NotImplemented, InvalidGraph):
                raise
            except Exception as e:  # noqa: BLE001
                raise InvalidGraph(f"{where}: {e}") from e
        elif attrs:
            fn = functools.partial(fn, **attrs)

        if not graphs:
            return fn
        n_formal = len(node.input)
        positions = {name: n_formal + i for i, name in enumerate(free)}

        def bind(sub: _Subgraph, args: tuple[Any, ...]) -> BoundGraph:
            return BoundGraph(sub.plan, [args[positions[x]] for x in sub.free], sub.num_inputs)

        def with_subgraphs(*args: Any) -> Any:
            bound = {
                k: [bind(s, args) for s in v] if isinstance(v, list) else bind(v, args)
                for k, v in graphs.items()
            }
            return fn(*args[:n_formal], **bound)

        return with_subgraphs

    def _compile_graph(
        self, graph: GraphProto, outputs: list[str], *, opsets: dict[str, int]
    ) -> Callable[..., list[Any]]:
        """A graph as a function of its inputs (NodeInfo.compile_graph, for kernels)."""
        plan = self.build(graph, outputs=outputs, opsets=opsets)
        return lambda *inputs: plan.run_values(list(inputs))

    def _subgraph(
        self, g: GraphProto, opsets: dict[str, int], types: dict[str, TypeProto]
    ) -> _Subgraph:
        free = sorted(outer_reads(g))
        plan = self.build(g, extra_inputs=free, opsets=opsets, type_hints=types)
        return _Subgraph(plan=plan, free=free, num_inputs=len(g.input))
