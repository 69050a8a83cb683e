"""TLS on both protocols, the API key on every route but health, and request size limits."""

from __future__ import annotations

import gzip
import json
import ssl
import subprocess

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from tritonclient.utils import InferenceServerException

from tests.serving.conftest import ServerProcess
from tests.serving.models import add_model, save

pytestmark = pytest.mark.slow

KEY = "s3cret-key"
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def secure(tmp_path_factory, certificate):
    root = tmp_path_factory.mktemp("secure")
    save(add_model(1.0), root / "add" / "1" / "model.onnx")
    cert, key = certificate
    srv = ServerProcess(
        str(root), "--tls-cert", str(cert), "--tls-key", str(key), "--max-request-size", "4KiB",
        env={"ONNXPY_API_KEY": KEY},
    )  # fmt: skip
    srv.tls = ssl.create_default_context(cafile=str(cert))
    try:
        srv.wait_ready(verify=srv.tls)
        yield srv
    finally:
        srv.stop()


def test_https_with_the_api_key(secure):
    assert secure.url.startswith("https://")
    with secure.client(verify=secure.tls) as http:
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/health/ready").status_code == 200
        assert http.get("/v2/models/add/ready").status_code == 200
        for path in ("/v2", "/v2/models/add", "/metrics"):
            res = http.get(path)
            assert res.status_code == 401 and res.json() == {"error": "missing or wrong API key"}
            assert res.headers["www-authenticate"] == "Bearer"
        assert http.get("/v2", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert http.get("/v2", headers={"X-API-Key": KEY}).status_code == 200
        assert http.get("/v2", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/v2", headers={"Authorization": KEY}).status_code == 401
        res = http.post("/v2/models/add/infer", json=BODY, headers={"X-API-Key": KEY})
        assert res.json()["outputs"][0]["data"] == [2, 3, 4, 5]
        res = http.post("/v2/models/add/infer", json=BODY)
        assert res.status_code == 401


def test_grpc_over_tls_with_the_api_key(secure, certificate):
    client = tg.InferenceServerClient(secure.grpc, ssl=True, root_certificates=str(certificate[0]))
    assert client.is_server_live()
    assert client.is_model_ready("add")
    inp = tg.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer("add", [inp])
    assert info.value.status() == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException):
        client.get_server_metadata()
    result = client.infer("add", [inp], headers={"authorization": f"Bearer {KEY}"})
    np.testing.assert_array_equal(result.as_numpy("y"), np.full((1, 4), 2, dtype=np.float32))
    meta = client.get_server_metadata(headers={"x-api-key": KEY})
    assert meta.name == "onnxpy"
    # a message over --max-request-size is refused by gRPC itself
    big = tg.InferInput("x", [300, 4], "FP32")
    big.set_data_from_numpy(np.ones((300, 4), dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer("add", [big], headers={"authorization": f"Bearer {KEY}"})
    assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    # a client without TLS does not get through
    from onnxpy.serving.grpc import inference_pb2 as pb
    from onnxpy.serving.grpc import inference_pb2_grpc as pb_grpc

    with grpc.insecure_channel(secure.grpc) as plain:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.GRPCInferenceServiceStub(plain).ServerLive(pb.ServerLiveRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_request_size_limits(secure):
    headers = {"X-API-Key": KEY}
    big = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [300, 4], "data": [1.0] * 1200}]}
    with secure.client(verify=secure.tls) as http:
        res = http.post("/v2/models/add/infer", json=big, headers=headers)
        assert res.status_code == 413 and "over the limit of 4096" in res.json()["error"]

        def chunks():
            blob = json.dumps(big).encode()
            for i in range(0, len(blob), 1000):
                yield blob[i : i + 1000]

        res = http.post("/v2/models/add/infer", content=chunks(), headers=headers)
        assert res.status_code == 413 and "over the limit" in res.json()["error"]
        bomb = gzip.compress(b" " * 1_000_000)
        assert len(bomb) < 4096
        res = http.post(
            "/v2/models/add/infer", content=bomb, headers={**headers, "Content-Encoding": "gzip"}
        )
        assert res.status_code == 413 and "decompressed" in res.json()["error"]
        assert http.post("/v2/models/add/infer", json=BODY, headers=headers).status_code == 200
