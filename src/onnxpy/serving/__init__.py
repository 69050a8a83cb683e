"""Model serving: the KServe v2 / Open Inference Protocol over REST and gRPC (extra ``serve``).

One transport-free data plane (:mod:`~onnxpy.serving.dataplane`) does all the work: decode,
validate, queue and batch, run onnxpy sessions, encode. REST (:mod:`~onnxpy.serving.rest`,
Starlette on uvicorn) and gRPC (:mod:`onnxpy.serving.grpc`, grpcio's asyncio API) only
translate. Models come from a Triton-style repository, the tutorials' JSON model list or one
file (:mod:`~onnxpy.serving.repository`, :mod:`~onnxpy.serving.config`); settings from flags,
``ONNXPY_`` variables and a TOML file (:mod:`~onnxpy.serving.settings`).

Importing this package imports none of the extra's libraries; the names below load on first use::

    from onnxpy.serving import DataPlane, ServeSettings, create_app, serve
"""

from __future__ import annotations

from onnxpy._lazy import lazy_exports

__all__ = [
    "serve",
    "ServeSettings",
    "load_settings",
    "DataPlane",
    "create_app",
    "InferenceServicer",
    "create_grpc_server",
]

_WHERE = {
    "serve": "onnxpy.serving.server",
    "ServeSettings": "onnxpy.serving.settings",
    "load_settings": "onnxpy.serving.settings",
    "DataPlane": "onnxpy.serving.dataplane",
    "create_app": "onnxpy.serving.rest",
    "InferenceServicer": "onnxpy.serving.grpc.servicer",
    "create_grpc_server": "onnxpy.serving.grpc.servicer",
}

__getattr__, __dir__ = lazy_exports("onnxpy.serving", _WHERE, globals())
