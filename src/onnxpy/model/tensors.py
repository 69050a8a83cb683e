"""TensorProto -> numpy, with external data memory-mapped and confined to the model's folder."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from onnx import TensorProto, numpy_helper

from onnxpy.errors import InvalidGraph, NoSuchFile
from onnxpy.model.weights import inline_bytes
from onnxpy.types import ELEM_TYPE_TO_DTYPE

__all__ = ["tensor_to_array", "external_data_path", "tensor_nbytes", "mappable"]

# Types whose bytes on disk are exactly numpy's little-endian layout (no sub-byte packing).
_SUB_BYTE = ("int4", "uint4", "int2", "uint2", "float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn")
_MAPPABLE = {
    t for t, d in ELEM_TYPE_TO_DTYPE.items() if d != np.dtype(object) and d.name not in _SUB_BYTE
}


def mappable(data_type: int) -> bool:
    """Whether a tensor of ``data_type`` stores its values exactly as numpy lays them out."""
    return data_type in _MAPPABLE and sys.byteorder == "little"


def tensor_nbytes(t: TensorProto) -> int:
    """Size of a tensor's values in bytes, from dims and type (reading raw_data would copy it)."""
    count = 1
    for d in t.dims:
        count *= int(d)
    dtype = ELEM_TYPE_TO_DTYPE.get(t.data_type)
    return count * (dtype.itemsize if dtype is not None and dtype.kind != "O" else 8)


def external_data_path(tensor: TensorProto, base_dir: str | None) -> tuple[str, int, int | None]:
    """Resolve (path, offset, length) of an external tensor, refusing paths that escape."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location")
    if not location:
        raise InvalidGraph(f"Tensor '{tensor.name}' has external data without a location")
    if base_dir is None:
        raise InvalidGraph(
            f"Tensor '{tensor.name}' stores its data in external file '{location}', but the model "
            "was not loaded from a path; load it from its file so the data can be found"
        )
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.isabs(location) or os.path.commonpath([root, path]) != root:
        raise InvalidGraph(
            f"External data location '{location}' of tensor '{tensor.name}' escapes the model's "
            f"folder '{root}'"
        )
    if not os.path.isfile(path):
        raise NoSuchFile(f"External data file '{path}' of tensor '{tensor.name}' does not exist")
    where = f"External data of tensor '{tensor.name}' in '{location}'"
    try:
        offset = int(info.get("offset", 0) or 0)
        length = int(info["length"]) if info.get("length") else None
    except ValueError as e:
        raise InvalidGraph(f"{where}: offset and length must be integers ({e})") from None
    size = os.path.getsize(path)
    if offset < 0 or (length is not None and length < 0):
        raise InvalidGraph(f"{where}: negative offset {offset} or length {length}")
    if offset > size or (length is not None and offset + length > size):
        raise InvalidGraph(
            f"{where}: offset {offset} and length {length} point past the end of the file "
            f"({size} bytes)"
        )
    return path, offset, length


def _load_external(tensor: TensorProto, base_dir: str | None) -> np.ndarray:
    path, offset, length = external_data_path(tensor, base_dir)
    shape = tuple(int(d) for d in tensor.dims)
    if any(d < 0 for d in shape):
        raise InvalidGraph(f"Tensor '{tensor.name}' has negative dimensions {list(shape)}")
    size = os.path.getsize(path)
    if mappable(tensor.data_type):
        dtype = ELEM_TYPE_TO_DTYPE[tensor.data_type]
        count = math.prod(shape)  # Python ints: absurd dims cannot wrap around
        nbytes = count * dtype.itemsize
        if length is not None and length < nbytes or offset + nbytes > size:
            raise InvalidGraph(
                f"External data of tensor '{tensor.name}' in '{path}' is shorter than its shape "
                f"{list(shape)} needs ({nbytes} bytes at offset {offset}, file has {size})"
            )
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        # Read-only mapping: pages come from the OS cache, nothing is copied.
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    with open(path, "rb") as f:
        f.seek(offset)
        raw = f.read(length if length is not None else -1)
    return tensor_to_array(_with_raw_data(tensor, raw))


def _with_raw_data(tensor: TensorProto, raw: bytes) -> TensorProto:
    """A copy of an external or inline ``tensor`` holding ``raw`` as its own data, for the
    types whose bytes are not numpy's layout (sub-byte packing, big-endian hosts)."""
    copy = TensorProto()
    copy.CopyFrom(tensor)
    del copy.external_data[:]
    copy.data_location = TensorProto.DEFAULT
    copy.raw_data = raw
    return copy


def _decode_inline(tensor: TensorProto, raw: np.ndarray) -> np.ndarray:
    shape = tuple(int(d) for d in tensor.dims)
    dtype = ELEM_TYPE_TO_DTYPE.get(tensor.data_type)
    if dtype is None:
        raise InvalidGraph(f"Tensor '{tensor.name}' has unknown element type {tensor.data_type}")
    if mappable(tensor.data_type):
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize != raw.size:
            raise InvalidGraph(
                f"Tensor '{tensor.name}' has {raw.size} bytes of data but its shape "
                f"{list(shape)} of {dtype} needs {count * dtype.itemsize}"
            )
        return raw.view(dtype).reshape(shape)
    return tensor_to_array(_with_raw_data(tensor, raw.tobytes()))


def tensor_to_array(tensor: TensorProto, base_dir: str | None = None) -> np.ndarray:
    """Decode an initializer or attribute tensor; external data is mapped, not copied."""
    if tensor.data_location == TensorProto.EXTERNAL:
        raw = inline_bytes(tensor)
        if raw is not None:
            return _decode_inline(tensor, raw)
        return _load_external(tensor, base_dir)
    if tensor.data_type not in ELEM_TYPE_TO_DTYPE:
        raise InvalidGraph(f"Tensor '{tensor.name}' has unknown element type {tensor.data_type}")
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as e:  # noqa: BLE001 - e.g. raw bytes that do not match the dims
        raise InvalidGraph(f"Tensor '{tensor.name}' cannot be decoded: {e}") from e
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr
