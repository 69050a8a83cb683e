"""Build the server as a Ray Serve application: for Python, ``serve run``, config files, KubeRay.

:func:`app` is the Python entry point (``serve.run(app("/models", replicas=2))``, or one node of
a larger Serve graph); :func:`build` is the same as an application builder taking one dict, the
form ``serve run`` and Serve config files call::

    serve run onnxpy.serving.ray:build model_repository=/models replicas=2

    # serve deploy config.yaml
    applications:
      - name: onnxpy
        route_prefix: /
        import_path: onnxpy.serving.ray:build
        args: {model_repository: /models, replicas: 2, max_batch_size: 32}

The application is two deployments: ``onnxpy`` (the ingress, one data plane per replica) and
``onnxpy-coordinator`` (explicit model control and metrics across replicas, no CPU). Serve's
proxies are configured per cluster, not per application: gRPC needs the cluster's
``grpc_options.grpc_servicer_functions`` to list :data:`GRPC_SERVICER_FUNCTION`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from onnxpy.serving.ray.options import RayOptions, deployment_options, parse_autoscale
from onnxpy.serving.settings import ServeSettings, load_settings

__all__ = ["app", "build", "bind", "absolute_paths", "require_ray", "GRPC_SERVICER_FUNCTION"]

GRPC_SERVICER_FUNCTION = (
    "onnxpy.serving.grpc.inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"
)
_RAY_KEYS = ("replicas", "autoscale", "num_cpus_per_replica", "max_ongoing_requests")


def require_ray() -> None:
    """Import Ray Serve or fail naming the extra that brings it."""
    try:
        import ray.serve  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"Ray Serve is needed to run onnxpy on Ray but is not installed ({e}): "
            'pip install "onnxpy[ray]"'
        ) from e


def absolute_paths(settings: ServeSettings) -> ServeSettings:
    """Paths made absolute here: replicas run in other working directories (or nodes)."""
    changes = {}
    for name in ("model_repository", "model_config_list", "tls_cert", "tls_key", "tls_ca"):
        value = getattr(settings, name)
        if value:
            changes[name] = os.path.abspath(value)
    return settings.replace(**changes) if changes else settings


def bind(settings: ServeSettings, options: RayOptions) -> Any:
    """The bound application for ``settings`` (absolute paths) and ``options``."""
    require_ray()
    from onnxpy.serving.ray.coordinator import Coordinator
    from onnxpy.serving.ray.replica import OnnxpyServer

    ingress = OnnxpyServer.options(**deployment_options(settings, options))
    return ingress.bind(settings, Coordinator.bind())


def app(
    repository: str | os.PathLike | None = None,
    *,
    settings: ServeSettings | None = None,
    replicas: int | None = None,
    autoscale: tuple[int, int, float] | str | None = None,
    num_cpus_per_replica: float = 1.0,
    max_ongoing_requests: int | None = None,
    **setting_values: Any,
) -> Any:
    """The onnxpy server as a bound Serve application.

    Args:
        repository: model repository folder or ``.onnx`` file (the ``model_repository``
            setting); must be readable at the same path on every node that runs a replica.
        settings: a complete :class:`ServeSettings` instead of ``repository`` and
            ``setting_values`` (which then change it).
        replicas: fixed number of replicas (default 1), or ``autoscale``: (min, max, target
            ongoing requests per replica) or ``"MIN,MAX,TARGET"``.
        num_cpus_per_replica: Ray CPUs each replica reserves.
        max_ongoing_requests: requests Serve sends one replica at once; by default enough for
            the largest model's batches to fill
            (:func:`~onnxpy.serving.ray.options.ongoing_requests_for`).
        **setting_values: any other server setting (``max_batch_size=32``, ``api_key=...``).

    Example::

        from ray import serve
        from onnxpy.serving.ray import app
        serve.run(app("/models", replicas=2, max_batch_size=32), route_prefix="/")
    """
    if settings is None:
        settings = ServeSettings(model_repository=_path(repository), **setting_values)
    else:
        extra = dict(setting_values)
        if repository is not None:
            extra["model_repository"] = _path(repository)
        settings = settings.replace(**extra) if extra else settings
    if isinstance(autoscale, str):
        autoscale = parse_autoscale(autoscale)
    options = RayOptions(
        replicas=replicas,
        autoscale=autoscale,
        num_cpus_per_replica=num_cpus_per_replica,
        max_ongoing_requests=max_ongoing_requests,
    )
    return bind(absolute_paths(settings), options)


def build(args: Mapping[str, Any]) -> Any:
    """Application builder for ``serve run`` and config files: ``args`` are setting names
    (values as strings or typed; ``repository`` is short for ``model_repository``) plus
    ``replicas``, ``autoscale`` ("MIN,MAX,TARGET"), ``num_cpus_per_replica`` and
    ``max_ongoing_requests``. ``ONNXPY_`` environment variables (a runtime_env's
    ``env_vars``: the place for ``ONNXPY_API_KEY``) fill what ``args`` leave out."""
    values = dict(args)
    ray_values = {k: values.pop(k) for k in _RAY_KEYS if k in values}
    if "repository" in values:
        values["model_repository"] = values.pop("repository")
    settings = load_settings(values)
    options = RayOptions(
        replicas=int(ray_values["replicas"]) if "replicas" in ray_values else None,
        autoscale=parse_autoscale(ray_values["autoscale"]) if "autoscale" in ray_values else None,
        num_cpus_per_replica=float(ray_values.get("num_cpus_per_replica", 1.0)),
        max_ongoing_requests=(
            int(ray_values["max_ongoing_requests"])
            if "max_ongoing_requests" in ray_values
            else None
        ),
    )
    return bind(absolute_paths(settings), options)


def _path(value: str | os.PathLike | None) -> str | None:
    return None if value is None else os.fspath(value)
