"""The checkpoint's rewind after a fence, on stand-ins for the producer and the consumer
(which partitions are sought where is pure logic; the fence itself is proven on Kafka in
test_streams_kafka.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from infinitic_streams.kafka.consumer import TopicPartition
from infinitic_streams.streams.checkpoint import Checkpoint
from infinitic_streams.streams.metrics import StreamMetrics


@dataclass
class RecordingConsumer:
    assigned: list[TopicPartition]
    seeks: dict[tuple[str, int], int] = field(default_factory=dict)

    def assignment(self) -> list[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition) -> None:
        self.seeks[(tp.topic, tp.partition)] = tp.offset


class RenewingProducer:
    transactional_id = "t"
    in_transaction = True

    def renew(self) -> None:
        self.in_transaction = False


def checkpoint_on(consumer: RecordingConsumer) -> Checkpoint:
    return Checkpoint(
        RenewingProducer(),  # type: ignore[arg-type]
        consumer,  # type: ignore[arg-type]
        ("in",),
        "changelog",
        StreamMetrics("test", "checkpoint"),
        lambda _: None,
    )


def test_a_fence_mid_batch_rewinds_the_partitions_nothing_handled_yet() -> None:
    consumer = RecordingConsumer([TopicPartition("in", n) for n in range(3)])
    checkpoint = checkpoint_on(consumer)
    checkpoint.committed.update({("in", 0): 10, ("in", 1): 20, ("in", 2): 30})
    checkpoint.consumed("in", 0, 14)  # the batch was cut short here: 1 and 2 were fetched too
    checkpoint.fenced({}, "fenced by a newer instance")
    assert consumer.seeks == {("in", 0): 10, ("in", 1): 20, ("in", 2): 30}
    assert not checkpoint.pending


def test_a_closed_partition_is_not_sought_to_its_old_offset() -> None:
    consumer = RecordingConsumer([TopicPartition("in", 0), TopicPartition("in", 1)])
    checkpoint = checkpoint_on(consumer)
    checkpoint.committed.update({("in", 0): 10, ("in", 1): 20})
    checkpoint.forget(1)  # revoked, then assigned again: not opened yet (offsets unknown)
    checkpoint.fenced({}, "fenced by a newer instance")
    assert consumer.seeks == {("in", 0): 10}
