"""Big weights are read once into arrays, never held twice, and survive every way out."""

from __future__ import annotations

import gc

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpy
from onnxpy.model.loader import load_model
from onnxpy.model.weights import InlineWeights, is_inline, materialize
from onnxpy.model.wire import LEAN_MIN_BYTES, parse_model_lean
from tests.runtime.models import model

F = TensorProto.FLOAT


def _weights_model(seed=0):
    """Y = Relu(X @ W1 + b) @ W2 with W1, W2 big (lean) and b, a float16 table, small/typed."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((64, 48)).astype(np.float32)  # 12 KB
    w2 = rng.standard_normal((48, 40)).astype(np.float32)  # 7.5 KB
    b = rng.standard_normal(48).astype(np.float32)  # small: stays in the proto
    h = rng.standard_normal((4, 1024)).astype(np.float16)  # 8 KB, unused by the output
    # Odd length: misaligns whatever follows it in the file.
    odd = np.arange(4097, dtype=np.int64).astype(np.int8)
    inits = [
        numpy_helper.from_array(odd, "odd"),
        numpy_helper.from_array(w1, "W1"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(w2, "W2"),
        numpy_helper.from_array(h, "H"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W1"], ["t"]),
        helper.make_node("Add", ["t", "b"], ["u"]),
        helper.make_node("Relu", ["u"], ["r"]),
        helper.make_node("MatMul", ["r", "W2"], ["Y"]),
        helper.make_node("Cast", ["H"], ["Hf"], to=F),
        helper.make_node("ReduceSum", ["Hf"], ["S"], keepdims=0),
        helper.make_node("Size", ["odd"], ["n"]),
    ]
    m = model(
        nodes,
        [helper.make_tensor_value_info("X", F, ["N", 64])],
        [
            helper.make_tensor_value_info("Y", F, ["N", 40]),
            helper.make_tensor_value_info("S", F, []),
            helper.make_tensor_value_info("n", TensorProto.INT64, []),
        ],
        inits,
    )
    return m, {"W1": w1, "W2": w2, "H": h, "b": b, "odd": odd}


def test_lean_parse_matches_protobuf():
    m, arrays = _weights_model()
    data = m.SerializeToString()
    lean = parse_model_lean(data)
    assert lean is not None
    proto, weights = lean
    assert len(weights) == 4  # W1, W2, H, odd; b (192 bytes) stays in the proto
    by_name = {t.name: t for t in proto.graph.initializer}
    assert not is_inline(by_name["b"]) and by_name["b"].raw_data
    for name in ("W1", "W2", "H", "odd"):
        t = by_name[name]
        assert is_inline(t) and not t.raw_data
        np.testing.assert_array_equal(onnxpy.model.tensor_to_array(t), arrays[name])
    # Giving the bytes back yields exactly the protobuf parser's message.
    assert materialize(proto) == onnx.load_model_from_string(data)


def test_small_models_and_garbage_use_the_plain_parser():
    small = model(
        [helper.make_node("Relu", ["X"], ["Y"])],
        [helper.make_tensor_value_info("X", F, [2])],
        [helper.make_tensor_value_info("Y", F, [2])],
    )
    assert parse_model_lean(small.SerializeToString()) is None
    data = _weights_model()[0].SerializeToString()
    assert parse_model_lean(data[: len(data) // 2]) is None  # truncated: no guess
    with pytest.raises(onnxpy.errors.InvalidProtobuf):
        onnxpy.InferenceSession(data[: len(data) // 2])


@pytest.mark.parametrize("source", ["path", "bytes", "proto"])
def test_session_outputs_match_onnxruntime(tmp_path, source):
    m, _ = _weights_model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    arg = {"path": str(path), "bytes": m.SerializeToString(), "proto": m}[source]
    sess = onnxpy.InferenceSession(arg)
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    expected = ort.InferenceSession(str(path)).run(None, {"X": x})
    for a, e in zip(sess.run(None, {"X": x}), expected):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_weights_are_held_once_and_released_with_the_session(tmp_path):
    m, arrays = _weights_model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    sess = onnxpy.InferenceSession(str(path))
    weights = sess._loaded.weights
    assert isinstance(weights, InlineWeights)
    graph = sess._loaded.proto.graph
    assert not any(len(t.raw_data) >= LEAN_MIN_BYTES for t in graph.initializer)
    token = weights.token
    ref = next(e.value for t in graph.initializer if is_inline(t) for e in t.external_data)
    assert ref  # some reference exists
    del sess, weights, graph
    gc.collect()
    from onnxpy.model import weights as registry

    assert token not in registry._registry


def test_optimizer_written_weights_are_held_once(tmp_path):
    """Conv+BatchNormalization writes new weights: after planning the proto holds none."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)  # 4.6 KB
    bn = [numpy_helper.from_array(rng.random(16).astype(np.float32) + 0.5, n) for n in "sbmv"]
    m = model(
        [
            helper.make_node("Conv", ["X", "W"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["Y"]),
        ],
        [helper.make_tensor_value_info("X", F, [1, 8, 6, 6])],
        [helper.make_tensor_value_info("Y", F, [1, 16, 6, 6])],
        [numpy_helper.from_array(w, "W"), *bn],
    )
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    sess = onnxpy.InferenceSession(str(path))
    graph = sess._loaded.proto.graph
    assert [n.op_type for n in graph.node] == ["Conv"]
    assert all(len(t.raw_data) < LEAN_MIN_BYTES for t in graph.initializer)
    # The replaced original W is released: only the fused weight remains held.
    assert len(sess._loaded.weights) == 1
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    expected = ort.InferenceSession(str(path)).run(None, {"X": x})[0]
    np.testing.assert_allclose(sess.run(None, {"X": x})[0], expected, rtol=1e-4, atol=1e-4)


def test_optimized_model_file_carries_its_weights(tmp_path):
    m, _ = _weights_model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    so = onnxpy.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    sess = onnxpy.InferenceSession(str(path), so)
    saved = onnx.load(str(tmp_path / "opt.onnx"))
    assert not any(t.data_location == TensorProto.EXTERNAL for t in saved.graph.initializer)
    x = np.ones((2, 64), np.float32)
    got = ort.InferenceSession(str(tmp_path / "opt.onnx")).run(None, {"X": x})
    for a, e in zip(sess.run(None, {"X": x}), got):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_loader_keeps_weights_with_the_model(tmp_path):
    m, arrays = _weights_model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    loaded = load_model(str(path))
    assert loaded.weights is not None and len(loaded.weights) == 4
    w1 = next(t for t in loaded.proto.graph.initializer if t.name == "W1")
    arr = onnxpy.model.tensor_to_array(w1)
    assert not arr.flags.writeable and arr.flags.aligned
    np.testing.assert_array_equal(arr, arrays["W1"])
