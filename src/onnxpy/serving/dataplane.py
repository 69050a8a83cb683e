"""The one inference path: decode -> validate -> queue/batch -> session.run -> encode.

:class:`DataPlane` knows nothing of HTTP or gRPC. Adapters translate their wire format into
:mod:`~onnxpy.serving.messages` objects, call the methods here, and map the onnxpy errors these
raise through :mod:`~onnxpy.serving.errors`' table. Its API, for any host process::

    from onnxpy.serving.dataplane import DataPlane
    from onnxpy.serving.settings import ServeSettings

    dataplane = DataPlane(ServeSettings(model_repository="/models"))
    dataplane.start()                      # loads models (blocking; run it off an event loop)
    response = await dataplane.infer(request)   # an InferRequest -> InferResponse
    dataplane.close(timeout=30)            # in-flight requests finish first

``live``, ``ready``, ``server_metadata``, ``model_ready``, ``model_metadata``,
``model_config``, ``model_statistics``, ``repository_index``, ``load_model`` and
``unload_model`` answer the other v2 routes; ``metrics_text`` is the Prometheus exposition
(``metrics_exposition``, awaited by the ``/metrics`` routes, is where a host adds more). A
data plane holds all its state (models, metrics registry, threads), so several can live in one
process; ``infer`` needs a running asyncio loop, everything else is plain blocking Python
(``load_model``/``unload_model`` may take seconds: call them through ``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from onnxpy.errors import Fail, InvalidArgument
from onnxpy.serving.errors import Unavailable, Unsupported
from onnxpy.serving.grpc import inference_pb2 as pb
from onnxpy.serving.messages import InferRequest, InferResponse, OutputTensor
from onnxpy.serving.metrics import ServerMetrics
from onnxpy.serving.repository import Repository
from onnxpy.serving.settings import ServeSettings

__all__ = ["DataPlane", "EXTENSIONS", "SERVER_NAME"]

SERVER_NAME = "onnxpy"
# Offered v2 extensions, as Triton names them. Not offered, and refused clearly: shared memory
# (system and CUDA), sequence batching, tracing and log settings.
EXTENSIONS = (
    "classification",
    "model_repository",
    "model_configuration",
    "binary_tensor_data",
    "parameters",
    "statistics",
)


class DataPlane:
    """Models, their queues and statistics behind one transport-free API (module docstring)."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.repository = Repository(settings, self.metrics)
        self._started = False
        self._closing = False

    # -- lifetime ------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the models the model-control mode asks for; blocking."""
        self.repository.start()
        self._started = True

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests, let queued and running ones finish, stop every worker."""
        self._closing = True
        self.repository.close(self.settings.drain_timeout if timeout is None else timeout)

    # -- health and metadata -------------------------------------------------------------------
    def live(self) -> bool:
        return not self._closing

    def ready(self) -> bool:
        return self._started and not self._closing and self.repository.ready()

    def not_ready_reason(self) -> str:
        if self._closing:
            return "the server is shutting down"
        if not self._started:
            return "models are loading"
        waiting = self.repository.not_ready()
        return "; ".join(f"model '{n}': {r}" for n, r in sorted(waiting.items()))

    def server_metadata(self) -> dict[str, Any]:
        from onnxpy import __version__

        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    def model_ready(self, name: str, version: str = "") -> bool:
        rec = self.repository.record(name)
        if version:
            return version.isdigit() and int(version) in rec.versions
        return bool(rec.versions)

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        rec = self.repository.record(name)
        model = self.repository.select(rec, version)
        meta = model.metadata()
        meta["versions"] = [str(v) for v in sorted(rec.versions)]
        return meta

    def model_config(self, name: str, version: str = "") -> pb.ModelConfig:
        rec = self.repository.record(name)
        return self.repository.select(rec, version).config

    def model_statistics(self, name: str = "", version: str = "") -> list[dict[str, Any]]:
        if name:
            rec = self.repository.record(name)
            models = [rec.versions[v] for v in sorted(rec.versions)]
            if version:
                models = [self.repository.select(rec, version)]
        else:
            models = [
                m
                for n in self.repository.names()
                for _, m in sorted(self.repository.record(n).versions.items())
            ]
        return [m.stats.snapshot() for m in models]

    def repository_index(self, ready_only: bool = False) -> list[dict[str, str]]:
        return self.repository.index(ready_only)

    def load_model(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        """Load or reload a model (explicit mode); blocking."""
        self.repository.load(name, parameters)

    def unload_model(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        """Unload a model (explicit mode); requests in flight finish."""
        self.repository.unload(name)

    def metrics_text(self) -> bytes:
        return self.metrics.exposition()

    async def metrics_exposition(self) -> bytes:
        """What ``/metrics`` answers: this data plane's metrics. A host that gathers them from
        several processes overrides it (Ray Serve: every replica's, labelled by replica)."""
        return self.metrics_text()

    # -- inference -----------------------------------------------------------------------------
    async def infer(self, request: InferRequest) -> InferResponse:
        """Run one request through its model's queue; raises onnxpy errors for bad requests."""
        start = time.perf_counter_ns()
        if self._closing:
            raise Unavailable("the server is shutting down")
        _check_parameters(request)
        model = self.repository.lookup(request.model_name, request.model_version)
        stats = model.stats
        stats.enter()
        ok, reason, work = False, "OTHER", None
        try:
            feeds, rows = model.decode(request.inputs)
            names = model.output_names(request.outputs)
            work = model.work(feeds, rows, names)
            reason = "REJECTED"
            future = model.scheduler.submit(work)
            reason = "BACKEND"
            try:
                values = await asyncio.wrap_future(future)
            except Fail as e:
                # A kernel refusing values that passed every declared check (an index out of
                # range, say) is the request's fault, as onnxruntime reports it too.
                if isinstance(e.__cause__, ValueError):
                    raise InvalidArgument(f"the model cannot run on this input: {e}") from e
                raise
            requested = {r.name: r for r in request.outputs}
            outputs = []
            for name, value in zip(names, values):
                r = requested.get(name)
                datatype, array = model.finish(name, value, r.class_count if r else 0)
                outputs.append(OutputTensor(name, datatype, list(array.shape), array, r))
            ok = True
            return InferResponse(
                model_name=model.name,
                model_version=str(model.version),
                outputs=outputs,
                id=request.id,
            )
        finally:
            ran = work is not None and work.future.done() and reason == "BACKEND"
            stats.record_request(
                ok,
                time.perf_counter_ns() - start,
                work.queue_ns if ran else 0,
                work.compute_ns if ran else None,
                reason,
            )
            model.release()


def _check_parameters(request: InferRequest) -> None:
    """Refuse the request parameters of extensions onnxpy does not offer."""
    if request.parameters.get("sequence_id") not in (None, 0, ""):
        raise Unsupported("sequence batching (sequence_id) is not offered by onnxpy")
    tensors = [*request.inputs, *request.outputs]
    if any("shared_memory_region" in t.parameters for t in tensors):
        raise Unsupported(
            "the shared-memory extension is not offered by onnxpy: send the tensor data in the "
            "request (JSON, binary data or raw contents)"
        )
