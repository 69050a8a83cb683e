"""Table columns <-> model inputs and outputs, row by row, refusing only the rows that are bad.

An :class:`InputPlan` says where each model input comes from: a column of the same name by
default, or the columns given (``columns={"X": ["sepal_length", ..., "petal_width"]}`` stacks
scalar columns into a [rows, 4] tensor). A column may hold scalars, lists (fixed-size or not,
nested for higher ranks) or Arrow tensors. :meth:`InputPlan.feeds` turns a batch into NumPy
feeds of the model's element type and marks the rows that cannot be fed (a null, a list of the
wrong length, a value that does not convert) with the reason; the other rows go on.

:func:`output_array` turns one model output back into an Arrow array: a [rows] tensor into
scalars, [rows, k] into fixed-size lists, higher ranks into Arrow fixed-shape tensors, and a
sequence of maps (skl2onnx's ZipMap) into a map column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from onnxpy.errors import InvalidArgument
from onnxpy.types import ELEM_TYPE_NAMES, ELEM_TYPE_TO_DTYPE

__all__ = ["InputPlan", "InputSource", "output_array", "dtype_of_type_string"]

_DTYPES = {f"tensor({name})": ELEM_TYPE_TO_DTYPE[t] for t, name in ELEM_TYPE_NAMES.items()}


def dtype_of_type_string(type_string: str) -> np.dtype:
    """``'tensor(float)'`` -> float32; only tensor inputs can come from table columns."""
    dtype = _DTYPES.get(type_string)
    if dtype is None:
        raise InvalidArgument(f"input type {type_string} cannot be fed from table columns")
    return dtype


@dataclass(frozen=True)
class InputSource:
    """One model input: its name, element type, per-row shape and the columns feeding it."""

    name: str
    dtype: np.dtype
    row_shape: tuple[int | None, ...]  # the shape after the batch dimension (None: any)
    columns: tuple[str, ...]

    @property
    def stacked(self) -> bool:
        return len(self.columns) > 1


class InputPlan:
    """Where each input's values come from, checked against one batch's schema."""

    def __init__(
        self,
        inputs: Sequence[Any],
        schema: pa.Schema,
        columns: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        columns = dict(columns or {})
        unknown = sorted(set(columns) - {i.name for i in inputs})
        if unknown:
            raise InvalidArgument(
                f"--columns names {unknown}, which are not inputs of the model "
                f"({', '.join(i.name for i in inputs)})"
            )
        self.sources: list[InputSource] = []
        for arg in inputs:
            given = columns.get(arg.name, arg.name)
            if arg.name not in columns and given not in schema.names and len(inputs) == 1:
                if len(schema.names) == 1:  # one input, one column (a .npy array): that one
                    given = schema.names[0]
            names = (given,) if isinstance(given, str) else tuple(given)
            missing = [c for c in names if c not in schema.names]
            if missing:
                raise InvalidArgument(
                    f"input '{arg.name}' needs column(s) {missing}, which the data does not have "
                    f"(columns: {', '.join(schema.names)}); map columns to inputs with "
                    f"--columns {arg.name}=COL or {arg.name}=COL1,COL2,..."
                )
            shape = list(arg.shape or [])
            if not shape:
                raise InvalidArgument(
                    f"input '{arg.name}' is a scalar: a batch job needs a batch dimension"
                )
            row = tuple(d if isinstance(d, int) and d >= 0 else None for d in shape[1:])
            if len(names) > 1 and (len(row) != 1 or row[0] not in (None, len(names))):
                raise InvalidArgument(
                    f"input '{arg.name}' has shape {shape}: {len(names)} columns stack into "
                    f"[rows, {len(names)}]"
                )
            src = InputSource(arg.name, dtype_of_type_string(arg.type), row, names)
            self.sources.append(src)
        self.used = {c for s in self.sources for c in s.columns}

    def feeds(self, batch: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray, dict[int, str]]:
        """(feeds of the good rows, mask of good rows, {row position: why it was refused})."""
        n = batch.num_rows
        reasons: dict[int, str] = {}
        values: dict[str, np.ndarray] = {}
        for src in self.sources:
            if src.stacked:
                parts = [_scalars(batch.column(c), c, src, reasons) for c in src.columns]
                values[src.name] = np.stack(parts, axis=1) if parts else np.empty((n, 0))
            else:
                c = src.columns[0]
                values[src.name] = _column(batch.column(c), c, src, reasons)
        good = np.ones(n, dtype=bool)
        if reasons:
            good[list(reasons)] = False
        feeds = {k: (v if not reasons else v[good]) for k, v in values.items()}
        return feeds, good, reasons


def _chunks(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _null_mask(array: pa.Array) -> np.ndarray:
    if array.null_count == 0:
        return np.zeros(len(array), dtype=bool)
    return np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _refuse(reasons: dict[int, str], rows: np.ndarray, why: str) -> None:
    for r in np.flatnonzero(rows):
        reasons.setdefault(int(r), why)


def _rows_with(row_of: np.ndarray, leaf_mask: np.ndarray, n: int) -> np.ndarray:
    """Rows owning at least one flagged leaf."""
    return np.bincount(row_of[leaf_mask], minlength=n) > 0


def _convert(values: pa.Array, dtype: np.dtype, what: str) -> np.ndarray:
    """Arrow values (no nulls) -> NumPy of ``dtype``, strings parsed; ValueError if any fails."""
    if dtype == np.dtype(object):
        return np.asarray(values.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        target = pa.from_numpy_dtype(dtype) if dtype.kind in "biuf" else pa.float64()
        try:
            values = pc.cast(values, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise ValueError(str(e)) from None
    try:
        out = values.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as e:
        raise ValueError(str(e)) from None
    if out.dtype == dtype:
        return out
    if out.dtype.kind not in "biuf":
        raise ValueError(f"{out.dtype} values do not convert to {dtype}")
    if dtype.kind in "iu" and out.dtype.kind == "f":
        if not (np.all(np.isfinite(out)) and np.all(out == np.round(out))):
            raise ValueError(f"a non-integer value for an {dtype} input")
    if dtype.kind in "iu" and out.dtype.kind in "iu" and out.size:
        info = np.iinfo(dtype)
        if out.min() < info.min or out.max() > info.max:
            raise ValueError(f"a value out of the range of {dtype}")
    return out.astype(dtype)


def _leaves(array: pa.Array, what: str, reasons: dict[int, str]) -> tuple[pa.Array, np.ndarray]:
    """Every level of lists flattened: (leaf values, the row of each leaf); null lists and
    null values refuse their rows."""
    n = len(array)
    row_of = np.arange(n)
    flat = array
    while _is_list(flat.type):
        _refuse(reasons, _rows_with(row_of, _null_mask(flat), n), f"{what} holds a null list")
        sizes = pc.list_value_length(flat).fill_null(0).to_numpy(zero_copy_only=False)
        row_of = np.repeat(row_of, sizes)
        flat = pc.list_flatten(flat)
    nested = _is_list(array.type)
    why = f"{what} holds a null value" if nested else f"{what} is null"
    _refuse(reasons, _rows_with(row_of, _null_mask(flat), n), why)
    return flat, row_of


def _uniform_leaves(array: pa.Array) -> tuple[pa.Array, int] | None:
    """The common case, fast: lists without nulls, the same length on every row at each level.
    (leaf values, values per row), or None when some row differs (the general path then finds
    which)."""
    flat, per_row = array, 1
    while _is_list(flat.type):
        if flat.null_count or not len(flat):
            return None
        if pa.types.is_fixed_size_list(flat.type):
            size = flat.type.list_size
        else:
            sizes = pc.list_value_length(flat).to_numpy(zero_copy_only=False)
            size = int(sizes[0])
            if not np.all(sizes == size):
                return None
        per_row *= size
        flat = pc.list_flatten(flat)
    if flat.null_count:
        return None
    return flat, per_row


def _fill(
    leaves: pa.Array,
    row_of: np.ndarray,
    need: int,
    dtype: np.dtype,
    what: str,
    reasons: dict[int, str],
    n: int,
) -> np.ndarray:
    good = np.ones(n, dtype=bool)
    if reasons:
        good[[r for r in reasons if r < n]] = False
    keep = good[row_of] if len(row_of) else np.zeros(0, dtype=bool)
    out = np.zeros((n, need), dtype=dtype)
    try:
        chosen = leaves if keep.all() else leaves.filter(pa.array(keep))
        out[good] = _convert(chosen, dtype, what).reshape(-1, need)
        return out
    except ValueError:
        pass
    starts = np.searchsorted(row_of, np.arange(n))
    for r in np.flatnonzero(good):
        try:
            out[r] = _convert(leaves.slice(int(starts[r]), need), dtype, what)
        except ValueError as e:
            reasons[int(r)] = f"{what}: {e}"
    return out


def _scalars(
    column: pa.ChunkedArray, name: str, src: InputSource, reasons: dict[int, str]
) -> np.ndarray:
    """One scalar column of a stacked input -> [rows]."""
    array = _chunks(column)
    what = f"column '{name}'"
    if pa.types.is_nested(array.type) or isinstance(array.type, pa.BaseExtensionType):
        raise InvalidArgument(f"{what} holds lists: stack only scalar columns into '{src.name}'")
    leaves, row_of = _leaves(array, what, reasons)
    return _fill(leaves, row_of, 1, src.dtype, what, reasons, len(array))[:, 0]


def _column(
    column: pa.ChunkedArray, name: str, src: InputSource, reasons: dict[int, str]
) -> np.ndarray:
    """One column feeding a whole input -> [rows, *row_shape]."""
    array = _chunks(column)
    n = len(array)
    what = f"column '{name}'"
    if isinstance(array.type, pa.BaseExtensionType):
        return _tensor_column(array, src, what)
    known = None not in src.row_shape
    uniform = _uniform_leaves(array) if _is_list(array.type) else None
    if uniform is not None and (known or len(src.row_shape) == 1):
        leaves, per_row = uniform
        if not known or per_row == prod(src.row_shape):
            shape = [d if d is not None else per_row for d in src.row_shape]
            try:  # rows refused by other columns are dropped later, with the feeds
                return _convert(leaves, src.dtype, what).reshape(n, *shape)
            except ValueError:
                pass  # some value does not convert: the general path finds its row
    leaves, row_of = _leaves(array, what, reasons)
    lengths = np.bincount(row_of, minlength=n)
    if not _is_list(array.type):
        if prod(src.row_shape) != 1 or not known:
            raise InvalidArgument(
                f"{what} holds one value per row; input '{src.name}' needs "
                f"{_shape_text(src.row_shape)} per row: give a list column, or several scalar "
                f"columns with --columns {src.name}=COL1,COL2,..."
            )
        need = 1
    elif known:
        need = prod(src.row_shape)
    else:
        if len(src.row_shape) > 1:
            raise InvalidArgument(
                f"input '{src.name}' has unknown dimensions {_shape_text(src.row_shape)} after "
                "the batch dimension: feed it from an Arrow fixed-shape tensor column"
            )
        ok = [r for r in range(n) if r not in reasons]
        need = int(lengths[ok[0]]) if ok else 0
    for r in np.flatnonzero(lengths != need):
        reasons.setdefault(
            int(r), f"{what} has {lengths[r]} values in this row; input '{src.name}' needs {need}"
        )
    flat = _fill(leaves, row_of, need, src.dtype, what, reasons, n)
    shape = [d if d is not None else need for d in src.row_shape]
    return flat.reshape(n, *shape)


def _shape_text(row_shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in row_shape) + "]"


def _tensor_column(array: pa.Array, src: InputSource, what: str) -> np.ndarray:
    """An Arrow tensor column (pyarrow's fixed_shape_tensor or Ray Data's tensor type)."""
    if hasattr(array, "to_numpy_ndarray"):
        values = array.to_numpy_ndarray()
    else:
        values = np.asarray(array.to_numpy())
    row = values.shape[1:]
    want = src.row_shape
    if len(row) != len(want) or any(w is not None and w != g for w, g in zip(want, row)):
        raise InvalidArgument(
            f"{what} holds tensors of shape {list(row)}; input '{src.name}' needs "
            f"{_shape_text(want)} per row"
        )
    if values.dtype != src.dtype:
        try:
            values = _convert(pa.array(values.ravel()), src.dtype, what).reshape(values.shape)
        except ValueError as e:
            raise InvalidArgument(f"{what}: {e}") from None
    return values


def output_array(name: str, value: Any, rows: int) -> pa.Array:
    """One output of ``rows`` rows as an Arrow array (module docstring)."""
    if isinstance(value, list):
        if len(value) != rows:
            raise InvalidArgument(f"output '{name}' has {len(value)} items for {rows} rows")
        if value and isinstance(value[0], dict):
            key = next(iter(value[0]), 0)
            key_type = pa.string() if isinstance(key, str) else pa.int64()
            return pa.array([list(d.items()) for d in value], type=pa.map_(key_type, pa.float32()))
        return pa.array(value)
    array = np.asarray(value)
    if array.ndim == 0 or array.shape[0] != rows:
        raise InvalidArgument(
            f"output '{name}' has shape {list(array.shape)} for {rows} input rows: it is not "
            "row-wise; choose the outputs to write with --outputs"
        )
    if array.ndim == 1:
        return pa.array(array if array.dtype != object else array.tolist())
    if array.ndim == 2:
        flat = pa.array(np.ascontiguousarray(array).ravel() if array.dtype != object
                        else array.ravel().tolist())  # fmt: skip
        return pa.FixedSizeListArray.from_arrays(flat, array.shape[1])
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(array))
