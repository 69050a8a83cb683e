"""InferenceSession: the onnxruntime-compatible facade over a compiled plan.

A session is immutable after construction except for its plan cache (guarded by a lock), so
``run`` may be called from many threads at once; each call owns its value list.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, TypeProto, ValueInfoProto

from onnxpy.errors import InvalidArgument, Terminated
from onnxpy.kernels.threads import apply_intra_op_threads
from onnxpy.model.loader import LoadedModel, load_model, model_opsets
from onnxpy.model.skeleton import infer_types
from onnxpy.model.tensors import mappable
from onnxpy.model.weights import InlineWeights, references
from onnxpy.model.wire import LEAN_MIN_BYTES
from onnxpy.passes.manager import optimize_with_types
from onnxpy.providers import resolve_providers
from onnxpy.runtime.default_run import default_run
from onnxpy.runtime.executor import execute, execute_profiled
from onnxpy.runtime.feeds import compile_feed_check
from onnxpy.runtime.memory import keep_freed_memory
from onnxpy.runtime.options import RunOptions, SessionOptions
from onnxpy.runtime.outputs import detach_outputs
from onnxpy.runtime.plan import Plan, PlanBuilder
from onnxpy.runtime.plan_cache import PlanCache, graph_value_names
from onnxpy.runtime.session_api import OrtSessionApi
from onnxpy.runtime.session_setup import apply_session_setup, save_optimized_model
from onnxpy.types import shape_of, type_string, value_type_string

__all__ = ["InferenceSession", "NodeArg", "ModelMetadata"]


class NodeArg:
    """Name, type string and shape of a graph input or output (onnxruntime's NodeArg).

    Where the model declares no shape (the IR makes it optional), the inferred one is shown.
    """

    __slots__ = ("name", "type", "shape", "_type_proto")

    def __init__(self, vi: ValueInfoProto, inferred: TypeProto | None = None) -> None:
        self.name: str = vi.name
        self._type_proto: TypeProto | None = vi.type if vi.type.WhichOneof("value") else None
        self.type: str = type_string(self._type_proto)
        shown = self._type_proto
        if inferred is not None and not _has_shape(shown) and _has_shape(inferred):
            shown = inferred
        self.shape: list[int | str | None] = shape_of(shown)

    def __repr__(self) -> str:
        return f"NodeArg(name='{self.name}', type='{self.type}', shape={self.shape})"


class ModelMetadata:
    """The model's metadata fields (onnxruntime's ModelMetadata)."""

    _FIELDS = (
        "producer_name",
        "graph_name",
        "domain",
        "description",
        "graph_description",
        "version",
        "custom_metadata_map",
    )

    def __init__(
        self,
        producer_name: str = "",
        graph_name: str = "",
        domain: str = "",
        description: str = "",
        graph_description: str = "",
        version: int = 0,
        custom_metadata_map: dict[str, str] | None = None,
    ) -> None:
        self.producer_name = producer_name
        self.graph_name = graph_name
        self.domain = domain
        self.description = description
        self.graph_description = graph_description
        self.version = version
        self.custom_metadata_map = {} if custom_metadata_map is None else custom_metadata_map

    def __eq__(self, other: object) -> bool:
        return type(other) is ModelMetadata and all(
            getattr(self, f) == getattr(other, f) for f in self._FIELDS
        )

    __hash__ = None  # type: ignore[assignment] - mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"ModelMetadata({args})"


def _has_shape(tp: TypeProto | None) -> bool:
    return (
        tp is not None
        and tp.WhichOneof("value") == "tensor_type"
        and tp.tensor_type.HasField("shape")
    )


def _value_types(model: onnx.ModelProto) -> dict[str, TypeProto]:
    """Types of the graph's values from shape inference on the weight-free skeleton."""
    try:
        inferred = infer_types(model)
    except Exception:  # noqa: BLE001 - inference is advisory; the checker already passed
        return {}
    g = inferred.graph
    return _copies({vi.name: vi.type for vi in list(g.input) + list(g.output) + list(g.value_info)})


def _copies(types: dict[str, TypeProto]) -> dict[str, TypeProto]:
    """Copies of the known types: a sub-message would keep the whole inferred model
    (attributes and all) alive for the session's lifetime."""
    out: dict[str, TypeProto] = {}
    for name, tp in types.items():
        if tp.WhichOneof("value"):
            out[name] = copy = TypeProto()
            copy.CopyFrom(tp)
    return out


class InferenceSession(OrtSessionApi):
    """Load a model once, run it many times: ``InferenceSession(path).run(None, feeds)``."""

    def __init__(
        self,
        path_or_bytes: str | os.PathLike | bytes | onnx.ModelProto,
        sess_options: SessionOptions | None = None,
        providers: Sequence[Any] | None = None,
        provider_options: Sequence[dict] | None = None,
        **kwargs: Any,
    ) -> None:
        self._options = (sess_options or SessionOptions()).copy()
        self._providers, self._provider_options = resolve_providers(providers, provider_options)
        self._model_path = path_or_bytes if isinstance(path_or_bytes, (str, os.PathLike)) else None
        apply_intra_op_threads(int(self._options.intra_op_num_threads or 0))
        if self._options.enable_cpu_mem_arena:
            keep_freed_memory()
        loaded: LoadedModel = load_model(path_or_bytes)
        apply_session_setup(loaded, self._options, not isinstance(path_or_bytes, onnx.ModelProto))
        level = int(self._options.graph_optimization_level)
        original_names = graph_value_names(loaded.proto.graph)
        # The model as loaded, for values the optimizer removes (see plan_cache): a path is
        # read again when needed, a caller's ModelProto is used as it is, and bytes are kept
        # as a copy of the proto (its big weights are references, so the copy is small).
        self._source = path_or_bytes if level > 0 else None
        self._original: tuple[PlanBuilder, onnx.GraphProto, dict[str, TypeProto]] | None = None
        self._original_loaded: LoadedModel | None = None
        snapshot = None
        if level > 0 and isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            snapshot = onnx.ModelProto()
            snapshot.CopyFrom(loaded.proto)
            self._source = LoadedModel(
                proto=snapshot,
                base_dir=None,
                opsets=model_opsets(snapshot),
                weights=loaded.weights,
            )
        # The optimizer edits a proto parsed here in place; a caller's ModelProto is copied.
        loaded.proto, known_types = optimize_with_types(
            loaded.proto,
            level,
            base_dir=loaded.base_dir,
            inplace=not isinstance(path_or_bytes, onnx.ModelProto),
        )
        # Fusions may import a domain (com.microsoft) for the kernels they emit.
        loaded.opsets = model_opsets(loaded.proto)
        self._loaded = loaded
        model = loaded.proto
        self._graph = model.graph
        self._types = _value_types(model) if known_types is None else _copies(known_types)
        init_names = {i.name for i in model.graph.initializer}
        self._inputs = [NodeArg(vi) for vi in model.graph.input if vi.name not in init_names]
        self._overridable = [NodeArg(vi) for vi in model.graph.input if vi.name in init_names]
        self._outputs = [NodeArg(vi, self._types.get(vi.name)) for vi in model.graph.output]
        self._feed_checks = {
            a.name: compile_feed_check(a.name, a._type_proto)
            for a in self._inputs + self._overridable
        }
        self._builder = PlanBuilder(loaded.opsets, loaded.base_dir, model.functions)
        default = self._builder.build(self._graph, type_hints=self._types)
        loaded.weights = _hold_weights_once(model, default, loaded.weights, snapshot)
        self._plans = PlanCache(
            self._build_plan, graph_value_names(model.graph), original_names, default
        )
        meta = model.metadata_props
        self._meta = ModelMetadata(
            producer_name=model.producer_name,
            graph_name=model.graph.name,
            domain=model.domain,
            description=model.doc_string,
            graph_description=model.graph.doc_string,
            version=int(model.model_version),
            custom_metadata_map={p.key: p.value for p in meta},
        )
        self._profile_events: list[dict[str, Any]] | None = None
        self._profile_start = time.perf_counter()
        self._default_run = None
        if self._options.enable_profiling:
            self._profile_events = []
        else:
            planned = self._plans.default
            self._default_run = default_run(planned.plan, planned.protected, self._feed_checks)
        if self._options.optimized_model_filepath:
            save_optimized_model(model, self._options, loaded.base_dir)

    # -- introspection -----------------------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def get_overridable_initializers(self) -> list[NodeArg]:
        return list(self._overridable)

    def get_modelmeta(self) -> ModelMetadata:
        return self._meta

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return dict(zip(self._providers, self._provider_options))

    def get_session_options(self) -> SessionOptions:
        return self._options

    def get_profiling_start_time_ns(self) -> int:
        return int(self._profile_start * 1e9)

    # -- running -----------------------------------------------------------------------------
    def _plan_for(self, output_names: Sequence[str] | None) -> Plan:
        """The plan that computes ``output_names`` (for tools and tests that inspect it)."""
        return self._plans.get(output_names).plan

    def _build_plan(self, on_original: bool, names: list[str]) -> Plan:
        """A plan of ``names`` on the optimized graph, or on the model as loaded."""
        if not on_original:
            return self._builder.build(self._graph, outputs=names, type_hints=self._types)
        if self._original is None:
            source = self._source
            loaded = source if isinstance(source, LoadedModel) else load_model(source, check=False)
            self._original_loaded = loaded  # keeps its weights alive
            proto = loaded.proto
            builder = PlanBuilder(model_opsets(proto), loaded.base_dir, proto.functions)
            self._original = (builder, proto.graph, _value_types(proto))
        builder, graph, types = self._original
        return builder.build(graph, outputs=names, type_hints=types)

    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: dict[str, Any],
        run_options: RunOptions | None = None,
    ) -> list[Any]:
        """Compute ``output_names`` (None: all outputs) from ``input_feed`` {name: value}.

        Any value name of the model as loaded may be requested, at every optimization level.
        Outputs are new, writable arrays that share memory with nothing (not with the feeds,
        the model's weights, or each other).
        """
        if output_names is None and run_options is None and type(input_feed) is dict:
            fast = self._default_run
            if fast is not None:
                outputs = fast(input_feed)
                if outputs is not None:
                    return outputs
        if isinstance(output_names, (str, bytes)):
            raise TypeError(
                f"output_names must be a list of names or None, got the string {output_names!r}"
                f" (write [{output_names!r}] for one output)"
            )
        if not isinstance(input_feed, dict):
            raise InvalidArgument(
                f"input_feed must be a dict of input name -> value, got {type(input_feed).__name__}"
            )
        if output_names:
            for name in output_names:
                if not isinstance(name, str):
                    raise InvalidArgument(f"Output names must be strings, got {name!r}")
        if run_options is not None and "_active_adapters" in run_options.__dict__:
            from onnxpy.runtime.lora import adapter_feeds

            input_feed = adapter_feeds(run_options, input_feed)  # LoRA tensors
        planned = self._plans.get(output_names)
        plan = planned.plan
        missing = [n for n in plan.required_inputs if n not in input_feed]
        if missing:
            raise ValueError(
                f"Required inputs ({missing}) are missing from input feed ({list(input_feed)})."
            )
        values = plan.template.copy()
        slots = plan.slot_of_input
        checks = self._feed_checks
        for name, value in input_feed.items():
            check = checks.get(name)
            if check is None:
                raise InvalidArgument(
                    f"Invalid input name: '{name}'. Inputs of the model are "
                    f"{[a.name for a in self._inputs]}"
                )
            slot = slots.get(name)
            if slot is not None:
                values[slot] = check(value)
            else:
                check(value)
        if self._profile_events is not None:
            self._run_profiled(plan, values)
        elif run_options is None:
            plan.runner(values)
        else:
            stop = run_options._terminate.is_set
            if stop():
                raise Terminated("Exiting due to terminate flag being set to true.")
            execute(plan.steps, values, stop)
        slots_out, fresh = plan.output_slots, plan.output_fresh
        if planned.order is not None:
            slots_out = [slots_out[i] for i in planned.order]
            fresh = [fresh[i] for i in planned.order]
        outputs = [values[s] for s in slots_out]
        return detach_outputs(outputs, fresh, planned.protected, input_feed.values())

    # -- profiling ---------------------------------------------------------------------------
    def _run_profiled(self, plan: Plan, values: list[Any]) -> None:
        events = self._profile_events
        assert events is not None
        origin = self._profile_start
        t_start = time.perf_counter()

        def record(step: Any, t0: float, dur: float, args: list, outs: list) -> None:
            events.append(
                {
                    "cat": "Node",
                    "pid": os.getpid(),
                    "tid": threading.get_ident() % 100000,
                    "dur": int(dur * 1e6),
                    "ts": int((t0 - origin) * 1e6),
                    "ph": "X",
                    "name": f"{step.name or step.op_type}_kernel_time",
                    "args": {
                        "op_name": step.op_type,
                        "provider": "CPUExecutionProvider",
                        "input_type_shape": [_type_shape(a) for a in args],
                        "output_type_shape": [_type_shape(o) for o in outs],
                    },
                }
            )

        execute_profiled(plan.steps, values, record)
        events.append(
            {
                "cat": "Session",
                "pid": os.getpid(),
                "tid": threading.get_ident() % 100000,
                "dur": int((time.perf_counter() - t_start) * 1e6),
                "ts": int((t_start - origin) * 1e6),
                "ph": "X",
                "name": "model_run",
                "args": {},
            }
        )

    def end_profiling(self) -> str:
        """Write the Chrome-trace JSON of the runs so far and return its path ('' if off)."""
        if self._profile_events is None:
            return ""
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        path = f"{self._options.profile_file_prefix}_{stamp}.json"
        with open(path, "w") as f:
            json.dump(self._profile_events, f)
        self._profile_events = []
        return path


def _hold_weights_once(
    model: onnx.ModelProto,
    plan: Plan,
    weights: InlineWeights | None,
    snapshot: onnx.ModelProto | None = None,
) -> InlineWeights | None:
    """Let the plan's arrays be the only copy of big weights: the proto drops its raw_data.

    Weights written by the optimizer (e.g. Conv+BatchNormalization) exist twice after
    planning, as bytes in the proto and as the decoded array; weights an optimization
    replaced are held by nobody any more and are released.
    """
    slot_of = {name: i for i, name in enumerate(plan.slot_names)}
    for t in model.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL or len(t.raw_data) < LEAN_MIN_BYTES:
            continue
        array = plan.template[slot_of[t.name]] if t.name in slot_of else None
        if not isinstance(array, np.ndarray) or not mappable(t.data_type):
            continue
        if weights is None:
            weights = InlineWeights()
        weights.adopt(t, array)
    if weights is not None:
        kept = references(model)
        if snapshot is not None:  # the unoptimized copy still refers to its weights
            kept |= references(snapshot)
        weights.keep_only(kept)
    return weights


def _type_shape(v: Any) -> dict[str, list[int]]:
    if isinstance(v, np.ndarray):
        return {value_type_string(v)[7:-1]: list(v.shape)}
    return {type(v).__name__: []}
