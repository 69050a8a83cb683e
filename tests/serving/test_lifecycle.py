"""The server's life: settings from file, environment and flags; the metrics port; structured
access logs; and SIGTERM, which lets requests in flight on both protocols finish before exiting."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th

from tests.serving.conftest import ServerProcess
from tests.serving.models import add_model, save, slow_model

pytestmark = pytest.mark.slow


def test_settings_file_environment_and_metrics_port(tmp_path):
    save(add_model(1.0), tmp_path / "adder.onnx")
    (tmp_path / "serve.toml").write_text(
        "max_batch_size = 4\nmax-queue-delay-us = 250\naccess_log = false\nmetrics_port = 0\n"
    )
    srv = ServerProcess(
        str(tmp_path / "adder.onnx"), "--config", str(tmp_path / "serve.toml"),
        env={"ONNXPY_MAX_BATCH_SIZE": "6"},
    )  # fmt: skip
    try:
        srv.wait_ready()
        with srv.client() as http:
            config = http.get("/v2/models/adder/config").json()
            # the environment beats the file; the file's other keys apply
            assert config["max_batch_size"] == 6
            assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 250
            http.post(
                "/v2/models/adder/infer",
                json={
                    "inputs": [
                        {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0, 0, 0, 0]}
                    ]
                },
            )
        assert srv.metrics.endswith("/metrics")
        text = httpx.get(srv.metrics).text
        assert 'nv_inference_request_success{model="adder",version="1"} 1.0' in text
        assert httpx.get(srv.metrics.replace("/metrics", "/v2")).status_code == 404
        assert not any(line.startswith('{"time"') for line in srv.lines)  # access_log = false
    finally:
        srv.stop()


def test_bad_settings_fail_with_a_clear_message(tmp_path):
    import subprocess
    import sys

    (tmp_path / "bad.toml").write_text("max_batch_sise = 4\n")
    serve = [sys.executable, "-m", "onnxpy", "serve"]
    res = subprocess.run(
        [*serve, str(tmp_path), "--config", str(tmp_path / "bad.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 3 and "unknown setting 'max_batch_sise'" in res.stderr
    res = subprocess.run(
        [*serve, str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 3 and "neither a folder nor a file" in res.stderr


def _port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def test_sigterm_drains_requests_in_flight(tmp_path):
    save(slow_model(), tmp_path / "repo" / "slow" / "1" / "model.onnx")
    srv = ServerProcess(str(tmp_path / "repo"), "--drain-timeout", "60")
    w = np.asarray(__import__("onnx").numpy_helper.to_array(slow_model().graph.initializer[0]))
    x = np.random.default_rng(0).standard_normal((256, 512), dtype=np.float32)
    want = x.copy()
    for _ in range(16):
        want = want @ w
    results: dict[str, object] = {}

    def via_http(i: int) -> None:  # binary tensors: the client spends no time encoding
        client = th.InferenceServerClient(srv.http, network_timeout=120)
        inp = th.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        results[f"http{i}"] = client.infer("slow", [inp]).as_numpy("y")

    def via_grpc() -> None:
        client = tg.InferenceServerClient(srv.grpc)
        inp = tg.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        results["grpc"] = client.infer("slow", [inp], client_timeout=120).as_numpy("y")

    try:
        srv.wait_ready()
        threads = [threading.Thread(target=via_http, args=(i,)) for i in range(3)]
        threads.append(threading.Thread(target=via_grpc))
        for t in threads:
            t.start()
        deadline, inflight = time.monotonic() + 20, 0.0
        with httpx.Client() as c:  # wait until several are queued or running
            while inflight < 2 and time.monotonic() < deadline:
                text = c.get(f"http://{srv.http}/metrics").text
                rows = [r for r in text.splitlines() if r.startswith("nv_inference_inflight")]
                inflight = float(rows[-1].split()[-1]) if rows else 0.0
                time.sleep(0.01)
        assert inflight >= 2, "the requests never overlapped; nothing to drain"
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _port_open(srv.http) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _port_open(srv.http), "the listener must close on SIGTERM"
        for t in threads:
            t.join(120)
        code = srv.proc.wait(60)
    finally:
        srv.stop()
    assert code == 0, srv.log
    for name in ("http0", "http1", "http2", "grpc"):
        np.testing.assert_allclose(results[name], want, rtol=1e-3, atol=1e-3)
    drained = re.search(r"draining: (\d+) request", srv.log)
    assert drained and int(drained.group(1)) >= 1 and "stopped" in srv.log, srv.log
    access = [json.loads(line) for line in srv.lines if line.startswith('{"time"')]
    infers = [a for a in access if a.get("path") == "/v2/models/slow/infer"]
    assert len(infers) == 3 and all(a["status"] == 200 and a["ms"] > 0 for a in infers)
    assert any(a["proto"] == "grpc" and a["method"] == "ModelInfer" and a["code"] == "OK"
               for a in access)  # fmt: skip
