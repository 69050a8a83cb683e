"""ai.onnx.ml kernels: hand-worked cases per operator.

Every expectation is computed by hand in the comments (or by a plain per-row walk written
here), never by the kernels under test.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxpy
from onnxpy.kernels import registered_ops
from onnxpy.kernels.ai_onnx_ml import _tree_eval, _tree_walk
from onnxpy.types import elem_type_of
from tests.kernels import single_node
from tests.kernels.random_trees import plain_walk, random_forest

ML = "ai.onnx.ml"


def run(op, inputs, outputs=1, ml_opset=3, **kw):
    """Run one ai.onnx.ml node through a session; ``inputs`` are positional values."""
    kw.update(domain=ML, opsets={"": 21}, ir_version=10, unknown_dims=True)
    return single_node.run(op, inputs, ml_opset, outputs, **kw)


def test_every_ml_schema_version_is_registered():
    wanted: dict[str, set[int]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == ML:
            wanted.setdefault(schema.name, set()).add(schema.since_version)
    ops = registered_ops()
    for name, versions in wanted.items():
        got = {k.since for k in ops.get((ML, name), [])}
        assert versions <= got, f"{name}: {sorted(versions - got)} not registered"


# -- trees: shared fixtures ---------------------------------------------------------------------
# Tree 0 (ids 0..4):  node0: x0 <= 1 ? node1 : node2;  node1: x1 <= 0 ? leaf3 : leaf4;  node2 leaf
# Tree 1 (ids 0..2):  node0: x1 <= 5 ? leaf1 : leaf2
TREE_NODES = dict(
    nodes_treeids=[0, 0, 0, 0, 0, 1, 1, 1],
    nodes_nodeids=[0, 1, 2, 3, 4, 0, 1, 2],
    nodes_featureids=[0, 1, 0, 0, 0, 1, 0, 0],
    nodes_values=[1.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0],
    nodes_modes=["BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"],
    nodes_truenodeids=[1, 3, 0, 0, 0, 1, 0, 0],
    nodes_falsenodeids=[2, 4, 0, 0, 0, 2, 0, 0],
)
# Rows and the leaves they reach: (tree 0 leaf, tree 1 leaf)
#   [0, -1] -> (3, 1);  [0, 1] -> (4, 1);  [2, 9] -> (2, 2)
X_TREES = np.array([[0.0, -1.0], [0.0, 1.0], [2.0, 9.0]], dtype=np.float32)


def _regressor(**extra):
    # target 0 votes: tree0 leaves 2,3,4 -> 1, 2, 3; tree1 leaves 1,2 -> 10, 20
    # target 1 votes: tree0 leaf 3 -> 5 only; tree1 leaf 2 -> -4
    attrs = dict(
        TREE_NODES,
        target_treeids=[0, 0, 0, 1, 1, 0, 1],
        target_nodeids=[2, 3, 4, 1, 2, 3, 2],
        target_ids=[0, 0, 0, 0, 0, 1, 1],
        target_weights=[1.0, 2.0, 3.0, 10.0, 20.0, 5.0, -4.0],
        n_targets=2,
    )
    attrs.update(extra)
    return attrs


@pytest.mark.parametrize(
    "aggregate, expected",
    [
        # row0: t0 leaf3 (2; 5), t1 leaf1 (10; -)   row1: leaf4 (3; -), leaf1 (10; -)
        # row2: leaf2 (1; -), leaf2 (20; -4)
        ("SUM", [[12, 5], [13, 0], [21, -4]]),
        ("AVERAGE", [[6, 2.5], [6.5, 0], [10.5, -2]]),
        ("MIN", [[2, 5], [3, 0], [1, -4]]),
        ("MAX", [[10, 5], [10, 0], [20, -4]]),
    ],
)
def test_tree_regressor_aggregates(aggregate, expected):
    y = run("TreeEnsembleRegressor", [X_TREES], **_regressor(aggregate_function=aggregate))
    assert y.dtype == np.float32 and y.shape == (3, 2)
    np.testing.assert_allclose(y, expected)


def test_tree_regressor_base_values_and_post_transform():
    y = run("TreeEnsembleRegressor", [X_TREES], **_regressor(base_values=[1.0, -5.0]))
    np.testing.assert_allclose(y, [[13, 0], [14, -5], [22, -9]])
    y = run("TreeEnsembleRegressor", [X_TREES], **_regressor(post_transform="LOGISTIC"))
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    np.testing.assert_allclose(y[2], [sig(21), sig(-4)], rtol=1e-6)


def test_tree_regressor_int_and_double_inputs():
    for dtype in (np.int64, np.int32, np.float64):
        y = run("TreeEnsembleRegressor", [X_TREES.astype(dtype)], **_regressor())
        np.testing.assert_allclose(y, [[12, 5], [13, 0], [21, -4]])


def test_tree_regressor_sparse_votes_and_small_blocks(monkeypatch):
    # The same hand-worked SUM/MIN results through the sparse vote table and tiny row blocks.
    monkeypatch.setattr(_tree_eval, "_DENSE_LIMIT", 0)
    monkeypatch.setattr(_tree_walk, "_PAIRS_PER_BLOCK", 1)
    y = run("TreeEnsembleRegressor", [X_TREES], **_regressor())
    np.testing.assert_allclose(y, [[12, 5], [13, 0], [21, -4]])
    y = run("TreeEnsembleRegressor", [X_TREES], **_regressor(aggregate_function="MIN"))
    np.testing.assert_allclose(y, [[2, 5], [3, 0], [1, -4]])


def test_tree_node_ids_shuffled_and_not_from_zero():
    # Tree 7: node 10 is the root (x0 < 0.5 ? 12 : 11), listed last; weights on leaves 11 and 12.
    attrs = dict(
        nodes_treeids=[7, 7, 7],
        nodes_nodeids=[11, 12, 10],
        nodes_featureids=[0, 0, 0],
        nodes_values=[0.0, 0.0, 0.5],
        nodes_modes=["LEAF", "LEAF", "BRANCH_LT"],
        nodes_truenodeids=[0, 0, 12],
        nodes_falsenodeids=[0, 0, 11],
        target_treeids=[7, 7],
        target_nodeids=[11, 12],
        target_ids=[0, 0],
        target_weights=[1.0, 2.0],
        n_targets=1,
    )
    y = run("TreeEnsembleRegressor", [np.array([[0.0], [0.5], [1.0]], np.float32)], **attrs)
    np.testing.assert_allclose(y.ravel(), [2, 1, 1])


def _one_node(mode, value, missing=0, **extra):
    # One branch: true -> leaf 1 (weight 1), false -> leaf 2 (weight 2).
    attrs = dict(
        nodes_treeids=[0, 0, 0],
        nodes_nodeids=[0, 1, 2],
        nodes_featureids=[0, 0, 0],
        nodes_values=[value, 0.0, 0.0],
        nodes_modes=[mode, "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0],
        nodes_falsenodeids=[2, 0, 0],
        nodes_missing_value_tracks_true=[missing, 0, 0],
        target_treeids=[0, 0],
        target_nodeids=[1, 2],
        target_ids=[0, 0],
        target_weights=[1.0, 2.0],
        n_targets=1,
    )
    attrs.update(extra)
    return attrs


@pytest.mark.parametrize(
    "mode, expected",
    [
        # x = 0, 1, 2 against threshold 1 (1 = true branch, 2 = false branch), then NaN
        ("BRANCH_LEQ", [1, 1, 2, 2]),
        ("BRANCH_LT", [1, 2, 2, 2]),
        ("BRANCH_GTE", [2, 1, 1, 2]),
        ("BRANCH_GT", [2, 2, 1, 2]),
        ("BRANCH_EQ", [2, 1, 2, 2]),
        ("BRANCH_NEQ", [1, 2, 1, 1]),  # NaN != 1 holds (onnxruntime agrees)
    ],
)
def test_tree_branch_modes(mode, expected):
    x = np.array([[0.0], [1.0], [2.0], [np.nan]], np.float32)
    y = run("TreeEnsembleRegressor", [x], **_one_node(mode, 1.0))
    np.testing.assert_array_equal(y.ravel(), expected)
    # NaN follows the true branch when nodes_missing_value_tracks_true says so.
    y = run("TreeEnsembleRegressor", [x], **_one_node(mode, 1.0, missing=1))
    assert y[3, 0] == 1


def test_tree_mixed_modes_in_one_forest():
    # Tree 0 uses LT, tree 1 GTE on the same threshold 1: x=1 -> (2, 1), x=0 -> (1, 2).
    a = _one_node("BRANCH_LT", 1.0)
    attrs = {k: v + v if isinstance(v, list) else v for k, v in a.items()}
    attrs["nodes_treeids"] = [0, 0, 0, 1, 1, 1]
    attrs["target_treeids"] = [0, 0, 1, 1]
    attrs["target_weights"] = [1.0, 2.0, 10.0, 20.0]
    attrs["nodes_modes"] = ["BRANCH_LT", "LEAF", "LEAF", "BRANCH_GTE", "LEAF", "LEAF"]
    y = run("TreeEnsembleRegressor", [np.array([[1.0], [0.0]], np.float32)], **attrs)
    np.testing.assert_array_equal(y.ravel(), [2 + 10, 1 + 20])


def test_tree_double_thresholds_compare_in_double():
    # float32(0.1) = 0.100000001490116 > 0.1 (double): false branch with the double threshold,
    # true branch with the float threshold (which is float32(0.1) itself).
    x = np.array([[0.1]], np.float32)
    as_tensor = _one_node("BRANCH_LEQ", 0.0)
    del as_tensor["nodes_values"]
    as_tensor["nodes_values_as_tensor"] = helper.make_tensor(
        "v", TensorProto.DOUBLE, [3], [0.1, 0.0, 0.0]
    )
    assert run("TreeEnsembleRegressor", [x], **as_tensor)[0, 0] == 2
    assert run("TreeEnsembleRegressor", [x], **_one_node("BRANCH_LEQ", 0.1))[0, 0] == 1


def test_tree_bad_child_is_refused():
    attrs = _one_node("BRANCH_LEQ", 1.0)
    attrs["nodes_truenodeids"] = [9, 0, 0]
    with pytest.raises(onnxpy.errors.InvalidGraph, match="node 9"):
        run("TreeEnsembleRegressor", [np.zeros((1, 1), np.float32)], **attrs)


def _classifier(**extra):
    # class votes: tree0 leaf2 -> c1: 1; leaf3 -> c0: 1; leaf4 -> c0: .4, c2: .6
    #              tree1 leaf1 -> c2: 1; leaf2 -> c1: 2
    attrs = dict(
        TREE_NODES,
        class_treeids=[0, 0, 0, 0, 1, 1],
        class_nodeids=[2, 3, 4, 4, 1, 2],
        class_ids=[1, 0, 0, 2, 2, 1],
        class_weights=[1.0, 1.0, 0.4, 0.6, 1.0, 2.0],
        classlabels_int64s=[10, 20, 30],
    )
    attrs.update(extra)
    return attrs


def test_tree_classifier_multiclass():
    # row0: leaf3 (c0 1) + leaf1 (c2 1) -> [1, 0, 1]: tie, first class wins -> 10
    # row1: leaf4 (.4, 0, .6) + leaf1 (0, 0, 1) -> [.4, 0, 1.6] -> 30
    # row2: leaf2 (0, 1, 0) + leaf2 (0, 2, 0) -> [0, 3, 0] -> 20
    label, z = run(
        "TreeEnsembleClassifier", [X_TREES], outputs=2, out_types=[7, 1], **_classifier()
    )
    np.testing.assert_array_equal(label, [10, 30, 20])
    assert label.dtype == np.int64 and z.dtype == np.float32
    np.testing.assert_allclose(z, [[1, 0, 1], [0.4, 0, 1.6], [0, 3, 0]], rtol=1e-6)


@pytest.mark.parametrize("post", ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"])
@pytest.mark.parametrize("base", [None, [0.25, -1.0, 0.5]])
def test_tree_classifier_one_row_is_the_batch_row_bit_for_bit(post, base):
    """One row (scored in Python floats for NONE/SOFTMAX/LOGISTIC) gives the very float32s
    and label its row gets in a batch (NumPy calls), and onnxruntime's."""
    ort = pytest.importorskip("onnxruntime")
    attrs = _classifier(post_transform=post, **({"base_values": base} if base else {}))
    node = helper.make_node("TreeEnsembleClassifier", ["X"], ["L", "P"], domain=ML, **attrs)
    model = single_node.graph_model(
        [node],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [
            helper.make_tensor_value_info("L", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("P", TensorProto.FLOAT, [None, 3]),
        ],
        {"": 17, ML: 3},
        ir_version=8,
    ).SerializeToString()
    sess = onnxpy.InferenceSession(model)
    oracle = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    batch = sess.run(None, {"X": X_TREES})
    for i in range(len(X_TREES)):
        row = X_TREES[i : i + 1]
        label, z = sess.run(None, {"X": row})
        np.testing.assert_array_equal(label, batch[0][i : i + 1])
        np.testing.assert_array_equal(z, batch[1][i : i + 1])
        want_label, want_z = oracle.run(None, {"X": row})
        np.testing.assert_array_equal(label, want_label)
        # onnxruntime's PROBIT approximates the inverse normal CDF: Phi^-1(0.65) = 0.385320
        # and Phi^-1(0.25) = -0.674490 (onnxpy) where it gives 0.385340 and -0.674574.
        rtol = 5e-4 if post == "PROBIT" else 1e-6
        np.testing.assert_allclose(z, want_z, rtol=rtol, atol=1e-7)


def test_tree_classifier_one_row_falls_back_on_non_finite_scores():
    from onnxpy.kernels.ai_onnx_ml import trees

    labels = np.array([10, 20, 30])
    assert trees._multiclass_row([1.0, np.inf, 0.0], None, labels, "SOFTMAX") is None
    assert trees._multiclass_row([1.0, np.nan, 0.0], None, labels, "NONE") is None
    assert trees._multiclass_row([1.0, 2.0, 0.0], [0.0, -np.inf, 0.0], labels, "NONE") is None
    label, z = trees._multiclass_row([1.0, 3.0, 3.0], [0.5, 0.0, 0.0], labels, "SOFTMAX")
    np.testing.assert_array_equal(label, [20])  # the first of the tied best
    e = np.exp(np.array([1.5, 3.0, 3.0]) - 3.0)
    np.testing.assert_array_equal(z, (e / e.sum())[None].astype(np.float32))


def test_tree_classifier_string_labels_base_values_softmax():
    attrs = _classifier(
        classlabels_int64s=None,
        classlabels_strings=["a", "b", "c"],
        base_values=[0.0, 0.0, 2.0],
        post_transform="SOFTMAX",
    )
    attrs = {k: v for k, v in attrs.items() if v is not None}
    label, z = run("TreeEnsembleClassifier", [X_TREES], outputs=2, out_types=[8, 1], **attrs)
    # scores + base: [1,0,3], [.4,0,3.6], [0,3,2]
    np.testing.assert_array_equal(label, ["c", "c", "b"])
    e = np.exp([1.0, 0.0, 3.0])
    np.testing.assert_allclose(z[0], e / e.sum(), rtol=1e-6)


def test_tree_classifier_softmax_zero_and_probit():
    _, z = run(
        "TreeEnsembleClassifier",
        [X_TREES],
        outputs=2,
        out_types=[7, 1],
        **_classifier(post_transform="SOFTMAX_ZERO"),
    )
    # row2 scores [0, 3, 0]: zeros stay zero, the only non-zero score gets all the mass.
    np.testing.assert_allclose(z[2], [0, 1, 0])
    # row0 [1, 0, 1] -> [.5, 0, .5]
    np.testing.assert_allclose(z[0], [0.5, 0, 0.5])
    attrs = _classifier(post_transform="PROBIT", class_weights=[0.975, 0.5, 0.4, 0.6, 0.025, 1.0])
    _, z = run("TreeEnsembleClassifier", [X_TREES], outputs=2, out_types=[7, 1], **attrs)
    # row0: [0.5, 0, 0.025] -> probit: [0, -inf, -1.959964]
    np.testing.assert_allclose(z[0, [0, 2]], [0.0, -1.959964], atol=1e-5)


def _binary(weights, **extra):
    # Only class id 0 is voted on: the single score s scores the second label.
    attrs = _one_node("BRANCH_LEQ", 1.0)
    attrs = {k: v for k, v in attrs.items() if not k.startswith("target_") and k != "n_targets"}
    attrs.update(
        class_treeids=[0, 0],
        class_nodeids=[1, 2],
        class_ids=[0, 0],
        class_weights=weights,
        classlabels_int64s=[0, 1],
    )
    attrs.update(extra)
    return attrs


def test_tree_classifier_binary_probabilities():
    # Random-forest style (all weights >= 0): s is P(class 1); columns [1 - s, s]; s > .5 -> 1.
    x = np.array([[0.0], [2.0]], np.float32)  # -> leaf 1 (w .3), leaf 2 (w .7)
    label, z = run(
        "TreeEnsembleClassifier", [x], outputs=2, out_types=[7, 1], **_binary([0.3, 0.7])
    )
    np.testing.assert_array_equal(label, [0, 1])
    np.testing.assert_allclose(z, [[0.7, 0.3], [0.3, 0.7]], rtol=1e-6)


def test_tree_classifier_binary_margin_logistic():
    # Gradient-boosting style: margins -0.3 / 0.7 plus base 0.1 -> s = -0.2 / 0.8.
    x = np.array([[0.0], [2.0]], np.float32)
    attrs = _binary([-0.3, 0.7], base_values=[0.1], post_transform="LOGISTIC")
    label, z = run("TreeEnsembleClassifier", [x], outputs=2, out_types=[7, 1], **attrs)
    np.testing.assert_array_equal(label, [0, 1])
    p = [1 / (1 + math.exp(0.2)), 1 / (1 + math.exp(-0.8))]
    np.testing.assert_allclose(z, [[1 - p[0], p[0]], [1 - p[1], p[1]]], rtol=1e-6)
    # Without a transform the margin pair is [-s, s].
    attrs = _binary([-0.3, 0.7])
    _, z = run("TreeEnsembleClassifier", [x], outputs=2, out_types=[7, 1], **attrs)
    np.testing.assert_allclose(z, [[0.3, -0.3], [-0.7, 0.7]], rtol=1e-6)


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
@pytest.mark.parametrize("weights", [[0.3, 0.7], [-0.3, 0.7]], ids=["proba", "margin"])
def test_tree_classifier_binary_one_row_as_in_a_batch(post, weights):
    # One row takes a Python-float path: the same labels and float32 pairs as the row in a
    # batch, for string labels too. Hand-worked: x <= 1 (ties true, NaN false) reaches leaf 1,
    # so s = w + 0.1; the pair is [1 - s, s] for probabilities, [-s, s] for margins, and
    # LOGISTIC maps [-s, s] whatever the weights.
    x = np.array([[0.0], [2.0], [1.0], [np.nan], [-1e30]], np.float32)
    attrs = _binary(weights, base_values=[0.1], post_transform=post)
    del attrs["classlabels_int64s"]
    attrs["classlabels_strings"] = ["no", "yes"]

    def classify(rows):
        kw = dict(outputs=2, out_types=[TensorProto.STRING, 1], **attrs)
        return run("TreeEnsembleClassifier", [rows], **kw)

    label, z = classify(x)
    positive = weights[0] >= 0
    for row, lab, pair in zip(x[:, 0], label, z, strict=True):
        s = (weights[0] if row <= 1.0 else weights[1]) + 0.1
        if post == "LOGISTIC":
            expected = [1 / (1 + math.exp(s)), 1 / (1 + math.exp(-s))]
        else:
            expected = [1 - s if positive else -s, s]
        np.testing.assert_allclose(pair, expected, rtol=1e-6)
        assert lab == ("yes" if s > (0.5 if positive else 0.0) else "no")
    for i in range(len(x)):
        one_label, one_z = classify(x[i : i + 1])
        assert one_label.shape == (1,) and one_z.shape == (1, 2) and one_z.dtype == np.float32
        np.testing.assert_array_equal(one_label, label[i : i + 1])
        np.testing.assert_allclose(one_z, z[i : i + 1], rtol=1e-7, atol=0)


def test_tree_random_forest_matches_a_plain_walk():
    attrs = random_forest(20, 7, "BRANCH_LEQ", 1, seed=0, leaf_p=0.15)
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    y = run("TreeEnsembleRegressor", [x], n_targets=1, **attrs)
    np.testing.assert_allclose(y, plain_walk(x, attrs, 1), rtol=1e-5, atol=1e-5)


# -- TreeEnsemble (opset 5) ---------------------------------------------------------------------
def _ensemble(**extra):
    # One tree: node0 x0 <= 1 ? node1 : leaf2;  node1 x1 <= 0 ? leaf0 : leaf1.
    # Leaves: 0 -> (target 0, 1), 1 -> (target 1, 2), 2 -> (target 0, 4)
    attrs = dict(
        n_targets=2,
        tree_roots=[0],
        nodes_modes=helper.make_tensor("m", TensorProto.UINT8, [2], [0, 0]),
        nodes_featureids=[0, 1],
        nodes_splits=helper.make_tensor("s", TensorProto.DOUBLE, [2], [1.0, 0.0]),
        nodes_truenodeids=[1, 0],
        nodes_trueleafs=[0, 1],
        nodes_falsenodeids=[2, 1],
        nodes_falseleafs=[1, 1],
        leaf_targetids=[0, 1, 0],
        leaf_weights=helper.make_tensor("w", TensorProto.DOUBLE, [3], [1.0, 2.0, 4.0]),
    )
    attrs.update(extra)
    return attrs


def test_tree_ensemble_keeps_the_input_type():
    x = np.array([[0.0, -1.0], [0.0, 1.0], [5.0, 0.0]])
    for dtype in (np.float64, np.float32, np.float16):
        y = run(
            "TreeEnsemble",
            [x.astype(dtype)],
            ml_opset=5,
            out_types=[elem_type_of(np.dtype(dtype))],
            **_ensemble(),
        )
        assert y.dtype == dtype
        np.testing.assert_allclose(y.astype(np.float64), [[1, 0], [0, 2], [4, 0]])


def test_tree_ensemble_post_transform_numbering():
    # Spec numbering: 1 = SOFTMAX, 2 = LOGISTIC.
    x = np.array([[0.0, 1.0]])  # -> leaf 1: scores [0, 2]
    y = run("TreeEnsemble", [x], ml_opset=5, out_types=[11], **_ensemble(post_transform=2))
    np.testing.assert_allclose(y, [[0.5, 1 / (1 + math.exp(-2))]])
    y = run("TreeEnsemble", [x], ml_opset=5, out_types=[11], **_ensemble(post_transform=1))
    np.testing.assert_allclose(y, [[1 / (1 + math.exp(2)), 1 / (1 + math.exp(-2))]])


def test_tree_ensemble_set_membership_with_missing_values():
    # node0: x0 in {1, 4} ? leaf0 : leaf1, NaN tracks true.
    attrs = dict(
        n_targets=1,
        tree_roots=[0],
        nodes_modes=helper.make_tensor("m", TensorProto.UINT8, [1], [6]),
        nodes_featureids=[0],
        nodes_splits=helper.make_tensor("s", TensorProto.FLOAT, [1], [0.0]),
        nodes_truenodeids=[0],
        nodes_trueleafs=[1],
        nodes_falsenodeids=[1],
        nodes_falseleafs=[1],
        nodes_missing_value_tracks_true=[1],
        membership_values=helper.make_tensor("mv", TensorProto.FLOAT, [3], [1.0, 4.0, np.nan]),
        leaf_targetids=[0, 0],
        leaf_weights=helper.make_tensor("w", TensorProto.FLOAT, [2], [10.0, 20.0]),
    )
    x = np.array([[1.0], [2.0], [4.0], [np.nan]], np.float32)
    y = run("TreeEnsemble", [x], ml_opset=5, **attrs)
    np.testing.assert_array_equal(y.ravel(), [10, 20, 10, 10])


@pytest.mark.parametrize("aggregate, expected", [(0, [2.5]), (2, [1.0]), (3, [4.0])])
def test_tree_ensemble_aggregates(aggregate, expected):
    # Two copies of the tree, the second rooted at a stump that always reaches leaf 2 (w 4).
    attrs = _ensemble(aggregate_function=aggregate, n_targets=1)
    attrs["tree_roots"] = [0, 2]
    attrs["nodes_modes"] = helper.make_tensor("m", TensorProto.UINT8, [3], [0, 0, 0])
    attrs["nodes_featureids"] = [0, 1, 0]
    attrs["nodes_splits"] = helper.make_tensor("s", TensorProto.DOUBLE, [3], [1.0, 0.0, 0.0])
    attrs["nodes_truenodeids"] = [1, 0, 2]
    attrs["nodes_trueleafs"] = [0, 1, 1]
    attrs["nodes_falsenodeids"] = [2, 1, 2]
    attrs["nodes_falseleafs"] = [1, 1, 1]
    attrs["leaf_targetids"] = [0, 0, 0]
    y = run("TreeEnsemble", [np.array([[0.0, -1.0]])], ml_opset=5, out_types=[11], **attrs)
    # tree 0 -> leaf0 (1), tree 1 -> leaf2 (4): average 2.5, min 1, max 4
    np.testing.assert_allclose(y.ravel(), expected)


# -- linear models ------------------------------------------------------------------------------
X_LIN = np.array([[-1.0, 2.0], [1.0, 0.5]], np.float32)


def test_linear_classifier_multiclass():
    # W = [[1, 0], [0, 1], [1, 1]], b = [0, 1, -1]
    # row0: [-1, 3, 0] -> class 1; row1: [1, 1.5, 0.5] -> class 1
    label, z = run(
        "LinearClassifier",
        [X_LIN],
        outputs=2,
        ml_opset=1,
        out_types=[8, 1],
        coefficients=[1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        intercepts=[0.0, 1.0, -1.0],
        classlabels_strings=["x", "y", "z"],
    )
    np.testing.assert_array_equal(label, ["y", "y"])
    np.testing.assert_allclose(z, [[-1, 3, 0], [1, 1.5, 0.5]])


def test_linear_classifier_binary_single_row():
    # s = x0 + 0.5 x1: row0 0, row1 1.25; label 1 when s > 0; columns [1 - s, s]
    kw = dict(coefficients=[1.0, 0.5], intercepts=[0.0], classlabels_ints=[0, 1])
    label, z = run("LinearClassifier", [X_LIN], outputs=2, ml_opset=1, out_types=[7, 1], **kw)
    np.testing.assert_array_equal(label, [0, 1])
    np.testing.assert_allclose(z, [[1, 0], [-0.25, 1.25]])
    label, z = run(
        "LinearClassifier",
        [X_LIN.astype(np.int64)],
        outputs=2,
        ml_opset=1,
        out_types=[7, 1],
        post_transform="LOGISTIC",
        **kw,
    )
    p = 1 / (1 + math.exp(-1.0))  # int input row [1, 0] -> s = 1
    np.testing.assert_allclose(z[1], [1 - p, p], rtol=1e-6)


def test_linear_regressor_two_targets():
    # targets: [x0 + 2 x1 + 1, 3 x1 - 1]
    y = run(
        "LinearRegressor",
        [X_LIN],
        ml_opset=1,
        coefficients=[1.0, 2.0, 0.0, 3.0],
        intercepts=[1.0, -1.0],
        targets=2,
    )
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[4, 5], [3, 0.5]])


# -- support vector machines --------------------------------------------------------------------
SV3 = dict(
    # Support vectors: class0 [1, 0], class1 [0, 1], class2 [1, 1]; linear kernel.
    support_vectors=[1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
    vectors_per_class=[1, 1, 1],
    coefficients=[1.0, -0.5, 0.3, 1.0, -1.0, 0.2],
    rho=[0.1, 0.2, 0.3],
    classlabels_ints=[0, 1, 2],
    kernel_type="LINEAR",
)


def test_svm_classifier_one_vs_one_votes():
    # x = [-1, 2]: K = [-1, 2, 1]
    # (0,1): 1*-1 + -0.5*2 + .1 = -1.9 -> 1;  (0,2): 1*-1 + .3*1 + .2 = -.5 -> 2
    # (1,2): -1*2 + .2*1 + .3 = -1.5 -> 2.  Votes [0, 1, 2] -> class 2.
    label, z = run("SVMClassifier", [X_LIN[:1]], outputs=2, ml_opset=1, out_types=[7, 1], **SV3)
    np.testing.assert_array_equal(label, [2])
    np.testing.assert_allclose(z, [[-1.9, -0.5, -1.5]], rtol=1e-6)


def test_svm_classifier_binary_margin_pair():
    # f = 1*K0 - 0.5*K1 + 0.1; x=[-1, 2] -> -1.9 (class 1), x=[1, .5] -> .85 (class 0)
    attrs = dict(
        support_vectors=[1.0, 0.0, 0.0, 1.0],
        vectors_per_class=[1, 1],
        coefficients=[1.0, -0.5],
        rho=[0.1],
        classlabels_ints=[0, 1],
        kernel_type="LINEAR",
    )
    label, z = run("SVMClassifier", [X_LIN], outputs=2, ml_opset=1, out_types=[7, 1], **attrs)
    np.testing.assert_array_equal(label, [1, 0])
    np.testing.assert_allclose(z, [[1.9, -1.9], [-0.85, 0.85]], rtol=1e-6)


def test_svm_classifier_probability_coupling_recovers_consistent_probabilities():
    # With prob_a = 0, each pairwise probability is 1 / (1 + e^B). Choosing B so that
    # r_ij = p_i / (p_i + p_j) for p = [.5, .3, .2] makes p the exact coupling solution.
    p = np.array([0.5, 0.3, 0.2])
    pairs = [(0, 1), (0, 2), (1, 2)]
    b = [math.log((p[i] + p[j]) / p[i] - 1) for i, j in pairs]
    label, z = run(
        "SVMClassifier",
        [X_LIN[:1]],
        outputs=2,
        ml_opset=1,
        out_types=[7, 1],
        prob_a=[0.0, 0.0, 0.0],
        prob_b=b,
        **SV3,
    )
    np.testing.assert_array_equal(label, [2])  # labels still come from the votes
    np.testing.assert_allclose(z[0], p, atol=5e-3)


@pytest.mark.parametrize(
    "kernel, params, expected",
    [
        # x = [1, 2], sv = [1, 0]: dot = 1, |x - sv|^2 = 4; gamma .5, coef0 1, degree 2
        ("POLY", [0.5, 1.0, 2.0], (0.5 * 1 + 1) ** 2),
        ("RBF", [0.5, 0.0, 0.0], math.exp(-0.5 * 4)),
        ("SIGMOID", [0.5, 1.0, 0.0], math.tanh(0.5 * 1 + 1)),
        ("LINEAR", [0.0, 0.0, 0.0], 1.0),
    ],
)
def test_svm_regressor_kernels(kernel, params, expected):
    # y = 2 K(x, sv) + rho (rho = 0.25)
    y = run(
        "SVMRegressor",
        [np.array([[1.0, 2.0]], np.float32)],
        ml_opset=1,
        support_vectors=[1.0, 0.0],
        coefficients=[2.0],
        n_supports=1,
        rho=[0.25],
        kernel_type=kernel,
        kernel_params=params,
    )
    assert y.shape == (1, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y[0, 0], 2 * expected + 0.25, rtol=1e-6)


def test_svm_regressor_one_class_and_linear():
    x = np.array([[1.0, 2.0], [-3.0, 0.0]], np.float32)
    # no support vectors: y = x . [1, 1] - 0.5 -> [2.5, -3.5]; one_class -> sign
    y = run("SVMRegressor", [x], ml_opset=1, coefficients=[1.0, 1.0], rho=[-0.5])
    np.testing.assert_allclose(y.ravel(), [2.5, -3.5])
    y = run("SVMRegressor", [x], ml_opset=1, coefficients=[1.0, 1.0], rho=[-0.5], one_class=1)
    np.testing.assert_array_equal(y.ravel(), [1, -1])


# -- encoders -----------------------------------------------------------------------------------
def test_label_encoder_v1_both_directions():
    x = np.array(["b", "zz", "a"], dtype=object)
    y = run(
        "LabelEncoder", [x], ml_opset=1, out_types=[7], classes_strings=["a", "b"], default_int64=-5
    )
    np.testing.assert_array_equal(y, [1, -5, 0])
    y = run(
        "LabelEncoder",
        [np.array([[1, 7]], np.int64)],
        ml_opset=1,
        out_types=[8],
        classes_strings=["a", "b"],
        default_string="?",
    )
    np.testing.assert_array_equal(y, [["b", "?"]])


def test_label_encoder_v2_floats_and_nan_keys():
    x = np.array([1.0, np.nan, 3.0], np.float32)
    y = run(
        "LabelEncoder",
        [x],
        ml_opset=2,
        out_types=[8],
        keys_floats=[1.0, np.nan],
        values_strings=["one", "missing"],
        default_string="other",
    )
    np.testing.assert_array_equal(y, ["one", "missing", "other"])


def test_label_encoder_v4_tensors_and_last_duplicate_wins():
    y = run(
        "LabelEncoder",
        [np.array([1, 2, 9], np.int32)],
        ml_opset=4,
        out_types=[11],
        keys_tensor=helper.make_tensor("k", TensorProto.INT32, [3], [1, 2, 1]),
        values_tensor=helper.make_tensor("v", TensorProto.DOUBLE, [3], [10.0, 20.0, 30.0]),
    )
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [30.0, 20.0, -0.0])
    assert math.copysign(1.0, y[2]) == -1.0  # the float default is -0.0


def test_one_hot_encoder():
    y = run("OneHotEncoder", [np.array([[1.7, 3.0]], np.float32)], cats_int64s=[1, 2, 3])
    # floats are cast to int64 (1.7 -> 1)
    np.testing.assert_array_equal(y, [[[1, 0, 0], [0, 0, 1]]])
    y = run("OneHotEncoder", [np.array(["b", "q"], dtype=object)], cats_strings=["a", "b"])
    np.testing.assert_array_equal(y, [[0, 1], [0, 0]])
    with pytest.raises(onnxpy.Fail, match="unknown category"):
        run("OneHotEncoder", [np.array(["q"], dtype=object)], cats_strings=["a"], zeros=0)


def test_category_mapper():
    kw = dict(cats_strings=["a", "b"], cats_int64s=[5, 6])
    y = run("CategoryMapper", [np.array(["b", "c"], dtype=object)], out_types=[7], **kw)
    np.testing.assert_array_equal(y, [6, -1])
    y = run("CategoryMapper", [np.array([5, 7], np.int64)], out_types=[8], default_string="?", **kw)
    np.testing.assert_array_equal(y, ["a", "?"])


def test_zip_map_int_and_string_keys():
    x = np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)
    seq_int = helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(1, None))
    )
    out = run("ZipMap", [x], out_types=[seq_int], classlabels_int64s=[3, 4])
    assert out == [{3: 0.25, 4: 0.75}, {3: 1.0, 4: 0.0}]
    assert all(type(k) is int and type(v) is float for k, v in out[0].items())
    seq_str = helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.STRING, helper.make_tensor_type_proto(1, None))
    )
    out = run("ZipMap", [x], out_types=[seq_str], classlabels_strings=["no", "yes"])
    assert out[0] == {"no": 0.25, "yes": 0.75}


def test_dict_vectorizer():
    y = run("DictVectorizer", [{"a": 1.5, "z": 2.0, "q": 9.0}], string_vocabulary=["a", "b", "z"])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[1.5, 0.0, 2.0]])
    y = run("DictVectorizer", [{"c": 7, "a": 4}], out_types=[7], string_vocabulary=["a", "b", "c"])
    np.testing.assert_array_equal(y, [[4, 0, 7]])
    y = run("DictVectorizer", [{3: "x", 1: "y"}], out_types=[8], int64_vocabulary=[1, 2, 3])
    np.testing.assert_array_equal(y, [["y", "", "x"]])  # absent keys: empty strings


def test_cast_map():
    x = {3: 1.5, 1: 2.0}
    np.testing.assert_array_equal(run("CastMap", [x]), [[2.0, 1.5]])
    y = run("CastMap", [x], map_form="SPARSE", max_map=5)
    np.testing.assert_array_equal(y, [[0, 2.0, 0, 1.5, 0]])
    y = run("CastMap", [x], out_types=[7], cast_to="TO_INT64")
    np.testing.assert_array_equal(y, [[2, 1]])
    y = run("CastMap", [x], out_types=[8], cast_to="TO_STRING")
    np.testing.assert_array_equal(y, [["2.000000", "1.500000"]])


def test_feature_vectorizer_pads_and_cuts():
    a = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    b = np.array([[7], [8]], np.float32)
    y = run("FeatureVectorizer", [a, b], inputdimensions=[2, 3])
    np.testing.assert_array_equal(y, [[1, 2, 7, 0, 0], [4, 5, 8, 0, 0]])
    y = run("FeatureVectorizer", [a.astype(np.int64)], inputdimensions=[3])
    assert y.dtype == np.float32


def test_array_feature_extractor():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    y = run("ArrayFeatureExtractor", [x, np.array([3, 0])], out_types=[6])
    np.testing.assert_array_equal(y, [[3, 0], [7, 4], [11, 8]])
    y = run(
        "ArrayFeatureExtractor", [np.array(["a", "b"], dtype=object), np.array([1])], out_types=[8]
    )
    np.testing.assert_array_equal(y, [["b"]])
    with pytest.raises(onnxpy.Fail, match="out of range"):
        run("ArrayFeatureExtractor", [x, np.array([4])], out_types=[6])


def test_binarizer_keeps_type():
    y = run("Binarizer", [np.array([1, 2, 3], np.int64)], out_types=[7], threshold=2.0)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 0, 1])


def test_imputer():
    x = np.array([[1.0, np.nan], [np.nan, 4.0]], np.float32)
    y = run("Imputer", [x], replaced_value_float=np.nan, imputed_value_floats=[7.0, 8.0])
    np.testing.assert_array_equal(y, [[1, 8], [7, 4]])
    xi = np.array([[1, -1], [-1, 4]], np.int64)
    y = run("Imputer", [xi], out_types=[7], replaced_value_int64=-1, imputed_value_int64s=[9])
    np.testing.assert_array_equal(y, [[1, 9], [9, 4]])


@pytest.mark.parametrize(
    "norm, expected",
    [
        # row [3, -4]: max 3 -> [1, -4/3]; L1 7 -> [3/7, -4/7]; L2 5 -> [.6, -.8]
        ("MAX", [[1, -4 / 3], [0, 0]]),
        ("L1", [[3 / 7, -4 / 7], [0, 0]]),
        ("L2", [[0.6, -0.8], [0, 0]]),
    ],
)
def test_normalizer(norm, expected):
    y = run("Normalizer", [np.array([[3, -4], [0, 0]], np.int32)], norm=norm)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_scaler():
    y = run("Scaler", [np.array([[1, 2], [3, 4]], np.int64)], offset=[1.0, 2.0], scale=[2.0, 0.5])
    np.testing.assert_array_equal(y, [[0, 0], [4, 1]])


def _random_forest_attrs(rng: np.random.Generator, n_trees: int = 12) -> dict:
    """Random trees of unequal depth (built top down), leaf weights on 3 targets."""
    tree_ids, node_ids, feats, values, modes, trues, falses = [], [], [], [], [], [], []
    t_tree, t_node, t_id, t_w = [], [], [], []
    for t in range(n_trees):
        count, stack = 1, [(0, 0)]  # (node id, depth)
        while stack:
            nid, depth = stack.pop()
            tree_ids.append(t)
            node_ids.append(nid)
            if depth < 1 + t % 6 and rng.random() < 0.8:
                feats.append(int(rng.integers(0, 4)))
                values.append(float(np.float32(rng.normal())))
                modes.append("BRANCH_LEQ")
                trues.append(count)
                falses.append(count + 1)
                stack += [(count, depth + 1), (count + 1, depth + 1)]
                count += 2
            else:
                feats.append(0)
                values.append(0.0)
                modes.append("LEAF")
                trues.append(0)
                falses.append(0)
                for target in range(3):
                    t_tree.append(t)
                    t_node.append(nid)
                    t_id.append(target)
                    t_w.append(float(rng.normal()))
    return dict(
        nodes_treeids=tree_ids,
        nodes_nodeids=node_ids,
        nodes_featureids=feats,
        nodes_values=values,
        nodes_modes=modes,
        nodes_truenodeids=trues,
        nodes_falsenodeids=falses,
        target_treeids=t_tree,
        target_nodeids=t_node,
        target_ids=t_id,
        target_weights=t_w,
        n_targets=3,
    )


def test_tree_batch_rows_and_threads_agree_bit_for_bit(monkeypatch):
    # A row's score must not depend on its batch, the block sizes or the thread split.
    rng = np.random.default_rng(0)
    attrs = _random_forest_attrs(rng)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    x[::7, 1] = np.nan
    whole = run("TreeEnsembleRegressor", [x], **attrs)
    one_by_one = np.concatenate([run("TreeEnsembleRegressor", [r[None]], **attrs) for r in x[:40]])
    np.testing.assert_array_equal(whole[:40], one_by_one)
    monkeypatch.setattr(_tree_eval, "_PAIRS_PER_THREAD", 64)
    monkeypatch.setattr(_tree_eval, "kernel_threads", lambda: 3)
    monkeypatch.setattr(_tree_walk, "_PAIRS_PER_BLOCK", 50)
    np.testing.assert_array_equal(run("TreeEnsembleRegressor", [x], **attrs), whole)
