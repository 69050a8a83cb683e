"""``onnxpy serve``: one process, one event loop, HTTP (uvicorn) and gRPC (grpc.aio) side by side.

:func:`serve` binds the ports first (so ``--http-port 0`` reports the port it got and a port in
use fails at once), prints one line naming the addresses, loads the models off the loop (the
health routes answer meanwhile: live, not ready), and runs until SIGTERM or SIGINT. Then it
drains: the listeners close, requests in flight on either protocol get up to
``drain_timeout`` seconds to finish, the models' queues empty, and the process exits 0.

Hosts that run their own servers (Ray Serve, tests) use the pieces instead:
``DataPlane(settings)``, ``rest.create_app(dataplane, settings)`` and
``grpc.servicer.create_grpc_server(dataplane, settings)`` or the ``InferenceServicer`` class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from typing import Any

from onnxpy.errors import OnnxpyError
from onnxpy.serving.dataplane import DataPlane
from onnxpy.serving.settings import ServeSettings

__all__ = ["serve", "serve_async", "configure_logging", "LISTENING"]

log = logging.getLogger("onnxpy.serving")
LISTENING = "onnxpy serve listening:"  # the first line on stderr, for scripts and tests


def configure_logging(settings: ServeSettings) -> None:
    """Server log lines with a timestamp; access-log lines as the bare JSON they are."""
    level = getattr(logging, settings.log_level.upper())
    main = logging.getLogger("onnxpy.serving")
    if not main.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        main.addHandler(handler)
    main.setLevel(level)
    access = logging.getLogger("onnxpy.serving.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    access.propagate = False
    access.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    return sock


def _http_server(app: Any, settings: ServeSettings, sock: socket.socket) -> Any:
    import uvicorn

    from onnxpy.serving.http_guard import json_errors_protocol

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # serve() handles the signals for both protocols
            yield

    config = uvicorn.Config(
        app,
        http=json_errors_protocol(settings),
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=settings.drain_timeout,
        h11_max_incomplete_event_size=settings.max_header_size + settings.max_url_length,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        ssl_ca_certs=settings.tls_ca,
        ssl_cert_reqs=2 if settings.tls_ca else 0,  # ssl.CERT_REQUIRED with a CA bundle
    )
    return Server(config)


async def serve_async(settings: ServeSettings, stop: asyncio.Event | None = None) -> int:
    """Run the server until ``stop`` is set (or SIGTERM/SIGINT in the main thread)."""
    from onnxpy.serving.rest import create_app, create_metrics_app

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    dataplane = DataPlane(settings)
    dataplane.repository.discover()  # a missing repository or a broken JSON list fails here
    http: list[tuple[Any, socket.socket, str]] = []
    scheme = "https" if settings.tls_cert else "http"
    if settings.http_port >= 0:
        sock = _listen(settings.host, settings.http_port)
        server = _http_server(create_app(dataplane, settings), settings, sock)
        http.append((server, sock, f"http={scheme}://{_address(sock)}"))
    if settings.metrics_port >= 0:
        sock = _listen(settings.host, settings.metrics_port)
        server = _http_server(create_metrics_app(dataplane, settings), settings, sock)
        http.append((server, sock, f"metrics={scheme}://{_address(sock)}/metrics"))
    grpc_server, names = None, [name for _, _, name in http]
    if settings.grpc_port >= 0:
        from onnxpy.serving.grpc.servicer import create_grpc_server

        grpc_server, port = create_grpc_server(dataplane, settings)
        await grpc_server.start()
        names.insert(1, f"grpc={settings.host}:{port}")
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock, _ in http]
    print(LISTENING, " ".join(names), file=sys.stderr, flush=True)
    code = 0
    loading = asyncio.create_task(asyncio.to_thread(dataplane.start))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([loading, stopping], return_when=asyncio.FIRST_COMPLETED)
    if loading.done():
        try:
            loading.result()
            if dataplane.ready():
                log.info("ready: %s", ", ".join(dataplane.repository.names()) or "no models")
            else:
                log.warning("serving, but not ready: %s", dataplane.not_ready_reason())
        except OnnxpyError as e:
            log.error("cannot serve: %s", e)
            stop.set()
            code = 3
        await stopping
    inflight = sum(s.inflight for s in dataplane.metrics.all_stats())
    log.info("draining: %d request(s) in flight get up to %ss", inflight, settings.drain_timeout)
    for server, _, _ in http:
        server.should_exit = True
    waits = [*tasks]
    if grpc_server is not None:
        waits.append(grpc_server.stop(settings.drain_timeout))
    await asyncio.gather(*waits, return_exceptions=True)
    if not loading.done():
        await asyncio.gather(loading, return_exceptions=True)
    await asyncio.to_thread(dataplane.close, settings.drain_timeout)
    log.info("stopped")
    return code


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(settings: ServeSettings) -> int:
    """Run ``onnxpy serve`` in this process until SIGTERM/SIGINT; returns the exit code."""
    configure_logging(settings)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve_async(settings))
    return uvloop.run(serve_async(settings))
