"""The application's one small deployment that every replica of the server talks to.

Two things cannot be answered by the one replica a request happens to reach:

- **Explicit model control.** A ``load``/``unload`` request reaches one replica. That replica
  loads (or unloads) the model itself first, so a model that fails to load is refused at once
  with its reason and changes nothing; then it records the change here and waits until every
  live replica has applied it. Replicas follow the changes by long polling (an idle replica
  parks one call here; a change answers every parked call at once), apply them in order, and
  report back. A replica that starts later (a restart, autoscaling) applies the whole history
  before it takes traffic. So when a load call returns 200, every replica serves the model; if
  another replica fails to load it, the call fails naming that replica and its reason.
- **Metrics.** Each poll carries the replica's Prometheus exposition; ``/metrics`` on any
  replica answers with every live replica's series, labelled by replica
  (:mod:`~onnxpy.serving.ray.cluster_metrics`).

Every method is a coroutine: they all run on the actor's event loop, so the state needs no
lock. A replica counts as live while it polls: one that has not called for ``LIVE_S`` seconds (it
died) is left out of both. The state lives in this one actor; if it is lost (its node dies),
Serve restarts it empty, replicas re-register at their next poll, and only the load/unload
history is lost (new replicas then start from the settings' ``--load-model`` list).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ray import serve

__all__ = ["Coordinator", "POLL_S", "LIVE_S"]

POLL_S = 2.0  # a parked poll returns after this long without a change (metrics refresh)
LIVE_S = 3 * POLL_S + 2.0  # silent longer than this: the replica is gone


@dataclass
class _Replica:
    seen: float
    applied: int = 0
    metrics: bytes = b""
    failures: dict[int, str] = field(default_factory=dict)  # generation -> why it failed here
    polling: int = 0


@serve.deployment(
    name="onnxpy-coordinator",
    num_replicas=1,
    ray_actor_options={"num_cpus": 0},
    # every server replica parks one poll here; load/unload and metrics calls come on top
    max_ongoing_requests=10_000,
    # parked polls return within POLL_S; nothing here needs draining beyond that
    graceful_shutdown_wait_loop_s=0.5,
    graceful_shutdown_timeout_s=POLL_S + 1,
    logging_config={"enable_access_log": False},
)
class Coordinator:
    """Model-control history and per-replica metrics (module docstring)."""

    def __init__(self) -> None:
        self.generation = 0
        # name -> (generation, "load" | "unload", parameters, replica that made the change)
        self.changes: dict[str, tuple[int, str, dict[str, Any], str]] = {}
        self.replicas: dict[str, _Replica] = {}
        self._changed = asyncio.Event()  # replaced at each change: wakes parked polls
        self._reported = asyncio.Condition()

    def _live(self) -> dict[str, _Replica]:
        now = time.monotonic()
        return {rid: r for rid, r in self.replicas.items() if r.polling or now - r.seen < LIVE_S}

    async def poll(
        self,
        replica: str,
        applied: int,
        metrics: bytes,
        failures: dict[int, str],
        wait_s: float = POLL_S,
    ) -> tuple[int, list[tuple[str, int, str, dict[str, Any], str]]]:
        """Report what ``replica`` applied; get the changes after it (waits up to ``wait_s``)."""
        r = self.replicas.setdefault(replica, _Replica(seen=time.monotonic()))
        r.seen, r.applied, r.metrics = time.monotonic(), applied, metrics
        r.failures.update(failures)
        async with self._reported:
            self._reported.notify_all()
        if self.generation <= applied and wait_s > 0:
            changed = self._changed
            r.polling += 1
            try:
                await asyncio.wait_for(changed.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
            finally:
                r.polling -= 1
                r.seen = time.monotonic()
        pending = [
            (name, gen, action, params, origin)
            for name, (gen, action, params, origin) in self.changes.items()
            if gen > applied
        ]
        return self.generation, sorted(pending, key=lambda c: c[1])

    async def record(self, name: str, action: str, parameters: dict[str, Any], origin: str) -> int:
        """Record a load/unload already applied by ``origin``; returns its generation."""
        self.generation += 1
        self.changes[name] = (self.generation, action, dict(parameters or {}), origin)
        self._changed.set()
        self._changed = asyncio.Event()
        return self.generation

    async def wait_applied(self, generation: int, timeout: float) -> dict[str, Any]:
        """Wait until every live replica applied ``generation``: ``{"lagging", "failed"}``."""
        deadline = time.monotonic() + timeout
        async with self._reported:
            while True:
                live = self._live()
                lagging = sorted(rid for rid, r in live.items() if r.applied < generation)
                left = deadline - time.monotonic()
                if not lagging or left <= 0:
                    break
                try:
                    await asyncio.wait_for(self._reported.wait(), min(left, POLL_S))
                except asyncio.TimeoutError:
                    pass
        failed = {
            rid: r.failures[generation] for rid, r in live.items() if generation in r.failures
        }
        return {"lagging": lagging, "failed": failed}

    async def metrics(self) -> dict[str, bytes]:
        """The last exposition each live replica sent."""
        return {rid: r.metrics for rid, r in self._live().items() if r.metrics}

    async def leave(self, replica: str) -> None:
        """A replica shutting down: forget it now rather than after ``LIVE_S``."""
        self.replicas.pop(replica, None)
