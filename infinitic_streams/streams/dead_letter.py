"""Dead letters: inputs set aside with the reason, so that a partition keeps moving.

A dead letter is the input record itself, key and value unchanged (so that it can be sent
again to its topic once its cause is fixed), with headers saying where it came from and why:

    infinitic.dlq.reason      why it was set aside (UTF-8 text)
    infinitic.dlq.topic       the topic it was read from
    infinitic.dlq.partition   its partition (decimal)
    infinitic.dlq.offset      its offset (decimal; -1 for a timer)
    infinitic.dlq.at          when it was set aside (epoch ms, decimal)

The input's own headers follow. Any Kafka tool can read it; no schema is needed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

PREFIX = "infinitic.dlq."
_FIELDS = ("reason", "topic", "partition", "offset", "at")


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    at_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    headers: list[tuple[str, bytes]] = field(default_factory=list)  # the input's own

    @property
    def source(self) -> str:
        """Where the input came from, for a log line: `topic[partition]@offset`."""
        at = "" if self.source_offset < 0 else f"@{self.source_offset}"
        return f"{self.source_topic}[{self.source_partition}]{at}"

    def summary(self, limit: int = 500) -> str:
        """The reason on one line: a reason with a traceback keeps its first line (what failed)
        and its last one (the error)."""
        lines = [line.strip() for line in self.reason.strip().splitlines() if line.strip()]
        if not lines:
            return "(no reason given)"
        text = lines[0] if len(lines) == 1 else f"{lines[0].rstrip(':')}: {lines[-1]}"
        return text if len(text) <= limit else f"{text[:limit]}..."

    def record_headers(self) -> list[tuple[str, bytes]]:
        ours = {
            "reason": self.reason,
            "topic": self.source_topic,
            "partition": str(self.source_partition),
            "offset": str(self.source_offset),
            "at": str(self.at_ms),
        }
        return [(PREFIX + name, ours[name].encode()) for name in _FIELDS] + list(self.headers)

    @classmethod
    def of_record(
        cls,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
    ) -> DeadLetter:
        """Read a dead letter back from its record; `ValueError` if it is not one."""
        ours: dict[str, str] = {}
        others: list[tuple[str, bytes]] = []
        for name, raw in headers or ():
            if name.startswith(PREFIX) and name[len(PREFIX) :] in _FIELDS:
                ours[name[len(PREFIX) :]] = (raw or b"").decode("utf-8", "replace")
            else:
                others.append((name, raw or b""))
        missing = [name for name in _FIELDS if name not in ours]
        if missing:
            raise ValueError(f"not a dead letter: headers {PREFIX}{missing[0]} missing")
        return cls(
            reason=ours["reason"],
            source_topic=ours["topic"],
            source_partition=int(ours["partition"]),
            source_offset=int(ours["offset"]),
            key=key,
            value=value,
            at_ms=int(ours["at"]),
            headers=others,
        )
