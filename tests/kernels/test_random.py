"""Random generators: seeding, dtypes, shapes, ranges, statistics and thread safety."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxpy
from onnxpy.types import elem_type_of


def session(op, inputs=(), **attrs):
    names = [f"x{i}" for i in range(len(inputs))]
    node = helper.make_node(op, names, ["y"], **attrs)
    graph_inputs = [
        helper.make_tensor_value_info(n, elem_type_of(np.asarray(v).dtype), np.shape(v))
        for n, v in zip(names, inputs, strict=True)
    ]
    # Declared as the spec's output type (dtype, else the input's for *Like and Bernoulli,
    # int32 for Multinomial, float): a contradicting declaration is refused at creation.
    if "dtype" in attrs:
        out_elem = attrs["dtype"]
    elif op.endswith("Like") or op == "Bernoulli":
        out_elem = elem_type_of(np.asarray(inputs[0]).dtype)
    elif op == "Multinomial":
        out_elem = TensorProto.INT32
    else:
        out_elem = TensorProto.FLOAT
    out = helper.make_tensor_value_info("y", out_elem, [None])
    graph = helper.make_graph([node], "g", graph_inputs, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = min(model.ir_version, onnx.IR_VERSION)
    sess = onnxpy.InferenceSession(model.SerializeToString())
    feeds = {n: np.asarray(v) for n, v in zip(names, inputs, strict=True)}
    return lambda: sess.run(None, feeds)[0]


def test_seeded_values_repeat_across_runs_and_sessions():
    first = session("RandomNormal", shape=[4, 5], seed=3.0)
    a, b = first(), first()
    c = session("RandomNormal", shape=[4, 5], seed=3.0)()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    other = session("RandomNormal", shape=[4, 5], seed=4.0)()
    assert not np.array_equal(a, other)
    fractional = session("RandomNormal", shape=[4, 5], seed=3.5)()
    assert not np.array_equal(a, fractional)


def test_unseeded_values_change_per_run():
    run = session("RandomUniform", shape=[64])
    assert not np.array_equal(run(), run())


@pytest.mark.parametrize(
    ("elem", "dtype"),
    [
        (TensorProto.FLOAT16, np.float16),
        (TensorProto.DOUBLE, np.float64),
        (TensorProto.FLOAT, np.float32),
    ],
)
def test_uniform_dtype_and_range(elem, dtype):
    y = session("RandomUniform", shape=[1000], dtype=elem, low=-2.0, high=3.0, seed=1.0)()
    assert y.dtype == dtype and y.shape == (1000,)
    assert y.min() >= -2.0 and y.max() <= 3.0
    assert abs(float(y.astype(np.float64).mean()) - 0.5) < 0.25


def test_normal_statistics():
    y = session("RandomNormal", shape=[20000], mean=5.0, scale=2.0, seed=0.0)()
    assert y.dtype == np.float32
    assert abs(y.mean() - 5.0) < 0.1 and abs(y.std() - 2.0) < 0.1


def test_like_ops_take_shape_and_dtype():
    x = np.zeros((3, 2), dtype=np.float64)
    y = session("RandomNormalLike", [x], seed=1.0)()
    assert y.shape == (3, 2) and y.dtype == np.float64
    ints = np.zeros((2, 2), dtype=np.int32)
    z = session("RandomUniformLike", [ints], dtype=TensorProto.FLOAT)()
    assert z.shape == (2, 2) and z.dtype == np.float32


def test_like_with_integer_input_and_no_dtype_fails():
    with pytest.raises(onnxpy.Fail):
        session("RandomUniformLike", [np.zeros(2, dtype=np.int32)])()


def test_multinomial_degenerate_and_frequencies():
    logits = np.log(np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]], dtype=np.float64) + 1e-300)
    y = session("Multinomial", [logits], sample_size=20000, seed=2.0, dtype=TensorProto.INT64)()
    assert y.dtype == np.int64 and y.shape == (2, 20000)
    assert np.all(y[0] == 1)
    freq = np.bincount(y[1], minlength=3) / 20000
    np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=0.02)
    default = session("Multinomial", [logits.astype(np.float32)])()
    assert default.dtype == np.int32 and default.shape == (2, 1)


def test_bernoulli_extremes_dtype_and_rate():
    p = np.array([0.0, 1.0, 0.0, 1.0])
    y = session("Bernoulli", [p])()
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, p)
    b = session("Bernoulli", [p.astype(np.float32)], dtype=TensorProto.BOOL)()
    assert b.dtype == np.bool_
    np.testing.assert_array_equal(b, [False, True, False, True])
    many = session("Bernoulli", [np.full(20000, 0.3, dtype=np.float32)], seed=5.0)()
    assert abs(many.mean() - 0.3) < 0.02


def test_seeded_runs_in_threads_agree():
    run = session("RandomNormal", shape=[256], seed=11.0)
    expected = run()
    results = [None] * 8

    def work(i):
        results[i] = run()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)
