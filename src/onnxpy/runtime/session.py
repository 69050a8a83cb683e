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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, TypeProto, ValueInfoProto

from onnxpy.errors import InvalidArgument, InvalidGraph
from onnxpy.kernels.threads import apply_intra_op_threads
from onnxpy.model.loader import LoadedModel, load_model, model_opsets
from onnxpy.model.skeleton import infer_types
from onnxpy.model.tensors import mappable
from onnxpy.model.weights import InlineWeights, references
from onnxpy.model.wire import LEAN_MIN_BYTES
from onnxpy.passes import optimize
from onnxpy.providers import resolve_providers
from onnxpy.runtime.executor import execute, execute_profiled
from onnxpy.runtime.feeds import compile_feed_check
from onnxpy.runtime.lora import adapter_feeds
from onnxpy.runtime.memory import keep_freed_memory
from onnxpy.runtime.options import RunOptions, SessionOptions
from onnxpy.runtime.plan import Plan, PlanBuilder, as_array
from onnxpy.runtime.session_api import OrtSessionApi
from onnxpy.runtime.session_setup import apply_session_setup, save_optimized_model
from onnxpy.types import shape_of, type_string, value_type_string

__all__ = ["InferenceSession", "NodeArg", "ModelMetadata"]


class NodeArg:
    """Name, type string and shape of a graph input or output (onnxruntime's NodeArg)."""

    __slots__ = ("name", "type", "shape", "_type_proto")

    def __init__(self, vi: ValueInfoProto) -> None:
        self.name: str = vi.name
        self._type_proto: TypeProto | None = vi.type if vi.type.WhichOneof("value") else None
        self.type: str = type_string(self._type_proto)
        self.shape: list[int | str | None] = shape_of(self._type_proto)

    def __repr__(self) -> str:
        return f"NodeArg(name='{self.name}', type='{self.type}', shape={self.shape})"


@dataclass
class ModelMetadata:
    producer_name: str = ""
    graph_name: str = ""
    domain: str = ""
    description: str = ""
    graph_description: str = ""
    version: int = 0
    custom_metadata_map: dict[str, str] = field(default_factory=dict)


def _value_types(model: onnx.ModelProto) -> dict[str, TypeProto]:
    """Types of the graph's values from shape inference on the weight-free skeleton."""
    try:
        inferred = infer_types(model)
    except Exception:  # noqa: BLE001 - inference is advisory; the checker already passed
        return {}
    g = inferred.graph
    types: dict[str, TypeProto] = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.WhichOneof("value"):
            # A copy: a sub-message would keep the whole inferred model (attributes and all)
            # alive for the session's lifetime.
            types[vi.name] = tp = TypeProto()
            tp.CopyFrom(vi.type)
    return types


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
        # The optimizer edits a proto parsed here in place; a caller's ModelProto is copied.
        loaded.proto = optimize(
            loaded.proto,
            int(self._options.graph_optimization_level),
            base_dir=loaded.base_dir,
            inplace=not isinstance(path_or_bytes, onnx.ModelProto),
        )
        # Fusions may import a domain (com.microsoft) for the kernels they emit.
        loaded.opsets = model_opsets(loaded.proto)
        self._loaded = loaded
        model = loaded.proto
        self._graph = model.graph
        self._types = _value_types(model)
        init_names = {i.name for i in model.graph.initializer}
        self._inputs = [NodeArg(vi) for vi in model.graph.input if vi.name not in init_names]
        self._overridable = [NodeArg(vi) for vi in model.graph.input if vi.name in init_names]
        self._outputs = [NodeArg(vi) for vi in model.graph.output]
        self._feed_checks = {
            a.name: compile_feed_check(a.name, a._type_proto)
            for a in self._inputs + self._overridable
        }
        self._builder = PlanBuilder(loaded.opsets, loaded.base_dir, model.functions)
        self._plans: dict[tuple[str, ...], Plan] = {}
        self._plans_lock = threading.Lock()
        self._default_outputs = tuple(a.name for a in self._outputs)
        self._plans[self._default_outputs] = plan = self._builder.build(
            self._graph, type_hints=self._types
        )
        loaded.weights = _hold_weights_once(model, plan, loaded.weights)
        self._value_names: set[str] | None = None
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
        if self._options.enable_profiling:
            self._profile_events = []
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
        key = self._default_outputs if not output_names else tuple(output_names)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        with self._plans_lock:
            plan = self._plans.get(key)
            if plan is None:
                for name in key:
                    if not isinstance(name, str):
                        raise InvalidArgument(f"Output names must be strings, got {name!r}")
                try:
                    plan = self._builder.build(
                        self._graph, outputs=list(key), type_hints=self._types
                    )
                except InvalidGraph as e:
                    raise InvalidArgument(
                        f"Invalid output name(s) {list(key)}: {e}. Outputs of the model are "
                        f"{list(self._default_outputs)}; any intermediate value name may be "
                        "requested too, but graph optimizations may remove intermediate values: "
                        "create the session with graph_optimization_level=ORT_DISABLE_ALL to "
                        "fetch any of them."
                    ) from e
                self._plans[key] = plan
        return plan

    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: dict[str, Any],
        run_options: RunOptions | None = None,
    ) -> list[Any]:
        """Compute ``output_names`` (None: all outputs) from ``input_feed`` {name: value}."""
        if not isinstance(input_feed, dict):
            raise InvalidArgument(
                f"input_feed must be a dict of input name -> value, got {type(input_feed).__name__}"
            )
        if run_options is not None and "_active_adapters" in run_options.__dict__:
            input_feed = adapter_feeds(run_options, input_feed)  # LoRA tensors (issue 16)
        plan = self._plan_for(output_names)
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
        else:
            if run_options is None:
                plan.runner(values)
            else:
                stop = run_options._terminate.is_set
                if stop():
                    from onnxpy.errors import RuntimeException

                    raise RuntimeException("Exiting due to terminate flag being set to true.")
                execute(plan.steps, values, stop)
        return [as_array(values[s]) for s in plan.output_slots]

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
    model: onnx.ModelProto, plan: Plan, weights: InlineWeights | None
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
        weights.keep_only(references(model))
    return weights


def _type_shape(v: Any) -> dict[str, list[int]]:
    if isinstance(v, np.ndarray):
        return {value_type_string(v)[7:-1]: list(v.shape)}
    return {type(v).__name__: []}
