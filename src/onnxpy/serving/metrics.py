"""Per model-version statistics, served two ways: the v2 statistics extension and Prometheus.

One :class:`ModelStats` per loaded (model, version) counts what Triton counts (successes and
failures, queue and compute time per request, rows and executions, time per batch size). The
``/v2/models/.../stats`` route reads it as the statistics extension; ``/metrics`` exposes it
under Triton's metric names so that existing dashboards work:

- ``nv_inference_request_success``, ``nv_inference_request_failure`` (label ``reason``),
  ``nv_inference_count`` (rows), ``nv_inference_exec_count`` (executions),
  ``nv_inference_request_duration_us``, ``nv_inference_queue_duration_us``,
  ``nv_inference_compute_input_duration_us``, ``nv_inference_compute_infer_duration_us``,
  ``nv_inference_compute_output_duration_us`` (cumulative, as Triton's), and the gauge
  ``nv_inference_pending_request_count`` (queued, not yet running);
- histograms ``nv_inference_request_histogram_us``, ``nv_inference_queue_histogram_us``,
  ``nv_inference_compute_infer_histogram_us`` and ``nv_inference_batch_size_histogram``, and
  the gauge ``nv_inference_inflight_request_count`` (accepted, not yet answered), which Triton
  does not have.

Triton's cumulative metrics carry no ``_total`` suffix, which prometheus-client's Counter always
adds; they are therefore exposed by a collector of our own as ``untyped`` families under their
exact names (PromQL's ``rate()`` works on them as on Triton's). Each :class:`ServerMetrics` owns
its registry, so several data planes in one process (tests, Ray replicas) never share series.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import Metric

__all__ = ["ModelStats", "ServerMetrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABELS = ("model", "version")
_US_BUCKETS = (100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 5e6)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# (key, name, help, buckets) of the histograms Triton does not have
_HISTOGRAMS = (
    ("request", "nv_inference_request_histogram_us", "Request time, end to end (us)", _US_BUCKETS),
    ("queue", "nv_inference_queue_histogram_us", "Time waiting in the queue (us)", _US_BUCKETS),
    ("infer", "nv_inference_compute_infer_histogram_us", "Model execution time per batch (us)",
     _US_BUCKETS),
    ("batch", "nv_inference_batch_size_histogram", "Rows per model execution", _BATCH_BUCKETS),
)  # fmt: skip

# (Triton name, help, attribute of ModelStats holding the value, unit divisor ns -> us)
_CUMULATIVE = (
    ("nv_inference_request_success", "Successful inference requests", "success_count", 1),
    ("nv_inference_count", "Inferences performed (rows; a batch of 8 counts 8)", "rows", 1),
    ("nv_inference_exec_count", "Model executions (a batch counts 1)", "executions", 1),
    ("nv_inference_request_duration_us", "Request time, end to end", "request_ns", 1000),
    ("nv_inference_queue_duration_us", "Time requests waited in the queue", "queue_ns", 1000),
    ("nv_inference_compute_input_duration_us", "Time merging inputs", "input_ns", 1000),
    ("nv_inference_compute_infer_duration_us", "Time running the model", "infer_ns", 1000),
    ("nv_inference_compute_output_duration_us", "Time splitting outputs", "output_ns", 1000),
)


class ModelStats:
    """Counters of one (model, version); every method is thread-safe."""

    def __init__(self, model: str, version: str, histograms: dict[str, Histogram]) -> None:
        self.model, self.version = model, version
        self._lock = threading.Lock()
        self.success_count = self.success_ns = 0
        self.fail_count = self.fail_ns = 0
        self.failures: dict[str, int] = {}
        self.queue_count = self.queue_ns = 0
        self.input_ns = self.infer_ns = self.output_ns = self.compute_count = 0
        self.request_ns = 0
        self.rows = self.executions = 0
        self.last_inference_ms = 0
        self.batches: dict[int, list[int]] = {}  # size -> [count, input_ns, infer_ns, output_ns]
        self.pending = 0
        self.inflight = 0
        labels = (model, version)
        self._request_hist = histograms["request"].labels(*labels)
        self._queue_hist = histograms["queue"].labels(*labels)
        self._infer_hist = histograms["infer"].labels(*labels)
        self._batch_hist = histograms["batch"].labels(*labels)

    def enter(self) -> None:
        with self._lock:
            self.inflight += 1

    def queued(self, delta: int) -> None:
        with self._lock:
            self.pending += delta

    def record_batch(self, size: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        with self._lock:
            self.executions += 1
            self.rows += size
            entry = self.batches.setdefault(size, [0, 0, 0, 0])
            entry[0] += 1
            entry[1] += input_ns
            entry[2] += infer_ns
            entry[3] += output_ns
        self._batch_hist.observe(size)
        self._infer_hist.observe(infer_ns / 1000)

    def record_request(
        self, ok: bool, total_ns: int, queue_ns: int, compute: tuple[int, int, int] | None,
        reason: str = "OTHER",
    ) -> None:  # fmt: skip
        """One answered request: success or failure, and where its time went."""
        with self._lock:
            self.inflight -= 1
            self.last_inference_ms = int(time.time() * 1000)
            if ok:
                self.success_count += 1
                self.success_ns += total_ns
                self.request_ns += total_ns
            else:
                self.fail_count += 1
                self.fail_ns += total_ns
                self.failures[reason] = self.failures.get(reason, 0) + 1
            if compute is not None:
                self.queue_count += 1
                self.queue_ns += queue_ns
                self.compute_count += 1
                self.input_ns += compute[0]
                self.infer_ns += compute[1]
                self.output_ns += compute[2]
        if ok:
            self._request_hist.observe(total_ns / 1000)
            self._queue_hist.observe(queue_ns / 1000)

    def snapshot(self) -> dict:
        """The v2 statistics extension's JSON object for this version."""

        def dur(count: int, ns: int) -> dict:
            return {"count": count, "ns": ns}

        with self._lock:
            return {
                "name": self.model,
                "version": self.version,
                "last_inference": self.last_inference_ms,
                "inference_count": self.rows,
                "execution_count": self.executions,
                "inference_stats": {
                    "success": dur(self.success_count, self.success_ns),
                    "fail": dur(self.fail_count, self.fail_ns),
                    "queue": dur(self.queue_count, self.queue_ns),
                    "compute_input": dur(self.compute_count, self.input_ns),
                    "compute_infer": dur(self.compute_count, self.infer_ns),
                    "compute_output": dur(self.compute_count, self.output_ns),
                },
                "batch_stats": [
                    {
                        "batch_size": size,
                        "compute_input": dur(c, i),
                        "compute_infer": dur(c, n),
                        "compute_output": dur(c, o),
                    }
                    for size, (c, i, n, o) in sorted(self.batches.items())
                ],
            }


class _TritonCollector:
    """Yields the Triton-named cumulative metrics and gauges of every registered ModelStats."""

    def __init__(self, owner: ServerMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        stats = self._owner.all_stats()
        for name, doc, attr, divisor in _CUMULATIVE:
            family = Metric(name, doc, "unknown")
            for s in stats:
                value = getattr(s, attr)
                family.add_sample(name, {"model": s.model, "version": s.version}, value / divisor)
            yield family
        failure = Metric("nv_inference_request_failure", "Failed inference requests", "unknown")
        for s in stats:
            for reason, count in sorted(s.failures.items()) or [("OTHER", 0)]:
                labels = {"model": s.model, "version": s.version, "reason": reason}
                failure.add_sample("nv_inference_request_failure", labels, count)
        yield failure
        for name, attr, doc in (
            ("nv_inference_pending_request_count", "pending", "Requests queued, not yet running"),
            ("nv_inference_inflight_request_count", "inflight", "Requests accepted, not answered"),
        ):
            gauge = Metric(name, doc, "gauge")
            for s in stats:
                gauge.add_sample(name, {"model": s.model, "version": s.version}, getattr(s, attr))
            yield gauge


class ServerMetrics:
    """The metrics of one data plane: its own Prometheus registry and the per-version stats."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._stats: dict[tuple[str, str], ModelStats] = {}
        self._lock = threading.Lock()
        self._histograms = {
            key: Histogram(name, doc, _LABELS, registry=self.registry, buckets=buckets)
            for key, name, doc, buckets in _HISTOGRAMS
        }
        self.registry.register(_TritonCollector(self))

    def register(self, model: str, version: str) -> ModelStats:
        with self._lock:
            stats = ModelStats(model, version, self._histograms)
            self._stats[(model, version)] = stats
            return stats

    def unregister(self, stats: ModelStats) -> None:
        """Drop an unloaded version's series (Triton removes them too)."""
        with self._lock:
            if self._stats.get((stats.model, stats.version)) is stats:
                del self._stats[(stats.model, stats.version)]
                for h in self._histograms.values():
                    try:
                        h.remove(stats.model, stats.version)
                    except KeyError:
                        pass

    def all_stats(self) -> list[ModelStats]:
        with self._lock:
            return list(self._stats.values())

    def exposition(self) -> bytes:
        """The Prometheus text format of everything."""
        return generate_latest(self.registry)
