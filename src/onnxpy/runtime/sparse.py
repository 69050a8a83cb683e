"""SparseTensor: onnxruntime's COO and CSR(C) sparse tensors over NumPy arrays.

Numeric values and indices are read-only views of the caller's arrays (nothing is copied, and
nothing can be written through them), string values a copy, as in onnxruntime. Indices are
checked against the dense shape when the tensor is made, so a sparse tensor that exists is
valid; ``to_dense()`` expands it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxpy.errors import InvalidArgument, RuntimeException
from onnxpy.runtime.devices import OrtDevice, require_cpu
from onnxpy.types import ELEM_TYPE_NAMES, elem_type_of

__all__ = ["OrtSparseFormat", "SparseCooView", "SparseCsrView", "SparseTensor"]


class OrtSparseFormat(enum.IntEnum):
    ORT_SPARSE_UNDEFINED = 0
    ORT_SPARSE_COO = 1
    ORT_SPARSE_CSRC = 2
    ORT_SPARSE_BLOCK_SPARSE = 4


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _indices(name: str, indices: Any) -> np.ndarray:
    array = np.asarray(indices)
    if array.dtype != np.int64:
        raise InvalidArgument(f"Sparse {name} indices must be int64, got {array.dtype}")
    return _read_only(np.ascontiguousarray(array))


class SparseCooView:
    """COO indices: linear (one per value) or coordinates (rank per value, row-major)."""

    def __init__(self, indices: np.ndarray) -> None:
        self._indices = indices

    def indices(self) -> np.ndarray:
        return self._indices


class SparseCsrView:
    """CSR(C) indices: ``inner`` (column of each value) and ``outer`` (row starts, rows + 1)."""

    def __init__(self, inner: np.ndarray, outer: np.ndarray) -> None:
        self._inner = inner
        self._outer = outer

    def inner(self) -> np.ndarray:
        return self._inner

    def outer(self) -> np.ndarray:
        return self._outer


class SparseTensor:
    """A sparse tensor on the CPU; build it with one of the ``sparse_*_from_numpy`` factories."""

    def __init__(
        self,
        fmt: OrtSparseFormat,
        dense_shape: Sequence[int],
        values: np.ndarray,
        indices: tuple[np.ndarray, ...],
    ) -> None:
        self._format = fmt
        self._shape = [int(d) for d in dense_shape]
        self._values = values
        self._index_arrays = indices

    @staticmethod
    def _check_values(values: Any) -> np.ndarray:
        array = np.asarray(values)
        if array.ndim != 1:
            raise InvalidArgument(f"Sparse values must be 1-D, got shape {list(array.shape)}")
        if array.dtype.kind in "USO":
            return _read_only(array.astype(str).astype(object))
        try:
            elem_type_of(array.dtype)
        except KeyError:
            raise InvalidArgument(
                f"Sparse values of dtype {array.dtype} are not supported"
            ) from None
        return _read_only(np.ascontiguousarray(array))

    @staticmethod
    def _dense_shape(dense_shape: Sequence[int]) -> list[int]:
        dims = [int(d) for d in dense_shape]
        if any(d < 0 for d in dims):
            raise InvalidArgument(f"Dense shape {dims} has a negative dimension")
        return dims

    @classmethod
    def sparse_coo_from_numpy(
        cls, dense_shape: Sequence[int], values: Any, coo_indices: Any, ort_device: OrtDevice
    ) -> SparseTensor:
        """COO: ``coo_indices`` holds a linear index per value, or (for 2-D) a (row, column)
        pair per value."""
        require_cpu(ort_device, "SparseTensor.sparse_coo_from_numpy")
        shape = cls._dense_shape(dense_shape)
        vals = cls._check_values(values)
        idx = _indices("COO", coo_indices)
        nnz, size = len(vals), int(np.prod(shape, dtype=np.int64))
        if idx.size == nnz:
            linear = idx.reshape(-1)
        elif len(shape) == 2 and idx.size == 2 * nnz:
            pairs = idx.reshape(nnz, 2)
            if nnz and ((pairs < 0).any() or (pairs >= np.array(shape)).any()):
                raise InvalidArgument(f"COO coordinates out of range for dense shape {shape}")
            linear = pairs[:, 0] * shape[1] + pairs[:, 1]
        else:
            raise InvalidArgument(
                f"COO index size {idx.size} must equal the number of values ({nnz}), or twice "
                "it for a 2-D tensor"
            )
        if nnz and (linear.min() < 0 or linear.max() >= size):
            raise InvalidArgument(f"COO indices out of range for dense shape {shape}")
        return cls(OrtSparseFormat.ORT_SPARSE_COO, shape, vals, (idx,))

    @classmethod
    def sparse_csr_from_numpy(
        cls,
        dense_shape: Sequence[int],
        values: Any,
        inner_indices: Any,
        outer_indices: Any,
        ort_device: OrtDevice,
    ) -> SparseTensor:
        """CSR(C) of a 2-D tensor: ``inner`` is each value's column, ``outer`` each row's start."""
        require_cpu(ort_device, "SparseTensor.sparse_csr_from_numpy")
        shape = cls._dense_shape(dense_shape)
        if len(shape) != 2:
            raise InvalidArgument(f"CSR needs a 2-D dense shape, got {shape}")
        vals = cls._check_values(values)
        inner, outer = _indices("CSR inner", inner_indices), _indices("CSR outer", outer_indices)
        nnz = len(vals)
        if inner.size != nnz:
            raise InvalidArgument(f"CSR inner indices ({inner.size}) must match values ({nnz})")
        if nnz and outer.size != shape[0] + 1:
            raise InvalidArgument(f"CSR outer indices need rows + 1 = {shape[0] + 1} entries")
        if nnz and (
            outer[0] != 0
            or outer[-1] != nnz
            or (np.diff(outer) < 0).any()
            or inner.min() < 0
            or inner.max() >= shape[1]
        ):
            raise InvalidArgument(f"CSR indices are inconsistent with dense shape {shape}")
        return cls(OrtSparseFormat.ORT_SPARSE_CSRC, shape, vals, (inner, outer))

    # -- reading -------------------------------------------------------------------------------
    def format(self) -> OrtSparseFormat:
        return self._format

    def dense_shape(self) -> list[int]:
        return list(self._shape)

    def values(self) -> np.ndarray:
        return self._values

    def element_type(self) -> int:
        return elem_type_of(self._values.dtype) if self._values.dtype.kind != "O" else 8

    def data_type(self) -> str:
        return f"sparse_tensor({ELEM_TYPE_NAMES[self.element_type()]})"

    def device_name(self) -> str:
        return "cpu"

    def as_coo_view(self) -> SparseCooView:
        if self._format != OrtSparseFormat.ORT_SPARSE_COO:
            raise RuntimeException("This sparse tensor does not contain COO format")
        return SparseCooView(self._index_arrays[0])

    def as_csrc_view(self) -> SparseCsrView:
        if self._format != OrtSparseFormat.ORT_SPARSE_CSRC:
            raise RuntimeException("This sparse tensor does not contain CSR(C) format")
        return SparseCsrView(*self._index_arrays)

    def as_blocksparse_view(self) -> Any:
        raise RuntimeException("This sparse tensor does not contain BlockSparse format")

    def to_cuda(self, ort_device: OrtDevice) -> SparseTensor:
        require_cpu(ort_device, "SparseTensor.to_cuda")
        raise RuntimeException("SparseTensor.to_cuda: onnxpy has no CUDA device")

    def to_dense(self) -> np.ndarray:
        """The dense array this sparse tensor stands for (zeros, or '' for strings, elsewhere)."""
        fill = "" if self._values.dtype.kind == "O" else 0
        dense = np.full(self._shape, fill, dtype=self._values.dtype)
        if self._format == OrtSparseFormat.ORT_SPARSE_COO:
            idx = self._index_arrays[0]
            if idx.size == len(self._values):
                dense.reshape(-1)[idx.reshape(-1)] = self._values
            else:
                pairs = idx.reshape(-1, 2)
                dense[pairs[:, 0], pairs[:, 1]] = self._values
        else:
            inner, outer = self._index_arrays
            rows = np.repeat(np.arange(self._shape[0]), np.diff(outer)) if len(outer) else []
            dense[rows, inner] = self._values
        return dense

    def _get_c_tensor(self) -> SparseTensor:
        return self

    def __repr__(self) -> str:
        return (
            f"SparseTensor({self._format.name}, {self.data_type()}, dense_shape={self._shape}, "
            f"nnz={len(self._values)})"
        )
