"""The server on a real local Ray (2 CPUs, no dashboard): two replicas behind Serve's proxies.

One application for the module (iris forest, the versioned ``add``, explicit model control, an
API key, a 64 KiB request limit), queried with tritonclient over HTTP and gRPC and with plain
HTTP. The last test kills a replica's actor under traffic.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("ray", reason="the Ray tests need the ray extra")
pytest.importorskip("tritonclient.grpc", reason="the server tests need tritonclient (dev extra)")

import httpx  # noqa: E402
import tritonclient.grpc as tg  # noqa: E402
import tritonclient.http as th  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from tests.serving.models import (  # noqa: E402
    add_model,
    iris_repository,
    linear_model,
    save,
    write_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

KEY = "ray-test-key"
HTTP_KEY = {"Authorization": f"Bearer {KEY}"}
GRPC_KEY = {"authorization": f"Bearer {KEY}"}


def key() -> dict[str, str]:
    """A fresh header dict: tritonclient's HTTP infer adds Inference-Header-Content-Length to
    the dict it is given, which would then go with the next (JSON) request too."""
    return dict(HTTP_KEY)


LIMIT = 64 << 10
APP = "onnxpy"


def _repository(root):
    clf, x = iris_repository(root)
    # a long delay, so that concurrent single rows visibly merge into batches
    write_config(
        root / "rf_iris_tensor",
        "max_batch_size: 32\ndynamic_batching { max_queue_delay_microseconds: 20000 }\n",
    )
    for version, constant in ((1, 1.0), (2, 2.0)):
        save(add_model(constant), root / "add" / str(version) / "model.onnx")
    write_config(root / "add", "max_batch_size: 0\nversion_policy: { all { } }\n")
    save(linear_model(), root / "linear" / "1" / "model.onnx")
    return clf, x


@pytest.fixture(scope="module")
def deployed(ray_serve, tmp_path_factory):
    from ray import serve

    from onnxpy.serving.ray import app

    root = tmp_path_factory.mktemp("ray-repo")
    clf, x = _repository(root)
    application = app(
        root,
        replicas=2,
        num_cpus_per_replica=0.5,
        model_control="explicit",
        load_model=("rf_iris", "rf_iris_tensor", "add"),
        api_key=KEY,
        max_request_size=LIMIT,
        access_log=False,
    )
    serve.run(application, name=APP, route_prefix="/")
    try:
        yield ray_serve, clf, x
    finally:
        serve.delete(APP)


def _metrics(http: str) -> dict[tuple[str, str, str], float]:
    """{(family, model, replica): value} from the merged /metrics."""
    text = httpx.get(f"http://{http}/metrics", headers=HTTP_KEY, timeout=30).text
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if "replica" in s.labels and "model" in s.labels:
                out[(s.name, s.labels["model"], s.labels["replica"])] = s.value
    return out


def _per_replica(metrics, name: str, model: str) -> dict[str, float]:
    return {r: v for (n, m, r), v in metrics.items() if n == name and m == model}


def _concurrently(fn, n: int, workers: int = 8) -> list:
    """``fn(i)`` for i < n from ``workers`` threads. Sequential requests may all go to one
    replica (Serve's router keeps choosing an idle one it knows); concurrent ones spread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, range(n)))


def _settled_metrics(http, model, names, timeout=20.0):
    """{name: {replica: value}} once two reads a refresh apart agree: /metrics answers each
    replica's last reported exposition (sent with its poll, every POLL_S at most), so a read
    right after traffic may still miss some of it."""
    from onnxpy.serving.ray.coordinator import POLL_S

    deadline = time.monotonic() + timeout
    last = None
    while True:
        metrics = _metrics(http)
        now = {n: _per_replica(metrics, n, model) for n in names}
        if now == last or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(POLL_S + 0.5)


def _wait_metrics(http, name, model, check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        values = _per_replica(_metrics(http), name, model)
        if check(values) or time.monotonic() > deadline:
            return values
        time.sleep(0.5)


def test_two_replicas_answer_like_scikit_learn_over_every_client(deployed):
    proxies, clf, x = deployed
    expected = clf.predict_proba(x)
    labels = clf.predict(x)
    rpc = tg.InferenceServerClient(proxies.grpc)
    success = "nv_inference_request_success"
    before = sum(_settled_metrics(proxies.http, "rf_iris_tensor", [success])[success].values())

    def check(i: int) -> None:  # 30 rows at a time (max_batch_size is 32), both protocols
        start = (i % 5) * 30
        rows = x[start : start + 30]
        a = th.InferInput("X", list(rows.shape), "FP32")
        a.set_data_from_numpy(rows, binary_data=i % 2 == 0)
        http = th.InferenceServerClient(proxies.http)  # one per thread: gevent inside
        got = http.infer("rf_iris_tensor", [a], headers=key()).as_numpy("probabilities")
        np.testing.assert_allclose(got, expected[start : start + 30], atol=1e-6)
        b = tg.InferInput("X", list(rows.shape), "FP32")
        b.set_data_from_numpy(rows)
        got = rpc.infer("rf_iris_tensor", [b], headers=GRPC_KEY).as_numpy("probabilities")
        np.testing.assert_allclose(got, expected[start : start + 30], atol=1e-6)

    _concurrently(check, 20, workers=4)
    sent = 40
    # plain HTTP, JSON, the ZipMap model: labels and per-class probability maps
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": list(x[:20].shape),
                        "data": x[:20].ravel().tolist()}]}  # fmt: skip
    answer = httpx.post(f"http://{proxies.http}/v2/models/rf_iris/infer", json=body,
                        headers=HTTP_KEY, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["output_label"]["data"] == labels[:20].tolist()
    import json

    maps = [json.loads(m) for m in outputs["output_probability"]["data"]]
    got = np.array([[m[str(c)] for c in range(3)] for m in maps])
    np.testing.assert_allclose(got, expected[:20], atol=1e-6)
    # every replica answered some: /metrics gathers both, labelled by replica
    counts = _wait_metrics(
        proxies.http, "nv_inference_request_success", "rf_iris_tensor",
        lambda v: sum(v.values()) - before >= sent,
    )  # fmt: skip
    assert len(counts) == 2, counts
    assert sum(counts.values()) - before == sent
    assert all(v > 0 for v in counts.values()), counts


def test_batching_and_versions_work_inside_replicas(deployed):
    proxies, clf, x = deployed
    families = ["nv_inference_count", "nv_inference_exec_count"]
    settled = _settled_metrics(proxies.http, "rf_iris_tensor", families)
    rows, execs = settled["nv_inference_count"], settled["nv_inference_exec_count"]
    clients = [httpx.Client(base_url=f"http://{proxies.http}", headers=HTTP_KEY, timeout=60)
               for _ in range(32)]  # fmt: skip
    answers = [None] * 64

    def send(i):
        body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                            "data": x[i].tolist()}],
                "outputs": [{"name": "probabilities"}]}  # fmt: skip
        answers[i] = clients[i % 32].post("/v2/models/rf_iris_tensor/infer", json=body)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    assert all(a.status_code == 200 for a in answers), [
        a.text for a in answers if a.status_code != 200
    ]
    for i, a in enumerate(answers):
        expected = clf.predict_proba(x[i : i + 1])[0]
        np.testing.assert_allclose(a.json()["outputs"][0]["data"], expected, atol=1e-6)
    after_rows = _wait_metrics(
        proxies.http, "nv_inference_count", "rf_iris_tensor",
        lambda v: sum(v.values()) - sum(rows.values()) >= 64,
    )  # fmt: skip
    settled = _settled_metrics(proxies.http, "rf_iris_tensor", families)
    after_rows, after_execs = settled["nv_inference_count"], settled["nv_inference_exec_count"]
    assert sum(after_rows.values()) - sum(rows.values()) == 64
    executions = sum(after_execs.values()) - sum(execs.values())
    assert executions < 64 / 2, f"64 rows ran in {executions} executions: no batches formed"

    rpc = tg.InferenceServerClient(proxies.grpc)
    ones = np.ones((2, 4), dtype=np.float32)
    for version, plus in (("1", 1.0), ("2", 2.0), ("", 2.0)):
        a = tg.InferInput("x", [2, 4], "FP32")
        a.set_data_from_numpy(ones)
        got = rpc.infer("add", [a], model_version=version, headers=GRPC_KEY).as_numpy("y")
        np.testing.assert_array_equal(got, ones + plus)
    meta = th.InferenceServerClient(proxies.http).get_model_metadata("add", headers=HTTP_KEY)
    assert meta["versions"] == ["1", "2"]


def test_explicit_load_and_unload_reach_every_replica(deployed):
    proxies, _, _ = deployed
    http = th.InferenceServerClient(proxies.http)
    rpc = tg.InferenceServerClient(proxies.grpc)
    x = np.arange(16, dtype=np.float32).reshape(2, 8)

    def infer_linear():
        a = tg.InferInput("x", [2, 8], "FP32")
        a.set_data_from_numpy(x)
        return rpc.infer("linear", [a], headers=GRPC_KEY).as_numpy("rowsum")

    with pytest.raises(InferenceServerException):
        infer_linear()
    http.load_model("linear", headers=HTTP_KEY)
    # every request after the load is answered, until both replicas are seen answering some
    # (Serve's router may keep a light load on one replica: send rounds until it spreads)
    sent, counts = 0, {}
    for _ in range(6):
        for answer in _concurrently(lambda i: infer_linear(), 40):
            np.testing.assert_allclose(answer, x.sum(axis=1))
        sent += 40
        counts = _wait_metrics(proxies.http, "nv_inference_request_success", "linear",
                               lambda v, n=sent: len(v) == 2 and sum(v.values()) >= n)  # fmt: skip
        if len(counts) == 2 and all(v > 0 for v in counts.values()):
            break
    assert len(counts) == 2 and all(v > 0 for v in counts.values()), counts
    assert sum(counts.values()) == sent
    rpc.unload_model("linear", headers=GRPC_KEY)

    def refused(i: int) -> bool:
        try:
            infer_linear()
        except InferenceServerException:
            return True
        return False

    assert all(_concurrently(refused, 40))
    index = {m["name"]: m for m in http.get_model_repository_index(headers=HTTP_KEY)}
    assert index["linear"].get("state") != "READY"


def test_api_key_size_limit_and_errors_hold_on_both_protocols(deployed):
    proxies, _, x = deployed
    base = f"http://{proxies.http}"
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": x[0].tolist()}]}
    assert httpx.post(f"{base}/v2/models/rf_iris_tensor/infer", json=body).status_code == 401
    assert httpx.get(f"{base}/v2/health/ready").status_code == 200  # probes need no key
    rpc = tg.InferenceServerClient(proxies.grpc)
    assert rpc.is_server_live()
    with pytest.raises(InferenceServerException, match="API key"):
        rpc.get_server_metadata()
    assert rpc.get_server_metadata(headers=GRPC_KEY).name == "onnxpy"

    big = np.zeros((LIMIT // 16 + 64, 4), dtype=np.float32)  # over the 64 KiB limit
    a = th.InferInput("X", list(big.shape), "FP32")
    a.set_data_from_numpy(big, binary_data=True)
    with pytest.raises(InferenceServerException) as info:
        th.InferenceServerClient(proxies.http).infer("rf_iris_tensor", [a], headers=key())
    assert info.value.status() == "413"
    b = tg.InferInput("X", list(big.shape), "FP32")
    b.set_data_from_numpy(big)
    with pytest.raises(InferenceServerException) as info:
        rpc.infer("rf_iris_tensor", [b], headers=GRPC_KEY)
    assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED"

    bad = httpx.post(f"{base}/v2/models/rf_iris_tensor/infer", content=b"{not json",
                     headers=HTTP_KEY)  # fmt: skip
    assert bad.status_code == 400 and "error" in bad.json()
    c = tg.InferInput("X", [1, 4], "FP64")
    c.set_data_from_numpy(x[:1].astype(np.float64))
    with pytest.raises(InferenceServerException) as info:
        rpc.infer("rf_iris_tensor", [c], headers=GRPC_KEY)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "FP64" in info.value.message() or "datatype" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        rpc.infer("no_such_model", [c], headers=GRPC_KEY)
    assert info.value.status() == "StatusCode.NOT_FOUND"


def _replica_actors(ray):
    names = ray.util.list_named_actors(all_namespaces=True)
    return sorted(n["name"] for n in names if n["name"].startswith(f"SERVE_REPLICA::{APP}#onnxpy#"))


def test_killing_a_replica_mid_traffic_fails_only_its_requests_in_flight(deployed, ray_local):
    from ray import serve

    ray = ray_local
    proxies, clf, x = deployed
    replicas = _replica_actors(ray)
    assert len(replicas) == 2, replicas
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [30, 4],
                        "data": x[:30].ravel().tolist()}],
            "outputs": [{"name": "probabilities"}]}  # fmt: skip
    expected = clf.predict_proba(x[:30])
    log: list[tuple[float, float, bool]] = []  # (start, end, ok)
    stop = threading.Event()

    def client():
        with httpx.Client(base_url=f"http://{proxies.http}", headers=HTTP_KEY, timeout=60) as c:
            while not stop.is_set():
                start = time.monotonic()
                try:
                    r = c.post("/v2/models/rf_iris_tensor/infer", json=body)
                    ok = r.status_code == 200 and np.allclose(
                        r.json()["outputs"][0]["data"], expected.ravel(), atol=1e-6
                    )
                except httpx.HTTPError:
                    ok = False
                log.append((start, time.monotonic(), ok))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    victim = ray.get_actor(replicas[0], namespace="serve")
    killed_at = time.monotonic()
    ray.kill(victim, no_restart=True)
    killed_done = time.monotonic()
    time.sleep(6.0)
    stop.set()
    for t in threads:
        t.join()
    before = [e for e in log if e[1] < killed_at]
    in_flight = [e for e in log if e[0] <= killed_done and e[1] >= killed_at]
    after = [e for e in log if e[0] > killed_done]
    assert before and after, (len(before), len(after))
    assert all(ok for _, _, ok in before)
    failed_after = [
        (round(s - killed_at, 3), round(e - killed_at, 3)) for s, e, ok in after if not ok
    ]
    assert not failed_after, f"requests sent after the kill failed: {failed_after}"
    failed_in_flight = sum(not ok for *_, ok in in_flight)
    print(f"kill: {len(before)} before, {len(in_flight)} in flight ({failed_in_flight} failed), "
          f"{len(after)} after, all answered")  # fmt: skip
    # Serve replaces the dead replica: two replicas serve again
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = serve.status().applications[APP].deployments["onnxpy"]
        current = _replica_actors(ray)
        if status.status == "HEALTHY" and len(current) == 2 and replicas[0] not in current:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the dead replica was not replaced: {status}")
