"""``onnxpy serve --ray`` as users run it, and the deployment options it derives."""

from __future__ import annotations

import signal
import socket
import time

import httpx
import numpy as np
import pytest

pytest.importorskip("ray", reason="the Ray tests need the ray extra")
pytest.importorskip("tritonclient.http", reason="the server tests need tritonclient (dev extra)")

import tritonclient.http as th  # noqa: E402

from onnxpy.cli import main  # noqa: E402
from onnxpy.errors import InvalidArgument  # noqa: E402
from onnxpy.serving.ray.options import (  # noqa: E402
    RayOptions,
    deployment_options,
    ongoing_requests_for,
    parse_autoscale,
)
from onnxpy.serving.settings import ServeSettings  # noqa: E402
from tests.serving.conftest import ServerProcess  # noqa: E402
from tests.serving.models import add_model, linear_model, save, write_config  # noqa: E402


def _reachable(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_serve_ray_starts_its_own_ray_and_stops_it_on_sigterm(tmp_path):
    model = save(add_model(1.0), tmp_path / "add.onnx")
    srv = ServerProcess(str(model), "--ray", "--num-cpus-per-replica", "0.5", "--no-access-log",
                        "--metrics-port", "0")  # fmt: skip
    try:
        words = dict(w.split("=", 1) for w in srv._address_line.split()[3:])
        srv.wait_ready(timeout=120)
        client = th.InferenceServerClient(srv.http)
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        a = th.InferInput("x", [2, 4], "FP32")
        a.set_data_from_numpy(x)
        np.testing.assert_array_equal(client.infer("add", [a]).as_numpy("y"), x + 1)
        assert _reachable(words["ray"])  # the GCS of the Ray instance the command started
        # --metrics-port is served by the command itself: every replica's series, labelled
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = httpx.get(srv.metrics, timeout=10).text
            if 'nv_inference_request_success{model="add",replica=' in text:
                break
            time.sleep(0.5)
        assert 'nv_inference_request_success{model="add",replica=' in text, text[:2000]
    finally:
        code = srv.stop(signal.SIGTERM, timeout=90)
    assert code == 0, srv.log
    assert "stopped in" in srv.log
    deadline = time.monotonic() + 30
    while _reachable(words["ray"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _reachable(words["ray"]), "the local Ray instance outlived the command"


def test_ray_flags_need_ray_and_ray_refuses_what_serve_cannot_do(tmp_path, capsys):
    model = save(add_model(1.0), tmp_path / "add.onnx")
    assert main(["serve", str(model), "--replicas", "2"]) == 2
    assert "only apply with --ray" in capsys.readouterr().err
    assert main(["serve", str(model), "--ray", "--replicas", "2", "--autoscale", "1,2,4"]) == 3
    assert main(["serve", str(model), "--ray", "--http-port", "-1"]) == 3
    err = capsys.readouterr().err
    assert "not both" in err and "--http-port cannot be -1" in err
    # Serve's gRPC proxy has no TLS: refused before anything starts, unless gRPC is off
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not read before the refusal")
    key.write_text("not read before the refusal")
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    assert main(["serve", str(model), "--ray", *tls]) == 3
    assert "gRPC proxy has no TLS" in capsys.readouterr().err
    from onnxpy.serving.ray.cluster import check_ray_settings

    check_ray_settings(ServeSettings(model_repository=str(model), tls_cert=str(cert),
                                     tls_key=str(key), grpc_port=-1))  # fmt: skip


def test_without_ray_the_command_names_the_extra(tmp_path, monkeypatch, capsys):
    import sys

    model = save(add_model(1.0), tmp_path / "add.onnx")
    monkeypatch.setitem(sys.modules, "ray.serve", None)  # import ray.serve -> ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    assert main(["serve", str(model), "--ray"]) == 4
    assert 'pip install "onnxpy[ray]"' in capsys.readouterr().err
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((2, 4), dtype=np.float32))
    assert main(["batch", str(model), "-i", str(data), "-o", str(tmp_path / "o.parquet"),
                 "--ray"]) == 4  # fmt: skip
    assert 'pip install "onnxpy[ray]"' in capsys.readouterr().err


def test_max_ongoing_requests_lets_the_largest_batches_fill(tmp_path):
    save(add_model(1.0), tmp_path / "add" / "1" / "model.onnx")  # no config: unbatched
    save(linear_model(), tmp_path / "linear" / "1" / "model.onnx")
    write_config(
        tmp_path / "linear",
        "max_batch_size: 16\ndynamic_batching { }\ninstance_group [ { count: 2 } ]\n",
    )
    settings = ServeSettings(model_repository=str(tmp_path))
    assert ongoing_requests_for(settings) == (2 + 1) * 16
    # a bare file batches with --max-batch-size
    bare = ServeSettings(model_repository=str(tmp_path / "add" / "1" / "model.onnx"),
                         max_batch_size=64)  # fmt: skip
    assert ongoing_requests_for(bare) == 2 * 64
    assert ongoing_requests_for(ServeSettings(model_repository=str(tmp_path / "add"))) == 5
    options = deployment_options(settings, RayOptions(replicas=3, num_cpus_per_replica=0.5))
    assert options["num_replicas"] == 3 and options["max_ongoing_requests"] == 48
    assert options["ray_actor_options"] == {"num_cpus": 0.5}
    scaled = deployment_options(settings, RayOptions(autoscale=parse_autoscale("1,4,8")))
    assert scaled["autoscaling_config"] == {
        "min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8.0,
    }  # fmt: skip
    assert "num_replicas" not in scaled
    for bad in ("1,4", "a,b,c"):
        with pytest.raises(InvalidArgument, match="MIN,MAX"):
            parse_autoscale(bad)
    with pytest.raises(InvalidArgument, match="MIN <= MAX"):
        RayOptions(autoscale=(3, 2, 1.0))


def test_build_takes_serve_run_arguments(tmp_path):
    from onnxpy.serving.ray import build

    save(add_model(1.0), tmp_path / "add" / "1" / "model.onnx")
    application = build({"repository": str(tmp_path), "replicas": "2", "max_batch_size": "8",
                         "num_cpus_per_replica": "0.25"})  # fmt: skip
    ingress = application._bound_deployment
    assert ingress.name == "onnxpy" and ingress.num_replicas == 2
    assert ingress.ray_actor_options["num_cpus"] == 0.25
    settings = ingress.init_args[0]
    assert settings.model_repository == str(tmp_path) and settings.max_batch_size == 8
    with pytest.raises(InvalidArgument, match="unknown setting"):
        build({"repository": str(tmp_path), "no_such_setting": "1"})


@pytest.mark.parametrize("name", ["serve-config.yaml", "rayservice.yaml"])
def test_the_shipped_serve_configs_are_valid_and_build(tmp_path, name):
    """deploy/ray's files: Serve's own schema accepts them and their arguments build the app
    (the model repository swapped for a local one; no cluster is started)."""
    from pathlib import Path

    import yaml
    from ray.serve.schema import ServeDeploySchema

    from onnxpy.serving.ray import build
    from onnxpy.serving.ray.application import GRPC_SERVICER_FUNCTION

    document = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "ray" / name).read_text())
    if document.get("kind") == "RayService":
        document = yaml.safe_load(document["spec"]["serveConfigV2"])
    config = ServeDeploySchema.model_validate(document)
    assert config.grpc_options.grpc_servicer_functions == [GRPC_SERVICER_FUNCTION]
    (spec,) = config.applications
    assert spec.import_path == "onnxpy.serving.ray:build" and spec.route_prefix == "/"
    save(add_model(1.0), tmp_path / "add" / "1" / "model.onnx")
    ingress = build({**spec.args, "model_repository": str(tmp_path)})._bound_deployment
    assert ingress.init_args[0].model_repository == str(tmp_path)
    assert ingress.ray_actor_options["num_cpus"] == spec.args["num_cpus_per_replica"]
