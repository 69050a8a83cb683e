"""AttributeProto -> the Python value a kernel's keyword argument receives."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import AttributeProto, numpy_helper

from onnxpy.model.tensors import tensor_to_array

__all__ = ["decode_attribute"]

_A = AttributeProto


def sparse_to_dense(sp: Any) -> np.ndarray:
    """A SparseTensorProto as a dense array (indices linearized [NNZ] or coordinates [NNZ, r])."""
    values = numpy_helper.to_array(sp.values)
    dims = tuple(int(d) for d in sp.dims)
    dense = np.zeros(int(np.prod(dims, dtype=np.int64)), dtype=values.dtype)
    idx = numpy_helper.to_array(sp.indices).astype(np.int64)
    if idx.ndim == 2:
        idx = np.ravel_multi_index(tuple(idx.T), dims)
    dense[idx] = values
    return dense.reshape(dims)


def _text(b: bytes) -> str | bytes:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def _texts(values: Any) -> list[str | bytes]:
    """Decode a STRINGS field, each distinct value once: repeats share one str object."""
    seen: dict[bytes, str | bytes] = {}
    out = []
    for b in values:
        v = seen.get(b)
        if v is None:
            v = seen[b] = _text(b)
        out.append(v)
    return out


def decode_attribute(attr: AttributeProto, base_dir: str | None, *, arrays: bool = False) -> Any:
    """Decode a non-graph attribute (graphs are compiled by the planner).

    With ``arrays`` (kernels registered with ``array_attributes=True``) INTS arrive as an
    int64 array and FLOATS as a float32 array, built straight from the protobuf field without
    a Python object per element; otherwise both are lists.
    """
    t = attr.type
    if t == _A.FLOAT:
        return float(attr.f)
    if t == _A.INT:
        return int(attr.i)
    if t == _A.STRING:
        return _text(attr.s)
    if t == _A.TENSOR:
        return tensor_to_array(attr.t, base_dir)
    if t == _A.SPARSE_TENSOR:
        return sparse_to_dense(attr.sparse_tensor)
    if t == _A.TYPE_PROTO:
        return attr.tp
    if t == _A.FLOATS:
        return np.array(attr.floats, dtype=np.float32) if arrays else list(attr.floats)
    if t == _A.INTS:
        return np.array(attr.ints, dtype=np.int64) if arrays else list(attr.ints)
    if t == _A.STRINGS:
        return _texts(attr.strings)
    if t == _A.TENSORS:
        return [tensor_to_array(x, base_dir) for x in attr.tensors]
    if t == _A.SPARSE_TENSORS:
        return [sparse_to_dense(x) for x in attr.sparse_tensors]
    if t == _A.TYPE_PROTOS:
        return list(attr.type_protos)
    raise ValueError(f"attribute '{attr.name}' has unsupported type {t}")
