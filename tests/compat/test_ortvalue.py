"""OrtValue and OrtValueVector: factories, memory sharing, type reports, DLPack, array protocol."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxpy
from onnxpy.capi import _pybind_state as C
from onnxpy.capi.onnxruntime_pybind11_state import OrtValueVector, RunOptions

from .models import mul_w, seq_construct

X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)

DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8]
DTYPES += [np.uint16, np.uint32, np.uint64, np.bool_]


def test_from_numpy_shares_the_arrays_memory():
    a = X.copy()
    v = onnxpy.OrtValue.ortvalue_from_numpy(a)
    assert v.data_ptr() == a.ctypes.data
    assert np.shares_memory(v.numpy(), a)
    a[0, 0] = 42.0  # a write through the source shows in the value, as in onnxruntime
    assert v.numpy()[0, 0] == 42.0
    assert (v.device_name(), v.shape(), v.is_tensor(), v.has_value()) == ("cpu", [3, 2], True, True)
    assert not v.is_sparse_tensor() and not v.is_tensor_sequence()
    assert v.tensor_size_in_bytes() == 24


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_type_reports_match_onnxruntime(dtype):
    a = np.ones((2, 3), dtype=dtype)
    ours, theirs = onnxpy.OrtValue.ortvalue_from_numpy(a), ort.OrtValue.ortvalue_from_numpy(a)
    assert ours.data_type() == theirs.data_type()
    assert ours.element_type() == theirs.element_type()
    assert ours.tensor_size_in_bytes() == theirs.tensor_size_in_bytes()


def test_non_contiguous_and_byte_swapped_arrays_become_native_copies():
    strided = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    v = onnxpy.OrtValue.ortvalue_from_numpy(strided)
    np.testing.assert_array_equal(v.numpy(), [[0, 2], [4, 6], [8, 10]])
    assert v.numpy().flags.c_contiguous and not np.shares_memory(v.numpy(), strided)
    big_endian = np.array([1.5, -2.0], dtype=">f4")
    w = onnxpy.OrtValue.ortvalue_from_numpy(big_endian)
    assert w.numpy().dtype == np.float32 and w.numpy().tolist() == [1.5, -2.0]


def test_string_tensors_are_object_arrays_of_str():
    v = onnxpy.OrtValue.ortvalue_from_numpy(np.array(["a", "bcd"]))
    assert v.data_type() == "tensor(string)" and v.element_type() == 8
    assert v.numpy().dtype == object and v.numpy().tolist() == ["a", "bcd"]
    assert v.tensor_size_in_bytes() == 4  # UTF-8 bytes of the strings


def test_from_numpy_with_onnx_type_reinterprets_bytes():
    bits = np.array([0x3F80, 0x4000, 0xC040], dtype=np.uint16)  # bfloat16 1.0, 2.0, -3.0
    v = onnxpy.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, 16)
    assert v.element_type() == 16 and v.data_type() == "tensor(bfloat16)"
    assert v.numpy().dtype == ml_dtypes.bfloat16
    assert v.numpy().astype(np.float32).tolist() == [1.0, 2.0, -3.0]
    with pytest.raises(onnxpy.InvalidArgument, match="takes 8"):
        onnxpy.OrtValue.ortvalue_from_numpy_with_onnx_type(np.ones(2, np.float32), 7)


@pytest.mark.parametrize("element_type", [np.int64, np.dtype("int64"), 7])
def test_from_shape_and_type_accepts_numpy_and_onnx_types(element_type):
    v = onnxpy.OrtValue.ortvalue_from_shape_and_type([2, 3], element_type)
    assert v.data_type() == "tensor(int64)" and v.shape() == [2, 3]
    assert not v.numpy().any()


def test_update_inplace_copies_into_the_same_memory():
    v = onnxpy.OrtValue.ortvalue_from_shape_and_type((2, 3), np.float32)
    before = v.data_ptr()
    v.update_inplace(np.arange(6, dtype=np.float32).reshape(3, 2))  # same count, any shape
    assert v.data_ptr() == before
    np.testing.assert_array_equal(v.numpy(), np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(onnxpy.InvalidArgument, match="does not match the size"):
        v.update_inplace(np.ones(4, np.float32))
    with pytest.raises(onnxpy.InvalidArgument, match="cast first"):
        v.update_inplace(np.ones(6, np.float64))


def test_devices_other_than_cpu_are_refused_with_the_reason():
    with pytest.raises(RuntimeError, match="CPU only"):
        onnxpy.OrtValue.ortvalue_from_numpy(X, "cuda", 0)
    with pytest.raises(RuntimeError, match="CPU only"):
        onnxpy.OrtValue.ortvalue_from_shape_and_type([2], np.float32, "cuda", 0)


def test_array_protocol_shares_memory_and_converts_on_request():
    v = onnxpy.OrtValue.ortvalue_from_numpy(X)
    assert np.asarray(v).ctypes.data == v.data_ptr()
    assert np.asarray(v, dtype=np.float32).ctypes.data == v.data_ptr()
    as64 = np.asarray(v, dtype=np.float64)
    assert as64.dtype == np.float64 and np.array_equal(as64, X)
    copied = np.array(v, copy=True)
    assert not np.shares_memory(copied, X) and np.array_equal(copied, X)


def test_dlpack_round_trips_without_copies():
    v = onnxpy.OrtValue.ortvalue_from_numpy(X)
    assert v.__dlpack_device__() == (1, 0)
    capsule = v.to_dlpack()
    assert not C.is_dlpack_uint8_tensor(capsule)
    w = C.OrtValue.from_dlpack(capsule, False)
    assert w.data_ptr() == v.data_ptr() and np.array_equal(w.numpy(), X)
    # objects with __dlpack__: numpy, another OrtValue, torch
    assert onnxpy.OrtValue.from_dlpack(X).data_ptr() == X.ctypes.data
    assert onnxpy.OrtValue.from_dlpack(v).data_ptr() == v.data_ptr()
    assert np.from_dlpack(v).ctypes.data == v.data_ptr()


def test_dlpack_exchange_with_torch_both_ways():
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    v = onnxpy.OrtValue.from_dlpack(t)
    assert v.data_ptr() == t.data_ptr() and v.numpy().tolist() == t.tolist()
    back = torch.from_dlpack(v)
    assert back.data_ptr() == v.data_ptr() and back.dtype == torch.float32


def test_dlpack_booleans_and_uint8():
    flags = np.array([True, False, True])
    assert (
        onnxpy.OrtValue.from_dlpack(onnxpy.OrtValue.ortvalue_from_numpy(flags)).numpy().dtype
        == bool
    )
    bytes_ = np.array([1, 0, 1], dtype=np.uint8)
    capsule = bytes_.__dlpack__()
    assert C.is_dlpack_uint8_tensor(capsule)
    as_bool = C.OrtValue.from_dlpack(capsule, True).numpy()
    assert as_bool.dtype == bool and as_bool.tolist() == [True, False, True]
    assert onnxpy.OrtValue.from_dlpack(bytes_).numpy().dtype == np.uint8


@pytest.mark.parametrize("shape", [(0,), (0, 4), (4, 0), (1, 8, 0, 16)])
def test_dlpack_zero_size_tensors(shape):
    a = np.zeros(shape, dtype=np.float32)
    assert C.OrtValue.from_dlpack(a.__dlpack__(), False).shape() == list(shape)
    v = onnxpy.OrtValue.ortvalue_from_numpy(a)
    assert C.OrtValue.from_dlpack(v.to_dlpack(), False).shape() == list(shape)


def test_a_consumed_capsule_is_refused_clearly():
    capsule = X.__dlpack__()
    onnxpy.OrtValue.from_dlpack(capsule)
    with pytest.raises(onnxpy.InvalidArgument, match="already consumed"):
        onnxpy.OrtValue.from_dlpack(capsule)
    with pytest.raises(onnxpy.InvalidArgument, match="DLPack capsule"):
        onnxpy.OrtValue.from_dlpack(3.0)


def test_values_that_are_not_tensors_say_so():
    sess = onnxpy.InferenceSession(seq_construct().SerializeToString())
    a, b = np.array([1, 2], np.int64), np.array([3, 4], np.int64)
    feeds = {
        "A": onnxpy.OrtValue.ortvalue_from_numpy(a),
        "B": onnxpy.OrtValue.ortvalue_from_numpy(b),
    }
    (seq,) = sess.run_with_ort_values(None, feeds)
    assert seq.is_tensor_sequence() and not seq.is_tensor()
    assert seq.data_type() == "seq(tensor(int64))"
    with pytest.raises(RuntimeError, match="needs a tensor"):
        seq.numpy()
    assert not onnxpy.OrtValue().has_value()


def test_session_runs_accept_ortvalues_and_low_level_vectors():
    sess = onnxpy.InferenceSession(mul_w().SerializeToString())
    v = onnxpy.OrtValue.ortvalue_from_numpy(X)
    np.testing.assert_array_equal(sess.run(["Y"], {"X": v})[0], X * X)
    vector = sess._sess.run_with_ort_values({"X": v._get_c_value()}, ["Y"], RunOptions())
    assert isinstance(vector, OrtValueVector) and len(vector) == 1
    np.testing.assert_array_equal(vector[0].numpy(), X * X)
    assert vector.element_type_at(0) == 1
    np.testing.assert_array_equal(v.numpy(), X)  # the fed value is unchanged


def test_ortvaluevector_methods():
    vector = OrtValueVector()
    vector.push_back(onnxpy.OrtValue.ortvalue_from_numpy(np.array([True, False])))
    vector.push_back(onnxpy.OrtValue.ortvalue_from_numpy(X))
    assert vector.bool_tensor_indices() == [0]
    assert [np.from_dlpack(_Capsule(c)).shape for c in vector.to_dlpacks()] == [(2,), (3, 2)]
    with pytest.raises(onnxpy.InvalidArgument):
        vector.push_back(X)


class _Capsule:
    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, **_):
        return self.capsule

    def __dlpack_device__(self):
        return (1, 0)


def test_ml_dtypes_arrays_stay_numbers():
    # ml_dtypes' types report dtype kind 'V' like np.void, which is read as text: not these.
    a = np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16)
    v = onnxpy.OrtValue.ortvalue_from_numpy(a)
    assert v.data_type() == "tensor(bfloat16)" and v.data_ptr() == a.ctypes.data
    m = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["X"], ["Y"])],
            "g",
            [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.BFLOAT16, [2])],
            [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.BFLOAT16, [2])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
    )
    sess = onnxpy.InferenceSession(m.SerializeToString())
    for feed in (a, v):
        out = sess.run(None, {"X": feed})[0]
        assert out.dtype == ml_dtypes.bfloat16 and out.astype(np.float32).tolist() == [1.5, -2.0]
