"""The model server on Ray Serve: the same data plane on many replicas (extra ``ray``).

Nothing here re-implements the server: each replica builds an ordinary
:class:`~onnxpy.serving.dataplane.DataPlane` and serves the ordinary REST app and gRPC servicer
through Serve's proxies (:mod:`~onnxpy.serving.ray.replica`). What Ray changes needs a design of
its own and lives in one module each: the deployment options (:mod:`~onnxpy.serving.ray.options`),
explicit model control and metrics across replicas (:mod:`~onnxpy.serving.ray.coordinator`,
:mod:`~onnxpy.serving.ray.cluster_metrics`), the application builder
(:mod:`~onnxpy.serving.ray.application`) and the command's lifetime on a cluster
(:mod:`~onnxpy.serving.ray.cluster`). See ``docs/scaling.md``.

Importing this package imports no extra; the names load on first use::

    from ray import serve
    from onnxpy.serving.ray import app
    serve.run(app("/models", replicas=2), route_prefix="/")
"""

from __future__ import annotations

from onnxpy._lazy import lazy_exports

__all__ = ["app", "build", "serve_ray", "RayOptions"]

_WHERE = {
    "app": "onnxpy.serving.ray.application",
    "build": "onnxpy.serving.ray.application",
    "serve_ray": "onnxpy.serving.ray.cluster",
    "RayOptions": "onnxpy.serving.ray.options",
}

__getattr__, __dir__ = lazy_exports("onnxpy.serving.ray", _WHERE, globals())
