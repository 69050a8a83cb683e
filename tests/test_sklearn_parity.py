"""scikit-learn parity: models trained here, converted by skl2onnx, run by onnxpy.

The oracle is scikit-learn's own predict / predict_proba / transform. Labels must be equal;
scores agree within float32 tolerances stated per family below (ONNX models compute in float32
where scikit-learn computes in float64). Data sets are small, seeded and synthetic.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")

from skl2onnx import convert_sklearn, to_onnx  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType, StringTensorType  # noqa: E402
from sklearn import cluster, decomposition, ensemble, linear_model, neighbors, svm, tree  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import load_iris, make_classification, make_regression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

import onnxpy  # noqa: E402

# Tolerances, per family (absolute unless noted).
PROBA_TREES = 1e-5  # averaged leaf probabilities: float32 sums of a few terms
PROBA_BOOSTED = 1e-5  # logistic/softmax of float32-summed margins
REG_TREES_RTOL = 1e-5  # float32 sums of float32 leaf values
LINEAR_RTOL, LINEAR_ATOL = 1e-5, 1e-5  # float64 dot products cast to float32
SVM_ATOL = 1e-5  # kernels in float64, Platt scaling / coupling then float32
NN_ATOL = 1e-4  # float32 matmuls through a hidden layer
DIST_RTOL = 1e-4  # float32 Gemm-based distances (KMeans, KNN)
PROJ_ATOL = 1e-4  # float32 projections (PCA)

SEED = 0


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _multiclass(n=150, features=5, classes=3):
    x, y = make_classification(
        n_samples=n,
        n_features=features,
        n_informative=features,
        n_redundant=0,
        n_classes=classes,
        n_clusters_per_class=1,
        random_state=SEED,
    )
    return x.astype(np.float32), y


def _binary(n=150, features=5):
    return _multiclass(n, features, 2)


def _regression(n=150, features=5, targets=1):
    x, y = make_regression(
        n_samples=n, n_features=features, n_targets=targets, noise=0.5, random_state=SEED
    )
    return x.astype(np.float32), y


def _session(model, x, **kw):
    onx = to_onnx(model, x[:1], **kw)
    return onnxpy.InferenceSession(onx.SerializeToString())


def _run(sess, x):
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})


def _proba(zipmap, classes):
    """ZipMap output (a list of {label: probability}) as an array in ``classes`` order."""
    assert isinstance(zipmap, list) and all(isinstance(d, dict) for d in zipmap)
    return np.array([[d[c] for c in classes] for d in zipmap], dtype=np.float64)


def _check_classifier(model, x, atol, **kw):
    sess = _session(model, x, **kw)
    label, proba = _run(sess, x)
    np.testing.assert_array_equal(label, model.predict(x))
    classes = model.classes_.tolist()
    np.testing.assert_allclose(_proba(proba, classes), model.predict_proba(x), atol=atol, rtol=0)
    return sess


# -- the journey ----------------------------------------------------------------------------
def test_iris_random_forest_journey():
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.3, random_state=42)
    model = ensemble.RandomForestClassifier(n_estimators=20, random_state=SEED).fit(
        x_train, y_train
    )
    x_test = x_test.astype(np.float32)
    sess = _session(model, x_test)
    label, proba = _run(sess, x_test)
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, model.predict(x_test))
    assert isinstance(proba, list) and len(proba) == len(x_test)
    assert all(isinstance(k, int) and isinstance(v, float) for k, v in proba[0].items())
    np.testing.assert_allclose(_proba(proba, [0, 1, 2]), model.predict_proba(x_test), atol=1e-5)


def test_string_labels_random_forest():
    x, y = _multiclass()
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    model = ensemble.RandomForestClassifier(n_estimators=5, max_depth=4, random_state=SEED).fit(
        x, names
    )
    sess = _session(model, x)
    label, proba = _run(sess, x)
    np.testing.assert_array_equal(label, model.predict(x))
    assert set(proba[0]) == {"setosa", "versicolor", "virginica"}
    np.testing.assert_allclose(
        _proba(proba, model.classes_.tolist()), model.predict_proba(x), atol=PROBA_TREES
    )


# -- trees ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: ensemble.RandomForestClassifier(n_estimators=7, max_depth=5, random_state=SEED),
        lambda: ensemble.ExtraTreesClassifier(n_estimators=7, max_depth=5, random_state=SEED),
        lambda: tree.DecisionTreeClassifier(max_depth=6, random_state=SEED),
    ],
    ids=["random_forest", "extra_trees", "decision_tree"],
)
@pytest.mark.parametrize("data", [_multiclass, _binary], ids=["multiclass", "binary"])
def test_tree_classifiers(make, data):
    x, y = data()
    _check_classifier(make().fit(x, y), x, PROBA_TREES)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ensemble.RandomForestRegressor(n_estimators=7, max_depth=6, random_state=SEED),
        lambda: ensemble.ExtraTreesRegressor(n_estimators=7, max_depth=6, random_state=SEED),
        lambda: tree.DecisionTreeRegressor(max_depth=6, random_state=SEED),
        lambda: ensemble.GradientBoostingRegressor(n_estimators=15, max_depth=3, random_state=SEED),
    ],
    ids=["random_forest", "extra_trees", "decision_tree", "gradient_boosting"],
)
def test_tree_regressors(make):
    x, y = _regression()
    model = make().fit(x, y)
    (pred,) = _run(_session(model, x), x)
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred.ravel(), model.predict(x), rtol=REG_TREES_RTOL, atol=1e-3)


def test_random_forest_multi_target_regressor():
    x, y = _regression(targets=2)
    model = ensemble.RandomForestRegressor(n_estimators=5, max_depth=5, random_state=SEED).fit(x, y)
    (pred,) = _run(_session(model, x), x)
    assert pred.shape == (len(x), 2)
    np.testing.assert_allclose(pred, model.predict(x), rtol=REG_TREES_RTOL, atol=1e-3)


@pytest.mark.parametrize("data", [_multiclass, _binary], ids=["multiclass", "binary"])
def test_gradient_boosting_classifier(data):
    x, y = data()
    model = ensemble.GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=SEED)
    _check_classifier(model.fit(x, y), x, PROBA_BOOSTED)


@pytest.fixture
def _hist_gb_converter_fix(monkeypatch):
    """skl2onnx 1.20 passes a Python bool for a leaf's missing-value flag, which onnx rejects."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args, nodes_missing_value_tracks_true=0, **kwargs):
        flag = int(nodes_missing_value_tracks_true)
        return original(*args, nodes_missing_value_tracks_true=flag, **kwargs)

    monkeypatch.setattr(tree_ensemble, "add_node", add_node)


def _with_nans(x):
    x = x.copy()
    rng = np.random.default_rng(SEED)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x


@pytest.mark.usefixtures("_hist_gb_converter_fix")
@pytest.mark.parametrize("data", [_multiclass, _binary], ids=["multiclass", "binary"])
def test_hist_gradient_boosting_classifier_with_missing_values(data):
    x, y = data(n=300)
    x = _with_nans(x)
    model = ensemble.HistGradientBoostingClassifier(max_iter=10, random_state=SEED).fit(x, y)
    _check_classifier(model, x, PROBA_BOOSTED)


@pytest.mark.usefixtures("_hist_gb_converter_fix")
def test_hist_gradient_boosting_regressor_with_missing_values():
    x, y = _regression(n=300)
    x = _with_nans(x)
    model = ensemble.HistGradientBoostingRegressor(max_iter=10, random_state=SEED).fit(x, y)
    (pred,) = _run(_session(model, x), x)
    np.testing.assert_allclose(pred.ravel(), model.predict(x), rtol=REG_TREES_RTOL, atol=1e-3)


# -- linear models --------------------------------------------------------------------------
@pytest.mark.parametrize("data", [_multiclass, _binary], ids=["multiclass", "binary"])
def test_logistic_regression(data):
    x, y = data()
    _check_classifier(linear_model.LogisticRegression().fit(x, y), x, LINEAR_ATOL)


@pytest.mark.parametrize(
    "make", [linear_model.LinearRegression, linear_model.Ridge], ids=["linear", "ridge"]
)
def test_linear_regressors(make):
    x, y = _regression(targets=1)
    model = make().fit(x, y)
    (pred,) = _run(_session(model, x), x)
    np.testing.assert_allclose(pred.ravel(), model.predict(x), rtol=LINEAR_RTOL, atol=1e-3)


# -- support vector machines ----------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
@pytest.mark.parametrize("data", [_multiclass, _binary], ids=["multiclass", "binary"])
def test_svc_with_probabilities(kernel, data):
    x, y = data(n=90, features=4)
    model = svm.SVC(kernel=kernel, probability=True, random_state=SEED).fit(x, y)
    _check_classifier(model, x, SVM_ATOL)


def test_svc_binary_decision_scores():
    # Without probabilities the score columns are [-f, f] where f = -decision_function
    # (libsvm's sign: f > 0 votes for the first class), as onnxruntime returns them.
    x, y = _binary(n=90, features=4)
    model = svm.SVC(kernel="rbf").fit(x, y)
    sess = _session(model, x, options={"zipmap": False})
    label, scores = _run(sess, x)
    np.testing.assert_array_equal(label, model.predict(x))
    decision = model.decision_function(x)
    np.testing.assert_allclose(scores, np.stack([decision, -decision], axis=1), atol=SVM_ATOL)


def test_svc_multiclass_labels_without_probabilities():
    x, y = _multiclass(n=90, features=4)
    model = svm.SVC(kernel="rbf").fit(x, y)
    label, _ = _run(_session(model, x), x)
    np.testing.assert_array_equal(label, model.predict(x))


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
def test_svr(kernel):
    x, y = _regression(n=90, features=4)
    model = svm.SVR(kernel=kernel, C=10.0).fit(x, y)
    (pred,) = _run(_session(model, x), x)
    np.testing.assert_allclose(pred.ravel(), model.predict(x), rtol=1e-5, atol=1e-3)


# -- models built mostly from default-domain operators --------------------------------------
def test_kneighbors_classifier():
    x, y = _multiclass(n=80)
    model = neighbors.KNeighborsClassifier(n_neighbors=5).fit(x, y)
    _check_classifier(model, x[:30], 1e-6)


def test_kneighbors_regressor():
    x, y = _regression(n=80)
    model = neighbors.KNeighborsRegressor(n_neighbors=5).fit(x, y)
    (pred,) = _run(_session(model, x), x[:30])
    np.testing.assert_allclose(pred.ravel(), model.predict(x[:30]), rtol=1e-5, atol=1e-3)


def test_mlp_classifier():
    x, y = _multiclass()
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=SEED).fit(x, y)
    _check_classifier(model, x, NN_ATOL)


def test_kmeans():
    x, _ = _multiclass()
    model = cluster.KMeans(n_clusters=3, n_init=1, random_state=SEED).fit(x)
    label, distances = _run(_session(model, x), x)
    np.testing.assert_array_equal(label, model.predict(x))
    np.testing.assert_allclose(distances, model.transform(x), rtol=DIST_RTOL, atol=1e-4)


def test_pca():
    x, _ = _multiclass()
    model = decomposition.PCA(n_components=3).fit(x)
    (proj,) = _run(_session(model, x), x)
    np.testing.assert_allclose(proj, model.transform(x), atol=PROJ_ATOL)


def test_standard_scaler():
    x, _ = _multiclass()
    model = StandardScaler().fit(x)
    (scaled,) = _run(_session(model, x), x)
    np.testing.assert_allclose(scaled, model.transform(x), rtol=1e-5, atol=1e-5)


# -- pipelines ------------------------------------------------------------------------------
def test_column_transformer_pipeline():
    rng = np.random.default_rng(SEED)
    n = 120
    numeric = rng.normal(size=(n, 2)).astype(np.float32)
    colour = rng.choice(["red", "green", "blue"], size=n).astype(object)
    y = ((numeric[:, 0] + (colour == "red")) > 0.3).astype(np.int64)
    table = np.empty((n, 3), dtype=object)
    table[:, :2] = numeric
    table[:, 2] = colour
    pipe = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(), [2])]),
        linear_model.LogisticRegression(),
    ).fit(table, y)
    onx = convert_sklearn(
        pipe,
        initial_types=[("num", FloatTensorType([None, 2])), ("cat", StringTensorType([None, 1]))],
    )
    sess = onnxpy.InferenceSession(onx.SerializeToString())
    label, proba = sess.run(None, {"num": numeric, "cat": colour.reshape(-1, 1)})
    np.testing.assert_array_equal(label, pipe.predict(table))
    np.testing.assert_allclose(_proba(proba, [0, 1]), pipe.predict_proba(table), atol=LINEAR_ATOL)


_DOCS = np.array(
    [
        "the cat sat on the mat",
        "the dog ran in the park",
        "a cat and a dog met",
        "birds fly over the park",
        "the bird sat on the fence",
        "dogs bark at the cat",
        "cats sleep on the mat",
        "the park has many birds",
    ],
    dtype=object,
)
_TOPICS = np.array([0, 1, 0, 1, 0, 1, 0, 1])


def _text_model():
    from sklearn.feature_extraction.text import TfidfVectorizer

    pipe = make_pipeline(TfidfVectorizer(), linear_model.LogisticRegression()).fit(_DOCS, _TOPICS)
    onx = convert_sklearn(pipe, initial_types=[("text", StringTensorType([None, 1]))])
    return pipe, onx


def _replace_tokenizer(onx):
    """Swap skl2onnx's com.microsoft Tokenizer for the standard StringSplit (opset 20).

    Equivalent here: the documents are single-space separated words of two letters or more,
    which is what the vectorizer's default token pattern extracts.
    """
    from onnx import helper

    for i, node in enumerate(onx.graph.node):
        if node.op_type == "Tokenizer":
            split = helper.make_node(
                "StringSplit",
                [node.input[0]],
                [node.output[0], node.output[0] + "_n"],
                delimiter=" ",
            )
            onx.graph.node.remove(node)
            onx.graph.node.insert(i, split)
            break
    for opset in onx.opset_import:
        if opset.domain == "":
            opset.version = max(opset.version, 20)
    return onx


def test_tfidf_text_pipeline():
    pipe, onx = _text_model()
    onx = _replace_tokenizer(onx)
    sess = onnxpy.InferenceSession(onx.SerializeToString())
    docs = _DOCS.reshape(-1, 1)
    label, proba = sess.run(None, {"text": docs})
    np.testing.assert_array_equal(label, pipe.predict(_DOCS))
    np.testing.assert_allclose(_proba(proba, [0, 1]), pipe.predict_proba(_DOCS), atol=LINEAR_ATOL)


def test_tfidf_text_pipeline_as_converted():
    pipe, onx = _text_model()
    sess = onnxpy.InferenceSession(onx.SerializeToString())
    label, proba = sess.run(None, {"text": _DOCS.reshape(-1, 1)})
    np.testing.assert_array_equal(label, pipe.predict(_DOCS))
    np.testing.assert_allclose(_proba(proba, [0, 1]), pipe.predict_proba(_DOCS), atol=LINEAR_ATOL)


# -- models skl2onnx writes with outputs that may have no declared shape --------------------------
# The IR makes an output's shape optional; depending on its version skl2onnx declares these
# models' outputs without one. Each is converted, then its output shapes are dropped on purpose
# (the form users meet), and it must load and agree with scikit-learn.


def _without_output_shapes(model):
    for o in model.graph.output:
        o.type.tensor_type.ClearField("shape")
    return model


def _shapeless_cases():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.neighbors import LocalOutlierFactor

    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((200, 4))
    yield "isolation_forest", ensemble.IsolationForest(n_estimators=20, random_state=SEED).fit(x), x
    yield "gaussian_process", GaussianProcessRegressor().fit(x[:50], x[:50, 0]), x
    yield "local_outlier_factor", LocalOutlierFactor(novelty=True).fit(x), x


@pytest.mark.parametrize(
    "name, est, x", list(_shapeless_cases()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_models_with_shapeless_outputs_agree_with_scikit_learn(name, est, x):
    gp = name == "gaussian_process"
    dtype = np.float64 if gp else np.float32  # the GP's kernel needs double precision
    onx = to_onnx(est, x[:1].astype(dtype), target_opset={"": 18, "ai.onnx.ml": 3})
    sess = onnxpy.InferenceSession(_without_output_shapes(onx).SerializeToString())
    xt = np.random.default_rng(1).standard_normal((30, 4)).astype(dtype)
    outs = sess.run(None, {sess.get_inputs()[0].name: xt})
    if gp:
        np.testing.assert_allclose(outs[0].ravel(), est.predict(xt), rtol=1e-6, atol=1e-8)
        return
    np.testing.assert_array_equal(outs[0].ravel(), est.predict(xt))
    np.testing.assert_allclose(outs[1].ravel(), est.decision_function(xt), rtol=1e-4, atol=1e-5)
    assert sess.get_outputs()[0].shape  # the inferred shape is reported
