"""Per model-version queue and worker threads; with dynamic batching, merging along axis 0.

A :class:`Scheduler` owns one queue and ``instances`` worker threads (Triton's instance count:
that many executions run at once; onnxpy sessions are thread-safe and NumPy releases the GIL
in its heavy loops). Callers :meth:`~Scheduler.submit` a :class:`Work` item and get a
``concurrent.futures.Future`` (``asyncio.wrap_future`` turns it into an awaitable), so the
scheduler knows nothing about event loops or transports.

Without batching each worker takes one request at a time. With batching a worker takes the
oldest request, then keeps adding queued requests *with the same key* (same input names,
dtypes and every dimension but the first, and the same requested outputs) while the rows fit in
``max_batch_size``; it runs as soon as the rows reach the largest preferred batch size (or the
maximum), or a preferred size with nothing compatible left in the queue, or when the oldest
request has waited ``max_queue_delay_us``, or at once when requests have lately been arriving
less often than once per delay (a lone client then never waits for companions that will not
come; measured with the MLP at c=1: 417 -> 900 req/s, the unbatched rate). The merged batch
runs once and its outputs are sliced back by rows. If the batch fails, its requests run again
one by one, so that one bad request never fails its batch-mates. A full queue
(``max_queue_size``) refuses at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxpy.serving.errors import Unavailable

__all__ = ["Work", "Scheduler", "RunFn", "BatchRecorder"]

log = logging.getLogger("onnxpy.serving")

# run(feeds, output_names) -> one value per output name
RunFn = Callable[[dict[str, Any], Sequence[str]], list[Any]]
# record(batch_rows, input_ns, infer_ns, output_ns)
BatchRecorder = Callable[[int, int, int, int], None]


@dataclass
class Work:
    """One request's feeds, the outputs it needs, and where its answer goes."""

    feeds: dict[str, Any]
    outputs: tuple[str, ...]
    rows: int = 1
    key: Hashable = None
    future: Future = field(default_factory=Future)
    enqueued_ns: int = 0
    # Filled by the scheduler for statistics: queue wait, and the batch's compute split.
    queue_ns: int = 0
    compute_ns: tuple[int, int, int] = (0, 0, 0)


class Scheduler:
    """The queue and workers of one model version; see the module docstring."""

    def __init__(
        self,
        run: RunFn,
        *,
        name: str,
        instances: int = 1,
        max_batch_size: int = 0,
        preferred_batch_sizes: Sequence[int] = (),
        max_queue_delay_us: int = 0,
        max_queue_size: int = 0,
        record_batch: BatchRecorder | None = None,
        on_queue_change: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self.name = name
        self.max_batch_size = max_batch_size
        self._preferred = sorted(set(preferred_batch_sizes))
        self._target = max(self._preferred) if self._preferred else max_batch_size
        self._delay_ns = max_queue_delay_us * 1000
        self._max_queue = max_queue_size
        self._record = record_batch or (lambda *a: None)
        self._on_queue = on_queue_change or (lambda d: None)
        self._queue: deque[Work] = deque()
        self._queued_rows = 0
        # One lock, two conditions, so that an arrival wakes only who can use it: an idle worker,
        # or a worker gathering a batch once the queue holds enough rows to fill it. (Each
        # wake-up costs a thread switch, which on a busy machine costs more than the model.)
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._can_fill = threading.Condition(self._lock)
        self._closing = False
        self._busy = 0
        self._gathering = 0
        self._gathered_rows = 0
        # Mean time between arrivals (exponentially weighted, each gap capped at twice the
        # delay): waiting for companions pays only if one is expected within the delay.
        self._gap_ns = 0.0
        self._last_arrival = time.perf_counter_ns()
        self._workers = [
            threading.Thread(target=self._loop, name=f"onnxpy-{name}-{i}", daemon=True)
            for i in range(max(1, instances))
        ]
        for w in self._workers:
            w.start()

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 0

    def submit(self, work: Work) -> Future:
        """Queue a request; raises Unavailable at once when the queue is full or closing."""
        with self._lock:
            if self._closing:
                raise Unavailable(f"model '{self.name}' is unloading")
            if self._max_queue and len(self._queue) >= self._max_queue:
                raise Unavailable(
                    f"model '{self.name}' has {len(self._queue)} requests queued, its "
                    f"max_queue_size; try again later"
                )
            work.enqueued_ns = now = time.perf_counter_ns()
            gap = min(now - self._last_arrival, 2 * self._delay_ns)
            self._gap_ns = 0.8 * self._gap_ns + 0.2 * gap
            self._last_arrival = now
            self._queue.append(work)
            self._queued_rows += work.rows
            if not self._gathering:
                self._has_work.notify()
            elif self._queued_rows + self._gathered_rows >= self._target:
                self._can_fill.notify()
                if self._queued_rows >= self._target:  # more than the gatherer can take
                    self._has_work.notify()
        self._on_queue(1)
        return work.future

    def close(self, timeout: float | None = None) -> bool:
        """Finish what is queued and running, then stop the workers; True if they stopped."""
        with self._lock:
            self._closing = True
            self._has_work.notify_all()
            self._can_fill.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for w in self._workers:
            w.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in self._workers)

    # -- workers -------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._has_work.wait()
                if not self._queue:
                    return
                batch = self._take_batch() if self.batching else [self._pop()]
                self._busy += 1
            self._on_queue(-len(batch))
            try:
                self._execute(batch)
            except BaseException as e:  # noqa: BLE001 - a worker must never die silently
                log.exception("model '%s': a batch failed unexpectedly", self.name)
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(e)
            finally:
                with self._lock:
                    self._busy -= 1

    def _pop(self) -> Work:
        work = self._queue.popleft()
        self._queued_rows -= work.rows
        return work

    def _take_batch(self) -> list[Work]:
        """Called with the lock held and a non-empty queue; see the module docstring."""
        first = self._pop()
        batch, rows = [first], first.rows
        deadline = first.enqueued_ns + self._delay_ns
        while rows < self._target:
            kept: deque[Work] = deque()
            while self._queue:
                w = self._queue.popleft()
                if w.key == first.key and rows + w.rows <= self.max_batch_size:
                    batch.append(w)
                    rows += w.rows
                    self._queued_rows -= w.rows
                    if rows >= self._target:
                        break
                else:
                    kept.append(w)
            kept.extend(self._queue)
            self._queue = kept
            if rows >= self._target or self._closing:
                break
            if rows in self._preferred:
                break  # nothing queued now grows it; a preferred size goes at once
            remaining = deadline - time.perf_counter_ns()
            if remaining <= 0 or self._gap_ns > self._delay_ns:
                break  # the delay is over, or no companion is expected within it
            self._gathering += 1
            self._gathered_rows += rows
            try:
                self._can_fill.wait(remaining / 1e9)
            finally:
                self._gathering -= 1
                self._gathered_rows -= rows
        return batch

    def _execute(self, batch: list[Work]) -> None:
        start = time.perf_counter_ns()
        for w in batch:
            w.queue_ns = start - w.enqueued_ns
        if len(batch) == 1:
            self._run_one(batch[0], start)
            return
        feeds = {name: np.concatenate([w.feeds[name] for w in batch]) for name in batch[0].feeds}
        merged = time.perf_counter_ns()
        try:
            values = self._run(feeds, batch[0].outputs)
        except Exception as e:  # noqa: BLE001 - retried alone so only the culprit fails
            log.info("model '%s': a batch of %d failed (%s); running them one by one",
                     self.name, len(batch), e)  # fmt: skip
            for w in batch:
                self._run_one(w, time.perf_counter_ns())
            return
        ran = time.perf_counter_ns()
        total = sum(w.rows for w in batch)
        if not all(_rows_of(v) == total for v in values):
            for w in batch:  # an output without the batch axis: cannot be split
                self._run_one(w, time.perf_counter_ns())
            return
        parts, offset = [], 0
        for w in batch:
            parts.append([v[offset : offset + w.rows] for v in values])
            offset += w.rows
        done = time.perf_counter_ns()
        compute = (merged - start, ran - merged, done - ran)
        self._record(total, *compute)
        for w, part in zip(batch, parts):
            w.compute_ns = compute
            w.future.set_result(part)

    def _run_one(self, work: Work, start: int) -> None:
        try:
            values = self._run(work.feeds, work.outputs)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting request
            work.future.set_exception(e)
            return
        ran = time.perf_counter_ns()
        work.compute_ns = (0, ran - start, 0)
        self._record(work.rows, 0, ran - start, 0)
        work.future.set_result(values)


def _rows_of(value: Any) -> int | None:
    if isinstance(value, np.ndarray):
        return value.shape[0] if value.ndim else None
    if isinstance(value, list):
        return len(value)
    return None
