"""The server's settings: one object, filled from defaults, a TOML file, environment and flags.

Every setting has one entry in :data:`SETTINGS` (name, flag, type, default, help); the command
line, the environment variables (``ONNXPY_`` + the name in capitals) and the TOML file (the
name as key, dashes or underscores) are all derived from that table, so they cannot drift
apart. Later sources win: defaults < ``--config`` file < environment < flags.

Other processes (a Ray Serve replica, a test) build the same object directly::

    settings = ServeSettings(model_repository="/models", max_batch_size=32)

and hand it to :class:`onnxpy.serving.dataplane.DataPlane`. Nothing here is global.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from onnxpy.errors import InvalidArgument

__all__ = ["ServeSettings", "Setting", "SETTINGS", "load_settings", "parse_size", "env_name"]

MODEL_CONTROL_MODES = ("none", "poll", "explicit")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``onnxpy serve`` can be told; see :data:`SETTINGS` for what each field does."""

    model_repository: str | None = None
    model_config_list: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = -1
    model_control: str = "none"
    repository_poll_secs: float = 15.0
    load_model: tuple[str, ...] = ()
    max_batch_size: int = 0
    max_queue_delay_us: int = 500
    max_queue_size: int = 0
    instance_count: int = 1
    intra_op_threads: int = 1
    max_request_size: int = 64 << 20
    max_url_length: int = 8192
    max_header_size: int = 16384
    api_key: str | None = field(default=None, repr=False)
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    access_log: bool = True
    log_level: str = "info"
    drain_timeout: float = 30.0

    def __post_init__(self) -> None:
        check_settings(self)

    def replace(self, **changes: Any) -> ServeSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def parse_size(text: str | int) -> int:
    """``64MiB``, ``512k``, ``1G`` or a plain number of bytes -> bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b?)\s*", str(text), re.IGNORECASE)
    if not m:
        raise InvalidArgument(f"not a size: {text!r} (examples: 1048576, 512KiB, 64MiB, 1G)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * scale


def _parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"not a boolean: {text!r} (use true/false, 1/0, yes/no, on/off)")


def _parse_names(text: str | list | tuple) -> tuple[str, ...]:
    if isinstance(text, (list, tuple)):
        return tuple(str(t) for t in text)
    return tuple(t for t in (s.strip() for s in str(text).split(",")) if t)


def _parse_optional_str(text: Any) -> str | None:
    return None if text is None or str(text) == "" else str(text)


@dataclass(frozen=True)
class Setting:
    """One setting: its field, command-line flag, parser, and the help shown by ``--help``."""

    name: str
    parse: Callable[[Any], Any]
    help: str
    metavar: str = ""
    flag: bool = False  # a --x/--no-x switch

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return env_name(self.name)


def env_name(name: str) -> str:
    """The environment variable of a setting: ``http_port`` -> ``ONNXPY_HTTP_PORT``."""
    return "ONNXPY_" + name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("model_repository", _parse_optional_str,
            "Triton-style repository folder (<repo>/<model>/<version>/model.onnx) or one .onnx "
            "file (served as that file's name, version 1). Also the command's argument.", "PATH"),
    Setting("model_config_list", _parse_optional_str,
            'JSON file {"model_config_list": [{"name", "base_path", "model_platform", '
            '"max_batch_size"}]} listing the models instead of a repository folder.', "FILE"),
    Setting("host", str, "Address to bind both protocols to; 0.0.0.0 exposes the server.", "ADDR"),
    Setting("http_port", int, "HTTP/REST port (0: any free port; -1: no HTTP).", "PORT"),
    Setting("grpc_port", int, "gRPC port (0: any free port; -1: no gRPC).", "PORT"),
    Setting("metrics_port", int,
            "Extra port serving only /metrics (-1: none; /metrics is on the HTTP port anyway).",
            "PORT"),
    Setting("model_control", str,
            "none: load everything at start; poll: also pick up changes every "
            "--repository-poll-secs; explicit: load/unload through the repository API.", "MODE"),
    Setting("repository_poll_secs", float, "Seconds between repository scans in poll mode.", "S"),
    Setting("load_model", _parse_names,
            "In explicit mode, models loaded at start (comma-separated; '*' for all).", "NAMES"),
    Setting("max_batch_size", int,
            "Dynamic batching for a bare .onnx file or a JSON-list entry without one: merge "
            "requests up to this many rows (0: off). config.pbtxt models use their own.", "N"),
    Setting("max_queue_delay_us", int,
            "How long a batch may wait for more requests, when the model's config gives no "
            "max_queue_delay_microseconds.", "US"),
    Setting("max_queue_size", int,
            "Requests a model may hold queued before answering 503/UNAVAILABLE (0: no limit), "
            "when its config gives no max_queue_size.", "N"),
    Setting("instance_count", int,
            "Executions of one model that run in parallel, when its config has no "
            "instance_group.", "N"),
    Setting("intra_op_threads", int,
            "BLAS threads per session (0: all cores). One by default: a server runs requests "
            "and batches in parallel, and spinning BLAS threads starve the event loop (measured "
            "on 2 cores: MLP batched 158 -> 1,219 req/s, ResNet-50 0.7 -> 3.0 req/s at c=1).",
            "N"),
    Setting("max_request_size", parse_size,
            "Largest request body (after decompression); larger ones get 413 before they are "
            "read.", "SIZE"),
    Setting("max_url_length", parse_size, "Longest request target (else 414).", "SIZE"),
    Setting("max_header_size", parse_size, "Largest request header block (else 431).", "SIZE"),
    Setting("api_key", _parse_optional_str,
            "Require 'Authorization: Bearer KEY' (or 'X-API-Key: KEY') on every route but health; "
            "prefer the environment variable to the flag, which other users can see.", "KEY"),
    Setting("tls_cert", _parse_optional_str, "PEM certificate: serve HTTPS and gRPC over TLS.",
            "FILE"),
    Setting("tls_key", _parse_optional_str, "PEM private key of --tls-cert.", "FILE"),
    Setting("tls_ca", _parse_optional_str,
            "PEM CA bundle: require client certificates signed by it (mutual TLS).", "FILE"),
    Setting("access_log", _parse_bool, "One JSON line per request on stderr.", flag=True),
    Setting("log_level", str, "debug, info, warning or error.", "LEVEL"),
    Setting("drain_timeout", float,
            "On SIGTERM, seconds to let in-flight requests finish before exiting.", "S"),
)  # fmt: skip

_BY_NAME = {s.name: s for s in SETTINGS}


def check_settings(s: ServeSettings) -> None:
    """Refuse contradictory or out-of-range settings, naming the setting."""
    if s.model_control not in MODEL_CONTROL_MODES:
        raise InvalidArgument(
            f"model_control must be one of {', '.join(MODEL_CONTROL_MODES)}, "
            f"got {s.model_control!r}"
        )
    if s.log_level.lower() not in LOG_LEVELS:
        raise InvalidArgument(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    if s.model_repository and s.model_config_list:
        raise InvalidArgument("give a model repository or --model-config-list, not both")
    for name in ("http_port", "grpc_port", "metrics_port"):
        port = getattr(s, name)
        if not -1 <= port <= 65535:
            raise InvalidArgument(f"{name} must be -1 (off), 0 (any) or a port, got {port}")
    positive = ("max_request_size", "max_url_length", "max_header_size", "instance_count")
    for name in positive:
        if getattr(s, name) < 1:
            raise InvalidArgument(f"{name} must be at least 1, got {getattr(s, name)}")
    for name in ("max_batch_size", "max_queue_delay_us", "max_queue_size", "intra_op_threads"):
        if getattr(s, name) < 0:
            raise InvalidArgument(f"{name} must not be negative, got {getattr(s, name)}")
    if s.repository_poll_secs <= 0 or s.drain_timeout < 0:
        raise InvalidArgument("repository_poll_secs must be > 0 and drain_timeout >= 0")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise InvalidArgument("tls_cert and tls_key go together")
    if s.tls_ca and not s.tls_cert:
        raise InvalidArgument("tls_ca (client certificates) needs tls_cert and tls_key")


def _convert(setting: Setting, value: Any, source: str) -> Any:
    try:
        return setting.parse(value)
    except (InvalidArgument, ValueError, TypeError) as e:
        raise InvalidArgument(f"{source}: invalid value {value!r} for {setting.name}: {e}") from e


def read_config_file(path: str) -> dict[str, Any]:
    """The settings of a TOML file (keys as in :data:`SETTINGS`, dashes or underscores)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except OSError as e:
        raise InvalidArgument(f"cannot read the settings file {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgument(f"{path} is not valid TOML: {e}") from e
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        setting = _BY_NAME.get(name)
        if setting is None:
            raise InvalidArgument(
                f"{path}: unknown setting {key!r}; known: {', '.join(sorted(_BY_NAME))}"
            )
        values[name] = _convert(setting, value, path)
    return values


def read_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``ONNXPY_<NAME>`` environment variables."""
    return {s.name: _convert(s, env[s.env], s.env) for s in SETTINGS if env.get(s.env) is not None}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> ServeSettings:
    """Merge defaults < TOML file < environment < flags (``None`` flags are "not given")."""
    env = os.environ if env is None else env
    config_file = config_file or env.get("ONNXPY_CONFIG") or None
    values: dict[str, Any] = {}
    if config_file:
        values.update(read_config_file(config_file))
    values.update(read_environment(env))
    for name, value in (flags or {}).items():
        if value is None or value == ():
            continue
        setting = _BY_NAME.get(name)
        if setting is None:
            raise InvalidArgument(f"unknown setting {name!r}")
        values[name] = _convert(setting, value, setting.option)
    if values.get("log_level"):
        values["log_level"] = str(values["log_level"]).lower()
    return ServeSettings(**values)
