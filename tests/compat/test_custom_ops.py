"""register_op: Python kernels for custom domains, run like onnxpy's own kernels."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper

import onnxpy

from .models import model

vi = helper.make_tensor_value_info


def _custom_model(domain, op_type, n_out=1, version=1, **attrs):
    outs = [f"Y{i}" for i in range(n_out)]
    return model(
        [helper.make_node(op_type, ["X"], outs, domain=domain, **attrs)],
        [vi("X", T.FLOAT, ["N"])],
        [vi(o, T.FLOAT, ["N"]) for o in outs],
        extra=[helper.make_opsetid(domain, version)],
    ).SerializeToString()


def test_decorated_kernel_runs_with_attribute_defaults_and_values():
    @onnxpy.register_op("test.compat.swish", "Swish")
    def swish(x, /, *, beta=1.0):
        return x / (1.0 + np.exp(-beta * x))

    x = np.array([-1.0, 0.0, 2.0], np.float32)
    default = onnxpy.InferenceSession(_custom_model("test.compat.swish", "Swish")).run(
        None, {"X": x}
    )
    np.testing.assert_allclose(default[0], x / (1 + np.exp(-x)), rtol=1e-6)
    scaled = onnxpy.InferenceSession(_custom_model("test.compat.swish", "Swish", beta=2.0))
    np.testing.assert_allclose(scaled.run(None, {"X": x})[0], x / (1 + np.exp(-2 * x)), rtol=1e-6)
    unknown = _custom_model("test.compat.swish", "Swish", gamma=2.0)
    with pytest.raises(onnxpy.NotImplemented, match="attribute 'gamma'"):
        onnxpy.InferenceSession(unknown)


def test_several_outputs_and_failures_name_the_node():
    def split_sign(x, /):
        if not np.isfinite(x).all():
            raise ValueError("non-finite input")
        return np.maximum(x, 0), np.minimum(x, 0)

    assert onnxpy.register_op("test.compat.sign", "SplitSign", split_sign) is split_sign
    sess = onnxpy.InferenceSession(_custom_model("test.compat.sign", "SplitSign", n_out=2))
    pos, neg = sess.run(None, {"X": np.array([-2.0, 3.0], np.float32)})
    assert pos.tolist() == [0.0, 3.0] and neg.tolist() == [-2.0, 0.0]
    with pytest.raises(Exception, match="SplitSign"):
        sess.run(None, {"X": np.array([np.inf], np.float32)})


def test_factory_kernels_and_versions():
    calls = []

    def make_scale(info, *, factor=1.0):
        calls.append((info.op_type, info.opset))
        return lambda x: x * np.float32(factor)

    onnxpy.register_op("test.compat.scale", "Scale", make_scale, factory=True)
    onnxpy.register_op("test.compat.scale", "Scale", lambda x: x + 100, since=2)
    x = np.array([1.0, 2.0], np.float32)
    v1 = onnxpy.InferenceSession(_custom_model("test.compat.scale", "Scale", factor=3.0))
    assert v1.run(None, {"X": x})[0].tolist() == [3.0, 6.0]
    assert calls == [("Scale", 1)]  # built once, at session creation
    v1.run(None, {"X": x})
    assert len(calls) == 1
    v2 = onnxpy.InferenceSession(_custom_model("test.compat.scale", "Scale", version=2))
    assert v2.run(None, {"X": x})[0].tolist() == [101.0, 102.0]


def test_bad_registrations_are_refused():
    with pytest.raises(onnxpy.InvalidArgument, match="already has a kernel from opset 14"):
        onnxpy.register_op("", "Relu", lambda x: x, since=14)
    with pytest.raises(onnxpy.InvalidArgument, match="non-empty"):
        onnxpy.register_op("test.compat", "", lambda x: x)
    with pytest.raises(onnxpy.InvalidArgument, match="since"):
        onnxpy.register_op("test.compat", "Op", lambda x: x, since=0)
    with pytest.raises(onnxpy.InvalidArgument, match="callable"):
        onnxpy.register_op("test.compat", "Op", 3)
    with pytest.raises(onnxpy.NotImplemented, match="no kernel for this operator"):
        onnxpy.InferenceSession(_custom_model("test.compat.none", "Nothing"))
