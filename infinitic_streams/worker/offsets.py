"""Which consumed offsets are finished, so that a commit never skips unfinished work."""

from __future__ import annotations

import threading

from infinitic_streams.kafka.consumer import TopicPartition


class OffsetTracker:
    """Per partition: offsets started and not finished, and the next offset after the highest
    one started. The committable offset is the lowest unfinished one (or that next offset)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # finished() runs in delivery callbacks
        self._open: dict[tuple[str, int], set[int]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}

    def started(self, topic: str, partition: int, offset: int) -> None:
        with self._lock:
            self._open.setdefault((topic, partition), set()).add(offset)
            self._next[(topic, partition)] = max(self._next.get((topic, partition), 0), offset + 1)

    def finished(self, topic: str, partition: int, offset: int) -> None:
        with self._lock:
            self._open.get((topic, partition), set()).discard(offset)

    def committable(self) -> list[TopicPartition]:
        """Offsets that moved since the last call (the caller commits them)."""
        moved = []
        with self._lock:
            for key, following in self._next.items():
                open_offsets = self._open.get(key)
                offset = min(open_offsets) if open_offsets else following
                if self._committed.get(key) != offset:
                    self._committed[key] = offset
                    moved.append(TopicPartition(key[0], key[1], offset))
        return moved

    def uncommitted(self, offsets: list[TopicPartition]) -> None:
        """A commit of these offsets failed: `committable` returns them again."""
        with self._lock:
            for tp in offsets:
                if self._committed.get((tp.topic, tp.partition)) == tp.offset:
                    del self._committed[(tp.topic, tp.partition)]

    def forget(self, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for tp in partitions:
                key = (tp.topic, tp.partition)
                self._open.pop(key, None)
                self._next.pop(key, None)
                self._committed.pop(key, None)
