"""When an idle transaction commits (`StreamConfig.idle_commit_ms`,
`Processor.waits_for_commit`): one holding an output somebody waits for commits at once; one
holding only outputs nobody waits for stays open for more input (what lets the engine's task
hop go without a commit per step, as service workers read tasks read_uncommitted)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from infinitic_streams.kafka.admin import TopicSpec, ensure_topics
from infinitic_streams.streams import Context, Processor, Record, StreamApp, StreamConfig

pytestmark = pytest.mark.kafka
LONG_MS = 600_000  # nothing else commits within the test: no interval, no count


class Relay(Processor):
    """Input `topic name -> value`: emits the value to that topic of the namespace."""

    name = "relay"

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.input_topics = (f"{namespace}.in",)

    def process(self, ctx: Context, record: Record) -> None:
        assert record.key is not None and record.value is not None
        ctx.emit(f"{self.namespace}.{record.key.decode()}", record.key, record.value)

    def waits_for_commit(self, topic: str) -> bool:
        return topic != f"{self.namespace}.lazy"


@pytest.fixture
def relay(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> Iterator[StreamApp]:
    kafka = {"bootstrap.servers": kafka_bootstrap}
    ensure_topics(kafka, [TopicSpec(f"{namespace}.{n}", 1) for n in ("in", "lazy", "urgent")])
    config = StreamConfig(
        kafka,
        namespace,
        tmp_path / "state",
        commit_interval_ms=LONG_MS,
        commit_every=1_000_000,
        idle_commit_ms=LONG_MS,
    )
    app = StreamApp(Relay(namespace), config)
    thread = threading.Thread(target=app.run, kwargs={"stop_signals": False})
    thread.start()
    yield app
    app.stop()
    thread.join(60)


def send(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value, key)
    assert producer.flush(30) == 0


def values(bootstrap: str, topic: str, isolation: str, seconds: float, until: int) -> list[bytes]:
    """The values a reader of `topic` at `isolation` sees within `seconds` (or once it saw
    `until` of them)."""
    settings = {"bootstrap.servers": bootstrap, "group.id": f"{topic}.{isolation}"}
    consumer = Consumer({**settings, "isolation.level": isolation})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(seen) < until:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            seen.append(message.value())
    consumer.close()
    return seen


def test_an_idle_transaction_commits_at_once_only_for_outputs_someone_waits_for(
    relay: StreamApp, kafka_bootstrap: str, namespace: str
) -> None:
    lazy, urgent = f"{namespace}.lazy", f"{namespace}.urgent"
    send(kafka_bootstrap, f"{namespace}.in", b"lazy", b"first")
    assert values(kafka_bootstrap, lazy, "read_uncommitted", 60.0, 1) == [b"first"]
    assert values(kafka_bootstrap, lazy, "read_committed", 3.0, 1) == []  # still open
    send(kafka_bootstrap, f"{namespace}.in", b"urgent", b"second")
    assert values(kafka_bootstrap, urgent, "read_committed", 60.0, 1) == [b"second"]  # at once
    assert values(kafka_bootstrap, lazy, "read_committed", 60.0, 1) == [b"first"]  # with it
