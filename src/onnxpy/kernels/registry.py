"""The operator registry: (domain, op_type) -> kernels by since-version.

A kernel is a plain function: inputs positional (``None`` for an omitted optional input),
attributes keyword-only with the ONNX defaults in the signature. A *factory* kernel instead
receives a :class:`NodeInfo` plus the attributes once, at session creation, and returns the
function to run; costly setup (tree arrays, reshaped weights, attribute parsing that depends on
the number of outputs) happens there, never per run.

Lookup takes the kernel with the highest ``since`` that is <= the model's opset for the domain,
so a kernel is registered again only when the operator's semantics change.

Kernel modules are imported on first use: ``onnxpy.kernels`` installs a loader (see
:func:`set_loader`) that :func:`lookup` calls for an operator not registered yet, and
:func:`registered_ops` loads every module first.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "Kernel",
    "NodeInfo",
    "register",
    "lookup",
    "registered_ops",
    "set_loader",
    "DEFAULT_DOMAIN",
]

DEFAULT_DOMAIN = ""
_DOMAIN_ALIASES = {"ai.onnx": ""}


class NodeInfo:
    """What a factory kernel may know about its node at session creation.

    (NodeInfo and Kernel are plain classes: as dataclasses they cost ~2 ms of every
    ``import onnxpy``.)"""

    __slots__ = (
        "name",
        "op_type",
        "domain",
        "opset",
        "num_inputs",
        "num_outputs",
        "input_types",
        "output_types",
        "constant_inputs",
        "graph",
        "opsets",
        "compile_graph",
    )

    def __init__(
        self,
        name: str,
        op_type: str,
        domain: str,
        opset: int,
        num_inputs: int,
        num_outputs: int,
        input_types: tuple[Any, ...] = (),
        output_types: tuple[Any, ...] = (),
        constant_inputs: dict[int, np.ndarray] | None = None,
        graph: Any = None,
        opsets: dict[str, int] | None = None,
        compile_graph: Callable[[Any, list[str]], Callable[..., list[Any]]] | None = None,
    ) -> None:
        self.name = name
        self.op_type = op_type
        self.domain = domain
        self.opset = opset
        self.num_inputs = num_inputs
        self.num_outputs = num_outputs
        # ONNX TypeProto of each input/output when known (None where unknown).
        self.input_types = input_types
        self.output_types = output_types
        # Inputs whose value is fixed in the model (initializers, Constant outputs), by position.
        self.constant_inputs = {} if constant_inputs is None else constant_inputs
        # The enclosing graph and its opsets: for the rare operator defined over the graph
        # itself (ai.onnx.preview.training::Gradient differentiates the nodes that compute
        # its ``y``).
        self.graph = graph
        self.opsets = {} if opsets is None else opsets
        # compile_graph(graph, outputs) -> run(*inputs) -> outputs: the runtime's planner,
        # handed down so that a kernel that runs a graph of its own (Gradient's forward pass)
        # never imports the runtime above it.
        self.compile_graph = compile_graph

    def __repr__(self) -> str:
        return f"NodeInfo({self.op_type} '{self.name}', opset {self.opset})"


_UNREAD = object()


class Kernel:
    """A registered kernel and what the planner needs to know about it."""

    __slots__ = (
        "op_type",
        "domain",
        "since",
        "fn",
        "factory",
        "subgraph_attributes",
        "array_attributes",
        "fresh",
        "in_place",
        "module",
        "_attributes",
    )

    def __init__(
        self,
        op_type: str,
        domain: str,
        since: int,
        fn: Callable[..., Any],
        factory: bool,
        subgraph_attributes: tuple[str, ...] = (),
        array_attributes: bool = False,
        fresh: bool = False,
        in_place: Callable[[int], Callable[..., Any]] | None = None,
        module: str = "",
    ) -> None:
        self.op_type = op_type
        self.domain = domain
        self.since = since
        self.fn = fn
        self.factory = factory
        # Extra, declared needs: e.g. graph-valued attributes (If/Loop/Scan bodies).
        self.subgraph_attributes = subgraph_attributes
        # INTS/FLOATS attributes arrive as int64/float32 NumPy arrays instead of lists.
        self.array_attributes = array_attributes
        # Every output is a new array that aliases no input and nothing kept between runs.
        self.fresh = fresh
        # in_place(position) -> a run function that may write its result into input
        # ``position`` (when that input's dtype and shape allow; otherwise it computes as
        # ``fn``). The planner uses it only where that input's buffer is provably dead after
        # the node.
        self.in_place = in_place
        # The module whose import registered this kernel (what the catalog imports on demand).
        self.module = module
        self._attributes: Any = _UNREAD

    @property
    def attributes(self) -> frozenset[str] | None:
        """Attribute names the kernel understands; None means it takes **kwargs (anything).

        Read from the signature when first asked (at planning): ``inspect.signature`` of
        every kernel a module registers cost milliseconds per module at import."""
        if self._attributes is _UNREAD:
            self._attributes = _attribute_names(self.fn)
        return self._attributes

    def __repr__(self) -> str:
        return f"Kernel({self.domain or 'ai.onnx'}::{self.op_type} since {self.since})"


def _registering_module() -> str:
    """The innermost module being executed at top level: the import that registers."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            return str(frame.f_globals.get("__name__", ""))
        frame = frame.f_back
    return ""


_REGISTRY: dict[tuple[str, str], list[Kernel]] = {}
# (domain, op_type) -> whether it imported anything; and "load every module".
_loader: Callable[[str, str], bool] | None = None
_load_everything: Callable[[], None] | None = None


def set_loader(for_op: Callable[[str, str], bool], everything: Callable[[], None]) -> None:
    """Install the on-demand importer of kernel modules (``onnxpy.kernels`` does this)."""
    global _loader, _load_everything
    _loader, _load_everything = for_op, everything


def _attribute_names(fn: Callable[..., Any]) -> frozenset[str] | None:
    names = set()
    for p in inspect.signature(fn).parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            names.add(p.name)
    return frozenset(names)


def register(
    op_type: str,
    since: int | tuple[int, ...] = 1,
    domain: str = DEFAULT_DOMAIN,
    *,
    factory: bool = False,
    subgraphs: tuple[str, ...] = (),
    array_attributes: bool = False,
    fresh: bool = False,
    in_place: Callable[[int], Callable[..., Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` for ``op_type`` from opset ``since`` on.

    ``since`` may be a tuple when one implementation serves several since-versions whose
    differences it handles itself (e.g. an input that became optional).
    ``array_attributes=True`` asks for INTS and FLOATS attributes as int64 and float32 NumPy
    arrays (decoded without a Python object per element) instead of lists: for kernels whose
    attributes can hold millions of values, such as tree ensembles.
    ``fresh=True`` promises outputs that alias nothing (see ``Kernel``); ``in_place`` gives the
    variant that may overwrite a dead input (runtime/inplace.py decides where).
    """

    domain = _DOMAIN_ALIASES.get(domain, domain)
    versions = since if isinstance(since, tuple) else (since,)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        module = _registering_module()
        for v in versions:
            entries = _REGISTRY.setdefault((domain, op_type), [])
            if any(k.since == v for k in entries):
                raise ValueError(f"{domain or 'ai.onnx'}::{op_type} since {v} registered twice")
            entries.append(
                Kernel(
                    op_type,
                    domain,
                    v,
                    fn,
                    factory,
                    tuple(subgraphs),
                    array_attributes=array_attributes,
                    fresh=fresh or in_place is not None,
                    in_place=in_place,
                    module=module,
                )
            )
            entries.sort(key=lambda k: k.since)
        return fn

    return deco


def lookup(domain: str, op_type: str, opset: int) -> Kernel | None:
    """The kernel serving ``op_type`` at ``opset``: highest since-version <= opset."""
    key = (_DOMAIN_ALIASES.get(domain, domain), op_type)
    entries = _REGISTRY.get(key)
    if not entries and _loader is not None and _loader(*key):
        entries = _REGISTRY.get(key)
    if not entries:
        return None
    best = None
    for k in entries:
        if k.since <= opset:
            best = k
    return best


def registered_ops() -> dict[tuple[str, str], list[Kernel]]:
    """A snapshot of the registry (for coverage tables and tests): every module loaded."""
    if _load_everything is not None:
        _load_everything()
    return {key: list(v) for key, v in _REGISTRY.items()}
