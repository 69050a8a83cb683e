"""IOBinding: inputs and outputs bound by array, by address and by OrtValue."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import onnxpy

from .models import add_mul_add, identity_string, matmul_dynamic, mul_w

X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
EXPECTED = np.array([[5.0], [11.0], [17.0]], dtype=np.float32)  # X @ [[1], [2]]


@pytest.fixture(scope="module")
def session():
    return onnxpy.InferenceSession(matmul_dynamic().SerializeToString())


def test_bind_cpu_input_and_device_output(session):
    binding = session.io_binding()
    assert binding.get_outputs() == []
    binding.bind_cpu_input("X", X)
    binding.bind_output("Y")
    session.run_with_iobinding(binding)
    (out,) = binding.get_outputs()
    assert isinstance(out, onnxpy.OrtValue) and out.device_name() == "cpu"
    np.testing.assert_array_equal(out.numpy(), EXPECTED)
    (copy,) = binding.copy_outputs_to_cpu()
    np.testing.assert_array_equal(copy, EXPECTED)
    assert not np.shares_memory(copy, out.numpy())
    binding.synchronize_inputs()
    binding.synchronize_outputs()


def test_results_of_earlier_runs_stay_as_they_were(session):
    binding = onnxpy.IOBinding(session)
    binding.bind_cpu_input("X", X)
    binding.bind_output("Y")
    session.run_with_iobinding(binding)
    first = binding.get_outputs()[0]
    binding.bind_cpu_input("X", 2 * X)
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(first.numpy(), EXPECTED)
    np.testing.assert_array_equal(binding.get_outputs()[0].numpy(), 2 * EXPECTED)


def test_bind_by_address_reads_and_writes_the_callers_buffers(session):
    x = X.copy()
    out = np.full((3, 1), -1.0, dtype=np.float32)
    binding = session.io_binding()
    binding.bind_input("X", "cpu", 0, np.float32, list(x.shape), x.ctypes.data)
    binding.bind_output("Y", "cpu", 0, np.float32, [3, 1], out.ctypes.data)
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(out, EXPECTED)  # written in place
    assert binding.get_outputs()[0].data_ptr() == out.ctypes.data
    x[:] = 0.0  # the binding reads the buffer at run time, not when bound
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(out, np.zeros((3, 1), np.float32))


def test_torch_tensors_bound_by_data_ptr(session):
    torch = pytest.importorskip("torch")
    x = torch.tensor(X)
    y = torch.empty(3, dtype=torch.float32)  # optimum allocates flat buffers
    binding = session.io_binding()
    binding.bind_input("X", "cpu", 0, np.float32, tuple(x.shape), x.data_ptr())
    binding.bind_output("Y", "cpu", 0, np.float32, [3, 1], y.data_ptr())
    session.run_with_iobinding(binding)
    assert y.tolist() == EXPECTED.reshape(-1).tolist()


def test_output_buffer_of_the_wrong_shape_is_refused(session):
    wrong = np.zeros((4, 1), dtype=np.float32)
    binding = session.io_binding()
    binding.bind_cpu_input("X", X)
    binding.bind_output("Y", "cpu", 0, np.float32, [4, 1], wrong.ctypes.data)
    with pytest.raises(onnxpy.InvalidArgument, match="bind a matching buffer"):
        session.run_with_iobinding(binding)


def test_ortvalue_bindings(session):
    out = onnxpy.OrtValue.ortvalue_from_shape_and_type([3, 1], np.float32)
    empty = onnxpy.OrtValue()
    binding = session.io_binding()
    binding.bind_ortvalue_input("X", onnxpy.OrtValue.ortvalue_from_numpy(X))
    binding.bind_ortvalue_output("Y", out)
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(out.numpy(), EXPECTED)
    binding.clear_binding_outputs()
    binding.bind_ortvalue_output("Y", empty)
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(empty.numpy(), EXPECTED)
    vector = binding.get_outputs_as_ortvaluevector()
    assert len(vector) == 1 and vector[0] is empty


def test_missing_bindings_and_other_devices_are_refused(session):
    binding = session.io_binding()
    binding.bind_output("Y")
    with pytest.raises(ValueError, match="missing from input feed"):
        session.run_with_iobinding(binding)
    binding.clear_binding_outputs()
    binding.bind_cpu_input("X", X)
    with pytest.raises(onnxpy.InvalidArgument, match="no output is bound"):
        session.run_with_iobinding(binding)
    with pytest.raises(RuntimeError, match="CPU only"):
        binding.bind_output("Y", "cuda", 0)
    with pytest.raises(RuntimeError, match="CPU only"):
        binding.bind_input("X", "cuda", 0, np.float32, [3, 2], X.ctypes.data)
    with pytest.raises(onnxpy.InvalidArgument, match="wrong|Unexpected input data type"):
        binding.bind_cpu_input("X", X.astype(np.float64))
        binding.bind_output("Y")
        session.run_with_iobinding(binding)


def test_an_intermediate_value_can_be_bound_as_an_output():
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = onnxpy.InferenceSession(add_mul_add().SerializeToString(), so)
    feeds = {n: np.full(3, v, np.float32) for n, v in zip("ABCD", [1.0, 2.0, 3.0, 4.0])}
    binding = sess.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    binding.bind_output("p")  # (A + B) * C
    binding.bind_output("Y")
    sess.run_with_iobinding(binding)
    assert [v.numpy().tolist() for v in binding.get_outputs()] == [[9.0] * 3, [13.0] * 3]


def test_string_tensors_bind_as_arrays():
    sess = onnxpy.InferenceSession(identity_string().SerializeToString())
    binding = sess.io_binding()
    binding.bind_cpu_input("S", np.array([["a", "b"], ["c", "d"]]))
    binding.bind_output("T")
    sess.run_with_iobinding(binding)
    assert binding.copy_outputs_to_cpu()[0].tolist() == [["a", "b"], ["c", "d"]]
    with pytest.raises(onnxpy.InvalidArgument, match="by address"):
        binding.bind_input("S", "cpu", 0, np.str_, [2, 2], 1)


def test_same_results_as_onnxruntime_bindings():
    model = mul_w().SerializeToString()
    results = []
    for rt in (onnxpy, ort):
        sess = rt.InferenceSession(model, providers=["CPUExecutionProvider"])
        out = np.zeros((3, 2), np.float32)
        binding = sess.io_binding()
        binding.bind_cpu_input("X", X)
        binding.bind_output("Y", "cpu", 0, np.float32, [3, 2], out.ctypes.data)
        sess.run_with_iobinding(binding)
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])
