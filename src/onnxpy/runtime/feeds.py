"""Checking what a caller feeds against the graph's declared input types.

Each input's check is compiled once per session: the common case (an ndarray of the exact
dtype, rank and fixed dims) costs a few attribute reads; anything else takes the full path,
which converts what can be read safely (byte order, numpy strings) and refuses the rest with
onnxruntime's messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import TypeProto

from onnxpy.errors import InvalidArgument
from onnxpy.runtime.ortvalue import feed_value
from onnxpy.types import ELEM_TYPE_TO_DTYPE, elem_type_of, type_string, value_type_string

__all__ = ["FeedCheck", "compile_feed_check"]

FeedCheck = Callable[[Any], Any]


def compile_feed_check(name: str, tp: TypeProto | None) -> FeedCheck:
    """The check of input ``name`` (returns the value to use, or raises InvalidArgument)."""
    if tp is None or tp.WhichOneof("value") != "tensor_type":
        return lambda value: _check_feed(name, value, tp)
    tt = tp.tensor_type
    dtype = ELEM_TYPE_TO_DTYPE.get(tt.elem_type)
    if dtype is None or dtype.kind == "O" or not tt.HasField("shape"):
        return lambda value: _check_feed(name, value, tp)
    rank = len(tt.shape.dim)
    fixed = tuple((i, d.dim_value) for i, d in enumerate(tt.shape.dim) if d.HasField("dim_value"))
    ndarray = np.ndarray

    def check(value: Any) -> Any:
        if type(value) is ndarray and value.dtype == dtype and value.ndim == rank:
            shape = value.shape
            for i, d in fixed:
                if shape[i] != d:
                    break
            else:
                return value
        return _check_tensor(name, value, tp)

    return check


def _check_tensor(name: str, value: Any, tp: TypeProto) -> np.ndarray:
    value = feed_value(value)  # OrtValue contents; bytes / np.void strings as text (issue 16)
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise InvalidArgument(
            f"Input '{name}' must be a numpy array ({type_string(tp)}), got {type(value).__name__}"
        )
    tt = tp.tensor_type
    try:
        actual = elem_type_of(value.dtype)
    except KeyError:
        raise InvalidArgument(
            f"Unexpected input data type for input '{name}'. Actual: (ndarray of {value.dtype}), "
            f"expected: ({type_string(tp)})"
        ) from None
    if tt.elem_type and actual != tt.elem_type:
        raise InvalidArgument(
            f"Unexpected input data type for input '{name}'. Actual: ({value_type_string(value)}), "
            f"expected: ({type_string(tp)})"
        )
    if value.dtype.kind in "US":
        value = value.astype(str).astype(object)
    elif value.dtype.byteorder == ">" or (
        value.dtype.byteorder == "<" and np.little_endian is False
    ):
        value = value.astype(value.dtype.newbyteorder("="))
    if tt.HasField("shape"):
        dims = tt.shape.dim
        if len(dims) != value.ndim:
            raise InvalidArgument(
                f"Invalid rank for input: {name} Got: {value.ndim} Expected: {len(dims)} "
                "Please fix either the inputs/outputs or the model."
            )
        bad = [
            (i, value.shape[i], d.dim_value)
            for i, d in enumerate(dims)
            if d.HasField("dim_value") and d.dim_value != value.shape[i]
        ]
        if bad:
            lines = "\n".join(f" index: {i} Got: {g} Expected: {e}" for i, g, e in bad)
            raise InvalidArgument(
                f"Got invalid dimensions for input: {name} for the following indices\n{lines}\n"
                "Please fix either the inputs/outputs or the model."
            )
    return value


def _check_feed(name: str, value: Any, tp: TypeProto | None) -> Any:
    """Validate one fed value against its declared type; return it in canonical form."""
    value = feed_value(value)  # OrtValue contents; bytes / np.void strings as text (issue 16)
    if tp is None:
        return value
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return _check_tensor(name, value, tp)
    if which == "sequence_type":
        if not isinstance(value, (list, tuple)):
            raise InvalidArgument(
                f"Input '{name}' must be a list ({type_string(tp)}), got {type(value).__name__}"
            )
        return [
            _check_feed(f"{name}[{i}]", v, tp.sequence_type.elem_type) for i, v in enumerate(value)
        ]
    if which == "map_type":
        if not isinstance(value, dict):
            raise InvalidArgument(
                f"Input '{name}' must be a dict ({type_string(tp)}), got {type(value).__name__}"
            )
        return value
    if which == "optional_type":
        if value is None:
            return None
        return _check_feed(name, value, tp.optional_type.elem_type)
    return value
