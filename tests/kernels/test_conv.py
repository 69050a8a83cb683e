"""Conv / ConvTranspose / ConvInteger / DeformConv / Col2Im beyond the backend cases.

Expectations come from plain loops over output (or input) positions written here from the
operator definitions, or from small hand-worked values.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from onnxpy.kernels.scratch import scratch
from tests.kernels import single_node

RNG = np.random.default_rng(7)


def run(op, inputs, opset=22, **kw):
    """One node; ``constants`` (positions) become initializers, outputs are like input 0."""
    return single_node.run(op, inputs, opset, like_input=True, **kw)


def naive_conv(x, w, b=None, strides=None, pads=None, dilations=None, group=1):
    """Direct definition: y[n, m, o] = sum_{c, k} xpad[n, c, o*s + k*d] * w[m, c, k] + b[m]."""
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    kernel = w.shape[2:]
    nsp = len(kernel)
    strides = strides or [1] * nsp
    dilations = dilations or [1] * nsp
    pads = pads or [0] * (2 * nsp)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nsp]) for i in range(nsp)])
    out = [
        (xp.shape[2 + i] - (kernel[i] - 1) * dilations[i] - 1) // strides[i] + 1 for i in range(nsp)
    ]
    y = np.zeros((n, m, *out), dtype=np.float64)
    mg = m // group
    for bn, oc in itertools.product(range(n), range(m)):
        g = oc // mg
        for o in itertools.product(*(range(v) for v in out)):
            total = 0.0
            for ci in range(cg):
                for k in itertools.product(*(range(v) for v in kernel)):
                    pos = tuple(o[i] * strides[i] + k[i] * dilations[i] for i in range(nsp))
                    total += xp[(bn, g * cg + ci, *pos)] * w[(oc, ci, *k)]
            y[(bn, oc, *o)] = total + (0.0 if b is None else b[oc])
    return y


def naive_conv_transpose(x, w, strides, pads, dilations, group=1, output_padding=None):
    """Scatter definition: each x[n, c, i] adds x * w[c, m, k] at output i*s + k*d - pad."""
    n, c = x.shape[:2]
    mg = w.shape[1]
    kernel = w.shape[2:]
    nsp = len(kernel)
    output_padding = output_padding or [0] * nsp
    full = [
        strides[i] * (x.shape[2 + i] - 1) + (kernel[i] - 1) * dilations[i] + 1 + output_padding[i]
        for i in range(nsp)
    ]
    y = np.zeros((n, mg * group, *full))
    cg = c // group
    for bn, ci in itertools.product(range(n), range(c)):
        g = ci // cg
        for i in itertools.product(*(range(v) for v in x.shape[2:])):
            for k in itertools.product(*(range(v) for v in kernel)):
                pos = tuple(i[a] * strides[a] + k[a] * dilations[a] for a in range(nsp))
                for mo in range(mg):
                    y[(bn, g * mg + mo, *pos)] += x[(bn, ci, *i)] * w[(ci, mo, *k)]
    crop = tuple(slice(pads[a], full[a] - pads[a + nsp]) for a in range(nsp))
    return y[(slice(None), slice(None), *crop)]


@pytest.mark.parametrize("constant_weight", [False, True])
def test_conv_float64_groups_asymmetric_pads_strides_dilations(constant_weight):
    x = RNG.standard_normal((2, 4, 7, 6))
    w = RNG.standard_normal((6, 2, 3, 2))
    b = RNG.standard_normal(6)
    attrs = dict(group=2, pads=[2, 0, 1, 1], strides=[2, 1], dilations=[1, 2])
    y = run("Conv", [x, w, b], constants=(1, 2) if constant_weight else (), **attrs)
    assert y.dtype == np.float64
    np.testing.assert_allclose(
        y, naive_conv(x, w, b, [2, 1], [2, 0, 1, 1], [1, 2], group=2), rtol=1e-12, atol=1e-12
    )


def test_conv_3d_with_bias():
    x = RNG.standard_normal((1, 3, 5, 4, 6)).astype(np.float32)
    w = RNG.standard_normal((2, 3, 2, 3, 2)).astype(np.float32)
    b = RNG.standard_normal(2).astype(np.float32)
    y = run("Conv", [x, w, b], constants=(1,), pads=[1, 0, 1, 0, 1, 1], strides=[1, 2, 1])
    assert y.dtype == np.float32
    expected = naive_conv(
        x.astype(np.float64), w.astype(np.float64), b, [1, 2, 1], [1, 0, 1, 0, 1, 1]
    )
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strides", [[1, 1], [2, 2], [2, 1]])
def test_conv_depthwise_with_multiplier(strides):
    x = RNG.standard_normal((2, 3, 8, 7))
    w = RNG.standard_normal((6, 1, 3, 3))  # two output channels per input channel
    b = RNG.standard_normal(6)
    attrs = dict(group=3, pads=[1, 0, 2, 1], strides=strides, dilations=[2, 1])
    y = run("Conv", [x, w, b], constants=(1, 2), **attrs)
    expected = naive_conv(x, w, b, strides, [1, 0, 2, 1], [2, 1], group=3)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert y.flags.c_contiguous


@pytest.mark.parametrize(
    ("spatial", "kernel", "strides", "dilations", "pads"),
    [
        ((9,), (3,), [2], [1], [1, 0]),  # 1-D, odd length, stride 2
        ((7, 8), (3, 3), [2, 2], [1, 1], [0, 0, 1, 1]),  # TF "same" pad, odd x even
        ((11, 10), (5, 3), [3, 2], [1, 2], [2, 1, 0, 1]),  # phases of unequal length
        ((6, 5), (3, 3), [2, 2], [2, 2], [2, 2, 2, 2]),  # dilation 2 at stride 2: one phase
        ((4, 5, 6), (3, 2, 3), [2, 1, 2], [1, 1, 1], [1, 0, 1, 1, 1, 0]),  # 3-D
        ((1, 1), (3, 3), [2, 2], [1, 1], [1, 1, 1, 1]),  # one output pixel
        ((3, 3), (1, 1), [2, 2], [1, 1], [1, 1, 1, 1]),  # 1x1 with padding
    ],
)
def test_conv_depthwise_stride_phases(spatial, kernel, strides, dilations, pads):
    """The stride-phase planes give every tap one contiguous run: check them against the loop
    definition on shapes whose phases differ in length, with dilations, 1-D to 3-D."""
    x = RNG.standard_normal((2, 4, *spatial)).astype(np.float32)
    w = RNG.standard_normal((4, 1, *kernel)).astype(np.float32)
    attrs = dict(group=4, pads=pads, strides=strides, dilations=dilations)
    expected = naive_conv(
        x.astype(np.float64), w.astype(np.float64), None, strides, pads, dilations, group=4
    )
    for _ in range(2):  # the phase planes come from the reused scratch buffer: poison it
        scratch((1 << 16,), dtype=np.float32)[0].fill(np.nan)
        y = run("Conv", [x, w], constants=(1,), **attrs)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_conv_1x1_pointwise_grouped():
    x = RNG.standard_normal((2, 4, 3, 5))
    w = RNG.standard_normal((6, 2, 1, 1))
    y = run("Conv", [x, w], constants=(1,), group=2)
    np.testing.assert_allclose(y, naive_conv(x, w, group=2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("auto_pad", "pads"),
    # in 7, kernel 4, stride 2: out 4, total pad (4-1)*2 + 4 - 7 = 3
    [("SAME_UPPER", [1, 2]), ("SAME_LOWER", [2, 1]), ("VALID", [0, 0])],
)
def test_conv_1d_auto_pad(auto_pad, pads):
    x = RNG.standard_normal((1, 2, 7))
    w = RNG.standard_normal((3, 2, 4))
    y = run("Conv", [x, w], auto_pad=auto_pad, strides=[2])
    np.testing.assert_allclose(y, naive_conv(x, w, None, [2], pads), rtol=1e-12, atol=1e-12)


def test_conv_float16_keeps_its_type_opset_1():
    x = RNG.standard_normal((1, 2, 5, 5)).astype(np.float16)
    w = RNG.standard_normal((3, 2, 3, 3)).astype(np.float16)
    y = run("Conv", [x, w], opset=1, pads=[1, 1, 1, 1])
    assert y.dtype == np.float16
    expected = naive_conv(x.astype(np.float64), w.astype(np.float64), None, None, [1, 1, 1, 1])
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=1e-2, atol=1e-2)


def test_conv_does_not_modify_inputs():
    x = RNG.standard_normal((1, 2, 4, 4)).astype(np.float32)
    w = RNG.standard_normal((2, 1, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(2).astype(np.float32)
    copies = [x.copy(), w.copy(), b.copy()]
    run("Conv", [x, w, b], group=2, pads=[1, 1, 1, 1])
    for a, c in zip([x, w, b], copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_conv_transpose_float64_groups_dilations_pads():
    x = RNG.standard_normal((2, 4, 3, 4))
    w = RNG.standard_normal((4, 3, 2, 3))
    attrs = dict(group=2, strides=[2, 3], dilations=[2, 1], pads=[1, 0, 0, 2])
    y = run("ConvTranspose", [x, w], **attrs)
    expected = naive_conv_transpose(x, w, [2, 3], [1, 0, 0, 2], [2, 1], group=2)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_conv_transpose_3d_output_padding_and_bias():
    x = RNG.standard_normal((1, 2, 2, 3, 2))
    w = RNG.standard_normal((2, 2, 2, 2, 3))
    b = np.array([0.5, -1.0])
    y = run("ConvTranspose", [x, w, b], strides=[2, 1, 2], output_padding=[1, 0, 1])
    expected = naive_conv_transpose(x, w, [2, 1, 2], [0] * 6, [1, 1, 1], output_padding=[1, 0, 1])
    np.testing.assert_allclose(y, expected + b.reshape(1, 2, 1, 1, 1), rtol=1e-12, atol=1e-12)


def test_conv_transpose_output_shape_sets_the_padding():
    # full length 3*(3-1) + 3 = 9; asking for 7 trims total 2: one row each side (NOTSET).
    x = RNG.standard_normal((1, 1, 3, 3))
    w = RNG.standard_normal((1, 1, 3, 3))
    y = run("ConvTranspose", [x, w], strides=[3, 3], output_shape=[7, 9])
    full = naive_conv_transpose(x, w, [3, 3], [0, 0, 0, 0], [1, 1])
    np.testing.assert_allclose(y, full[:, :, 1:8, :], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("constants", [(), (1, 3)])
def test_conv_integer_zero_points_per_channel(constants):
    x = RNG.integers(0, 256, (1, 2, 4, 4)).astype(np.uint8)
    w = RNG.integers(-128, 128, (3, 2, 2, 2)).astype(np.int8)
    xz = np.array(128, dtype=np.uint8)
    wz = np.array([1, -2, 3], dtype=np.int8)
    y = run(
        "ConvInteger",
        [x, w, xz, wz],
        opset=10,
        constants=constants,
        out_types=np.int32,
        pads=[1, 1, 0, 0],
    )
    assert y.dtype == np.int32
    # Padding holds the zero point, i.e. zero after shifting.
    xs = x.astype(np.int64) - 128
    ws = w.astype(np.int64) - wz.reshape(3, 1, 1, 1)
    expected = naive_conv(xs.astype(np.float64), ws.astype(np.float64), None, None, [1, 1, 0, 0])
    np.testing.assert_array_equal(y, expected.astype(np.int32))


def test_deform_conv_zero_offsets_is_conv_and_mask_scales():
    x = RNG.standard_normal((1, 4, 5, 5))
    w = RNG.standard_normal((2, 2, 3, 3))
    off = np.zeros((1, 2 * 9 * 2, 3, 3))  # offset_group 2, 9 taps, 2 coordinates, 3x3 output
    y = run("DeformConv", [x, w, off], group=2, offset_group=2, strides=[2, 2], pads=[1] * 4)
    expected = naive_conv(x, w, None, [2, 2], [1] * 4, group=2)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    mask = np.full((1, 2 * 9, 3, 3), 0.5)
    y2 = run(
        "DeformConv", [x, w, off, None, mask], group=2, offset_group=2, strides=[2, 2], pads=[1] * 4
    )
    np.testing.assert_allclose(y2, expected * 0.5, rtol=1e-12, atol=1e-12)


def test_deform_conv_half_pixel_offset_interpolates():
    # One 1x1 tap moved by +0.5 along width reads the mean of two neighbours.
    x = np.arange(6, dtype=np.float64).reshape(1, 1, 2, 3)
    w = np.ones((1, 1, 1, 1))
    off = np.zeros((1, 2, 2, 3))
    off[0, 1] = 0.5  # w-coordinate
    y = run("DeformConv", [x, w, off])
    # the last column samples between x[..., 2] and the zero outside the image
    np.testing.assert_allclose(y[0, 0], [[0.5, 1.5, 1.0], [3.5, 4.5, 2.5]])


def test_col2im_sums_overlapping_blocks():
    # 1 channel, 3x3 image, 2x2 blocks, stride 1: 4 blocks of ones sum to overlap counts.
    cols = np.ones((1, 4, 4), dtype=np.float32)
    y = run("Col2Im", [cols, np.array([3, 3]), np.array([2, 2])], opset=18, out_rank=4)
    np.testing.assert_array_equal(y, [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]])
    assert y.dtype == np.float32


def test_col2im_with_pads_drops_the_padding():
    # 1-D style: image 1x4, block 1x3, pad 1 each side of width: 4 blocks; middle pixels get 3.
    cols = np.ones((1, 3, 4))
    y = run(
        "Col2Im",
        [cols, np.array([1, 4]), np.array([1, 3])],
        opset=18,
        out_rank=4,
        pads=[0, 1, 0, 1],
    )
    np.testing.assert_array_equal(y, [[[[2, 3, 3, 2]]]])
