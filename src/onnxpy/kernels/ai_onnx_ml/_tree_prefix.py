"""One row, or a batch, through a forest of small trees by prefix tables over its distinct
(feature, threshold) pairs (``RowPrefix``): the bit masks of ``_tree_bits`` laid out for
forests whose nodes share thresholds, as boosted forests split on histogram bins.
"""

from __future__ import annotations

import numpy as np

from onnxpy.kernels.ai_onnx_ml._tree_bits import LeafCells, _lowest_bit_plus_one

__all__ = ["RowPrefix"]

# A batch is taken in blocks of rows whose [rows, trees] masks fill about this many bytes. The
# per-feature calls then cover many rows: with 600 trees, 16K-cell blocks (27 rows) made ~800
# small NumPy calls per 1,000 rows, whose Python overhead, and at two threads the GIL passed
# between them, cost more than the cache they saved (LightGBM batch 1000: 13.2 -> 11.3 ms on
# one thread, 14.5 -> 7.7 ms on two).
_BLOCK_BYTES = 1 << 19


class RowPrefix(LeafCells):
    """One row through a forest of small trees by prefix tables over the distinct thresholds.

    ``RowBits`` evaluates every interior node; boosted forests (LightGBM, XGBoost) split on
    histogram bins, so their nodes share few distinct (feature, threshold) pairs (a 600-tree
    LightGBM model: 18,000 nodes, 4,198 pairs). Sorted by threshold, a feature's false nodes
    are a prefix of its pairs (see ``BitForest``), so one table row per (feature, prefix)
    holds every tree's mask with that prefix's true subtrees cleared. A row then costs one
    comparison per distinct pair (``np.repeat`` lays the row's features out, no gather), a
    count per feature, one gathered table row per used feature ANDed over features, and the
    lowest surviving bit per tree: about 15 NumPy calls over ~pairs + features x trees cells
    instead of nodes. The comparison is the walk's ufunc on the same values (NaN compares
    false: every node of that feature false, the walk's side), so the leaves are the walk's.
    Raises ValueError when a tree has more than 64 leaves, a threshold is NaN, or the table
    would pass ``max_bytes``.
    """

    def __init__(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        first: np.ndarray,
        leaf_row: np.ndarray,
        n_trees: int,
        ufunc: np.ufunc,
        negate: bool,
        max_bytes: int,
    ) -> None:
        interior = leaf_row < 0
        nodes = np.flatnonzero(interior)
        if np.isnan(threshold[nodes]).any():
            raise ValueError("a NaN threshold")
        feat = feature[nodes].astype(np.intp)
        thr = threshold[nodes]
        # The true side of x <= t / x < t is t >= x / t > x, a suffix in ascending t; for
        # x >= t / x > t it is a suffix in descending t.
        key = -thr if negate else thr
        order = np.lexsort((key, feat))
        nodes, feat, thr, key = nodes[order], feat[order], thr[order], key[order]
        new = np.ones(len(nodes), dtype=bool)
        new[1:] = (feat[1:] != feat[:-1]) | (key[1:] != key[:-1])
        pair = np.cumsum(new) - 1  # distinct (feature, threshold) pair of each node
        pair_feature = feat[new]
        used, pair_start, pair_count = np.unique(
            pair_feature, return_index=True, return_counts=True
        )
        n_rows = len(pair_feature) + len(used)  # per used feature: prefixes 0..count
        if n_rows * n_trees > max_bytes:  # too big at one byte per mask: refused early
            raise ValueError("the prefix table would pass max_bytes")
        true_mask, tree = self._lay_out(first, leaf_row, n_trees)
        if n_rows * n_trees * self.dtype.itemsize > max_bytes:
            raise ValueError("the prefix table would pass max_bytes")
        rank = np.searchsorted(used, feat)
        table = np.full((n_rows, n_trees), -1, dtype=self.dtype)
        keep = (~true_mask[nodes]).view(np.int64).astype(self.dtype)
        # Row pair + rank + 1 is the first prefix holding the pair; nodes of one tree may
        # share a pair, hence the unbuffered AND.
        np.bitwise_and.at(table, (pair + rank + 1, tree[nodes]), keep)
        block_start = pair_start + np.arange(len(used))
        for a, n in zip(block_start.tolist(), pair_count.tolist(), strict=True):
            block = table[a : a + n + 1]
            np.bitwise_and.accumulate(block, axis=0, out=block)
        self.table = table
        # Batches (``leaves_batch``): per used feature its sorted keys, searched by column.
        self.used = used.tolist()
        key_u = key[new]
        self.keys = [key_u[a : a + n] for a, n in zip(pair_start, pair_count, strict=True)]
        self.block_start = block_start.astype(np.intp)
        self.negate = negate
        strict = ufunc in (np.less, np.greater)
        self.side = "right" if strict else "left"
        self.n_features = int(used[-1]) + 1 if len(used) else 0
        self.counts = np.zeros(self.n_features, dtype=np.intp)
        self.counts[used] = pair_count
        self.thresholds = np.ascontiguousarray(thr[new])
        self.starts = pair_start.astype(np.intp)
        # A feature's table row: its block's last row (all its pairs false) minus the number
        # of pairs that compare true.
        self.row_end = (block_start + pair_count).astype(np.intp)
        # When padding costs little, the pairs as a [used features, widest + 1] grid instead:
        # the row's used features compared across (NaN pads compare false), a True column
        # right after each feature's pairs, and the first True per feature is its count of
        # false pairs: one broadcast comparison, an OR, an argmax (no repeat, no reduceat).
        self.grid = None
        widest = int(pair_count.max(initial=0)) + 1
        if len(used) and len(used) * widest <= 2 * (len(thr[new]) + len(used)):
            grid = np.full((len(used), widest), np.nan, dtype=thr.dtype)
            self.stop = np.zeros((len(used), widest), dtype=bool)
            self.stop[np.arange(len(used)), pair_count] = True
            at = np.arange(len(thr[new])) - np.repeat(pair_start, pair_count)
            grid[np.repeat(np.arange(len(used)), pair_count), at] = thr[new]
            self.grid = grid
            contiguous = np.array_equal(used, np.arange(len(used)))
            self.columns = None if contiguous else used.astype(np.intp)
        self.ufunc = ufunc
        self.n_trees = n_trees
        self.n_pairs = len(self.thresholds)
        self.n_used = len(used)
        # Estimated nanoseconds per row of a batch on 2 cores (``leaves_batch``; the level
        # walk's estimate is weighed against it): a binary search per used feature, then per
        # tree a gathered mask and an AND per used feature and the lowest bit (measured: 600
        # trees x 20 features, 15 us; 100 x 4, 0.5 us).
        searches = sum(6 * np.log2(len(k) + 1) for k in self.keys)
        self.cost_per_row = float(searches + n_trees * (0.8 * len(used) + 2))

    def cells(self, x: np.ndarray) -> np.ndarray:
        """Index into ``leaf_rows`` (tree * width + leaf bit) per tree for the row ``x`` [F]."""
        if self.grid is not None:
            v = x[: self.n_features] if self.columns is None else x.take(self.columns)
            cond = self.ufunc(v[:, None], self.grid)
            cond |= self.stop
            rows = np.add(self.block_start, cond.argmax(axis=1))
            alive = np.bitwise_and.reduce(self.table.take(rows, axis=0), axis=0)
        elif self.n_used:
            cond = self.ufunc(np.repeat(x[: self.n_features], self.counts), self.thresholds)
            true = np.add.reduceat(cond, self.starts, dtype=np.intp)
            alive = np.bitwise_and.reduce(self.table.take(self.row_end - true, axis=0), axis=0)
        else:  # every tree is a single leaf
            alive = np.ones(self.n_trees, dtype=self.dtype)
        return np.add(self.base, _lowest_bit_plus_one(alive, self.unsigned))

    def leaves_batch(self, x: np.ndarray) -> np.ndarray:
        """Leaf-table row reached in each tree by each row of ``x`` [N, F]: int32 [trees, N].

        Per used feature a binary search of the column in the feature's sorted keys gives
        each row's table row (``BitForest``'s search, over distinct pairs); whole table rows
        are gathered and ANDed, in blocks of rows that keep [rows, trees] cache sized.
        """
        n = len(x)
        out = np.empty((self.n_trees, n), dtype=np.int32)
        block = max(1, _BLOCK_BYTES // (self.dtype.itemsize * max(1, self.n_trees)))
        cols = x.T
        for r0 in range(0, n, block):
            r1 = min(n, r0 + block)
            alive = other = None
            for f, key, start in zip(self.used, self.keys, self.block_start.tolist()):
                v = cols[f, r0:r1]
                if self.negate:
                    v = np.negative(v)
                rows = np.searchsorted(key, v, self.side)
                rows += start
                if alive is None:
                    alive = self.table.take(rows, axis=0)
                else:
                    other = self.table.take(rows, axis=0, out=other)
                    alive &= other
            if alive is None:
                alive = np.ones((r1 - r0, self.n_trees), dtype=self.dtype)
            cells = np.add(self.base, _lowest_bit_plus_one(alive, self.unsigned))
            self.leaf_rows.take(cells.T, out=out[:, r0:r1])
        return out
