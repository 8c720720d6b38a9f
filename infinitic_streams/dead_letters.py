"""Reading the dead letters of a namespace (`<ns>.dlq`), and sending one back to its topic.

What `infinitic-streams dlq list` and the dashboard share. A dead letter is the input record
as it was, with `infinitic.dlq.*` headers saying where it came from and why it was set aside
(the format is `streams/dead_letter.py`'s). A record of the topic that is not a dead letter
(written there by something else) is read too, with a reason saying so.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.consumer import Consumer, Message, TopicPartition
from infinitic_streams.kafka.producer import Producer
from infinitic_streams.protocol import EnvelopeDecodeError, decode
from infinitic_streams.streams.dead_letter import DeadLetter

PREVIEW_CHARS = 60
OFFSET_BEGINNING = -2
SEND_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Letter:
    """One record of the dead-letter topic, read back."""

    topic: str  # the dead-letter topic
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    at: datetime | None = None  # when it was set aside (None: not a dead letter)
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)  # the input's own

    @property
    def is_dead_letter(self) -> bool:
        return self.source_topic is not None

    @property
    def where(self) -> str:
        """Where it is in the dead-letter topic: `topic[partition]@offset`."""
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def source(self) -> str | None:
        """Where it came from: `topic[partition]@offset`."""
        if self.source_topic is None:
            return None
        return f"{self.source_topic}[{self.source_partition}]@{self.source_offset}"

    @property
    def key_text(self) -> str | None:
        return text_of(self.key)

    @property
    def preview(self) -> str:
        return preview(self.value)

    @property
    def summary(self) -> str:
        """The reason's last line (the error), for a table."""
        lines = self.reason.strip().splitlines()
        return lines[-1].strip() if lines else ""


def letter_of(message: Message) -> Letter:
    """A record of the dead-letter topic, read back (a record that is not a dead letter says
    so in its reason)."""
    where = (message.topic(), message.partition(), message.offset())
    try:
        letter = DeadLetter.of_record(message.key(), message.value(), message.headers())
    except ValueError as error:
        return Letter(*where, message.key(), message.value(), f"(not a dead letter: {error})")
    return Letter(
        *where,
        key=letter.key,
        value=letter.value,
        reason=letter.reason,
        at=datetime.fromtimestamp(letter.at_ms / 1000, UTC),
        source_topic=letter.source_topic,
        source_partition=letter.source_partition,
        source_offset=letter.source_offset,
        headers=list(letter.headers),
    )


def reader(kafka: Mapping[str, Any], topic: str) -> Consumer:
    """A consumer of `topic` in a group of its own that never commits (reads from the start)."""
    return Consumer(kafka, f"{topic}.reader.{uuid.uuid4().hex[:8]}")


def read(
    consumer: Consumer,
    topic: str,
    partitions: int,
    follow: bool,
    timeout: float | None = None,
) -> Iterator[Letter]:
    """Dead letters from the start of `topic`: up to its current end, or on and on; without
    `follow`, at most for `timeout` seconds (what was read by then)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if follow:
        consumer.subscribe([topic])  # a topic created later is picked up
        ends: dict[int, int] = {}
    else:
        tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        consumer.assign(tps)
        ends = {p: consumer.end_offset(TopicPartition(topic, p)) for p in range(partitions)}
        ends = {p: end for p, end in ends.items() if end > 0}
    while follow or ends:
        if deadline is not None and time.monotonic() > deadline:
            return
        for message in consumer.consume(100, 0.5):
            yield letter_of(message)
        if ends:  # positions, not offsets: transaction markers take offsets too
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            for position in positions:
                if position.offset >= ends[position.partition]:
                    del ends[position.partition]


def read_all(
    kafka: Mapping[str, Any], topic: str, partitions: int, timeout: float = READ_TIMEOUT_S
) -> list[Letter]:
    """Every record of the dead-letter topic now (what was read within `timeout` seconds),
    oldest first in each partition."""
    consumer = reader(kafka, topic)
    try:
        return list(read(consumer, topic, partitions, follow=False, timeout=timeout))
    finally:
        consumer.close()


def read_one(
    kafka: Mapping[str, Any], topic: str, partition: int, offset: int, timeout: float = 30.0
) -> Letter:
    """The record at `offset` of the dead-letter topic's `partition`; `InfiniticError` if there
    is none (a transaction marker, an offset past the end, or one the retention removed)."""
    consumer = reader(kafka, topic)
    try:
        end = consumer.end_offset(TopicPartition(topic, partition), timeout)
        if offset >= end:
            raise InfiniticError(f"{topic}[{partition}] has no record at offset {offset}")
        consumer.assign([TopicPartition(topic, partition, offset)])
        while True:  # ends: a record at or past `offset` arrives before the end
            for message in consumer.consume(1, 1.0):
                if message.offset() != offset:
                    raise InfiniticError(f"{topic}[{partition}] has no record at offset {offset}")
                return letter_of(message)
            position = consumer.position([TopicPartition(topic, partition)])[0].offset
            if position >= end:
                raise InfiniticError(f"{topic}[{partition}] has no record at offset {offset}")
    finally:
        consumer.close()


def send_again(producer: Producer, letter: Letter) -> None:
    """Produce the dead letter's key and value (and the input's own headers, not the dead
    letter's) back to the topic it came from; return once Kafka has it."""
    if letter.source_topic is None or letter.value is None:
        raise InfiniticError(f"{letter.where} is not a dead letter: there is nothing to send")
    delivery = producer.send(
        letter.source_topic, letter.key, letter.value, SEND_TIMEOUT_S, headers=letter.headers
    )
    if delivery.error is not None:
        raise InfiniticError(
            f"Kafka did not take the record to {letter.source_topic}: {delivery.error}"
        )


def text_of(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def preview(value: bytes | None, chars: int = PREVIEW_CHARS) -> str:
    """What the payload is: the engine message it holds, else its first characters."""
    if value is None:
        return "(no value)"
    try:
        message = decode(value).message
    except EnvelopeDecodeError:
        text = value[:chars].decode("utf-8", "replace")
        printable = "".join(c if c.isprintable() and c != "\ufffd" else "." for c in text)
        more = f"… ({len(value)} bytes)" if len(value) > chars else ""
        return printable + more
    workflow = getattr(message, "workflow_id", None)
    return f"{type(message).__name__}" + (f" of workflow {workflow}" if workflow else "")
