"""InferenceSession's onnxruntime API beyond run(): OrtValue runs, async runs, providers,
provider assignment, memory and device reports."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import onnxpy
from onnxpy.capi.onnxruntime_pybind11_state import Fail, OrtValueVector, RunOptions

from .models import add_mul_add, mul_w

X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)


@pytest.fixture(scope="module")
def session():
    return onnxpy.InferenceSession(mul_w().SerializeToString())


def test_run_with_ort_values_returns_ortvalues(session):
    (y,) = session.run_with_ort_values(["Y"], {"X": onnxpy.OrtValue.ortvalue_from_numpy(X)})
    assert isinstance(y, onnxpy.OrtValue) and y.data_type() == "tensor(float)"
    np.testing.assert_array_equal(y.numpy(), X * X)
    assert (
        len(session.run_with_ort_values(None, {"X": onnxpy.OrtValue.ortvalue_from_numpy(X)})) == 1
    )
    with pytest.raises(onnxpy.InvalidArgument, match="must be an OrtValue"):
        session.run_with_ort_values(["Y"], {"X": X})


def test_run_with_ortvaluevector_fills_the_fetches(session):
    fetches = OrtValueVector()
    fetches.push_back(onnxpy.OrtValue())  # replaced, not appended to
    feeds = OrtValueVector.of([onnxpy.OrtValue.ortvalue_from_numpy(X)])
    session.run_with_ortvaluevector(RunOptions(), ["X"], feeds, ["Y"], fetches, [])
    assert len(fetches) == 1
    np.testing.assert_array_equal(fetches[0].numpy(), X * X)


def test_run_async_calls_back_on_a_worker_thread(session):
    done = threading.Event()
    seen = {}

    def callback(results, user_data, error):
        seen.update(results=results, data=user_data, error=error, thread=threading.get_ident())
        done.set()

    session.run_async(["Y"], {"X": X}, callback, {"id": 7})
    assert done.wait(30)
    assert seen["error"] == "" and seen["data"] == {"id": 7}
    assert seen["thread"] != threading.get_ident()
    np.testing.assert_array_equal(seen["results"][0], X * X)


def test_run_async_reports_errors_to_the_callback(session):
    done = threading.Event()
    seen = {}

    def callback(results, user_data, error):
        seen.update(results=results, error=error)
        done.set()

    session.run_async(["Y"], {"X": X.astype(np.float64)}, callback, None)
    assert done.wait(30)
    assert seen["results"] == [] and "Unexpected input data type" in seen["error"]
    with pytest.raises(TypeError, match="callable"):
        session.run_async(["Y"], {"X": X}, "not callable", None)


def test_set_providers():
    sess = onnxpy.InferenceSession(mul_w().SerializeToString())
    with pytest.raises(RuntimeError, match="Unknown Provider Type: InvalidProvider"):
        sess.set_providers(["InvalidProvider"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess.set_providers(["CUDAExecutionProvider"])  # known, not available: falls back
    assert any("CUDAExecutionProvider" in str(w.message) for w in caught)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    sess.set_providers([("CPUExecutionProvider", {"arena": 1})])
    assert sess.get_provider_options() == {"CPUExecutionProvider": {"arena": "1"}}
    sess.set_providers()
    assert sess.get_providers() == ["CPUExecutionProvider"]
    np.testing.assert_array_equal(sess.run(None, {"X": X})[0], X * X)


def test_provider_assignment_info_needs_the_config_entry():
    model = add_mul_add().SerializeToString()
    with pytest.raises(Fail, match="session.record_ep_graph_assignment_info"):
        onnxpy.InferenceSession(model).get_provider_graph_assignment_info()
    so = onnxpy.SessionOptions()
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    subgraphs = onnxpy.InferenceSession(model, so).get_provider_graph_assignment_info()
    assert {s.ep_name for s in subgraphs} == {"CPUExecutionProvider"}
    nodes = [f"{n.domain}:{n.op_type}/{n.name}" for s in subgraphs for n in s.get_nodes()]
    assert sorted(nodes) == [":Add/add_0", ":Add/add_1", ":Mul/mul_0"]


def test_memory_and_device_reports(session):
    (info,) = session.get_input_memory_infos()
    assert (info.name, info.device_id, info.allocator_type) == (
        "Cpu",
        0,
        onnxpy.OrtAllocatorType.ORT_ARENA_ALLOCATOR,
    )
    assert len(session.get_output_memory_infos()) == 1
    (device,) = session.get_input_epdevices()
    assert device.ep_name == "CPUExecutionProvider"
    so = onnxpy.SessionOptions()
    so.enable_cpu_mem_arena = False
    no_arena = onnxpy.InferenceSession(mul_w().SerializeToString(), so)
    assert (
        no_arena.get_output_memory_infos()[0].allocator_type
        == onnxpy.OrtAllocatorType.ORT_DEVICE_ALLOCATOR
    )


def test_low_level_session_view(session):
    low = session._sess
    assert [a.name for a in low.inputs_meta] == ["X"] and [a.name for a in low.outputs_meta] == [
        "Y"
    ]
    assert low.get_providers() == ["CPUExecutionProvider"]
    np.testing.assert_array_equal(low.run(["Y"], {"X": X}, None)[0], X * X)
    binding = onnxpy.IOBinding(low)  # onnxruntime's wrappers pass the low-level session
    binding.bind_cpu_input("X", X)
    binding.bind_output("Y")
    low.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.get_outputs()[0].numpy(), X * X)


def test_tuning_results_are_empty(session):
    assert session.get_tuning_results() == []
    session.set_tuning_results([])
    with pytest.raises(RuntimeError, match="no kernel tuning"):
        session.set_tuning_results([{"ep": "CPUExecutionProvider"}], error_on_invalid=True)
