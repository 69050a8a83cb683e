"""Random legacy tree-ensemble attributes and a plain per-row walk over them: an oracle for
the tree kernels written from the attributes, independent of onnxpy's evaluators; and a
one-node regressor session to run them in."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

import onnxpy

# x <mode> threshold, the condition that sends a row to the true child.
TRUE_SIDE = {
    "BRANCH_LEQ": lambda v, t: v <= t,
    "BRANCH_LT": lambda v, t: v < t,
    "BRANCH_GTE": lambda v, t: v >= t,
    "BRANCH_GT": lambda v, t: v > t,
    "BRANCH_EQ": lambda v, t: v == t,
    "BRANCH_NEQ": lambda v, t: v != t,
}


def random_forest(n_trees, depth, mode, n_targets, seed, leaf_p=0.2, values=None):
    """Random legacy tree attributes (node ids per tree from 0, children listed after)."""
    rng = np.random.default_rng(seed)
    a = {
        k: []
        for k in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_values",
            "nodes_modes",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "target_treeids",
            "target_nodeids",
            "target_ids",
            "target_weights",
        )
    }
    for tree in range(n_trees):
        count = 0

        def grow(d, tree=tree):
            nonlocal count
            me = count
            count += 1
            pos = len(a["nodes_modes"])
            a["nodes_treeids"].append(tree)
            a["nodes_nodeids"].append(me)
            if d == 0 or (me > 0 and rng.random() < leaf_p):
                a["nodes_featureids"].append(0)
                a["nodes_values"].append(0.0)
                a["nodes_modes"].append("LEAF")
                a["nodes_truenodeids"].append(0)
                a["nodes_falsenodeids"].append(0)
                for target in range(n_targets):
                    if n_targets > 1 and rng.random() < 0.3:
                        continue  # some leaves vote for some targets only
                    a["target_treeids"].append(tree)
                    a["target_nodeids"].append(me)
                    a["target_ids"].append(target)
                    a["target_weights"].append(float(np.float32(rng.normal())))
                return me
            a["nodes_featureids"].append(int(rng.integers(4)))
            if values is None:
                a["nodes_values"].append(float(np.float32(rng.normal())))
            else:
                a["nodes_values"].append(float(rng.choice(values)))
            a["nodes_modes"].append(mode)
            a["nodes_truenodeids"].append(-1)
            a["nodes_falsenodeids"].append(-1)
            a["nodes_truenodeids"][pos] = grow(d - 1)
            a["nodes_falsenodeids"][pos] = grow(d - 1)
            return me

        grow(depth)
    return a


def add_leaf_trees(a, weights):
    """Append one-leaf trees to ``random_forest`` attributes ``a``, voting ``weights`` on
    target 0 (tree ids follow the last one)."""
    first = max(a["nodes_treeids"], default=-1) + 1
    for tree, w in enumerate(weights, start=first):
        for key, value in (
            ("nodes_treeids", tree),
            ("nodes_nodeids", 0),
            ("nodes_featureids", 0),
            ("nodes_values", 0.0),
            ("nodes_modes", "LEAF"),
            ("nodes_truenodeids", 0),
            ("nodes_falsenodeids", 0),
            ("target_treeids", tree),
            ("target_nodeids", 0),
            ("target_ids", 0),
            ("target_weights", w),
        ):
            a[key].append(value)


def plain_walk(x, a, n_targets, aggregate="SUM"):
    """Plain per-row walk: leaf votes aggregated per target (float64)."""
    where = {
        (t, n): i
        for i, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"], strict=True))
    }
    votes = {}
    for t, n, k, w in zip(
        a["target_treeids"], a["target_nodeids"], a["target_ids"], a["target_weights"], strict=True
    ):
        votes.setdefault((t, n), []).append((k, w))
    trees_ = sorted(set(a["nodes_treeids"]))
    out = np.zeros((len(x), n_targets))
    for r, row in enumerate(x):
        per_target = [[] for _ in range(n_targets)]
        for tree in trees_:
            i = where[(tree, 0)]
            while a["nodes_modes"][i] != "LEAF":
                go_true = TRUE_SIDE[a["nodes_modes"][i]](
                    row[a["nodes_featureids"][i]], a["nodes_values"][i]
                )
                nxt = a["nodes_truenodeids"] if go_true else a["nodes_falsenodeids"]
                i = where[(tree, nxt[i])]
            for k, w in votes.get((tree, a["nodes_nodeids"][i]), []):
                per_target[k].append(w)
        for k, ws in enumerate(per_target):
            if not ws:
                continue
            if aggregate in ("SUM", "AVERAGE"):
                out[r, k] = sum(ws) / (len(trees_) if aggregate == "AVERAGE" else 1)
            else:
                out[r, k] = min(ws) if aggregate == "MIN" else max(ws)
    return out


def regressor_session(a, n_targets, aggregate="SUM", elem_type=TensorProto.FLOAT):
    """An onnxpy session of one TreeEnsembleRegressor (opset ml 3) over 4-feature rows of
    ``elem_type`` (its output is float whatever the input)."""
    node = helper.make_node(
        "TreeEnsembleRegressor",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=n_targets,
        aggregate_function=aggregate,
        **a,
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", elem_type, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n_targets])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    return onnxpy.InferenceSession(model.SerializeToString())
