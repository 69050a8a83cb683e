"""The serving pieces without a server: settings, configuration, tensor codecs, the proto's
wire compatibility with tritonclient, the classification extension and the batch scheduler."""

from __future__ import annotations

import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from onnxpy.errors import InvalidArgument
from onnxpy.serving import tensors
from onnxpy.serving.batching import Scheduler, Work
from onnxpy.serving.config import (
    config_list_sources,
    parse_config_text,
    valid_model_name,
    versions_to_serve,
)
from onnxpy.serving.errors import ModelLoadError, Unavailable, status_of
from onnxpy.serving.grpc import inference_pb2 as pb
from onnxpy.serving.model import classify
from onnxpy.serving.settings import SETTINGS, ServeSettings, load_settings, parse_size

# -- settings -------------------------------------------------------------------------------------


def test_settings_precedence_flags_over_environment_over_file(tmp_path):
    (tmp_path / "s.toml").write_text('http_port = 9000\ngrpc-port = 9001\nhost = "0.0.0.0"\n')
    env = {"ONNXPY_GRPC_PORT": "9101", "ONNXPY_HOST": "::1", "ONNXPY_ACCESS_LOG": "off"}
    s = load_settings({"host": "127.0.0.2", "http_port": None}, env, str(tmp_path / "s.toml"))
    assert (s.http_port, s.grpc_port, s.host, s.access_log) == (9000, 9101, "127.0.0.2", False)
    assert load_settings({}, {}).http_port == 8000 == ServeSettings().http_port


def test_settings_refusals_name_the_source(tmp_path):
    with pytest.raises(InvalidArgument, match="ONNXPY_HTTP_PORT: invalid value 'x'"):
        load_settings({}, {"ONNXPY_HTTP_PORT": "x"})
    with pytest.raises(InvalidArgument, match="--max-request-size"):
        load_settings({"max_request_size": "12 parsecs"}, {})
    (tmp_path / "bad.toml").write_text("http_port = \n")
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        load_settings({}, {}, str(tmp_path / "bad.toml"))
    for bad in ({"model_control": "sometimes"}, {"http_port": 70000}, {"tls_cert": "c.pem"},
                {"max_batch_size": -1}, {"repository_poll_secs": 0}):  # fmt: skip
        with pytest.raises(InvalidArgument):
            ServeSettings(**bad)


def test_parse_size():
    assert parse_size("64MiB") == 64 << 20 and parse_size("512k") == 512 << 10
    assert parse_size("1G") == 1 << 30 and parse_size(" 100 ") == 100 and parse_size(7) == 7
    with pytest.raises(InvalidArgument):
        parse_size("-1")


def test_help_documents_every_setting_and_its_environment_variable():
    from click.testing import CliRunner

    from onnxpy.cli import cli

    text = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200).output
    for s in SETTINGS:
        if s.name != "model_repository":
            assert s.option in text and s.env in text, s.name
    assert "Examples:" in text and "--config" in text


# -- configuration --------------------------------------------------------------------------------


def test_config_pbtxt_subset_keeps_what_it_knows_and_lists_what_it_skips():
    text = """
    name: "m"  platform: "onnxruntime_onnx"  max_batch_size: 8
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } } ]
    dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 100
                       default_queue_policy { max_queue_size: 3 } priority_levels: 2 }
    version_policy: { specific { versions: [ 1, 3 ] } }
    parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
    response_cache { enable: true }
    """
    config, skipped = parse_config_text(text, "m/config.pbtxt")
    assert config.max_batch_size == 8 and config.input[0].dims == [4]
    assert config.dynamic_batching.default_queue_policy.max_queue_size == 3
    assert config.parameters["intra_op_thread_count"].string_value == "1"
    assert skipped == [
        "ModelInput.reshape",
        "ModelDynamicBatching.priority_levels",
        "ModelConfig.response_cache",
    ]
    assert versions_to_serve(config.version_policy, [1, 2, 3, 4]) == [1, 3]
    with pytest.raises(ModelLoadError, match="m/config.pbtxt"):
        parse_config_text("max_batch_size: eight", "m/config.pbtxt")


def test_version_policies():
    latest2 = pb.ModelVersionPolicy(latest=pb.ModelVersionPolicy.Latest(num_versions=2))
    assert versions_to_serve(latest2, [3, 1, 10]) == [3, 10]
    assert versions_to_serve(pb.ModelVersionPolicy(), [3, 1, 10]) == [10]
    assert versions_to_serve(pb.ModelVersionPolicy(all=pb.ModelVersionPolicy.All()), [2, 1]) == [
        1,
        2,
    ]


def test_model_config_list_entries(tmp_path):
    (tmp_path / "a" / "1").mkdir(parents=True)
    (tmp_path / "a" / "1" / "model.onnx").write_bytes(b"")
    doc = """{"model_config_list": [
        {"config": {"name": "a", "base_path": "a", "max_batch_size": 4,
                    "model_version_policy": {"latest": {"num_versions": 2}}}},
        {"name": "b", "base_path": "/x/b.onnx", "model_platform": "onnx", "extra": 1}]}"""
    (tmp_path / "m.json").write_text(doc)
    a, b = config_list_sources(tmp_path / "m.json")
    assert a.name == "a" and a.folder == tmp_path / "a" and a.config.max_batch_size == 4
    assert a.config.version_policy.latest.num_versions == 2 and a.version_files() == {
        1: tmp_path / "a" / "1" / "model.onnx"
    }
    assert b.single_file == Path("/x/b.onnx") and b.ignored == ["extra"]
    for bad, words in (
        ('{"model_config_list": [{"name": "../etc", "base_path": "x"}]}', "plain model name"),
        ('{"model_config_list": [{"name": "a"}]}', "base_path"),
        ('{"model_config_list": [{"name": "a", "base_path": "x", "max_batch_size": -2}]}',
         "non-negative"),
        ('{"models": []}', "model_config_list"),
        ("{", "not valid JSON"),
    ):  # fmt: skip
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(ModelLoadError, match=words.replace("(", r"\(").replace(".", r"\.")):
            config_list_sources(tmp_path / "bad.json")


@pytest.mark.parametrize(
    ("name", "ok"),
    [("resnet50", True), ("a.b-c_1", True), ("..", False), ("a/..", False), ("a\\b", False),
     ("../x", False), (".hidden", False), ("a..b", False), ("", False), ("x\0", False)],
)  # fmt: skip
def test_model_names_are_single_path_components(name, ok):
    assert valid_model_name(name) is ok


# -- tensors --------------------------------------------------------------------------------------


def test_json_decoding_is_strict_about_values():
    assert tensors.decode_json("x", "FP16", (2,), [1, 2.5]).dtype == np.float16
    assert tensors.decode_json("x", "UINT64", (1,), [2**64 - 1])[0] == 2**64 - 1
    assert tensors.decode_json("x", "INT64", (2, 1), [[1], [2]]).shape == (2, 1)
    assert tensors.decode_json("x", "FP32", (1,), 3.0).tolist() == [3.0]  # a scalar
    assert tensors.decode_json("x", "BYTES", (2,), [["a"], ["b"]]).tolist() == ["a", "b"]
    for datatype, data, words in (
        ("FP16", [70000.0], "out of range"),
        ("UINT8", [-1], "out of range"),
        ("INT32", [2**31], "out of range"),
        ("INT8", [True], "must be numbers"),
        ("BOOL", [0], "true/false"),
        ("BYTES", [1], "must be strings"),
    ):
        with pytest.raises(InvalidArgument, match=words):
            tensors.decode_json("x", datatype, (1,), data)


def test_raw_round_trip_and_bytes_framing():
    a = np.array([[1.5, -2.0]], dtype=np.float32)
    assert tensors.encode_raw(a) == struct.pack("<2f", 1.5, -2.0)
    np.testing.assert_array_equal(tensors.decode_raw("x", "FP32", (1, 2), tensors.encode_raw(a)), a)
    big_endian = a.astype(">f4")
    assert tensors.encode_raw(big_endian) == tensors.encode_raw(a)
    words = np.array(["é", "", "ab"], dtype=object)
    raw = tensors.encode_raw(words)
    assert raw == b"\x02\0\0\0\xc3\xa9" + b"\0\0\0\0" + b"\x02\0\0\0ab"
    assert tensors.decode_raw("x", "BYTES", (3,), raw).tolist() == ["é", "", "ab"]
    with pytest.raises(InvalidArgument, match="holds 3 elements, shape needs 2"):
        tensors.decode_raw("x", "BYTES", (2,), raw)
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        tensors.decode_raw("x", "BYTES", (1,), b"\x01\0\0\0\xff")


def test_shapes_are_checked_before_anything_is_allocated():
    assert tensors.check_shape("x", [0, 3]) == (0, 3)
    for bad in ([1.0], [True], [-1], [2**50], "12", None):
        with pytest.raises(InvalidArgument):
            tensors.check_shape("x", bad)


def test_classification_strings_match_hand_worked_values():
    out = classify(np.array([[1, 5, 10, 4]], dtype=np.int32), 2, None)
    assert out.tolist() == [["10:2", "5:1"]]
    out = classify(np.array([0.1, 0.7, 0.2], dtype=np.float32), 5, ["a", "b", "c"])
    assert out.tolist() == ["0.700000:1:b", "0.200000:2:c", "0.100000:0:a"]


def test_error_table_maps_classes_to_statuses():
    from onnxpy.errors import Fail, InvalidGraph
    from onnxpy.serving.errors import ModelNotFound, RequestTooLarge, Unsupported

    assert status_of(ModelNotFound("m")) == (404, "NOT_FOUND")
    assert status_of(RequestTooLarge("b")) == (413, "RESOURCE_EXHAUSTED")
    assert status_of(InvalidArgument("x")) == (400, "INVALID_ARGUMENT")
    assert status_of(InvalidGraph("g")) == (400, "INVALID_ARGUMENT")
    assert status_of(Unavailable("q")) == (503, "UNAVAILABLE")
    assert status_of(Unsupported("s")) == (501, "UNIMPLEMENTED")
    assert status_of(Fail("k")) == (500, "INTERNAL")
    assert status_of(KeyError("bug")) == (500, "INTERNAL")


# -- the proto against tritonclient's ------------------------------------------------------------


def _fields(descriptor) -> dict[str, tuple]:
    return {
        f.name: (f.number, f.type, f.is_repeated, f.message_type.name if f.message_type else None)
        for f in descriptor.fields
    }


def _walk(descriptor):
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _walk(nested)


def test_every_field_matches_tritonclients_proto_by_number_and_type():
    from tritonclient.grpc import model_config_pb2, service_pb2

    theirs = {}
    for module in (service_pb2, model_config_pb2):
        for message in module.DESCRIPTOR.message_types_by_name.values():
            for d in _walk(message):
                theirs[d.full_name] = d
    checked = 0
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        for ours in _walk(message):
            other = theirs[ours.full_name]  # every message of ours exists in Triton's protocol
            their_fields = _fields(other)
            for name, spec in _fields(ours).items():
                assert their_fields[name] == spec, f"{ours.full_name}.{name}"
                checked += 1
    assert checked > 150
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    triton = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in service.methods:
        other = triton.methods_by_name[method.name]
        assert (method.input_type.name, method.output_type.name) == (
            other.input_type.name,
            other.output_type.name,
        )
    for enum in pb.DESCRIPTOR.enum_types_by_name.values():
        other = model_config_pb2.DESCRIPTOR.enum_types_by_name[enum.name]
        assert {v.name: v.number for v in enum.values} == {v.name: v.number for v in other.values}


# -- the scheduler --------------------------------------------------------------------------------


class Recorder:
    """A model run that records the batches it sees: y = 2 * x, plus a per-row id."""

    def __init__(self, delay: float = 0.0, fail_on: float | None = None) -> None:
        self.batches: list[tuple[int, ...]] = []
        self.delay, self.fail_on = delay, fail_on
        self.lock = threading.Lock()

    def __call__(self, feeds, outputs):
        x = feeds["x"]
        with self.lock:
            self.batches.append(x.shape)
        time.sleep(self.delay)
        if self.fail_on is not None and (x == self.fail_on).any():
            raise ValueError("poisoned row")
        return [x * 2]


def _work(x: np.ndarray) -> Work:
    return Work(feeds={"x": x}, outputs=("y",), rows=x.shape[0], key=(x.shape[1:], x.dtype.str))


def test_scheduler_merges_compatible_requests_and_splits_back_exactly():
    run = Recorder(delay=0.01)
    s = Scheduler(run, name="t", max_batch_size=8, max_queue_delay_us=20000)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((int(rng.integers(1, 4)), 3)) for _ in range(60)]
    xs += [rng.standard_normal((1, 5)) for _ in range(10)]  # another key: never merged with [.,3]
    with ThreadPoolExecutor(16) as pool:
        futures = list(pool.map(lambda x: s.submit(_work(x)), xs))
        results = [f.result(timeout=30) for f in futures]
    assert s.close(5)
    for x, (y,) in zip(xs, results):
        np.testing.assert_array_equal(y, x * 2)
    assert all(rows <= 8 for rows, *_ in run.batches)
    assert len(run.batches) < len(xs) and max(rows for rows, *_ in run.batches) > 3
    assert {shape[1] for shape in run.batches} == {3, 5}


def test_preferred_batch_size_goes_at_once():
    run = Recorder()
    # A delay far longer than the result timeout: only the preferred-size rule can answer.
    s = Scheduler(run, name="t", max_batch_size=16, preferred_batch_sizes=[4],
                  max_queue_delay_us=600_000_000)  # fmt: skip
    futures = [s.submit(_work(np.ones((1, 2)) * i)) for i in range(4)]
    for f in futures:
        f.result(timeout=30)
    assert run.batches == [(4, 2)]
    s.close(5)


def test_a_failing_batch_is_rerun_one_by_one():
    run = Recorder(delay=0.05, fail_on=13.0)
    s = Scheduler(run, name="t", max_batch_size=4, max_queue_delay_us=5_000_000)
    xs = [np.full((1, 2), float(i)) for i in (1, 13, 2, 3)]
    futures = [s.submit(_work(x)) for x in xs]
    outcomes = []
    for f in futures:
        try:
            outcomes.append(f.result(timeout=10)[0][0, 0])
        except ValueError:
            outcomes.append("failed")
    assert outcomes == [2.0, "failed", 4.0, 6.0]
    assert run.batches[0][0] == 4 and len(run.batches) == 5
    s.close(5)


def test_full_queue_refuses_at_once():
    started, release = threading.Event(), threading.Event()

    def run(feeds, outputs):
        started.set()
        release.wait(10)
        return [feeds["x"]]

    s = Scheduler(run, name="m", max_queue_size=2)
    first = s.submit(_work(np.ones((1, 2))))
    assert started.wait(10)  # the worker holds the first request; two more fill the queue
    queued = [s.submit(_work(np.ones((1, 2)))) for _ in range(2)]
    with pytest.raises(Unavailable, match="max_queue_size"):
        s.submit(_work(np.ones((1, 2))))
    release.set()
    for f in [first, *queued]:
        f.result(timeout=10)
    s.close(5)
    with pytest.raises(Unavailable, match="unloading"):
        s.submit(_work(np.ones((1, 2))))


def test_outputs_without_a_batch_axis_are_not_split():
    def run(feeds, outputs):
        time.sleep(0.02)
        return [feeds["x"].sum(keepdims=True).reshape(())]  # a scalar: no rows to split

    s = Scheduler(run, name="t", max_batch_size=8, max_queue_delay_us=100_000)
    futures = [s.submit(_work(np.full((1, 2), float(i)))) for i in range(3)]
    assert [float(f.result(timeout=10)[0]) for f in futures] == [0.0, 2.0, 4.0]
    s.close(5)


@pytest.mark.slow
def test_a_lone_client_does_not_wait_for_companions():
    """Arrivals further apart than the delay: the batcher stops waiting for others (the first
    ones still wait, as Triton's batcher would)."""
    run = Recorder()
    s = Scheduler(run, name="t", max_batch_size=8, max_queue_delay_us=100_000)
    waits = []
    for _ in range(7):
        work = _work(np.ones((1, 2)))
        s.submit(work).result(timeout=10)
        waits.append(work.queue_ns / 1e6)
        time.sleep(0.25)
    s.close(5)
    assert waits[0] >= 90  # nothing known yet: the first request waits out the 100 ms delay
    assert waits[-1] < 90, waits  # arrivals 250 ms apart: no companion is expected
