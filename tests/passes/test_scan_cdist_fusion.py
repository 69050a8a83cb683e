"""skl2onnx's distance Scan -> com.microsoft CDist, and the CDist kernel itself.

The fused model must give what the Scan gives (onnxpy with optimizations off), what
onnxruntime gives from the original file, and what scikit-learn predicts.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import onnxpy
from onnxpy.passes.fusion import ScanDistanceFusion
from tests.kernels import single_node
from tests.passes.test_passes import check, ops

RNG = np.random.default_rng(21)
MS = "com.microsoft"


@pytest.fixture(scope="module")
def knn():
    from skl2onnx import to_onnx
    from sklearn.neighbors import KNeighborsClassifier

    x = RNG.standard_normal((300, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    clf = KNeighborsClassifier(n_neighbors=5).fit(x, y)
    onx = to_onnx(
        clf, x[:1], target_opset={"": 17, "ai.onnx.ml": 3}, options={id(clf): {"zipmap": False}}
    )
    return clf, onx


def _session(model, level):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = level
    return onnxpy.InferenceSession(model.SerializeToString(), so)


@pytest.mark.parametrize("batch", [1, 37])
def test_knn_scan_becomes_cdist(knn, batch):
    clf, onx = knn
    assert ops(onx)["Scan"] == 1
    x = RNG.standard_normal((batch, 6)).astype(np.float32)
    opt = check(onx, [ScanDistanceFusion()], {"X": x}, rtol=1e-5, atol=1e-5)
    assert ops(opt)["CDist"] == 1 and "Scan" not in ops(opt)
    label, proba = _session(onx, onnxpy.GraphOptimizationLevel.ORT_ENABLE_ALL).run(None, {"X": x})
    np.testing.assert_array_equal(label, clf.predict(x))
    np.testing.assert_allclose(proba, clf.predict_proba(x), atol=1e-6)
    expected = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, e in zip((label, proba), expected.run(None, {"X": x}), strict=True):
        np.testing.assert_allclose(a, e, atol=1e-6)
    # onnxruntime reads the fused model the same way (its own contrib CDist)
    fused = ort.InferenceSession(opt.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, e in zip(fused.run(None, {"X": x}), (label, proba), strict=True):
        np.testing.assert_allclose(a, e, atol=1e-6)


def test_other_scan_bodies_left_alone(knn):
    _, onx = knn
    m = onnx.ModelProto()
    m.CopyFrom(onx)
    scan = next(n for n in m.graph.node if n.op_type == "Scan")
    body = scan.attribute[0].g
    red = next(n for n in body.node if n.op_type == "ReduceSumSquare")
    red.op_type = "ReduceL1"  # a Manhattan distance: not the pattern
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    opt = check(m, [ScanDistanceFusion()], {"X": x})
    assert ops(opt)["Scan"] == 1


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize(
    ("m", "n", "dtype"), [(7, 5, np.float32), (1, 1, np.float64), (4, 0, np.float32)]
)
def test_cdist_kernel_against_onnxruntime(metric, m, n, dtype):
    a = (RNG.standard_normal((m, 3)) * 10).astype(dtype)
    b = (RNG.standard_normal((n, 3)) * 10).astype(dtype)
    if n:
        b[0] = a[0]  # a zero distance: no negative rounding, so no NaN from sqrt
    got = single_node.run("CDist", [a, b], 1, domain=MS, like_input=True, metric=metric)
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    node = helper.make_node("CDist", ["A", "B"], ["Y"], domain=MS, metric=metric)
    model = single_node.graph_model(
        [node],
        [helper.make_tensor_value_info(k, elem, v.shape) for k, v in (("A", a), ("B", b))],
        [helper.make_tensor_value_info("Y", elem, None)],
        {"": 17, MS: 1},
        ir_version=8,
    )
    if n:
        expected = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        ).run(None, {"A": a, "B": b})[0]
    else:
        expected = np.zeros((m, 0), dtype)
    diff = a.astype(np.float64)[:, None, :] - b.astype(np.float64)[None, :, :]
    exact = (diff**2).sum(-1)
    if metric == "euclidean":
        exact = np.sqrt(exact)
    assert got.dtype == dtype and got.shape == (m, n)
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    if n:  # equal rows: the product form leaves at most rounding noise, never a NaN
        scale = float((a[0].astype(np.float64) ** 2).sum())
        bound = 1e-12 * scale if metric == "sqeuclidean" else np.sqrt(1e-12 * scale)
        assert 0.0 <= got[0, 0] <= max(bound, 1e-30)
