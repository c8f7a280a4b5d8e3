"""Prometheus metric objects of the whole app, declared in one place so that names stay consistent.

They live in prometheus_client's default registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol
from weakref import WeakSet

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RATE_LIMIT_BACKEND_ERRORS = Counter(
    "llavero_rate_limit_backend_errors",
    "Calls to the shared rate limit backend (Redis) that failed; they were answered from "
    "in-process counters instead.",
)

USAGE_FLUSH_SECONDS = Histogram(
    "llavero_usage_flush_seconds",
    "Time to write one batch of usage counts to the database.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
USAGE_FLUSH_FAILURES = Counter(
    "llavero_usage_flush_failures",
    "Usage flushes the database refused; their counts stayed buffered for the next try.",
)


class UsageSource(Protocol):
    def verify_counts(self) -> dict[str, int]: ...

    def buffered_buckets(self) -> int: ...


class UsageCollector(Collector):
    """Verify outcomes and the usage buffer, read from the meters at scrape time.

    The meter already counts every verify under its lock, so exporting those counts when
    Prometheus asks costs the hot path nothing, where `Counter.labels(code).inc()` per verify
    would take a second lock and a label lookup on every call."""

    def __init__(self) -> None:
        self._sources: WeakSet[UsageSource] = WeakSet()

    def add(self, source: UsageSource) -> None:
        self._sources.add(source)

    def discard(self, source: UsageSource) -> None:
        self._sources.discard(source)

    def collect(self) -> Iterator[Metric]:
        totals: dict[str, int] = {}
        buffered = 0
        for source in list(self._sources):
            for code, count in source.verify_counts().items():
                totals[code] = totals.get(code, 0) + count
            buffered += source.buffered_buckets()
        verifies = CounterMetricFamily(
            "llavero_verify", "Verifies answered, by outcome code.", labels=["code"]
        )
        for code, count in sorted(totals.items()):
            verifies.add_metric([code], count)
        yield verifies
        yield GaugeMetricFamily(
            "llavero_usage_buffer_buckets",
            "Usage buckets counted in memory and not yet written to the database.",
            value=buffered,
        )


USAGE_SOURCES = UsageCollector()
REGISTRY.register(USAGE_SOURCES)
