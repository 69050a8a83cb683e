"""The skeleton the checker and shape inference see: weights out, types and checks intact."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpy
from onnxpy.model.skeleton import skeleton


@pytest.fixture(scope="module")
def forest():
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(600, 8, n_classes=3, n_informative=5, random_state=0)
    x = x.astype(np.float32)
    clf = RandomForestClassifier(n_estimators=12, random_state=0).fit(x, y)
    onx = skl2onnx.to_onnx(
        clf, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    return onx, clf, x


def _tree(model):
    return next(n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier")


def _sizes(node):
    return {a.name: len(a.ints) + len(a.floats) + len(a.strings) for a in node.attribute}


def test_tree_attributes_are_trimmed_but_labels_kept(forest):
    onx, clf, x = forest
    before = _sizes(_tree(onx))
    assert before["nodes_modes"] > 1024
    trimmed = {a.name: a for a in _tree(skeleton(onx)).attribute}
    assert len(trimmed["nodes_modes"].strings) == 1 and len(trimmed["class_weights"].floats) == 1
    assert list(trimmed["classlabels_int64s"].ints) == [0, 1, 2]
    assert _sizes(_tree(onx)) == before, "the model itself is untouched"


def test_trimmed_forest_runs_like_scikit_learn(forest):
    onx, clf, x = forest
    sess = onnxpy.InferenceSession(onx.SerializeToString())
    assert [o.shape for o in sess.get_outputs()] == [[None], [None, 3]]
    label, proba = sess.run(None, {"X": x[:50]})
    np.testing.assert_array_equal(label, clf.predict(x[:50]))
    np.testing.assert_allclose(proba, clf.predict_proba(x[:50]), rtol=1e-5, atol=1e-6)


def test_inconsistent_tree_lists_are_still_refused(forest):
    onx, _, _ = forest
    bad = type(onx)()
    bad.CopyFrom(onx)
    feature_ids = next(a for a in _tree(bad).attribute if a.name == "nodes_featureids")
    del feature_ids.ints[-5:]
    with pytest.raises(onnxpy.errors.OnnxpyError, match="nodes_featureids|length|nodes"):
        onnxpy.InferenceSession(bad.SerializeToString())
