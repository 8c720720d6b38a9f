"""What the stream runtime relies on, proven on the real broker: consume-transform-produce in a
Kafka transaction with the consumed offsets committed inside it, and aborts that stay invisible
to `read_committed` readers."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from infinitic_streams.kafka.admin import TopicSpec, ensure_topics

from .kafka_support import read_topic

PARTITIONS = 4
RECORDS = 200
ABORTED = 25


def test_transaction_commits_outputs_and_offsets_and_hides_aborts(
    kafka_bootstrap: str, namespace: str
) -> None:
    source, sink, group = f"{namespace}.in", f"{namespace}.out", f"{namespace}.group"
    ensure_topics(
        {"bootstrap.servers": kafka_bootstrap},
        [TopicSpec(source, PARTITIONS), TopicSpec(sink, PARTITIONS)],
    )

    plain = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i in range(RECORDS):
        plain.produce(source, key=f"k{i % 17}", value=f"v{i}")
    assert plain.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{namespace}.tx"}
    )
    producer.init_transactions(30)
    consumer.subscribe([source])

    # 1. One transaction: every input record transformed to the sink, offsets committed with it.
    producer.begin_transaction()
    consumed = 0
    deadline = time.monotonic() + 60
    while consumed < RECORDS and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        producer.produce(sink, key=message.key(), value=b"seen:" + message.value())
        consumed += 1
    assert consumed == RECORDS
    positions = consumer.position(consumer.assignment())
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)

    # 2. A second transaction that is aborted: its records must never be read as committed.
    producer.begin_transaction()
    for i in range(ABORTED):
        producer.produce(sink, key=b"aborted", value=f"aborted-{i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)
    consumer.close()

    committed_values = [value for _, value in read_topic(kafka_bootstrap, sink)]
    assert sorted(committed_values) == sorted(f"seen:v{i}".encode() for i in range(RECORDS))
    # The aborted records really reached the log: an uncommitted reader sees them.
    uncommitted_values = [
        value for _, value in read_topic(kafka_bootstrap, sink, "read_uncommitted")
    ]
    assert len([v for v in uncommitted_values if v.startswith(b"aborted-")]) == ABORTED

    # 3. The group's committed offsets moved to the end of every input partition.
    checker = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    partitions = [TopicPartition(source, p) for p in range(PARTITIONS)]
    committed = checker.committed(partitions, timeout=30)
    ends = [checker.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions]
    checker.close()
    assert [tp.offset for tp in committed] == ends
    assert sum(ends) == RECORDS
