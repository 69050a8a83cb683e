"""The bit-mask leaf finders (``_tree_bits``) against the level walk and a plain per-row walk.

It must reach the same leaf as the walk for every (row, tree), including rows equal to a
threshold (the strict and non-strict modes differ exactly there), NaN rows, float64 rows,
batches spanning several row blocks, and trees of one leaf or of exactly 64 leaves.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from onnxpy.kernels.ai_onnx_ml import _tree_bits, _tree_prefix
from onnxpy.kernels.ai_onnx_ml import _tree_eval as trees
from tests.kernels.random_trees import (
    TRUE_SIDE,
    add_leaf_trees,
    plain_walk,
    random_forest,
    regressor_session,
)

ORDERED = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT"]
STEPS = [-1.5, -0.5, 0.0, 0.5, 1.5]  # thresholds and row values drawn from one set: ties


@pytest.fixture
def built(monkeypatch):
    """Records the forest of each session made (NumPy walks, no numba) with its batch masks:
    the prefix tables (RowPrefix), or the BitForest made where those are refused."""
    monkeypatch.setattr(trees, "_JIT_DISABLED", True)
    made = []
    original_prefix, original_bits = trees._row_prefix, trees._bit_forest

    def spy_prefix(forest):
        prefix = original_prefix(forest)
        made.append((forest, prefix))
        return prefix

    def spy_bits(forest):
        bits = original_bits(forest)
        made[-1] = (forest, bits)
        return bits

    monkeypatch.setattr(trees, "_row_prefix", spy_prefix)
    monkeypatch.setattr(trees, "_bit_forest", spy_bits)
    return made


@pytest.fixture
def bit_forests(built, monkeypatch):
    """``built``, the prefix tables refused: sessions take BitForest for batches."""
    monkeypatch.setattr(trees, "_PREFIX_MAX_BYTES", 0)
    return built


def _rows(n, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.choice(STEPS, size=(n, 4)) + rng.choice([0.0, 0.25], size=(n, 4))
    return x.astype(dtype)


@pytest.mark.parametrize("mode", ORDERED)
def test_same_leaves_as_the_walk_with_ties_and_nan(bit_forests, mode):
    a = random_forest(12, 5, mode, 2, seed=11, values=STEPS)
    regressor_session(a, 2)
    ((forest, bits),) = bit_forests
    assert bits is not None
    x = _rows(5000, 12)  # several row blocks of 12 trees
    x[::97, 1] = np.nan
    x[5, :] = np.nan
    np.testing.assert_array_equal(bits.leaves(x), trees._leaves(forest, x))
    np.testing.assert_array_equal(
        bits.leaves(x.astype(np.float64)), trees._leaves(forest, x.astype(np.float64))
    )


@pytest.mark.parametrize(
    ("finder", "method"), [("BitForest", "leaves"), ("RowPrefix", "leaves_batch")]
)
@pytest.mark.parametrize("mode", ORDERED)
def test_session_batches_take_the_masks(built, monkeypatch, mode, finder, method):
    if finder == "BitForest":
        monkeypatch.setattr(trees, "_PREFIX_MAX_BYTES", 0)  # the prefix tables refused
    a = random_forest(10, 6, mode, 3, seed=21, leaf_p=0.3, values=STEPS)
    calls = []
    cls = {"BitForest": _tree_bits.BitForest, "RowPrefix": _tree_prefix.RowPrefix}[finder]
    original = getattr(cls, method)
    monkeypatch.setattr(cls, method, lambda self, x: calls.append(len(x)) or original(self, x))
    sess = regressor_session(a, 3)
    x = _rows(1000, 22)
    got = sess.run(None, {"X": x})[0]
    assert calls == [1000], f"a batch of 1000 through 10 deep trees takes {finder}"
    np.testing.assert_allclose(got, plain_walk(x, a, 3).astype(np.float32), rtol=1e-6, atol=1e-6)
    for i in (0, 1, 500, 999):  # a row alone scores as in the batch
        np.testing.assert_array_equal(sess.run(None, {"X": x[i : i + 1]})[0], got[i : i + 1])


def test_double_input_matches_a_plain_walk(bit_forests):
    a = random_forest(8, 6, "BRANCH_LEQ", 1, seed=31, leaf_p=0.2, values=STEPS)
    sess = regressor_session(a, 1, elem_type=TensorProto.DOUBLE)
    ((_, bits),) = bit_forests
    assert bits is not None
    x = _rows(2000, 32, np.float64)
    expected = plain_walk(x, a, 1).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"X": x})[0], expected, rtol=1e-6, atol=1e-6)


def test_full_depth_six_trees_have_64_leaves_and_depth_seven_is_refused(bit_forests):
    a = random_forest(3, 6, "BRANCH_LT", 1, seed=41, leaf_p=0.0)
    regressor_session(a, 1)
    forest, bits = bit_forests[-1]
    assert bits is not None and forest.n_leaves == 3 * 64
    x = _rows(3000, 42)
    np.testing.assert_array_equal(bits.leaves(x), trees._leaves(forest, x))
    a = random_forest(3, 7, "BRANCH_LT", 1, seed=41, leaf_p=0.0)
    regressor_session(a, 1)
    assert bit_forests[-1][1] is None  # 128 leaves do not fit one 64-bit mask


def test_single_leaf_trees_among_others(bit_forests):
    a = random_forest(6, 5, "BRANCH_GT", 1, seed=51, values=STEPS)
    add_leaf_trees(a, [0.5, -2.0])  # two one-leaf trees voting 0.5 and -2.0
    regressor_session(a, 1)
    forest, bits = bit_forests[-1]
    assert bits is not None
    x = _rows(700, 52)
    np.testing.assert_array_equal(bits.leaves(x), trees._leaves(forest, x))


def test_only_single_leaf_trees():
    bits = _tree_bits.BitForest(
        feature=np.zeros(2, np.int32),
        threshold=np.zeros(2, np.float32),
        first=np.arange(2),
        leaf_row=np.array([0, 1], np.int32),
        n_trees=2,
        strict=False,
        negate=False,
    )
    np.testing.assert_array_equal(bits.leaves(np.zeros((3, 1), np.float32)), [[0] * 3, [1] * 3])


def test_mixed_modes_and_large_tables_are_not_served(bit_forests):
    a = random_forest(4, 4, "BRANCH_LEQ", 1, seed=61)
    a["nodes_modes"] = [
        "BRANCH_LT" if m != "LEAF" and i % 2 else m for i, m in enumerate(a["nodes_modes"])
    ]
    regressor_session(a, 1)
    assert bit_forests[-1][1] is None
    n = 2 * _tree_bits.MAX_TABLE_CELLS  # interior nodes x 1 tree: past the table limit
    nodes = (np.zeros(n, np.int32), np.zeros(n, np.float32), np.zeros(n, np.int64))
    leaf_row = np.full(n, -1, np.int32)
    with pytest.raises(ValueError, match="MAX_TABLE_CELLS"):
        _tree_bits.BitForest(*nodes, leaf_row, 1, strict=False, negate=False)


def test_nan_threshold_is_not_served():
    nodes = (np.zeros(3, np.int32), np.array([np.nan, 0, 0], np.float32), np.array([1, 1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        _tree_bits.BitForest(*nodes, np.array([-1, 0, 1], np.int32), 1, strict=False, negate=False)


# -- one row: every node's condition, then masks (RowBits) -----------------------------------
# For a single row through a forest of trees of at most 64 leaves, ``_OneRow`` may AND the
# false nodes' leaf masks per tree instead of walking level by level. It must reach the walk's
# leaf in every tree (ties, NaNs, float64 rows, every branch mode, one-leaf trees, masks of
# 8/16/32/64 bits), and a session's one-row scores must equal its batch's bit for bit.


def _row_bits(forest):
    bits = trees._row_bits(forest)
    assert bits is not None
    return bits


def _assert_walk_leaves(bits, forest, x):
    for row in x:
        np.testing.assert_array_equal(bits.leaves(row), trees._leaves(forest, row[None])[:, 0])


@pytest.mark.parametrize("mode", sorted(TRUE_SIDE))
def test_one_row_same_leaves_as_the_walk_with_ties_and_nan(built, mode):
    a = random_forest(12, 5, mode, 2, seed=11, leaf_p=0.3, values=STEPS)
    regressor_session(a, 2)
    ((forest, _),) = built
    bits = _row_bits(forest)
    x = _rows(150, 12)
    x[::7, 1] = np.nan
    x[5, :] = np.nan
    _assert_walk_leaves(bits, forest, x)
    _assert_walk_leaves(bits, forest, x.astype(np.float64))


@pytest.mark.parametrize(("depth", "dtype"), [(3, np.int8), (4, np.int16), (5, np.int32)])
def test_one_row_mask_width_follows_the_widest_tree(built, depth, dtype):
    a = random_forest(5, depth, "BRANCH_LEQ", 1, seed=depth, leaf_p=0.0)
    regressor_session(a, 1)
    bits = _row_bits(built[-1][0])
    assert bits.dtype == dtype  # 2**depth leaves: exactly the width
    _assert_walk_leaves(bits, built[-1][0], _rows(60, depth))


def test_one_row_64_leaves_fit_and_128_are_refused(built):
    a = random_forest(3, 6, "BRANCH_LT", 1, seed=41, leaf_p=0.0)
    regressor_session(a, 1)
    bits = _row_bits(built[-1][0])
    assert bits.dtype == np.int64 and built[-1][0].n_leaves == 3 * 64
    _assert_walk_leaves(bits, built[-1][0], _rows(100, 42))
    regressor_session(random_forest(3, 7, "BRANCH_LT", 1, seed=41, leaf_p=0.0), 1)
    assert trees._row_bits(built[-1][0]) is None  # 128 leaves: the level walk


def test_one_row_single_leaf_trees_among_others(built):
    a = random_forest(4, 4, "BRANCH_GTE", 1, seed=51, values=STEPS)
    add_leaf_trees(a, [0.5, -2.0])
    regressor_session(a, 1)
    forest = built[-1][0]
    _assert_walk_leaves(_row_bits(forest), forest, _rows(80, 52))


def _spy_cells(monkeypatch, cls, calls):
    monkeypatch.setattr(
        cls,
        "cells",
        lambda self, x, f=cls.cells: calls.append(cls.__name__) or f(self, x),
    )


@pytest.mark.parametrize(
    ("values", "finder"), [(None, "RowBits"), (STEPS, "RowPrefix")], ids=["distinct", "shared"]
)
def test_a_session_takes_the_masks_for_one_row(built, monkeypatch, values, finder):
    # 200 trees of up to 32 leaves: past _ALL_NODES_NODES, shallow enough for the masks to
    # cost less than the walk's four NumPy calls per level. Thresholds drawn from a few values
    # (as boosted trees' histogram bins are) make the prefix tables pay; distinct ones per
    # node (here on 2 features, so the tables pass their size limit) leave the per-node masks.
    monkeypatch.setattr(trees, "_PREFIX_BYTES_PER_NODE", 64)
    a = random_forest(200, 5, "BRANCH_LEQ", 3, seed=61, leaf_p=0.1, values=values)
    calls = []
    _spy_cells(monkeypatch, _tree_bits.RowBits, calls)
    _spy_cells(monkeypatch, _tree_prefix.RowPrefix, calls)
    sess = regressor_session(a, 3, "AVERAGE")
    assert len(built[-1][0].leaf_row) > trees._ALL_NODES_NODES
    x = _rows(40, 62)
    x[3, 2] = np.nan
    batch = sess.run(None, {"X": x})[0]
    assert calls == []
    np.testing.assert_allclose(batch, plain_walk(x, a, 3, "AVERAGE"), rtol=1e-5, atol=1e-6)
    for i in range(len(x)):
        np.testing.assert_array_equal(sess.run(None, {"X": x[i : i + 1]})[0], batch[i : i + 1])
    assert calls == [finder] * len(x)


# -- one row: prefix tables over the distinct thresholds (RowPrefix) --------------------------
# The same leaves as the walk, whatever the mode (the true side is a suffix of the pairs in
# ascending or descending threshold order), with ties, NaNs (every node of the feature false),
# float64 rows, several nodes of one tree sharing a (feature, threshold) pair, one-leaf trees,
# rows wider than the used features, and a table size limit.


def _row_prefix(forest, max_bytes=1 << 24):
    mode = forest.single_mode
    return _tree_prefix.RowPrefix(
        *trees._packed_fields(forest),
        trees._UFUNCS[mode],
        negate=mode in (trees.GTE, trees.GT),
        max_bytes=max_bytes,
    )


@pytest.mark.parametrize("mode", ORDERED)
def test_prefix_same_leaves_as_the_walk_with_ties_and_nan(built, mode):
    # Thresholds from five values over 4 features: many nodes (of one tree too) share a pair.
    a = random_forest(30, 5, mode, 2, seed=71, leaf_p=0.2, values=STEPS)
    regressor_session(a, 2)
    forest = built[-1][0]
    prefix = _row_prefix(forest)
    assert prefix.n_pairs <= 4 * len(STEPS)
    x = _rows(150, 72)
    x[::7, 1] = np.nan
    x[5, :] = np.nan
    _assert_walk_leaves(prefix, forest, x)
    _assert_walk_leaves(prefix, forest, x.astype(np.float64))


@pytest.mark.parametrize("mode", ORDERED)
def test_prefix_distinct_thresholds_and_single_leaf_trees(built, mode):
    a = random_forest(8, 6, mode, 1, seed=81, leaf_p=0.3)
    add_leaf_trees(a, [0.5, -2.0])
    regressor_session(a, 1)
    forest = built[-1][0]
    x = _rows(100, 82)
    x[::9, 0] = np.nan
    _assert_walk_leaves(_row_prefix(forest), forest, x)


@pytest.mark.parametrize(("depth", "dtype"), [(3, np.int8), (5, np.int32), (6, np.int64)])
def test_prefix_mask_width_and_a_wider_row(built, depth, dtype):
    a = random_forest(4, depth, "BRANCH_LT", 1, seed=depth, leaf_p=0.0, values=STEPS)
    # Feature 3 unused: the row's last column never reaches the tables.
    a["nodes_featureids"] = [f % 3 for f in a["nodes_featureids"]]
    regressor_session(a, 1)
    forest = built[-1][0]
    prefix = _row_prefix(forest)
    assert prefix.dtype == dtype and prefix.n_features <= 3
    _assert_walk_leaves(prefix, forest, _rows(60, depth))


def test_prefix_only_single_leaf_trees():
    prefix = _tree_prefix.RowPrefix(
        feature=np.zeros(2, np.int32),
        threshold=np.zeros(2, np.float32),
        first=np.arange(2),
        leaf_row=np.array([0, 1], np.int32),
        n_trees=2,
        ufunc=np.less_equal,
        negate=False,
        max_bytes=1 << 20,
    )
    np.testing.assert_array_equal(prefix.leaves(np.zeros(1, np.float32)), [0, 1])


def test_prefix_refuses_big_tables_many_leaves_and_nan_thresholds(built):
    a = random_forest(20, 4, "BRANCH_LEQ", 1, seed=91, leaf_p=0.0)
    regressor_session(a, 1)
    forest = built[-1][0]
    need = _row_prefix(forest).table.nbytes
    with pytest.raises(ValueError, match="max_bytes"):
        _row_prefix(forest, max_bytes=need - 1)
    assert _row_prefix(forest, max_bytes=need).table.nbytes == need
    # 128 leaves in every tree: refused by the leaf count alone; in one tree of three (130
    # leaves, fewer than 64 a tree on average): by the per-tree count.
    regressor_session(random_forest(2, 7, "BRANCH_LEQ", 1, seed=92, leaf_p=0.0), 1)
    with pytest.raises(ValueError, match="64 leaves"):
        _row_prefix(built[-1][0])
    a = random_forest(1, 7, "BRANCH_LEQ", 1, seed=92, leaf_p=0.0)
    add_leaf_trees(a, [0.5, -1.0])
    regressor_session(a, 1)
    assert built[-1][0].n_leaves == 130
    with pytest.raises(ValueError, match="64 leaves"):
        _row_prefix(built[-1][0])
    nodes = (np.zeros(3, np.int32), np.array([np.nan, 0, 0], np.float32), np.array([1, 1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        _tree_prefix.RowPrefix(
            *nodes, np.array([-1, 0, 1], np.int32), 1, np.less_equal, False, 1 << 20
        )


def test_equality_forests_do_not_take_prefix_tables(built):
    a = random_forest(200, 5, "BRANCH_EQ", 1, seed=93, leaf_p=0.1, values=STEPS)
    regressor_session(a, 1)
    assert trees._row_prefix(built[-1][0]) is None


@pytest.mark.parametrize("mode", ORDERED)
def test_prefix_batches_same_leaves_as_the_walk(built, monkeypatch, mode):
    # Several row blocks (and a last, shorter one), ties, NaNs, float64 rows; one-leaf trees
    # among the others.
    a = random_forest(40, 5, mode, 2, seed=101, leaf_p=0.2, values=STEPS)
    add_leaf_trees(a, [0.5])
    regressor_session(a, 2)
    forest, prefix = built[-1]
    assert isinstance(prefix, _tree_prefix.RowPrefix)
    monkeypatch.setattr(_tree_prefix, "_BLOCK_BYTES", 41 * prefix.dtype.itemsize * 64)
    x = _rows(3000, 102)
    x[::97, 1] = np.nan
    x[5, :] = np.nan
    np.testing.assert_array_equal(prefix.leaves_batch(x), trees._leaves(forest, x))
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(prefix.leaves_batch(x64), trees._leaves(forest, x64))


@pytest.mark.parametrize(
    ("layout", "grid"), [("gaps", True), ("skewed", False)], ids=["grid-gaps", "skewed-repeat"]
)
def test_prefix_row_counts_by_grid_or_by_repeat(built, layout, grid):
    # Pairs compared as a grid (when padding each feature to the widest costs little), from
    # the used columns only (here 1 and 3); or laid out by np.repeat and counted per feature
    # when one feature has far more distinct thresholds than the others.
    a = random_forest(30, 5, "BRANCH_LEQ", 1, seed=121, leaf_p=0.2, values=STEPS)
    rng = np.random.default_rng(122)
    interior = [i for i, m in enumerate(a["nodes_modes"]) if m != "LEAF"]
    for i in interior:
        if layout == "gaps":
            a["nodes_featureids"][i] = 1 + 2 * (a["nodes_featureids"][i] % 2)
        elif a["nodes_featureids"][i] == 0:
            a["nodes_values"][i] = float(np.float32(rng.normal()))  # distinct on feature 0
    regressor_session(a, 1)
    forest = built[-1][0]
    prefix = _row_prefix(forest)
    assert (prefix.grid is not None) is grid
    x = _rows(200, 123)
    x[::11, 3] = np.nan
    x[::13, 0] = np.nan
    _assert_walk_leaves(prefix, forest, x)
    _assert_walk_leaves(prefix, forest, x.astype(np.float64))


@pytest.mark.parametrize("numpy2", [True, False], ids=["bitwise_count", "frexp"])
@pytest.mark.parametrize("width", [8, 16, 32, 64])
def test_lowest_bit_plus_one(monkeypatch, width, numpy2):
    if not numpy2:  # NumPy < 2.0 has no bitwise_count: the float-exponent fallback
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    rng = np.random.default_rng(width)
    masks = [1 << b for b in range(width)]  # every single bit, the top one included
    masks += [int(v) | 1 << int(rng.integers(width)) for v in rng.integers(0, 2**31, 50)]
    masks = [m & ((1 << width) - 1) or 1 for m in masks]
    unsigned = np.dtype(f"uint{width}")
    signed = np.array(masks, dtype=unsigned).view(f"int{width}")
    got = _tree_bits._lowest_bit_plus_one(signed, unsigned)
    expected = [(m & -m).bit_length() for m in masks]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("bits", [8, 16, 32, 64])
def test_lowest_bit_plus_one_by_table_and_by_arithmetic(bits):
    # Every 8- and 16-bit mask (a table lookup), random wider ones (computed): the lowest set
    # bit's index plus one, as Python integers tell it; an all-zero mask gives the width.
    unsigned = np.dtype(f"uint{bits}")
    if bits <= 16:
        values = list(range(1 << bits))
    else:
        rng = np.random.default_rng(bits)
        values = [0, 1, 1 << (bits - 1)] + [
            int(v) << int(s)
            for v, s in zip(rng.integers(1, 1 << 20, 300), rng.integers(0, bits - 20, 300))
        ]
    masks = np.array(values, dtype=unsigned).view(f"int{bits}")
    expected = [(v & -v).bit_length() if v else bits for v in values]
    for at_once in (len(values), 64):  # computed over a batch's masks, looked up for a row's
        got = np.concatenate(
            [
                _tree_bits._lowest_bit_plus_one(masks[i : i + at_once], unsigned)
                for i in range(0, len(masks), at_once)
            ]
        )
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, np.array(expected, dtype=np.uint8))
