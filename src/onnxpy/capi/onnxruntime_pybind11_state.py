"""onnxruntime's native module namespace, served by onnxpy's Python classes.

onnxruntime keeps its compiled classes here (and re-exports them from ``capi._pybind_state``);
code that imports them from this path, such as ``from onnxruntime.capi.onnxruntime_pybind11_state
import Fail, OrtValueVector, RunOptions``, gets onnxpy's equivalents.
"""

from onnxpy.compat import get_build_info, get_version_string, set_seed
from onnxpy.errors import (
    EngineError,
    EPFail,
    Fail,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
    ModelLoaded,
    NoModel,
    NoSuchFile,
    NotImplemented,
    OnnxpyError,
    RuntimeException,
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
from onnxpy.runtime.dlpack import is_uint8_capsule as is_dlpack_uint8_tensor
from onnxpy.runtime.iobinding import SessionIOBinding
from onnxpy.runtime.logs import (
    disable_telemetry_events,
    enable_telemetry_events,
    set_default_logger_callback,
    set_default_logger_severity,
    set_default_logger_verbosity,
)
from onnxpy.runtime.lora import AdapterFormat, LoraAdapter
from onnxpy.runtime.options import ExecutionMode, GraphOptimizationLevel, RunOptions, SessionOptions
from onnxpy.runtime.ortvalue import OrtValue, OrtValueVector
from onnxpy.runtime.session import InferenceSession, ModelMetadata, NodeArg
from onnxpy.runtime.session_api import OrtEpAssignedNode, OrtEpAssignedSubgraph
from onnxpy.runtime.sparse import OrtSparseFormat, SparseCooView, SparseCsrView, SparseTensor


def get_default_session_options() -> SessionOptions:
    """A new SessionOptions with every default (onnxruntime's global defaults object)."""
    return SessionOptions()


__all__ = [
    "AdapterFormat",
    "LoraAdapter",
    "EngineError",
    "EPFail",
    "ExecutionMode",
    "Fail",
    "GraphOptimizationLevel",
    "InferenceSession",
    "InvalidArgument",
    "InvalidGraph",
    "InvalidProtobuf",
    "ModelLoaded",
    "ModelMetadata",
    "NoModel",
    "NoSuchFile",
    "NodeArg",
    "NotImplemented",
    "OnnxpyError",
    "OrtAllocatorType",
    "OrtArenaCfg",
    "OrtDevice",
    "OrtDeviceMemoryType",
    "OrtDeviceVendorId",
    "OrtEpAssignedNode",
    "OrtEpAssignedSubgraph",
    "OrtEpDevice",
    "OrtHardwareDevice",
    "OrtHardwareDeviceType",
    "OrtMemType",
    "OrtMemoryInfo",
    "OrtMemoryInfoDeviceType",
    "OrtSparseFormat",
    "OrtValue",
    "OrtValueVector",
    "RunOptions",
    "RuntimeException",
    "SessionIOBinding",
    "SessionOptions",
    "SparseCooView",
    "SparseCsrView",
    "SparseTensor",
    "create_and_register_allocator",
    "create_and_register_allocator_v2",
    "disable_telemetry_events",
    "enable_telemetry_events",
    "get_all_providers",
    "get_available_providers",
    "get_build_info",
    "get_default_session_options",
    "get_device",
    "get_ep_devices",
    "get_version_string",
    "is_dlpack_uint8_tensor",
    "set_default_logger_callback",
    "set_default_logger_severity",
    "set_default_logger_verbosity",
    "set_seed",
]
