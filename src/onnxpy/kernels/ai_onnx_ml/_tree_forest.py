"""The flat forest the tree-ensemble kernels compile to, once per node.

Per node a feature, a threshold, a mode and a pair of children (a leaf points to itself):
``_forest`` builds the general layout (``_Slots``) and, when every interior node uses one
comparison on a float32 threshold, the packed 16-byte-record layout the fast walks read
(``_pack``); roots are ordered deepest tree first. Attribute decoding lives in ``trees.py``,
evaluation in ``_tree_eval.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxpy.kernels.ai_onnx_ml._common import sorted_unique

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
    branch_modes = sorted_unique(mode[interior])
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
            key = sorted_unique(tree * n + node)
            tree, node = key // n, key % n
