"""REST against the real server: tritonclient's HTTP client and plain httpx, checked against
scikit-learn, onnxruntime and hand-computed values."""

from __future__ import annotations

import gzip
import json
import zlib

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as th

from tests.serving.models import V2_TO_ELEM, linear_weights

pytestmark = pytest.mark.slow


def v2_input(name: str, array: np.ndarray, datatype: str) -> dict:
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": array.tolist()}


@pytest.fixture(scope="module")
def triton(server):
    client = th.InferenceServerClient(server.http)
    yield client
    client.close()


def test_health_and_server_metadata(http):
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    meta = http.get("/v2").json()
    assert meta["name"] == "onnxpy"
    assert {"binary_tensor_data", "classification", "model_repository"} <= set(meta["extensions"])
    assert not any("shared_memory" in e for e in meta["extensions"])


def test_model_metadata_uses_v2_names_and_dynamic_dims(triton):
    meta = triton.get_model_metadata("rf_iris")
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    # skl2onnx's default ZipMap output is served as BYTES of JSON, one element per row
    assert meta["outputs"][1] == {"name": "output_probability", "datatype": "BYTES", "shape": [-1]}
    assert triton.get_model_metadata("add")["versions"] == ["1", "2"]
    assert triton.get_model_metadata("add", "1")["versions"] == ["1", "2"]


def test_iris_binary_and_json_tensors_match_sklearn(triton, repository):
    _, facts = repository
    clf, x = facts["clf"], facts["x"][::7]
    for binary in (True, False):
        inp = th.InferInput("X", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        result = triton.infer("rf_iris", [inp], request_id=f"req-{binary}")
        assert result.get_response()["id"] == f"req-{binary}"
        np.testing.assert_array_equal(result.as_numpy("output_label"), clf.predict(x))
        probs = [json.loads(p) for p in result.as_numpy("output_probability")]
        got = np.array([[row[str(c)] for c in clf.classes_] for row in probs])
        np.testing.assert_allclose(got, clf.predict_proba(x), atol=1e-6)


def test_output_subset_and_json_outputs(triton, repository):
    x = repository[1]["x"][:3]
    inp = th.InferInput("X", [3, 4], "FP32")
    inp.set_data_from_numpy(x)
    out = th.InferRequestedOutput("output_label", binary_data=False)
    result = triton.infer("rf_iris", [inp], outputs=[out])
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["output_label"]
    assert response["outputs"][0]["data"] == repository[1]["clf"].predict(x).tolist()


def test_classification_extension_with_labels(triton, repository):
    clf, x = repository[1]["clf"], repository[1]["x"][[0, 60, 120]]
    inp = th.InferInput("X", [3, 4], "FP32")
    inp.set_data_from_numpy(x)
    out = th.InferRequestedOutput("probabilities", class_count=2)
    got = triton.infer("rf_iris_tensor", [inp], outputs=[out]).as_numpy("probabilities")
    assert got.shape == (3, 2)
    labels = ["setosa", "versicolor", "virginica"]
    proba = clf.predict_proba(x)
    for r in range(3):
        order = np.argsort(-proba[r], kind="stable")[:2]
        want = [f"{proba[r, i]:f}:{i}:{labels[i]}" for i in order]
        assert [g.decode() for g in got[r]] == want


def test_image_model_matches_onnxruntime(triton, http, repository):
    rng = np.random.default_rng(3)
    images = rng.standard_normal((4, 3, 32, 32), dtype=np.float32)
    oracle = ort.InferenceSession(str(repository[1]["cnn"]), providers=["CPUExecutionProvider"])
    want = oracle.run(None, {"image": images})[0]
    inp = th.InferInput("image", list(images.shape), "FP32")
    inp.set_data_from_numpy(images)
    got = triton.infer("cnn", [inp]).as_numpy("logits")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # nested JSON data, as a hand-written client sends it
    body = {"inputs": [v2_input("image", images[:1], "FP32")]}
    res = http.post("/v2/models/cnn/infer", json=body).json()
    assert res["outputs"][0]["shape"] == [1, 10]
    np.testing.assert_allclose(res["outputs"][0]["data"], want[0], rtol=1e-4, atol=1e-4)


def _dtype_arrays() -> dict[str, np.ndarray]:
    values = {
        "BOOL": np.array([[True, False], [False, True]]),
        "BYTES": np.array([["a", "bé"], ["", "ß c"]], dtype=object),
        "BF16": np.array([[1.5, -2.0], [0.25, 3.0]], dtype=ml_dtypes.bfloat16),
    }
    for dt in V2_TO_ELEM:
        if dt not in values:
            np_type = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}.get(dt)
            np_type = np_type or np.dtype(dt.lower())
            values[dt] = np.array([[1, 2], [3, 127]], dtype=np_type)
    return values


def test_every_datatype_as_json_and_binary(triton, http):
    arrays = _dtype_arrays()
    body = {"inputs": [v2_input(f"in_{dt}", a.astype(np.float32) if dt == "BF16" else a, dt)
                       for dt, a in arrays.items()]}  # fmt: skip
    outputs = {
        o["name"]: o for o in http.post("/v2/models/dtypes/infer", json=body).json()["outputs"]
    }
    for dt, a in arrays.items():
        out = outputs[f"out_{dt}"]
        assert out["datatype"] == dt and out["shape"] == [2, 2]
        want = a.astype(np.float32).tolist() if dt == "BF16" else a.tolist()
        assert np.array(out["data"]).reshape(2, 2).tolist() == want, dt
    inputs = []
    for dt, a in arrays.items():
        inp = th.InferInput(f"in_{dt}", [2, 2], dt)
        inp.set_data_from_numpy(a, binary_data=True)
        inputs.append(inp)
    result = triton.infer("dtypes", inputs)
    for dt, a in arrays.items():
        got = result.as_numpy(f"out_{dt}")
        if dt == "BYTES":
            got = np.array([[v.decode() for v in row] for row in got], dtype=object)
        assert got.dtype == a.dtype or dt == "BYTES", dt
        np.testing.assert_array_equal(got, a)


def test_versions_and_default_newest(http):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    body = {"inputs": [v2_input("x", x, "FP32")]}
    newest = http.post("/v2/models/add/infer", json=body).json()
    assert newest["model_version"] == "2"
    assert newest["outputs"][0]["data"] == (x + 2).ravel().tolist()
    v1 = http.post("/v2/models/add/versions/1/infer", json=body).json()
    assert v1["model_version"] == "1" and v1["outputs"][0]["data"] == (x + 1).ravel().tolist()
    missing = http.post("/v2/models/add/versions/3/infer", json=body)
    assert missing.status_code == 404 and "version 3" in missing.json()["error"]
    assert http.get("/v2/models/add/versions/1/ready").json() == {"name": "add", "ready": True}


def test_gzip_and_deflate_both_ways(triton, http):
    x = np.ones((1, 4), dtype=np.float32)
    inp = th.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(x)
    for req, resp in (("gzip", "deflate"), ("deflate", "gzip")):
        result = triton.infer(
            "add", [inp], request_compression_algorithm=req, response_compression_algorithm=resp
        )
        np.testing.assert_array_equal(result.as_numpy("y"), x + 2)
    body = gzip.compress(json.dumps({"inputs": [v2_input("x", x, "FP32")]}).encode())
    res = http.post("/v2/models/add/infer", content=body, headers={"Content-Encoding": "gzip"})
    assert res.json()["outputs"][0]["data"] == [3.0] * 4
    raw = http.post(
        "/v2/models/add/infer",
        content=zlib.compress(json.dumps({"inputs": [v2_input("x", x, "FP32")]}).encode()),
        headers={"Content-Encoding": "deflate", "Accept-Encoding": "gzip"},
    )
    assert (
        raw.headers["content-encoding"] == "gzip" and raw.json()["outputs"][0]["data"] == [3.0] * 4
    )


def test_binary_output_parameter_and_header_length(http):
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    body = {"inputs": [v2_input("x", x, "FP32")], "parameters": {"binary_data_output": True}}
    res = http.post("/v2/models/add/infer", json=body)
    n = int(res.headers["inference-header-content-length"])
    header = json.loads(res.content[:n])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 16
    np.testing.assert_array_equal(np.frombuffer(res.content[n:], "<f4"), x.ravel() + 2)


def test_config_route_reads_config_pbtxt(http):
    config = http.get("/v2/models/rf_iris_tensor/config").json()
    assert config["max_batch_size"] == 32 and config["backend"] == "onnxruntime"
    assert config["output"][0]["label_filename"] == "labels.txt"
    assert config["input"] == [{"name": "X", "data_type": "TYPE_FP32", "dims": [4]}]
    linear = http.get("/v2/models/linear/config").json()
    assert linear["dynamic_batching"] == {
        "preferred_batch_size": [8, 16],
        "max_queue_delay_microseconds": 50000,
    }
    assert http.get("/v2/models/add/config").json()["version_policy"] == {"all": {}}


def test_statistics_and_metrics_count_requests(http):
    x = np.zeros((1, 4), dtype=np.float32)
    before = http.get("/v2/models/add/versions/1/stats").json()["model_stats"][0]
    for _ in range(3):
        http.post("/v2/models/add/versions/1/infer", json={"inputs": [v2_input("x", x, "FP32")]})
    http.post("/v2/models/add/versions/1/infer", json={"inputs": [v2_input("x", x, "FP64")]})
    after = http.get("/v2/models/add/versions/1/stats").json()["model_stats"][0]
    assert (
        after["inference_stats"]["success"]["count"]
        == before["inference_stats"]["success"]["count"] + 3
    )
    assert (
        after["inference_stats"]["fail"]["count"] == before["inference_stats"]["fail"]["count"] + 1
    )
    text = http.get("/metrics").text
    prefix = 'nv_inference_request_success{model="add",version="1"}'
    line = next(row for row in text.splitlines() if row.startswith(prefix))
    assert float(line.split()[-1]) == after["inference_stats"]["success"]["count"]
    assert 'nv_inference_request_failure{model="add",reason="OTHER",version="1"}' in text
    assert 'nv_inference_queue_histogram_us_bucket{le="100.0",model="add",version="1"}' in text
    assert "nv_inference_pending_request_count" in text


def test_dynamic_batching_is_correct_under_concurrency(server):
    from concurrent.futures import ThreadPoolExecutor

    w, b = linear_weights()
    rng = np.random.default_rng(5)
    requests = [
        rng.standard_normal((int(rng.integers(1, 4)), 8), dtype=np.float32) for _ in range(40)
    ]

    def send(x: np.ndarray):
        with server.client() as c:
            body = {"inputs": [v2_input("x", x, "FP32")]}
            return c.post("/v2/models/linear/infer", json=body).json()

    with server.client() as c:
        before = c.get("/v2/models/linear/stats").json()["model_stats"][0]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, requests))
    for x, res in zip(requests, results):
        out = {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in res["outputs"]}
        np.testing.assert_allclose(out["y"], x @ w + b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["rowsum"], x.sum(axis=1), rtol=1e-5, atol=1e-5)
    with server.client() as c:
        after = c.get("/v2/models/linear/stats").json()["model_stats"][0]
    executions = after["execution_count"] - before["execution_count"]
    rows = after["inference_count"] - before["inference_count"]
    assert rows == sum(len(x) for x in requests)
    assert executions < len(requests), "concurrent requests were never merged"
    assert max(s["batch_size"] for s in after["batch_stats"]) > 3


def test_bad_request_never_fails_its_batch_mates(server):
    from concurrent.futures import ThreadPoolExecutor

    # 8 rows in all: the lookup model's max_batch_size, so the batch goes when all have arrived
    indices = [[1], [2, 3], [99], [0], [4, 5, 6]]

    def send(i: list[int]):
        with server.client() as c:
            body = {"inputs": [{"name": "i", "datatype": "INT64", "shape": [len(i)], "data": i}]}
            return c.post("/v2/models/lookup/infer", json=body)

    with ThreadPoolExecutor(len(indices)) as pool:
        responses = list(pool.map(send, indices))
    for i, res in zip(indices, responses):
        if 99 in i:
            assert res.status_code == 400 and "out of range" in res.json()["error"]
        else:
            assert res.status_code == 200, res.text
            assert res.json()["outputs"][0]["data"] == [v for r in i for v in (2 * r, 2 * r + 1)]
    assert "model 'lookup:1': a batch of" in server.log, "the requests were not merged"
