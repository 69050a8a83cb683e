"""Every refusal the issue lists, over REST: a JSON {"error": ...} naming the problem, the right
status, never a 500 or a traceback; and the server keeps serving afterwards."""

from __future__ import annotations

import json
import socket

import pytest

pytestmark = pytest.mark.slow

BODY = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]})
X = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}


def _infer(model: str, *inputs: dict, **extra) -> dict:
    return {"inputs": list(inputs), **extra}


def _dtypes_body(**override) -> dict:
    """A valid request for the dtypes model, with one input replaced."""
    from tests.serving.models import V2_TO_ELEM

    inputs = []
    for dt in V2_TO_ELEM:
        data = {"BOOL": [True, False], "BYTES": ["a", "b"]}.get(dt, [1, 2])
        inputs.append({"name": f"in_{dt}", "datatype": dt, "shape": [1, 2], "data": data})
    for name, replacement in override.items():
        inputs = [replacement if i["name"] == name else i for i in inputs]
    return {"inputs": inputs}


CASES = [
    # (id, method, path, body (dict -> JSON, bytes raw), headers, status, words in the error)
    ("malformed-json", "POST", "/v2/models/add/infer", b'{"inputs": [', {}, 400, "malformed JSON"),
    ("not-an-object", "POST", "/v2/models/add/infer", b"[1, 2]", {}, 400, "JSON object"),
    ("empty-body", "POST", "/v2/models/add/infer", b"", {}, 400, "malformed JSON"),
    ("unknown-route", "GET", "/v3/models", None, {}, 404, "no route"),
    ("wrong-method", "GET", "/v2/models/add/infer", None, {}, 405, "not allowed"),
    ("wrong-method-put", "PUT", "/v2/health/live", None, {}, 405, "not allowed"),
    ("unknown-model", "POST", "/v2/models/nope/infer", _infer("nope", X), {}, 404, "unknown model"),
    ("unknown-model-meta", "GET", "/v2/models/nope", None, {}, 404, "unknown model"),
    ("unknown-version", "POST", "/v2/models/add/versions/7/infer", _infer("add", X), {}, 404,
     "no version 7"),
    ("bad-version", "GET", "/v2/models/add/versions/x1", None, {}, 404, "no version"),
    ("no-inputs", "POST", "/v2/models/add/infer", {"inputs": []}, {}, 400, "non-empty list"),
    ("missing-input", "POST", "/v2/models/dtypes/infer",
     {"inputs": _dtypes_body()["inputs"][1:]}, {}, 400, "needs input(s) ['in_BOOL']"),
    ("extra-input", "POST", "/v2/models/add/infer", _infer("add", X, {**X, "name": "z"}), {}, 400,
     "unexpected input 'z'"),
    ("duplicate-input", "POST", "/v2/models/add/infer", _infer("add", X, X), {}, 400,
     "given twice"),
    ("wrong-datatype", "POST", "/v2/models/add/infer", _infer("add", {**X, "datatype": "FP64"}), {},
     400, "expects FP32"),
    ("unknown-datatype", "POST", "/v2/models/add/infer", _infer("add", {**X, "datatype": "FLOAT"}),
     {}, 400, "not one of"),
    ("negative-dim", "POST", "/v2/models/add/infer", _infer("add", {**X, "shape": [-1, 4]}), {},
     400, "negative"),
    ("huge-dim", "POST", "/v2/models/add/infer", _infer("add", {**X, "shape": [2**60, 4]}), {},
     400, "huge"),
    ("huge-product", "POST", "/v2/models/add/infer", _infer("add", {**X, "shape": [2**40, 4]}), {},
     400, "elements"),
    ("shape-not-list", "POST", "/v2/models/add/infer", _infer("add", {**X, "shape": "1,4"}), {},
     400, "shape must be a list"),
    ("fixed-dim", "POST", "/v2/models/add/infer",
     _infer("add", {**X, "shape": [1, 5], "data": [1] * 5}), {}, 400, "expects [-1, 4]"),
    ("rank", "POST", "/v2/models/add/infer", _infer("add", {**X, "shape": [4]}), {}, 400,
     "expects [-1, 4]"),
    ("data-length", "POST", "/v2/models/add/infer", _infer("add", {**X, "data": [1, 2, 3]}), {},
     400, "needs 4 elements, data has 3"),
    ("ragged-data", "POST", "/v2/models/add/infer",
     _infer("add", {**X, "data": [[1, 2], [3]]}), {}, 400, "rectangular"),
    ("string-data", "POST", "/v2/models/add/infer",
     _infer("add", {**X, "data": ["a", "b", "c", "d"]}), {}, 400, "must be numbers"),
    ("null-data", "POST", "/v2/models/add/infer",
     _infer("add", {**X, "data": [1, None, 3, 4]}), {}, 400, "must be numbers"),
    ("no-data", "POST", "/v2/models/add/infer", _infer("add", {k: X[k] for k in X if k != "data"}),
     {}, 400, "neither 'data'"),
    ("int-out-of-range", "POST", "/v2/models/dtypes/infer",
     _dtypes_body(in_INT8={"name": "in_INT8", "datatype": "INT8", "shape": [1, 2],
                           "data": [1, 300]}), {}, 400, "out of range for INT8"),
    ("float-for-int", "POST", "/v2/models/dtypes/infer",
     _dtypes_body(in_INT32={"name": "in_INT32", "datatype": "INT32", "shape": [1, 2],
                            "data": [1.5, 2]}), {}, 400, "non-integer"),
    ("number-for-bool", "POST", "/v2/models/dtypes/infer",
     _dtypes_body(in_BOOL={"name": "in_BOOL", "datatype": "BOOL", "shape": [1, 2],
                           "data": [1, 0]}), {}, 400, "true/false"),
    ("batch-dims-disagree", "POST", "/v2/models/dtypes/infer",
     _dtypes_body(in_FP32={"name": "in_FP32", "datatype": "FP32", "shape": [2, 2],
                           "data": [1, 2, 3, 4]}), {}, 400, "dimension 'batch'"),
    ("over-max-batch", "POST", "/v2/models/linear/infer",
     _infer("linear", {"name": "x", "datatype": "FP32", "shape": [17, 8], "data": [0] * 136}), {},
     400, "max_batch_size 16"),
    ("unknown-output", "POST", "/v2/models/add/infer",
     _infer("add", X, outputs=[{"name": "nope"}]), {}, 400, "unexpected output 'nope'"),
    ("duplicate-output", "POST", "/v2/models/add/infer",
     _infer("add", X, outputs=[{"name": "y"}, {"name": "y"}]), {}, 400, "requested twice"),
    ("classify-bytes", "POST", "/v2/models/rf_iris/infer",
     _infer("rf_iris", {"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
            outputs=[{"name": "output_probability", "parameters": {"classification": 2}}]), {},
     400, "cannot be classified"),
    ("id-not-string", "POST", "/v2/models/add/infer", _infer("add", X, id=5), {}, 400,
     "'id' must be a string"),
    ("sequence-id", "POST", "/v2/models/add/infer",
     _infer("add", X, parameters={"sequence_id": 3}), {}, 501, "sequence batching"),
    ("shared-memory-input", "POST", "/v2/models/add/infer",
     _infer("add", {**X, "parameters": {"shared_memory_region": "r"}}), {}, 501, "shared-memory"),
    ("shared-memory-route", "GET", "/v2/systemsharedmemory/status", None, {}, 501, "not offer"),
    ("repository-load-not-explicit", "POST", "/v2/repository/models/add/load", b"", {}, 501,
     "--model-control explicit"),
    ("header-length-not-number", "POST", "/v2/models/add/infer", BODY.encode(),
     {"Inference-Header-Content-Length": "ten"}, 400, "byte count"),
    ("header-length-too-long", "POST", "/v2/models/add/infer", BODY.encode(),
     {"Inference-Header-Content-Length": "100000"}, 400, "has only"),
    ("bad-encoding", "POST", "/v2/models/add/infer", b"xx", {"Content-Encoding": "br"}, 501, "br"),
    ("corrupt-gzip", "POST", "/v2/models/add/infer", b"not gzip", {"Content-Encoding": "gzip"},
     400, "not valid gzip"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refusals_are_json_with_the_right_status(http, case):
    _, method, path, body, headers, status, words = case
    kwargs = {"headers": headers}
    if isinstance(body, dict):
        kwargs["json"] = body
    elif body is not None:
        kwargs["content"] = body
    res = http.request(method, path, **kwargs)
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == "application/json"
    doc = res.json()
    assert list(doc) == ["error"] and words in doc["error"], doc
    assert "Traceback" not in doc["error"]


def _binary_body(header: dict, payload: bytes) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + payload, {"Inference-Header-Content-Length": str(len(head))}


@pytest.mark.parametrize(
    ("payload", "size", "words"),
    [
        (b"\0" * 12, 16, "runs past"),  # claims more than the body holds
        (b"\0" * 20, 16, "no input's binary_data_size"),  # bytes left over
        (b"\0" * 12, 12, "needs 16 bytes, got 12"),  # size agrees, shape does not
    ],
)
def test_binary_lengths_that_disagree_are_refused(http, payload, size, words):
    header = _infer("add", {"name": "x", "datatype": "FP32", "shape": [1, 4],
                            "parameters": {"binary_data_size": size}})  # fmt: skip
    body, headers = _binary_body(header, payload)
    res = http.post("/v2/models/add/infer", content=body, headers=headers)
    assert res.status_code == 400 and words in res.json()["error"], res.text


def test_binary_bool_and_bytes_framing_are_checked(http):
    from tests.serving.models import V2_TO_ELEM

    good = _dtypes_body()["inputs"]
    for name, raw, words in (
        ("in_BOOL", b"\x01\x02", "0 or 1"),
        ("in_BYTES", b"\x05\0\0\0ab", "claims 5 bytes"),
        ("in_BYTES", b"\x01\0\0\0a\x01\0", "inside a length prefix"),
    ):
        dt = name[3:]
        inputs = [i for i in good if i["name"] != name]
        inputs.append({"name": name, "datatype": dt, "shape": [1, 2],
                       "parameters": {"binary_data_size": len(raw)}})  # fmt: skip
        body, headers = _binary_body({"inputs": inputs}, raw)
        res = http.post("/v2/models/dtypes/infer", content=body, headers=headers)
        assert res.status_code == 400 and words in res.json()["error"], (name, res.text)
    assert len(V2_TO_ELEM) == 14


def _raw_http(server, request: bytes) -> tuple[int, dict]:
    host, port = server.http.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            dict(
                line.split(b": ", 1) for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
            ).get(b"content-length", b"0")
        ):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def test_overlong_request_line_and_headers_get_json(server, http):
    res = http.get("/v2/models/" + "a" * 9000)
    assert res.status_code == 414 and "request target" in res.json()["error"]
    res = http.get("/v2", headers={"X-Big": "b" * 20000})
    assert res.status_code == 431 and "headers" in res.json()["error"]
    # a head that never ends is cut off by the protocol, not buffered without bound
    status, doc = _raw_http(server, b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"c" * 100_000)
    assert status == 431 and "request head" in doc["error"]
    status, doc = _raw_http(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400 and "invalid HTTP request" in doc["error"]


def test_content_length_over_the_limit_is_refused_before_reading(server):
    # The body is never sent: the answer must come from the header alone.
    request = (
        b"POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n"
    )
    status, doc = _raw_http(server, request)
    assert status == 413 and "over the limit" in doc["error"]


def test_server_still_serves_after_the_refusals(http):
    res = http.post("/v2/models/add/infer", json=_infer("add", X))
    assert res.status_code == 200 and res.json()["outputs"][0]["data"] == [3, 4, 5, 6]
