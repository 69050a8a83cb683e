"""When a plan's steps are compiled into one function: small plans before their first run,
large ones (over ``COMPILE_AT_ONCE`` steps) when they run a second time. Both ways give the
same values and name a failing node the same way."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxpy as rt
from onnxpy.errors import Fail
from onnxpy.runtime import plan as plan_module

F = TensorProto.FLOAT


def _chain(n: int):
    """Y = relu(A) + B, then ``n`` alternating Neg/Abs nodes: a long plan."""
    nodes = [
        helper.make_node("Relu", ["A"], ["r"], name="first"),
        helper.make_node("Add", ["r", "B"], ["t0"], name="the_add"),
    ]
    for k in range(n):
        nodes.append(helper.make_node("Neg" if k % 2 else "Abs", [f"t{k}"], [f"t{k + 1}"]))
    nodes.append(helper.make_node("Identity", [f"t{n}"], ["Y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("A", F, [None, 3]),
            helper.make_tensor_value_info("B", F, [None, 3]),
        ],
        [helper.make_tensor_value_info("Y", F, [None, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _expected(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    t = np.maximum(a, 0) + b
    return -np.abs(t) if n % 2 == 0 and n else np.abs(t)


@pytest.mark.parametrize("steps", [5, 40])
def test_large_plans_compile_on_their_second_run(monkeypatch, steps):
    monkeypatch.setattr(plan_module, "COMPILE_AT_ONCE", 20)
    compiled = []
    original = plan_module.compile_steps
    monkeypatch.setattr(
        plan_module, "compile_steps", lambda s: compiled.append(len(s)) or original(s)
    )
    so = rt.SessionOptions()
    so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = rt.InferenceSession(_chain(steps).SerializeToString(), so)
    rng = np.random.default_rng(0)
    feeds = [
        {"A": rng.standard_normal((4, 3), dtype=np.float32), "B": np.ones((4, 3), np.float32)}
        for _ in range(3)
    ]
    results = []
    for k, f in enumerate(feeds):
        results.append(sess.run(None, f)[0])
        if steps > 20:  # the first run is interpreted; the second compiles
            assert compiled == ([] if k == 0 else [steps + 3])
        else:  # compiled before the first run
            assert compiled == [steps + 3]
    for f, y in zip(feeds, results):
        np.testing.assert_array_equal(y, _expected(f["A"], f["B"], steps))


def test_a_failing_node_is_named_before_and_after_compiling(monkeypatch):
    monkeypatch.setattr(plan_module, "COMPILE_AT_ONCE", 20)
    so = rt.SessionOptions()
    so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = rt.InferenceSession(_chain(40).SerializeToString(), so)
    bad = {"A": np.ones((4, 3), np.float32), "B": np.ones((5, 3), np.float32)}
    good = {"A": np.ones((2, 3), np.float32), "B": np.ones((2, 3), np.float32)}
    for _ in range(3):  # interpreted, then compiled (by the good run), then compiled
        with pytest.raises(Fail, match="'the_add' \\(op Add\\)"):
            sess.run(None, bad)
        np.testing.assert_array_equal(sess.run(None, good)[0], np.full((2, 3), -2, np.float32))
