"""The server as a Ray Serve replica: one data plane per replica, REST and gRPC through Serve.

:class:`OnnxpyServer` is the ingress deployment. Its constructor builds the replica's
:class:`ReplicaDataPlane` from the :class:`~onnxpy.serving.settings.ServeSettings` it is bound
with and loads the models; ``__serve_build_asgi_app__`` then hands Serve's HTTP proxy the same
REST app ``onnxpy serve`` runs (:func:`~onnxpy.serving.rest.create_app`, guard included), and
every method of ``inference.GRPCInferenceService`` is a deployment method of the same name that
Serve's gRPC proxy calls with the decoded request. Those methods only check the API key and the
message size (what the single-process server's interceptor and grpcio options do) and call the
same :class:`~onnxpy.serving.grpc.servicer.InferenceServicer` the single-process server
registers, through a context that turns its ``abort`` into the status Serve sends back.

Each replica keeps onnxpy's own dynamic batcher: Serve hands it up to ``max_ongoing_requests``
requests at once (set from the models' batching configuration by
:func:`~onnxpy.serving.ray.options.deployment_options`), and the batcher merges them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from ray import serve

from onnxpy.serving.dataplane import DataPlane
from onnxpy.serving.errors import ModelLoadError, RequestTooLarge, Unavailable, grpc_code
from onnxpy.serving.grpc import inference_pb2 as pb
from onnxpy.serving.grpc.servicer import (
    HEALTH_METHODS,
    NOT_OFFERED,
    InferenceServicer,
    api_key_matches,
)
from onnxpy.serving.ray.cluster_metrics import merge_expositions
from onnxpy.serving.ray.coordinator import POLL_S
from onnxpy.serving.rest import create_app
from onnxpy.serving.server import configure_logging
from onnxpy.serving.settings import ServeSettings

__all__ = ["OnnxpyServer", "ReplicaDataPlane", "DEPLOYMENT_NAME", "PROPAGATE_TIMEOUT_S"]

log = logging.getLogger("onnxpy.serving")
DEPLOYMENT_NAME = "onnxpy"
PROPAGATE_TIMEOUT_S = 120.0  # how long a load/unload waits for the other replicas
CALL_TIMEOUT_S = 5.0  # a coordinator call beyond its own wait: the coordinator is gone
_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]


class ReplicaDataPlane(DataPlane):
    """A data plane that shares explicit model control and metrics with the other replicas.

    Inference, decoding, batching and the sessions are the base class's, untouched. Load and
    unload apply here first, then go through the coordinator to every replica
    (:mod:`~onnxpy.serving.ray.coordinator`); ``/metrics`` answers for all replicas.
    """

    def __init__(self, settings: ServeSettings, coordinator: Any, replica_id: str) -> None:
        super().__init__(settings)
        self.coordinator = coordinator
        self.replica_id = replica_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._applied = 0
        self._failures: dict[int, str] = {}
        self._following = True

    # -- following the other replicas -----------------------------------------------------------
    async def catch_up(self) -> None:
        """Apply the load/unload history before taking traffic (a restarted or added replica)."""
        self._loop = asyncio.get_running_loop()
        await self._poll(wait_s=0)

    async def follow(self) -> None:
        """Poll the coordinator until :meth:`leave`: apply changes, push metrics."""
        while self._following:
            try:
                await self._poll(wait_s=POLL_S)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the coordinator restarting, say: retry
                log.warning(
                    "replica %s: coordinator poll failed (%s); retrying", self.replica_id, e
                )
                await asyncio.sleep(1.0)

    async def _poll(self, wait_s: float) -> None:
        failures, self._failures = self._failures, {}
        call = self.coordinator.poll.remote(
            self.replica_id, self._applied, self.metrics_text(), failures, wait_s
        )
        try:  # a coordinator that is gone (the application shutting down) must not hang us
            generation, changes = await asyncio.wait_for(call, wait_s + CALL_TIMEOUT_S)
        except BaseException:
            self._failures.update(failures)
            raise
        for name, gen, action, params, origin in changes:
            if origin == self.replica_id:
                continue  # applied here before it was recorded
            try:
                if action == "load":
                    await asyncio.to_thread(DataPlane.load_model, self, name, params)
                else:
                    await asyncio.to_thread(DataPlane.unload_model, self, name, params)
                log.info("replica %s: %s '%s' (change %d)", self.replica_id, action, name, gen)
            except Exception as e:  # noqa: BLE001 - reported to the replica that asked
                log.error("replica %s: %s '%s' failed: %s", self.replica_id, action, name, e)
                self._failures[gen] = f"{type(e).__name__}: {e}"
        self._applied = max(self._applied, generation)

    async def leave(self) -> None:
        self._following = False
        try:
            await asyncio.wait_for(self.coordinator.leave.remote(self.replica_id), CALL_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - shutting down anyway (the coordinator too)
            log.debug("replica %s: leave failed: %s", self.replica_id, e)

    # -- explicit control, for every replica ----------------------------------------------------
    def load_model(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        super().load_model(name, parameters)
        self._propagate(name, "load", parameters or {})

    def unload_model(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        super().unload_model(name, parameters)
        self._propagate(name, "unload", parameters or {})

    def _propagate(self, name: str, action: str, parameters: dict[str, Any]) -> None:
        """Record a change applied here and wait for the other replicas (a worker thread)."""
        if self._loop is None:
            return

        async def spread() -> dict[str, Any]:
            gen = await self.coordinator.record.remote(name, action, parameters, self.replica_id)
            return await self.coordinator.wait_applied.remote(gen, PROPAGATE_TIMEOUT_S)

        result = asyncio.run_coroutine_threadsafe(spread(), self._loop).result()
        if result["failed"]:
            where = "; ".join(f"replica {r}: {why}" for r, why in sorted(result["failed"].items()))
            raise ModelLoadError(
                f"'{name}': {action} done on replica {self.replica_id} but failed on {where}"
            )
        if result["lagging"]:
            raise Unavailable(
                f"'{name}': {action} done on replica {self.replica_id}; replicas "
                f"{', '.join(result['lagging'])} have not applied it after "
                f"{PROPAGATE_TIMEOUT_S:.0f} s (they will when they catch up)"
            )

    # -- metrics --------------------------------------------------------------------------------
    async def metrics_exposition(self) -> bytes:
        """Every live replica's metrics (pushed at most ``POLL_S`` ago), this one's fresh."""
        texts: dict[str, bytes] = {}
        try:
            texts = dict(await asyncio.wait_for(self.coordinator.metrics.remote(), CALL_TIMEOUT_S))
        except Exception as e:  # noqa: BLE001 - this replica's own metrics still answer
            log.warning("replica %s: cannot gather the other replicas' metrics: %s",
                        self.replica_id, e)  # fmt: skip
        texts[self.replica_id] = self.metrics_text()
        return merge_expositions(texts)


class _Aborted(Exception):
    """The servicer aborted the call; the code and details are on the Serve context."""


class _Context:
    """The part of a grpc.aio context :class:`InferenceServicer` uses, over Serve's context."""

    def __init__(self, serve_context: Any) -> None:
        self._context = serve_context

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._context.set_code(code)
        self._context.set_details(details)
        raise _Aborted

    def peer(self) -> str:
        return self._context.peer()

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()


class _Server:
    """The ingress: REST app and gRPC methods over one :class:`ReplicaDataPlane`."""

    async def __init__(self, settings: ServeSettings, coordinator: Any) -> None:
        configure_logging(settings)
        replica_id = serve.get_replica_context().replica_id.unique_id
        self.settings = settings
        self.dataplane = ReplicaDataPlane(settings, coordinator, replica_id)
        await asyncio.to_thread(self.dataplane.start)
        await self.dataplane.catch_up()
        self._follower = asyncio.create_task(self.dataplane.follow())
        self._rest = create_app(self.dataplane, settings)
        self._grpc = InferenceServicer(self.dataplane, settings.access_log)
        self._key = settings.api_key.encode() if settings.api_key else None
        log.info("replica %s ready: %s", replica_id, ", ".join(self.dataplane.repository.names()))

    def __serve_build_asgi_app__(self) -> Any:
        return self._rest

    async def __del__(self) -> None:
        """Serve drained this replica's requests; stop following and close the data plane."""
        if not hasattr(self, "dataplane"):
            return
        self._follower.cancel()
        await self.dataplane.leave()
        await asyncio.to_thread(self.dataplane.close, self.settings.drain_timeout)
        parent = getattr(super(), "__del__", None)  # Serve's ASGI wrapper: lifespan shutdown
        if parent is not None:
            await parent()

    # -- gRPC -----------------------------------------------------------------------------------
    def _refusal(self, method: str, request: Any, context: Any) -> tuple[Any, str] | None:
        """What the single-process server's interceptor and message limits would refuse."""
        if self._key and method not in HEALTH_METHODS:
            if not api_key_matches(context.invocation_metadata(), self._key):
                return grpc.StatusCode.UNAUTHENTICATED, "missing or wrong API key"
        if method in NOT_OFFERED:
            return (
                grpc.StatusCode.UNIMPLEMENTED,
                f"{method}: the {NOT_OFFERED[method]} extension is not offered by onnxpy",
            )
        if request is not None and request.ByteSize() > self.settings.max_request_size:
            error = RequestTooLarge(
                f"the message is over the limit of {self.settings.max_request_size} bytes"
            )
            return grpc.StatusCode[grpc_code(error)], str(error)
        return None

    async def _unary(self, method: str, empty: type, request: Any, grpc_context: Any) -> Any:
        refusal = self._refusal(method, request, grpc_context)
        if refusal is not None:
            grpc_context.set_code(refusal[0])
            grpc_context.set_details(refusal[1])
            return empty()
        try:
            return await getattr(self._grpc, method)(request, _Context(grpc_context))
        except _Aborted:
            return empty()

    async def ModelStreamInfer(  # noqa: N802 - the protocol's name
        self, request_stream: AsyncIterator[Any], grpc_context: Any
    ) -> AsyncIterator[Any]:
        refusal = self._refusal("ModelStreamInfer", None, grpc_context)
        if refusal is not None:
            grpc_context.set_code(refusal[0])
            grpc_context.set_details(refusal[1])
            return
        try:
            async for response in self._grpc.ModelStreamInfer(
                self._sized(request_stream), _Context(grpc_context)
            ):
                yield response
        except RequestTooLarge as e:
            grpc_context.set_code(grpc.StatusCode[grpc_code(e)])
            grpc_context.set_details(str(e))

    async def _sized(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        limit = self.settings.max_request_size
        async for request in requests:
            if request.ByteSize() > limit:
                raise RequestTooLarge(f"a stream message is over the limit of {limit} bytes")
            yield request


def _unary_method(name: str, empty: type) -> Any:
    async def method(self: _Server, request: Any, grpc_context: Any) -> Any:
        return await self._unary(name, empty, request, grpc_context)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``inference.GRPCInferenceService/{name}`` through Serve's gRPC proxy."
    return method


for _method in _SERVICE.methods:
    if not (_method.client_streaming or _method.server_streaming):
        _empty = getattr(pb, _method.output_type.name)
        setattr(_Server, _method.name, _unary_method(_method.name, _empty))

OnnxpyServer = serve.deployment(name=DEPLOYMENT_NAME)(serve.ingress()(_Server))
