"""Prometheus metrics of a stream app, labelled by processor (and partition where it helps)."""

from __future__ import annotations

import contextlib

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class StreamMetrics:
    """The runtime's metrics, registered in `registry` (default: the process-wide one)."""

    def __init__(self, processor: str, registry: CollectorRegistry = REGISTRY) -> None:
        labels = ["processor"]
        self.processed = Counter(
            "infinitic_messages_processed", "Input messages processed.", labels, registry=registry
        ).labels(processor)
        self.batch_size = Histogram(
            "infinitic_batch_size",
            "Messages and timers committed per transaction.",
            labels,
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=registry,
        ).labels(processor)
        self.commit_latency = Histogram(
            "infinitic_commit_latency_seconds",
            "Time to commit one transaction (changelog flush, offsets, commit, store write).",
            labels,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        ).labels(processor)
        self.aborts = Counter(
            "infinitic_transactions_aborted", "Transactions aborted.", labels, registry=registry
        ).labels(processor)
        self.restore_records = Counter(
            "infinitic_restore_records", "Changelog records restored.", labels, registry=registry
        ).labels(processor)
        self.restore_seconds = Counter(
            "infinitic_restore_seconds",
            "Wall-clock time the main loop spent restoring (all partitions together).",
            labels,
            registry=registry,
        ).labels(processor)
        self.dead_letters = Counter(
            "infinitic_dead_letters", "Inputs sent to the DLQ.", labels, registry=registry
        ).labels(processor)
        self.timers_fired = Counter(
            "infinitic_timers_fired", "Timers fired.", labels, registry=registry
        ).labels(processor)
        partition_labels = ["processor", "partition"]
        self._store_keys = Gauge(
            "infinitic_store_keys",
            "Estimated keys in the partition's state stores.",
            partition_labels,
            registry=registry,
        )
        self._timers_pending = Gauge(
            "infinitic_timers_pending",
            "Estimated timers waiting in the partition.",
            partition_labels,
            registry=registry,
        )
        self._lag = Gauge(
            "infinitic_consumer_lag",
            "Input messages not yet processed (sum over input topics).",
            partition_labels,
            registry=registry,
        )
        self._processor = processor

    def partition(self, partition: int, keys: int, timers: int, lag: int) -> None:
        labels = (self._processor, str(partition))
        self._store_keys.labels(*labels).set(keys)
        self._timers_pending.labels(*labels).set(timers)
        self._lag.labels(*labels).set(lag)

    def forget(self, partition: int) -> None:
        """Drop the gauges of a partition this process no longer owns."""
        labels = (self._processor, str(partition))
        for gauge in (self._store_keys, self._timers_pending, self._lag):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
