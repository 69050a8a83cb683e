"""``inference.GRPCInferenceService`` (grpcio's asyncio API) over a data plane.

:class:`InferenceServicer` is a plain class wrapping a
:class:`~onnxpy.serving.dataplane.DataPlane`; any ``grpc.aio`` server can carry it
(``inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)``).
:func:`create_grpc_server` builds the one ``onnxpy serve`` runs: message size limits from the
settings, TLS when configured, the API key checked on every method but the health ones, and the
shared-memory, trace and log-settings methods answered UNIMPLEMENTED with a message that says
so. Errors map through the one table in :mod:`onnxpy.serving.errors`; a failing request of a
``ModelStreamInfer`` stream is answered in-stream (``error_message``) and the stream goes on.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import grpc
import orjson

from onnxpy.errors import OnnxpyError
from onnxpy.serving.dataplane import DataPlane
from onnxpy.serving.errors import grpc_code
from onnxpy.serving.grpc import inference_pb2 as pb
from onnxpy.serving.grpc import inference_pb2_grpc as pb_grpc
from onnxpy.serving.grpc.convert import (
    parameters_from_proto,
    request_from_proto,
    response_to_proto,
    stats_to_proto,
)
from onnxpy.serving.http_guard import access_logger
from onnxpy.serving.settings import ServeSettings

__all__ = ["InferenceServicer", "create_grpc_server", "api_key_matches", "SERVICE"]

log = logging.getLogger("onnxpy.serving")
SERVICE = "inference.GRPCInferenceService"
HEALTH_METHODS = {"ServerLive", "ServerReady", "ModelReady"}
NOT_OFFERED = {
    "SystemSharedMemoryStatus": "shared memory",
    "SystemSharedMemoryRegister": "shared memory",
    "SystemSharedMemoryUnregister": "shared memory",
    "CudaSharedMemoryStatus": "CUDA shared memory",
    "CudaSharedMemoryRegister": "CUDA shared memory",
    "CudaSharedMemoryUnregister": "CUDA shared memory",
    "TraceSetting": "trace",
    "LogSettings": "log settings",
}


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The v2 gRPC methods as thin calls into the data plane."""

    def __init__(self, dataplane: DataPlane, access_log: bool = False) -> None:
        self.dp = dataplane
        self._log = access_log

    async def _call(self, method: str, context: Any, fn: Callable[[], Awaitable[Any]]) -> Any:
        start = time.perf_counter()
        code, message = "OK", ""
        try:
            return await fn()
        except OnnxpyError as e:
            code, message = grpc_code(e), str(e)
        except Exception as e:  # noqa: BLE001 - the client gets the code, the log the traceback
            log.exception("unexpected error in gRPC %s", method)
            code, message = "INTERNAL", f"internal server error: {type(e).__name__}: {e}"
        finally:
            if self._log:
                _access(method, context, code, start)
        await context.abort(grpc.StatusCode[code], message)

    # -- health and metadata -------------------------------------------------------------------
    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 - proto names
        return await self._call(
            "ServerLive", context, _value(lambda: pb.ServerLiveResponse(live=self.dp.live()))
        )

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._call(
            "ServerReady", context, _value(lambda: pb.ServerReadyResponse(ready=self.dp.ready()))
        )

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        def answer() -> Any:
            return pb.ModelReadyResponse(ready=self.dp.model_ready(request.name, request.version))

        return await self._call("ModelReady", context, _value(answer))

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._call(
            "ServerMetadata",
            context,
            _value(lambda: pb.ServerMetadataResponse(**self.dp.server_metadata())),
        )

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        def answer() -> Any:
            meta = self.dp.model_metadata(request.name, request.version)
            out = pb.ModelMetadataResponse(
                name=meta["name"], versions=meta["versions"], platform=meta["platform"]
            )
            for key in ("inputs", "outputs"):
                for t in meta[key]:
                    getattr(out, key).add(**t)
            return out

        return await self._call("ModelMetadata", context, _value(answer))

    async def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        def answer() -> Any:
            return pb.ModelConfigResponse(
                config=self.dp.model_config(request.name, request.version)
            )

        return await self._call("ModelConfig", context, _value(answer))

    async def ModelStatistics(self, request: Any, context: Any) -> Any:  # noqa: N802
        def answer() -> Any:
            return stats_to_proto(self.dp.model_statistics(request.name, request.version))

        return await self._call("ModelStatistics", context, _value(answer))

    # -- repository ----------------------------------------------------------------------------
    async def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802
        def answer() -> Any:
            out = pb.RepositoryIndexResponse()
            for row in self.dp.repository_index(request.ready):
                out.models.add(**row)
            return out

        return await self._call("RepositoryIndex", context, _value(answer))

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def run() -> Any:
            params = parameters_from_proto(request.parameters)
            await asyncio.to_thread(self.dp.load_model, request.model_name, params)
            return pb.RepositoryModelLoadResponse()

        return await self._call("RepositoryModelLoad", context, run)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:  # noqa: N802
        async def run() -> Any:
            params = parameters_from_proto(request.parameters)
            await asyncio.to_thread(self.dp.unload_model, request.model_name, params)
            return pb.RepositoryModelUnloadResponse()

        return await self._call("RepositoryModelUnload", context, run)

    # -- inference -----------------------------------------------------------------------------
    async def _infer(self, request: Any) -> Any:
        response = await self.dp.infer(request_from_proto(request))
        return response_to_proto(response)

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._call("ModelInfer", context, lambda: self._infer(request))

    async def ModelStreamInfer(  # noqa: N802
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        async for request in request_iterator:
            start = time.perf_counter()
            try:
                response = await self._infer(request)
                yield pb.ModelStreamInferResponse(infer_response=response)
                code = "OK"
            except Exception as e:  # noqa: BLE001 - answered in-stream; the stream goes on
                if not isinstance(e, OnnxpyError):
                    log.exception("unexpected error in gRPC ModelStreamInfer")
                code = grpc_code(e)
                failed = pb.ModelInferResponse(
                    model_name=request.model_name, model_version=request.model_version,
                    id=request.id,
                )  # fmt: skip
                yield pb.ModelStreamInferResponse(error_message=str(e), infer_response=failed)
            if self._log:
                _access("ModelStreamInfer", context, code, start)


def _value(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        return fn()

    return run


def _access(method: str, context: Any, code: str, start: float) -> None:
    record = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "proto": "grpc",
        "client": context.peer(),
        "method": method,
        "code": code,
        "ms": round((time.perf_counter() - start) * 1000, 3),
    }
    access_logger.info(orjson.dumps(record).decode())


class _ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without the API key (metadata ``authorization: Bearer KEY`` or
    ``x-api-key: KEY``), except the health methods."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        method = details.method.rsplit("/", 1)[-1]
        if method in HEALTH_METHODS or self._authorized(details.invocation_metadata or ()):
            return await continuation(details)

        async def refuse(request: Any, context: Any) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong API key")

        if method == "ModelStreamInfer":
            return grpc.stream_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)

    def _authorized(self, metadata: Any) -> bool:
        return api_key_matches(metadata, self._key)


def api_key_matches(metadata: Any, key: bytes) -> bool:
    """Whether gRPC metadata carries ``key`` (``authorization: Bearer KEY`` or ``x-api-key``);
    shared with the Ray Serve replicas, which see the metadata the proxy forwards."""
    for name, value in metadata:
        value = value.encode() if isinstance(value, str) else value
        if name == "authorization" and value[:7].lower() == b"bearer ":
            if hmac.compare_digest(value[7:].strip(), key):
                return True
        elif name == "x-api-key" and hmac.compare_digest(value.strip(), key):
            return True
    return False


class _NotOffered(grpc.GenericRpcHandler):
    """UNIMPLEMENTED, with a message, for the protocol's methods onnxpy leaves out."""

    def service(self, details: Any) -> Any:
        service, _, method = details.method.lstrip("/").partition("/")
        if service != SERVICE or method not in NOT_OFFERED:
            return None

        async def refuse(request: Any, context: Any) -> None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{method}: the {NOT_OFFERED[method]} extension is not offered by onnxpy",
            )

        return grpc.unary_unary_rpc_method_handler(refuse)


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def create_grpc_server(dataplane: DataPlane, settings: ServeSettings) -> tuple[Any, int]:
    """A ``grpc.aio`` server for ``dataplane`` bound to settings.host:grpc_port; (server, port)."""
    interceptors = [_ApiKeyInterceptor(settings.api_key)] if settings.api_key else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", settings.max_request_size),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a silent share
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane, settings.access_log), server
    )
    server.add_generic_rpc_handlers([_NotOffered()])
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    address = f"{host}:{settings.grpc_port}"
    if settings.tls_cert:
        credentials = grpc.ssl_server_credentials(
            [(_read(settings.tls_key), _read(settings.tls_cert))],
            root_certificates=_read(settings.tls_ca),
            require_client_auth=bool(settings.tls_ca),
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC to {address} (port in use?)")
    return server, port
