"""Prometheus metrics of stream apps, labelled by namespace and processor (and partition).

The metric families are created once per registry, so several apps can share one process and
one registry (the default, process-wide one unless told otherwise).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

APP = ["namespace", "processor"]
PARTITION = [*APP, "partition"]
DEAD_LETTER_KINDS = ("undecodable", "error", "refused", "timer")


@dataclass(frozen=True)
class _Families:
    processed: Counter
    batch_size: Histogram
    commit_latency: Histogram
    aborts: Counter
    restore_records: Counter
    restore_seconds: Counter
    dead_letters: Counter
    timers_fired: Counter
    store_keys: Gauge
    timers_pending: Gauge
    lag: Gauge
    partitions_assigned: Gauge
    partitions_restoring: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> _Families:
        return cls(
            processed=Counter(
                "infinitic_messages_processed", "Input messages processed.", APP, registry=registry
            ),
            batch_size=Histogram(
                "infinitic_batch_size",
                "Messages and timers committed per transaction.",
                APP,
                buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
                registry=registry,
            ),
            commit_latency=Histogram(
                "infinitic_commit_latency_seconds",
                "Time to commit one transaction (changelog flush, offsets, commit, store write).",
                APP,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                registry=registry,
            ),
            aborts=Counter(
                "infinitic_transactions_aborted", "Transactions aborted.", APP, registry=registry
            ),
            restore_records=Counter(
                "infinitic_restore_records", "Changelog records restored.", APP, registry=registry
            ),
            restore_seconds=Counter(
                "infinitic_restore_seconds",
                "Wall-clock time the main loop spent restoring (all partitions together).",
                APP,
                registry=registry,
            ),
            dead_letters=Counter(
                "infinitic_dead_letters",
                "Inputs sent to the DLQ, by kind (undecodable, error, refused, timer).",
                [*APP, "reason"],
                registry=registry,
            ),
            timers_fired=Counter("infinitic_timers_fired", "Timers fired.", APP, registry=registry),
            store_keys=Gauge(
                "infinitic_store_keys",
                "Estimated keys in the partition's state stores.",
                PARTITION,
                registry=registry,
            ),
            timers_pending=Gauge(
                "infinitic_timers_pending",
                "Estimated timers waiting in the partition.",
                PARTITION,
                registry=registry,
            ),
            lag=Gauge(
                "infinitic_consumer_lag",
                "Input messages not yet processed (sum over input topics).",
                PARTITION,
                registry=registry,
            ),
            partitions_assigned=Gauge(
                "infinitic_partitions_assigned",
                "Partitions this process owns.",
                APP,
                registry=registry,
            ),
            partitions_restoring=Gauge(
                "infinitic_partitions_restoring",
                "Partitions assigned and not restored yet (their input waits).",
                APP,
                registry=registry,
            ),
        )


_families: dict[CollectorRegistry, _Families] = {}


class StreamMetrics:
    """The metrics of one app, registered in `registry` (default: the process-wide one)."""

    def __init__(
        self, namespace: str, processor: str, registry: CollectorRegistry = REGISTRY
    ) -> None:
        families = _families.get(registry)
        if families is None:
            families = _families[registry] = _Families.create(registry)
        self._families = families
        self._app = (namespace, processor)
        self.processed = families.processed.labels(*self._app)
        self.batch_size = families.batch_size.labels(*self._app)
        self.commit_latency = families.commit_latency.labels(*self._app)
        self.aborts = families.aborts.labels(*self._app)
        self.restore_records = families.restore_records.labels(*self._app)
        self.restore_seconds = families.restore_seconds.labels(*self._app)
        self.timers_fired = families.timers_fired.labels(*self._app)
        for kind in DEAD_LETTER_KINDS:  # at 0 from the start: increase() sees the first one
            families.dead_letters.labels(*self._app, kind)

    def dead_letter(self, kind: str) -> None:
        self._families.dead_letters.labels(*self._app, kind).inc()

    def track_partitions(self, assigned: Callable[[], int], restoring: Callable[[], int]) -> None:
        """Read the partition counts when scraped."""
        self._families.partitions_assigned.labels(*self._app).set_function(assigned)
        self._families.partitions_restoring.labels(*self._app).set_function(restoring)

    def partition(self, partition: int, keys: int, timers: int, lag: int) -> None:
        labels = (*self._app, str(partition))
        self._families.store_keys.labels(*labels).set(keys)
        self._families.timers_pending.labels(*labels).set(timers)
        self._families.lag.labels(*labels).set(lag)

    def forget(self, partition: int) -> None:
        """Drop the gauges of a partition this process no longer owns."""
        labels = (*self._app, str(partition))
        families = self._families
        for gauge in (families.store_keys, families.timers_pending, families.lag):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
