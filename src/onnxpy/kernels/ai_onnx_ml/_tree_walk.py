"""The level walk of a compiled forest (``_tree_forest._Forest``): every (row, tree) pair at
once, one depth level per step,

    node = children[2 * node + (x[row, feature[node]] <= threshold[node])]

so the cost is ``depth`` vectorized gathers over ``rows x trees`` indices, whatever the forest
shape. Trees are walked deepest first, so a level only touches the trees not finished yet, and
rows go in blocks that keep the working arrays cache sized. ``_leaves`` is the walk every
other evaluator is tested against, leaf for leaf.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onnxpy.kernels.ai_onnx_ml._common import as_rows
from onnxpy.kernels.ai_onnx_ml._tree_forest import (
    _TRUTH_FLAT,
    _UFUNCS,
    MEMBER,
    _first_of,
    _Forest,
)

# A block walks (trees x rows) pairs at once: at most _PAIRS_PER_BLOCK pairs (memory), at
# least _MIN_PAIRS (NumPy call overhead), and trees whose nodes fit in about _CACHE_BYTES.
_PAIRS_PER_BLOCK = 1 << 16
_MIN_PAIRS = 1 << 12
_CACHE_BYTES = 1 << 20


def _compare(forest: _Forest, slots: np.ndarray, x: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """The branch condition of each visited node for its row's feature value (mixed modes)."""
    t = thr.take(slots)
    code = (x < t).view(np.uint8) + 2 * (x == t).view(np.uint8) + 4 * (x > t).view(np.uint8)
    modes = forest.slots.mode.take(slots)
    cond = _TRUTH_FLAT[modes.astype(np.intp) * 8 + code]
    if forest.membership is not None:
        at = np.flatnonzero(modes == MEMBER)
        if len(at):
            cond[at] = forest.membership.contains(slots[at], x[at].astype(np.float64))
    return cond


def _walk_slots(
    forest: _Forest,
    xflat: np.ndarray,
    node: np.ndarray,
    offset: np.ndarray | None,
    alive: Sequence[int],
    check_nan: bool,
) -> None:
    """Move every pair of ``node`` (tree-major) to its leaf, in place: the general layout.

    ``offset`` is each pair's row start in ``xflat`` (None for a single row); ``alive[d]`` how
    many leading pairs still walk at depth ``d`` (the others sit on leaves already).
    """
    sl, nan_true = forest.slots, forest.nan_true
    children, feature, thr = sl.children, sl.feature, sl.threshold
    ufunc = _UFUNCS.get(forest.single_mode)
    slot = 2 * node
    for k in alive:
        s = slot[:k]
        at = feature.take(s)
        if offset is not None:
            at = np.add(at, offset[:k], dtype=np.intp)
        x = xflat.take(at)
        cond = ufunc(x, thr.take(s)) if ufunc is not None else _compare(forest, s, x, thr)
        if check_nan:
            nan = np.isnan(x)
            if nan_true is not None:
                cond = np.where(nan, nan_true.take(s), cond)
            else:
                cond &= ~nan
        s += cond
        children.take(s, out=s)
    np.floor_divide(slot, 2, out=node)


def _walk_packed(
    forest: _Forest,
    xflat: np.ndarray,
    node: np.ndarray,
    offset: np.ndarray | None,
    alive: Sequence[int],
) -> None:
    """Move every pair of ``node`` (packed numbering) to its leaf, in place.

    Four NumPy calls a level (five with several rows) into buffers made once: for a small
    batch the call overhead is the cost. A NaN compares false and so takes the false side,
    which is right when no node sends NaNs to the true side (``forest.nan_true`` is None).
    """
    packed, ufunc = forest.packed, _UFUNCS[forest.single_mode]
    total = len(node)
    buf = np.empty((total, 4), dtype=np.int32)
    cond = np.empty(total, dtype=bool)
    at = np.empty(total, dtype=np.intp)
    last = -1
    for k in alive:
        if k != last:  # the views change only when trees finish
            cur, rec, c, a = node[:k], buf[:k], cond[:k], at[:k]
            feat, thr, first = rec[:, 0], rec[:, 1].view(np.float32), _first_of(rec)
            off = None if offset is None else offset[:k]
            last = k
        packed.take(cur, 0, rec, "clip")
        if off is None:
            x = xflat.take(feat)
        else:
            x = xflat.take(np.add(feat, off, out=a))
        ufunc(x, thr, out=c)
        np.add(first, c, out=cur)


def _blocks(forest: _Forest, n_rows: int) -> tuple[int, int]:
    """Rows and trees per block (see _PAIRS_PER_BLOCK)."""
    row_block = min(max(1, n_rows), _PAIRS_PER_BLOCK)
    tree_bytes = forest.node_bytes * len(forest.leaf_row) / max(1, forest.n_trees)
    trees = int(_CACHE_BYTES // max(1.0, tree_bytes))
    trees = max(trees, _MIN_PAIRS // row_block)
    return row_block, max(1, min(trees, _PAIRS_PER_BLOCK // row_block))


def _features(forest: _Forest, x: np.ndarray) -> np.ndarray:
    """The input as a C-contiguous [N, F] array: float32 when the thresholds allow, else f64."""
    n_rows, n_feat = x.shape
    if n_rows and forest.n_trees and n_feat <= forest.max_feature:
        raise ValueError(
            f"the input has {n_feat} features but the trees use feature {forest.max_feature}"
        )
    if x.dtype != np.float32 or not forest.exact32:
        x = x.astype(np.float64, copy=False)
    return np.ascontiguousarray(x)


def _leaves(forest: _Forest, x: np.ndarray) -> np.ndarray:
    """Leaf-table row reached in each tree by each row of ``x`` [N, F]: int32 [trees, N].

    Trees follow ``forest.roots`` (deepest tree first). A row's leaves do not depend on the
    rows around it, so any row split gives the same result.
    """
    n_rows, n_feat = x.shape
    xflat = x.ravel()
    # A NaN compares false everywhere, the false side; only nan_true nodes need a look.
    check_nan = forest.nan_true is not None and x.dtype.kind == "f" and np.isnan(xflat).any()
    packed = forest.packed is not None and not check_nan
    roots_all = np.arange(forest.n_trees, dtype=np.intp) if packed else forest.roots
    leaf_row = forest.packed_leaf_row if packed else forest.leaf_row
    out = np.empty((forest.n_trees, n_rows), dtype=np.int32)
    row_block, tree_block = _blocks(forest, n_rows)
    offsets = np.arange(n_rows, dtype=np.intp) * n_feat
    for r0 in range(0, n_rows, row_block):
        rows = offsets[r0 : r0 + row_block]
        width = len(rows)
        offset = None if n_rows == 1 else np.tile(rows, min(tree_block, forest.n_trees))
        for t0 in range(0, forest.n_trees, tree_block):
            roots = roots_all[t0 : t0 + tree_block]
            alive = [min(max(a - t0, 0), len(roots)) * width for a in forest.alive]
            alive = [k for k in alive if k]
            node = np.repeat(roots, width)
            if packed:
                _walk_packed(forest, xflat, node, offset, alive)
            else:
                _walk_slots(forest, xflat, node, offset, alive, check_nan)
            leaf = leaf_row.take(node).reshape(len(roots), width)
            out[t0 : t0 + len(roots), r0 : r0 + width] = leaf
    return out


def _legacy_input(x: np.ndarray) -> np.ndarray:
    x = as_rows(np.asarray(x))
    if x.dtype.kind not in "fiu":
        raise TypeError(f"tree ensembles take numeric input, got {x.dtype}")
    return x
