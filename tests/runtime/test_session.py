"""The onnxruntime-compatible API: construction, introspection, running, threads, options."""

from __future__ import annotations

import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpy as rt
from tests.runtime.models import add_relu, model, two_inputs


def expected_add_relu(x):
    return np.maximum(x + np.array([1.0, -2.0, 3.0], dtype=np.float32), 0)


@pytest.fixture
def x():
    return np.array([[0.5, 1.0, -4.0], [-2.0, 3.0, 0.0]], dtype=np.float32)


@pytest.mark.parametrize("source", ["path", "bytes", "proto"])
def test_load_from_path_bytes_and_proto(tmp_path, source, x):
    m = add_relu()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    arg = {"path": str(path), "bytes": m.SerializeToString(), "proto": m}[source]
    sess = rt.InferenceSession(arg)
    (y,) = sess.run(None, {"X": x})
    np.testing.assert_array_equal(y, expected_add_relu(x))
    assert y.dtype == np.float32


def test_pathlike_accepted(tmp_path, x):
    path = tmp_path / "m.onnx"
    onnx.save(add_relu(), path)
    sess = rt.InferenceSession(path)
    np.testing.assert_array_equal(sess.run(None, {"X": x})[0], expected_add_relu(x))


def test_node_args():
    sess = rt.InferenceSession(two_inputs().SerializeToString())
    ins = sess.get_inputs()
    assert [i.name for i in ins] == ["A", "B"]
    assert ins[0].type == "tensor(float)"
    assert ins[0].shape == ["N", 4]
    assert ins[1].shape == [None, 4]
    assert [o.name for o in sess.get_outputs()] == ["Z", "W"]
    assert sess.get_overridable_initializers() == []


def test_overridable_initializer(x):
    m = add_relu()
    m.graph.input.append(helper.make_tensor_value_info("B", TensorProto.FLOAT, [3]))
    sess = rt.InferenceSession(m.SerializeToString())
    assert [a.name for a in sess.get_inputs()] == ["X"]
    assert [a.name for a in sess.get_overridable_initializers()] == ["B"]
    np.testing.assert_array_equal(sess.run(None, {"X": x})[0], expected_add_relu(x))
    b = np.zeros(3, dtype=np.float32)
    np.testing.assert_array_equal(sess.run(None, {"X": x, "B": b})[0], np.maximum(x, 0))


def test_modelmeta():
    m = add_relu()
    m.producer_name = "unit-test"
    m.domain = "org.example"
    m.doc_string = "a model"
    m.graph.doc_string = "a graph"
    m.model_version = 7
    helper.set_model_props(m, {"author": "me"})
    meta = rt.InferenceSession(m.SerializeToString()).get_modelmeta()
    assert meta.producer_name == "unit-test"
    assert meta.graph_name == "g"
    assert meta.domain == "org.example"
    assert meta.description == "a model"
    assert meta.graph_description == "a graph"
    assert meta.version == 7
    assert meta.custom_metadata_map == {"author": "me"}


def test_output_subset_and_intermediate(x):
    sess = rt.InferenceSession(add_relu().SerializeToString())
    s, y = sess.run(["S", "Y"], {"X": x})
    np.testing.assert_array_equal(s, x + np.array([1.0, -2.0, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(y, expected_add_relu(x))
    (s_only,) = sess.run(["S"], {"X": x})
    np.testing.assert_array_equal(s_only, s)


def test_subset_computes_only_what_it_needs():
    sess = rt.InferenceSession(two_inputs().SerializeToString())
    a = np.ones((2, 4), np.float32)
    b = np.full((2, 4), 3.0, np.float32)
    (w,) = sess.run(["W"], {"A": a, "B": b})
    np.testing.assert_array_equal(w, a * b)
    plan = sess._plan_for(["W"])
    assert [s.op_type for s in plan.steps] == ["Mul"]


def test_providers_and_device():
    assert rt.get_available_providers() == ["CPUExecutionProvider"]
    assert rt.get_device() == "CPU"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = rt.InferenceSession(
            add_relu().SerializeToString(),
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        )
    assert any("CUDAExecutionProvider" in str(w.message) for w in caught)
    assert sess.get_providers() == ["CPUExecutionProvider"]


def test_session_options_are_kept():
    so = rt.SessionOptions()
    so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = rt.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    so.add_session_config_entry("session.load_model_format", "ONNX")
    sess = rt.InferenceSession(add_relu().SerializeToString(), sess_options=so)
    got = sess.get_session_options()
    assert got.graph_optimization_level == rt.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert got.intra_op_num_threads == 1
    assert got.get_session_config_entry("session.load_model_format") == "ONNX"


def test_optimized_model_filepath_written(tmp_path, x):
    so = rt.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    rt.InferenceSession(add_relu().SerializeToString(), sess_options=so)
    reloaded = rt.InferenceSession(str(tmp_path / "opt.onnx"))
    np.testing.assert_array_equal(reloaded.run(None, {"X": x})[0], expected_add_relu(x))


def test_thread_pool_eight_threads_one_session():
    sess = rt.InferenceSession(add_relu().SerializeToString())
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((64, 3)).astype(np.float32) for _ in range(64)]

    def work(xb):
        return sess.run(["Y"], {"X": xb})[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, batches))
    for xb, y in zip(batches, results):
        np.testing.assert_array_equal(y, expected_add_relu(xb))


def test_profiling_writes_chrome_trace(tmp_path, x):
    so = rt.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    sess = rt.InferenceSession(add_relu().SerializeToString(), sess_options=so)
    sess.run(None, {"X": x})
    path = sess.end_profiling()
    events = json.loads(open(path).read())
    names = [e["name"] for e in events]
    assert "add_kernel_time" in names and "relu_kernel_time" in names
    add = next(e for e in events if e["name"] == "add_kernel_time")
    assert add["args"]["op_name"] == "Add"
    assert add["args"]["provider"] == "CPUExecutionProvider"
    assert add["args"]["input_type_shape"][0] == {"float": [2, 3]}


def test_feed_views_strides_and_byte_order(x):
    sess = rt.InferenceSession(add_relu().SerializeToString())
    big = np.ascontiguousarray(x).astype(">f4")
    np.testing.assert_array_equal(sess.run(None, {"X": big})[0], expected_add_relu(x))
    wide = np.zeros((2, 6), np.float32)
    wide[:, ::2] = x
    view = wide[:, ::2]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(sess.run(None, {"X": view})[0], expected_add_relu(x))
    fortran = np.asfortranarray(x)
    np.testing.assert_array_equal(sess.run(None, {"X": fortran})[0], expected_add_relu(x))


def test_feeds_are_not_modified(x):
    sess = rt.InferenceSession(add_relu().SerializeToString())
    before = x.copy()
    x.setflags(write=False)
    sess.run(None, {"X": x})
    np.testing.assert_array_equal(x, before)


def test_model_local_function_is_inlined():
    fn = helper.make_function(
        "custom",
        "AddTwice",
        ["a", "b"],
        ["c"],
        [helper.make_node("Add", ["a", "b"], ["t"]), helper.make_node("Add", ["t", "b"], ["c"])],
        [helper.make_opsetid("", 17)],
    )
    graph = helper.make_graph(
        [helper.make_node("AddTwice", ["X", "Y"], ["Z"], domain="custom")],
        "g",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("Z", TensorProto.FLOAT, [2])],
    )
    m = helper.make_model(
        graph,
        functions=[fn],
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)],
    )
    sess = rt.InferenceSession(m.SerializeToString())
    z = sess.run(None, {"X": np.array([1, 2], np.float32), "Y": np.array([10, 20], np.float32)})[0]
    np.testing.assert_array_equal(z, np.array([21, 42], np.float32))


def test_string_tensor_feed_accepts_unicode_arrays():
    m = model(
        [helper.make_node("Identity", ["S"], ["T"])],
        [helper.make_tensor_value_info("S", TensorProto.STRING, [2])],
        [helper.make_tensor_value_info("T", TensorProto.STRING, [2])],
    )
    sess = rt.InferenceSession(m.SerializeToString())
    (t,) = sess.run(None, {"S": np.array(["a", "béta"])})
    assert t.dtype == object and list(t) == ["a", "béta"]


def test_run_options_terminate(x):
    sess = rt.InferenceSession(add_relu().SerializeToString())
    ro = rt.RunOptions()
    ro.terminate = True
    with pytest.raises(rt.OnnxpyError, match="terminate"):
        sess.run(None, {"X": x}, ro)
    ro.terminate = False
    np.testing.assert_array_equal(sess.run(None, {"X": x}, ro)[0], expected_add_relu(x))


def test_scalar_outputs_are_arrays():
    m = model(
        [helper.make_node("Add", ["A", "B"], ["C"])],
        [
            helper.make_tensor_value_info("A", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("B", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, [])],
    )
    sess = rt.InferenceSession(m.SerializeToString())
    (c,) = sess.run(None, {"A": np.array(1.5, np.float32), "B": np.float32(2.0)})
    assert isinstance(c, np.ndarray) and c.shape == () and c.dtype == np.float32
    assert float(c) == 3.5


def test_external_data_is_memory_mapped(tmp_path, x):
    m = add_relu()
    weights = np.arange(3 * 1024, dtype=np.float32).reshape(1024, 3)
    m.graph.initializer.append(numpy_helper.from_array(weights, "W"))
    m.graph.node.append(helper.make_node("Add", ["Y", "W"], ["YW"], name="addw"))
    m.graph.output.append(helper.make_tensor_value_info("YW", TensorProto.FLOAT, [None, 3]))
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        m, path, save_as_external_data=True, location="weights.bin", size_threshold=1024
    )
    assert os.path.exists(tmp_path / "weights.bin")
    sess = rt.InferenceSession(str(path))
    plan = sess._plan_for(None)
    assert isinstance(plan.template[plan.slot_names.index("W")], np.memmap)
    xx = x[:1]
    y, yw = sess.run(None, {"X": xx})
    np.testing.assert_array_equal(yw, expected_add_relu(xx) + weights)


def test_outputs_viewing_initializers_cannot_corrupt_the_session():
    m = model(
        [helper.make_node("Identity", ["W"], ["Y"])],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "W")],
    )
    sess = rt.InferenceSession(m.SerializeToString())
    (y,) = sess.run(None, {"X": np.zeros(1, np.float32)})
    y[0] = 100.0  # a writable array of the caller's own
    np.testing.assert_array_equal(sess.run(None, {"X": np.zeros(1, np.float32)})[0], [1.0, 2.0])


def test_model_over_2gb_with_external_data_loads_without_copying(tmp_path):
    """A 2.1 GB initializer in a sparse side file: mapped, never read whole."""
    rows, cols = 2_100_000_000 // (4 * 256), 256
    data_file = tmp_path / "big.bin"
    with open(data_file, "wb") as f:
        f.truncate(rows * cols * 4)  # sparse: zeros, no disk blocks
        f.seek(5 * cols * 4)
        f.write(np.arange(cols, dtype=np.float32).tobytes())
    w = TensorProto()
    w.name, w.data_type = "W", TensorProto.FLOAT
    w.dims.extend([rows, cols])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "big.bin"), ("offset", "0"), ("length", str(rows * cols * 4))):
        e = w.external_data.add()
        e.key, e.value = k, v
    m = model(
        [helper.make_node("Gather", ["W", "I"], ["Y"], axis=0)],
        [helper.make_tensor_value_info("I", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, cols])],
        [w],
    )
    path = tmp_path / "big.onnx"
    path.write_bytes(m.SerializeToString())
    sess = rt.InferenceSession(str(path))
    (y,) = sess.run(None, {"I": np.array([5, rows - 1], np.int64)})
    np.testing.assert_array_equal(y[0], np.arange(cols, dtype=np.float32))
    np.testing.assert_array_equal(y[1], np.zeros(cols, np.float32))


def test_off_spec_default_domain_op_saved_by_onnxruntime_loads():
    """onnxruntime's optimizer writes SimplifiedLayerNormalization in the default domain."""
    m = model(
        [
            helper.make_node(
                "SimplifiedLayerNormalization", ["X", "S"], ["Y"], epsilon=1e-5, axis=-1
            )
        ],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.array([1, 2, 3, 4], np.float32), "S")],
    )
    x = np.array([[1, -2, 3, -4], [0.5, 0.5, 0.5, 0.5]], np.float32)
    (y,) = rt.InferenceSession(m.SerializeToString()).run(None, {"X": x})
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, x / rms * np.array([1, 2, 3, 4]), rtol=1e-6)


def test_intra_op_num_threads_limits_numpys_blas_threads():
    """The limit goes to the BLAS NumPy multiplies with (other libraries' BLAS, such as
    SciPy's own OpenBLAS loaded by scikit-learn, are not onnxpy's to change)."""
    from threadpoolctl import threadpool_info

    from onnxpy.kernels import blas, threads

    def numpy_blas_threads():
        path = blas._find_openblas()
        return [i["num_threads"] for i in threadpool_info() if i["filepath"] == path]

    before = numpy_blas_threads()
    assert len(before) == 1, "numpy's OpenBLAS should be visible to threadpoolctl"
    so = rt.SessionOptions()
    so.intra_op_num_threads = 1
    try:
        sess = rt.InferenceSession(add_relu().SerializeToString(), so)
        assert numpy_blas_threads() == [1]
        assert threads.intra_op_threads() == 1
        x = np.array([[1.0, 5.0, -7.0]], np.float32)
        np.testing.assert_array_equal(sess.run(None, {"X": x})[0], [[2.0, 3.0, 0.0]])
    finally:
        blas.set_blas_threads(before[0])
        threads._current = None


def test_cpu_mem_arena_keeps_freed_buffers_between_runs():
    """With the arena on (the default), a run reuses the heap: no fresh pages per run."""
    resource = pytest.importorskip("resource")
    from onnxpy.runtime.memory import keep_freed_memory

    if not keep_freed_memory():
        pytest.skip("no glibc malloc to tune on this platform")
    nodes = [
        helper.make_node(op, [src], [dst])
        for op, src, dst in [("Neg", "X", "a"), ("Abs", "a", "b"), ("Neg", "b", "c")]
    ] + [helper.make_node("ReduceSum", ["c"], ["Y"], keepdims=0)]
    m = model(
        nodes,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [512, 1024])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [])],
    )
    sess = rt.InferenceSession(m.SerializeToString())
    x = np.ones((512, 1024), np.float32)
    for _ in range(3):
        sess.run(None, {"X": x})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        assert sess.run(None, {"X": x})[0] == -512 * 1024
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # Three fresh 2 MB intermediates per run would fault ~1,500 pages each run.
    assert faults < 200, f"{faults} page faults in 5 runs"
