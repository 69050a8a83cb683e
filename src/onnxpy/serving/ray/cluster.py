"""``onnxpy serve --ray``: deploy the server on a Ray cluster, keep it up, take it down.

:func:`serve_ray` joins the cluster at ``--address`` (``auto``: the one started on this machine
with ``ray start``; ``ray://host:10001``: a remote one) or, without it, starts a local Ray
instance (this machine's CPUs, no dashboard) that it shuts down on exit. It starts Serve's
proxies (HTTP on ``--host:--http-port``, gRPC on ``--grpc-port``; Serve binds gRPC on every
interface), deploys :func:`~onnxpy.serving.ray.application.bind`'s application as
``onnxpy`` at route ``/``, prints the ``onnxpy serve listening:`` line, and waits for SIGTERM
or SIGINT. Then it deletes the application (Serve lets each replica finish its requests, up
to ``--drain-timeout``) and, if it started Ray, stops Serve and Ray.

``--metrics-port`` is served by this process: the coordinator's view of every replica's metrics
(the HTTP port's ``/metrics`` answers the same through the proxy).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from onnxpy.errors import InvalidArgument
from onnxpy.serving.ray.application import GRPC_SERVICER_FUNCTION, absolute_paths, bind, require_ray
from onnxpy.serving.ray.options import RayOptions
from onnxpy.serving.server import LISTENING, configure_logging
from onnxpy.serving.settings import ServeSettings

__all__ = ["serve_ray", "check_ray_settings"]

log = logging.getLogger("onnxpy.serving")


def check_ray_settings(settings: ServeSettings) -> None:
    """Refuse what Serve's proxies cannot do, before starting anything."""
    if settings.http_port < 0:
        raise InvalidArgument("--ray serves HTTP through Serve's proxy: --http-port cannot be -1")
    if settings.tls_cert and settings.grpc_port >= 0:
        raise InvalidArgument(
            "Ray Serve's gRPC proxy has no TLS: with --tls-cert under --ray, turn gRPC off "
            "(--grpc-port -1) or terminate TLS in front of the proxy"
        )
    if settings.model_control == "explicit":
        from onnxpy.serving.metrics import ServerMetrics
        from onnxpy.serving.repository import Repository

        found = Repository(settings, ServerMetrics()).discover()
        wanted = set(settings.load_model) - {"*"}
        unknown = sorted(wanted - set(found))
        if unknown:
            raise InvalidArgument(f"--load-model names unknown models: {unknown}")


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _start_ray(options: RayOptions, settings: ServeSettings) -> bool:
    """Connect to Ray (or start it); True when this process started it and must stop it."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
    if options.address:
        ray.init(address=options.address, **quiet)
        return False
    # Serve's gRPC proxy takes its message limit from the environment it starts in: give it
    # the server's, so an over-limit message is refused there as onnxpy serve refuses it.
    os.environ.setdefault("RAY_SERVE_GRPC_MAX_MESSAGE_SIZE", str(settings.max_request_size))
    ray.init(address="local", include_dashboard=False, **quiet)
    return True


def _proxy_options(settings: ServeSettings) -> tuple[dict[str, Any], dict[str, Any] | None]:
    http: dict[str, Any] = {"host": settings.host, "port": settings.http_port}
    if settings.tls_cert:
        http.update(ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key)
        if settings.tls_ca:
            http["ssl_ca_certs"] = settings.tls_ca
    grpc = None
    if settings.grpc_port >= 0:
        grpc = {"port": settings.grpc_port, "grpc_servicer_functions": [GRPC_SERVICER_FUNCTION]}
    return http, grpc


def _listening_line(settings: ServeSettings, details: dict[str, Any], metrics: str) -> str:
    http = details.get("http_options") or {}
    grpc = details.get("grpc_options") or {}
    scheme = "https" if settings.tls_cert else "http"
    host = http.get("host", settings.host)
    names = [f"http={scheme}://{host}:{http.get('port', settings.http_port)}"]
    if GRPC_SERVICER_FUNCTION in (grpc.get("grpc_servicer_functions") or []):
        port = grpc.get("port", settings.grpc_port)
        names.append(f"grpc={settings.host}:{port}")
        log.warning(
            "Ray Serve's gRPC proxy listens on every interface (port %s) whatever --host says, "
            "and so do Ray's own processes: firewall them, or use --grpc-port -1 for no gRPC "
            "(docs/scaling.md, Security)", port,
        )  # fmt: skip
    if metrics:
        names.append(metrics)
    import ray

    names.append(f"ray={ray.get_runtime_context().gcs_address}")
    return f"{LISTENING} {' '.join(names)}"


class _ClusterMetrics:
    """What the metrics app needs of a data plane, answered by the coordinator."""

    def __init__(self, app_name: str) -> None:
        self._app_name = app_name
        self._handle: Any = None

    async def metrics_exposition(self) -> bytes:
        from ray import serve

        from onnxpy.serving.ray.cluster_metrics import merge_expositions
        from onnxpy.serving.ray.coordinator import Coordinator

        if self._handle is None:  # the port opens before the application is deployed
            self._handle = serve.get_deployment_handle(Coordinator.name, self._app_name)
        return merge_expositions(await self._handle.metrics.remote())


def _metrics_server(settings: ServeSettings, app_name: str) -> tuple[Any, str]:
    """``--metrics-port`` in this process (a thread running uvicorn); (server, address)."""
    from onnxpy.serving.rest import create_metrics_app
    from onnxpy.serving.server import _http_server, _listen

    sock = _listen(settings.host, settings.metrics_port)
    app = create_metrics_app(_ClusterMetrics(app_name), settings)
    server = _http_server(app, settings, sock)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="onnxpy-metrics",
        daemon=True,
    )  # fmt: skip
    thread.start()
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.tls_cert else "http"
    return server, f"metrics={scheme}://{host}:{port}/metrics"


def serve_ray(settings: ServeSettings, options: RayOptions) -> int:
    """Run ``onnxpy serve --ray`` until SIGTERM/SIGINT; returns the exit code."""
    require_ray()
    from ray import serve

    configure_logging(settings)
    settings = absolute_paths(settings)
    check_ray_settings(settings)
    if settings.http_port == 0:
        settings = settings.replace(http_port=_free_port(settings.host))
    if settings.grpc_port == 0:
        settings = settings.replace(grpc_port=_free_port("0.0.0.0"))
    application = bind(settings, options)  # reads the repository's configs: fails early
    started = _start_ray(options, settings)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # after ray.init, which installs a C++ failure handler for SIGTERM that aborts the
        # process: ours replaces it, and the shutdown below runs instead
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    metrics_server = None
    code = 0
    try:
        http, grpc = _proxy_options(settings)
        serve.start(http_options=http, grpc_options=grpc)
        metrics = ""
        if settings.metrics_port >= 0:
            metrics_server, metrics = _metrics_server(settings, options.app_name)
        from ray.serve.context import _get_global_client

        details = _get_global_client().get_serve_details()
        print(_listening_line(settings, details, metrics), file=sys.stderr, flush=True)
        start = time.perf_counter()
        serve.run(application, name=options.app_name, route_prefix="/", blocking=False)
        log.info("ready on Ray in %.1f s: application '%s'", time.perf_counter() - start,
                 options.app_name)  # fmt: skip
        while not stop.wait(0.5):
            pass
    except Exception as e:  # noqa: BLE001 - a failed deployment ends the command, cleanly
        log.error("cannot serve on Ray: %s", e)
        code = 3
    finally:
        start = time.perf_counter()
        log.info("stopping: deleting application '%s' (replicas drain)", options.app_name)
        if metrics_server is not None:
            metrics_server.should_exit = True
        try:
            serve.delete(options.app_name)
        except Exception as e:  # noqa: BLE001 - shutting down regardless
            log.warning("deleting the application failed: %s", e)
        if started:
            import ray

            serve.shutdown()
            ray.shutdown()
        log.info("stopped in %.1f s", time.perf_counter() - start)
    return code
