"""The v2 REST API as an ASGI app (Starlette): thin routes over the data plane.

``create_app(dataplane, settings)`` returns the app, wrapped in the :class:`Guard` middleware
(limits, API key, access log); any ASGI server can run it, and a host such as Ray Serve can
mount it as its ingress. The app does not start or stop the data plane: its owner does.

Routes: ``GET /v2/health/live``, ``/v2/health/ready``, ``GET /v2``,
``GET /v2/models/{name}[/versions/{version}]`` and its ``/ready``, ``/config``, ``/stats``,
``GET /v2/models/stats``, ``POST .../infer`` (JSON and the binary tensor data extension, gzip or
deflate either way), ``POST /v2/repository/index``, ``POST /v2/repository/models/{name}/load``
and ``/unload``, and ``GET /metrics``. Every error, including the framework's own (unknown
route 404, wrong method 405) is ``{"error": "..."}`` with the status from the error table; the
shared-memory, trace and logging routes answer 501 naming what is not offered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onnxpy.errors import OnnxpyError
from onnxpy.serving.dataplane import DataPlane
from onnxpy.serving.errors import RequestTooLarge, Unsupported, http_status
from onnxpy.serving.http_guard import Guard, error_body
from onnxpy.serving.metrics import CONTENT_TYPE
from onnxpy.serving.rest_codec import (
    choose_encoding,
    compress,
    decompress,
    encode_infer_response,
    message_to_dict,
    parse_infer_request,
    parse_json,
)
from onnxpy.serving.settings import ServeSettings

__all__ = ["create_app", "create_metrics_app"]

log = logging.getLogger("onnxpy.serving")

Handler = Callable[[Request], Awaitable[Response]]


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return Response(error_body(message), status_code=status, media_type="application/json")


def _endpoint(fn: Handler) -> Handler:
    """Map the onnxpy errors a route raises to their status; anything else is a 500."""

    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except OnnxpyError as e:
            return _error(http_status(e), str(e))
        except Exception as e:  # noqa: BLE001 - the log keeps the traceback
            log.exception("error in %s %s", request.method, request.url.path)
            return _error(500, f"internal server error: {type(e).__name__}: {e}")

    handler.__name__ = fn.__name__
    return handler


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` (chunked bodies too)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = request.headers.get("content-encoding")
    return decompress(body, encoding, limit) if encoding else body


def create_app(dataplane: DataPlane, settings: ServeSettings) -> Any:
    """The REST app of ``dataplane``: a Starlette app inside the Guard middleware."""
    dp = dataplane
    limit = settings.max_request_size

    def version_of(request: Request) -> str:
        return request.path_params.get("version", "")

    async def live(request: Request) -> Response:
        if dp.live():
            return _json({"live": True})
        return _error(400, "the server is shutting down")

    async def ready(request: Request) -> Response:
        if dp.ready():
            return _json({"ready": True})
        return _error(400, f"not ready: {dp.not_ready_reason()}")

    async def server_metadata(request: Request) -> Response:
        return _json(dp.server_metadata())

    async def model_metadata(request: Request) -> Response:
        return _json(dp.model_metadata(request.path_params["name"], version_of(request)))

    async def model_ready(request: Request) -> Response:
        name, version = request.path_params["name"], version_of(request)
        if dp.model_ready(name, version):
            return _json({"name": name, "ready": True})
        reason = dp.repository.record(name).reason or "version not loaded"
        what = f"model '{name}'" + (f" version {version}" if version else "")
        return _error(400, f"{what} is not ready: {reason}")

    async def model_config(request: Request) -> Response:
        config = dp.model_config(request.path_params["name"], version_of(request))
        return _json(message_to_dict(config))

    async def model_stats(request: Request) -> Response:
        name = request.path_params.get("name", "")
        return _json({"model_stats": dp.model_statistics(name, version_of(request))})

    async def infer(request: Request) -> Response:
        body = await read_body(request, limit)
        req, binary_default = parse_infer_request(
            body,
            request.headers.get("inference-header-content-length"),
            request.path_params["name"],
            version_of(request),
        )
        response = await dp.infer(req)
        payload, header_length = encode_infer_response(response, binary_default)
        headers = {}
        if header_length is not None:
            headers["Inference-Header-Content-Length"] = str(header_length)
            media = "application/octet-stream"
        else:
            media = "application/json"
        encoding = choose_encoding(request.headers.get("accept-encoding"))
        if encoding:
            payload = compress(payload, encoding)
            headers["Content-Encoding"] = encoding
        return Response(payload, media_type=media, headers=headers)

    async def _optional_body(request: Request) -> dict[str, Any]:
        body = await read_body(request, limit)
        return parse_json(body) if body.strip() else {}

    async def repository_index(request: Request) -> Response:
        doc = await _optional_body(request)
        ready_only = doc.get("ready", False)
        if not isinstance(ready_only, bool):
            raise Unsupported("'ready' must be true or false")
        return _json(dp.repository_index(ready_only))

    async def load(request: Request) -> Response:
        doc = await _optional_body(request)
        params = doc.get("parameters") or {}
        await asyncio.to_thread(dp.load_model, request.path_params["name"], params)
        return _json({})

    async def unload(request: Request) -> Response:
        doc = await _optional_body(request)
        await asyncio.to_thread(dp.unload_model, request.path_params["name"], doc.get("parameters"))
        return _json({})

    async def metrics(request: Request) -> Response:
        return Response(await dp.metrics_exposition(), media_type=CONTENT_TYPE)

    async def not_offered(request: Request) -> Response:
        raise Unsupported(
            f"{request.url.path} belongs to an extension onnxpy does not offer (shared memory, "
            "trace or logging); see GET /v2 for the extensions it offers"
        )

    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    get, post = ["GET"], ["POST"]
    routes = [
        Route("/v2/health/live", _endpoint(live), methods=get),
        Route("/v2/health/ready", _endpoint(ready), methods=get),
        Route("/v2", _endpoint(server_metadata), methods=get),
        Route("/v2/models/stats", _endpoint(model_stats), methods=get),
        Route("/v2/repository/index", _endpoint(repository_index), methods=post),
        Route("/v2/repository/models/{name}/load", _endpoint(load), methods=post),
        Route("/v2/repository/models/{name}/unload", _endpoint(unload), methods=post),
        Route("/metrics", _endpoint(metrics), methods=get),
    ]
    for base in (model, versioned):
        routes += [
            Route(base, _endpoint(model_metadata), methods=get),
            Route(base + "/ready", _endpoint(model_ready), methods=get),
            Route(base + "/config", _endpoint(model_config), methods=get),
            Route(base + "/stats", _endpoint(model_stats), methods=get),
            Route(base + "/infer", _endpoint(infer), methods=post),
        ]
    for prefix in ("/v2/systemsharedmemory", "/v2/cudasharedmemory", "/v2/trace", "/v2/logging"):
        routes += [
            Route(prefix, _endpoint(not_offered), methods=["GET", "POST"]),
            Route(prefix + "/{rest:path}", _endpoint(not_offered), methods=["GET", "POST"]),
        ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_exception})
    return Guard(app, settings)


def create_metrics_app(dataplane: DataPlane, settings: ServeSettings) -> Any:
    """An app serving only ``GET /metrics`` (for ``--metrics-port``), with the same guard."""

    async def metrics(request: Request) -> Response:
        return Response(await dataplane.metrics_exposition(), media_type=CONTENT_TYPE)

    app = Starlette(
        routes=[Route("/metrics", _endpoint(metrics), methods=["GET"])],
        exception_handlers={HTTPException: _http_exception},
    )
    return Guard(app, settings)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}; the v2 API lives under /v2"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = (
            f"method {request.method} is not allowed on {request.url.path} (allowed: {allowed})"
        )
    else:
        message = str(exc.detail)
    response = _error(exc.status_code, message)
    for k, v in (exc.headers or {}).items():
        response.headers[k] = v
    return response
