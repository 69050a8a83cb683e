"""Tree ensembles: TreeEnsembleClassifier, TreeEnsembleRegressor (opsets 1/3/5), TreeEnsemble (5).

All three compile, once per node, to one flat forest: per node a feature, a threshold, a mode
and a pair of children (a leaf points to itself), plus a table of leaf votes. A run walks every
(row, tree) pair at once, one depth level per step:

    node = children[2 * node + (x[row, feature[node]] <= threshold[node])]

so the cost is ``depth`` vectorized gathers over ``rows x trees`` indices, whatever the forest
shape. Rows are processed in blocks so the working arrays stay cache sized.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from onnxpy.kernels.ai_onnx_ml._common import (
    as_rows,
    class_labels,
    floats_attr,
    post_transform_code,
)
from onnxpy.kernels.ai_onnx_ml._common import post_transform as apply_post
from onnxpy.kernels.registry import NodeInfo, register

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

_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")  # TreeEnsemble numbers them 0..3

# A block walks (trees x rows) pairs at once: at most _PAIRS_PER_BLOCK pairs (memory), at
# least _MIN_PAIRS (NumPy call overhead), and trees whose nodes fit in about _CACHE_BYTES.
_PAIRS_PER_BLOCK = 1 << 16
_MIN_PAIRS = 1 << 12
_CACHE_BYTES = 1 << 20
_BYTES_PER_SLOT = 20  # feature (8) + threshold (4) + children (8)
# Leaf vote tables up to this many cells are dense [leaves, targets]; larger ones stay sparse.
_DENSE_LIMIT = 1 << 22
# Leaf rows ([trees, rows] cells) gathered at once per target when aggregating the votes.
_GATHER_CELLS = 1 << 21


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
class _Forest:
    """A compiled forest: flat node arrays over all trees plus each tree's root.

    Node ``i`` lives in two slots, ``2i`` and ``2i + 1``, of every per-node array, so a walker
    holding slot ``2i`` reaches the child for condition ``c`` with ``children[2i + c]`` (children
    are stored as slots too), without a multiply per step.
    """

    feature: np.ndarray  # int64 [2n]
    threshold: np.ndarray  # float64 [2n]
    threshold_f32: np.ndarray | None  # the same thresholds when all are exact in float32
    mode: np.ndarray  # uint8 [2n]
    children: np.ndarray  # int64 [2n]: slot 2i -> false child's slot, 2i+1 -> true child's
    nan_true: np.ndarray | None  # bool [2n]: a NaN goes to the true side; None if never
    membership: _Membership | None
    roots: np.ndarray  # int64 [trees], slots
    depth: int
    leaf_row: np.ndarray  # int64 [2n]: row in the leaf vote table, -1 for interior nodes
    n_leaves: int
    single_mode: int | None  # the one branch mode used by every interior node, if so
    max_feature: int

    @property
    def n_trees(self) -> int:
        return len(self.roots)


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
    """Assemble a forest from validated node arrays (leaves are nodes of mode LEAF)."""
    n = len(feature)
    is_leaf = mode == LEAF
    interior = ~is_leaf
    idx = np.arange(n, dtype=np.int64)
    children = np.empty(2 * n, dtype=np.int64)
    children[0::2] = 2 * np.where(is_leaf, idx, false_child)
    children[1::2] = 2 * np.where(is_leaf, idx, true_child)
    feature = np.where(is_leaf, 0, feature).astype(np.int64)
    if (feature < 0).any():
        raise ValueError("a tree node has a negative feature id")
    thr32 = threshold.astype(np.float32)
    exact32 = bool(np.array_equal(thr32.astype(np.float64), threshold, equal_nan=True))
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
    leaf_row = np.full(n, -1, dtype=np.int64)
    leaf_row[is_leaf] = np.arange(int(is_leaf.sum()), dtype=np.int64)
    if membership is not None:
        membership.slot = np.repeat(membership.slot, 2)
    return _Forest(
        feature=np.repeat(feature, 2),
        threshold=np.repeat(threshold, 2),
        threshold_f32=np.repeat(thr32, 2) if exact32 else None,
        mode=np.repeat(mode.astype(np.uint8), 2),
        children=children,
        nan_true=np.repeat(nan_true, 2) if nan_true.any() else None,
        membership=membership,
        roots=2 * roots.astype(np.int64),
        depth=_depth(children // 2, is_leaf, roots),
        leaf_row=np.repeat(leaf_row, 2),
        n_leaves=int(is_leaf.sum()),
        single_mode=single,
        max_feature=int(feature.max(initial=-1)),
    )


def _depth(children: np.ndarray, is_leaf: np.ndarray, roots: np.ndarray) -> int:
    """Longest root-to-leaf path, walking level by level (a cycle is an error)."""
    frontier = np.unique(roots)
    depth = 0
    while True:
        frontier = frontier[~is_leaf[frontier]]
        if len(frontier) == 0:
            return depth
        depth += 1
        if depth > len(is_leaf):
            raise ValueError("the tree structure has a cycle")
        frontier = np.unique(np.concatenate([children[2 * frontier], children[2 * frontier + 1]]))


# -- traversal -------------------------------------------------------------------------------
def _compare(forest: _Forest, slots: np.ndarray, x: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """The branch condition of each visited node for its row's feature value."""
    t = thr[slots]
    mode = forest.single_mode
    if mode == LEQ:
        return x <= t
    if mode == LT:
        return x < t
    if mode == GTE:
        return x >= t
    if mode == GT:
        return x > t
    if mode == EQ:
        return x == t
    if mode == NEQ:
        return x != t
    code = (x < t).view(np.uint8) + 2 * (x == t).view(np.uint8) + 4 * (x > t).view(np.uint8)
    modes = forest.mode[slots]
    cond = _TRUTH_FLAT[modes.astype(np.intp) * 8 + code]
    if forest.membership is not None:
        at = np.flatnonzero(modes == MEMBER)
        if len(at):
            cond[at] = forest.membership.contains(slots[at], x[at].astype(np.float64))
    return cond


def _walk(
    forest: _Forest,
    xflat: np.ndarray,
    thr: np.ndarray,
    roots: np.ndarray,
    rows: np.ndarray,
    check_nan: bool,
) -> np.ndarray:
    """Final slot of every (tree, row) pair of a block: [len(roots) * len(rows)], tree-major.

    Tree-major order keeps consecutive lookups inside one tree's nodes, which stay in cache.
    """
    slot = np.repeat(roots, len(rows))
    offset = np.tile(rows, len(roots))
    children, feature, nan_true = forest.children, forest.feature, forest.nan_true
    for _ in range(forest.depth):
        x = xflat[offset + feature[slot]]
        cond = _compare(forest, slot, x, thr)
        if check_nan:
            nan = np.isnan(x)
            if nan_true is not None:
                cond = np.where(nan, nan_true[slot], cond)
            else:
                cond &= ~nan
        slot = children[slot + cond]
    return slot


def _blocks(forest: _Forest, n_rows: int) -> tuple[int, int]:
    """Rows and trees per block (see _PAIRS_PER_BLOCK)."""
    row_block = min(max(1, n_rows), _PAIRS_PER_BLOCK)
    tree_bytes = _BYTES_PER_SLOT * len(forest.feature) / max(1, forest.n_trees)
    trees = int(_CACHE_BYTES // max(1.0, tree_bytes))
    trees = max(trees, _MIN_PAIRS // row_block)
    return row_block, max(1, min(trees, _PAIRS_PER_BLOCK // row_block))


def _leaves(forest: _Forest, x: np.ndarray) -> np.ndarray:
    """Leaf-table row reached in each tree by each row of ``x`` [N, F]: int64 [trees, N]."""
    n_rows, n_feat = x.shape
    if n_rows and forest.n_trees and n_feat <= forest.max_feature:
        raise ValueError(
            f"the input has {n_feat} features but the trees use feature {forest.max_feature}"
        )
    if x.dtype == np.float32 and forest.threshold_f32 is not None:
        thr = forest.threshold_f32
    else:
        thr = forest.threshold
        x = x.astype(np.float64, copy=False)
    xflat = np.ascontiguousarray(x).ravel()
    check_nan = x.dtype.kind == "f" and bool(np.isnan(xflat).any())
    out = np.empty((forest.n_trees, n_rows), dtype=np.int64)
    row_block, tree_block = _blocks(forest, n_rows)
    offsets = np.arange(n_rows, dtype=np.int64) * n_feat
    for r0 in range(0, n_rows, row_block):
        rows = offsets[r0 : r0 + row_block]
        for t0 in range(0, forest.n_trees, tree_block):
            roots = forest.roots[t0 : t0 + tree_block]
            slots = _walk(forest, xflat, thr, roots, rows, check_nan)
            out[t0 : t0 + len(roots), r0 : r0 + len(rows)] = forest.leaf_row[slots].reshape(
                len(roots), len(rows)
            )
    return out


# -- leaf votes ------------------------------------------------------------------------------
class _Votes:
    """Aggregates the weights of the reached leaves into [N, targets] float64 scores."""

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
            step = max(1, _GATHER_CELLS // max(1, n_rows))
            for start in range(0, n_trees, step):
                chunk = leaves[start : start + step]
                if self.dense:
                    self._reduce_dense(out, chunk)
                else:
                    self._reduce_sparse(out, chunk)
        if self.function in ("MIN", "MAX"):
            out[np.isinf(out)] = 0.0
        elif self.function == "AVERAGE" and self.n_trees:
            out /= self.n_trees
        return out

    def _reduce_dense(self, out: np.ndarray, chunk: np.ndarray) -> None:
        # One contiguous gather per target, reduced over the tree axis.
        for target in range(self.n_targets):
            gathered = np.take(self.table[target], chunk)  # [trees, N]
            if self.function in ("SUM", "AVERAGE"):
                out[:, target] += gathered.sum(axis=0)
            elif self.function == "MIN":
                np.minimum(out[:, target], gathered.min(axis=0), out=out[:, target])
            else:
                np.maximum(out[:, target], gathered.max(axis=0), out=out[:, target])

    def _reduce_sparse(self, out: np.ndarray, chunk: np.ndarray) -> None:
        flat = chunk.ravel()
        counts = self.counts[flat]
        total = int(counts.sum())
        if total == 0:
            return
        row = np.tile(np.arange(chunk.shape[1], dtype=np.int64), chunk.shape[0])
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


# -- legacy (opsets 1 and 3) node encoding -----------------------------------------------------
class _NodeIndex:
    """Maps (tree id, node id) pairs to positions in the nodes_* attributes."""

    def __init__(self, tree: np.ndarray, node: np.ndarray) -> None:
        self.tmin = int(tree.min(initial=0))
        self.nmin = int(node.min(initial=0))
        self.span = int(node.max(initial=0)) - self.nmin + 1
        keys = self._keys(tree, node)
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
        ok = (node >= self.nmin) & (node < self.nmin + self.span)
        if len(self.sorted):
            pos = np.minimum(np.searchsorted(self.sorted, keys), len(self.sorted) - 1)
            ok &= self.sorted[pos] == keys
        else:
            pos = np.zeros(len(keys), dtype=np.int64)
            ok[:] = False
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(
                f"{what} refers to node {int(node[bad])} of tree {int(tree[bad])}, "
                "which nodes_* does not define"
            )
        return self.order[pos]


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
        nodes_missing_value_tracks_true=missing or None,
    )
    tree = np.asarray(treeids, dtype=np.int64)
    index = _NodeIndex(tree, np.asarray(nodeids, dtype=np.int64))
    try:
        mode = np.array([_MODE_NAMES[m] for m in modes], dtype=np.uint8)
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
    miss = np.asarray(missing, dtype=bool) if missing else None
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
    if not treeids:
        empty = np.zeros(0, dtype=np.int64)
        return _Votes(forest.n_leaves, n_targets, empty, empty, empty, function, forest.n_trees)
    if nodeids is None or ids is None or weights is None:
        raise ValueError(f"{prefix}_treeids needs {prefix}_nodeids, {prefix}_ids and weights")
    node = index.find(np.asarray(treeids), np.asarray(nodeids), f"{prefix}_nodeids")
    rows = forest.leaf_row[2 * node]
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
@register("TreeEnsembleClassifier", since=(1, 3, 5), domain=ML, factory=True)
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

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = votes(_leaves(forest, _legacy_input(x)))
        if binary:
            return _binary_scores(scores[:, 0] + offset, labels, positive, post)
        if base is not None and len(base):
            scores = scores + base
        label = labels[np.argmax(scores, axis=1)] if len(scores) else labels[:0]
        return label, apply_post(scores, post).astype(np.float32)

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
    label = labels[np.where(s > (0.5 if positive else 0.0), 1, 0)]
    if post == "LOGISTIC":
        z = apply_post(np.stack([-s, s], axis=1), "LOGISTIC")
    else:
        z = np.stack([1.0 - s if positive else -s, s], axis=1)
        if post == "PROBIT":
            z = apply_post(z, "PROBIT")
    return label, z.astype(np.float32)


# -- TreeEnsembleRegressor --------------------------------------------------------------------
@register("TreeEnsembleRegressor", since=(1, 3, 5), domain=ML, factory=True)
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

    def run(x: np.ndarray) -> np.ndarray:
        scores = votes(_leaves(forest, _legacy_input(x)))
        if base is not None and len(base):
            scores = scores + base
        return apply_post(scores, post).astype(np.float32)

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


@register("TreeEnsemble", since=5, domain=ML, factory=True)
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
        nodes_missing_value_tracks_true=nodes_missing_value_tracks_true or None,
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
    if nodes_missing_value_tracks_true:
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

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"TreeEnsemble takes float input, got {x.dtype}")
        rows = as_rows(x)
        if rows.dtype.itemsize < 4:
            rows = rows.astype(np.float32)
        scores = apply_post(votes(_leaves(forest, rows)), post)
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
