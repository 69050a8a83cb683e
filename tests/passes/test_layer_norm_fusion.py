"""Decomposed layer normalization -> LayerNormalization: equal outputs, and near misses stay."""

from __future__ import annotations

import collections

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnxpy.passes.fusion import LayerNormFusion, SkipLayerNormFusion
from tests.passes.test_passes import check, init, make_model, random_feeds, vi

F = TensorProto.FLOAT
H = 8


def _decomposed(opset=17, square="pow", eps=1e-5, gamma=True, beta=True, axes=(-1,), extra=()):
    """y = LayerNorm(X) over the last axis, written out in primitives."""
    rng = np.random.default_rng(0)
    inits = [init("eps", np.float32(eps)), init("two", np.float32(2.0))]

    def mean(src, dst):
        if opset >= 18:
            name = f"{dst}_axes"
            inits.append(init(name, np.array(axes, np.int64)))
            return helper.make_node("ReduceMean", [src, name], [dst])
        return helper.make_node("ReduceMean", [src], [dst], axes=list(axes))

    nodes = [
        mean("X", "m"),
        helper.make_node("Sub", ["X", "m"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["p"])
        if square == "pow"
        else helper.make_node("Mul", ["d", "d"], ["p"]),
        mean("p", "v"),
        helper.make_node("Add", ["v", "eps"], ["e"]),
        helper.make_node("Sqrt", ["e"], ["s"]),
        helper.make_node("Div", ["d", "s"], ["n" if gamma else "Y"]),
    ]
    if gamma:
        inits.append(init("gamma", rng.standard_normal(H).astype(np.float32)))
        nodes.append(helper.make_node("Mul", ["n", "gamma"], ["g" if beta else "Y"]))
        if beta:
            inits.append(init("beta", rng.standard_normal(H).astype(np.float32)))
            nodes.append(helper.make_node("Add", ["g", "beta"], ["Y"]))
    outputs = [vi(name, ["N", 4, H]) for name in ("Y", *extra)]
    return make_model(nodes, [vi("X", ["N", 4, H])], outputs, inits, opset=opset)


def ops(model):
    return collections.Counter(n.op_type for n in model.graph.node)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"opset": 18},
        {"square": "mul"},
        {"beta": False},
        {"gamma": False},
        {"axes": (2,)},
    ],
)
def test_decomposed_layer_norm_fuses(kw):
    m = _decomposed(**kw)
    opt = check(m, [LayerNormFusion()], rtol=1e-5, atol=1e-5)
    assert ops(opt) == {"LayerNormalization": 1}
    ln = opt.graph.node[0]
    assert next(a.f for a in ln.attribute if a.name == "epsilon") == pytest.approx(1e-5)
    # onnxruntime agrees with the fused model too.
    feeds = random_feeds(m)
    got = ort.InferenceSession(opt.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        got.run(None, feeds)[0],
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, feeds
        )[0],
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"opset": 16},  # no LayerNormalization yet
        {"axes": (1,)},  # not the last axis
        {"extra": ("d",)},  # an intermediate is a graph output
    ],
)
def test_near_misses_stay(kw):
    m = _decomposed(**kw)
    opt = check(m, [LayerNormFusion()], rtol=1e-5, atol=1e-5)
    assert "LayerNormalization" not in ops(opt)


def test_wrong_square_exponent_stays():
    m = _decomposed()
    for t in m.graph.initializer:
        if t.name == "two":
            t.CopyFrom(init("two", np.float32(3.0)))
    opt = check(m, [LayerNormFusion()], rtol=1e-5, atol=1e-5)
    assert "LayerNormalization" not in ops(opt)


def test_residual_then_decomposed_norm_becomes_skip_layer_norm():
    m = _decomposed()
    g = m.graph
    g.node.insert(0, helper.make_node("Add", ["A", "B"], ["X"]))
    del g.input[:]
    g.input.extend([vi("A", ["N", 4, H]), vi("B", ["N", 4, H])])
    opt = check(m, [LayerNormFusion(), SkipLayerNormFusion()], rtol=1e-5, atol=1e-5)
    assert ops(opt) == {"SkipLayerNormalization": 1}
