"""Leaf finding by bit masks for small forests at large batches (the QuickScorer idea).

A level walk (``_tree_eval._walk_packed``) costs ``depth`` dependent gathers over every
(row, tree) pair. Here every tree's leaves get one bit each, numbered left to right with the
true child's subtree first. An interior node whose condition is false rules out the leaves of
its true subtree; the leaf a row reaches is then the lowest bit no false node cleared
(Lucchese et al., "QuickScorer", SIGIR 2015). For one comparison mode, a feature's false
nodes are a prefix of its nodes sorted by threshold (for ``x <= t``: every ``t < x``), so the
AND of their masks is precomputed per prefix and tree: a row costs one binary search and one
gather of ``trees`` masks per used feature, independent of depth, then a lowest-bit count.

Only forests whose trees have at most 64 leaves, whose interior nodes all use one of
LEQ/LT/GTE/GT, and whose prefix tables stay small are served; the result is the same leaf
rows the walk produces (NaN compares false, the false side, as in the packed walk), so the
votes are reduced identically.
"""

from __future__ import annotations

import numpy as np

from onnxpy.kernels.ai_onnx_ml._common import sorted_unique
from onnxpy.kernels.scratch import scratch

# Prefix tables of at most this many (prefix, tree) masks (8 bytes each).
MAX_TABLE_CELLS = 1 << 18
# Rows gathered at once: keeps the [trees, rows] work arrays cache sized.
_CELLS_PER_BLOCK = 1 << 14
_BITS = 64


class BitForest:
    """Prefix mask tables of a packed forest; ``leaves`` gives the walk's [trees, N] leaf rows.

    The forest is packed (nodes breadth first, roots 0..trees-1, node ``i``'s false child at
    ``first[i]`` and its true child right after, ``leaf_row`` -1 on interior nodes), its
    branches ``x <= t`` (``strict``: ``x < t``; ``negate``: ``x >= t`` and ``x > t``).
    Raises ValueError when its tables would be too big, a tree has over 64 leaves or a
    threshold is NaN.
    """

    def __init__(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        first: np.ndarray,
        leaf_row: np.ndarray,
        n_trees: int,
        strict: bool,
        negate: bool,
    ) -> None:
        interior = leaf_row < 0
        nodes = np.flatnonzero(interior)
        used = sorted_unique(feature[nodes]).tolist()
        if (len(nodes) + len(used)) * n_trees > MAX_TABLE_CELLS:
            raise ValueError("the prefix tables would pass MAX_TABLE_CELLS")
        if np.isnan(threshold[interior]).any():  # always false: no place in a sorted order
            raise ValueError("a NaN threshold")
        bit, true_mask = _leaf_bits(first, interior, n_trees)
        tree = _tree_of(first, interior, n_trees)
        # Negated keys turn x >= t and x > t into -x <= -t and -x < -t.
        self.negate = negate
        # searchsorted(keys, x, side) counts the false nodes: t < x for x <= t ("left"),
        # t <= x for x < t ("right").
        self.side = "right" if strict else "left"
        keys = -threshold if negate else threshold
        self.columns: list[int] = []
        self.keys32: list[np.ndarray] = []
        self.keys64: list[np.ndarray] = []
        self.tables: list[np.ndarray] = []
        for f in used:
            at = nodes[feature[nodes] == f]
            at = at[np.argsort(keys[at], kind="stable")]
            # Row k of the accumulation: the masks of the first k nodes, ANDed per tree.
            steps = np.full((len(at) + 1, n_trees), ~np.uint64(0), dtype=np.uint64)
            steps[np.arange(1, len(at) + 1), tree[at]] = ~true_mask[at]
            table = np.bitwise_and.accumulate(steps, axis=0)
            self.columns.append(f)
            self.keys32.append(np.ascontiguousarray(keys[at]))
            self.keys64.append(self.keys32[-1].astype(np.float64))
            self.tables.append(np.ascontiguousarray(table.T))  # [trees, prefixes]
        rows = np.zeros((n_trees, _BITS), dtype=np.int32)
        leaves = np.flatnonzero(~interior)
        rows[tree[leaves], bit[leaves]] = leaf_row[leaves]
        self.leaf_rows = rows.ravel()
        self.base = (np.arange(n_trees, dtype=np.intp) * _BITS)[:, None]
        self.n_trees = n_trees
        self.block = max(1, _CELLS_PER_BLOCK // max(1, n_trees))
        # Estimated nanoseconds per row on 2 cores (_tree_eval._Runner weighs it against the level
        # walk's): a binary search per used feature (branchy, about 6 ns a level), plus per
        # tree a gather and an AND per used feature and about six passes for the lowest bit.
        searches = sum(6 * np.log2(len(k) + 1) for k in self.keys32)
        self.cost_per_row = float(searches + n_trees * (1.5 * len(self.columns) + 6))

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Leaf-table row reached in each tree by each row of ``x`` [N, F]: int32 [trees, N]."""
        n = len(x)
        out = np.empty((self.n_trees, n), dtype=np.int32)
        for r0 in range(0, n, self.block):
            self._block(x[r0 : r0 + self.block], out[:, r0 : r0 + self.block])
        return out

    def _block(self, x: np.ndarray, out: np.ndarray) -> None:
        keys = self.keys32 if x.dtype == np.float32 else self.keys64
        shape = (self.n_trees, len(x))
        mask, other, index, bit, neg = scratch(
            shape, shape, shape, shape, (len(x),), dtype=(_U64, _U64, np.intp, np.uint8, x.dtype)
        )
        if not self.columns:  # every tree is a single leaf
            mask.fill(1)
        cols = x.T
        for i, (f, key, table) in enumerate(zip(self.columns, keys, self.tables, strict=True)):
            v = np.negative(cols[f], out=neg) if self.negate else cols[f]
            table.take(np.searchsorted(key, v, self.side), 1, mask if i == 0 else other, "clip")
            if i:
                mask &= other
        # The bits below the lowest set one, counted: that bit's index.
        np.invert(mask, out=other)
        other += _ONE
        other &= mask
        other -= _ONE
        _popcount(other, bit)
        np.add(bit, self.base, out=index)
        self.leaf_rows.take(index, out=out, mode="clip")


_U64 = np.dtype(np.uint64)
_ONE = np.uint64(1)


def _popcount(v: np.ndarray, out: np.ndarray) -> None:
    """Set bits of ``v``, a run of low bits (2**k - 1, k < 64), into ``out``."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        np.bitwise_count(v, out=out)
    else:  # v + 1 is 2**k: its binary exponent, exact in float64
        out[...] = np.frexp((v + _ONE).astype(np.float64))[1] - 1


def _lowest_bit_plus_one(masks: np.ndarray, unsigned: np.dtype) -> np.ndarray:
    """Per non-zero mask, the index of its lowest set bit plus one (uint8): the set bits of
    ``m ^ (m - 1)``, that bit and the ones below it. A few masks of up to 16 bits look it up
    in one gather instead (one row through iris_forest100: 12.1 -> 11.3 us a run); over a
    batch's masks the three vectorized passes are the faster (0.67 vs 0.70 ms at 1,000)."""
    m = masks.view(unsigned)
    if unsigned.itemsize <= 2 and m.size <= _LOOKUP_MASKS:
        return _LOWEST_BIT[unsigned.itemsize].take(m)
    return _lowest_bit_computed(m, unsigned)


def _lowest_bit_computed(m: np.ndarray, unsigned: np.dtype) -> np.ndarray:
    run = np.bitwise_xor(m, np.subtract(m, 1, dtype=unsigned))
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(run)
    out = np.empty(m.shape, dtype=np.uint8)
    # Run is 2**(k+1) - 1; its upper half's bits, counted, plus the lower half's (k < 64).
    _popcount(run >> 1, out)
    out += 1
    return out


# The computed values for every 8- and 16-bit mask, by item size (64 KB).
_LOWEST_BIT = {
    size: _lowest_bit_computed(np.arange(1 << (8 * size), dtype=f"uint{8 * size}"), dt)
    for size, dt in ((1, np.dtype(np.uint8)), (2, np.dtype(np.uint16)))
}
_LOOKUP_MASKS = 4096  # at most this many masks are looked up


def _tree_of(first: np.ndarray, interior: np.ndarray, n_trees: int) -> np.ndarray:
    """Tree index of every packed node (roots are 0..trees-1, children follow parents)."""
    tree = np.zeros(len(first), dtype=np.intp)
    tree[:n_trees] = np.arange(n_trees)
    for i in np.flatnonzero(interior).tolist():
        tree[first[i]] = tree[first[i] + 1] = tree[i]
    return tree


def _leaf_bits(
    first: np.ndarray, interior: np.ndarray, n_trees: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each leaf's bit (left-to-right, true side first) and each interior node's true-subtree
    leaf mask; raises ValueError when a tree has more than 64 leaves."""
    m = len(first)
    if m - int(np.count_nonzero(interior)) > _BITS * n_trees:  # refused before the loops
        raise ValueError("a tree has more than 64 leaves")
    inner = np.flatnonzero(interior).tolist()
    first_l = first.tolist()
    counts = [1] * m  # leaves below each node
    for i in reversed(inner):  # children are numbered after their parent
        counts[i] = counts[first_l[i]] + counts[first_l[i] + 1]
    if n_trees and max(counts[:n_trees]) > _BITS:
        raise ValueError("a tree has more than 64 leaves")
    start = [0] * m
    for i in inner:
        start[first_l[i] + 1] = start[i]  # the true child's leaves come first
        start[first_l[i]] = start[i] + counts[first_l[i] + 1]
    bit = np.asarray(start, dtype=np.int64)
    mask = np.zeros(m, dtype=np.uint64)
    for i in inner:
        t = first_l[i] + 1
        mask[i] = np.uint64(((1 << counts[t]) - 1) << start[t])
    return bit, mask


class LeafCells:
    """Base of the one-row leaf finders (``RowBits``, ``_tree_prefix.RowPrefix``): both end in
    one surviving leaf bit per tree, a *cell* ``tree * width + bit``. ``_lay_out`` sets the
    mask integer types (``dtype`` signed, ``unsigned``), the cell -> leaf row table
    ``leaf_rows`` and ``base`` (tree t's first cell less one, for ``_lowest_bit_plus_one``'s
    count); subclasses give ``cells``.
    """

    dtype: np.dtype
    unsigned: np.dtype
    leaf_rows: np.ndarray
    base: np.ndarray

    def _lay_out(
        self, first: np.ndarray, leaf_row: np.ndarray, n_trees: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Set the cell layout; return each interior node's true-subtree leaf mask
        (``_leaf_bits``) and each node's tree."""
        interior = leaf_row < 0
        bit, true_mask = _leaf_bits(first, interior, n_trees)
        tree = _tree_of(first, interior, n_trees)
        width = _mask_width(bit[~interior])
        self.dtype = np.dtype(f"int{width}")
        self.unsigned = np.dtype(f"uint{width}")
        rows = np.zeros((n_trees, width), dtype=np.int32)
        leaves = np.flatnonzero(~interior)
        rows[tree[leaves], bit[leaves]] = leaf_row[leaves]
        self.leaf_rows = rows.ravel()
        self.base = np.arange(n_trees, dtype=np.intp) * width - 1
        return true_mask, tree

    def cells(self, x: np.ndarray) -> np.ndarray:
        """Index into ``leaf_rows`` per tree for the row ``x`` [F]."""
        raise NotImplementedError

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Leaf-table row reached in each tree by the row ``x`` [F]: int32 [trees]."""
        return self.leaf_rows.take(self.cells(x))


class RowBits(LeafCells):
    """One row through a forest of small trees: every interior node's condition, then masks.

    The per-feature prefix tables of ``BitForest`` grow with nodes x trees (a LightGBM model of
    600 trees x 31 leaves would need ~90 MB); for a single row the conditions of all interior
    nodes cost less than that: one gather of the row's features, one comparison, the masks of
    the false nodes ANDed per tree (nodes are stored tree by tree, one ``reduceat``), then the
    lowest surviving bit. About ten NumPy calls whatever the depth, where the level walk
    (``_tree_eval._OneRow``) makes four per level. The comparison is the walk's own ufunc on
    the same values, so NaNs and ties take the walk's sides and the leaves are the walk's.
    Raises ValueError when a tree has more than 64 leaves.
    """

    def __init__(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        first: np.ndarray,
        leaf_row: np.ndarray,
        n_trees: int,
        ufunc: np.ufunc,
    ) -> None:
        interior = leaf_row < 0
        # Signed masks: the comparison's bool, negated as int8 (0 or -1), ORs in as all ones.
        true_mask, tree = self._lay_out(first, leaf_row, n_trees)
        nodes = np.flatnonzero(interior)
        nodes = nodes[np.argsort(tree[nodes], kind="stable")]
        # A tree that is one leaf gets a stand-in node that clears nothing (reduceat needs a
        # node per tree): its lowest bit, 0, is the leaf.
        bare = np.setdiff1d(np.arange(n_trees), tree[nodes], assume_unique=True)
        keep = (~true_mask[nodes]).view(np.int64).astype(self.dtype)
        tree_of = np.concatenate([tree[nodes], bare])
        order = np.argsort(tree_of, kind="stable")
        self.feature = np.concatenate([feature[nodes], np.zeros(len(bare), np.intp)])[order]
        pad = np.zeros(len(bare), threshold.dtype)
        self.threshold = np.concatenate([threshold[nodes], pad])[order]
        self.keep = np.concatenate([keep, np.full(len(bare), -1, self.dtype)])[order]
        tree_of = tree_of[order]
        self.starts = np.flatnonzero(np.r_[True, tree_of[1:] != tree_of[:-1]])
        self.ufunc = ufunc
        self.n_nodes = len(self.feature)

    def cells(self, x: np.ndarray) -> np.ndarray:
        """Index into ``leaf_rows`` (tree * width + leaf bit) per tree for the row ``x`` [F]."""
        cond = self.ufunc(x.take(self.feature, mode="clip"), self.threshold)
        kept = np.negative(cond.view(np.int8))
        kept = np.bitwise_or(self.keep, kept, dtype=self.dtype)
        alive = np.bitwise_and.reduceat(kept, self.starts)
        return np.add(self.base, _lowest_bit_plus_one(alive, self.unsigned))


def _mask_width(leaf_bits: np.ndarray) -> int:
    """Bits per tree mask: the narrowest integer width holding every leaf's bit."""
    width = 8
    while width <= int(leaf_bits.max(initial=0)):
        width *= 2
    return width
