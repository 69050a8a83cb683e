"""Checking what a caller feeds against the graph's declared input types.

Each input's check is compiled once per session: the common case (an ndarray of the exact
dtype, rank and fixed dims) costs a few attribute reads; anything else takes the full path,
which converts what can be read safely (byte order, numpy strings) and refuses the rest with
onnxruntime's messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
from onnx import TypeProto

from onnxpy.errors import InvalidArgument
from onnxpy.types import ELEM_TYPE_TO_DTYPE, elem_type_of, type_string, value_type_string

__all__ = ["FeedCheck", "compile_feed_check", "from_python"]

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
        # ``is`` first: NumPy's dtype equality costs ~0.15 us, and arrays of a builtin type
        # share one dtype object.
        if (
            type(value) is ndarray
            and (value.dtype is dtype or value.dtype == dtype)
            and value.ndim == rank
        ):
            shape = value.shape
            for i, d in fixed:
                if shape[i] != d:
                    break
            else:
                return value
        return _check_tensor(name, value, tp)

    return check


def feed_value(value: Any) -> Any:
    """An OrtValue's contents (bytes and np.void strings as text); other values as they are.
    (The OrtValue module is imported when something else than an array arrives.)"""
    if type(value) is np.ndarray and value.dtype.kind not in "SV":
        return value
    from onnxpy.runtime.ortvalue import feed_value as unwrap

    return unwrap(value)


def _check_tensor(name: str, value: Any, tp: TypeProto) -> np.ndarray:
    value = feed_value(value)  # OrtValue contents; bytes / np.void strings as text
    if not isinstance(value, np.ndarray):
        value = from_python(name, value, tp)
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


_SUB_BYTE_INTS = frozenset({"int4", "uint4", "int2", "uint2"})


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def from_python(name: str, value: Any, tp: TypeProto) -> np.ndarray:
    """A feed written as Python (nested lists, numbers, NumPy scalars) as an array of the
    input's declared element type.

    Floats may round (as any float conversion does); an integer input takes only integral
    values within its range, a bool input only bools, a string input only strings. Ragged
    lists and strings for numbers are refused, naming the input, what was given and what is
    expected. (NumPy *arrays* of another dtype stay refused, as in onnxruntime.)
    """
    expected = type_string(tp)
    if not isinstance(value, (list, tuple, int, float, bool, str, bytes, np.generic)):
        raise InvalidArgument(
            f"Input '{name}' must be a numpy array or a (nested) list of values ({expected}), "
            f"got {type(value).__name__}"
        )
    try:
        given = np.asarray(value)
    except ValueError as e:  # NumPy refuses ragged nesting
        raise InvalidArgument(
            f"Input '{name}': the nested lists are ragged (rows of different lengths), so they "
            f"form no tensor ({expected}); got {_describe(value)}"
        ) from e
    dtype = ELEM_TYPE_TO_DTYPE.get(tp.tensor_type.elem_type)
    if dtype is None:
        return given
    kind = given.dtype.kind
    if given.size == 0 and kind == "f":
        kind = dtype.kind if dtype.kind != "V" else "f"  # [] is float64 to NumPy: any type fits
    if dtype.kind == "O":
        if kind not in "US":
            raise InvalidArgument(
                f"Input '{name}' expects strings ({expected}); got {_describe(value)}"
            )
        return given.astype(str).astype(object)
    if kind in "USO":
        raise InvalidArgument(
            f"Input '{name}' expects numbers ({expected}); got {_describe(value)}, which holds "
            f"{'strings' if kind in 'US' else 'values NumPy cannot hold as numbers of one type'}"
        )
    if dtype == np.bool_:
        if kind != "b":
            raise InvalidArgument(
                f"Input '{name}' expects bools ({expected}); got {_describe(value)}"
            )
        return given
    if kind == "b":
        raise InvalidArgument(
            f"Input '{name}' expects numbers ({expected}); got bools in {_describe(value)}"
        )
    if dtype.kind in "iu" or dtype.name in _SUB_BYTE_INTS:
        return _to_integers(name, given, dtype, expected, value)
    if kind == "c" and dtype.kind != "c":
        raise InvalidArgument(
            f"Input '{name}' expects real numbers ({expected}); got {_describe(value)}"
        )
    with np.errstate(over="ignore"):
        return given.astype(dtype)


def _to_integers(name: str, given: np.ndarray, dtype: np.dtype, expected: str, value: Any):
    if given.dtype.kind == "f" or given.dtype.kind == "c":
        if (
            given.dtype.kind == "c"
            or not np.all(np.isfinite(given))
            or np.any(given != np.trunc(given))
        ):
            raise InvalidArgument(
                f"Input '{name}' expects integers ({expected}); got {_describe(value)}, which "
                "holds values that are not integers"
            )
    info = ml_dtypes.iinfo(dtype) if dtype.name in _SUB_BYTE_INTS else np.iinfo(dtype)
    if given.size and (given.min() < info.min or given.max() > info.max):
        raise InvalidArgument(
            f"Input '{name}' ({expected}): {_describe(value)} holds values outside "
            f"{dtype}'s range [{info.min}, {info.max}]"
        )
    return given.astype(dtype)


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
