"""The dead letters of a namespace for the dashboard: read with `dead_letters.py`, kept until
the topic's end offsets move (a page polled every few seconds does not re-read the topic), and
sent again to the engine topic on request (remembered, so the page says so)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from infinitic_streams import dead_letters
from infinitic_streams.dead_letters import Letter
from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import Admin
from infinitic_streams.kafka.producer import Producer
from infinitic_streams.topics import Topics


class LetterBox:
    def __init__(self, kafka: Mapping[str, Any], admin: Admin, topics: Topics) -> None:
        self.kafka = dict(kafka)
        self.admin = admin
        self.topics = topics
        self._lock = threading.Lock()
        self._ends: dict[tuple[str, int], int] | None = None
        self._letters: list[Letter] = []
        self._producer: Producer | None = None
        self.sent_again: dict[tuple[int, int], datetime] = {}  # (partition, offset) -> when

    @property
    def topic(self) -> str:
        return self.topics.dlq

    def letters(self) -> list[Letter]:
        """Every record of the dead-letter topic, newest first (none when it is absent)."""
        partitions = self.admin.overview().topics.get(self.topic, 0)
        if not partitions:
            return []
        ends = self.admin.end_offsets([(self.topic, p) for p in range(partitions)])
        with self._lock:
            if ends != self._ends:
                letters = dead_letters.read_all(self.kafka, self.topic, partitions)
                self._letters = sorted(letters, key=_newest_first)
                self._ends = ends
            return list(self._letters)

    def count_by_topic(self) -> dict[str, int]:
        """How many dead letters came from each topic."""
        return dict(Counter(letter.source_topic or "" for letter in self.letters()))

    def can_send_again(self, letter: Letter) -> bool:
        return letter.source_topic == self.topics.engine and letter.value is not None

    def send_again(self, partition: int, offset: int) -> Letter:
        """Produce the dead letter at (partition, offset) back to the engine topic."""
        letter = dead_letters.read_one(self.kafka, self.topic, partition, offset)
        if not self.can_send_again(letter):
            raise InfiniticError(
                f"{letter.where} did not come from {self.topics.engine}: only engine messages "
                "are sent again from here"
            )
        with self._lock:
            if self._producer is None:
                self._producer = Producer(self.kafka)
            producer = self._producer
        dead_letters.send_again(producer, letter)
        self.sent_again[(partition, offset)] = datetime.now(UTC)
        return letter

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)


def _newest_first(letter: Letter) -> tuple[float, int, int]:
    at = letter.at.timestamp() if letter.at else 0.0
    return (-at, letter.partition, -letter.offset)
