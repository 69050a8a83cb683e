"""OrtValue and OrtValueVector: onnxruntime's value handles over onnxpy's runtime values.

An OrtValue holds what a session consumes or produces: a tensor (a NumPy array), a sequence
(a list), a map (a dict), a :class:`~onnxpy.runtime.sparse.SparseTensor`, or nothing (an empty
optional). It adds no storage of its own: a CPU tensor made from a NumPy array shares that
array's memory, as onnxruntime's does, and ``numpy()``, ``np.asarray(value)`` and DLPack hand
the same memory back.

onnxruntime has two classes (a C++ binding under ``capi._pybind_state`` and a Python wrapper
around it); onnxpy has one, which answers to both spellings (``value._ortvalue`` and
``value._get_c_value()`` return the value itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from onnxpy.errors import InvalidArgument, RuntimeException
from onnxpy.runtime.devices import OrtDevice, require_cpu
from onnxpy.runtime.dlpack import CPU_DEVICE, array_from_dlpack
from onnxpy.runtime.sparse import SparseTensor
from onnxpy.types import ELEM_TYPE_TO_DTYPE, elem_type_of, tensor_type_string, value_type_string

__all__ = [
    "OrtValue",
    "OrtValueVector",
    "as_host_array",
    "feed_value",
    "numpy_dtype_of",
    "text_array",
]

_CPU = OrtDevice()


def numpy_dtype_of(element_type: Any) -> np.dtype:
    """A NumPy dtype from a NumPy type or dtype, or from an ONNX element type number."""
    if isinstance(element_type, (int, np.integer)) and not isinstance(element_type, bool):
        try:
            return ELEM_TYPE_TO_DTYPE[int(element_type)]
        except KeyError:
            raise InvalidArgument(f"Unknown ONNX element type {element_type}") from None
    try:
        dtype = np.dtype(element_type)
    except TypeError as e:
        raise InvalidArgument(f"Not an element type: {element_type!r} ({e})") from None
    if dtype.kind in "US":
        return np.dtype(object)
    _check_element_type(dtype)
    return dtype


def _check_element_type(dtype: np.dtype) -> int:
    try:
        return elem_type_of(dtype)
    except KeyError:
        raise InvalidArgument(f"NumPy dtype {dtype} has no ONNX tensor element type") from None


def as_host_array(array: Any) -> np.ndarray:
    """An ndarray onnxpy can compute on: C-contiguous, native byte order, strings as objects.

    Shares memory with ``array`` when it already is one (the common case).
    """
    array = np.asarray(array)
    if _is_bytes(array.dtype):
        return text_array(array)
    if array.dtype.kind == "U":
        return array.astype(object)
    _check_element_type(array.dtype)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "<" and not np.little_endian):
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def _is_bytes(dtype: np.dtype) -> bool:
    """``S`` bytes or plain ``np.void`` items (ml_dtypes' bfloat16 and friends are kind 'V' too,
    but not ``np.void``)."""
    return dtype.kind == "S" or dtype.type is np.void


def text_array(array: np.ndarray) -> np.ndarray:
    """Bytes (``S``) or raw ``np.void`` items as an object array of ``str``, read as UTF-8
    (how onnxruntime reads them for a string input)."""
    out = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for i, item in enumerate(array.reshape(-1)):
        raw = bytes(item)
        if array.dtype.kind == "S":
            raw = raw.rstrip(b"\0")
        try:
            flat[i] = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidArgument(f"A byte string is not UTF-8 text: {raw[:40]!r} ({e})") from None
    return out


def feed_value(value: Any) -> Any:
    """What a session computes on for a fed value: an OrtValue's content, and string tensors
    given as bytes or ``np.void`` items read as text."""
    if isinstance(value, OrtValue):
        return value._value
    if isinstance(value, np.ndarray) and _is_bytes(value.dtype):
        return text_array(value)
    return value


class OrtValue:
    """A value for or from a session: see the module docstring."""

    __slots__ = ("_value", "_numpy_obj", "_type")

    def __init__(self, ortvalue: OrtValue | None = None, numpy_obj: Any = None) -> None:
        # onnxruntime's wrapper constructor: OrtValue(c_value, numpy_obj_to_keep_alive).
        if ortvalue is not None and not isinstance(ortvalue, OrtValue):
            raise InvalidArgument(
                "OrtValue(...) wraps another OrtValue; build one from an array with "
                "OrtValue.ortvalue_from_numpy(array)"
            )
        self._value: Any = ortvalue._value if ortvalue is not None else None
        self._type: str | None = ortvalue._type if ortvalue is not None else None
        self._numpy_obj = (
            numpy_obj if numpy_obj is not None else getattr(ortvalue, "_numpy_obj", None)
        )

    @classmethod
    def _wrap(cls, value: Any, type_string: str | None = None, keep: Any = None) -> OrtValue:
        """An OrtValue around a runtime value (no copy)."""
        self = cls.__new__(cls)
        self._value = value
        self._type = type_string
        self._numpy_obj = keep
        return self

    # -- factories -----------------------------------------------------------------------------
    @staticmethod
    def ortvalue_from_numpy(
        numpy_obj: Any, device_type: str = "cpu", device_id: int = 0, vendor_id: int = -1
    ) -> OrtValue:
        """A tensor over ``numpy_obj``'s memory (a contiguous copy if it is not contiguous)."""
        require_cpu(device_type, "OrtValue.ortvalue_from_numpy")
        array = as_host_array(numpy_obj)
        return OrtValue._wrap(array, keep=numpy_obj if array is numpy_obj else None)

    @staticmethod
    def ortvalue_from_numpy_with_onnx_type(data: Any, onnx_element_type: int) -> OrtValue:
        """A tensor reading ``data``'s bytes as ONNX element type ``onnx_element_type``
        (e.g. uint16 bits as bfloat16)."""
        dtype = numpy_dtype_of(int(onnx_element_type))
        array = as_host_array(data)
        if dtype.kind == "O" or array.dtype.itemsize != dtype.itemsize:
            raise InvalidArgument(
                f"Items of the array are {array.dtype.itemsize} bytes ({array.dtype}) but ONNX "
                f"element type {onnx_element_type} ({dtype}) takes {dtype.itemsize}"
            )
        return OrtValue._wrap(array.view(dtype), keep=data)

    @staticmethod
    def ortvalue_from_shape_and_type(
        shape: Sequence[int],
        element_type: Any,
        device_type: str = "cpu",
        device_id: int = 0,
        vendor_id: int = -1,
    ) -> OrtValue:
        """A new tensor of ``shape`` (NumPy type or ONNX element type number), zero-filled."""
        require_cpu(device_type, "OrtValue.ortvalue_from_shape_and_type")
        dtype = numpy_dtype_of(element_type)
        dims = tuple(int(d) for d in shape)
        if any(d < 0 for d in dims):
            raise InvalidArgument(f"Shape {list(dims)} has a negative dimension")
        if dtype.kind == "O":
            return OrtValue._wrap(np.full(dims, "", dtype=object))
        return OrtValue._wrap(np.zeros(dims, dtype=dtype))

    ortvalue_from_shape_and_onnx_type = ortvalue_from_shape_and_type

    @staticmethod
    def ort_value_from_sparse_tensor(sparse_tensor: SparseTensor) -> OrtValue:
        if not isinstance(sparse_tensor, SparseTensor):
            raise InvalidArgument(f"Expected a SparseTensor, got {type(sparse_tensor).__name__}")
        return OrtValue._wrap(sparse_tensor)

    @staticmethod
    def from_dlpack(data: Any, is_bool_tensor: bool | None = None) -> OrtValue:
        """A tensor sharing the memory of a DLPack tensor (a capsule or any ``__dlpack__``
        object: a torch tensor, a NumPy array, another OrtValue)."""
        return OrtValue._wrap(array_from_dlpack(data, is_bool_tensor), keep=data)

    # -- what it holds -------------------------------------------------------------------------
    def has_value(self) -> bool:
        return self._value is not None

    def is_tensor(self) -> bool:
        return isinstance(self._value, np.ndarray)

    def is_sparse_tensor(self) -> bool:
        return isinstance(self._value, SparseTensor)

    def is_tensor_sequence(self) -> bool:
        return isinstance(self._value, list)

    def _tensor(self, what: str) -> np.ndarray:
        if not isinstance(self._value, np.ndarray):
            raise RuntimeException(
                f"OrtValue.{what}() needs a tensor; this OrtValue holds {self.data_type()}"
            )
        return self._value

    def numpy(self) -> np.ndarray:
        """The tensor as a NumPy array (the same memory, not a copy)."""
        return self._tensor("numpy")

    def shape(self) -> list[int]:
        if isinstance(self._value, SparseTensor):
            return self._value.dense_shape()
        return list(self._tensor("shape").shape)

    def element_type(self) -> int:
        """The ONNX element type number (1 float, 7 int64, ...)."""
        if isinstance(self._value, SparseTensor):
            return self._value.element_type()
        return elem_type_of(self._tensor("element_type").dtype)

    def data_type(self) -> str:
        """onnxruntime's type string: 'tensor(float)', 'seq(tensor(int64))', ..."""
        if self._type is not None:
            return self._type
        value = self._value
        if isinstance(value, np.ndarray):
            return tensor_type_string(elem_type_of(value.dtype))
        if isinstance(value, SparseTensor):
            return value.data_type()
        if value is None:
            return "optional(undefined)"
        return value_type_string(value)

    def device_name(self) -> str:
        return "cpu"

    def tensor_size_in_bytes(self) -> int:
        """Bytes of tensor data (for strings: their UTF-8 bytes)."""
        array = self._tensor("tensor_size_in_bytes")
        if array.dtype.kind == "O":
            return sum(len(str(s).encode("utf-8")) for s in array.reshape(-1))
        return int(array.nbytes)

    def data_ptr(self) -> int:
        """Address of the first element (an integer, as onnxruntime's)."""
        return int(self._tensor("data_ptr").__array_interface__["data"][0])

    def as_sparse_tensor(self) -> SparseTensor:
        if not isinstance(self._value, SparseTensor):
            raise RuntimeException(
                f"OrtValue.as_sparse_tensor() needs a sparse tensor; this holds {self.data_type()}"
            )
        return self._value

    def update_inplace(self, np_arr: Any) -> None:
        """Copy ``np_arr`` into this tensor's memory (same element type and element count)."""
        target = self._tensor("update_inplace")
        source = np.asarray(np_arr)
        if source.size != target.size:
            raise InvalidArgument(
                f"The input size of numpy arrays ({source.size} elements) does not match the "
                f"size of the OrtValue ({target.size})"
            )
        if source.dtype != target.dtype and not (
            target.dtype.kind == "O" and source.dtype.kind in "USO"
        ):
            raise InvalidArgument(
                f"update_inplace needs {target.dtype} elements, got {source.dtype}; cast first"
            )
        target.reshape(-1)[...] = source.reshape(-1)

    # -- protocols -----------------------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self._tensor("__array__")
        if dtype is not None and np.dtype(dtype) != array.dtype:
            return array.astype(dtype)
        return array.copy() if copy else array

    def __dlpack__(self, **kwargs: Any) -> Any:
        args = {k: v for k, v in kwargs.items() if v is not None}
        return self._tensor("__dlpack__").__dlpack__(**args)

    def __dlpack_device__(self) -> tuple[int, int]:
        return CPU_DEVICE

    def to_dlpack(self) -> Any:
        """A DLPack capsule sharing this tensor's memory."""
        return self.__dlpack__()

    def device(self) -> OrtDevice:
        return _CPU

    @property
    def _ortvalue(self) -> OrtValue:
        return self

    def _get_c_value(self) -> OrtValue:
        return self

    def __repr__(self) -> str:
        if isinstance(self._value, np.ndarray):
            return f"OrtValue({self.data_type()}, shape={list(self._value.shape)}, device=cpu)"
        return f"OrtValue({self.data_type()})"


class OrtValueVector(list):
    """A list of OrtValues with the methods of onnxruntime's OrtValueVector."""

    def push_back(self, value: OrtValue) -> None:
        if not isinstance(value, OrtValue):
            raise InvalidArgument(f"OrtValueVector holds OrtValues, got {type(value).__name__}")
        self.append(value)

    def reserve(self, n: int) -> None:  # noqa: ARG002 - Python lists grow on their own
        return None

    def shrink_to_fit(self) -> None:
        return None

    def element_type_at(self, index: int) -> int:
        return self[index].element_type()

    def bool_tensor_indices(self) -> list[int]:
        return [i for i, v in enumerate(self) if v.is_tensor() and v.numpy().dtype == np.bool_]

    def dlpack_at(self, index: int) -> Any:
        return self[index].to_dlpack()

    def to_dlpacks(self, to_tensor: Callable[[Any], Any] | None = None) -> list[Any]:
        capsules = [v.to_dlpack() for v in self]
        return capsules if to_tensor is None else [to_tensor(c) for c in capsules]

    @classmethod
    def of(cls, values: Iterable[OrtValue]) -> OrtValueVector:
        vector = cls()
        for v in values:
            vector.push_back(v)
        return vector
