"""``onnxruntime.capi.onnxruntime_inference_collection``: the Python-level classes.

onnxruntime defines its Python wrappers here (InferenceSession, IOBinding, OrtValue, OrtDevice,
SparseTensor) around its native classes, plus ``check_and_normalize_provider_args``. onnxpy's
classes are Python throughout, so the same classes serve both paths.
"""

from onnxpy.providers.normalize import check_and_normalize_provider_args
from onnxpy.runtime.devices import OrtDevice, OrtDeviceVendorId
from onnxpy.runtime.iobinding import IOBinding
from onnxpy.runtime.lora import AdapterFormat
from onnxpy.runtime.ortvalue import OrtValue
from onnxpy.runtime.session import InferenceSession
from onnxpy.runtime.sparse import SparseTensor

# onnxruntime's common base of InferenceSession (and of its training sessions).
Session = InferenceSession


def get_ort_device_type(device_type: str, device_index: int = 0) -> int:
    """The OrtDevice type number of a device name ('cpu' 0, 'cuda' 1, ...)."""
    return OrtDevice.make(device_type, int(device_index)).device_type()


__all__ = [
    "AdapterFormat",
    "IOBinding",
    "InferenceSession",
    "OrtDevice",
    "OrtDeviceVendorId",
    "OrtValue",
    "Session",
    "SparseTensor",
    "check_and_normalize_provider_args",
    "get_ort_device_type",
]
