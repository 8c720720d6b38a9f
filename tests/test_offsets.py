"""Service workers commit only finished work: the offset tracker, without Kafka."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from infinitic_streams.worker.offsets import OffsetTracker


def committable(tracker: OffsetTracker) -> list[tuple[str, int, int]]:
    return [(tp.topic, tp.partition, tp.offset) for tp in tracker.committable()]


def test_a_slow_task_holds_the_commit_back_not_the_others() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started("t", 0, offset)
    tracker.started("t", 1, 5)
    tracker.finished("t", 0, 11)
    tracker.finished("t", 0, 12)
    tracker.finished("t", 1, 5)
    assert committable(tracker) == [("t", 0, 10), ("t", 1, 6)]  # 10 still runs
    assert committable(tracker) == []  # nothing moved since
    tracker.finished("t", 0, 10)
    assert committable(tracker) == [("t", 0, 13)]


def test_revoked_partitions_are_forgotten() -> None:
    tracker = OffsetTracker()
    tracker.started("t", 0, 1)
    tracker.forget([TopicPartition("t", 0)])
    tracker.finished("t", 0, 1)  # a task of a revoked partition finishing late
    assert committable(tracker) == []
