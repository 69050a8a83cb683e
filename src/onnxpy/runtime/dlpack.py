"""DLPack exchange for OrtValue: CPU tensors in and out without a copy.

NumPy implements the protocol (``ndarray.__dlpack__``, ``numpy.from_dlpack``); what it lacks is
reading a bare capsule, which onnxruntime's API accepts (``OrtValue.from_dlpack(capsule)``) and
inspects (``is_dlpack_uint8_tensor``). A capsule's ``DLTensor`` is read here through ctypes, with
the struct layouts of the DLPack specification (dlpack.h, legacy and versioned capsules).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from onnxpy.errors import InvalidArgument

__all__ = ["CPU_DEVICE", "array_from_dlpack", "capsule_dtype", "is_uint8_capsule"]

# DLDeviceType kDLCPU = 1; (device_type, device_id) as __dlpack_device__ returns it.
CPU_DEVICE = (1, 0)
_KDL_UINT = 1


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("major", ctypes.c_uint32),
        ("minor", ctypes.c_uint32),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", _DLTensor),
    ]


_api = ctypes.pythonapi
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _dl_tensor(capsule: Any) -> _DLTensor:
    """The DLTensor a live (unconsumed) DLPack capsule points to."""
    if type(capsule).__name__ != "PyCapsule":
        raise InvalidArgument(
            f"Expected a DLPack capsule or an object with __dlpack__, got {type(capsule).__name__}"
        )
    if _api.PyCapsule_IsValid(capsule, b"dltensor"):
        ptr = _api.PyCapsule_GetPointer(capsule, b"dltensor")
        return _DLTensor.from_address(ptr)  # DLManagedTensor starts with its DLTensor
    if _api.PyCapsule_IsValid(capsule, b"dltensor_versioned"):
        ptr = _api.PyCapsule_GetPointer(capsule, b"dltensor_versioned")
        return _DLManagedTensorVersioned.from_address(ptr).dl_tensor
    raise InvalidArgument(
        "The capsule is not a live DLPack tensor (was it already consumed by another from_dlpack?)"
    )


def capsule_dtype(capsule: Any) -> tuple[int, int, int]:
    """(type code, bits, lanes) of a DLPack capsule's tensor."""
    t = _dl_tensor(capsule).dtype
    return int(t.code), int(t.bits), int(t.lanes)


def is_uint8_capsule(capsule: Any) -> bool:
    """True when the capsule holds 8-bit unsigned integers (how some producers ship booleans)."""
    return capsule_dtype(capsule) == (_KDL_UINT, 8, 1)


class _CapsuleProducer:
    """Gives a bare capsule the two protocol methods numpy.from_dlpack asks for."""

    def __init__(self, capsule: Any) -> None:
        device = _dl_tensor(capsule).device
        self._device = (int(device.device_type), int(device.device_id))
        self._capsule = capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._device

    def __dlpack__(self, **_: Any) -> Any:
        return self._capsule


def array_from_dlpack(data: Any, is_bool_tensor: bool | None = None) -> np.ndarray:
    """A NumPy view of a CPU DLPack tensor (an object with ``__dlpack__`` or a bare capsule).

    ``is_bool_tensor=True`` reinterprets an 8-bit tensor as booleans (producers without a DLPack
    boolean type ship them as uint8). Tensors on another device are refused: onnxpy runs on CPU.
    """
    producer = data if hasattr(data, "__dlpack__") else _CapsuleProducer(data)
    device = tuple(producer.__dlpack_device__())
    if int(device[0]) != CPU_DEVICE[0]:
        raise InvalidArgument(
            f"DLPack tensor on device {device}: onnxpy runs on CPU (device type 1) only; "
            "copy the tensor to host memory first"
        )
    try:
        array = np.from_dlpack(producer)
    except (BufferError, TypeError, RuntimeError) as e:
        raise InvalidArgument(f"Cannot read the DLPack tensor: {e}") from e
    if is_bool_tensor and array.dtype != np.bool_:
        if array.dtype.itemsize != 1:
            raise InvalidArgument(
                f"is_bool_tensor=True needs an 8-bit tensor, got {array.dtype} elements"
            )
        array = array.view(np.bool_)
    return array
