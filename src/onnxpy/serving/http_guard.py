"""What every HTTP request passes before a route: limits, the API key, access logs, JSON errors.

:class:`Guard` is plain ASGI middleware around the REST app, so it works under any ASGI server
(uvicorn here, Ray Serve's proxy later). In order it refuses, each with a JSON ``{"error"}``
body: a request target over ``max_url_length`` (414), a header block over ``max_header_size``
(431), a ``Content-Length`` over ``max_request_size`` (413, before a byte of the body is read),
and a missing or wrong API key on anything but the health routes (401). It writes one JSON
access-log line per request when asked, and turns any exception that escaped a route into a
500 with a one-line message (the traceback goes to the server log only).

:class:`JsonErrorsProtocol` is uvicorn's httptools protocol with the two answers uvicorn gives
on its own made JSON too: a request that is not valid HTTP (400), and a header block that grows
past the limit before it is even complete (431), which uvicorn would otherwise buffer without
bound.
"""

from __future__ import annotations

import hmac
import logging
import time
from datetime import datetime, timezone
from typing import Any

import orjson

from onnxpy.serving.settings import ServeSettings

__all__ = ["Guard", "error_body", "json_errors_protocol", "HEALTH_SUFFIXES", "access_logger"]

log = logging.getLogger("onnxpy.serving")
access_logger = logging.getLogger("onnxpy.serving.access")

# Health routes need no API key (probes do not carry one): server live/ready and model ready.
HEALTH_SUFFIXES = ("/v2/health/live", "/v2/health/ready")

Scope = dict[str, Any]


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def _send_error(send: Any, status: int, message: str, extra: list | None = None) -> int:
    body = error_body(message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status


def is_health(path: str) -> bool:
    return path in HEALTH_SUFFIXES or (path.startswith("/v2/models/") and path.endswith("/ready"))


class Guard:
    """ASGI middleware: limits, API key, access log, last-resort JSON 500 (module docstring)."""

    def __init__(self, app: Any, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings
        self._key = settings.api_key.encode() if settings.api_key else None
        self._log = settings.access_log

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = {"status": 0, "out": 0, "started": False}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
            elif message["type"] == "http.response.body":
                state["out"] += len(message.get("body", b""))
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                status, message, extra = refusal
                await _send_error(send_wrapper, status, message, extra)
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as e:  # noqa: BLE001 - the client gets JSON, the log the traceback
            log.exception("unexpected error answering %s %s", scope.get("method"), scope["path"])
            if not state["started"]:
                await _send_error(send_wrapper, 500, f"internal server error: {type(e).__name__}")
        if self._log:
            self._access(scope, state, start)

    def _refusal(self, scope: Scope) -> tuple[int, str, list] | None:
        s = self.settings
        close = [(b"connection", b"close")]
        target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if target > s.max_url_length:
            return 414, f"the request target is over {s.max_url_length} bytes", close
        headers = scope["headers"]
        size = sum(len(k) + len(v) + 4 for k, v in headers)
        if size > s.max_header_size:
            return 431, f"the request headers are over {s.max_header_size} bytes", close
        length = None
        key_ok = self._key is None or is_health(scope["path"])
        for k, v in headers:
            if k == b"content-length":
                if not v.isdigit():
                    return 400, f"Content-Length {v.decode('latin-1')!r} is not a number", close
                length = int(v)
            elif not key_ok and k in (b"authorization", b"x-api-key"):
                token = v[7:].strip() if k == b"authorization" else v.strip()
                if k == b"authorization" and v[:7].lower() != b"bearer ":
                    continue
                key_ok = hmac.compare_digest(token, self._key)
        if length is not None and length > s.max_request_size:
            return 413, f"the body is {length} bytes, over the limit of {s.max_request_size}", close
        if not key_ok:
            return 401, "missing or wrong API key", [(b"www-authenticate", b"Bearer")]
        return None

    @staticmethod
    def _access(scope: Scope, state: dict, start: float) -> None:
        client = scope.get("client")
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "proto": "http",
            "client": f"{client[0]}:{client[1]}" if client else None,
            "method": scope.get("method"),
            "path": scope["path"],
            "status": state["status"],
            "ms": round((time.perf_counter() - start) * 1000, 3),
            "bytes_out": state["out"],
        }
        access_logger.info(orjson.dumps(record).decode())


def json_errors_protocol(settings: ServeSettings) -> type | str:
    """uvicorn's httptools protocol class answering its own errors in JSON (or "auto")."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools missing: uvicorn's h11 protocol, plain-text errors
        return "auto"
    limit = settings.max_header_size + settings.max_url_length

    class JsonErrorsProtocol(HttpToolsProtocol):
        """HttpToolsProtocol whose own refusals carry {"error": ...} bodies."""

        _head_bytes = 0
        _in_head = True

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            counting = self._in_head
            super().data_received(data)
            if counting and self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > limit:
                    self._refuse(431, f"the request head is over {limit} bytes")

        def send_400_response(self, msg: str) -> None:
            self._refuse(400, f"invalid HTTP request: {msg}")

        def _refuse(self, status: int, message: str) -> None:
            body = error_body(message)
            reason = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}[status]
            head = [
                b"HTTP/1.1 %d %s\r\n" % (status, reason),
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + body)
            self.transport.close()

    return JsonErrorsProtocol
