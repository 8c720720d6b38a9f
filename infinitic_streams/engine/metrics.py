"""The engine's Prometheus metrics: workflows started and ended, tasks by outcome, signals,
the cache. Counted once the engine's transaction commits (`Context.after_commit`), so an
aborted and redone step is counted once. Labels are names and statuses, never ids."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from infinitic_streams.streams import Context

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
REPLAY_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)


@dataclass(frozen=True)
class _Families:
    started: Counter
    ended: Counter
    duration: Histogram
    tasks: Counter
    signals: Counter
    cache_hits: Counter
    replays: Counter
    replay_events: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> _Families:
        ns = ["namespace"]
        return cls(
            started=Counter(
                "infinitic_workflows_started",
                "Workflows started, by name.",
                [*ns, "workflow"],
                registry=registry,
            ),
            ended=Counter(
                "infinitic_workflows_ended",
                "Workflows ended, by name and status (COMPLETED, FAILED, CANCELED).",
                [*ns, "workflow", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "infinitic_workflow_duration_seconds",
                "From a workflow's start to its end (its last end, after a retry).",
                [*ns, "workflow", "status"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            tasks=Counter(
                "infinitic_tasks",
                "Task attempts as the engine records them: completed, retried (an attempt "
                "failed, another comes) or failed (the task gave up).",
                [*ns, "service", "method", "outcome"],
                registry=registry,
            ),
            signals=Counter(
                "infinitic_signals",
                "Signals received (recorded) or refused, by workflow name.",
                [*ns, "workflow", "outcome"],
                registry=registry,
            ),
            cache_hits=Counter(
                "infinitic_cache_hits",
                "Steps run on a live instance from the cache (no replay).",
                ns,
                registry=registry,
            ),
            replays=Counter(
                "infinitic_replays",
                "Instances rebuilt by replaying their history (a cache miss).",
                ns,
                registry=registry,
            ),
            replay_events=Histogram(
                "infinitic_replay_events",
                "History events read by a replay.",
                ns,
                buckets=REPLAY_BUCKETS,
                registry=registry,
            ),
        )


_families: dict[CollectorRegistry, _Families] = {}


class EngineMetrics:
    """The engine's metrics for one namespace, in `registry` (default: the process-wide one).
    Each method counts once `ctx`'s transaction has committed."""

    def __init__(self, namespace: str, registry: CollectorRegistry = REGISTRY) -> None:
        families = _families.get(registry)
        if families is None:
            families = _families[registry] = _Families.create(registry)
        self._f = families
        self._ns = namespace

    def started(self, ctx: Context, workflow: str) -> None:
        counter = self._f.started.labels(self._ns, workflow)
        ctx.after_commit(counter.inc)

    def ended(self, ctx: Context, workflow: str, status: str, seconds: float) -> None:
        counter = self._f.ended.labels(self._ns, workflow, status)
        duration = self._f.duration.labels(self._ns, workflow, status)
        ctx.after_commit(counter.inc)
        ctx.after_commit(lambda: duration.observe(seconds))

    def task(self, ctx: Context, service: str, method: str, outcome: str) -> None:
        ctx.after_commit(self._f.tasks.labels(self._ns, service, method, outcome).inc)

    def signal(self, ctx: Context, workflow: str, outcome: str) -> None:
        ctx.after_commit(self._f.signals.labels(self._ns, workflow, outcome).inc)

    def cache_hit(self, ctx: Context) -> None:
        ctx.after_commit(self._f.cache_hits.labels(self._ns).inc)

    def replay(self, ctx: Context, events: int) -> None:
        replays, lengths = self._f.replays.labels(self._ns), self._f.replay_events.labels(self._ns)
        ctx.after_commit(replays.inc)
        ctx.after_commit(lambda: lengths.observe(events))
