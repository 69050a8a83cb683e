"""``onnxpy serve``: the KServe v2 / Triton-compatible model server (extra ``serve``); with
``--ray``, the same server as a Ray Serve application (extra ``ray``).

Every option comes from the one settings table (``onnxpy.serving.settings.SETTINGS``), which
also defines its ``ONNXPY_`` environment variable and its key in the ``--config`` TOML file.
"""

from __future__ import annotations

from typing import Any

import click

from onnxpy.serving.settings import SETTINGS, ServeSettings

__all__ = ["command"]

_DEFAULTS = ServeSettings()


def _default_text(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    if name == "max_request_size":
        return f"{value >> 20}MiB"
    if value in (None, ()):
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _options(fn: Any) -> Any:
    for s in reversed(SETTINGS):
        if s.name == "model_repository":
            continue
        help_text = f"{s.help} [env {s.env}; default {_default_text(s.name)}]"
        if s.flag:
            decl = f"{s.option}/--no-{s.option[2:]}"
            fn = click.option(decl, s.name, default=None, help=help_text)(fn)
        else:
            fn = click.option(s.option, s.name, default=None, metavar=s.metavar, help=help_text)(fn)
    return fn


@click.command("serve", context_settings={"max_content_width": 100})
@click.argument("model_repository", required=False, metavar="[MODEL_REPOSITORY]")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML file of settings (keys as the options without '--'), e.g. http_port = 9000. "
    "Flags override the environment, which overrides the file. [env ONNXPY_CONFIG]",
)
@click.option(
    "--ray",
    "use_ray",
    is_flag=True,
    help="Deploy on Ray Serve (extra 'ray'): replicas of this server behind Serve's "
    "HTTP and gRPC proxies. See docs/scaling.md.",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="With --ray: the cluster to join ('auto': the one 'ray start' runs here; "
    "'ray://host:10001'). Default: start a local Ray instance, stopped on exit.",
)
@click.option(
    "--replicas",
    type=int,
    default=None,
    metavar="N",
    help="With --ray: number of replicas (default 1).",
)
@click.option(
    "--autoscale",
    default=None,
    metavar="MIN,MAX,TARGET",
    help="With --ray: autoscale between MIN and MAX replicas, aiming at TARGET "
    "requests in flight per replica (instead of --replicas).",
)
@click.option(
    "--num-cpus-per-replica",
    type=float,
    default=None,
    metavar="C",
    help="With --ray: Ray CPUs each replica reserves (default 1).",
)
@_options
def command(
    model_repository: str | None,
    config_file: str | None,
    use_ray: bool,
    address: str | None,
    replicas: int | None,
    autoscale: str | None,
    num_cpus_per_replica: float | None,
    **flags: Any,
) -> int:
    """Serve ONNX models over KServe v2 REST and gRPC (Triton-compatible).

    MODEL_REPOSITORY is a Triton-style folder (<repo>/<model>/<version>/model.onnx, optional
    <repo>/<model>/config.pbtxt) or one .onnx file, served under its file name. HTTP listens on
    127.0.0.1:8000, gRPC on 127.0.0.1:8001; Prometheus metrics on /metrics. SIGTERM drains
    requests in flight, then exits.

    \b
    Examples:
      onnxpy serve rf_iris.onnx
      onnxpy serve /models --model-control poll --repository-poll-secs 5
      onnxpy serve model.onnx --max-batch-size 32 --max-queue-delay-us 1000
      onnxpy serve --model-config-list models.json --host 0.0.0.0
      ONNXPY_API_KEY=secret onnxpy serve /models --config serve.toml
      onnxpy serve /models --ray --replicas 2
      onnxpy serve /models --ray --address auto --autoscale 1,8,16
      curl -s localhost:8000/v2/models/rf_iris/infer -d '{"inputs": [{"name": "X",
        "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}'
    """
    from onnxpy.cli import require

    for module in ("starlette", "uvicorn", "grpc", "prometheus_client", "orjson"):
        require(module, "serve", "onnxpy serve")
    from onnxpy.serving.settings import load_settings

    ray_flags = {"--address": address, "--replicas": replicas, "--autoscale": autoscale,
                 "--num-cpus-per-replica": num_cpus_per_replica}  # fmt: skip
    given = [name for name, value in ray_flags.items() if value is not None]
    if given and not use_ray:
        raise click.UsageError(f"{', '.join(given)} only apply with --ray")
    flags["model_repository"] = model_repository
    settings = load_settings(flags, config_file=config_file)
    if not settings.model_repository and not settings.model_config_list:
        raise click.UsageError(
            "give a MODEL_REPOSITORY (folder or .onnx file) or --model-config-list"
        )
    if use_ray:
        require("ray.serve", "ray", "onnxpy serve --ray")
        from onnxpy.serving.ray.cluster import serve_ray
        from onnxpy.serving.ray.options import RayOptions, parse_autoscale

        options = RayOptions(
            address=address,
            replicas=replicas,
            autoscale=parse_autoscale(autoscale) if autoscale else None,
            num_cpus_per_replica=1.0 if num_cpus_per_replica is None else num_cpus_per_replica,
        )
        return serve_ray(settings, options)
    from onnxpy.serving.server import serve

    return serve(settings)
