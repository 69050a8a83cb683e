"""Model repositories served for real: explicit load/unload, a model that fails, path traversal,
polling that reloads while requests flow, and the tutorials' JSON model_config_list."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from tests.serving.conftest import ServerProcess
from tests.serving.models import add_model, cnn_model, linear_model, save, write_config

pytestmark = pytest.mark.slow

X = np.arange(8, dtype=np.float32).reshape(2, 4)
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()}]}


def _explicit_repo(root: Path) -> Path:
    save(add_model(1.0), root / "add" / "1" / "model.onnx")
    save(linear_model(), root / "linear" / "1" / "model.onnx")
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "model.onnx").write_bytes(b"this is not an ONNX model")
    save(add_model(5.0), root / "tf" / "1" / "model.onnx")
    write_config(root / "tf", 'platform: "tensorflow_savedmodel"\n')
    return root


@pytest.fixture(scope="module")
def explicit(tmp_path_factory):
    root = _explicit_repo(tmp_path_factory.mktemp("explicit"))
    srv = ServerProcess(str(root), "--model-control", "explicit", "--load-model", "add")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_explicit_mode_loads_only_what_is_asked(explicit):
    c = th.InferenceServerClient(explicit.http)
    index = {m["name"]: m for m in c.get_model_repository_index()}
    assert index["add"]["state"] == "READY"
    assert index["linear"]["state"] == "UNAVAILABLE" and index["linear"]["reason"] == "not loaded"
    assert c.is_server_ready()
    with explicit.client() as http:
        res = http.post("/v2/models/linear/infer", json=BODY)
        assert res.status_code == 503 and "not loaded" in res.json()["error"]
    c.load_model("linear")
    assert c.is_model_ready("linear")
    x = np.zeros((1, 8), dtype=np.float32)
    inp = th.InferInput("x", [1, 8], "FP32")
    inp.set_data_from_numpy(x)
    assert c.infer("linear", [inp]).as_numpy("rowsum").tolist() == [0.0]


def test_unload_refuses_new_requests_and_grpc_load_brings_it_back(explicit):
    g = tg.InferenceServerClient(explicit.grpc)
    g.unload_model("add")
    deadline = time.monotonic() + 10
    while g.is_model_ready("add") and time.monotonic() < deadline:
        time.sleep(0.05)
    with explicit.client() as http:
        res = http.post("/v2/models/add/infer", json=BODY)
        assert res.status_code == 503 and "unloaded" in res.json()["error"]
        assert http.get("/v2/models/add/ready").status_code == 400
    g.load_model("add")
    with explicit.client() as http:
        assert http.post("/v2/models/add/infer", json=BODY).json()["outputs"][0]["data"] == (
            (X + 1).ravel().tolist()
        )


def test_a_model_that_fails_to_load_is_reported_and_the_others_keep_serving(explicit):
    c = th.InferenceServerClient(explicit.http)
    for name, words in (("broken", "broken"), ("tf", "not ONNX")):
        with pytest.raises(InferenceServerException) as info:
            c.load_model(name)
        assert info.value.status() == "400" and words in info.value.message()
        index = {m["name"]: m for m in c.get_model_repository_index()}
        assert index[name]["state"] == "UNAVAILABLE" and words in index[name]["reason"]
        with explicit.client() as http:
            meta = http.get(f"/v2/models/{name}")
            assert meta.status_code == 503 and words in meta.json()["error"]
    assert not c.is_server_ready()  # strict: every model meant to be loaded must be ready
    assert c.is_model_ready("add")
    with explicit.client() as http:
        assert http.post("/v2/models/add/infer", json=BODY).status_code == 200
        ready = http.get("/v2/health/ready")
        assert ready.status_code == 400 and "broken" in ready.json()["error"]
    assert "model 'broken' version 1 failed to load" in explicit.log
    c.unload_model("broken")
    c.unload_model("tf")


def test_the_repository_api_never_leaves_the_repository(explicit):
    with explicit.client() as http:
        for name in ("..", "...", "..%2F..%2Fetc", "%2Fetc", ".hidden", "a%00b"):
            res = http.post(f"/v2/repository/models/{name}/load")
            assert res.status_code == 404, (name, res.text)
            assert list(res.json()) == ["error"]
        res = http.post(
            "/v2/repository/models/add/load", json={"parameters": {"file:1/model.onnx": "x"}}
        )
        assert res.status_code == 501 and "not offered" in res.json()["error"]


@pytest.mark.parametrize("version_dir", ["2"])
def test_polling_reloads_while_requests_flow(tmp_path, version_dir):
    root = tmp_path / "repo"
    save(add_model(1.0), root / "hot" / "1" / "model.onnx")
    srv = ServerProcess(str(root), "--model-control", "poll", "--repository-poll-secs", "0.2",
                        "--no-access-log")  # fmt: skip
    results: list[tuple[int, str, list]] = []
    stop = threading.Event()

    def hammer() -> None:
        with srv.client() as http:
            while not stop.is_set():
                res = http.post("/v2/models/hot/infer", json=BODY)
                doc = res.json()
                results.append((res.status_code, doc.get("model_version", ""), doc))

    try:
        srv.wait_ready()
        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        staging = tmp_path / "staging"
        save(add_model(2.0), staging / "model.onnx")
        os.rename(staging, root / "hot" / version_dir)  # appear at once, as a deploy would
        deadline = time.monotonic() + 20
        while not any(v == "2" for _, v, _ in results[-5:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        save(add_model(3.0), tmp_path / "other" / "1" / "model.onnx")
        shutil.move(str(tmp_path / "other"), str(root / "newcomer"))
        srv.wait_ready("/v2/models/newcomer/ready", timeout=20)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
    finally:
        stop.set()
        srv.stop()
    assert results, "no request was sent"
    failures = [doc for status, _, doc in results if status != 200]
    assert not failures, failures[:3]
    versions = [v for _, v, _ in results]
    assert "1" in versions and versions[-1] == "2"
    first_v2 = versions.index("2")
    assert versions[first_v2:].count("1") <= 6  # only requests already in flight at the swap
    for _, version, doc in results:
        want = X + (1.0 if version == "1" else 2.0)
        assert doc["outputs"][0]["data"] == want.ravel().tolist()
    assert "model 'hot' version 1 unloaded" in srv.log


def test_tutorials_json_model_config_list(tmp_path):
    iris = tmp_path / "models" / "adder"
    save(add_model(4.0), iris / "1" / "model.onnx")
    cnn = tmp_path / "cnn.onnx"
    cnn.write_bytes(cnn_model().read_bytes())
    config = {
        "model_config_list": [
            {"config": {"name": "adder", "base_path": "models/adder",
                        "model_platform": "onnxruntime_onnx", "max_batch_size": 8}},
            {"name": "cnn", "base_path": str(cnn), "model_platform": "onnxruntime_onnx"},
            {"name": "tf_model", "base_path": "models/adder", "model_platform": "tensorflow"},
        ]
    }  # fmt: skip
    (tmp_path / "models.json").write_text(json.dumps(config))
    srv = ServerProcess("--model-config-list", str(tmp_path / "models.json"))
    try:
        srv.wait_ready("/v2/models/cnn/ready")
        srv.wait_ready("/v2/models/adder/ready")
        with srv.client() as http:
            cfg = http.get("/v2/models/adder/config").json()
            assert cfg["max_batch_size"] == 8 and "dynamic_batching" in cfg
            res = http.post("/v2/models/adder/infer", json=BODY).json()
            assert res["outputs"][0]["data"] == (X + 4).ravel().tolist()
            image = {"name": "image", "datatype": "FP32", "shape": [1, 3, 32, 32],
                     "data": [0.0] * 3072}  # fmt: skip
            assert http.post("/v2/models/cnn/infer", json={"inputs": [image]}).status_code == 200
            tf = http.get("/v2/models/tf_model/ready")
            assert tf.status_code == 400 and "not ONNX" in tf.json()["error"]
            assert http.get("/v2/health/ready").status_code == 400
    finally:
        srv.stop()


def test_unknown_config_fields_are_logged_and_warmup_runs_before_ready(server):
    assert "config.pbtxt: fields onnxpy does not use were ignored" in server.log
    assert "ModelConfig.optimization" in server.log and "model_transaction_policy" in server.log
    warm = server.log.index("model 'linear' version 1: warmup 'zeros' ran 1 time(s)")
    assert warm < server.log.index("model 'linear' version 1 is ready")


def test_a_full_queue_answers_503_at_once(server):
    from concurrent.futures import ThreadPoolExecutor

    import tritonclient.http as th

    x = np.ones((256, 512), dtype=np.float32)
    together = threading.Barrier(6)

    def send(_):
        client = th.InferenceServerClient(server.http, network_timeout=120)
        inp = th.InferInput("x", [256, 512], "FP32")
        inp.set_data_from_numpy(x)
        together.wait(30)  # all six arrive at once: one runs, one waits, four are refused
        start = time.monotonic()
        try:
            client.infer("slowq", [inp])
            return 200, "", time.monotonic() - start
        except InferenceServerException as e:
            return int(e.status()), e.message(), time.monotonic() - start

    # On a loaded machine the six may reach the server spread over more than one run of the
    # model (~15 ms), and then none waits for a full queue: send rounds until one does.
    refused, served = [], 0
    for _ in range(5):
        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(send, range(6)))
        assert all(status in (200, 503) for status, _, _ in outcomes), outcomes
        refused = [o for o in outcomes if o[0] == 503]
        served = sum(status == 200 for status, _, _ in outcomes)
        if refused:
            break
    assert refused and all("max_queue_size" in message for _, message, _ in refused)
    assert served >= 2  # one running, one queued
    with server.client() as http:
        text = http.get("/metrics").text
    assert 'nv_inference_request_failure{model="slowq",reason="REJECTED",version="1"}' in text
