"""ONNX element and value types and their Python/NumPy counterparts.

Tensors are ``numpy.ndarray`` (strings as ``object`` arrays of ``str``; float8/int4 and friends
as ``ml_dtypes`` dtypes), sequences are ``list``, maps are ``dict`` and an empty optional is
``None``, exactly as onnxruntime hands them back to Python.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
from onnx import TensorProto, TypeProto

__all__ = [
    "ELEM_TYPE_TO_DTYPE",
    "DTYPE_TO_ELEM_TYPE",
    "ELEM_TYPE_NAMES",
    "INTEGER_RANGES",
    "dtype_of",
    "elem_type_of",
    "tensor_type_string",
    "type_string",
    "shape_of",
    "value_type_string",
]

_T = TensorProto
ELEM_TYPE_TO_DTYPE: dict[int, np.dtype] = {
    _T.FLOAT: np.dtype(np.float32),
    _T.UINT8: np.dtype(np.uint8),
    _T.INT8: np.dtype(np.int8),
    _T.UINT16: np.dtype(np.uint16),
    _T.INT16: np.dtype(np.int16),
    _T.INT32: np.dtype(np.int32),
    _T.INT64: np.dtype(np.int64),
    _T.STRING: np.dtype(object),
    _T.BOOL: np.dtype(np.bool_),
    _T.FLOAT16: np.dtype(np.float16),
    _T.DOUBLE: np.dtype(np.float64),
    _T.UINT32: np.dtype(np.uint32),
    _T.UINT64: np.dtype(np.uint64),
    _T.COMPLEX64: np.dtype(np.complex64),
    _T.COMPLEX128: np.dtype(np.complex128),
    _T.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    _T.FLOAT8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    _T.FLOAT8E4M3FNUZ: np.dtype(ml_dtypes.float8_e4m3fnuz),
    _T.FLOAT8E5M2: np.dtype(ml_dtypes.float8_e5m2),
    _T.FLOAT8E5M2FNUZ: np.dtype(ml_dtypes.float8_e5m2fnuz),
    _T.UINT4: np.dtype(ml_dtypes.uint4),
    _T.INT4: np.dtype(ml_dtypes.int4),
    _T.FLOAT4E2M1: np.dtype(ml_dtypes.float4_e2m1fn),
    _T.FLOAT8E8M0: np.dtype(ml_dtypes.float8_e8m0fnu),
    _T.UINT2: np.dtype(ml_dtypes.uint2),
    _T.INT2: np.dtype(ml_dtypes.int2),
}
if hasattr(_T, "FLOAT6E2M3"):
    ELEM_TYPE_TO_DTYPE[_T.FLOAT6E2M3] = np.dtype(ml_dtypes.float6_e2m3fn)
    ELEM_TYPE_TO_DTYPE[_T.FLOAT6E3M2] = np.dtype(ml_dtypes.float6_e3m2fn)

DTYPE_TO_ELEM_TYPE: dict[np.dtype, int] = {v: k for k, v in ELEM_TYPE_TO_DTYPE.items()}

# (lowest, highest) value of each integer type that quantization (QuantizeLinear, the quantized
# kernels, onnxpy.quantization) saturates to; int64/uint64/uint32 are never quantization targets.
INTEGER_RANGES: dict[np.dtype, tuple[int, int]] = {
    np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int16): (-32768, 32767),
    np.dtype(np.uint16): (0, 65535),
    np.dtype(np.int32): (-(2**31), 2**31 - 1),
    np.dtype(ml_dtypes.int4): (-8, 7),
    np.dtype(ml_dtypes.uint4): (0, 15),
    np.dtype(ml_dtypes.int2): (-2, 1),
    np.dtype(ml_dtypes.uint2): (0, 3),
}

# onnxruntime's spelling in NodeArg.type: 'tensor(float)', 'tensor(int64)', ...
ELEM_TYPE_NAMES: dict[int, str] = {
    _T.FLOAT: "float",
    _T.UINT8: "uint8",
    _T.INT8: "int8",
    _T.UINT16: "uint16",
    _T.INT16: "int16",
    _T.INT32: "int32",
    _T.INT64: "int64",
    _T.STRING: "string",
    _T.BOOL: "bool",
    _T.FLOAT16: "float16",
    _T.DOUBLE: "double",
    _T.UINT32: "uint32",
    _T.UINT64: "uint64",
    _T.COMPLEX64: "complex64",
    _T.COMPLEX128: "complex128",
    _T.BFLOAT16: "bfloat16",
    _T.FLOAT8E4M3FN: "float8e4m3fn",
    _T.FLOAT8E4M3FNUZ: "float8e4m3fnuz",
    _T.FLOAT8E5M2: "float8e5m2",
    _T.FLOAT8E5M2FNUZ: "float8e5m2fnuz",
    _T.UINT4: "uint4",
    _T.INT4: "int4",
    _T.FLOAT4E2M1: "float4e2m1",
    _T.FLOAT8E8M0: "float8e8m0",
    _T.UINT2: "uint2",
    _T.INT2: "int2",
}


def dtype_of(elem_type: int) -> np.dtype:
    """NumPy dtype for an ONNX element type; raises KeyError for an unknown one."""
    return ELEM_TYPE_TO_DTYPE[elem_type]


def elem_type_of(dtype: np.dtype) -> int:
    """ONNX element type for a NumPy dtype (``<U``/``S`` strings count as string)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "US":
        return _T.STRING
    if dtype.byteorder not in "=|":
        dtype = dtype.newbyteorder("=")
    return DTYPE_TO_ELEM_TYPE[dtype]


def tensor_type_string(elem_type: int) -> str:
    return f"tensor({ELEM_TYPE_NAMES.get(elem_type, 'undefined')})"


def type_string(tp: TypeProto | None) -> str:
    """onnxruntime's type string: 'tensor(float)', 'seq(tensor(int64))', 'map(int64,...)'."""
    if tp is None:
        return "undefined"
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return tensor_type_string(tp.tensor_type.elem_type)
    if which == "sparse_tensor_type":
        return f"sparse_tensor({ELEM_TYPE_NAMES.get(tp.sparse_tensor_type.elem_type, 'undefined')})"
    if which == "sequence_type":
        return f"seq({type_string(tp.sequence_type.elem_type)})"
    if which == "map_type":
        key = ELEM_TYPE_NAMES.get(tp.map_type.key_type, "undefined")
        return f"map({key},{type_string(tp.map_type.value_type)})"
    if which == "optional_type":
        return f"optional({type_string(tp.optional_type.elem_type)})"
    return "undefined"


def shape_of(tp: TypeProto | None) -> list[int | str | None]:
    """onnxruntime's NodeArg.shape: ints, symbolic names as str, unknown dims as None."""
    if tp is None or tp.WhichOneof("value") != "tensor_type":
        return []
    tt = tp.tensor_type
    if not tt.HasField("shape"):
        return []
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def value_type_string(value: Any) -> str:
    """Type string of a runtime value, for error messages."""
    if isinstance(value, np.ndarray):
        try:
            return tensor_type_string(elem_type_of(value.dtype))
        except KeyError:
            return f"ndarray({value.dtype})"
    if value is None:
        return "None"
    if isinstance(value, list):
        inner = value_type_string(value[0]) if value else "?"
        return f"seq({inner})"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__
