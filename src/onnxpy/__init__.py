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
from onnxpy.runtime.devices import (
    OrtAllocatorType,
    OrtArenaCfg,
    OrtDevice,
    OrtDeviceMemoryType,
    OrtDeviceVendorId,
    OrtEpDevice,
    OrtHardwareDevice,
    OrtHardwareDeviceType,
    OrtMemoryInfo,
    OrtMemoryInfoDeviceType,
    OrtMemType,
    create_and_register_allocator,
    create_and_register_allocator_v2,
    get_ep_devices,
)
from onnxpy.runtime.iobinding import IOBinding, SessionIOBinding
from onnxpy.runtime.logs import (
    disable_telemetry_events,
    enable_telemetry_events,
    set_default_logger_callback,
    set_default_logger_severity,
    set_default_logger_verbosity,
)
from onnxpy.runtime.lora import AdapterFormat, LoraAdapter
from onnxpy.runtime.options import (
    ExecutionMode,
    GraphOptimizationLevel,
    RunOptions,
    SessionOptions,
)
from onnxpy.runtime.ortvalue import OrtValue
from onnxpy.runtime.session import InferenceSession, ModelMetadata, NodeArg
from onnxpy.runtime.session_api import OrtEpAssignedNode, OrtEpAssignedSubgraph
from onnxpy.runtime.sparse import OrtSparseFormat, SparseTensor
from onnxpy.version import ORT_API_VERSION as __ort_api_version__
from onnxpy.version import __version__

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
