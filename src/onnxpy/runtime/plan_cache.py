"""Plans per requested set of output names, on the optimized graph or on the model as loaded.

``run(names)`` may ask for any value of the model as it was loaded, at every optimization
level. A name that survived optimization (passes keep every name bound to the same value) is
computed by a plan of the optimized graph; a set with a name the optimizer fused or folded
away is planned on the unoptimized graph, loaded again from the session's source when first
needed. The model's own outputs always run on the optimized plan.

Plans are keyed by the *set* of names (any order of the same names shares one plan) and at
most ``limit`` of them are kept besides the default one, least recently used first out, so a
caller cycling through names cannot grow the session without bound.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from onnx import GraphProto

from onnxpy.errors import InvalidArgument, InvalidGraph
from onnxpy.runtime.outputs import owner_ids
from onnxpy.runtime.plan import Plan

__all__ = ["PlanCache", "Planned", "graph_value_names"]


def graph_value_names(graph: GraphProto) -> frozenset[str]:
    """Every value name of a main graph: inputs, initializers and node outputs."""
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    names |= {o for n in graph.node for o in n.output if o}
    return frozenset(names)


class Planned:
    """A plan, where each requested name is among its outputs, and its constants' owners."""

    __slots__ = ("plan", "order", "protected")

    def __init__(
        self, plan: Plan, order: tuple[int, ...] | None, protected: frozenset[int]
    ) -> None:
        self.plan = plan
        self.order = order  # plan output index per requested name; None: as planned
        self.protected = protected


class PlanCache:
    """Find or build the plan computing a set of output names (thread-safe)."""

    def __init__(
        self,
        build: Callable[[bool, list[str]], Plan],
        optimized_names: frozenset[str],
        original_names: frozenset[str],
        default: Plan,
        limit: int = 16,
    ) -> None:
        """``build(on_original, names)`` plans ``names`` on the optimized graph, or with
        ``on_original`` on the graph as loaded (which the callable loads when first asked)."""
        self._build = build
        self._optimized = optimized_names
        self._original = original_names
        self._limit = limit
        self._lock = threading.Lock()
        self.default = Planned(default, None, _protected(default))
        self._default_key = tuple(default.output_names)
        self._plans: OrderedDict[frozenset[str], Planned] = OrderedDict()

    def __len__(self) -> int:
        return len(self._plans)

    def get(self, names: Sequence[str] | None) -> Planned:
        if not names:
            return self.default
        key = tuple(names)
        if key == self._default_key:
            return self.default
        wanted = frozenset(key)
        with self._lock:
            planned = self._plans.get(wanted)
            if planned is not None:
                self._plans.move_to_end(wanted)
            else:
                planned = self._plan(wanted)
                self._plans[wanted] = planned
                while len(self._plans) > self._limit:
                    self._plans.popitem(last=False)
        index = {name: i for i, name in enumerate(planned.plan.output_names)}
        return Planned(planned.plan, tuple(index[n] for n in key), planned.protected)

    def _plan(self, wanted: frozenset[str]) -> Planned:
        unknown = sorted(n for n in wanted if n not in self._original and n not in self._optimized)
        if unknown:
            raise InvalidArgument(
                f"Invalid output name(s) {unknown}: the model has no value of that name. "
                f"Its outputs are {list(self._default_key)}; any value name of the model (an "
                "input, initializer or node output) may be requested too."
            )
        on_original = not wanted <= self._optimized
        try:
            plan = self._build(on_original, sorted(wanted))
        except InvalidGraph as e:
            raise InvalidArgument(f"Cannot compute {sorted(wanted)}: {e}") from e
        return Planned(plan, None, _protected(plan))


def _protected(plan: Plan) -> frozenset[int]:
    return frozenset(owner_ids(v for v in plan.template if v is not None))
