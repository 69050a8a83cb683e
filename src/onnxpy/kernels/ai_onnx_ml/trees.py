"""Tree ensembles: TreeEnsembleClassifier, TreeEnsembleRegressor (opsets 1/3/5), TreeEnsemble (5).

All three compile, once per node, to one flat forest (``_tree_forest``): per node a feature, a
threshold, a mode and a pair of children (a leaf points to itself), plus a table of leaf votes,
and are evaluated by ``_tree_eval`` (level walks, all-nodes and one-row evaluators, bit masks,
compiled walks for big forests). This module decodes the operators' attributes (the legacy
per-node lists of opsets 1/3 and TreeEnsemble's opset-5 encoding) and registers the kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from onnxpy.kernels.ai_onnx_ml._common import (
    as_rows,
    class_labels,
    floats_attr,
    post_transform_code,
    sorted_unique,
)
from onnxpy.kernels.ai_onnx_ml._common import post_transform as apply_post
from onnxpy.kernels.ai_onnx_ml._tree_eval import _input_dtype, _Runner, _Votes
from onnxpy.kernels.ai_onnx_ml._tree_forest import (
    _AGGREGATES,
    _MODE_NAMES,
    LEAF,
    MEMBER,
    _Forest,
    _forest,
    _Membership,
)
from onnxpy.kernels.registry import NodeInfo, register
from onnxpy.kernels.threads import kernel_threads

ML = "ai.onnx.ml"
# Every output is a new array (scores through astype, labels taken), so run hands them out as
# they are.
_KERNEL = dict(domain=ML, factory=True, array_attributes=True, fresh=True)


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
    if len(trees) != len(sorted_unique(tree)):
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


def _aggregate_name(value: str | int) -> str:
    if isinstance(value, int):
        if not 0 <= value < len(_AGGREGATES):
            raise ValueError(f"aggregate_function {value} is not one of 0..3")
        return _AGGREGATES[value]
    if value not in _AGGREGATES:
        raise ValueError(f"aggregate_function '{value}' is not one of {list(_AGGREGATES)}")
    return value


# -- TreeEnsembleClassifier -------------------------------------------------------------------
@register("TreeEnsembleClassifier", since=(1, 3, 5), **_KERNEL)
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
    used = sorted_unique(ids)
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
    base_floats = [float(b) for b in base] if has_base else None
    row_post = post in _ROW_POSTS

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = scores_of(x)
        if binary:
            s = scores[:, 0]
            return _binary_scores(s + offset if offset else s, labels, positive, post)
        if row_post and len(scores) == 1:
            done = _multiclass_row(scores[0].tolist(), base_floats, labels, post)
            if done is not None:
                return done
        if has_base:
            scores = scores + base
        label = labels.take(scores.argmax(axis=1)) if len(scores) else labels[:0].copy()
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
    if len(s) == 1 and post != "PROBIT":
        return _binary_row(float(s[0]), labels, positive, post)
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


def _binary_row(
    s: float, labels: np.ndarray, positive: bool, post: str
) -> tuple[np.ndarray, np.ndarray]:
    """``_binary_scores`` of one row in Python floats: its ~10 NumPy calls on 1-element
    arrays cost ~10 us, these ~1 us (a GradientBoostingClassifier of 200 stumps scores a
    row in ~12). Same formulas (LOGISTIC as ``_common.logistic``), so the same float32s up
    to the last bit of exp."""
    label = labels.take([1 if s > (0.5 if positive else 0.0) else 0])
    low = 1.0 - s if positive else -s
    if post == "LOGISTIC":
        low, s = _logistic(-s), _logistic(s)
    return label, np.array([[low, s]], dtype=np.float32)


# NONE stays on the array path: an argmax and a cast are fewer calls than the Python route
# (iris forest, one row: 8.9 vs 9.8 us).
_ROW_POSTS = ("SOFTMAX", "LOGISTIC")


def _multiclass_row(
    v: list[float], base: list[float] | None, labels: np.ndarray, post: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """One row's label and float32 scores in Python floats (~2 us where the NumPy calls on
    [1, classes] arrays take ~8), for SOFTMAX and LOGISTIC (NONE too); None for a row with a NaN
    or infinite score, which the array path takes. Same formulas (softmax as
    ``_common.softmax``: shifted by the largest score), so the same float32s up to the last
    bit of exp."""
    if base is not None:
        v = [a + b for a, b in zip(v, base, strict=True)]
    if not math.isfinite(sum(v)):
        return None
    top = max(v)
    label = labels.take([v.index(top)])  # the first best, as argmax
    if post == "SOFTMAX":
        e = [math.exp(a - top) for a in v]
        total = sum(e)
        v = [a / total for a in e]
    elif post == "LOGISTIC":
        v = [_logistic(a) for a in v]
    return label, np.array([v], dtype=np.float32)


def _logistic(v: float) -> float:
    """``_common.logistic`` of one Python float (NaN stays NaN)."""
    e = math.exp(-abs(v))
    return 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)


# -- TreeEnsembleRegressor --------------------------------------------------------------------
@register("TreeEnsembleRegressor", since=(1, 3, 5), **_KERNEL)
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
    all_values = sorted_unique(np.concatenate(sets[: len(members)] + [np.zeros(0)]))
    if len(all_values) == 0:
        all_values = np.array([np.nan])
    keys = [
        k * len(all_values) + np.searchsorted(all_values, s)
        for k, s in enumerate(sets[: len(members)])
    ]
    return _Membership(
        slot, all_values, sorted_unique(np.concatenate(keys + [np.zeros(0, np.int64)]))
    )


@register("TreeEnsemble", since=5, **_KERNEL)
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
