"""Pad folded into the Conv after it: same outputs in onnxpy and onnxruntime, refusals kept."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from onnxpy.passes.fusion import PadConvFusion
from tests.passes.test_conv_fusion import _attrs, _check_both
from tests.passes.test_passes import init, make_model, ops, vi

RNG = np.random.default_rng(11)


def _pad_conv(pads, conv_attrs, value=None, mode=None, opset=17, group=1, cin=4):
    """X [1, cin, 7, 8] -> Pad(pads) -> Conv(3x3) -> Y."""
    pad_inputs = ["X", "P"] + (["V"] if value is not None else [])
    inits = [init("P", np.array(pads, dtype=np.int64))]
    if value is not None:
        inits.append(init("V", np.array(value, dtype=np.float32)))
    kw = {"mode": mode} if mode else {}
    nodes = [
        helper.make_node("Pad", pad_inputs, ["xp"], **kw),
        helper.make_node("Conv", ["xp", "W", "B"], ["Y"], group=group, **conv_attrs),
    ]
    inits += [
        init("W", RNG.standard_normal((6 if group == 1 else cin, cin // group, 3, 3)).astype("f")),
        init("B", RNG.standard_normal(6 if group == 1 else cin).astype("f")),
    ]
    out = [vi("Y", [None, None, None, None])]
    return make_model(nodes, [vi("X", [1, cin, 7, 8])], out, inits, opset=opset)


@pytest.mark.parametrize(
    ("pads", "conv_attrs", "group"),
    [
        ([0, 0, 0, 0, 0, 0, 1, 1], {"strides": [2, 2]}, 1),  # TF "same" at stride 2
        ([0, 0, 0, 0, 0, 0, 1, 1], {"strides": [2, 2]}, 4),  # ... depthwise
        ([0, 0, 2, 1, 0, 0, 0, 3], {"pads": [1, 1, 1, 1]}, 1),  # added to existing pads
        ([0, 0, 1, 0, 0, 0, 1, 0], {"dilations": [2, 1], "strides": [1, 2]}, 4),
    ],
)
def test_zero_pad_folded_into_conv(pads, conv_attrs, group):
    m = _pad_conv(pads, conv_attrs, group=group)
    opt = _check_both(m, [PadConvFusion()])
    assert ops(opt) == {"Conv": 1}
    (node,) = opt.graph.node
    assert list(node.input)[0] == "X"
    old = conv_attrs.get("pads", [0, 0, 0, 0])
    assert _attrs(node)["pads"] == [o + p for o, p in zip(old, pads[2:4] + pads[6:8])]


@pytest.mark.parametrize(
    ("pads", "kwargs"),
    [
        ([0, 0, 1, 1, 0, 0, 1, 1], {"value": 1.0}),  # non-zero pad value
        ([0, 0, 1, 1, 0, 0, 1, 1], {"mode": "reflect"}),
        ([0, 1, 1, 1, 0, 0, 1, 1], {}),  # pads a channel
        ([0, 0, -1, 0, 0, 0, 1, 1], {}),  # crops
    ],
)
def test_other_pads_left_alone(pads, kwargs):
    conv_attrs = {}
    m = _pad_conv(pads, conv_attrs, **kwargs)
    if pads[1]:  # a padded channel needs a wider weight
        m.graph.initializer[-2].CopyFrom(init("W", RNG.standard_normal((6, 5, 3, 3)).astype("f")))
    opt = _check_both(m, [PadConvFusion()])
    assert ops(opt) == {"Pad": 1, "Conv": 1}


def test_pad_read_twice_is_kept():
    m = _pad_conv([0, 0, 1, 1, 0, 0, 1, 1], {})
    m.graph.node.append(helper.make_node("Relu", ["xp"], ["Z"]))
    m.graph.output.append(vi("Z", [None, None, None, None]))
    opt = _check_both(m, [PadConvFusion()])
    assert ops(opt)["Pad"] == 1
