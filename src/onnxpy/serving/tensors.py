"""v2 tensors <-> NumPy: datatypes, JSON ``data`` lists, raw little-endian bytes, BYTES framing.

The v2 protocol names element types ``FP32``, ``INT64``, ``BYTES``...; binary data (the HTTP
binary extension and gRPC ``raw_*_contents``) is row-major little-endian without padding, BOOL as
one byte 0/1, and BYTES as elements each prefixed by its length as a 4-byte little-endian
unsigned int. Every decoder checks what it is given against the declared shape and datatype
before allocating anything, and raises :class:`~onnxpy.errors.InvalidArgument` naming the
tensor and what is wrong.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import ml_dtypes
import numpy as np
from onnx import TensorProto

from onnxpy.errors import InvalidArgument

__all__ = [
    "V2_DTYPES",
    "ELEM_TYPE_TO_V2",
    "V2_TO_CONFIG",
    "CONFIG_TO_V2",
    "MAX_DIM",
    "check_shape",
    "decode_json",
    "decode_raw",
    "decode_bytes_elements",
    "encode_raw",
    "json_data",
    "datatype_of",
]

# v2 datatype -> the NumPy dtype its data decodes to (BYTES: object arrays of str, as onnxpy
# holds ONNX strings).
V2_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "BYTES": np.dtype(object),
}

_T = TensorProto
ELEM_TYPE_TO_V2: dict[int, str] = {
    _T.BOOL: "BOOL",
    _T.UINT8: "UINT8",
    _T.UINT16: "UINT16",
    _T.UINT32: "UINT32",
    _T.UINT64: "UINT64",
    _T.INT8: "INT8",
    _T.INT16: "INT16",
    _T.INT32: "INT32",
    _T.INT64: "INT64",
    _T.FLOAT16: "FP16",
    _T.FLOAT: "FP32",
    _T.DOUBLE: "FP64",
    _T.BFLOAT16: "BF16",
    _T.STRING: "BYTES",
}

# Triton's model-configuration spelling of each datatype (config.pbtxt ``data_type``).
V2_TO_CONFIG: dict[str, str] = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
    "BF16": "TYPE_BF16",
}
CONFIG_TO_V2 = {v: k for k, v in V2_TO_CONFIG.items()}

MAX_DIM = 1 << 48  # no real tensor dimension is larger; refusing early keeps products exact


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """A request shape as a tuple of non-negative ints, or InvalidArgument naming the tensor."""
    if not isinstance(shape, (list, tuple)):
        raise InvalidArgument(f"input '{name}': shape must be a list of integers, got {shape!r}")
    dims = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int):
            raise InvalidArgument(f"input '{name}': shape {list(shape)} holds a non-integer {d!r}")
        if d < 0:
            raise InvalidArgument(f"input '{name}': shape {list(shape)} has a negative dimension")
        if d > MAX_DIM:
            raise InvalidArgument(f"input '{name}': dimension {d} of shape {list(shape)} is huge")
        dims.append(d)
    return tuple(dims)


def _count(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _size_error(name: str, shape: tuple[int, ...], got: int, what: str) -> InvalidArgument:
    return InvalidArgument(
        f"input '{name}': shape {list(shape)} needs {_count(shape)} elements, {what} {got}"
    )


def _flatten_strings(name: str, data: Any, out: list[str]) -> None:
    for item in data:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list):
            _flatten_strings(name, item, out)
        else:
            raise InvalidArgument(
                f"input '{name}': BYTES data must be strings, got {type(item).__name__}"
            )


def decode_json(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    """A JSON ``data`` value (flat or nested list, or one scalar) as an array of ``shape``."""
    if not isinstance(data, list):
        data = [data]
    if datatype == "BYTES":
        flat: list[str] = []
        _flatten_strings(name, data, flat)
        if len(flat) != _count(shape):
            raise _size_error(name, shape, len(flat), "data has")
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(shape)
    target = V2_DTYPES[datatype]
    try:
        values = np.array(data)
    except (ValueError, TypeError) as e:
        raise InvalidArgument(
            f"input '{name}': data is not a rectangular list of numbers ({e})"
        ) from None
    if values.size != _count(shape):
        raise _size_error(name, shape, values.size, "data has")
    kind = values.dtype.kind
    if target.kind == "b":
        if kind != "b" and values.size:
            raise InvalidArgument(f"input '{name}': BOOL data must be true/false, got {kind}")
        return values.astype(np.bool_, copy=False).reshape(shape)
    if kind not in "iuf" and values.size:
        raise InvalidArgument(
            f"input '{name}': {datatype} data must be numbers, got "
            f"{'booleans' if kind == 'b' else 'strings or nulls'}"
        )
    if target.kind in "iu":
        if kind == "f":
            raise InvalidArgument(f"input '{name}': {datatype} data holds non-integer numbers")
        if values.size:
            info = np.iinfo(target)
            low, high = values.min(), values.max()
            if int(low) < info.min or int(high) > info.max:
                raise InvalidArgument(
                    f"input '{name}': value {int(low) if int(low) < info.min else int(high)} "
                    f"is out of range for {datatype}"
                )
        return values.astype(target).reshape(shape)
    with np.errstate(over="ignore"):  # overflow is checked just below, with a clearer message
        out = values.astype(target)
    if values.size and not np.isfinite(out).all() and np.isfinite(values).all():
        raise InvalidArgument(f"input '{name}': a value is out of range for {datatype}")
    return out.reshape(shape)


def decode_bytes_elements(name: str, buf: bytes | memoryview, count: int) -> list[str]:
    """``count`` length-prefixed BYTES elements filling ``buf`` exactly, as str (UTF-8)."""
    view = memoryview(buf)
    items: list[str] = []
    pos, end = 0, len(view)
    while pos < end:
        if end - pos < 4:
            raise InvalidArgument(f"input '{name}': BYTES data ends inside a length prefix")
        (n,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if n > end - pos:
            raise InvalidArgument(
                f"input '{name}': BYTES element {len(items)} claims {n} bytes, {end - pos} remain"
            )
        try:
            items.append(bytes(view[pos : pos + n]).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidArgument(
                f"input '{name}': BYTES element {len(items)} is not UTF-8 text (ONNX strings are)"
            ) from None
        pos += n
        if len(items) > count:
            break
    if len(items) != count:
        raise InvalidArgument(
            f"input '{name}': binary BYTES data holds {len(items)} elements, shape needs {count}"
        )
    return items


def decode_raw(
    name: str, datatype: str, shape: tuple[int, ...], buf: bytes | memoryview
) -> np.ndarray:
    """Raw little-endian bytes of exactly ``shape`` as an array (a view of ``buf`` if possible)."""
    count = _count(shape)
    if datatype == "BYTES":
        out = np.empty(count, dtype=object)
        out[:] = decode_bytes_elements(name, buf, count)
        return out.reshape(shape)
    dtype = V2_DTYPES[datatype]
    expected = count * dtype.itemsize
    if len(buf) != expected:
        raise InvalidArgument(
            f"input '{name}': {datatype} shape {list(shape)} needs {expected} bytes, got {len(buf)}"
        )
    if datatype == "BOOL":
        raw = np.frombuffer(buf, dtype=np.uint8)
        if raw.size and raw.max() > 1:
            raise InvalidArgument(f"input '{name}': BOOL bytes must be 0 or 1")
        return raw.view(np.bool_).reshape(shape)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def datatype_of(array: np.ndarray) -> str:
    """The v2 datatype of an output array (object/str arrays are BYTES)."""
    if array.dtype.kind in "OUS":
        return "BYTES"
    for name, dtype in V2_DTYPES.items():
        if dtype == array.dtype.newbyteorder("<") or dtype == array.dtype:
            return name
    raise InvalidArgument(f"outputs of type {array.dtype} have no v2 datatype")


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    return str(item).encode("utf-8")


def encode_raw(array: np.ndarray) -> bytes:
    """The v2 binary form of an array: little-endian, row-major; BYTES length-prefixed."""
    if array.dtype.kind in "OUS":
        parts = []
        for item in array.reshape(-1).tolist():
            b = _as_bytes(item)
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()


def json_data(array: np.ndarray) -> list | np.ndarray:
    """The JSON ``data`` of an output: a flat list (BYTES as text), or a flat float/int array
    that orjson serializes itself."""
    if array.dtype.kind in "OUS":
        out = []
        for item in array.reshape(-1).tolist():
            if isinstance(item, bytes):
                try:
                    item = item.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidArgument(
                        "a BYTES output holds non-UTF-8 bytes, which JSON cannot carry: request "
                        'it with "binary_data": true'
                    ) from None
            out.append(item)
        return out
    if array.dtype == V2_DTYPES["BF16"]:
        return array.astype(np.float32).reshape(-1).tolist()
    return np.ascontiguousarray(array).reshape(-1)
