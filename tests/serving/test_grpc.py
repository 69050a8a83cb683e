"""gRPC against the real server: tritonclient's gRPC client, and onnxpy's own generated stub."""

from __future__ import annotations

import json
import queue

import grpc
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as tg
from tritonclient.utils import InferenceServerException

from onnxpy.serving.grpc import inference_pb2 as pb
from onnxpy.serving.grpc import inference_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server):
    c = tg.InferenceServerClient(server.grpc)
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.grpc)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def _iris_input(x: np.ndarray) -> tg.InferInput:
    inp = tg.InferInput("X", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp


def test_health_metadata_and_config(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("rf_iris") and client.is_model_ready("add", "1")
    assert not client.is_model_ready("add", "9")
    meta = client.get_server_metadata()
    assert meta.name == "onnxpy" and "binary_tensor_data" in meta.extensions
    model = client.get_model_metadata("rf_iris_tensor", as_json=True)
    assert model["inputs"] == [{"name": "X", "datatype": "FP32", "shape": ["-1", "4"]}]
    config = client.get_model_config("linear").config
    assert config.max_batch_size == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16]
    assert config.model_warmup[0].name == "zeros"


def test_infer_reads_raw_output_contents(client, repository):
    clf, x = repository[1]["clf"], repository[1]["x"][::11]
    result = client.infer("rf_iris", [_iris_input(x)], request_id="g-1")
    assert result.get_response().id == "g-1"
    np.testing.assert_array_equal(result.as_numpy("output_label"), clf.predict(x))
    rows = [json.loads(p) for p in result.as_numpy("output_probability")]
    got = np.array([[r[str(c)] for c in clf.classes_] for r in rows])
    np.testing.assert_allclose(got, clf.predict_proba(x), atol=1e-6)


def test_output_subset_and_classification(client, repository):
    clf, x = repository[1]["clf"], repository[1]["x"][[0, 100]]
    subset = client.infer(
        "rf_iris_tensor", [_iris_input(x)], outputs=[tg.InferRequestedOutput("label")]
    )
    assert [o.name for o in subset.get_response().outputs] == ["label"]
    top = client.infer(
        "rf_iris_tensor",
        [_iris_input(x)],
        outputs=[tg.InferRequestedOutput("probabilities", class_count=1)],
    ).as_numpy("probabilities")
    labels = ["setosa", "versicolor", "virginica"]
    for row, proba in zip(top, clf.predict_proba(x)):
        best = int(np.argmax(proba))
        assert row[0].decode() == f"{proba[best]:f}:{best}:{labels[best]}"


def test_every_datatype_raw(client):
    from tests.serving.models import V2_TO_ELEM

    inputs, arrays = [], {}
    for dt in V2_TO_ELEM:
        if dt == "BYTES":
            a = np.array([[b"x", "é".encode()], [b"", b"yz"]], dtype=object)
        elif dt == "BOOL":
            a = np.array([[True, False], [True, True]])
        elif dt == "BF16":
            a = np.array([[1.0, -0.5], [2.0, 8.0]], dtype=ml_dtypes.bfloat16)
        else:
            np_type = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}.get(dt)
            a = np.array([[0, 1], [2, 100]], dtype=np_type or np.dtype(dt.lower()))
        arrays[dt] = a
        inp = tg.InferInput(f"in_{dt}", [2, 2], dt)
        inp.set_data_from_numpy(a)
        inputs.append(inp)
    result = client.infer("dtypes", inputs)
    for dt, a in arrays.items():
        np.testing.assert_array_equal(result.as_numpy(f"out_{dt}"), a)


def test_typed_contents_through_onnxpys_own_stub(stub):
    """The committed stubs are usable from another process, and InferTensorContents works."""
    request = pb.ModelInferRequest(model_name="add", model_version="1", id="typed")
    t = request.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    t.contents.fp32_contents.extend([0, 1, 2, 3, 4, 5, 6, 7])
    response = stub.ModelInfer(request)
    assert response.id == "typed" and response.model_version == "1"
    y = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(response.outputs[0].shape)
    np.testing.assert_array_equal(y, np.arange(8, dtype=np.float32).reshape(2, 4) + 1)
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
    assert {(m.name, m.version) for m in index.models} >= {("add", "1"), ("add", "2")}


def _code(fn) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        fn()
    return info.value.status(), info.value.message()


def test_errors_map_to_grpc_codes(client, stub):
    x = np.ones((1, 4), dtype=np.float32)
    good = tg.InferInput("x", [1, 4], "FP32")
    good.set_data_from_numpy(x)
    wrong = tg.InferInput("x", [1, 4], "FP64")
    wrong.set_data_from_numpy(x.astype(np.float64))
    assert _code(lambda: client.infer("nope", [good]))[0] == "StatusCode.NOT_FOUND"
    assert (
        _code(lambda: client.infer("add", [good], model_version="5"))[0] == "StatusCode.NOT_FOUND"
    )
    status, message = _code(lambda: client.infer("add", [wrong]))
    assert status == "StatusCode.INVALID_ARGUMENT" and "expects FP32" in message
    status, message = _code(lambda: client.get_system_shared_memory_status())
    assert status == "StatusCode.UNIMPLEMENTED" and "shared memory" in message
    status, message = _code(lambda: client.load_model("add"))
    assert status == "StatusCode.UNIMPLEMENTED" and "explicit" in message
    # raw contents of the wrong length, and one raw entry too many
    for raws, words in (([b"\0" * 12], "needs 16 bytes"), ([b"\0" * 16] * 2, "2 entries")):
        request = pb.ModelInferRequest(model_name="add")
        request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.extend(raws)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in info.value.details()
    request = pb.ModelInferRequest(model_name="add")
    request.inputs.add(name="x", datatype="FP16", shape=[1, 4]).contents.fp32_contents.extend([1])
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents" in info.value.details()


def test_stream_infer_answers_each_request_and_survives_a_bad_one(client):
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i, datatype in enumerate(["FP32", "FP64", "FP32"]):
            inp = tg.InferInput("x", [1, 4], datatype)
            inp.set_data_from_numpy(np.full((1, 4), i, dtype=np.dtype(datatype.lower()
                                    .replace("fp", "float"))))  # fmt: skip
            client.async_stream_infer("add", [inp], request_id=str(i))
        got = [answers.get(timeout=30) for _ in range(3)]
    finally:
        client.stop_stream()
    ok = {r.get_response().id: r.as_numpy("y") for r, e in got if e is None}
    errors = [e for _, e in got if e is not None]
    assert set(ok) == {"0", "2"} and len(errors) == 1 and "expects FP32" in errors[0].message()
    np.testing.assert_array_equal(ok["2"], np.full((1, 4), 4, dtype=np.float32))


def test_statistics_over_grpc(client):
    stats = client.get_inference_statistics("add", "2", as_json=True)["model_stats"][0]
    assert stats["name"] == "add" and stats["version"] == "2"
    assert "inference_stats" in stats
