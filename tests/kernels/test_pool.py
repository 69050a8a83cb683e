"""Pooling beyond the backend cases: float64, int8, asymmetric pads, indices, Lp, unpooling.

Expectations come from loops over output positions written here (output shapes worked by
hand from the spec's formulas), or from hand-worked values.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.kernels import single_node

RNG = np.random.default_rng(11)


def run(op, inputs, opset=22, **kw):
    return single_node.run(op, inputs, opset, like_input=True, **kw)


def windows(x_shape, out, kernel, strides, pads, dilations):
    """Yield (output position, list of in-input window positions, number of padded-extent taps)."""
    nsp = len(kernel)
    in_shape = x_shape[2:]
    for o in itertools.product(*(range(v) for v in out)):
        inside, in_extent = [], 0
        for k in itertools.product(*(range(v) for v in kernel)):
            pos = tuple(o[a] * strides[a] - pads[a] + k[a] * dilations[a] for a in range(nsp))
            if all(-pads[a] <= pos[a] < in_shape[a] + pads[a + nsp] for a in range(nsp)):
                in_extent += 1
            if all(0 <= pos[a] < in_shape[a] for a in range(nsp)):
                inside.append(pos)
        yield o, inside, in_extent


def naive_pool(x, out, kernel, strides, pads, dilations, how):
    y = np.zeros(x.shape[:2] + tuple(out), dtype=np.float64)
    idx = np.zeros(y.shape, dtype=np.int64)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for o, inside, in_extent in windows(x.shape, out, kernel, strides, pads, dilations):
            vals = [float(x[(n, c, *p)]) for p in inside]
            if how == "max":
                j = int(np.argmax(vals))
                y[(n, c, *o)] = vals[j]
                idx[(n, c, *o)] = np.ravel_multi_index((n, c, *inside[j]), x.shape)
            elif how == "avg":
                y[(n, c, *o)] = sum(vals) / len(vals)
            elif how == "avg_pad":
                y[(n, c, *o)] = sum(vals) / in_extent
            else:
                p = float(how)
                y[(n, c, *o)] = sum(abs(v) ** p for v in vals) ** (1 / p)
    return y, idx


def test_maxpool_float64_asymmetric_pads_dilations_ceil_with_indices():
    x = RNG.standard_normal((2, 3, 7, 6))
    attrs = dict(
        kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 2, 1], dilations=[1, 2], ceil_mode=1
    )
    # H: (7 + 3 - 3) / 2 + 1 = 4.5 -> ceil 5; the last start 8 >= 7 + 1 -> 4.
    # W: (6 + 1 - 3) / 2 + 1 = 3.
    y, i = run("MaxPool", [x], outputs=2, out_types=[np.float64, np.int64], **attrs)
    ey, ei = naive_pool(x, (4, 3), [3, 2], [2, 2], [1, 0, 2, 1], [1, 2], "max")
    assert y.dtype == np.float64 and i.dtype == np.int64
    np.testing.assert_array_equal(y, ey)
    np.testing.assert_array_equal(i, ei)


def test_maxpool_indices_column_major():
    x = RNG.standard_normal((1, 2, 4, 5)).astype(np.float32)
    _, i = run(
        "MaxPool",
        [x],
        outputs=2,
        out_types=[np.float32, np.int64],
        kernel_shape=[2, 2],
        strides=[2, 2],
        storage_order=1,
    )
    _, ei = naive_pool(x, (2, 2), [2, 2], [2, 2], [0] * 4, [1, 1], "max")
    n, c, h, w = np.unravel_index(ei, x.shape)
    # column-major over the spatial axes of each (n, c) plane: h + w * H
    np.testing.assert_array_equal(i, (n * 2 + c) * 20 + h + w * 4)


def test_maxpool_int8_pads_never_win():
    x = np.full((1, 1, 2, 2), -128, dtype=np.int8)
    x[0, 0, 1, 1] = -100
    y = run("MaxPool", [x], kernel_shape=[2, 2], pads=[1, 1, 1, 1])
    assert y.dtype == np.int8
    np.testing.assert_array_equal(
        y[0, 0], [[-128, -128, -128], [-128, -100, -100], [-128, -100, -100]]
    )


def test_maxpool_without_indices_output():
    x = RNG.standard_normal((1, 1, 5)).astype(np.float32)
    y = run("MaxPool", [x], kernel_shape=[2], strides=[1])
    np.testing.assert_array_equal(y[0, 0], np.maximum(x[0, 0, :-1], x[0, 0, 1:]))


@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_averagepool_3d_float64_asymmetric_pads(count_include_pad):
    x = RNG.standard_normal((1, 2, 4, 5, 3))
    pads = [1, 0, 1, 0, 2, 1]
    attrs = dict(
        kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=pads, count_include_pad=count_include_pad
    )
    # out: (4+1-2)//2+1 = 2, (5+2-3)//1+1 = 5, (3+2-2)//2+1 = 2
    y = run("AveragePool", [x], **attrs)
    how = "avg_pad" if count_include_pad else "avg"
    ey, _ = naive_pool(x, (2, 5, 2), [2, 3, 2], [2, 1, 2], pads, [1, 1, 1], how)
    np.testing.assert_allclose(y, ey, rtol=1e-12)


def test_averagepool_float16_keeps_its_type():
    x = RNG.standard_normal((1, 1, 4, 4)).astype(np.float16)
    y = run("AveragePool", [x], opset=7, kernel_shape=[2, 2], strides=[2, 2])
    assert y.dtype == np.float16
    expected = x.astype(np.float64).reshape(2, 2, 2, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(y[0, 0].astype(np.float64), expected, rtol=1e-3)


def test_lppool_p3_with_pads_and_same_upper():
    x = RNG.standard_normal((1, 2, 5, 4))
    y = run("LpPool", [x], opset=18, kernel_shape=[2, 3], p=3, pads=[0, 1, 1, 1])
    ey, _ = naive_pool(x, (5, 4), [2, 3], [1, 1], [0, 1, 1, 1], [1, 1], "3")
    np.testing.assert_allclose(y, ey, rtol=1e-12)
    # SAME_UPPER, in 5 stride 2 kernel 2: out 3, total pad 1 at the end
    y = run("LpPool", [x], opset=18, kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")
    ey, _ = naive_pool(x, (3, 2), [2, 2], [2, 2], [0, 0, 1, 0], [1, 1], "2")
    np.testing.assert_allclose(y, ey, rtol=1e-12)


def test_global_pools():
    x = RNG.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(run("GlobalAveragePool", [x]), x.mean(axis=(2, 3), keepdims=True))
    np.testing.assert_array_equal(run("GlobalMaxPool", [x]), x.max(axis=(2, 3), keepdims=True))
    y = run("GlobalLpPool", [x], p=1)
    np.testing.assert_allclose(y, np.abs(x).sum(axis=(2, 3), keepdims=True))
    y = run("GlobalLpPool", [x], opset=1)  # p is a float attribute there, default 2.0
    np.testing.assert_allclose(y, np.sqrt((x * x).sum(axis=(2, 3), keepdims=True)))


def test_maxunpool_inverts_maxpool_positions():
    x = np.array([[[[1, 9, 2, 3], [4, 5, 8, 6], [7, 0, 1, 2], [3, 3, 9, 1]]]], dtype=np.float32)
    vals = np.array([[[[9, 8], [7, 9]]]], dtype=np.float32)
    idx = np.array([[[[1, 6], [8, 14]]]], dtype=np.int64)
    y = run("MaxUnpool", [vals, idx], opset=11, kernel_shape=[2, 2], strides=[2, 2])
    expected = np.zeros((1, 1, 4, 4), dtype=np.float32)
    expected[0, 0, 0, 1], expected[0, 0, 1, 2], expected[0, 0, 2, 0], expected[0, 0, 3, 2] = (
        9,
        8,
        7,
        9,
    )
    np.testing.assert_array_equal(y, expected)
    assert x.reshape(-1)[idx.reshape(-1)].tolist() == [9, 8, 7, 9]


def test_maxroipool_hand_worked():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    # RoI covers columns 0..3, rows 1..2 (inclusive): 2 x 4 pixels, pooled 1 x 2
    rois = np.array([[0, 0, 1, 3, 2]], dtype=np.float32)
    y = run("MaxRoiPool", [x, rois], pooled_shape=[1, 2])
    np.testing.assert_array_equal(y, [[[[9, 11]]]])
