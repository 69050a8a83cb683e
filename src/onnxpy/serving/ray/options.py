"""What a Ray Serve deployment of the server is told beyond :class:`ServeSettings`.

:class:`RayOptions` holds the cluster and scaling choices (``--address``, ``--replicas`` or
``--autoscale``, ``--num-cpus-per-replica``); :func:`deployment_options` turns them and the
models' batching configuration into the ``serve.deployment`` options of the ingress. Nothing
here imports Ray, so the command line checks its flags before paying for ``import ray``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onnxpy.errors import InvalidArgument
from onnxpy.serving.settings import ServeSettings

__all__ = [
    "RayOptions",
    "parse_autoscale",
    "ongoing_requests_for",
    "deployment_options",
    "SERVE_DEFAULT_ONGOING",
]

# Ray Serve's own default max_ongoing_requests: also the floor here, for unbatched models.
SERVE_DEFAULT_ONGOING = 5


@dataclass(frozen=True)
class RayOptions:
    """Scale-out choices; ``replicas`` and ``autoscale`` exclude each other."""

    address: str | None = None  # None: start a local Ray instance; "auto" or "ray://host:port"
    replicas: int | None = None  # fixed replica count (default 1 when autoscale is None)
    autoscale: tuple[int, int, float] | None = None  # (min, max, target ongoing per replica)
    num_cpus_per_replica: float = 1.0
    max_ongoing_requests: int | None = None  # None: from the models' batching configuration
    app_name: str = "onnxpy"

    def __post_init__(self) -> None:
        if self.replicas is not None and self.autoscale is not None:
            raise InvalidArgument("give --replicas or --autoscale, not both")
        if self.replicas is not None and self.replicas < 1:
            raise InvalidArgument(f"--replicas must be at least 1, got {self.replicas}")
        if self.autoscale is not None:
            low, high, target = self.autoscale
            if not 0 <= low <= high or high < 1 or target <= 0:
                raise InvalidArgument(
                    f"--autoscale MIN,MAX,TARGET needs 0 <= MIN <= MAX, MAX >= 1 and TARGET > 0, "
                    f"got {low},{high},{target}"
                )
        if self.num_cpus_per_replica < 0:
            raise InvalidArgument("--num-cpus-per-replica must not be negative")
        if self.max_ongoing_requests is not None and self.max_ongoing_requests < 1:
            raise InvalidArgument("max_ongoing_requests must be at least 1")


def parse_autoscale(text: str | tuple | list) -> tuple[int, int, float]:
    """``"1,4,8"`` -> (1, 4, 8.0): min and max replicas, target ongoing requests per replica."""
    parts = list(text) if isinstance(text, (tuple, list)) else str(text).split(",")
    try:
        low, high, target = (p.strip() if isinstance(p, str) else p for p in parts)
        return int(low), int(high), float(target)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"--autoscale takes MIN,MAX,TARGET_ONGOING (e.g. 1,4,8), got {text!r}"
        ) from None


def ongoing_requests_for(settings: ServeSettings) -> int:
    """Requests one replica should hold at once so that its batches can fill.

    Serve never sends a replica more than ``max_ongoing_requests`` (default 5), and onnxpy's
    batcher can only merge what the replica holds: a model batching up to B rows with N
    instances needs (N + 1) * B single-row requests in flight (N batches running, one
    gathering). The largest need over the repository's models wins; models whose configuration
    cannot be read count as unbatched (they fail at load, in the replica, with their reason).
    """
    from onnxpy.serving.config import apply_defaults
    from onnxpy.serving.grpc import inference_pb2 as pb
    from onnxpy.serving.metrics import ServerMetrics
    from onnxpy.serving.repository import Repository

    best = SERVE_DEFAULT_ONGOING
    for source in Repository(settings, ServerMetrics()).discover().values():
        if isinstance(source, Exception):
            continue
        config = pb.ModelConfig()
        config.CopyFrom(source.config)
        try:
            apply_defaults(config, settings, configured=source.config_path is not None)
        except InvalidArgument:
            continue
        instances = sum(g.count for g in config.instance_group) or 1
        if config.max_batch_size > 0 and config.HasField("dynamic_batching"):
            best = max(best, (instances + 1) * config.max_batch_size)
        else:
            best = max(best, 2 * instances)
    return best


def deployment_options(settings: ServeSettings, options: RayOptions) -> dict[str, Any]:
    """The ``Deployment.options(...)`` of the ingress for these settings and choices."""
    ongoing = options.max_ongoing_requests or ongoing_requests_for(settings)
    result: dict[str, Any] = {
        "max_ongoing_requests": ongoing,
        "ray_actor_options": {"num_cpus": options.num_cpus_per_replica},
        "graceful_shutdown_timeout_s": settings.drain_timeout,
        # onnxpy writes its own JSON access log (--access-log); Serve's would repeat it.
        "logging_config": {"enable_access_log": False, "log_level": settings.log_level.upper()},
    }
    if options.autoscale is not None:
        low, high, target = options.autoscale
        result["autoscaling_config"] = {
            "min_replicas": low,
            "max_replicas": high,
            "target_ongoing_requests": target,
        }
    else:
        result["num_replicas"] = options.replicas or 1
    return result
