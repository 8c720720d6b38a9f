"""A service worker's Prometheus metrics: how long tasks wait in their topic (from the
engine's dispatch to their start) and run, by outcome; tasks in flight against concurrency."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram

TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
SUCCEEDED, FAILED, CANCELED = "succeeded", "failed", "canceled"


@dataclass(frozen=True)
class _Families:
    duration: Histogram
    queued: Histogram
    in_flight: Gauge
    concurrency: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> _Families:
        service = ["namespace", "service"]
        return cls(
            duration=Histogram(
                "infinitic_task_duration_seconds",
                "A task attempt's run time in a service worker, by outcome (succeeded, "
                "failed, canceled).",
                [*service, "method", "outcome"],
                buckets=TIME_BUCKETS,
                registry=registry,
            ),
            queued=Histogram(
                "infinitic_task_queue_seconds",
                "From the engine's dispatch of a task attempt to its start in a worker.",
                [*service, "method"],
                buckets=TIME_BUCKETS,
                registry=registry,
            ),
            in_flight=Gauge(
                "infinitic_tasks_in_flight",
                "Task attempts running now.",
                service,
                registry=registry,
            ),
            concurrency=Gauge(
                "infinitic_task_concurrency",
                "Task attempts a service worker runs at once, at most.",
                service,
                registry=registry,
            ),
        )


_families: dict[CollectorRegistry, _Families] = {}


class TaskMetrics:
    def __init__(
        self, namespace: str, service: str, concurrency: int, registry: CollectorRegistry = REGISTRY
    ) -> None:
        families = _families.get(registry)
        if families is None:
            families = _families[registry] = _Families.create(registry)
        self._f, self._labels = families, (namespace, service)
        self._in_flight = families.in_flight.labels(*self._labels)
        families.concurrency.labels(*self._labels).set(concurrency)

    def started(self, method: str, queued_s: float) -> None:
        self._f.queued.labels(*self._labels, method).observe(max(queued_s, 0.0))
        self._in_flight.inc()

    def finished(self, method: str, outcome: str, seconds: float) -> None:
        self._f.duration.labels(*self._labels, method, outcome).observe(seconds)
        self._in_flight.dec()
