"""The model repository: which models and versions are loaded, and changing that safely.

:class:`Repository` finds models (a Triton folder, the JSON list or one file; see
``config.py``), loads the versions their version policy selects, and keeps a routing table
``name -> ModelRecord`` that request handlers read without locks: every change builds new
records and swaps the table, then retires the replaced versions, which stop taking requests,
finish those in flight and only then shut their workers. So polling (``--model-control poll``)
and explicit load/unload never drop a request. A model or version that fails to load is
recorded with its reason (shown by the index, metadata and logs) while the others keep serving.

Readiness is Triton's strict kind: the server is ready when every model meant to be loaded has
all its selected versions ready. Model names from requests are only looked up in the table;
the load API accepts only names that are folders of the repository, so no request reaches a
path outside it.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnxpy.serving.config import (
    ModelSource,
    apply_defaults,
    config_list_sources,
    file_source,
    triton_source,
    valid_model_name,
    versions_to_serve,
)
from onnxpy.serving.errors import ModelLoadError, ModelNotFound, Unavailable, Unsupported
from onnxpy.serving.grpc import inference_pb2 as pb
from onnxpy.serving.metrics import ServerMetrics
from onnxpy.serving.model import ModelVersion
from onnxpy.serving.settings import ServeSettings

__all__ = ["Repository", "ModelRecord"]

log = logging.getLogger("onnxpy.serving")


@dataclass
class ModelRecord:
    """What the server knows of one model; replaced, never edited, once published."""

    name: str
    source: ModelSource | None = None
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    error: str = ""  # the model as a whole could not be read or has no versions
    wanted: bool = False  # meant to be loaded (counts for server readiness)
    fingerprint: tuple = ()

    @property
    def ready(self) -> bool:
        return bool(self.versions) and not self.failures and not self.error

    @property
    def reason(self) -> str:
        if self.error:
            return self.error
        if self.failures:
            return "; ".join(f"version {v}: {r}" for v, r in sorted(self.failures.items()))
        return "" if self.versions else "not loaded"


class Repository:
    """Loads, routes, reloads and unloads model versions; see the module docstring."""

    def __init__(self, settings: ServeSettings, metrics: ServerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._records: dict[str, ModelRecord] = {}
        self._lock = threading.RLock()  # one change at a time; readers never take it
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._retiring: list[threading.Thread] = []
        # Versions replaced by a change: retired only after the new table is published, so a
        # lookup never finds a version that already refuses requests.
        self._to_retire: list[ModelVersion] = []

    # -- discovery ------------------------------------------------------------------------------
    def discover(self) -> dict[str, ModelSource | Exception]:
        """Every model the configured source describes now (a per-model error is kept)."""
        s = self.settings
        if s.model_config_list:
            return {src.name: src for src in config_list_sources(Path(s.model_config_list))}
        if not s.model_repository:
            return {}
        root = Path(s.model_repository)
        if root.is_file():
            src = file_source(root)
            return {src.name: src}
        if not root.is_dir():
            raise ModelLoadError(f"model repository {root} is neither a folder nor a file")
        found: dict[str, ModelSource | Exception] = {}
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            if not valid_model_name(entry.name):
                log.warning("skipping %s: not a usable model name", entry.path)
                continue
            try:
                found[entry.name] = triton_source(Path(entry.path))
            except Exception as e:  # noqa: BLE001 - reported per model
                found[entry.name] = e
        return found

    # -- start, poll, stop ----------------------------------------------------------------------
    def start(self) -> None:
        """Load what the model-control mode says to load at start (blocking)."""
        found = self.discover()
        if self.settings.model_control == "explicit":
            wanted = set(self.settings.load_model)
            names = set(found) if "*" in wanted else wanted
            unknown = sorted(names - set(found))
            if unknown:
                raise ModelLoadError(f"--load-model names unknown models: {unknown}")
        else:
            names = set(found)
        with self._lock:
            records = {n: ModelRecord(n, error="not loaded") for n in found}
            for name in sorted(names):
                records[name] = self._load_record(name, found[name], None)
            self._publish(records)
        if self.settings.model_control == "poll":
            self._poller = threading.Thread(target=self._poll_loop, name="onnxpy-poll", daemon=True)
            self._poller.start()

    def close(self, timeout: float) -> None:
        """Stop polling and retire every version (in-flight requests finish first)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
        with self._lock:
            records, self._records = self._records, {}
        for rec in records.values():
            for v in rec.versions.values():
                v.retire(timeout)
                self.metrics.unregister(v.stats)
        for t in self._retiring:
            t.join(timeout)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.settings.repository_poll_secs):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a bad scan must not stop polling
                log.exception("repository poll failed; serving what is loaded")

    def poll_once(self) -> None:
        """Load new and changed models and versions, unload removed ones."""
        found = self.discover()
        with self._lock:
            records = dict(self._records)
            for name in sorted(set(records) - set(found)):
                log.info("model '%s' left the repository: unloading", name)
                self._retire_record(records.pop(name))
            for name, source in sorted(found.items()):
                old = records.get(name)
                fingerprint = _fingerprint(source)
                if old is not None and old.fingerprint == fingerprint:
                    continue
                records[name] = self._load_record(name, source, old)
            self._publish(records)

    # -- explicit control -----------------------------------------------------------------------
    def load(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        """Load (or reload) one model by name: the repository API's load."""
        self._require_explicit("load")
        for key in parameters or {}:
            if key == "config" or key.startswith("file:"):
                raise Unsupported(
                    f"load parameter '{key}' (config or file override) is not offered; edit the "
                    "repository instead"
                )
        if not valid_model_name(name):
            raise ModelNotFound(f"'{name}' is not a model name of this repository")
        found = self.discover()
        if name not in found:
            raise ModelNotFound(f"no model '{name}' in the repository")
        with self._lock:
            records = dict(self._records)
            rec = self._load_record(name, found[name], records.get(name))
            records[name] = rec
            self._publish(records)
        if not rec.ready:
            raise ModelLoadError(f"failed to load '{name}': {rec.reason}")

    def unload(self, name: str) -> None:
        """Unload one model: requests in flight finish, new ones are refused."""
        self._require_explicit("unload")
        with self._lock:
            rec = self._records.get(name)
            if rec is None:
                raise ModelNotFound(f"no model '{name}' in the repository")
            records = dict(self._records)
            records[name] = ModelRecord(name, source=rec.source, error="unloaded")
            self._retire_record(rec)
            self._publish(records)

    def _require_explicit(self, what: str) -> None:
        if self.settings.model_control != "explicit":
            raise Unsupported(
                f"model {what} through the repository API needs --model-control explicit "
                f"(this server runs with '{self.settings.model_control}')"
            )

    # -- loading --------------------------------------------------------------------------------
    def _load_record(
        self, name: str, source: ModelSource | Exception, old: ModelRecord | None
    ) -> ModelRecord:
        """A new record for ``name``: keeps unchanged versions of ``old``, loads the rest."""
        if isinstance(source, Exception):
            log.error("model '%s' cannot be read: %s", name, source)
            if old is not None:
                self._retire_record(old)
            return ModelRecord(name, error=str(source), wanted=True)
        rec = ModelRecord(name, source=source, wanted=True, fingerprint=_fingerprint(source))
        config = pb.ModelConfig()
        config.CopyFrom(source.config)
        try:
            apply_defaults(config, self.settings, configured=source.config_path is not None)
        except ModelLoadError as e:
            rec.error = str(e)
            log.error("model '%s' cannot be loaded: %s", name, e)
            if old is not None:
                self._retire_record(old)
            return rec
        files = source.version_files()
        selected = versions_to_serve(config.version_policy, list(files))
        if not selected:
            rec.error = f"no version folder holding a model file in {source.folder}"
            if config.version_policy.WhichOneof("policy_choice") == "specific":
                rec.error = f"none of the versions {list(config.version_policy.specific.versions)}"
            log.error("model '%s': %s", name, rec.error)
        same_config = old is not None and old.source is not None and _same_config(old, source)
        for v in selected:
            previous = old.versions.get(v) if old is not None and same_config else None
            if previous is not None and _file_id(previous.path) == previous.file_id:
                rec.versions[v] = previous
                continue
            try:
                rec.versions[v] = self._load_version(source, v, files[v], config)
                log.info("model '%s' version %d is ready", name, v)
            except Exception as e:  # noqa: BLE001 - recorded and reported, others keep serving
                rec.failures[v] = str(e)
                log.error("model '%s' version %d failed to load: %s", name, v, e)
        if old is not None:
            gone = [ver for k, ver in old.versions.items() if rec.versions.get(k) is not ver]
            self._retire_versions(gone)
        return rec

    def _load_version(
        self, source: ModelSource, version: int, path: Path, config: pb.ModelConfig
    ) -> ModelVersion:
        stats = self.metrics.register(source.name, str(version))
        file_id = _file_id(path)
        try:
            model = ModelVersion(
                source, version, path, config, stats,
                intra_op_threads=self.settings.intra_op_threads,
                default_queue_size=self.settings.max_queue_size,
            )  # fmt: skip
        except Exception:
            self.metrics.unregister(stats)
            raise
        model.file_id = file_id
        return model

    def _publish(self, records: dict[str, ModelRecord]) -> None:
        """Swap in the new table, then retire what it no longer routes to (lock held)."""
        self._records = records
        versions, self._to_retire = self._to_retire, []
        if not versions:
            return

        def retire() -> None:
            for v in versions:
                v.retire(self.settings.drain_timeout)
                self.metrics.unregister(v.stats)
                log.info("model '%s' version %d unloaded", v.name, v.version)

        t = threading.Thread(target=retire, name="onnxpy-retire", daemon=True)
        self._retiring = [r for r in self._retiring if r.is_alive()] + [t]
        t.start()

    def _retire_record(self, rec: ModelRecord) -> None:
        self._retire_versions(list(rec.versions.values()))

    def _retire_versions(self, versions: list[ModelVersion]) -> None:
        """Mark versions for retirement at the next publish (lock held)."""
        self._to_retire.extend(versions)

    # -- reading --------------------------------------------------------------------------------
    def record(self, name: str) -> ModelRecord:
        rec = self._records.get(name)
        if rec is None:
            raise ModelNotFound(f"unknown model '{name}'")
        return rec

    def lookup(self, name: str, version: str = "") -> ModelVersion:
        """The version serving a request, already acquired (the caller must release it)."""
        for _ in range(3):  # a swap between lookup and acquire: look again in the new table
            model = self.select(self.record(name), version)
            if model.acquire():
                return model
        raise Unavailable(f"model '{name}' is being reloaded; try again")

    def select(self, rec: ModelRecord, version: str) -> ModelVersion:
        """The version a request for ``version`` (empty: the newest) goes to; not acquired."""
        if version:
            if not version.isdigit():
                raise ModelNotFound(f"model '{rec.name}' has no version '{version}'")
            v = int(version)
            model = rec.versions.get(v)
            if model is not None:
                return model
            if v in rec.failures:
                raise Unavailable(
                    f"model '{rec.name}' version {v} failed to load: {rec.failures[v]}"
                )
            raise ModelNotFound(f"model '{rec.name}' has no version {v} loaded")
        if not rec.versions:
            raise Unavailable(f"model '{rec.name}' is not available: {rec.reason}")
        return rec.versions[max(rec.versions)]

    def ready(self) -> bool:
        return all(r.ready for r in self._records.values() if r.wanted)

    def not_ready(self) -> dict[str, str]:
        return {n: r.reason for n, r in self._records.items() if r.wanted and not r.ready}

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """The repository index: one entry per model version (or per model never loaded)."""
        rows: list[dict[str, str]] = []
        for name, rec in sorted(self._records.items()):
            for v in sorted(set(rec.versions) | set(rec.failures)):
                if v in rec.versions:
                    rows.append({"name": name, "version": str(v), "state": "READY"})
                elif not ready_only:
                    rows.append({"name": name, "version": str(v), "state": "UNAVAILABLE",
                                 "reason": rec.failures[v]})  # fmt: skip
            if not rec.versions and not rec.failures and not ready_only:
                rows.append({"name": name, "state": "UNAVAILABLE", "reason": rec.reason})
        return rows

    def names(self) -> list[str]:
        return sorted(self._records)


def _file_id(path: Path) -> tuple:
    try:
        st = path.stat()
        return (st.st_size, st.st_mtime_ns)
    except OSError:
        return (None, None)


def _fingerprint(source: ModelSource | Exception) -> tuple:
    return () if isinstance(source, Exception) else source.fingerprint()


def _same_config(old: ModelRecord, source: ModelSource) -> bool:
    assert old.source is not None
    return old.source.config == source.config
