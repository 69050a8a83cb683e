"""Compiled (numba) traversal of the flat forests that ``trees`` builds.

Imported only when a tree-ensemble kernel is built and numba is importable (see
``_tree_eval._jit_module``). Each (row, tree) pair is walked in compiled code, one node at a
time, and the reached leaf's votes are added to the row's scores in tree order, the order
the NumPy path reduces them in, so both paths agree bit for bit.

Two walks, as in ``trees``:

* the packed layout (one comparison for every interior node, float32 thresholds, no node
  that sends a NaN to the true side): 16-byte records ``[feature, threshold bits, first
  child (int64)]``, the true child right after the false one; a tree of depth ``d`` is walked
  ``d`` steps (a leaf points at itself and compares false);
* the slot layout for everything else: per node slot a mode, feature, threshold and two
  children, BRANCH_MEMBER sets, and NaN routing (``nan_true``).

The kernels release the GIL, so the caller splits a large batch by rows over its threads;
a few rows through a large packed forest split its trees over numba's own threads instead
(``packed_walk_parallel``), where those spin and the process was not forked.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from onnxpy.kernels.ai_onnx_ml._tree_forest import EQ, GT, GTE, LEAF, LEQ, LT, MEMBER, NEQ
from onnxpy.kernels.jit import compiled, parallel_allowed, spinning_pool, use_threads

# Aggregate codes passed to the kernels (_tree_forest._AGGREGATES order).
AVERAGE, SUM, MIN, MAX = range(4)


def _branch_impl(mode, v, t):
    if mode == LEQ:
        return v <= t
    if mode == LT:
        return v < t
    if mode == GTE:
        return v >= t
    if mode == GT:
        return v > t
    if mode == EQ:
        return v == t
    if mode == NEQ:
        return v != t
    return False


_branch = njit(inline="always")(_branch_impl)


def _vote_impl(out, r, table, leaf, function):
    """Add leaf ``leaf``'s votes (column of ``table`` [targets, leaves]) to row ``r``."""
    if function == MIN:
        for k in range(table.shape[0]):
            w = table[k, leaf]
            if w < out[r, k] or w != w:
                out[r, k] = w
    elif function == MAX:
        for k in range(table.shape[0]):
            w = table[k, leaf]
            if w > out[r, k] or w != w:
                out[r, k] = w
    else:
        for k in range(table.shape[0]):
            out[r, k] += table[k, leaf]


_vote = njit(inline="always")(_vote_impl)


def _start_impl(out, function):
    fill = 0.0
    if function == MIN:
        fill = np.inf
    elif function == MAX:
        fill = -np.inf
    for r in range(out.shape[0]):
        for k in range(out.shape[1]):
            out[r, k] = fill


_start = njit(inline="always")(_start_impl)


def _finish_impl(out, function, n_trees):
    """As _tree_eval._finish_votes: MIN/MAX targets nobody voted for score 0; AVERAGE divides."""
    for r in range(out.shape[0]):
        for k in range(out.shape[1]):
            if function == MIN or function == MAX:
                if out[r, k] == np.inf or out[r, k] == -np.inf:
                    out[r, k] = 0.0
            elif function == AVERAGE and n_trees > 0:
                out[r, k] /= n_trees


_finish = njit(inline="always")(_finish_impl)


# -- walks ---------------------------------------------------------------------------------
# A walk is a chain of dependent loads; walking _LANES (row, tree) pairs in lockstep lets the
# processor overlap their cache misses. A batch puts rows of one tree in the lanes (the
# tree's nodes stay in cache from row to row); a single row (or a batch smaller than the
# lanes) puts consecutive trees of one row there (trees are ordered deepest first, so the
# group's first tree sets the step count). A leaf points at itself, so lanes that reach
# theirs early step in place. Either way a row's votes are added in tree order.
_LANES = 32
# Forests walked by ``packed_walk_parallel``: at least this many trees (two lane groups for
# each of two threads).
_PARALLEL_MIN_TREES = 4 * _LANES


def _packed_steps(x, rows, node, k, d, feat, thr, first, mode):
    for _ in range(d):
        for j in range(k):
            i = node[j]
            node[j] = first[i, 1] + _branch(mode, x[rows[j], feat[i, 0]], thr[i, 1])


_packed_steps_jit = njit(inline="always")(_packed_steps)


def _member_impl(v, values, start, stop):
    """Whether ``v`` is among the sorted ``values[start:stop]``."""
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo < stop and values[lo] == v


_member = njit(inline="always")(_member_impl)


def _slot_steps(x, rows, node, k, d, feature, threshold, modes, children, nan_true, sets):
    set_of, set_start, values = sets
    for _ in range(d):
        for j in range(k):
            s = node[j]
            mode = modes[s]
            if mode == LEAF:
                continue
            v = x[rows[j], feature[s]]
            if v != v:
                c = nan_true[s]
            elif mode == MEMBER:
                m = set_of[s]
                c = _member(np.float64(v), values, set_start[m], set_start[m + 1])
            else:
                c = _branch(mode, v, threshold[s])
            node[j] = children[s + c]


_slot_steps_jit = njit(inline="always")(_slot_steps)


def packed_walk(
    x, roots, depth, leaf_row, feat, thr, first, mode, table, function, out, leaves, store
):
    """Walk every (row, tree) pair of ``x`` [N, F] through the packed layout.

    ``feat``/``thr`` are the int32/float32 views [m, 4] of the records, ``first`` their int64
    view [m, 2]; ``roots`` the packed roots, ``depth`` each tree's depth, ``leaf_row`` the
    vote-table row of each record. ``store``: leaf rows into ``leaves`` [trees, N]; else the
    aggregated votes into ``out`` [N, targets].
    """
    n = x.shape[0]
    n_trees = roots.shape[0]
    node = np.empty(_LANES, np.int64)
    rows = np.empty(_LANES, np.int64)
    if not store:
        _start(out, function)
    if n >= _LANES:
        for t in range(n_trees):
            for r0 in range(0, n, _LANES):
                k = min(_LANES, n - r0)
                for j in range(k):
                    node[j] = roots[t]
                    rows[j] = r0 + j
                _packed_steps_jit(x, rows, node, k, depth[t], feat, thr, first, mode)
                for j in range(k):
                    leaf = leaf_row[node[j]]
                    if store:
                        leaves[t, r0 + j] = leaf
                    else:
                        _vote(out, r0 + j, table, leaf, function)
    else:
        for r in range(n):
            for t0 in range(0, n_trees, _LANES):
                k = min(_LANES, n_trees - t0)
                for j in range(k):
                    node[j] = roots[t0 + j]
                    rows[j] = r
                _packed_steps_jit(x, rows, node, k, depth[t0], feat, thr, first, mode)
                for j in range(k):
                    leaf = leaf_row[node[j]]
                    if store:
                        leaves[t0 + j, r] = leaf
                    else:
                        _vote(out, r, table, leaf, function)
    if not store:
        _finish(out, function, n_trees)


# slot_walk repeats packed_walk's loops on purpose: one walk taking the step function as an
# argument measured 36-40 us instead of 28 us on the 300-tree forest at batch 1 (numba does
# not inline a function passed as a value) and is not cached on disk.
def slot_walk(
    x,
    roots,
    depth,
    leaf_row,
    feature,
    threshold,
    modes,
    children,
    nan_true,
    sets,
    table,
    function,
    out,
    leaves,
    store,
):
    """As packed_walk over the slot layout (``roots`` and ``leaf_row`` per slot); ``sets`` is
    (set of each slot, start of each set in ``values``, ``values``) for BRANCH_MEMBER."""
    n = x.shape[0]
    n_trees = roots.shape[0]
    node = np.empty(_LANES, np.int64)
    rows = np.empty(_LANES, np.int64)
    if not store:
        _start(out, function)
    if n >= _LANES:
        for t in range(n_trees):
            for r0 in range(0, n, _LANES):
                k = min(_LANES, n - r0)
                for j in range(k):
                    node[j] = roots[t]
                    rows[j] = r0 + j
                _slot_steps_jit(
                    x, rows, node, k, depth[t], feature, threshold, modes, children, nan_true, sets
                )
                for j in range(k):
                    leaf = leaf_row[node[j]]
                    if store:
                        leaves[t, r0 + j] = leaf
                    else:
                        _vote(out, r0 + j, table, leaf, function)
    else:
        for r in range(n):
            for t0 in range(0, n_trees, _LANES):
                k = min(_LANES, n_trees - t0)
                for j in range(k):
                    node[j] = roots[t0 + j]
                    rows[j] = r
                _slot_steps_jit(
                    x, rows, node, k, depth[t0], feature, threshold, modes, children, nan_true, sets
                )
                for j in range(k):
                    leaf = leaf_row[node[j]]
                    if store:
                        leaves[t0 + j, r] = leaf
                    else:
                        _vote(out, r, table, leaf, function)
    if not store:
        _finish(out, function, n_trees)


def packed_walk_parallel(x, roots, depth, leaf_row, feat, thr, first, mode, table, function, out):
    """``packed_walk`` of a few rows with dense votes, its trees split over numba's threads:
    groups of ``_LANES`` consecutive trees walk every row in parallel, then each row's votes
    are added in tree order on one thread (the same sums, bit for bit). One row through the
    300-tree forest: 17 -> 11 us on two threads."""
    n = x.shape[0]
    n_trees = roots.shape[0]
    leaves = np.empty((n_trees, n), np.int64)
    for c in prange((n_trees + _LANES - 1) // _LANES):
        node = np.empty(_LANES, np.int64)
        rows = np.empty(_LANES, np.int64)
        t0 = c * _LANES
        k = min(_LANES, n_trees - t0)
        for r in range(n):
            for j in range(k):
                node[j] = roots[t0 + j]
                rows[j] = r
            _packed_steps_jit(x, rows, node, k, depth[t0], feat, thr, first, mode)
            for j in range(k):
                leaves[t0 + j, r] = leaf_row[node[j]]
    _start(out, function)
    for r in range(n):
        for t in range(n_trees):
            _vote(out, r, table, leaves[t, r], function)
    _finish(out, function, n_trees)


packed_walk = compiled(packed_walk)
slot_walk = compiled(slot_walk)
packed_walk_parallel = compiled(packed_walk_parallel, parallel=True)


# -- the Python side -----------------------------------------------------------------------
_FUNCTIONS = {"AVERAGE": AVERAGE, "SUM": SUM, "MIN": MIN, "MAX": MAX}


class JitForest:
    """A forest's arrays arranged for the kernels: ``self(x)`` scores, ``fill`` for a slice.

    ``x`` must be a C-contiguous float32 or float64 [N, F] array with enough features (the
    caller's input check). Dense vote tables are reduced inside the kernel; sparse ones get
    the reached leaves and ``votes`` (the NumPy reduction) aggregates them.
    """

    def __init__(self, forest, votes, dtypes) -> None:
        self.votes = votes
        self.n_trees = forest.n_trees
        self.n_targets = votes.n_targets
        self.dense = votes.dense
        self.function = _FUNCTIONS[votes.function]
        alive = np.asarray(forest.alive, dtype=np.int64)
        tree = np.arange(forest.n_trees, dtype=np.int64)
        depth = np.count_nonzero(alive[None, :] > tree[:, None], axis=1).astype(np.int64)
        if forest.packed is not None and forest.nan_true is None:
            packed = forest.packed
            self._walk = packed_walk
            self._layout = (
                tree,
                depth,
                forest.packed_leaf_row,
                packed,
                packed.view(np.float32),
                packed.view(np.int64),
                int(forest.single_mode),
            )
        else:
            sl = forest.slots
            nan_true = forest.nan_true
            if nan_true is None:
                nan_true = np.zeros(len(sl.mode), dtype=np.bool_)
            self._walk = slot_walk
            self._layout = (
                2 * forest.roots.astype(np.int64),
                depth,
                np.repeat(forest.leaf_row, 2),
                sl.feature,
                sl.threshold,
                sl.mode,
                sl.children,
                nan_true,
                _sets(forest.membership),
            )
        self.table = votes.table if self.dense else np.zeros((self.n_targets, 1))
        self._no_leaves = np.zeros((1, 1), dtype=np.int32)
        self._no_out = np.zeros((1, 1))
        # A few rows through a packed forest with dense votes: trees split over numba's
        # threads, where its pool spins (see ``fill_parallel``), and where there are groups
        # of trees enough to share out evenly: one row through 300 trees of depth 14 took 12
        # instead of 17 us on two threads, through 100 trees of depth 34 (four groups,
        # deepest first) 10-12 against 9-14 us.
        self.parallel = (
            self._walk is packed_walk and self.dense and self.n_trees >= _PARALLEL_MIN_TREES
        )
        for dtype in dtypes:  # compile (or load from numba's cache) now, not at the first run
            empty = np.zeros((0, max(1, forest.max_feature + 1)), dtype=dtype)
            self(empty)
            if self.parallel:
                self.fill_parallel(empty, np.empty((0, self.n_targets)), 1)
        self.parallel = self.parallel and spinning_pool()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], self.n_targets))
        self.fill(x, out)
        return out

    def fill_parallel(self, x: np.ndarray, out: np.ndarray, threads: int) -> None:
        """``fill`` with the trees split over up to ``threads`` of numba's threads (only
        where ``self.parallel``): for batches too small to split by rows. In a forked child
        the single-thread walk, the same sums."""
        if not parallel_allowed():
            self.fill(x, out)
            return
        use_threads(threads)
        packed_walk_parallel(x, *self._layout, self.table, self.function, out)

    def fill(self, x: np.ndarray, out: np.ndarray) -> None:
        """Scores of ``x`` into ``out`` [N, targets] (float64, C-contiguous)."""
        if self.dense:
            self._walk(x, *self._layout, self.table, self.function, out, self._no_leaves, False)
        else:
            leaves = np.empty((self.n_trees, x.shape[0]), dtype=np.int32)
            self._walk(x, *self._layout, self.table, self.function, self._no_out, leaves, True)
            out[...] = self.votes(leaves)


def _sets(membership):
    """BRANCH_MEMBER sets as one sorted value array cut per set: ``values[start[k]:start[k+1]]``
    holds set ``k``; ``set_of`` maps a node slot to its set (_tree_forest._Membership layout)."""
    if membership is None or len(membership.keys) == 0:
        n_sets = 0 if membership is None else int(membership.slot.max(initial=-1)) + 1
        set_of = np.zeros(1, np.int64) if membership is None else membership.slot.astype(np.int64)
        return set_of, np.zeros(n_sets + 1, np.int64), np.zeros(1, np.float64)
    n_values = len(membership.values)
    keys = membership.keys
    n_sets = int(membership.slot.max(initial=-1)) + 1
    values = np.ascontiguousarray(membership.values[keys % n_values], dtype=np.float64)
    start = np.searchsorted(keys // n_values, np.arange(n_sets + 1)).astype(np.int64)
    return membership.slot.astype(np.int64), start, values
