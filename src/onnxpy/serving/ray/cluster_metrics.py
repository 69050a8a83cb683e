"""Every replica's Prometheus metrics in one exposition, each series labelled by its replica.

Each replica's data plane keeps its own registry (requests it answered, its queues, its batch
sizes). Behind Serve's proxy a scrape of ``/metrics`` reaches one replica at random, so the
replicas push their exposition to the coordinator and whichever replica is asked answers with
all of them: a family appears once, with a ``replica`` label added to every sample, as
Prometheus expects. Sums over replicas are then the usual PromQL
(``sum without (replica) (rate(nv_inference_count[1m]))``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["merge_expositions", "REPLICA_LABEL"]

REPLICA_LABEL = "replica"


class _Families:
    """A collector handing prometheus-client's writer families that are already built."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def merge_expositions(texts: Mapping[str, bytes | str], label: str = REPLICA_LABEL) -> bytes:
    """One text exposition of ``{replica: exposition}``, ``label="<replica>"`` on each sample."""
    families: dict[str, Metric] = {}
    for replica, text in sorted(texts.items()):
        text = text.decode() if isinstance(text, bytes) else text
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                merged.samples.append(sample._replace(labels={label: replica, **sample.labels}))
    return generate_latest(_Families(families.values()))  # type: ignore[arg-type]
