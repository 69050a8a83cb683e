"""onnxpy: an ONNX runtime in Python with onnxruntime's API.

Change one import and existing code runs::

    import onnxpy as rt
    sess = rt.InferenceSession("model.onnx")
    outputs = sess.run(None, {sess.get_inputs()[0].name: x})
"""

from __future__ import annotations

from onnxpy import errors, kernels  # noqa: F401 - importing kernels registers them
from onnxpy.errors import (
    Fail,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
    NoSuchFile,
    NotImplemented,
    OnnxpyError,
)
from onnxpy.providers import get_all_providers, get_available_providers, get_device
from onnxpy.runtime.options import (
    ExecutionMode,
    GraphOptimizationLevel,
    RunOptions,
    SessionOptions,
)
from onnxpy.runtime.session import InferenceSession, ModelMetadata, NodeArg

__version__ = "0.1.0"

__all__ = [
    "InferenceSession",
    "SessionOptions",
    "RunOptions",
    "GraphOptimizationLevel",
    "ExecutionMode",
    "NodeArg",
    "ModelMetadata",
    "get_available_providers",
    "get_all_providers",
    "get_device",
    "errors",
    "OnnxpyError",
    "Fail",
    "InvalidArgument",
    "InvalidGraph",
    "InvalidProtobuf",
    "NoSuchFile",
    "NotImplemented",
    "__version__",
]
