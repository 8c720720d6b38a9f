"""Settings of a stream app, with defaults that suit a small machine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES
from infinitic_streams.topics import message_limit


@dataclass
class StreamConfig:
    # The user's whole librdkafka settings (bootstrap servers, security, tuning): every Kafka
    # client of the app gets them.
    kafka: Mapping[str, Any]
    namespace: str = "default"
    state_dir: Path = Path(".infinitic/state")
    # Names this process among the app's instances, for its transactional.id (which fences a
    # previous incarnation's open transaction). Give each instance a stable one that survives
    # the loss of its state directory (e.g. a StatefulSet pod name); None keeps a random id in
    # the state directory.
    instance_id: str | None = None
    # A transaction commits when input goes idle, or after this long / this many messages.
    commit_interval_ms: int = 100
    commit_every: int = 1000
    # With input idle, a transaction that produced outputs someone waits for commits at once
    # (`Processor.waits_for_commit`); one that only changed state, or produced only outputs
    # nobody waits for, stays open until it is this old (0: at once). The engine's task hop
    # and the visibility index save a commit per step with it.
    idle_commit_ms: int = 0
    max_poll_records: int = 500
    timer_interval_ms: int = 100
    max_timers_per_scan: int = 1000
    revoke_timeout_s: float = 10.0
    session_timeout_ms: int = 10_000
    metrics_interval_s: float = 5.0
    # Older local state is rebuilt from the whole changelog (half the default tombstone life).
    max_state_age_s: float = 12 * 3600
    # Records (outputs, changelog records) larger than this are refused before anything is
    # produced, and the input is dead-lettered; topics and producers allow this much.
    max_message_bytes: int = message_limit(DEFAULT_MAX_PAYLOAD_BYTES)
    # librdkafka settings for one role only, over `kafka`.
    consumer: dict[str, object] = field(default_factory=dict)
    producer: dict[str, object] = field(default_factory=dict)

    def topic(self, suffix: str) -> str:
        """A topic name in this namespace."""
        return f"{self.namespace}.{suffix}"
