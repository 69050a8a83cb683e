"""Tree ensembles: TreeEnsembleClassifier, TreeEnsembleRegressor (opsets 1/3/5), TreeEnsemble (5).

All three compile, once per node, to one flat forest: per node a feature, a threshold, a mode
and a pair of children (a leaf points to itself), plus a table of leaf votes. A run walks every
(row, tree) pair at once, one depth level per step:

    node = children[2 * node + (x[row, feature[node]] <= threshold[node])]

so the cost is ``depth`` vectorized gathers over ``rows x trees`` indices, whatever the forest
shape. Trees are walked deepest first, so a level only touches the trees not finished yet.
Rows are processed in blocks so the working arrays stay cache sized, and a large batch is
split by rows over a few threads (NumPy's gathers and ufuncs release the GIL). Every row's
result is computed the same way whatever the batch or thread split, so results are
bit-identical between a batch and its rows one by one.

Other evaluators find the same leaves where they cost less: every node at once for small
batches of small forests (``_AllNodes``), per-feature bit masks for larger batches of forests
of small trees (``_tree_bits``), compiled walks for big forests (``_tree_jit``, numba).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from onnx import TensorProto

from onnxpy.kernels import jit
from onnxpy.kernels.ai_onnx_ml import _tree_bits
from onnxpy.kernels.ai_onnx_ml._common import (
    as_rows,
    class_labels,
    floats_attr,
    post_transform_code,
)
from onnxpy.kernels.ai_onnx_ml._common import post_transform as apply_post
from onnxpy.kernels.registry import NodeInfo, register
from onnxpy.kernels.threads import kernel_threads, worker_pool

ML = "ai.onnx.ml"

# Node modes. TreeEnsemble (opset 5) numbers the branch modes 0..6; LEAF is internal.
LEQ, LT, GTE, GT, EQ, NEQ, MEMBER, LEAF = range(8)
_MODE_NAMES = {
    "BRANCH_LEQ": LEQ,
    "BRANCH_LT": LT,
    "BRANCH_GTE": GTE,
    "BRANCH_GT": GT,
    "BRANCH_EQ": EQ,
    "BRANCH_NEQ": NEQ,
    "LEAF": LEAF,
}
# cond = _TRUTH[mode, lt + 2 * eq + 4 * gt]; a NaN compares as index 0 (all false).
_TRUTH = np.zeros((8, 8), dtype=bool)
for _i in range(8):
    _lt, _eq, _gt = bool(_i & 1), bool(_i & 2), bool(_i & 4)
    _TRUTH[LEQ, _i] = _lt or _eq
    _TRUTH[LT, _i] = _lt
    _TRUTH[GTE, _i] = _gt or _eq
    _TRUTH[GT, _i] = _gt
    _TRUTH[EQ, _i] = _eq
    _TRUTH[NEQ, _i] = _lt or _gt
_TRUTH_FLAT = _TRUTH.ravel()
# The comparison of a forest whose interior nodes all use one branch mode.
_UFUNCS = {
    LEQ: np.less_equal,
    LT: np.less,
    GTE: np.greater_equal,
    GT: np.greater,
    EQ: np.equal,
    NEQ: np.not_equal,
}

_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")  # TreeEnsemble numbers them 0..3

# A block walks (trees x rows) pairs at once: at most _PAIRS_PER_BLOCK pairs (memory), at
# least _MIN_PAIRS (NumPy call overhead), and trees whose nodes fit in about _CACHE_BYTES.
_PAIRS_PER_BLOCK = 1 << 16
_MIN_PAIRS = 1 << 12
_CACHE_BYTES = 1 << 20
_BYTES_PER_SLOT = 20  # feature (4) + threshold (4 or 8) + children (8)
# Leaf vote tables up to this many cells are dense [targets, leaves]; larger ones stay sparse.
_DENSE_LIMIT = 1 << 22
# Leaf cells ([rows, trees]) gathered at once per target when aggregating the votes.
_GATHER_CELLS = 1 << 21
# The all-nodes evaluation (_AllNodes) serves forests of at most _ALL_NODES_NODES nodes, for
# batches of at most _ALL_NODES_CELLS (row, node) cells.
_ALL_NODES_NODES = 1 << 12
_ALL_NODES_CELLS = 1 << 15
# A batch is split over threads when each thread gets at least this many (row, tree) pairs.
_PAIRS_PER_THREAD = 1 << 15


# With numba importable, forests are walked by compiled kernels (_tree_jit); tests set this
# to keep the NumPy walks (ONNXPY_DISABLE_JIT=1 does it for the process, see kernels/jit.py).
_JIT_DISABLED = jit.DISABLED
# A compiled run is split over threads when each thread gets at least this many pairs.
_JIT_PAIRS_PER_THREAD = 1 << 16
# Forests walked by the compiled kernels: at least this many trees x levels. Below it the NumPy
# walks stay within about 2x (batch 1) to 3x (batch 1000) of onnxruntime (iris, 10 trees:
# 9.6 us and 0.34 ms vs 5.9 us and 0.12 ms), while loading numba costs ~0.5 s and ~100 MB
# resident (LLVM) once per process, more than such a model and runtime together. Above it the
# NumPy walk falls far behind at small batches (300 trees x 14 levels: 58 us vs 13 us; compiled
# 28 us).
_JIT_MIN_WALK = 1000
# ... and at least this many nodes. numba's fixed costs (~90 MB of LLVM resident, 0.5-1.5 s of
# session creation) must be small against the model's own: they are for a 300-tree depth-14
# forest (957K nodes; onnxruntime peaks at 487 MB for it), not for a LightGBM classifier of
# 600 trees x 31 leaves (36.6K nodes): compiled, its session took 1.84 s vs 0.29 s and peaked at
# 188 vs 100 MB (onnxruntime: 0.13 s, 83 MB) to run batch 1 in 45 instead of 97 us
# (onnxruntime 16 us), and batch 1000 no faster (68 vs 62 ms; onnxruntime 66-72 ms).
_JIT_MIN_NODES = 1 << 18


def _jit_module():
    """The compiled-kernel module, imported on first use; None without numba (or disabled)."""
    return None if _JIT_DISABLED else jit.load("onnxpy.kernels.ai_onnx_ml._tree_jit")


@dataclass
class _Membership:
    """BRANCH_MEMBER sets: node -> slot, and sorted (slot, value id) keys for lookups."""

    slot: np.ndarray  # int64 per node (per slot once compiled), -1 off set-membership nodes
    values: np.ndarray  # float64, sorted unique members of all sets
    keys: np.ndarray  # int64, sorted slot * len(values) + value index

    def contains(self, slots: np.ndarray, x: np.ndarray) -> np.ndarray:
        if len(self.keys) == 0:
            return np.zeros(len(x), dtype=bool)
        vid = np.searchsorted(self.values, x)
        vid = np.minimum(vid, len(self.values) - 1)
        found = self.values[vid] == x
        key = self.slot[slots] * len(self.values) + vid
        pos = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
        return found & (self.keys[pos] == key)


@dataclass
class _Slots:
    """The general node layout: one array per field, node ``i`` in slots ``2i`` and ``2i + 1``.

    A walker holding slot ``2i`` reaches the child for condition ``c`` with
    ``children[2i + c]`` (children are stored as slots too), without a multiply per step.
    """

    feature: np.ndarray  # int32 [2n] (int64 past 2**31 features)
    threshold: np.ndarray  # float32 [2n] when every threshold is exact in float32, else float64
    mode: np.ndarray  # uint8 [2n]
    children: np.ndarray  # int64 [2n]: slot 2i -> false child's slot, 2i+1 -> true child's


@dataclass
class _Forest:
    """A compiled forest: node arrays over all trees plus each tree's root.

    ``packed`` is the fast layout when every interior node uses one comparison on a float32
    threshold: one 16-byte record per node, int32 ``[feature, threshold bits]`` then the false
    child as an int64 in columns 2-3 (see _first_of; an int64 adds to the walkers' intp
    indices without a cast), the true child stored right after the false one, so a step
    reads one record and moves with one add. ``slots`` is the general layout (mixed modes,
    BRANCH_MEMBER, float64 thresholds, NaNs that must take the true side); it is built
    only when ``packed`` cannot serve every input. A leaf's children are itself. Roots are
    ordered deepest tree first; ``alive[d]`` trees of that order are still walking at depth d.
    """

    packed: np.ndarray | None  # int32 [m, 4], nodes renumbered (see _pack)
    packed_leaf_row: np.ndarray | None  # int32 [m]: leaf_row in the packed numbering
    slots: _Slots | None
    nan_true: np.ndarray | None  # bool [2n]: a NaN goes to the true side; None if never
    membership: _Membership | None
    roots: np.ndarray  # int64 [trees], node indices, deepest tree first
    alive: tuple[int, ...]
    leaf_row: np.ndarray  # int32 [n]: row in the leaf vote table, -1 for interior nodes
    n_leaves: int
    single_mode: int | None  # the one branch mode used by every interior node, if so
    exact32: bool  # every threshold is a float32 value
    max_feature: int

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def depth(self) -> int:
        return len(self.alive)

    @property
    def node_bytes(self) -> int:
        return 16 if self.packed is not None else 42


def _forest(
    feature: np.ndarray,
    threshold: np.ndarray,
    mode: np.ndarray,
    true_child: np.ndarray,
    false_child: np.ndarray,
    missing_true: np.ndarray | None,
    roots: np.ndarray,
    membership: _Membership | None = None,
) -> _Forest:
    """Assemble a forest from validated node arrays (leaves are nodes of mode LEAF).

    ``true_child`` and ``false_child`` may be modified in place when they are int64 arrays
    (callers pass arrays of their own): a big forest is not copied once more.
    """
    n = len(feature)
    is_leaf = mode == LEAF
    interior = ~is_leaf
    leaf_at = np.flatnonzero(is_leaf)
    false_child = np.asarray(false_child, dtype=np.int64)
    true_child = np.asarray(true_child, dtype=np.int64)
    false_child[leaf_at] = leaf_at
    true_child[leaf_at] = leaf_at
    feature = np.asarray(feature, dtype=np.int64)
    if (feature[interior] < 0).any():
        raise ValueError("a tree node has a negative feature id")
    max_feature = int(feature[interior].max(initial=-1))
    feature = np.where(is_leaf, 0, feature)
    thr32 = threshold.astype(np.float32)
    exact32 = bool(np.array_equal(thr32, threshold, equal_nan=True))
    branch_modes = np.unique(mode[interior])
    single = None
    if len(branch_modes) == 0:
        single = LEQ
    elif len(branch_modes) == 1 and branch_modes[0] != MEMBER:
        single = int(branch_modes[0])
    # A NaN takes the true branch where nodes_missing_value_tracks_true says so, and at
    # BRANCH_NEQ nodes, where NaN != threshold holds (onnxruntime does the same).
    nan_true = (mode == NEQ) & interior
    if missing_true is not None:
        nan_true |= missing_true.astype(bool) & interior
    leaf_row = np.full(n, -1, dtype=np.int32)
    leaf_row[leaf_at] = np.arange(len(leaf_at), dtype=np.int32)
    tree_depth = _tree_depths(false_child, true_child, is_leaf, roots)
    order = np.argsort(-tree_depth, kind="stable")
    ranked = np.sort(tree_depth)
    levels = np.arange(int(tree_depth.max(initial=0)))
    alive = tuple((len(ranked) - np.searchsorted(ranked, levels, side="right")).tolist())
    packable = single is not None and exact32 and n < 2**30 and max_feature < 2**31
    ordered_roots = roots.astype(np.int64)[order]
    packed = None
    if packable:
        packed = _pack(feature, thr32, false_child, true_child, is_leaf, ordered_roots, single)
    packable = packed is not None
    slots = None
    if not packable or nan_true.any():
        children = np.empty(2 * n, dtype=np.int64)
        children[0::2] = false_child
        children[1::2] = true_child
        children *= 2
        if membership is not None:
            membership.slot = np.repeat(membership.slot, 2)
        ftype = np.int32 if max_feature < 2**31 else np.int64
        slots = _Slots(
            feature=np.repeat(feature.astype(ftype), 2),
            threshold=np.repeat(thr32 if exact32 else threshold, 2),
            mode=np.repeat(mode.astype(np.uint8), 2),
            children=children,
        )
    return _Forest(
        packed=packed[0] if packed else None,
        packed_leaf_row=leaf_row[packed[1]] if packed else None,
        slots=slots,
        nan_true=np.repeat(nan_true, 2) if nan_true.any() else None,
        membership=membership,
        roots=ordered_roots,
        alive=alive,
        leaf_row=leaf_row,
        n_leaves=len(leaf_at),
        single_mode=single,
        exact32=exact32,
        max_feature=max_feature,
    )


def _pack(
    feature: np.ndarray,
    thr32: np.ndarray,
    false_child: np.ndarray,
    true_child: np.ndarray,
    is_leaf: np.ndarray,
    roots: np.ndarray,
    mode: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Renumber the nodes breadth first, each node's two children side by side.

    Returns the records (see _Forest) and the renumbered-to-original node map, or None when
    a node is reached twice (not a forest of trees), which the general layout handles. Roots
    become 0..trees-1, in the given order. A leaf's record compares against NaN, false for
    every mode but BRANCH_NEQ, and points at itself (one before itself for NEQ).
    """
    n = len(is_leaf)
    old = [roots]
    first = np.full(n, -1, dtype=np.int64)
    frontier, size = roots, len(roots)
    while len(frontier):
        inner = frontier[~is_leaf[frontier]]
        first[inner] = size + 2 * np.arange(len(inner), dtype=np.int64)
        frontier = np.stack([false_child[inner], true_child[inner]], axis=1).ravel()
        old.append(frontier)
        size += len(frontier)
        if size > n:
            return None
    old_of = np.concatenate(old)
    del old, frontier
    # Filled column by column, leaves patched afterwards: few temporaries the forest's size.
    packed = np.zeros((len(old_of), 4), dtype=np.int32)
    packed[:, 0] = feature.take(old_of)
    packed[:, 1] = thr32.view(np.int32).take(old_of)
    _first_of(packed)[:] = first.take(old_of)
    del first
    leaf = np.flatnonzero(is_leaf.take(old_of))
    packed[leaf, 0] = 0
    packed[leaf, 1] = np.array([np.nan], dtype=np.float32).view(np.int32)[0]
    _first_of(packed)[leaf] = leaf - (mode == NEQ)
    return packed, old_of


def _first_of(records: np.ndarray) -> np.ndarray:
    """The int64 ``first child`` field of packed records (int32 columns 2 and 3), a view."""
    return records[:, 2:].view(np.int64)[:, 0]


def _tree_depths(
    false_child: np.ndarray, true_child: np.ndarray, is_leaf: np.ndarray, roots: np.ndarray
) -> np.ndarray:
    """Longest root-to-leaf path of each tree, walking all trees level by level.

    A node reached twice in one level (shared children) is walked once; a path longer than
    the node count means a cycle, an error.
    """
    n = len(is_leaf)
    depth = np.zeros(len(roots), dtype=np.int64)
    node = np.asarray(roots, dtype=np.int64)
    tree = np.arange(len(roots), dtype=np.int64)
    level = 0
    while True:
        keep = ~is_leaf[node]
        node, tree = node[keep], tree[keep]
        if len(node) == 0:
            return depth
        level += 1
        if level > n:
            raise ValueError("the tree structure has a cycle")
        depth[tree] = level
        node = np.concatenate([false_child[node], true_child[node]])
        tree = np.concatenate([tree, tree])
        if len(node) > n:  # only a DAG grows past the node count: dedupe
            key = np.unique(tree * n + node)
            tree, node = key // n, key % n


# -- traversal -------------------------------------------------------------------------------
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


# -- leaf votes ------------------------------------------------------------------------------
class _Votes:
    """Aggregates the weights of the reached leaves into [N, targets] float64 scores.

    The dense table is reduced over the trees in order, one row of the batch per column
    (``reduce`` along axis 1 of [targets, trees, rows]): a row's score does not depend on the
    batch it came in.
    """

    def __init__(
        self,
        n_leaves: int,
        n_targets: int,
        rows: np.ndarray,
        targets: np.ndarray,
        weights: np.ndarray,
        function: str,
        n_trees: int,
    ) -> None:
        if len(targets) and (targets.min() < 0 or targets.max() >= n_targets):
            raise ValueError(f"a leaf target id is outside [0, {n_targets})")
        self.n_targets = n_targets
        self.function = function
        self.n_trees = n_trees
        self.dense = n_leaves * n_targets <= _DENSE_LIMIT
        weights = weights.astype(np.float64)
        if self.dense:
            # Stored [targets, leaves] so each target's votes are one contiguous row.
            table = self._dense(n_leaves, n_targets, rows, targets, weights, function)
            self.table = np.ascontiguousarray(table.T)
        else:
            order = np.argsort(rows, kind="stable")
            self.targets = targets[order]
            self.weights = weights[order]
            self.counts = np.bincount(rows, minlength=n_leaves).astype(np.int64)
            self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    @staticmethod
    def _dense(n_leaves, n_targets, rows, targets, weights, function) -> np.ndarray:
        if function in ("SUM", "AVERAGE"):
            table = np.zeros((n_leaves, n_targets), dtype=np.float64)
            np.add.at(table, (rows, targets), weights)
        elif function == "MIN":
            table = np.full((n_leaves, n_targets), np.inf)
            np.minimum.at(table, (rows, targets), weights)
        else:
            table = np.full((n_leaves, n_targets), -np.inf)
            np.maximum.at(table, (rows, targets), weights)
        return table

    def __call__(self, leaves: np.ndarray) -> np.ndarray:
        """Scores [N, targets] from the leaf rows reached, ``leaves`` [trees, N]."""
        n_trees, n_rows = leaves.shape
        fill = {"MIN": np.inf, "MAX": -np.inf}.get(self.function, 0.0)
        out = np.full((n_rows, self.n_targets), fill)
        if leaves.size:
            step = max(1, _GATHER_CELLS // max(1, n_trees * self.n_targets))
            for start in range(0, n_rows, step):
                chunk = leaves[:, start : start + step]
                part = out[start : start + step]
                if self.dense:
                    self._reduce_dense(part, chunk)
                else:
                    self._reduce_sparse(part, chunk.T)
        if self.function in ("MIN", "MAX"):
            out[np.isinf(out)] = 0.0
        elif self.function == "AVERAGE" and self.n_trees:
            out /= self.n_trees
        return out

    def _reduce_dense(self, out: np.ndarray, chunk: np.ndarray) -> None:
        # One gather for all targets, [targets, trees, rows], reduced tree after tree.
        reduce = {"MIN": np.minimum, "MAX": np.maximum}.get(self.function, np.add)
        out[...] = reduce.reduce(self.table.take(chunk, axis=1), axis=1).T

    def _reduce_sparse(self, out: np.ndarray, chunk: np.ndarray) -> None:
        flat = chunk.ravel()  # row-major: a row's trees in order
        counts = self.counts[flat]
        total = int(counts.sum())
        if total == 0:
            return
        row = np.repeat(np.arange(chunk.shape[0], dtype=np.int64), chunk.shape[1])
        row = np.repeat(row, counts)
        first = np.repeat(self.starts[flat] - (np.cumsum(counts) - counts), counts)
        entry = first + np.arange(total, dtype=np.int64)
        cell = row * self.n_targets + self.targets[entry]
        w = self.weights[entry]
        flat_out = out.reshape(-1)
        if self.function in ("SUM", "AVERAGE"):
            flat_out += np.bincount(cell, weights=w, minlength=flat_out.size)
        elif self.function == "MIN":
            np.minimum.at(flat_out, cell, w)
        else:
            np.maximum.at(flat_out, cell, w)


class _AllNodes:
    """Small batches of a small forest: every node's condition at once, then pointer jumping.

    A step of the walk is ``next[node] = first[node] + cond[node]`` (leaves point at
    themselves). With the condition of every node computed for the batch in three calls,
    ``next`` composed with itself ``k`` times moves ``2**k`` levels, so a forest of depth
    ``d`` needs ``ceil(log2(d))`` gathers whatever its shape; with several rows, when
    ``d`` small gathers from the roots cost less than those big ones, the roots follow
    ``next`` level by level instead. The reached leaves' votes are one gather and one
    reduction. The cost grows with rows x nodes, so it serves only
    while that stays small (see ``_ALL_NODES_NODES``). Votes are reduced in the same order
    and layout as ``_Votes``, so results are bit-identical to the level walk.
    """

    def __init__(self, forest: _Forest, votes: _Votes) -> None:
        packed = forest.packed
        m = len(packed)
        self.m = m
        self.n_trees = forest.n_trees
        self.feature = packed[:, 0].astype(np.intp)
        self.threshold = np.ascontiguousarray(packed[:, 1]).view(np.float32)
        self.first = _first_of(packed).astype(np.intp)
        self.ufunc = _UFUNCS[forest.single_mode]
        self.jumps = max(0, (forest.depth - 1).bit_length())
        rows = forest.packed_leaf_row
        at = np.flatnonzero(rows >= 0)
        # Votes per packed node, [targets, nodes]; interior nodes are never gathered.
        self.table = np.zeros((votes.n_targets, m), dtype=np.float64)
        self.table[:, at] = votes.table[:, rows[at]]
        self.reduce = {"MIN": np.minimum, "MAX": np.maximum}.get(votes.function, np.add)
        self.function = votes.function
        self.depth = forest.depth
        self._rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

    def _row_tables(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``first`` shifted to each row's block of the flattened [n, nodes] table, the row
        starts, and the roots [trees, n] to walk from (None: jump instead); cached per batch
        size (small batches only)."""
        tables = self._rows.get(n)
        if tables is None:
            base = np.arange(n, dtype=np.intp) * self.m
            roots = None
            # Per call ~0.5 us plus ~1 ns per element gathered.
            walk = self.depth * (500 + self.n_trees * n)
            jump = self.jumps * (500 + self.m * n)
            if walk < jump:
                roots = np.arange(self.n_trees, dtype=np.intp)[:, None] + base
            tables = self._rows[n] = (self.first + base[:, None], base, roots)
        return tables

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores [N, targets] of ``x`` [N, F] (C-contiguous)."""
        n = len(x)
        if n == 1:
            nxt = np.add(self.first, self.ufunc(x.take(self.feature), self.threshold))
            for _ in range(self.jumps):
                nxt = nxt.take(nxt)
            leaves = nxt[: self.n_trees, None]
        else:
            first, base, roots = self._row_tables(n)
            cond = self.ufunc(x.take(self.feature, axis=1), self.threshold)
            nxt = np.add(first, cond)
            if roots is None:
                for _ in range(self.jumps):
                    nxt = nxt.take(nxt)
                leaves = np.subtract(nxt[:, : self.n_trees], base[:, None]).T
            else:
                leaves = roots
                for _ in range(self.depth):
                    leaves = nxt.take(leaves)
                leaves -= base
        # The same gather and reduction as _Votes._reduce_dense (bit-identical scores).
        scores = self.reduce.reduce(self.table.take(leaves, axis=1), axis=1).T
        return _finish_votes(scores, self.function, self.n_trees)


def _finish_votes(scores: np.ndarray, function: str, n_trees: int) -> np.ndarray:
    """MIN/MAX targets no leaf voted for score 0; AVERAGE divides by the tree count."""
    if function in ("MIN", "MAX"):
        scores[np.isinf(scores)] = 0.0
    elif function == "AVERAGE" and n_trees:
        scores /= n_trees
    return scores


class _OneRow:
    """One row through a big packed forest: the level walk with nothing else around it.

    Same steps as ``_walk_packed`` for a single row (no offsets), then the votes gathered and
    reduced as ``_Votes._reduce_dense`` does, so the scores are bit-identical to a batch's.
    """

    def __init__(self, forest: _Forest, votes: _Votes) -> None:
        self.packed = forest.packed
        self.ufunc = _UFUNCS[forest.single_mode]
        self.n_trees = forest.n_trees
        self.alive = forest.alive
        self.leaf_row = forest.packed_leaf_row
        self.table = votes.table
        self.reduce = {"MIN": np.minimum, "MAX": np.maximum}.get(votes.function, np.add)
        self.function = votes.function

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = self.n_trees
        node = np.arange(n, dtype=np.intp)
        buf = np.empty((n, 4), dtype=np.int32)
        cond = np.empty(n, dtype=bool)
        packed, ufunc, add = self.packed, self.ufunc, np.add
        last = -1
        for k in self.alive:
            if k != last:  # the views change only when trees finish
                cur, rec, c = node[:k], buf[:k], cond[:k]
                feat, thr, first = rec[:, 0], rec[:, 1].view(np.float32), _first_of(rec)
                last = k
            packed.take(cur, 0, rec, "clip")
            ufunc(x.take(feat), thr, c)
            add(first, c, cur)
        leaves = self.leaf_row.take(node)[:, None]
        scores = self.reduce.reduce(self.table.take(leaves, axis=1), axis=1).T
        return _finish_votes(scores, self.function, n)


def _bit_forest(forest: _Forest) -> _tree_bits.BitForest | None:
    """Bit-mask leaf finding (``_tree_bits``) for a packed forest of one ordered comparison."""
    mode = forest.single_mode
    if forest.packed is None or mode not in (LEQ, LT, GTE, GT) or forest.n_trees == 0:
        return None
    packed = forest.packed
    try:
        return _tree_bits.BitForest(
            packed[:, 0],
            np.ascontiguousarray(packed[:, 1]).view(np.float32),
            _first_of(packed),
            forest.packed_leaf_row,
            forest.n_trees,
            strict=mode in (LT, GT),
            negate=mode in (GTE, GT),
        )
    except ValueError:  # too big for its tables, a tree of over 64 leaves, a NaN threshold
        return None


def _all_nodes(forest: _Forest, votes: _Votes) -> _AllNodes | None:
    """The all-nodes evaluator when the forest is small enough for it to pay off."""
    if forest.packed is None or not votes.dense or len(forest.packed) > _ALL_NODES_NODES:
        return None
    return _AllNodes(forest, votes)


class _Runner:
    """Scores of a compiled forest: input checks and the choice of evaluation per call."""

    def __init__(
        self, forest: _Forest, votes: _Votes, threads: int, input_dtype: np.dtype | None = None
    ) -> None:
        self.forest = forest
        self.votes = votes
        self.threads = threads
        self.dtype = np.dtype(np.float32 if forest.exact32 else np.float64)
        self.min_features = forest.max_feature + 1 if forest.n_trees else 0
        nodes = len(forest.leaf_row)
        big = forest.n_trees * forest.depth >= _JIT_MIN_WALK and nodes >= _JIT_MIN_NODES
        jit = _jit_module() if big else None
        self.jit = None
        if jit is not None:
            # Compiled for the features' dtype the model's input gives (see _features).
            dtype = self.dtype
            if input_dtype is not None and np.dtype(input_dtype) != np.float32:
                dtype = np.dtype(np.float64)
            self.jit = jit.JitForest(forest, votes, (dtype,))
            return
        self.bits = _bit_forest(forest)
        # About 5 ns per (row, tree, level) step of the level walk, measured on 2 cores.
        if self.bits is not None and self.bits.cost_per_row >= 5 * sum(forest.alive):
            self.bits = None
        self.small = _all_nodes(forest, votes)
        # Below this many rows the all-nodes evaluation is used.
        self.small_rows = (
            0 if self.small is None else max(1, _ALL_NODES_CELLS // max(1, self.small.m))
        )
        self.one_row = None
        if self.small is None and forest.packed is not None and votes.dense:
            self.one_row = _OneRow(forest, votes)
        self.no_nan_check = forest.nan_true is None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores [N, targets] (float64) of a numeric input, rows along axis 0."""
        if not (
            x.__class__ is np.ndarray
            and x.dtype == self.dtype
            and x.ndim == 2
            and x.flags.c_contiguous
            and x.shape[1] >= self.min_features
        ):
            x = _features(self.forest, _legacy_input(x))
        if self.jit is not None:
            return self._jit_scores(x)
        n = len(x)
        if 0 < n <= self.small_rows and (self.no_nan_check or not np.isnan(x).any()):
            return self.small(x)
        if n == 1 and self.one_row is not None and (self.no_nan_check or not np.isnan(x).any()):
            return self.one_row(x)
        if self.bits is not None and (self.no_nan_check or not np.isnan(x).any()):
            return _scores(self.forest, self.votes, x, self.threads, self.bits.leaves)
        return _scores(self.forest, self.votes, x, self.threads)

    def _jit_scores(self, x: np.ndarray) -> np.ndarray:
        """The compiled walk, its rows split over threads when the batch is big enough."""
        n = len(x)
        pairs = n * self.forest.n_trees
        parts = min(self.threads, kernel_threads(), pairs // _JIT_PAIRS_PER_THREAD)
        if parts <= 1:
            return self.jit(x)
        out = np.empty((n, self.votes.n_targets))
        bounds = np.linspace(0, n, parts + 1).astype(int).tolist()
        fill = self.jit.fill
        jobs = [
            worker_pool().submit(fill, x[a:b], out[a:b])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        for job in jobs:
            job.result()
        return out


_WALKED_AS_FLOAT32 = frozenset(
    (
        TensorProto.FLOAT,
        TensorProto.FLOAT16,
        TensorProto.BFLOAT16,
        TensorProto.FLOAT8E4M3FN,
        TensorProto.FLOAT8E4M3FNUZ,
        TensorProto.FLOAT8E5M2,
        TensorProto.FLOAT8E5M2FNUZ,
    )
)


def _input_dtype(info: NodeInfo | None) -> np.dtype | None:
    """The dtype the features reach the walk in, from the node's input type (None: unknown):
    float32 for float (and narrower floats), float64 for double and integers."""
    types = getattr(info, "input_types", None)
    tensor = getattr(types[0], "tensor_type", None) if types else None
    elem = getattr(tensor, "elem_type", 0)
    if not elem:
        return None
    return np.dtype(np.float32 if elem in _WALKED_AS_FLOAT32 else np.float64)


def _scores(
    forest: _Forest,
    votes: _Votes,
    x: np.ndarray,
    threads: int,
    leaves_of: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Aggregated votes [N, targets] of the rows of ``x`` [N, F], over up to ``threads``;
    ``leaves_of`` finds the leaves (default: the level walk, ``_leaves``)."""
    x = _features(forest, x)
    if leaves_of is None:
        leaves_of = partial(_leaves, forest)
    n_rows = len(x)
    parts = min(threads, kernel_threads(), n_rows * forest.n_trees // _PAIRS_PER_THREAD)
    if parts <= 1:
        return votes(leaves_of(x))
    bounds = np.linspace(0, n_rows, parts + 1).astype(int)
    jobs = [
        worker_pool().submit(lambda a, b: votes(leaves_of(x[a:b])), a, b)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return np.concatenate([job.result() for job in jobs])


# -- legacy (opsets 1 and 3) node encoding -----------------------------------------------------
class _NodeIndex:
    """Maps (tree id, node id) pairs to positions in the nodes_* attributes.

    Keys are ``tree * span + node``; when they are compact (the usual numbering, node ids
    0..k-1 per tree) a dense key -> position table answers with one gather, else a sorted
    key array with binary search.
    """

    def __init__(self, tree: np.ndarray, node: np.ndarray) -> None:
        self.tmin = int(tree.min(initial=0))
        self.nmin = int(node.min(initial=0))
        self.span = int(node.max(initial=0)) - self.nmin + 1
        keys = self._keys(tree, node)
        n_keys = int(keys.max(initial=-1)) + 1
        self.table: np.ndarray | None = None
        if n_keys <= 4 * len(keys) + 1024:
            self.table = np.full(n_keys, -1, dtype=np.int64)
            self.table[keys] = np.arange(len(keys), dtype=np.int64)
            if int(np.count_nonzero(self.table >= 0)) != len(keys):
                raise ValueError("a (tree id, node id) pair appears twice in nodes_*")
            return
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]
        if len(keys) > 1 and (np.diff(self.sorted) == 0).any():
            raise ValueError("a (tree id, node id) pair appears twice in nodes_*")

    def _keys(self, tree: np.ndarray, node: np.ndarray) -> np.ndarray:
        return (tree.astype(np.int64) - self.tmin) * self.span + (node.astype(np.int64) - self.nmin)

    def find(self, tree: np.ndarray, node: np.ndarray, what: str) -> np.ndarray:
        tree = np.asarray(tree, dtype=np.int64)
        node = np.asarray(node, dtype=np.int64)
        keys = self._keys(tree, node)
        ok = (node >= self.nmin) & (node < self.nmin + self.span) & (tree >= self.tmin)
        if self.table is not None:
            ok &= keys < len(self.table)
            pos = self.table[np.where(ok, keys, 0)] if len(self.table) else np.zeros_like(keys)
            ok &= pos >= 0
        elif len(self.sorted):
            pos = np.minimum(np.searchsorted(self.sorted, keys), len(self.sorted) - 1)
            ok &= self.sorted[pos] == keys
            pos = self.order[pos]
        else:
            pos = np.zeros(len(keys), dtype=np.int64)
            ok[:] = False
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(
                f"{what} refers to node {int(node[bad])} of tree {int(tree[bad])}, "
                "which nodes_* does not define"
            )
        return pos


def _given(values: Sequence | np.ndarray | None) -> Sequence | np.ndarray | None:
    """An optional list/array attribute, None when absent or empty."""
    return None if values is None or len(values) == 0 else values


def _same_length(what: str, **arrays: Sequence | None) -> int:
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{what} attributes differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def _legacy_forest(
    *,
    treeids: Sequence[int] | None,
    nodeids: Sequence[int] | None,
    featureids: Sequence[int] | None,
    values: np.ndarray | None,
    modes: Sequence[str] | None,
    truenodeids: Sequence[int] | None,
    falsenodeids: Sequence[int] | None,
    missing: Sequence[int] | None,
) -> tuple[_Forest, _NodeIndex]:
    """Compile the nodes_* attributes of TreeEnsembleClassifier/Regressor."""
    for name, v in (("nodes_treeids", treeids), ("nodes_nodeids", nodeids), ("nodes_modes", modes)):
        if v is None:
            raise ValueError(f"attribute {name} is required")
    n = _same_length(
        "nodes_*",
        nodes_treeids=treeids,
        nodes_nodeids=nodeids,
        nodes_featureids=featureids,
        nodes_values=values,
        nodes_modes=modes,
        nodes_truenodeids=truenodeids,
        nodes_falsenodeids=falsenodeids,
        nodes_missing_value_tracks_true=_given(missing),
    )
    tree = np.asarray(treeids, dtype=np.int64)
    index = _NodeIndex(tree, np.asarray(nodeids, dtype=np.int64))
    try:
        mode = np.fromiter(map(_MODE_NAMES.__getitem__, modes), np.uint8, count=n)
    except KeyError as e:
        raise ValueError(f"unknown node mode {e.args[0]!r}") from None
    interior = np.flatnonzero(mode != LEAF)
    if len(interior) and (truenodeids is None or falsenodeids is None or featureids is None):
        raise ValueError(
            "branch nodes need nodes_featureids, nodes_truenodeids, nodes_falsenodeids"
        )
    true_child = np.arange(n, dtype=np.int64)
    false_child = np.arange(n, dtype=np.int64)
    if len(interior):
        tid = tree[interior]
        true_child[interior] = index.find(
            tid, np.asarray(truenodeids, dtype=np.int64)[interior], "nodes_truenodeids"
        )
        false_child[interior] = index.find(
            tid, np.asarray(falsenodeids, dtype=np.int64)[interior], "nodes_falsenodeids"
        )
    feature = np.asarray(featureids if featureids is not None else [0] * n, dtype=np.int64)
    threshold = values if values is not None else np.zeros(n)
    referenced = np.zeros(n, dtype=bool)
    referenced[true_child[interior]] = True
    referenced[false_child[interior]] = True
    free = np.flatnonzero(~referenced)
    trees, first = np.unique(tree[free], return_index=True)
    if len(trees) != len(np.unique(tree)):
        raise ValueError("a tree has no root (every node is some node's child)")
    roots = free[first]
    miss = np.asarray(missing, dtype=bool) if _given(missing) is not None else None
    return _forest(feature, threshold, mode, true_child, false_child, miss, roots), index


def _legacy_votes(
    forest: _Forest,
    index: _NodeIndex,
    treeids: Sequence[int] | None,
    nodeids: Sequence[int] | None,
    ids: Sequence[int] | None,
    weights: np.ndarray | None,
    n_targets: int,
    function: str,
    prefix: str,
) -> _Votes:
    """The leaf vote table from class_* / target_* attributes."""
    _same_length(
        f"{prefix}_*",
        **{
            f"{prefix}_treeids": treeids,
            f"{prefix}_nodeids": nodeids,
            f"{prefix}_ids": ids,
            f"{prefix}_weights": weights,
        },
    )
    if treeids is None or len(treeids) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Votes(forest.n_leaves, n_targets, empty, empty, empty, function, forest.n_trees)
    if nodeids is None or ids is None or weights is None:
        raise ValueError(f"{prefix}_treeids needs {prefix}_nodeids, {prefix}_ids and weights")
    node = index.find(np.asarray(treeids), np.asarray(nodeids), f"{prefix}_nodeids")
    rows = forest.leaf_row[node]
    keep = rows >= 0  # votes on branch nodes are never reached
    targets = np.asarray(ids, dtype=np.int64)
    return _Votes(
        forest.n_leaves,
        n_targets,
        rows[keep],
        targets[keep],
        np.asarray(weights, dtype=np.float64)[keep],
        function,
        forest.n_trees,
    )


def _legacy_input(x: np.ndarray) -> np.ndarray:
    x = as_rows(np.asarray(x))
    if x.dtype.kind not in "fiu":
        raise TypeError(f"tree ensembles take numeric input, got {x.dtype}")
    return x


def _aggregate_name(value: str | int) -> str:
    if isinstance(value, int):
        if not 0 <= value < len(_AGGREGATES):
            raise ValueError(f"aggregate_function {value} is not one of 0..3")
        return _AGGREGATES[value]
    if value not in _AGGREGATES:
        raise ValueError(f"aggregate_function '{value}' is not one of {list(_AGGREGATES)}")
    return value


# -- TreeEnsembleClassifier -------------------------------------------------------------------
@register("TreeEnsembleClassifier", since=(1, 3, 5), domain=ML, factory=True, array_attributes=True)
def tree_ensemble_classifier(
    info: NodeInfo,
    *,
    base_values=None,
    base_values_as_tensor=None,
    class_ids=None,
    class_nodeids=None,
    class_treeids=None,
    class_weights=None,
    class_weights_as_tensor=None,
    classlabels_int64s=None,
    classlabels_strings=None,
    nodes_falsenodeids=None,
    nodes_featureids=None,
    nodes_hitrates=None,
    nodes_hitrates_as_tensor=None,
    nodes_missing_value_tracks_true=None,
    nodes_modes=None,
    nodes_nodeids=None,
    nodes_treeids=None,
    nodes_truenodeids=None,
    nodes_values=None,
    nodes_values_as_tensor=None,
    post_transform="NONE",
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Votes summed per class; label = best class (binary single-column: see _binary_scores)."""
    labels = class_labels(classlabels_strings, classlabels_int64s)
    post = post_transform_code(post_transform)
    forest, index = _legacy_forest(
        treeids=nodes_treeids,
        nodeids=nodes_nodeids,
        featureids=nodes_featureids,
        values=floats_attr(nodes_values, nodes_values_as_tensor),
        modes=nodes_modes,
        truenodeids=nodes_truenodeids,
        falsenodeids=nodes_falsenodeids,
        missing=nodes_missing_value_tracks_true,
    )
    weights = floats_attr(class_weights, class_weights_as_tensor)
    ids = np.asarray(class_ids if class_ids is not None else [], dtype=np.int64)
    n_classes = len(labels)
    used = np.unique(ids)
    binary = n_classes == 2 and len(used) == 1
    base = floats_attr(base_values, base_values_as_tensor)
    if binary:
        # One column of votes for a two-class problem: it scores the second class.
        column = np.zeros_like(ids)
        votes = _legacy_votes(
            forest, index, class_treeids, class_nodeids, column, weights, 1, "SUM", "class"
        )
        positive = weights is None or bool(np.all(weights >= 0))
        offset = 0.0
        if base is not None and len(base):
            offset = float(base[0] if len(base) == 1 else base[min(int(used[0]), len(base) - 1)])
    else:
        votes = _legacy_votes(
            forest, index, class_treeids, class_nodeids, ids, weights, n_classes, "SUM", "class"
        )
        if base is not None and len(base) not in (0, n_classes):
            raise ValueError(f"base_values has {len(base)} values for {n_classes} classes")

    scores_of = _Runner(forest, votes, kernel_threads(), _input_dtype(info))
    has_base = base is not None and len(base) > 0

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = scores_of(x)
        if binary:
            s = scores[:, 0]
            return _binary_scores(s + offset if offset else s, labels, positive, post)
        if has_base:
            scores = scores + base
        label = labels.take(scores.argmax(axis=1)) if len(scores) else labels[:0]
        if post != "NONE":
            scores = apply_post(scores, post)
        return label, scores.astype(np.float32)

    return run


def _binary_scores(
    s: np.ndarray, labels: np.ndarray, positive: bool, post: str
) -> tuple[np.ndarray, np.ndarray]:
    """Two-class output from one score column ``s`` (the second class's score).

    As onnxruntime does: when every vote weight is non-negative the score is a probability
    (label 1 when s > 0.5, columns [1 - s, s]); otherwise it is a margin (label 1 when s > 0,
    columns [-s, s]). LOGISTIC maps the margin pair [-s, s]; SOFTMAX and SOFTMAX_ZERO leave
    the pair as is.
    """
    label = labels.take(np.greater(s, 0.5 if positive else 0.0).view(np.uint8))
    if post == "NONE":
        z = np.empty((len(s), 2), dtype=np.float32)
        z[:, 0] = 1.0 - s if positive else -s
        z[:, 1] = s
        return label, z
    if post == "LOGISTIC":
        z = apply_post(np.stack([-s, s], axis=1), "LOGISTIC")
    else:
        z = np.stack([1.0 - s if positive else -s, s], axis=1)
        if post == "PROBIT":
            z = apply_post(z, "PROBIT")
    return label, z.astype(np.float32)


# -- TreeEnsembleRegressor --------------------------------------------------------------------
@register("TreeEnsembleRegressor", since=(1, 3, 5), domain=ML, factory=True, array_attributes=True)
def tree_ensemble_regressor(
    info: NodeInfo,
    *,
    aggregate_function="SUM",
    base_values=None,
    base_values_as_tensor=None,
    n_targets=None,
    nodes_falsenodeids=None,
    nodes_featureids=None,
    nodes_hitrates=None,
    nodes_hitrates_as_tensor=None,
    nodes_missing_value_tracks_true=None,
    nodes_modes=None,
    nodes_nodeids=None,
    nodes_treeids=None,
    nodes_truenodeids=None,
    nodes_values=None,
    nodes_values_as_tensor=None,
    post_transform="NONE",
    target_ids=None,
    target_nodeids=None,
    target_treeids=None,
    target_weights=None,
    target_weights_as_tensor=None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Votes aggregated per target, then base values, then the post-transform; float32 out."""
    function = _aggregate_name(aggregate_function)
    post = post_transform_code(post_transform)
    forest, index = _legacy_forest(
        treeids=nodes_treeids,
        nodeids=nodes_nodeids,
        featureids=nodes_featureids,
        values=floats_attr(nodes_values, nodes_values_as_tensor),
        modes=nodes_modes,
        truenodeids=nodes_truenodeids,
        falsenodeids=nodes_falsenodeids,
        missing=nodes_missing_value_tracks_true,
    )
    ids = np.asarray(target_ids if target_ids is not None else [], dtype=np.int64)
    if n_targets is None:
        n_targets = int(ids.max()) + 1 if len(ids) else 1
    weights = floats_attr(target_weights, target_weights_as_tensor)
    votes = _legacy_votes(
        forest, index, target_treeids, target_nodeids, ids, weights, n_targets, function, "target"
    )
    base = floats_attr(base_values, base_values_as_tensor)
    if base is not None and len(base) not in (0, n_targets):
        raise ValueError(f"base_values has {len(base)} values for {n_targets} targets")

    scores_of = _Runner(forest, votes, kernel_threads(), _input_dtype(info))
    has_base = base is not None and len(base) > 0

    def run(x: np.ndarray) -> np.ndarray:
        scores = scores_of(x)
        if has_base:
            scores = scores + base
        if post != "NONE":
            scores = apply_post(scores, post)
        return scores.astype(np.float32)

    return run


# -- TreeEnsemble (opset 5) -------------------------------------------------------------------
def _membership(modes: np.ndarray, values: np.ndarray | None) -> _Membership | None:
    """Split membership_values at NaNs: one set per BRANCH_MEMBER node, in node order."""
    members = np.flatnonzero(modes == MEMBER)
    if len(members) == 0:
        return None
    if values is None:
        raise ValueError("BRANCH_MEMBER nodes need the membership_values attribute")
    values = np.asarray(values, dtype=np.float64).ravel()
    cut = np.flatnonzero(np.isnan(values))
    bounds = np.concatenate([[-1], cut, [len(values)]])
    sets = [values[a + 1 : b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if len(sets) and len(sets[-1]) == 0 and len(cut) and cut[-1] == len(values) - 1:
        sets.pop()  # a trailing NaN closes the last set
    if len(sets) < len(members):
        raise ValueError(
            f"membership_values holds {len(sets)} sets for {len(members)} BRANCH_MEMBER nodes"
        )
    slot = np.full(len(modes), -1, dtype=np.int64)
    slot[members] = np.arange(len(members))
    all_values = np.unique(np.concatenate(sets[: len(members)] + [np.zeros(0)]))
    if len(all_values) == 0:
        all_values = np.array([np.nan])
    keys = [
        k * len(all_values) + np.searchsorted(all_values, s)
        for k, s in enumerate(sets[: len(members)])
    ]
    return _Membership(slot, all_values, np.unique(np.concatenate(keys + [np.zeros(0, np.int64)])))


@register("TreeEnsemble", since=5, domain=ML, factory=True, array_attributes=True)
def tree_ensemble(
    info: NodeInfo,
    *,
    aggregate_function=1,
    leaf_targetids=None,
    leaf_weights=None,
    membership_values=None,
    n_targets=None,
    nodes_falseleafs=None,
    nodes_falsenodeids=None,
    nodes_featureids=None,
    nodes_hitrates=None,
    nodes_missing_value_tracks_true=None,
    nodes_modes=None,
    nodes_splits=None,
    nodes_trueleafs=None,
    nodes_truenodeids=None,
    post_transform=0,
    tree_roots=None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Interior nodes in nodes_*, leaves in leaf_*; the output keeps the input's float type."""
    required = {
        "leaf_targetids": leaf_targetids,
        "leaf_weights": leaf_weights,
        "nodes_falseleafs": nodes_falseleafs,
        "nodes_falsenodeids": nodes_falsenodeids,
        "nodes_featureids": nodes_featureids,
        "nodes_modes": nodes_modes,
        "nodes_splits": nodes_splits,
        "nodes_trueleafs": nodes_trueleafs,
        "nodes_truenodeids": nodes_truenodeids,
        "tree_roots": tree_roots,
    }
    missing_attrs = [k for k, v in required.items() if v is None]
    if missing_attrs:
        raise ValueError(f"TreeEnsemble needs the attributes {missing_attrs}")
    function = _aggregate_name(int(aggregate_function))
    post = post_transform_code(int(post_transform))
    modes = np.asarray(nodes_modes).astype(np.int64).ravel()
    splits = np.asarray(nodes_splits).ravel()
    n_int = _same_length(
        "nodes_*",
        nodes_modes=modes,
        nodes_splits=splits,
        nodes_featureids=nodes_featureids,
        nodes_truenodeids=nodes_truenodeids,
        nodes_trueleafs=nodes_trueleafs,
        nodes_falsenodeids=nodes_falsenodeids,
        nodes_falseleafs=nodes_falseleafs,
        nodes_missing_value_tracks_true=_given(nodes_missing_value_tracks_true),
    )
    weights = np.asarray(leaf_weights).ravel()
    n_leaf = _same_length("leaf_*", leaf_targetids=leaf_targetids, leaf_weights=weights)
    if ((modes < 0) | (modes > MEMBER)).any():
        raise ValueError("nodes_modes values must be in 0..6")
    leaves = np.arange(n_int, n_int + n_leaf, dtype=np.int64)
    true_child = _child(nodes_truenodeids, nodes_trueleafs, n_int, n_leaf, "true")
    false_child = _child(nodes_falsenodeids, nodes_falseleafs, n_int, n_leaf, "false")
    true_child = np.concatenate([true_child, leaves])
    false_child = np.concatenate([false_child, leaves])
    roots = np.asarray(tree_roots, dtype=np.int64)
    if len(roots) and (roots.min() < 0 or roots.max() >= n_int):
        raise ValueError("tree_roots must index nodes_*")
    mode = np.concatenate([modes, np.full(n_leaf, LEAF)]).astype(np.uint8)
    missing = None
    if _given(nodes_missing_value_tracks_true) is not None:
        missing = np.concatenate(
            [np.asarray(nodes_missing_value_tracks_true, bool), np.zeros(n_leaf, bool)]
        )
    forest = _forest(
        np.concatenate([np.asarray(nodes_featureids, np.int64), np.zeros(n_leaf, np.int64)]),
        np.concatenate([splits.astype(np.float64), np.zeros(n_leaf)]),
        mode,
        true_child,
        false_child,
        missing,
        roots,
        _membership(mode, membership_values),
    )
    targets = np.asarray(leaf_targetids, dtype=np.int64)
    if n_targets is None:
        n_targets = int(targets.max()) + 1 if len(targets) else 1
    votes = _Votes(
        n_leaf, int(n_targets), np.arange(n_leaf), targets, weights, function, len(roots)
    )

    scores_of = _Runner(forest, votes, kernel_threads(), _input_dtype(info))

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"TreeEnsemble takes float input, got {x.dtype}")
        rows = as_rows(x)
        if rows.dtype.itemsize < 4:
            rows = rows.astype(np.float32)
        scores = scores_of(rows)
        if post != "NONE":
            scores = apply_post(scores, post)
        return scores.astype(x.dtype)

    return run


def _child(ids, leafs, n_int: int, n_leaf: int, side: str) -> np.ndarray:
    """Global index of each node's child: interior nodes first, then the leaves."""
    ids = np.asarray(ids, dtype=np.int64)
    is_leaf = np.asarray(leafs, dtype=bool)
    limit = np.where(is_leaf, n_leaf, n_int)
    if len(ids) and ((ids < 0) | (ids >= limit)).any():
        raise ValueError(f"nodes_{side}nodeids has an index out of range")
    return np.where(is_leaf, ids + n_int, ids)


__all__ = ["tree_ensemble_classifier", "tree_ensemble_regressor", "tree_ensemble"]
