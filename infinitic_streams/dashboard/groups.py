"""The engines and workers of a namespace, as Kafka sees them: its consumer groups (the
engines', the visibility index's, one per service), their members and assigned partitions,
the lag of each partition (committed offset against the end), and a throughput computed from
the committed offsets sampled over time (`Rates`)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from infinitic_streams.kafka.admin import Admin, GroupMember
from infinitic_streams.topics import Topics

RATE_WINDOW_S = 60.0  # the throughput is over the samples of the last minute
SAMPLES_KEPT = 120


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    owner: str  # the member's client id and host, or "" when none is assigned it
    committed: int | None
    end: int

    @property
    def lag(self) -> int | None:
        """None when unknown: nothing committed yet on a partition that has records."""
        if self.committed is None:
            return 0 if self.end == 0 else None
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class GroupView:
    group: str
    kind: str  # "engine", "visibility index", "service Name"
    state: str
    members: tuple[GroupMember, ...]
    partitions: list[PartitionLag]
    rate: float | None  # committed messages per second, None until two samples
    dead_letters: int = 0  # dead letters whose input came from the group's topics

    @property
    def lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)

    @property
    def topics(self) -> list[str]:
        return sorted({p.topic for p in self.partitions})

    @property
    def lagging(self) -> int:
        """How many partitions have records not committed yet (or an unknown lag)."""
        return sum(1 for p in self.partitions if p.lag != 0)


@dataclass
class Rates:
    """Throughput from the sum of a group's committed offsets, sampled at each look."""

    window_s: float = RATE_WINDOW_S
    samples: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, group: str, committed: int, now: float | None = None) -> float | None:
        """Record the group's total committed offset; its rate over the window (None until
        two samples at least a second apart)."""
        now = time.monotonic() if now is None else now
        with self.lock:
            samples = self.samples.setdefault(group, deque(maxlen=SAMPLES_KEPT))
            samples.append((now, committed))
            while len(samples) > 2 and now - samples[1][0] >= self.window_s:
                samples.popleft()
            first_at, first = samples[0]
        if now - first_at < 1.0:
            return None
        return max(0, committed - first) / (now - first_at)


class GroupsMonitor:
    """Reads the groups of a namespace; keeps the samples of their throughput."""

    def __init__(self, admin: Admin, topics: Topics) -> None:
        self.admin = admin
        self.topics = topics
        self.rates = Rates()

    def group_names(self) -> list[tuple[str, str]]:
        """(group, kind) of every group of the namespace, the engines' first."""
        prefix = f"{self.topics.namespace}.service."
        services = self.admin.list_groups(prefix)
        return [
            (self.topics.engine_group, "engine"),
            (self.topics.visibility_group, "visibility index"),
            *((g, f"service {g[len(prefix) :]}") for g in services),
        ]

    def read(self, dead_letters_by_topic: dict[str, int] | None = None) -> list[GroupView]:
        names = self.group_names()
        descriptions = self.admin.describe_groups([g for g, _ in names])
        views = []
        for group, kind in names:
            description = descriptions[group]
            committed = self.admin.committed_offsets(group)
            if kind == "visibility index" and description.state == "DEAD" and not committed:
                continue  # not deployed (yet)
            partitions = self._lags(description.members, committed)
            total = sum(committed.values())
            letters = sum((dead_letters_by_topic or {}).get(t, 0) for t in _topics(partitions))
            rate = self.rates.observe(group, total)
            views.append(
                GroupView(
                    group, kind, description.state, description.members, partitions, rate, letters
                )
            )
        return views

    def _lags(
        self, members: Iterable[GroupMember], committed: dict[tuple[str, int], int]
    ) -> list[PartitionLag]:
        owners = {tp: f"{m.member_id} ({m.host})" for m in members for tp in m.partitions}
        known = sorted(
            tp for tp in set(owners) | set(committed) if not tp[0].endswith(".changelog")
        )
        ends = self.admin.end_offsets(known)
        return [
            PartitionLag(topic, p, owners.get((topic, p), ""), committed.get((topic, p)), end)
            for (topic, p), end in sorted(ends.items())
        ]


def _topics(partitions: list[PartitionLag]) -> set[str]:
    return {p.topic for p in partitions}
