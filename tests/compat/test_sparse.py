"""SparseTensor: COO and CSR(C) construction, read-only views, checks, dense expansion."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import onnxpy

CPU = onnxpy.OrtDevice.make("cpu", 0)


def test_coo_with_linear_indices():
    values = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    indices = np.array([3, 5, 15], dtype=np.int64)
    st = onnxpy.SparseTensor.sparse_coo_from_numpy([4, 4], values, indices, CPU)
    assert st.format() == onnxpy.OrtSparseFormat.ORT_SPARSE_COO
    assert (st.dense_shape(), st.data_type(), st.device_name()) == (
        [4, 4],
        "sparse_tensor(float)",
        "cpu",
    )
    got_values, got_indices = st.values(), st.as_coo_view().indices()
    assert not got_values.flags.writeable and not got_indices.flags.writeable
    assert np.shares_memory(got_values, values)  # a view of the caller's array
    gc.collect()
    assert got_values.tolist() == [1.0, 2.0, 3.0] and got_indices.tolist() == [3, 5, 15]
    expected = np.zeros((4, 4), np.float32)
    expected[0, 3], expected[1, 1], expected[3, 3] = 1.0, 2.0, 3.0
    np.testing.assert_array_equal(st.to_dense(), expected)
    with pytest.raises(RuntimeError, match="CSR"):
        st.as_csrc_view()


def test_coo_with_coordinate_pairs():
    st = onnxpy.SparseTensor.sparse_coo_from_numpy(
        [2, 3], np.array([7, 8], np.int32), np.array([[0, 1], [1, 2]], np.int64), CPU
    )
    np.testing.assert_array_equal(st.to_dense(), [[0, 7, 0], [0, 0, 8]])
    assert st.data_type() == "sparse_tensor(int32)"


def test_csr():
    values = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    inner = np.array([1, 0, 2], dtype=np.int64)
    outer = np.array([0, 1, 1, 3], dtype=np.int64)
    st = onnxpy.SparseTensor.sparse_csr_from_numpy([3, 3], values, inner, outer, CPU)
    assert st.format() == onnxpy.OrtSparseFormat.ORT_SPARSE_CSRC
    view = st.as_csrc_view()
    assert view.inner().tolist() == [1, 0, 2] and view.outer().tolist() == [0, 1, 1, 3]
    assert not view.inner().flags.writeable and not view.outer().flags.writeable
    np.testing.assert_array_equal(st.to_dense(), [[0, 1, 0], [0, 0, 0], [2, 0, 3]])


def test_string_values_are_copied_as_text():
    st = onnxpy.SparseTensor.sparse_coo_from_numpy(
        [9], np.array(["xyz", "ab"]), np.array([0, 4], np.int64), CPU
    )
    assert st.data_type() == "sparse_tensor(string)"
    assert st.values().tolist() == ["xyz", "ab"]
    assert st.to_dense().tolist() == ["xyz", "", "", "", "ab", "", "", "", ""]


@pytest.mark.parametrize(
    "indices, match",
    [
        (np.array([0, 1, 2], np.int64), "must equal the number of values"),
        (np.array([0, 9], np.int64), "out of range"),
        (np.array([0, 1], np.int32), "int64"),
    ],
)
def test_bad_coo_is_refused(indices, match):
    with pytest.raises(onnxpy.InvalidArgument, match=match):
        onnxpy.SparseTensor.sparse_coo_from_numpy([3, 3], np.ones(2, np.float32), indices, CPU)


def test_bad_csr_is_refused():
    values = np.ones(2, np.float32)
    with pytest.raises(onnxpy.InvalidArgument, match="rows \\+ 1"):
        onnxpy.SparseTensor.sparse_csr_from_numpy(
            [2, 2], values, np.array([0, 1], np.int64), np.array([0, 2], np.int64), CPU
        )
    with pytest.raises(onnxpy.InvalidArgument, match="inconsistent"):
        onnxpy.SparseTensor.sparse_csr_from_numpy(
            [2, 2], values, np.array([0, 5], np.int64), np.array([0, 1, 2], np.int64), CPU
        )


def test_ortvalue_holds_a_sparse_tensor():
    st = onnxpy.SparseTensor.sparse_coo_from_numpy(
        [2, 2], np.array([5.0], np.float32), np.array([3], np.int64), CPU
    )
    v = onnxpy.OrtValue.ort_value_from_sparse_tensor(st)
    assert v.is_sparse_tensor() and not v.is_tensor()
    assert v.data_type() == "sparse_tensor(float)" and v.shape() == [2, 2]
    assert v.as_sparse_tensor() is st
    with pytest.raises(RuntimeError, match="needs a tensor"):
        v.numpy()


def test_no_cuda_copies():
    st = onnxpy.SparseTensor.sparse_coo_from_numpy(
        [2], np.array([1.0], np.float32), np.array([0], np.int64), CPU
    )
    with pytest.raises(RuntimeError):
        st.to_cuda(onnxpy.OrtDevice.make("cuda", 0))
    with pytest.raises(RuntimeError, match="CPU only"):
        onnxpy.SparseTensor.sparse_coo_from_numpy(
            [2],
            np.array([1.0], np.float32),
            np.array([0], np.int64),
            onnxpy.OrtDevice.make("cuda", 0),
        )
