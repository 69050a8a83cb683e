"""Where models come from and how they are configured: config.pbtxt, the JSON list, a bare file.

Three sources describe a model, and all end as a :class:`ModelSource` holding a
``ModelConfig`` message (the subset of Triton's model configuration in ``grpc/inference.proto``):

- a Triton repository folder ``<repo>/<model>/<version>/model.onnx`` with an optional
  ``<repo>/<model>/config.pbtxt``, parsed by protobuf's text format against onnxpy's subset;
  fields outside the subset are skipped and logged, so an existing Triton ONNX repository is
  served unchanged;
- the tutorials' JSON file ``{"model_config_list": [{"name", "base_path", "model_platform",
  "max_batch_size"}]}`` (entries may also be wrapped as ``{"config": {...}}``, and may carry
  ``model_version_policy``, ``max_queue_delay_microseconds``, ``preferred_batch_size``,
  ``max_queue_size`` and ``instance_count``);
- one ``.onnx`` file, served under the file's name as version 1.

Settings supply what a source leaves out (``--max-batch-size`` and friends). A config without
inputs and outputs is completed from the model when it loads (see ``model.py``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from onnxpy.serving.errors import ModelLoadError
from onnxpy.serving.grpc import inference_pb2 as pb
from onnxpy.serving.settings import ServeSettings

__all__ = [
    "ModelSource",
    "parse_config_text",
    "triton_source",
    "file_source",
    "config_list_sources",
    "apply_defaults",
    "versions_to_serve",
    "valid_model_name",
]

log = logging.getLogger("onnxpy.serving")

ONNX_PLATFORMS = {"", "onnxruntime_onnx", "onnx", "onnxruntime", "onnxpy"}
DEFAULT_MODEL_FILENAME = "model.onnx"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}")


def valid_model_name(name: str) -> bool:
    """A model name that is one plain path component: no separators, no '..', no NUL."""
    return bool(_NAME.fullmatch(name)) and name not in (".", "..") and ".." not in name


@dataclass
class ModelSource:
    """One model as found on disk: its name, folder or file, and configuration."""

    name: str
    config: pb.ModelConfig
    folder: Path  # holds the numbered version folders (unused for a single file)
    single_file: Path | None = None  # a model served from one file as version 1
    config_path: Path | None = None
    ignored: list[str] = field(default_factory=list)

    def version_files(self) -> dict[int, Path]:
        """The versions present on disk now, each with its model file."""
        if self.single_file is not None:
            return {1: self.single_file} if self.single_file.is_file() else {}
        filename = self.config.default_model_filename or DEFAULT_MODEL_FILENAME
        found: dict[int, Path] = {}
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return {}
        for entry in entries:
            if not entry.is_dir() or not entry.name.isdigit():
                continue
            path = Path(entry.path) / filename
            if not path.is_file() and not self.config.default_model_filename:
                candidates = sorted(Path(entry.path).glob("*.onnx"))
                path = candidates[0] if len(candidates) == 1 else path
            if path.is_file():
                found[int(entry.name)] = path
        return found

    def fingerprint(self) -> tuple:
        """What polling compares: the config file and every version file's size and mtime."""
        parts: list[Any] = []
        for p in [self.config_path, *sorted(self.version_files().values())]:
            if p is None:
                continue
            try:
                st = p.stat()
                parts.append((str(p), st.st_size, st.st_mtime_ns))
            except OSError:
                parts.append((str(p), None, None))
        return tuple(parts)


class _RecordingParser(text_format._Parser):  # noqa: SLF001 - to list what was skipped
    """protobuf's text parser that records the fields it skips instead of staying silent."""

    def __init__(self) -> None:
        super().__init__(allow_unknown_field=True)
        self.skipped: list[str] = []
        self._depth = 0

    def _SkipFieldContents(self, tokenizer, field_name, immediate_message_type):  # noqa: N802
        if self._depth == 0:
            self.skipped.append(f"{immediate_message_type.removeprefix('inference.')}.{field_name}")
        self._depth += 1
        try:
            super()._SkipFieldContents(tokenizer, field_name, immediate_message_type)
        finally:
            self._depth -= 1


def parse_config_text(text: str, where: str) -> tuple[pb.ModelConfig, list[str]]:
    """A config.pbtxt as a ModelConfig, and the fields outside onnxpy's subset it skipped."""
    config = pb.ModelConfig()
    parser = _RecordingParser()
    try:
        parser.ParseLines(text.split("\n"), config)
    except text_format.ParseError as e:
        raise ModelLoadError(f"{where}: not a valid model configuration: {e}") from e
    return config, parser.skipped


def _check_platform(config: pb.ModelConfig, where: str) -> None:
    platform = config.platform or config.backend
    if platform.lower() not in ONNX_PLATFORMS:
        raise ModelLoadError(
            f"{where}: platform/backend '{platform}' is not ONNX; onnxpy serves onnxruntime_onnx "
            "models only"
        )


def triton_source(folder: Path) -> ModelSource:
    """A model folder of a Triton repository (config.pbtxt optional)."""
    name = folder.name
    config_path = folder / "config.pbtxt"
    ignored: list[str] = []
    if config_path.is_file():
        try:
            text = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ModelLoadError(f"cannot read {config_path}: {e}") from e
        config, ignored = parse_config_text(text, str(config_path))
        if config.name and config.name != name:
            raise ModelLoadError(
                f"{config_path}: name '{config.name}' differs from its folder '{name}'"
            )
        if ignored:
            log.info("%s: fields onnxpy does not use were ignored: %s", config_path, ignored)
    else:
        config, config_path = pb.ModelConfig(), None
    config.name = name
    return ModelSource(name, config, folder, config_path=config_path, ignored=ignored)


def file_source(path: Path) -> ModelSource:
    """One .onnx file, served under its stem as version 1."""
    config = pb.ModelConfig(name=path.stem)
    return ModelSource(path.stem, config, path.parent, single_file=path)


_LIST_KEYS = {
    "name",
    "base_path",
    "model_platform",
    "max_batch_size",
    "model_version_policy",
    "max_queue_delay_microseconds",
    "preferred_batch_size",
    "max_queue_size",
    "instance_count",
}


def _int_field(entry: dict, key: str, where: str) -> int:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelLoadError(f"{where}: '{key}' must be a non-negative integer, got {value!r}")
    return value


def _list_entry(entry: Any, index: int, base: Path) -> ModelSource:
    where = f"model_config_list[{index}]"
    if isinstance(entry, dict) and set(entry) == {"config"} and isinstance(entry["config"], dict):
        entry = entry["config"]
    if not isinstance(entry, dict):
        raise ModelLoadError(f"{where}: each entry must be an object")
    name, base_path = entry.get("name"), entry.get("base_path")
    if not isinstance(name, str) or not valid_model_name(name):
        raise ModelLoadError(f"{where}: 'name' must be a plain model name, got {name!r}")
    if not isinstance(base_path, str) or not base_path:
        raise ModelLoadError(f"{where} ({name}): 'base_path' (a folder or .onnx file) is required")
    # An unknown platform fails this model only, when it loads (apply_defaults).
    config = pb.ModelConfig(name=name, platform=str(entry.get("model_platform", "")))
    if "max_batch_size" in entry:
        config.max_batch_size = _int_field(entry, "max_batch_size", where)
    if any(k in entry for k in ("max_queue_delay_microseconds", "preferred_batch_size")):
        db = config.dynamic_batching
        if "max_queue_delay_microseconds" in entry:
            db.max_queue_delay_microseconds = _int_field(
                entry, "max_queue_delay_microseconds", where
            )
        sizes = entry.get("preferred_batch_size", [])
        if not isinstance(sizes, list) or not all(isinstance(s, int) and s > 0 for s in sizes):
            raise ModelLoadError(f"{where}: 'preferred_batch_size' must be a list of positive ints")
        db.preferred_batch_size.extend(sizes)
    if "max_queue_size" in entry:
        config.dynamic_batching.default_queue_policy.max_queue_size = _int_field(
            entry, "max_queue_size", where
        )
    if "instance_count" in entry:
        config.instance_group.add(count=_int_field(entry, "instance_count", where))
    policy = entry.get("model_version_policy")
    if policy is not None:
        try:
            text_format.Parse(json_to_text(policy), config.version_policy)
        except (text_format.ParseError, TypeError) as e:
            raise ModelLoadError(f"{where}: bad model_version_policy {policy!r}: {e}") from e
    ignored = sorted(set(entry) - _LIST_KEYS)
    if ignored:
        log.info("%s (%s): keys onnxpy does not use were ignored: %s", where, name, ignored)
    path = Path(base_path)
    if not path.is_absolute():
        path = base / path
    if path.suffix == ".onnx" or path.is_file():
        return ModelSource(name, config, path.parent, single_file=path, ignored=ignored)
    if (path / DEFAULT_MODEL_FILENAME).is_file():
        return ModelSource(
            name, config, path, single_file=path / DEFAULT_MODEL_FILENAME, ignored=ignored
        )
    return ModelSource(name, config, path, ignored=ignored)


def json_to_text(value: Any) -> str:
    """A JSON version policy ({"latest": {"num_versions": 2}}) in protobuf text format."""
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    parts = []
    for key, inner in value.items():
        if isinstance(inner, dict):
            parts.append(f"{key} {{ {json_to_text(inner)} }}")
        elif isinstance(inner, list):
            parts.extend(f"{key}: {int(v)}" for v in inner)
        else:
            parts.append(f"{key}: {int(inner)}")
    return " ".join(parts)


def config_list_sources(path: Path) -> list[ModelSource]:
    """The models of a tutorials-style JSON ``model_config_list`` file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"cannot read the model config list {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{path} is not valid JSON: {e}") from e
    entries = doc.get("model_config_list") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ModelLoadError(f'{path}: expected {{"model_config_list": [...]}}')
    sources = [_list_entry(e, i, path.parent) for i, e in enumerate(entries)]
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ModelLoadError(f"{path}: model names listed twice: {dupes}")
    return sources


def apply_defaults(config: pb.ModelConfig, settings: ServeSettings, configured: bool) -> None:
    """Fill what a source left out from the settings (``configured``: it came with a config).

    A model without config.pbtxt (a bare file, a JSON entry, a repository folder without one)
    batches when ``--max-batch-size`` > 0, waiting at most ``--max-queue-delay-us``; a Triton
    config keeps its own choice, as Triton would run it.
    """
    _check_platform(config, config.name)
    if not configured and config.max_batch_size == 0 and settings.max_batch_size > 0:
        config.max_batch_size = settings.max_batch_size
    if config.max_batch_size > 0 and not configured and not config.HasField("dynamic_batching"):
        config.dynamic_batching.SetInParent()
    if config.HasField("dynamic_batching") and not configured:
        db = config.dynamic_batching
        if db.max_queue_delay_microseconds == 0:
            db.max_queue_delay_microseconds = settings.max_queue_delay_us
    if not config.instance_group:
        config.instance_group.add(
            count=settings.instance_count, kind=pb.ModelInstanceGroup.KIND_CPU
        )
    for group in config.instance_group:
        if group.count <= 0:
            group.count = 1
    if not config.platform and not config.backend:
        config.platform = "onnxruntime_onnx"
    if config.HasField("dynamic_batching") and config.max_batch_size == 0:
        raise ModelLoadError(f"{config.name}: dynamic_batching needs max_batch_size > 0")
    for size in config.dynamic_batching.preferred_batch_size:
        if size <= 0 or size > config.max_batch_size:
            raise ModelLoadError(
                f"{config.name}: preferred_batch_size {size} must be in 1..max_batch_size "
                f"({config.max_batch_size})"
            )


def versions_to_serve(policy: pb.ModelVersionPolicy, available: list[int]) -> list[int]:
    """The versions the policy selects among those on disk (Triton's default: the newest)."""
    available = sorted(available)
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return available
    if which == "specific":
        return [v for v in available if v in set(policy.specific.versions)]
    count = policy.latest.num_versions if which == "latest" else 1
    return available[-max(count, 1) :]
