"""The module surface: onnxruntime's import paths, versions, build info, logging and telemetry
switches, provider-argument checks, TypeHelper, set_seed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import onnx
import pytest

import onnxpy
from onnxpy.capi.onnxruntime_inference_collection import check_and_normalize_provider_args
from onnxpy.transformers.io_binding_helper import TypeHelper

from .models import mul_w


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_install_as_onnxruntime_serves_onnxruntimes_import_paths():
    out = _run(
        """
        import onnxpy
        alias = onnxpy.install_as_onnxruntime()
        import onnxruntime as ort
        from onnxruntime.capi import _pybind_state as C
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, OrtValueVector, RunOptions
        from onnxruntime.capi.onnxruntime_inference_collection import (
            check_and_normalize_provider_args,
        )
        from onnxruntime.transformers.io_binding_helper import TypeHelper
        from onnxruntime import InferenceSession, IOBinding, __version__
        assert ort is alias and InferenceSession is onnxpy.InferenceSession
        assert C.OrtValue is onnxpy.OrtValue and Fail is onnxpy.Fail
        assert IOBinding is onnxpy.IOBinding
        print(__version__, onnxpy.__version__, ort.get_version_string())
        try:
            import onnxruntime.quantization
        except ModuleNotFoundError:
            print("no quantization")
        """
    )
    versions, missing = out.strip().splitlines()
    assert versions.split() == [
        onnxpy.__ort_api_version__,
        onnxpy.__version__,
        onnxpy.__ort_api_version__,
    ]
    assert missing == "no quantization"


def test_onnxruntime_alias_puts_the_real_module_back():
    import onnxruntime as real

    with onnxpy.onnxruntime_alias() as alias:
        import onnxruntime

        assert onnxruntime is alias and onnxruntime.__version__ == onnxpy.__ort_api_version__
        assert onnxruntime.OrtValue is onnxpy.OrtValue
        with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
            onnxruntime.NoSuchThing  # noqa: B018
    assert sys.modules["onnxruntime"] is real


def test_version_and_build_info():
    assert onnxpy.__version__ != onnxpy.__ort_api_version__
    assert onnxpy.get_version_string() == onnxpy.__ort_api_version__
    assert "Build Info" in onnxpy.get_build_info() and onnxpy.__version__ in onnxpy.get_build_info()


def test_logger_callback_receives_session_messages():
    messages = []
    try:
        onnxpy.set_default_logger_callback(lambda *m: messages.append(m), severity=0)
        onnxpy.InferenceSession(mul_w().SerializeToString())
        assert messages, "no message reached the callback"
        for severity, category, logid, where, text in messages:
            assert isinstance(severity, int) and 0 <= severity <= 4
            assert category == "onnxpy" and isinstance(logid, str)
            assert ".py:" in where and isinstance(text, str)
        assert any("Initializing session" in m[4] for m in messages)

        def raising(*_):
            raise ValueError("callback failure")

        onnxpy.set_default_logger_callback(raising, severity=0)
        onnxpy.InferenceSession(mul_w().SerializeToString())  # the failure stays in the callback
        for bad in (5, -1, "2"):
            with pytest.raises(RuntimeError, match="Invalid logging severity"):
                onnxpy.set_default_logger_callback(raising, severity=bad)
        with pytest.raises(RuntimeError, match="callable"):
            onnxpy.set_default_logger_callback("not a callable")
    finally:
        onnxpy.set_default_logger_callback(None)
        onnxpy.set_default_logger_severity(2)
    count = len(messages)
    onnxpy.InferenceSession(mul_w().SerializeToString())
    assert len(messages) == count  # removed


def test_telemetry_switches_record_the_choice():
    from onnxpy.runtime.logs import telemetry_enabled

    onnxpy.enable_telemetry_events()
    assert telemetry_enabled()
    onnxpy.disable_telemetry_events()
    assert not telemetry_enabled()


def test_check_and_normalize_provider_args():
    valid = ["a", "b", "c"]

    def ok(providers, options, names, opts):
        assert check_and_normalize_provider_args(providers, options, valid) == (names, opts)

    ok(None, None, [], [])
    ok(["a"], None, ["a"], [{}])
    ok(("a", "b"), None, ["a", "b"], [{}, {}])
    ok([("a", {1: 2}), "b"], None, ["a", "b"], [{"1": "2"}, {}])
    ok(["a", "b"], [{1: 2}, {}], ["a", "b"], [{"1": "2"}, {}])
    with pytest.warns(UserWarning, match="more than once"):
        ok(["a", "b", "a"], [{"x": 1}, {}, {"y": 2}], ["a", "b"], [{"x": "1"}, {}])
    with pytest.warns(UserWarning, match="not in available provider names"):
        ok(["d"], None, ["d"], [{}])
    for providers, options in [
        (3, None),
        ([3], None),
        (["a"], 3),
        (["a"], ["not dict"]),
        (["a", "b"], [{1: 2}]),
        ([("a", {1: 2})], [{3: 4}]),
        ("a", None),
    ]:
        with warnings.catch_warnings(), pytest.raises(ValueError):
            warnings.simplefilter("ignore")
            check_and_normalize_provider_args(providers, options, valid)


def test_type_helper_maps_session_types_to_numpy_and_torch():
    torch = pytest.importorskip("torch")
    cases = {
        "tensor(float)": (np.float32, torch.float32),
        "tensor(float16)": (np.float16, torch.float16),
        "tensor(double)": (np.float64, torch.float64),
        "tensor(int64)": (np.int64, torch.int64),
        "tensor(int32)": (np.int32, torch.int32),
        "tensor(int8)": (np.int8, torch.int8),
        "tensor(uint8)": (np.uint8, torch.uint8),
        "tensor(bool)": (np.bool_, torch.bool),
    }
    for ort_type, (np_type, torch_type) in cases.items():
        assert TypeHelper.ort_type_to_numpy_type(ort_type) is np_type
        assert TypeHelper.ort_type_to_torch_type(ort_type) is torch_type
        assert TypeHelper.numpy_type_to_torch_type(np_type) is torch_type
        assert TypeHelper.torch_type_to_numpy_type(torch_type) is np_type
    sess = onnxpy.InferenceSession(mul_w().SerializeToString())
    assert TypeHelper.get_input_type(sess, "X") == "tensor(float)"
    assert TypeHelper.get_output_type(sess, "Y") == "tensor(float)"
    assert TypeHelper.get_io_numpy_type_map(sess) == {"X": np.float32, "Y": np.float32}
    for bad in ("seq(tensor(float))", "tensor(complex64)", 3):
        with pytest.raises(ValueError):
            TypeHelper.ort_type_to_torch_type(bad)


def test_set_seed_makes_unseeded_random_ops_repeat():
    from onnxpy.kernels.ai_onnx.random import set_default_seed

    node = onnx.helper.make_node("RandomNormal", [], ["Y"], shape=[4])
    graph = onnx.helper.make_graph(
        [node], "g", [], [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [4])]
    )
    m = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    sess = onnxpy.InferenceSession(m.SerializeToString())
    try:
        onnxpy.set_seed(1234)
        first = [sess.run(None, {})[0] for _ in range(2)]
        onnxpy.set_seed(1234)
        second = [sess.run(None, {})[0] for _ in range(2)]
    finally:
        set_default_seed(None)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])  # successive draws differ
