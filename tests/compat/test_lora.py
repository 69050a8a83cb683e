"""LoRA adapters: onnxruntime's adapter file format both ways, and runs with active adapters."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import onnxpy

from .models import lora_model

A = np.full((4, 2), 0.5, np.float32)
B = np.tile(np.arange(7, 11, dtype=np.float32), (2, 1))
BASE = np.arange(1, 17, dtype=np.float32).reshape(4, 4)


def test_round_trip_and_onnxruntime_reads_our_file(tmp_path):
    path = str(tmp_path / "ours.onnx_adapter")
    fmt = onnxpy.AdapterFormat()
    fmt.set_adapter_version(3)
    fmt.set_model_version(5)
    params = {"f": np.arange(10, dtype=np.float32).reshape(5, 2), "i": np.arange(6).reshape(2, 3)}
    fmt.set_parameters({k: onnxpy.OrtValue.ortvalue_from_numpy(v) for k, v in params.items()})
    fmt.export_adapter(path)
    for reader in (onnxpy.AdapterFormat, ort.AdapterFormat):
        back = reader.read_adapter(path)
        assert (back.get_adapter_version(), back.get_model_version()) == (3, 5)
        got = back.get_parameters()
        assert sorted(got) == ["f", "i"]
        for name, array in params.items():
            assert (
                got[name].element_type()
                == onnxpy.OrtValue.ortvalue_from_numpy(array).element_type()
            )
            np.testing.assert_array_equal(got[name].numpy(), array)


def test_we_read_onnxruntimes_file(tmp_path):
    path = str(tmp_path / "theirs.onnx_adapter")
    fmt = ort.AdapterFormat()
    fmt.set_adapter_version(1)
    fmt.set_model_version(2)
    fmt.set_parameters(
        {
            "lora_a": ort.OrtValue.ortvalue_from_numpy(A),
            "lora_b": ort.OrtValue.ortvalue_from_numpy(B),
        }
    )
    fmt.export_adapter(path)
    back = onnxpy.AdapterFormat.read_adapter(path)
    assert back.get_model_version() == 2
    np.testing.assert_array_equal(back.get_parameters()["lora_b"].numpy(), B)


def test_runs_with_an_active_adapter(tmp_path):
    path = str(tmp_path / "a.onnx_adapter")
    fmt = onnxpy.AdapterFormat()
    fmt.set_parameters({"lora_a": A, "lora_b": B})
    fmt.export_adapter(path)
    adapter = onnxpy.LoraAdapter()
    adapter.Load(path)
    sess = onnxpy.InferenceSession(lora_model().SerializeToString())
    x = np.eye(4, dtype=np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], BASE)  # no adapter: W only
    with_adapter = onnxpy.RunOptions()
    with_adapter.add_active_adapter(adapter)
    np.testing.assert_allclose(sess.run(None, {"x": x}, with_adapter)[0], BASE + A @ B)
    # the caller's own feed of a parameter wins over the adapter's
    got = sess.run(None, {"x": x, "lora_a": np.zeros_like(A)}, with_adapter)[0]
    np.testing.assert_allclose(got, BASE)
    expected = ort.InferenceSession(lora_model().SerializeToString()).run(
        None, {"x": x, "lora_a": A, "lora_b": B}
    )[0]
    np.testing.assert_allclose(sess.run(None, {"x": x}, with_adapter)[0], expected, rtol=1e-6)


def test_bad_files_are_refused(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"not an adapter at all")
    with pytest.raises(onnxpy.InvalidArgument, match="TORT"):
        onnxpy.AdapterFormat.read_adapter(str(junk))
    with pytest.raises(onnxpy.NoSuchFile):
        onnxpy.LoraAdapter().Load(str(tmp_path / "missing"))
    with pytest.raises(onnxpy.InvalidArgument, match="LoraAdapter"):
        onnxpy.RunOptions().add_active_adapter("adapter.onnx_adapter")
