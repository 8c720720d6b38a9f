"""Settings of a stream app, with defaults that suit a small machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StreamConfig:
    bootstrap_servers: str
    namespace: str = "default"
    state_dir: Path = Path(".infinitic/state")
    # A transaction commits when input goes idle, or after this long / this many messages.
    commit_interval_ms: int = 100
    commit_every: int = 1000
    max_poll_records: int = 500
    timer_interval_ms: int = 100
    max_timers_per_scan: int = 1000
    revoke_timeout_s: float = 10.0
    session_timeout_ms: int = 10_000
    metrics_interval_s: float = 5.0
    # Older local state is rebuilt from the whole changelog (half the default tombstone life).
    max_state_age_s: float = 12 * 3600
    # Outputs larger than this are refused (the input is dead-lettered): Kafka's default limit.
    max_message_bytes: int = 1_000_000
    # Extra librdkafka settings, overriding ours.
    consumer: dict[str, object] = field(default_factory=dict)
    producer: dict[str, object] = field(default_factory=dict)

    def topic(self, suffix: str) -> str:
        """A topic name in this namespace."""
        return f"{self.namespace}.{suffix}"
