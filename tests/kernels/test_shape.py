"""Shape and layout operators: legacy opsets, strings, empty tensors, negative axes, errors.

Expectations are worked by hand (or from NumPy identities independent of the kernels).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper

import onnxpy
from tests.kernels.single_node import run_named as run_node

F = np.float32
S = np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)


def i64(*v):
    return np.array(v, dtype=np.int64)


def same(actual, expected):
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_array_equal(actual, expected)


# -- Shape / Size ----------------------------------------------------------------------------
def test_shape_start_end_are_clamped():
    x = np.zeros((2, 3, 4), F)
    same(run_node("Shape", {"x": x}, [T.INT64], start=-10, end=10), i64(2, 3, 4))
    same(run_node("Shape", {"x": x}, [T.INT64], start=2, end=1), np.zeros(0, np.int64))
    same(run_node("Shape", {"x": x}, [T.INT64], end=-1), i64(2, 3))


def test_size_of_string_and_empty_tensors():
    same(run_node("Size", {"x": S}, [T.INT64]), np.array(6, np.int64))
    same(run_node("Size", {"x": np.zeros((3, 0), F)}, [T.INT64]), np.array(0, np.int64))


# -- Reshape / Flatten / Squeeze / Unsqueeze / Transpose -------------------------------------
def test_reshape_strings_with_zero_and_minus_one():
    y = run_node("Reshape", {"x": S, "s": i64(0, -1, 1)}, [T.STRING])
    same(y, np.array([[["a"], ["b"], ["c"]], [["d"], ["e"], ["f"]]], dtype=object))


def test_reshape_allowzero_gives_an_empty_tensor():
    x = np.zeros((0, 3), F)
    y = run_node("Reshape", {"x": x, "s": i64(3, 0)}, [T.FLOAT], allowzero=1)
    assert y.shape == (3, 0) and y.dtype == F


def test_reshape_without_allowzero_copies_the_dimension():
    x = np.arange(6, dtype=F).reshape(2, 3)
    assert run_node("Reshape", {"x": x, "s": i64(0, 3)}, [T.FLOAT]).shape == (2, 3)


def test_reshape_opset1_attribute():
    x = np.arange(6, dtype=F)
    y = run_node("Reshape", {"x": x}, [T.FLOAT], opset=1, shape=[3, -1])
    same(y, np.array([[0, 1], [2, 3], [4, 5]], F))


def test_reshape_bad_shape_raises():
    with pytest.raises(onnxpy.errors.OnnxpyError, match="cannot reshape"):
        run_node("Reshape", {"x": np.zeros(6, F), "s": i64(4, -1)}, [T.FLOAT])


def test_flatten_axis_zero_negative_and_empty():
    x = np.zeros((2, 0, 3), F)
    assert run_node("Flatten", {"x": x}, [T.FLOAT], axis=0).shape == (1, 0)
    assert run_node("Flatten", {"x": x}, [T.FLOAT], axis=-1).shape == (0, 3)
    assert run_node("Flatten", {"x": np.zeros((2, 3, 4), F)}, [T.FLOAT], axis=3).shape == (24, 1)


def test_squeeze_opset11_attribute_with_negative_axis():
    x = np.zeros((1, 3, 1), F)
    assert run_node("Squeeze", {"x": x}, [T.FLOAT], opset=11, axes=[-1]).shape == (1, 3)
    assert run_node("Squeeze", {"x": x}, [T.FLOAT], opset=11).shape == (3,)


def test_squeeze_non_unit_axis_raises():
    with pytest.raises(onnxpy.errors.OnnxpyError, match="not 1"):
        run_node("Squeeze", {"x": np.zeros((2, 3), F), "a": i64(0)}, [T.FLOAT], opset=13)


def test_unsqueeze_attribute_and_input_forms():
    x = np.zeros((3, 4), F)
    assert run_node("Unsqueeze", {"x": x}, [T.FLOAT], opset=11, axes=[0, -1]).shape == (1, 3, 4, 1)
    y = run_node("Unsqueeze", {"x": x, "a": i64(-1, 1)}, [T.FLOAT], opset=13)
    assert y.shape == (3, 1, 4, 1)


def test_unsqueeze_duplicate_axes_raise():
    with pytest.raises(onnxpy.errors.OnnxpyError, match="duplicate"):
        run_node("Unsqueeze", {"x": np.zeros(3, F), "a": i64(0, -3)}, [T.FLOAT], opset=13)


def test_transpose_strings_default_and_explicit_perm():
    same(run_node("Transpose", {"x": S}, [T.STRING]), S.T)
    x = np.arange(6, dtype=np.int32).reshape(1, 2, 3)
    y = run_node("Transpose", {"x": x}, [T.INT32], perm=[2, 0, 1])
    same(y, np.array([[[0, 3]], [[1, 4]], [[2, 5]]], np.int32))


def test_transpose_invalid_perm_raises():
    with pytest.raises(onnxpy.errors.OnnxpyError, match="permutation"):
        run_node("Transpose", {"x": np.zeros((2, 3), F)}, [T.FLOAT], perm=[0, 0])


# -- Concat / Split --------------------------------------------------------------------------
def test_concat_strings_negative_axis():
    b = np.array([["x"], ["y"]], dtype=object)
    y = run_node("Concat", {"a": S, "b": b}, [T.STRING], axis=-1)
    same(y, np.array([["a", "b", "c", "x"], ["d", "e", "f", "y"]], dtype=object))


def test_concat_with_empty_tensor():
    a = np.zeros((0, 2), F)
    b = np.array([[1, 2]], F)
    same(run_node("Concat", {"a": a, "b": b}, [T.FLOAT], axis=0), b)


def test_concat_opset1_defaults_to_axis_1():
    a = np.array([[1], [2]], F)
    b = np.array([[3], [4]], F)
    same(run_node("Concat", {"a": a, "b": b}, [T.FLOAT], opset=1), np.array([[1, 3], [2, 4]], F))


def test_split_by_output_count_when_nothing_given():
    x = np.arange(6, dtype=np.int32)
    ys = run_node("Split", {"x": x}, [T.INT32] * 3, opset=13)
    for y, e in zip(ys, ([0, 1], [2, 3], [4, 5]), strict=True):
        same(y, np.array(e, np.int32))


def test_split_opset2_attribute_and_strings():
    ys = run_node("Split", {"x": S}, [T.STRING] * 2, opset=2, axis=1, split=[1, 2])
    same(ys[0], np.array([["a"], ["d"]], dtype=object))
    same(ys[1], np.array([["b", "c"], ["e", "f"]], dtype=object))


def test_split_num_outputs_uneven():
    ys = run_node("Split", {"x": np.arange(5, dtype=F)}, [T.FLOAT] * 3, num_outputs=3)
    assert [y.tolist() for y in ys] == [[0, 1], [2, 3], [4]]


def test_split_sizes_must_add_up():
    with pytest.raises(onnxpy.errors.OnnxpyError, match="add up"):
        run_node("Split", {"x": np.arange(5, dtype=F), "s": i64(2, 2)}, [T.FLOAT] * 2)


# -- Slice -----------------------------------------------------------------------------------
def test_slice_opset1_attributes():
    x = np.arange(8, dtype=F).reshape(2, 4)
    y = run_node("Slice", {"x": x}, [T.FLOAT], opset=1, starts=[1, 0], ends=[2, 3], axes=[0, 1])
    same(y, np.array([[4, 5, 6]], F))
    y = run_node("Slice", {"x": x}, [T.FLOAT], opset=1, starts=[0, 1], ends=[-1, 1000])
    same(y, np.array([[1, 2, 3]], F))


def test_slice_negative_steps_clamp_to_the_first_element():
    x = np.arange(5, dtype=F)
    feeds = {"x": x, "s": np.array([-100], np.int32), "e": np.array([-200], np.int32)}
    y = run_node(
        "Slice", {**feeds, "a": np.array([0], np.int32), "t": np.array([-1], np.int32)}, [T.FLOAT]
    )
    same(y, np.array([0], F))  # start clamps to 0, end to -1: exactly element 0


def test_slice_negative_step_from_int_max():
    x = np.arange(5, dtype=F)
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    feeds = {"x": x, "s": i64(big), "e": i64(small), "a": i64(-1), "t": i64(-2)}
    same(run_node("Slice", feeds, [T.FLOAT]), np.array([4, 2, 0], F))


def test_slice_strings_and_zero_step_error():
    feeds = {"x": S, "s": i64(1), "e": i64(3), "a": i64(1)}
    same(run_node("Slice", feeds, [T.STRING]), np.array([["b", "c"], ["e", "f"]], dtype=object))
    with pytest.raises(onnxpy.errors.OnnxpyError, match="cannot be 0"):
        run_node("Slice", {**feeds, "t": i64(0)}, [T.STRING])


# -- Expand / Tile ---------------------------------------------------------------------------
def test_expand_to_a_smaller_rank_shape_and_strings():
    x = np.array([[1], [2]], np.int64)
    same(
        run_node("Expand", {"x": x, "s": i64(3)}, [T.INT64]),
        np.array([[1, 1, 1], [2, 2, 2]], np.int64),
    )
    y = run_node("Expand", {"x": np.array(["z"], dtype=object), "s": i64(2, 1)}, [T.STRING])
    same(y, np.array([["z"], ["z"]], dtype=object))


def test_tile_opset1_inputs():
    x = np.array([[1, 2]], F)
    feeds = {"x": x, "t": np.array(3, F), "a": np.array(0, F)}
    same(run_node("Tile", feeds, [T.FLOAT], opset=1), np.array([[1, 2]] * 3, F))


def test_tile_strings():
    y = run_node("Tile", {"x": np.array(["a", "b"], dtype=object), "r": i64(2)}, [T.STRING])
    same(y, np.array(["a", "b", "a", "b"], dtype=object))


# -- Pad -------------------------------------------------------------------------------------
X23 = np.array([[1, 2, 3], [4, 5, 6]], F)


def test_pad_wrap():
    y = run_node("Pad", {"x": X23, "p": i64(1, 1, 0, 2)}, [T.FLOAT], opset=19, mode="wrap")
    same(y, np.array([[6, 4, 5, 6, 4, 5], [3, 1, 2, 3, 1, 2], [6, 4, 5, 6, 4, 5]], F))


def test_pad_negative_pads_crop():
    y = run_node("Pad", {"x": X23, "p": i64(0, -1, 0, 1)}, [T.FLOAT])
    same(y, np.array([[2, 3, 0], [5, 6, 0]], F))


def test_pad_axes_input_and_constant_value():
    feeds = {"x": X23, "p": i64(1, 0), "c": np.array(9, F), "a": i64(-1)}
    same(run_node("Pad", feeds, [T.FLOAT]), np.array([[9, 1, 2, 3], [9, 4, 5, 6]], F))


def test_pad_opset2_attribute_reflect_and_edge():
    y = run_node("Pad", {"x": X23}, [T.FLOAT], opset=2, pads=[0, 2, 0, 0], mode="reflect")
    same(y, np.array([[3, 2, 1, 2, 3], [6, 5, 4, 5, 6]], F))
    y = run_node("Pad", {"x": X23}, [T.FLOAT], opset=2, pads=[0, 0, 1, 1], mode="edge")
    same(y, np.array([[1, 2, 3, 3], [4, 5, 6, 6], [4, 5, 6, 6]], F))


def test_pad_opset2_value_attribute():
    y = run_node("Pad", {"x": X23}, [T.FLOAT], opset=2, pads=[1, 0, 0, 0], value=-1.0)
    same(y, np.array([[-1, -1, -1], [1, 2, 3], [4, 5, 6]], F))


def test_pad_strings_default_to_empty_string():
    y = run_node("Pad", {"x": np.array(["a"], dtype=object), "p": i64(1, 1)}, [T.STRING])
    same(y, np.array(["", "a", ""], dtype=object))


def test_center_crop_pad_mixed():
    # axis 0: 2 -> 3 pads one at the end; axis 1: 3 -> 2 crops starting at (3-2)//2 = 0
    y = run_node("CenterCropPad", {"x": X23, "s": i64(3, 2)}, [T.FLOAT])
    same(y, np.array([[1, 2], [4, 5], [0, 0]], F))


# -- Identity / Dropout ----------------------------------------------------------------------
def test_identity_strings():
    same(run_node("Identity", {"x": S}, [T.STRING]), S)


def test_dropout_inference_returns_input_and_true_mask():
    x = np.arange(4, dtype=F)
    y, m = run_node("Dropout", {"x": x, "r": np.array(0.5, F)}, [T.FLOAT, T.BOOL])
    same(y, x)
    same(m, np.ones(4, bool))


def test_dropout_opset7_mask_has_the_data_type():
    x = np.arange(3, dtype=F)
    y, m = run_node("Dropout", {"x": x}, [T.FLOAT, T.FLOAT], opset=7, ratio=0.3)
    same(y, x)
    same(m, np.ones(3, F))


def test_dropout_training_is_scaled_masked_and_seeded():
    x = np.arange(1, 201, dtype=F)
    feeds = {"x": x, "r": np.array(0.75, F), "t": np.array(True)}
    y, m = run_node("Dropout", feeds, [T.FLOAT, T.BOOL], seed=3)
    assert m.dtype == bool and 0 < m.sum() < 200
    np.testing.assert_allclose(y, np.where(m, x * 4, 0))
    y2, m2 = run_node("Dropout", feeds, [T.FLOAT, T.BOOL], seed=3)
    same(m2, m)


# -- DepthToSpace / SpaceToDepth -------------------------------------------------------------
def test_depth_to_space_crd_by_hand():
    # 4 channels, blocksize 2, 1x1 spatial: CRD reads the channel as (c, row, col).
    x = np.arange(4, dtype=F).reshape(1, 4, 1, 1)
    same(
        run_node("DepthToSpace", {"x": x}, [T.FLOAT], blocksize=2, mode="CRD"),
        np.array([[[[0, 1], [2, 3]]]], F),
    )
    y = run_node(
        "DepthToSpace", {"x": np.arange(8, dtype=F).reshape(1, 8, 1, 1)}, [T.FLOAT], blocksize=2
    )
    same(y, np.array([[[[0, 2], [4, 6]], [[1, 3], [5, 7]]]], F))  # DCR: channel = (row, col, c)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_space_to_depth_inverts_depth_to_space(mode):
    x = np.arange(2 * 8 * 2 * 3, dtype=F).reshape(2, 8, 2, 3)
    y = run_node("DepthToSpace", {"x": x}, [T.FLOAT], opset=28, blocksize=2, mode=mode)
    z = run_node("SpaceToDepth", {"y": y}, [T.FLOAT], opset=28, blocksize=2, mode=mode)
    same(z, x)


def test_space_to_depth_legacy_strings():
    x = np.array([[[["a", "b"], ["c", "d"]]]], dtype=object)
    y = run_node("SpaceToDepth", {"x": x}, [T.STRING], opset=13, blocksize=2)
    same(y, np.array(["a", "b", "c", "d"], dtype=object).reshape(1, 4, 1, 1))


# -- Trilu / ReverseSequence -----------------------------------------------------------------
def test_trilu_lower_negative_k_on_bool():
    x = np.ones((3, 3), bool)
    y = run_node("Trilu", {"x": x, "k": np.array(-1, np.int64)}, [T.BOOL], upper=0)
    same(y, np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]], bool))


def test_trilu_strings_use_empty_fill():
    y = run_node("Trilu", {"x": S}, [T.STRING], upper=1)
    same(y, np.array([["a", "b", "c"], ["", "e", "f"]], dtype=object))


def test_reverse_sequence_spec_example():
    x = np.arange(16, dtype=F).reshape(4, 4)
    y = run_node(
        "ReverseSequence", {"x": x, "l": i64(1, 2, 3, 4)}, [T.FLOAT], time_axis=1, batch_axis=0
    )
    expected = [[0, 1, 2, 3], [5, 4, 6, 7], [10, 9, 8, 11], [15, 14, 13, 12]]
    same(y, np.array(expected, F))


# -- ConstantOfShape / EyeLike / Range -------------------------------------------------------
def test_constant_of_shape_value_and_scalar():
    v = helper.make_tensor("v", T.INT32, [1], [7])
    same(
        run_node("ConstantOfShape", {"s": i64(2, 0)}, [T.INT32], value=v),
        np.zeros((2, 0), np.int32),
    )
    same(run_node("ConstantOfShape", {"s": np.zeros(0, np.int64)}, [T.FLOAT]), np.array(0, F))
    same(run_node("ConstantOfShape", {"s": i64(2)}, [T.INT32], value=v), np.array([7, 7], np.int32))


def test_eye_like_dtype_and_k():
    y = run_node("EyeLike", {"x": np.zeros((2, 3), F)}, [T.INT64], dtype=T.INT64, k=-1)
    same(y, np.array([[0, 0, 0], [1, 0, 0]], np.int64))
    same(
        run_node("EyeLike", {"x": np.zeros((2, 2), np.int32)}, [T.INT32]), np.eye(2, dtype=np.int32)
    )


def test_range_int_float_and_empty():
    i32 = np.int32
    out = run_node("Range", {"a": i32(10), "b": i32(4), "c": i32(-2)}, [T.INT32])
    same(out, np.array([10, 8, 6], i32))
    same(
        run_node("Range", {"a": F(0), "b": F(1), "c": F(0.25)}, [T.FLOAT]),
        np.array([0, 0.25, 0.5, 0.75], F),
    )
    same(
        run_node("Range", {"a": np.int64(5), "b": np.int64(5), "c": np.int64(1)}, [T.INT64]),
        np.zeros(0, np.int64),
    )
