"""Wrong answers and crashes found by reading the code, each checked against onnxruntime or by
hand: overridable initializers, omitted function outputs, saving an optimized model elsewhere,
terminate, misspelt options."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

import onnxpy
from onnxpy import GraphOptimizationLevel as Level

LEVELS = [
    Level.ORT_DISABLE_ALL,
    Level.ORT_ENABLE_BASIC,
    Level.ORT_ENABLE_EXTENDED,
    Level.ORT_ENABLE_ALL,
]
RNG = np.random.default_rng(0)


def tv(name, shape, elem=T.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def make(nodes, inputs, outputs, inits=(), opset=17, functions=(), extra_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), *extra_opsets],
        functions=list(functions),
    )
    model.ir_version = 8
    return model


def ours(model, feeds, level=Level.ORT_ENABLE_ALL, names=None):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = level
    return onnxpy.InferenceSession(model.SerializeToString(), so).run(names, feeds)


def theirs(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )


def _weights(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _overridable_cases():
    """(model, feeds with the overriding weight) for kernels that prepare weights."""
    w, b = _weights(4, 3, 3, 3), _weights(4)
    conv = make(
        [
            helper.make_node("Conv", ["X", "W", "B"], ["C"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["C"], ["Y"]),
        ],
        [tv("X", [1, 3, 6, 6]), tv("W", [4, 3, 3, 3]), tv("B", [4])],
        [tv("Y", [1, 4, 6, 6])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    yield "conv", conv, {"X": _weights(1, 3, 6, 6), "W": _weights(4, 3, 3, 3)}
    gw = _weights(5, 4)
    gemm = make(
        [helper.make_node("Gemm", ["X", "W"], ["Y"], transB=1)],
        [tv("X", [2, 4]), tv("W", [5, 4])],
        [tv("Y", [2, 5])],
        [numpy_helper.from_array(gw, "W")],
    )
    yield "gemm", gemm, {"X": _weights(2, 4), "W": _weights(5, 4)}
    mw = _weights(4, 5)
    matmul_add = make(
        [helper.make_node("MatMul", ["X", "W"], ["M"]), helper.make_node("Add", ["M", "B"], ["Y"])],
        [tv("X", [2, 4]), tv("W", [4, 5]), tv("B", [5])],
        [tv("Y", [2, 5])],
        [numpy_helper.from_array(mw, "W"), numpy_helper.from_array(_weights(5), "B")],
    )
    yield "matmul_add", matmul_add, {"X": _weights(2, 4), "B": _weights(5)}
    shape = make(
        [helper.make_node("Reshape", ["X", "S"], ["Y"])],
        [tv("X", [2, 6]), tv("S", [2], T.INT64)],
        [tv("Y", [None, None])],
        [numpy_helper.from_array(np.array([3, 4], np.int64), "S")],
    )
    yield "reshape", shape, {"X": _weights(2, 6), "S": np.array([4, 3], np.int64)}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", list(_overridable_cases()), ids=lambda c: c[0])
def test_fed_value_overrides_an_initializer_at_every_level(case, level):
    _, model, feeds = case
    expected = theirs(model, feeds)
    got = ours(model, feeds, level)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    # Without the override, the initializer's value is used.
    defaults = {k: v for k, v in feeds.items() if k == "X"}
    for g, e in zip(ours(model, defaults, level), theirs(model, defaults), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("level", [Level.ORT_DISABLE_ALL, Level.ORT_ENABLE_ALL])
def test_function_output_left_out_but_used_inside(level):
    fn = helper.make_function(
        "local",
        "F",
        ["x"],
        ["a", "b"],
        [helper.make_node("Neg", ["x"], ["b"]), helper.make_node("Relu", ["b"], ["a"])],
        [helper.make_opsetid("", 17)],
    )
    model = make(
        [helper.make_node("F", ["X"], ["Y", ""], domain="local")],
        [tv("X", [3])],
        [tv("Y", [3])],
        functions=[fn],
        extra_opsets=[helper.make_opsetid("local", 1)],
    )
    x = np.array([1.0, -2.0, 0.5], np.float32)
    np.testing.assert_array_equal(ours(model, {"X": x}, level)[0], [0.0, 2.0, 0.0])


def test_optimized_model_written_to_another_folder_carries_its_weights(tmp_path):
    w = _weights(64, 64)
    model = make(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        [tv("X", [2, 64])],
        [tv("Y", [2, 64])],
        [numpy_helper.from_array(w, "W")],
    )
    src_dir, out_dir = tmp_path / "src", tmp_path / "elsewhere"
    src_dir.mkdir()
    out_dir.mkdir()
    onnx.save(model, src_dir / "m.onnx", save_as_external_data=True, location="m.bin")
    so = onnxpy.SessionOptions()
    so.optimized_model_filepath = str(out_dir / "opt.onnx")
    onnxpy.InferenceSession(str(src_dir / "m.onnx"), so)
    x = _weights(2, 64)
    for path in (out_dir / "opt.onnx",):
        (src_dir / "m.bin").unlink(missing_ok=True)  # the copy must not need the source's data
        got = onnxpy.InferenceSession(str(path)).run(None, {"X": x})[0]
        np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-5)
        ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(ref.run(None, {"X": x})[0], x @ w, rtol=1e-5, atol=1e-5)
    assert (out_dir / "opt.onnx.data").exists()


def test_optimized_model_external_file_name_from_config(tmp_path):
    model = make(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        [tv("X", [1, 32])],
        [tv("Y", [1, 32])],
        [numpy_helper.from_array(_weights(32, 32), "W")],
    )
    so = onnxpy.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", "weights.bin"
    )
    so.add_session_config_entry(
        "session.optimized_model_external_initializers_min_size_in_bytes", "100"
    )
    onnxpy.InferenceSession(model.SerializeToString(), so)
    assert (tmp_path / "weights.bin").stat().st_size == 32 * 32 * 4
    loaded = onnx.load(str(tmp_path / "opt.onnx"), load_external_data=False)
    assert loaded.graph.initializer[0].data_location == T.EXTERNAL


def test_terminate_raises_fail_like_onnxruntime():
    model = make([helper.make_node("Relu", ["X"], ["Y"])], [tv("X", [2])], [tv("Y", [2])])
    sess = onnxpy.InferenceSession(model.SerializeToString())
    ro = onnxpy.RunOptions()
    ro.terminate = True
    with pytest.raises(onnxpy.Fail, match="terminate"):
        sess.run(None, {"X": np.zeros(2, np.float32)}, ro)


def test_terminate_from_another_thread_stops_a_loop():
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["c"], ["co"]),
            helper.make_node("Add", ["v", "one"], ["vo"]),
        ],
        "body",
        [tv("i", [], T.INT64), tv("c", [], T.BOOL), tv("v", [])],
        [tv("co", [], T.BOOL), tv("vo", [])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    model = make(
        [helper.make_node("Loop", ["M", "", "X"], ["Y"], body=body)],
        [tv("X", []), tv("M", [], T.INT64)],
        [tv("Y", [])],
    )
    sess = onnxpy.InferenceSession(model.SerializeToString())
    ro = onnxpy.RunOptions()
    threading.Timer(0.05, lambda: setattr(ro, "terminate", True)).start()
    feeds = {"X": np.array(0.0, np.float32), "M": np.array(10**12, np.int64)}
    with pytest.raises(onnxpy.Fail):
        for _ in range(1000):  # each run checks the flag between nodes
            sess.run(None, feeds, ro)


def test_misspelt_options_raise_attribute_error():
    so = onnxpy.SessionOptions()
    with pytest.raises(AttributeError, match="graph_optimization_level"):
        so.graph_optimisation_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1  # real options still set
    assert so.copy().intra_op_num_threads == 1
    ro = onnxpy.RunOptions()
    with pytest.raises(AttributeError):
        ro.terminat = True
    ro.terminate = True
    assert ro.terminate


def _external_model(tmp_path, offset=None, length=None, dims=(16,)):
    (tmp_path / "w.bin").write_bytes(np.arange(16, dtype=np.float32).tobytes())
    w = onnx.TensorProto()
    w.name, w.data_type = "W", T.FLOAT
    w.dims.extend(dims)
    w.data_location = T.EXTERNAL
    w.external_data.add(key="location", value="w.bin")
    if offset is not None:
        w.external_data.add(key="offset", value=str(offset))
    if length is not None:
        w.external_data.add(key="length", value=str(length))
    model = make(
        [helper.make_node("Add", ["X", "W"], ["Y"])], [tv("X", [16])], [tv("Y", [16])], [w]
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return str(path)


@pytest.mark.parametrize(
    "offset, length, dims, fragment",
    [
        (-4, None, (16,), "negative offset"),
        (0, -1, (16,), "negative"),
        (60, 64, (16,), "past the end"),
        (10**15, None, (16,), "past the end"),
        (0, 2**62, (16,), "past the end"),
        (0, None, (2**40, 2**40), "shorter than its shape"),
        ("x", None, (16,), "must be integers"),
    ],
)
def test_external_data_pointing_outside_its_file_is_refused(
    tmp_path, offset, length, dims, fragment
):
    path = _external_model(tmp_path, offset, length, dims)
    with pytest.raises(onnxpy.InvalidGraph, match=fragment):
        onnxpy.InferenceSession(path)


def test_external_data_within_its_file_loads(tmp_path):
    path = _external_model(tmp_path, 0, 64)
    y = onnxpy.InferenceSession(path).run(None, {"X": np.zeros(16, np.float32)})[0]
    np.testing.assert_array_equal(y, np.arange(16))


def test_external_data_cannot_leave_the_model_folder(tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    path = _external_model(inner)
    model = onnx.load(path, load_external_data=False)
    model.graph.initializer[0].external_data[0].value = "../w.bin"
    (tmp_path / "w.bin").write_bytes(b"\0" * 64)
    onnx.save(model, path)
    with pytest.raises(onnxpy.InvalidGraph, match="escapes"):
        onnxpy.InferenceSession(path)
