"""Gather/scatter and index-producing operators: int32 and negative indices, range errors,
strings, empty tensors, reductions with duplicates and legacy opsets.

Expectations are worked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx.helper import np_dtype_to_tensor_dtype

import onnxpy
from tests.kernels.single_node import run_named as run_node

F = np.float32
S = np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)
X = np.array([[1, 2, 3], [4, 5, 6]], F)


def i32(*v):
    return np.array(v, dtype=np.int32)


def i64(*v):
    return np.array(v, dtype=np.int64)


def same(actual, expected):
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_array_equal(actual, expected)


# -- Gather family ---------------------------------------------------------------------------
def test_gather_int32_negative_indices_on_strings():
    y = run_node("Gather", {"x": S, "i": i32(-1, 0)}, [T.STRING], axis=-1)
    same(y, np.array([["c", "a"], ["f", "d"]], dtype=object))


def test_gather_scalar_and_empty_indices():
    same(run_node("Gather", {"x": X, "i": np.array(-2, np.int64)}, [T.FLOAT]), X[0])
    y = run_node("Gather", {"x": X, "i": np.zeros((0, 2), np.int64)}, [T.FLOAT], axis=1)
    assert y.shape == (2, 0, 2) and y.dtype == F


def test_gather_legacy_opset1():
    same(run_node("Gather", {"x": X, "i": i64(1)}, [T.FLOAT], opset=1), X[[1]])


@pytest.mark.parametrize("bad", [2, -3])
def test_gather_out_of_range_raises(bad):
    with pytest.raises(onnxpy.errors.OnnxpyError, match="out of range"):
        run_node("Gather", {"x": X, "i": i64(bad)}, [T.FLOAT])


def test_gather_elements_int32_negative():
    y = run_node("GatherElements", {"x": X, "i": i32([-1, 0], [1, -3])}, [T.FLOAT], axis=1)
    same(y, np.array([[3, 1], [5, 4]], F))


def test_gather_elements_smaller_indices_and_range_error():
    # indices (1, 2) on data (2, 3) along axis 0: out[0, j] = X[idx[0, j], j]
    y = run_node("GatherElements", {"x": X, "i": i64([1, 0])}, [T.FLOAT], axis=0)
    same(y, np.array([[4, 2]], F))
    with pytest.raises(onnxpy.errors.OnnxpyError, match="out of range"):
        run_node("GatherElements", {"x": X, "i": i64([2, 0])}, [T.FLOAT], axis=0)


def test_gather_nd_batch_dims_with_negative_index():
    data = np.arange(8, dtype=np.int32).reshape(2, 2, 2)
    y = run_node("GatherND", {"x": data, "i": i64([-1], [0])}, [T.INT32], batch_dims=1)
    same(y, np.array([[2, 3], [4, 5]], np.int32))


def test_gather_nd_strings_and_range_error():
    same(
        run_node("GatherND", {"x": S, "i": i64([1, -1], [0, 1])}, [T.STRING]),
        np.array(["f", "b"], dtype=object),
    )
    with pytest.raises(onnxpy.errors.OnnxpyError, match="out of range"):
        run_node("GatherND", {"x": S, "i": i64([0, 3])}, [T.STRING])


# -- Scatter family --------------------------------------------------------------------------
def test_scatter_elements_int32_negative_with_add_duplicates():
    data = np.zeros((1, 4), F)
    feeds = {"x": data, "i": i32([-1, 3, 0]), "u": np.array([[1, 2, 5]], F)}
    y = run_node("ScatterElements", feeds, [T.FLOAT], axis=1, reduction="add")
    same(y, np.array([[5, 0, 0, 3]], F))


def test_scatter_elements_does_not_modify_input_and_raises_out_of_range():
    data = np.zeros((2, 2), F)
    y = run_node(
        "ScatterElements", {"x": data, "i": i64([1, 0]), "u": np.array([[7, 8]], F)}, [T.FLOAT]
    )
    same(y, np.array([[0, 8], [7, 0]], F))
    same(data, np.zeros((2, 2), F))
    with pytest.raises(onnxpy.errors.OnnxpyError, match="out of range"):
        run_node(
            "ScatterElements", {"x": data, "i": i64([2, 0]), "u": np.array([[7, 8]], F)}, [T.FLOAT]
        )


def test_scatter_legacy_opset9():
    feeds = {"x": np.zeros(3, F), "i": i64(-1), "u": np.array([4], F)}
    same(run_node("Scatter", feeds, [T.FLOAT], opset=9), np.array([0, 0, 4], F))


def test_scatter_nd_reductions_with_duplicates():
    data = np.array([1, 2, 3, 4], F)
    feeds = {"x": data, "i": i64([1], [-3], [0]), "u": np.array([5, 6, 0.5], F)}
    same(run_node("ScatterND", feeds, [T.FLOAT], reduction="mul"), np.array([0.5, 60, 3, 4], F))
    same(run_node("ScatterND", feeds, [T.FLOAT], reduction="max"), np.array([1, 6, 3, 4], F))
    same(run_node("ScatterND", feeds, [T.FLOAT], reduction="min"), np.array([0.5, 2, 3, 4], F))


def test_scatter_nd_strings_slices():
    feeds = {"x": S, "i": i64([-1]), "u": np.array([["x", "y", "z"]], dtype=object)}
    same(
        run_node("ScatterND", feeds, [T.STRING]),
        np.array([["a", "b", "c"], ["x", "y", "z"]], dtype=object),
    )


def test_tensor_scatter_linear_and_circular():
    cache = np.zeros((2, 4, 1), F)
    update = np.array([[[1], [2]], [[3], [4]]], F)
    feeds = {"c": cache, "u": update, "w": i64(1, 3)}
    y = run_node("TensorScatter", feeds, [T.FLOAT], opset=24, axis=1, mode="circular")
    same(y[..., 0], np.array([[0, 1, 2, 0], [4, 0, 0, 3]], F))
    with pytest.raises(onnxpy.errors.OnnxpyError, match="exceed"):
        run_node("TensorScatter", feeds, [T.FLOAT], opset=24, axis=1)


# -- NonZero / Compress ----------------------------------------------------------------------
def test_non_zero_scalar_and_strings():
    assert run_node("NonZero", {"x": np.array(5, F)}, [T.INT64]).shape == (0, 1)
    y = run_node("NonZero", {"x": np.array(["a", "", "b"], dtype=object)}, [T.INT64])
    same(y, i64([0, 2]))


def test_non_zero_empty():
    y = run_node("NonZero", {"x": np.zeros((2, 0), F)}, [T.INT64])
    assert y.shape == (2, 0) and y.dtype == np.int64


def test_compress_short_condition_and_flatten():
    cond = np.array([False, True], bool)
    same(run_node("Compress", {"x": X, "c": cond}, [T.FLOAT], axis=-1), np.array([[2], [5]], F))
    cond = np.array([False, False, True, False, True], bool)
    same(run_node("Compress", {"x": S, "c": cond}, [T.STRING]), np.array(["c", "e"], dtype=object))


# -- Unique ----------------------------------------------------------------------------------
def test_unique_unsorted_spec_example():
    x = i64(2, 1, 1, 3, 4, 3)
    y, idx, inv, cnt = run_node("Unique", {"x": x}, [T.INT64] * 4, sorted=0)
    same(y, i64(2, 1, 3, 4))
    same(idx, i64(0, 1, 3, 4))
    same(inv, i64(0, 1, 1, 2, 3, 2))
    same(cnt, i64(1, 2, 2, 1))


def test_unique_sorted_2d_flattens():
    y, idx, inv, cnt = run_node(
        "Unique", {"x": np.array([[1, 3], [2, 3]], F)}, [T.FLOAT] + [T.INT64] * 3
    )
    same(y, np.array([1, 2, 3], F))
    same(idx, i64(0, 2, 1))
    same(inv, i64(0, 2, 1, 2))
    same(cnt, i64(1, 1, 2))


def test_unique_axis_unsorted():
    x = np.array([[2, 0], [1, 0], [2, 0]], np.int32)
    y, idx, inv, cnt = run_node("Unique", {"x": x}, [T.INT32] + [T.INT64] * 3, axis=0, sorted=0)
    same(y, np.array([[2, 0], [1, 0]], np.int32))
    same(idx, i64(0, 1))
    same(inv, i64(0, 1, 0))
    same(cnt, i64(2, 1))


def test_unique_strings():
    x = np.array(["b", "a", "b"], dtype=object)
    y, idx, inv, cnt = run_node("Unique", {"x": x}, [T.STRING] + [T.INT64] * 3)
    same(y, np.array(["a", "b"], dtype=object))
    same(idx, i64(1, 0))
    same(inv, i64(1, 0, 1))
    same(cnt, i64(1, 2))


# -- OneHot ----------------------------------------------------------------------------------
def test_one_hot_axis0_negative_out_of_range_and_float_indices():
    feeds = {
        "i": np.array([1.7, -1, 5], F),
        "d": np.array(3, np.int64),
        "v": np.array([-1, 9], np.int32),
    }
    y = run_node("OneHot", feeds, [T.INT32], axis=0)
    # columns: index 1 (1.7 truncated), index 2 (-1 + 3), all off (5 >= depth)
    same(y, np.array([[-1, -1, -1], [9, -1, -1], [-1, 9, -1]], np.int32))


def test_one_hot_string_values():
    feeds = {"i": i64(0, 1), "d": np.array([2.0], F), "v": np.array(["off", "on"], dtype=object)}
    y = run_node("OneHot", feeds, [T.STRING])
    same(y, np.array([["on", "off"], ["off", "on"]], dtype=object))


# -- TopK ------------------------------------------------------------------------------------
def test_top_k_ties_prefer_lower_index():
    x = np.array([[3, 1, 3, 2, 1]], np.int32)
    v, i = run_node("TopK", {"x": x, "k": i64(3)}, [T.INT32, T.INT64])
    same(v, np.array([[3, 3, 2]], np.int32))
    same(i, i64([0, 2, 3]))
    v, i = run_node("TopK", {"x": x, "k": i64(3)}, [T.INT32, T.INT64], largest=0)
    same(v, np.array([[1, 1, 2]], np.int32))
    same(i, i64([1, 4, 3]))


def test_top_k_unsigned_axis0():
    x = np.array([[0, 255], [255, 0], [7, 7]], np.uint8)
    v, i = run_node("TopK", {"x": x, "k": i64(2)}, [T.UINT8, T.INT64], axis=0)
    same(v, np.array([[255, 255], [7, 7]], np.uint8))
    same(i, i64([1, 0], [2, 2]))


def test_top_k_opset1_attribute():
    x = np.array([1, 4, 2], F)
    v, i = run_node("TopK", {"x": x}, [T.FLOAT, T.INT64], opset=1, k=2)
    same(v, np.array([4, 2], F))
    same(i, i64(1, 2))


def test_top_k_too_large_raises():
    with pytest.raises(onnxpy.errors.OnnxpyError, match="out of range"):
        run_node("TopK", {"x": np.array([1, 2], F), "k": i64(3)}, [T.FLOAT, T.INT64])


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize(
    ("shape", "axis", "k", "dtype"),
    [
        ((5, 5000), -1, 5, np.float32),  # skl2onnx's nearest neighbours
        ((3, 200, 4), 1, 7, np.float64),  # a middle axis
        ((4, 64), 1, 16, np.int8),  # many ties; k at the n/4 limit
        ((2, 100), 1, 1, np.uint8),  # k = 1, unsigned
        ((6, 300), 0, 1, np.int64),  # axis too short: the full sort
    ],
)
def test_top_k_partial_selection_matches_full_sort(largest, shape, axis, k, dtype):
    """The partial-selection path against a stable full sort written here: values, and the
    lower index first among equal values, with heavy ties at the k-th value."""
    rng = np.random.default_rng(9)
    if np.dtype(dtype).kind == "f":
        x = rng.integers(-20, 20, shape).astype(dtype) / 4  # repeated values
    else:
        lo = 0 if np.dtype(dtype).kind == "u" else -20
        x = rng.integers(lo, lo + 40, shape).astype(dtype)
    out_types = [_elem(dtype), T.INT64]
    v, i = run_node("TopK", {"x": x, "k": i64(k)}, out_types, axis=axis, largest=largest)
    xm = np.moveaxis(x, axis, -1).astype(np.float64)
    key = -xm if largest else xm
    order = np.argsort(key, axis=-1, kind="stable")[..., :k]
    same(i, np.moveaxis(order, -1, axis).astype(np.int64))
    same(v, np.take_along_axis(x, i, axis=axis))


def test_top_k_nan_rows_take_the_full_sort():
    x = np.arange(200, dtype=F).reshape(2, 100)
    x[0, 3] = np.nan
    v, i = run_node("TopK", {"x": x, "k": i64(3)}, [T.FLOAT, T.INT64], largest=0)
    same(i, i64([0, 1, 2], [0, 1, 2]))


def _elem(dtype):
    return np_dtype_to_tensor_dtype(np.dtype(dtype))
