"""Tree ensemble evaluation paths and array-valued attributes.

The tree kernels pick an evaluation per call: every node at once with pointer jumping for
small forests and batches (``_AllNodes``), a bare level walk for one row through a big
forest (``_OneRow``), bit masks for larger batches of small forests (``_tree_bits``, its
own tests in test_tree_bits.py) and the blocked level walk otherwise. Each is checked against
a plain per-row walk (random_trees.py), and the paths against each other bit for bit (a row
scores the same alone or in a batch).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import AttributeProto, helper

from onnxpy.kernels.ai_onnx_ml import _tree_eval as trees
from onnxpy.kernels.ai_onnx_ml import linear
from onnxpy.kernels.registry import lookup
from onnxpy.runtime.attributes import decode_attribute
from tests.kernels.random_trees import TRUE_SIDE, plain_walk, random_forest, regressor_session

ML = "ai.onnx.ml"


@pytest.fixture(autouse=True)
def _numpy_walk(monkeypatch):
    """These are the NumPy walks' tests; with numba installed the kernels would take the
    compiled walk instead (checked against these walks in test_tree_jit.py)."""
    monkeypatch.setattr(trees, "_JIT_DISABLED", True)


class _Spy:
    """Counts the calls of one evaluation path (a method patched on its class)."""

    def __init__(self, monkeypatch, cls, name="__call__"):
        self.calls = 0
        original = getattr(cls, name)

        def spy(obj, *args):
            self.calls += 1
            return original(obj, *args)

        monkeypatch.setattr(cls, name, spy)


def _rows(n, seed, values=None):
    rng = np.random.default_rng(seed)
    if values is not None:
        return rng.choice(values, size=(n, 4)).astype(np.float32)
    return rng.normal(size=(n, 4)).astype(np.float32)


@pytest.mark.parametrize("mode", sorted(TRUE_SIDE))
@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
def test_small_forest_all_nodes_path(monkeypatch, mode, aggregate):
    discrete = [-1.0, 0.0, 1.0] if mode in ("BRANCH_EQ", "BRANCH_NEQ") else None
    a = random_forest(6, 5, mode, 3, seed=1, values=discrete)
    spy = _Spy(monkeypatch, trees._AllNodes)
    sess = regressor_session(a, 3, aggregate)
    x = _rows(7, 2, discrete)
    got = sess.run(None, {"X": x})[0]
    assert spy.calls == 1
    expected = plain_walk(x, a, 3, aggregate).astype(np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # One row at a time (the single-row branch) gives the batch's values bit for bit.
    for i in range(len(x)):
        np.testing.assert_array_equal(sess.run(None, {"X": x[i : i + 1]})[0], got[i : i + 1])
    assert spy.calls == 1 + len(x)


def test_trees_that_are_single_leaves():
    # Two one-leaf trees voting 0.25 and 1.5 on target 0: every row scores 1.75.
    fn = lookup(ML, "TreeEnsembleRegressor", 3).fn(
        None,
        n_targets=1,
        nodes_treeids=[0, 1],
        nodes_nodeids=[0, 0],
        nodes_featureids=[0, 0],
        nodes_values=[0.0, 0.0],
        nodes_modes=["LEAF", "LEAF"],
        nodes_truenodeids=[0, 0],
        nodes_falsenodeids=[0, 0],
        target_treeids=[0, 1],
        target_nodeids=[0, 0],
        target_ids=[0, 0],
        target_weights=[0.25, 1.5],
    )
    for n in (1, 3, 5000):
        np.testing.assert_array_equal(fn(np.zeros((n, 2), np.float32)), np.full((n, 1), 1.75))


def test_small_forest_large_batch_matches_all_nodes(monkeypatch):
    a = random_forest(6, 5, "BRANCH_LEQ", 2, seed=3)
    sess = regressor_session(a, 2)
    x = _rows(3000, 4)  # 3000 rows x ~200 nodes, past _ALL_NODES_CELLS: walk or bit masks
    spy = _Spy(monkeypatch, trees._AllNodes)
    big = sess.run(None, {"X": x})[0]
    assert spy.calls == 0
    np.testing.assert_allclose(big, plain_walk(x, a, 2), rtol=1e-6, atol=1e-6)
    small = np.concatenate([sess.run(None, {"X": x[i : i + 5]})[0] for i in range(0, 40, 5)])
    assert spy.calls == 8
    np.testing.assert_array_equal(small, big[:40])


def test_nan_rows_follow_missing_value_tracks_true(monkeypatch):
    a = random_forest(5, 4, "BRANCH_LEQ", 1, seed=5)
    n = len(a["nodes_modes"])
    a["nodes_missing_value_tracks_true"] = [1] * n
    sess = regressor_session(a, 1)
    x = _rows(4, 6)
    x[1, :] = np.nan
    got = sess.run(None, {"X": x})[0]
    # All-NaN row: every branch goes to the true side.
    nan_row = plain_walk(np.full((1, 4), -np.inf, np.float32), a, 1)
    np.testing.assert_allclose(got[1], nan_row[0], rtol=1e-6)
    np.testing.assert_allclose(got[[0, 2, 3]], plain_walk(x[[0, 2, 3]], a, 1), rtol=1e-6)


def test_big_forest_single_row_path(monkeypatch):
    # 40 trees of depth 9: about 20k nodes, past _ALL_NODES_NODES, so one row takes _OneRow.
    a = random_forest(40, 9, "BRANCH_LT", 2, seed=7, leaf_p=0.05)
    assert len(a["nodes_modes"]) > trees._ALL_NODES_NODES
    spy_one = _Spy(monkeypatch, trees._OneRow)
    spy_all = _Spy(monkeypatch, trees._AllNodes)
    sess = regressor_session(a, 2)
    x = _rows(30, 8)
    batch = sess.run(None, {"X": x})[0]
    assert spy_one.calls == 0
    np.testing.assert_allclose(batch, plain_walk(x, a, 2), rtol=1e-5, atol=1e-5)
    for i in range(len(x)):
        np.testing.assert_array_equal(sess.run(None, {"X": x[i : i + 1]})[0], batch[i : i + 1])
    assert spy_one.calls == len(x) and spy_all.calls == 0


@pytest.mark.parametrize(
    ("n_trees", "depth", "one_row"), [(100, 6, True), (8, 4, False)], ids=["100x6", "8x4"]
)
def test_small_forest_one_row_takes_the_cheaper_path(monkeypatch, n_trees, depth, one_row):
    # Both evaluators serve a small forest's single rows; the estimated cheaper one is taken
    # (the prefix tables for 100 trees on a few distinct thresholds, every node at once for 8
    # small trees), with the plain walk's values and the batch's.
    a = random_forest(n_trees, depth, "BRANCH_LEQ", 2, seed=9, leaf_p=0.3, values=[-1, 0, 1.5])
    assert len(a["nodes_modes"]) <= trees._ALL_NODES_NODES
    spy_one = _Spy(monkeypatch, trees._OneRow)
    spy_all = _Spy(monkeypatch, trees._AllNodes)
    sess = regressor_session(a, 2)
    x = _rows(4, 10, [-1.0, 0.0, 0.5, 1.5, 2.0])  # a batch the all-nodes path serves
    x[2, 1] = np.nan
    batch = sess.run(None, {"X": x})[0]
    assert spy_one.calls == 0 and spy_all.calls == 1
    np.testing.assert_allclose(batch, plain_walk(x, a, 2), rtol=1e-5, atol=1e-5)
    for i in range(len(x)):
        np.testing.assert_array_equal(sess.run(None, {"X": x[i : i + 1]})[0], batch[i : i + 1])
    assert spy_one.calls == (len(x) if one_row else 0)
    assert spy_all.calls == 1 + (0 if one_row else len(x))


@pytest.mark.parametrize(
    "x",
    [
        np.array([0.5, -1.0, 2.0, 0.0]),  # 1-D float64: one row
        np.array([[1, -2, 0, 3], [0, 0, 1, -1]], dtype=np.int64),
        np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4) / 5 - 1),
    ],
)
def test_inputs_off_the_fast_check_are_converted(x):
    a = random_forest(4, 4, "BRANCH_LEQ", 1, seed=9)
    fn = lookup(ML, "TreeEnsembleRegressor", 3).fn(
        None, n_targets=1, **{k: np.asarray(v) if k != "nodes_modes" else v for k, v in a.items()}
    )
    rows = np.asarray(x, dtype=np.float64).reshape(-1, 4)
    np.testing.assert_allclose(fn(x), plain_walk(rows, a, 1), rtol=1e-6, atol=1e-6)


def test_classifier_small_path_labels_and_probabilities():
    # Two trees, one split each on feature 0; three classes; weights per leaf.
    attrs = dict(
        nodes_treeids=[0, 0, 0, 1, 1, 1],
        nodes_nodeids=[0, 1, 2, 0, 1, 2],
        nodes_featureids=[0, 0, 0, 1, 0, 0],
        nodes_values=[0.5, 0, 0, -0.5, 0, 0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0, 1, 0, 0],
        nodes_falsenodeids=[2, 0, 0, 2, 0, 0],
        class_treeids=[0, 0, 1, 1],
        class_nodeids=[1, 2, 1, 2],
        class_ids=[0, 2, 1, 2],
        class_weights=[0.6, 0.5, 0.3, 0.2],
        classlabels_int64s=[10, 20, 30],
    )
    fn = lookup(ML, "TreeEnsembleClassifier", 3).fn(None, **attrs)
    x = np.array([[0.0, -1.0], [1.0, -1.0], [1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    label, prob = fn(x)
    # row 0: tree0 x0<=0.5 -> class0 0.6; tree1 x1<=-0.5 -> class1 0.3  => [0.6, 0.3, 0]
    # row 1: tree0 -> class2 0.5; tree1 -> class1 0.3                    => [0, 0.3, 0.5]
    # row 2: tree0 -> class2 0.5; tree1 x1>-0.5 -> class2 0.2            => [0, 0, 0.7]
    # row 3: tree0 -> class0 0.6; tree1 -> class2 0.2                    => [0.6, 0, 0.2]
    expected = np.array([[0.6, 0.3, 0], [0, 0.3, 0.5], [0, 0, 0.7], [0.6, 0, 0.2]], np.float32)
    np.testing.assert_allclose(prob, expected, rtol=1e-6)
    assert prob.dtype == np.float32
    np.testing.assert_array_equal(label, [10, 30, 30, 10])
    assert label.dtype == np.int64


# -- array-valued attributes ------------------------------------------------------------------
def test_decode_attribute_arrays_opt_in():
    ints = helper.make_attribute("a", [3, -1, 2**40])
    floats = helper.make_attribute("b", [0.5, -2.25, 1e-3])
    assert decode_attribute(ints, None) == [3, -1, 2**40]
    got = decode_attribute(ints, None, arrays=True)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [3, -1, 2**40])
    got = decode_attribute(floats, None, arrays=True)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([0.5, -2.25, 1e-3], dtype=np.float32))
    empty = AttributeProto(name="c", type=AttributeProto.INTS)
    assert decode_attribute(empty, None, arrays=True).shape == (0,)


def test_decode_strings_once_per_distinct_value():
    attr = helper.make_attribute("m", ["LEAF", "BRANCH_LEQ", "LEAF", "LEAF", b"\xff"])
    got = decode_attribute(attr, None)
    assert got == ["LEAF", "BRANCH_LEQ", "LEAF", "LEAF", b"\xff"]
    assert got[0] is got[2] is got[3]


def test_array_attribute_flag_on_the_ml_model_kernels():
    for op, since in (
        ("TreeEnsembleClassifier", 3),
        ("TreeEnsembleRegressor", 3),
        ("TreeEnsemble", 5),
        ("LinearClassifier", 1),
        ("LinearRegressor", 1),
    ):
        assert lookup(ML, op, since).array_attributes, op
    assert not lookup("", "Add", 14).array_attributes


# -- linear models ----------------------------------------------------------------------------
def test_linear_logistic_extreme_scores_without_warnings():
    fn = linear.linear_regressor(
        None,
        coefficients=np.array([1.0, -1.0], np.float32),
        intercepts=np.array([0.0], np.float32),
        post_transform="LOGISTIC",
    )
    x = np.array([[0.0, 800.0], [-30.0, 0.0], [0.0, 0.0], [2.0, 0.0], [800.0, 0.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would warn
        y = fn(x)
    # scores s = x0 - x1: -800, -30, 0, 2, 800
    expected = np.array([0.0, np.exp(-30) / (1 + np.exp(-30)), 0.5, 1 / (1 + np.exp(-2)), 1.0])
    np.testing.assert_allclose(y.ravel(), expected.astype(np.float32), rtol=1e-6)
    assert y.dtype == np.float32


def test_linear_classifier_accepts_lists_and_arrays_alike():
    kwargs = dict(
        classlabels_ints=[0, 1, 2],
        coefficients=[1.0, 0.0, 0.0, 1.0, -1.0, -1.0],
        intercepts=[0.0, 0.5, 0.0],
        post_transform="NONE",
    )
    as_lists = linear.linear_classifier(None, **kwargs)
    as_arrays = linear.linear_classifier(None, **{k: np.asarray(v) for k, v in kwargs.items()})
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-2.0, -2.0]], np.float32)
    # scores: row0 [1, 0.5, -1]; row1 [0, 1.5, -1]; row2 [-2, -1.5, 4]
    for fn in (as_lists, as_arrays):
        label, scores = fn(x)
        np.testing.assert_array_equal(label, [0, 1, 2])
        np.testing.assert_allclose(scores, [[1, 0.5, -1], [0, 1.5, -1], [-2, -1.5, 4]])


@pytest.mark.parametrize("shape", [(1, 3), (1, 1), (4, 3), (3,), (2, 2, 5)])
def test_softmax_post_transform_per_row(shape):
    # One row reduces to scalars, other shapes along the last axis: each row of the result
    # is exp(s - max) / sum, worked in Python floats; large scores do not overflow.
    from onnxpy.kernels.ai_onnx_ml._common import softmax

    rng = np.random.default_rng(5)
    x = rng.normal(scale=300.0, size=shape)
    got = softmax(x)
    rows = x.reshape(-1, shape[-1])
    expected = []
    for row in rows.tolist():
        top = max(row)
        e = [np.exp(v - top) for v in row]
        expected.append([v / sum(e) for v in e])
    np.testing.assert_allclose(got.reshape(rows.shape), expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(softmax(np.array([[1, 2, 3]])), softmax(np.array([[1.0, 2, 3]])))
