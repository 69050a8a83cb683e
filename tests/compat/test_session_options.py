"""SessionOptions that change the model (initializers, external data, free dimensions,
ort_config), config entries, the optimized model's external initializers, text feeds."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxpy

from .models import free_dims, identity_string, mlp_with_weights, model, mul_w, pad_external

X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
PADS = np.array([0, 1, 0, 1], dtype=np.int64)  # one zero column before and after each row


def test_add_initializer_replaces_the_models_initializer():
    so = onnxpy.SessionOptions()
    w = np.array([[2.0, 1.0], [4.0, 3.0], [6.0, 5.0]], dtype=np.float32)
    so.add_initializer("W", onnxpy.OrtValue.ortvalue_from_numpy(w))
    model_proto = mul_w()
    before = model_proto.SerializeToString()
    sess = onnxpy.InferenceSession(model_proto, so)
    np.testing.assert_array_equal(sess.run(["Y"], {"X": X})[0], [[2, 2], [12, 12], [30, 30]])
    assert model_proto.SerializeToString() == before  # the caller's proto is not changed
    plain = onnxpy.InferenceSession(model_proto)  # and other sessions see the model's W
    np.testing.assert_array_equal(plain.run(["Y"], {"X": X})[0], X * X)


def test_add_initializer_checks_type_and_shape():
    so = onnxpy.SessionOptions()
    so.add_initializer("W", np.ones((3, 2), np.float64))
    with pytest.raises(onnxpy.InvalidArgument, match="float64 \\[3, 2\\] but the model declares"):
        onnxpy.InferenceSession(mul_w().SerializeToString(), so)
    so = onnxpy.SessionOptions()
    so.add_initializer("W", np.ones((2, 2), np.float32))
    with pytest.raises(onnxpy.InvalidArgument, match="declares float32 \\[3, 2\\]"):
        onnxpy.InferenceSession(mul_w().SerializeToString(), so)


def test_an_initializer_the_model_lacks_is_ignored_with_a_warning(caplog):
    so = onnxpy.SessionOptions()
    so.add_initializer("not_there", np.ones(2, np.float32))
    with caplog.at_level("WARNING", logger="onnxpy"):
        sess = onnxpy.InferenceSession(mul_w().SerializeToString(), so)
    assert "not_there" in caplog.text
    np.testing.assert_array_equal(sess.run(None, {"X": X})[0], X * X)


def _padded(x):
    return np.pad(x, ((0, 0), (1, 1)))


def test_external_initializers_supplied_by_name(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(pad_external(), path)
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    with pytest.raises(onnxpy.NoSuchFile):  # the data file is not there
        onnxpy.InferenceSession(str(path)).run(None, {"X": x})
    so = onnxpy.SessionOptions()
    so.add_external_initializers(["pads"], [onnxpy.OrtValue.ortvalue_from_numpy(PADS)])
    np.testing.assert_array_equal(
        onnxpy.InferenceSession(str(path), so).run(None, {"X": x})[0], _padded(x)
    )
    so = onnxpy.SessionOptions()
    so.add_external_initializers(["W"], [onnxpy.OrtValue.ortvalue_from_numpy(X)])
    with pytest.raises(onnxpy.InvalidArgument, match="not in an external file"):
        onnxpy.InferenceSession(mul_w().SerializeToString(), so)


def test_external_files_supplied_in_memory(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(pad_external("data/pads.bin"), path)
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    content = b"\xff" * 8 + PADS.tobytes() + b"\xee" * 5  # the tensor sits at offset 8
    so = onnxpy.SessionOptions()
    so.add_external_initializers_from_files_in_memory(["data/pads.bin"], [content], [len(content)])
    np.testing.assert_array_equal(
        onnxpy.InferenceSession(str(path), so).run(None, {"X": x})[0], _padded(x)
    )
    short = onnxpy.SessionOptions()
    short.add_external_initializers_from_files_in_memory(["data/pads.bin"], [content[:20]], [20])
    with pytest.raises(onnxpy.InvalidArgument, match="needs 32 at offset 8"):
        onnxpy.InferenceSession(str(path), short)
    with pytest.raises(onnxpy.InvalidArgument, match="fewer than its length"):
        short.add_external_initializers_from_files_in_memory(["x"], [b"abc"], [4])


def test_free_dimension_overrides():
    by_name = onnxpy.SessionOptions()
    by_name.add_free_dimension_override_by_name("batch", 4)
    by_name.add_free_dimension_override_by_name("chan", 6)
    sess = onnxpy.InferenceSession(free_dims().SerializeToString(), by_name)
    assert sess.get_inputs()[0].shape == [4, 6, 5] and sess.get_outputs()[0].shape == [4, 6, 5]
    x = -np.ones((4, 6, 5), np.float32)
    np.testing.assert_array_equal(sess.run(None, {"X": x})[0], -x)
    with pytest.raises(onnxpy.InvalidArgument, match="index: 0 Got: 3 Expected: 4"):
        sess.run(None, {"X": np.ones((3, 6, 5), np.float32)})
    by_denotation = onnxpy.SessionOptions()
    by_denotation.add_free_dimension_override_by_denotation("DATA_BATCH", 3)
    by_denotation.add_free_dimension_override_by_denotation("DATA_CHANNEL", 5)
    sess = onnxpy.InferenceSession(free_dims().SerializeToString(), by_denotation)
    assert sess.get_inputs()[0].shape == [3, 5, 5]
    with pytest.raises(onnxpy.InvalidArgument, match="non-negative"):
        by_name.add_free_dimension_override_by_name("batch", -4)


def test_config_entries():
    so = onnxpy.SessionOptions()
    so.add_session_config_entry("CONFIG_KEY", "CONFIG_VAL")
    assert so.get_session_config_entry("CONFIG_KEY") == "CONFIG_VAL"
    with pytest.raises(
        RuntimeError, match="SessionOptions does not have configuration with key: NO"
    ):
        so.get_session_config_entry("NO")
    with pytest.raises(onnxpy.NotImplemented, match="register_op"):
        so.register_custom_ops_library("libcustom.so")


def _ort_config_model(config: str):
    return model(
        [onnx.helper.make_node("Abs", ["x"], ["y"])],
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
        meta={"ort_config": config},
    )


def test_session_options_from_the_models_ort_config(monkeypatch):
    config = (
        '{"session_options": {"inter_op_num_threads": 5, "intra_op_num_threads": 1, '
        '"graph_optimization_level": 1, "execution_mode": 1, "unknown_option": 3}}'
    )
    m = _ort_config_model(config).SerializeToString()
    assert onnxpy.InferenceSession(m).get_session_options().inter_op_num_threads == 0  # off
    monkeypatch.setenv("ORT_LOAD_CONFIG_FROM_MODEL", "1")
    opts = onnxpy.InferenceSession(m).get_session_options()
    assert (opts.inter_op_num_threads, opts.intra_op_num_threads) == (5, 1)
    assert opts.graph_optimization_level == onnxpy.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert opts.execution_mode == onnxpy.ExecutionMode.ORT_PARALLEL
    bad_configs = [
        ("{not json", "cannot be parsed"),
        ('{"session_options": {"enable_profiling": "yes"}}', "must be an integer"),
        ('{"session_options": {"graph_optimization_level": 5}}', "Unsupported value"),
    ]
    for bad, match in bad_configs:
        with pytest.raises(onnxpy.InvalidArgument, match=match):
            onnxpy.InferenceSession(_ort_config_model(bad).SerializeToString())


def test_optimized_model_with_external_initializers(tmp_path):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "out" / "opt.onnx")
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "w.bin")
    so.add_session_config_entry(
        "session.optimized_model_external_initializers_min_size_in_bytes", "500"
    )
    onnxpy.InferenceSession(mlp_with_weights().SerializeToString(), so)
    saved = onnx.load(str(tmp_path / "out" / "opt.onnx"), load_external_data=False)
    external = {
        t.name for t in saved.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    }
    assert external == {"W1", "W2"}  # 1024 and 512 bytes; B1 (128 bytes) stays inline
    assert os.path.getsize(tmp_path / "out" / "w.bin") >= 1536
    x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    expected = ort.InferenceSession(mlp_with_weights().SerializeToString()).run(None, {"X": x})[0]
    for rt in (onnxpy, ort):  # the saved model loads in both runtimes
        got = rt.InferenceSession(so.optimized_model_filepath).run(None, {"X": x})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_optimized_model_from_a_model_with_its_own_external_data(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    onnx.save(
        mlp_with_weights(),
        src / "m.onnx",
        save_as_external_data=True,
        location="orig.bin",
        size_threshold=0,
    )
    so = onnxpy.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")  # another folder: data is copied in
    onnxpy.InferenceSession(str(src / "m.onnx"), so)
    saved = onnx.load(str(tmp_path / "opt.onnx"), load_external_data=False)
    # A source that kept its weights outside gets a data file next to the copy, never a
    # reference back into the source's folder.
    for t in saved.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            location = next(e.value for e in t.external_data if e.key == "location")
            assert (
                (tmp_path / location).exists()
                and not (src / location).samefile(tmp_path / location)
                if (src / location).exists()
                else (tmp_path / location).exists()
            )
    (src / "orig.bin").unlink()  # the copy must not need the source's data
    x = np.ones((1, 8), np.float32)
    np.testing.assert_allclose(
        ort.InferenceSession(so.optimized_model_filepath).run(None, {"X": x})[0],
        ort.InferenceSession(mlp_with_weights().SerializeToString()).run(None, {"X": x})[0],
        rtol=1e-5,
    )


TEXT = [["this", "is"], ["a", "test"]]


@pytest.mark.parametrize(
    "feed, expected",
    [
        (np.array(TEXT), TEXT),
        (np.array(TEXT, dtype=object), TEXT),
        (np.array([[b"this", b"is"], [b"a", b"test"]]), TEXT),
        (
            np.array([[b"must", b"have"], [b"same", b"size"]], dtype=np.void),
            [["must", "have"], ["same", "size"]],
        ),
        (
            np.array([["Olá".encode(), "你好".encode()], [b"x", b"y"]]),
            [["Olá", "你好"], ["x", "y"]],
        ),
    ],
    ids=["str", "object", "bytes", "void", "utf8-bytes"],
)
def test_text_feeds(feed, expected):
    # Bytes and np.void items are UTF-8 text, each item on its own (onnxruntime 1.32 reads a
    # bytes item that fills its width on into the next one: b"this" of |S4 becomes "thisis").
    m = identity_string().SerializeToString()
    ours = onnxpy.InferenceSession(m).run(None, {"S": feed})[0]
    assert ours.dtype == object and ours.tolist() == expected
    bad = np.array([[b"\xff\xfe", b"a"], [b"b", b"c"]])
    with pytest.raises(onnxpy.InvalidArgument, match="not UTF-8"):
        onnxpy.InferenceSession(m).run(None, {"S": bad})


def test_text_feeds_agree_with_onnxruntime_where_it_reads_them_whole():
    m = identity_string().SerializeToString()
    for feed in (
        np.array([[b"this", b"is"], [b"identity", b"test"]], dtype="S10"),
        np.array([[b"must", b"have"], [b"same", b"size"]], dtype=np.void),
    ):
        ours = onnxpy.InferenceSession(m).run(None, {"S": feed})[0]
        theirs = ort.InferenceSession(m).run(None, {"S": feed})[0]
        assert ours.tolist() == theirs.tolist()
