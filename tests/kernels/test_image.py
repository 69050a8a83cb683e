"""Resize / Upsample / GridSample / AffineGrid / RoiAlign / NonMaxSuppression / ImageDecoder
beyond the backend cases. Expectations are hand-worked from the spec's formulas.
"""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxpy
from tests.kernels import single_node

RNG = np.random.default_rng(3)


def run(op, inputs, opset=22, **kw):
    return single_node.run(op, inputs, opset, like_input=True, **kw)


def f32(*v):
    return np.array(v, dtype=np.float32)


# -- Resize / Upsample --------------------------------------------------------------------------


def test_resize_linear_asymmetric_float64():
    x = np.array([[0.0, 4.0, 8.0]])
    y = run(
        "Resize", [x, None, f32(1, 2)], mode="linear", coordinate_transformation_mode="asymmetric"
    )
    # x_original = i / 2: 0, .5, 1, 1.5, 2, 2.5 (clamped to the last sample)
    np.testing.assert_allclose(y, [[0, 2, 4, 6, 8, 8]])
    assert y.dtype == np.float64


def test_resize_nearest_axes_and_sizes_on_int32():
    x = np.arange(6, dtype=np.int32).reshape(1, 2, 3)
    y = run(
        "Resize",
        [x, None, None, np.array([6], dtype=np.int64)],
        opset=18,
        axes=[-1],
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, np.repeat(x, 2, axis=2))


def test_resize_opset11_sizes_with_empty_scales():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    y = run(
        "Resize",
        [x, np.zeros(0, np.float32), np.zeros(0, np.float32), np.array([1, 1, 4, 4])],
        opset=11,
    )
    np.testing.assert_array_equal(y[0, 0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


def test_resize_cubic_identity_at_scale_one_and_constant_preserved():
    x = RNG.standard_normal((1, 1, 4, 5)).astype(np.float32)
    y = run("Resize", [x, None, f32(1, 1, 1, 1)], mode="cubic")
    np.testing.assert_allclose(y, x, rtol=1e-6)
    c = np.full((1, 1, 3, 3), 2.5, dtype=np.float32)
    y = run("Resize", [c, None, f32(1, 1, 2.5, 1.5)], mode="cubic", exclude_outside=1)
    assert y.shape == (1, 1, 7, 4)
    np.testing.assert_allclose(y, 2.5, rtol=1e-6)


def test_resize_10_and_upsample_nearest_floor():
    x = np.array([[1, 2], [3, 4]], dtype=np.float32)
    expected = [[1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 2], [3, 3, 3, 4, 4, 4], [3, 3, 3, 4, 4, 4]]
    np.testing.assert_array_equal(run("Resize", [x, f32(2, 3)], opset=10), expected)
    np.testing.assert_array_equal(run("Upsample", [x, f32(2, 3)], opset=9), expected)
    np.testing.assert_array_equal(run("Upsample", [x], opset=7, scales=[2.0, 3.0]), expected)


def test_upsample_opset7_linear():
    x = np.array([[1, 3]], dtype=np.float32)
    y = run("Upsample", [x], opset=7, mode="linear", scales=[1.0, 2.0])
    np.testing.assert_allclose(y, [[1, 2, 3, 3]])


# -- GridSample / AffineGrid -------------------------------------------------------------------


def test_gridsample_identity_grid_returns_input():
    x = RNG.standard_normal((2, 3, 4, 5))
    theta = np.tile(np.array([[[1.0, 0, 0], [0, 1, 0]]]), (2, 1, 1))
    for align in (0, 1):
        grid = run("AffineGrid", [theta, np.array([2, 3, 4, 5])], opset=20, align_corners=align)
        assert grid.shape == (2, 4, 5, 2)
        for mode in ("linear", "nearest", "cubic"):
            y = run("GridSample", [x, grid], mode=mode, align_corners=align)
            np.testing.assert_allclose(y, x, atol=1e-12)


def test_gridsample_padding_modes_1d_along_width():
    # 1x4 image, align_corners=1: x = (g + 1) / 2 * 3. g = 1.5 -> x = 3.75 (outside).
    x = np.array([[[[10.0, 20.0, 30.0, 40.0]]]])
    grid = np.array([[[[1.5, 0.0], [-1.0, 0.0]]]])
    zeros = run("GridSample", [x, grid], align_corners=1)
    border = run("GridSample", [x, grid], align_corners=1, padding_mode="border")
    reflect = run("GridSample", [x, grid], align_corners=1, padding_mode="reflection")
    # zeros: taps 3 (w .25) and 4 (outside, w .75) -> 10; border clamps to 3 -> 40;
    # reflection folds 3.75 to 2.25 -> 30 * .75 + 40 * .25 = 32.5
    np.testing.assert_allclose(zeros[0, 0, 0], [10.0, 10.0])
    np.testing.assert_allclose(border[0, 0, 0], [40.0, 10.0])
    np.testing.assert_allclose(reflect[0, 0, 0], [32.5, 10.0])


def test_gridsample_opset16_bilinear_name():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    grid = np.zeros((1, 1, 1, 2), dtype=np.float32)  # the centre of the image
    y = run("GridSample", [x, grid], opset=16, mode="bilinear")
    np.testing.assert_allclose(y, [[[[1.5]]]])


# -- RoiAlign ------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [10, 16])
def test_roialign_on_a_linear_ramp_is_the_bin_centre(opset):
    # Bilinear sampling reproduces a linear ramp, so each bin averages to its centre value.
    h, w = 8, 8
    x = np.tile(np.arange(w, dtype=np.float64), (1, 1, h, 1))  # value = column index
    rois = np.array([[1.0, 1.0, 5.0, 5.0]])
    y = run(
        "RoiAlign",
        [x, rois, np.array([0])],
        opset=opset,
        output_height=2,
        output_width=2,
        sampling_ratio=2,
    )
    shift = 0.5 if opset >= 16 else 0.0  # half_pixel (default from 16) shifts the RoI
    start = 1.0 - shift
    np.testing.assert_allclose(y[0, 0, 0], [start + 1.0, start + 3.0], atol=1e-12)


# -- NonMaxSuppression --------------------------------------------------------------------------


def test_nms_center_point_boxes_and_score_threshold():
    boxes = np.array(
        [[[0.5, 0.5, 1.0, 1.0], [0.55, 0.5, 1.0, 1.0], [5.0, 5.0, 1.0, 1.0], [9, 9, 1, 1]]],
        dtype=np.float32,
    )
    scores = np.array([[[0.6, 0.9, 0.8, 0.1]]], dtype=np.float32)
    y = run(
        "NonMaxSuppression",
        [boxes, scores, np.array([10]), f32(0.5), f32(0.2)],
        opset=11,
        out_types=np.int64,
        out_rank=2,
        center_point_box=1,
    )
    # box 1 (0.9) suppresses box 0 (IoU 0.9); box 3 is below the score threshold
    np.testing.assert_array_equal(y, [[0, 0, 1], [0, 0, 2]])


def test_nms_without_max_output_selects_nothing():
    boxes = np.zeros((1, 2, 4), dtype=np.float32)
    scores = np.ones((1, 1, 2), dtype=np.float32)
    y = run("NonMaxSuppression", [boxes, scores], opset=10, out_types=np.int64, out_rank=2)
    assert y.shape == (0, 3) and y.dtype == np.int64


# -- ImageDecoder -------------------------------------------------------------------------------

HAS_PIL = importlib.util.find_spec("PIL") is not None


def _decoder_model(pixel_format):
    node = helper.make_node("ImageDecoder", ["x"], ["y"], pixel_format=pixel_format)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.UINT8, [None])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, [None, None, None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    return model.SerializeToString()


def test_image_decoder_without_pillow_is_refused_at_session_creation(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "PIL" else real(name, *a)
    )
    with pytest.raises(onnxpy.errors.NotImplemented, match="pip install pillow"):
        onnxpy.InferenceSession(_decoder_model("RGB"))


@pytest.mark.skipif(not HAS_PIL, reason="Pillow is not installed")
def test_image_decoder_png_rgb_bgr_grayscale():
    from PIL import Image

    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    data = np.frombuffer(buf.getvalue(), dtype=np.uint8)
    out = onnxpy.InferenceSession(_decoder_model("RGB")).run(None, {"x": data})[0]
    np.testing.assert_array_equal(out, rgb)
    out = onnxpy.InferenceSession(_decoder_model("BGR")).run(None, {"x": data})[0]
    np.testing.assert_array_equal(out, rgb[:, :, ::-1])
    out = onnxpy.InferenceSession(_decoder_model("Grayscale")).run(None, {"x": data})[0]
    assert out.shape == (2, 2, 1) and out.dtype == np.uint8
    # ITU-R 601-2 luma of pure red is 0.299 * 255 = 76
    assert abs(int(out[0, 0, 0]) - 76) <= 1
    bad = onnxpy.InferenceSession(_decoder_model("RGB")).run(None, {"x": data[:10]})[0]
    assert bad.size == 0


def test_resize_linear_long_axis_uses_the_same_weights():
    # A ramp stays a ramp under linear interpolation: value = x_original, clamped at the end.
    x = np.arange(300, dtype=np.float32).reshape(1, 300)
    y = run(
        "Resize", [x, None, f32(1, 2)], mode="linear", coordinate_transformation_mode="asymmetric"
    )
    np.testing.assert_allclose(y[0], np.minimum(np.arange(600) / 2, 299), rtol=1e-6)
    y = run("Resize", [x, None, f32(1, 0.5)], mode="linear", antialias=1)
    # half_pixel, scale 1/2: x_original = 2i + 0.5; the stretched triangle is symmetric
    # around it, so the ramp is kept away from the edges.
    np.testing.assert_allclose(y[0, 1:-1], 2 * np.arange(1, 149) + 0.5, rtol=1e-6)
