"""onnxpy: an ONNX runtime in Python with onnxruntime's API.

Change one import and existing code runs::

    import onnxpy as rt
    sess = rt.InferenceSession("model.onnx")
    outputs = sess.run(None, {sess.get_inputs()[0].name: x})

For libraries that ``import onnxruntime`` themselves, ``onnxpy.install_as_onnxruntime()``
makes that import give onnxpy in the current process (see ``onnxpy.compat``).
"""

from __future__ import annotations

from onnxpy import capi, errors, kernels  # noqa: F401 - importing kernels registers them
from onnxpy._lazy import lazy_exports
from onnxpy.compat import (
    get_build_info,
    get_version_string,
    install_as_onnxruntime,
    onnxruntime_alias,
    set_seed,
)
from onnxpy.custom_ops import register_op
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
from onnxpy.runtime.logs import (
    disable_telemetry_events,
    enable_telemetry_events,
    set_default_logger_callback,
    set_default_logger_severity,
    set_default_logger_verbosity,
)
from onnxpy.runtime.options import (
    ExecutionMode,
    GraphOptimizationLevel,
    RunOptions,
    SessionOptions,
)
from onnxpy.runtime.session import InferenceSession, ModelMetadata, NodeArg
from onnxpy.version import ORT_API_VERSION as __ort_api_version__
from onnxpy.version import __version__

# The rest of onnxruntime's API is imported on first access (PEP 562): OrtValue, IOBinding,
# devices, sparse tensors and LoRA adapters cost ~5 ms of every ``import onnxpy`` otherwise.
_LAZY = {
    "onnxpy.runtime.devices": (
        "OrtAllocatorType",
        "OrtArenaCfg",
        "OrtDevice",
        "OrtDeviceMemoryType",
        "OrtDeviceVendorId",
        "OrtEpDevice",
        "OrtHardwareDevice",
        "OrtHardwareDeviceType",
        "OrtMemoryInfo",
        "OrtMemoryInfoDeviceType",
        "OrtMemType",
        "create_and_register_allocator",
        "create_and_register_allocator_v2",
        "get_ep_devices",
    ),
    "onnxpy.runtime.iobinding": ("IOBinding", "SessionIOBinding"),
    "onnxpy.runtime.lora": ("AdapterFormat", "LoraAdapter"),
    "onnxpy.runtime.ortvalue": ("OrtValue",),
    "onnxpy.runtime.session_api": ("OrtEpAssignedNode", "OrtEpAssignedSubgraph"),
    "onnxpy.runtime.sparse": ("OrtSparseFormat", "SparseTensor"),
}
_LAZY_FROM = {name: module for module, names in _LAZY.items() for name in names}
__getattr__, __dir__ = lazy_exports("onnxpy", _LAZY_FROM, globals())

__all__ = [
    "InferenceSession",
    "SessionOptions",
    "RunOptions",
    "GraphOptimizationLevel",
    "ExecutionMode",
    "NodeArg",
    "ModelMetadata",
    "IOBinding",
    "AdapterFormat",
    "LoraAdapter",
    "SessionIOBinding",
    "OrtValue",
    "SparseTensor",
    "OrtSparseFormat",
    "OrtDevice",
    "OrtDeviceVendorId",
    "OrtDeviceMemoryType",
    "OrtMemoryInfo",
    "OrtMemoryInfoDeviceType",
    "OrtMemType",
    "OrtAllocatorType",
    "OrtArenaCfg",
    "OrtEpDevice",
    "OrtHardwareDevice",
    "OrtHardwareDeviceType",
    "OrtEpAssignedNode",
    "OrtEpAssignedSubgraph",
    "create_and_register_allocator",
    "create_and_register_allocator_v2",
    "get_available_providers",
    "get_all_providers",
    "get_device",
    "get_ep_devices",
    "get_version_string",
    "get_build_info",
    "set_seed",
    "set_default_logger_severity",
    "set_default_logger_verbosity",
    "set_default_logger_callback",
    "enable_telemetry_events",
    "disable_telemetry_events",
    "register_op",
    "install_as_onnxruntime",
    "onnxruntime_alias",
    "errors",
    "OnnxpyError",
    "Fail",
    "InvalidArgument",
    "InvalidGraph",
    "InvalidProtobuf",
    "NoSuchFile",
    "NotImplemented",
    "__version__",
    "__ort_api_version__",
]
