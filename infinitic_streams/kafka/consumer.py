"""A consumer with the user's settings and error handling that matches Kafka's.

- `consume` returns messages, never errors: an error event is logged (throttled) when it is
  retriable, raised when it is fatal or an authentication failure;
- calls that ask the cluster (`committed`, `end_offset`, `list_topic`) retry retriable errors
  within their timeout and raise `KafkaUnavailable` after it;
- `close` is bounded: a consumer whose brokers are gone cannot hold up a shutdown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer as _Consumer
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from infinitic_streams.kafka.errors import (
    LIBRDKAFKA_LOG,
    ClientErrors,
    Kind,
    classify,
    error_of,
    raise_for,
    retrying,
)
from infinitic_streams.kafka.settings import bootstrap_of, client_config

__all__ = ["Consumer", "Message", "TopicPartition"]

_log = logging.getLogger("infinitic_streams.kafka")
Rebalance = Callable[[list[TopicPartition]], None]


class Consumer:
    def __init__(
        self,
        kafka: Mapping[str, Any],
        group: str,
        defaults: Mapping[str, Any] | None = None,
        required: Mapping[str, Any] | None = None,
    ) -> None:
        self.errors = ClientErrors(bootstrap_of(kafka))
        config = client_config(
            kafka,
            {"auto.offset.reset": "earliest", **(defaults or {})},
            {"group.id": group, "enable.auto.commit": False, **(required or {})},
        )
        self._consumer = _Consumer({**config, "error_cb": self.errors}, logger=LIBRDKAFKA_LOG)

    # -- messages --------------------------------------------------------------------------------

    def consume(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to `max_messages` messages: what is there now, else the first to arrive within
        `timeout` seconds plus what came with it.

        `Consumer.consume(n, timeout)` returns early only once it has n messages, so a ready
        message would otherwise wait out the whole timeout: that would add it to every hop."""
        messages = self._messages(self._consumer.consume(max_messages, 0))
        if messages or timeout <= 0:
            return messages
        messages = self._messages(self._consumer.consume(1, timeout))
        if messages and max_messages > 1:
            messages += self._messages(self._consumer.consume(max_messages - 1, 0))
        return messages

    def _messages(self, batch: list[Message]) -> list[Message]:
        self.errors.check("consuming")
        if all(m.error() is None for m in batch):
            return batch
        good = []
        for message in batch:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                self._consumer_error(error)
        return good

    def _consumer_error(self, error: KafkaError) -> None:
        kind = classify(error)
        if kind in (Kind.FATAL, Kind.AUTH):
            raise_for(error, "consuming", self.errors.where)
        self.errors.throttle.warning(f"consume:{error.name()}", f"consumer: {error.str()}")

    # -- group membership and positions ----------------------------------------------------------

    def subscribe(
        self,
        topics: list[str],
        on_assign: Rebalance | None = None,
        on_revoke: Rebalance | None = None,
        on_lost: Rebalance | None = None,
    ) -> None:
        """Join the group. The callbacks run inside `consume`; what they raise comes out of it,
        so they must only do local work."""
        callbacks: dict[str, Any] = {}
        for name, callback in (
            ("on_assign", on_assign),
            ("on_revoke", on_revoke),
            ("on_lost", on_lost),
        ):
            if callback is not None:
                callbacks[name] = lambda _, partitions, callback=callback: callback(partitions)
        self._consumer.subscribe(topics, **callbacks)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._consumer.assign(partitions)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self._consumer.incremental_assign(partitions)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self._consumer.incremental_unassign(partitions)

    def assignment(self) -> list[TopicPartition]:
        return self._consumer.assignment()

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._consumer.pause(partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._consumer.resume(partitions)

    def seek(self, partition: TopicPartition) -> None:
        self._consumer.seek(partition)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return self._consumer.position(partitions)

    def group_metadata(self) -> object:
        return self._consumer.consumer_group_metadata()

    def cached_end_offset(self, partition: TopicPartition) -> int | None:
        """The end offset librdkafka last saw (no request): for lag gauges."""
        watermarks = self._consumer.get_watermark_offsets(partition, cached=True)
        return None if watermarks is None else watermarks[1]

    def committed(
        self, partitions: list[TopicPartition], timeout: float = 30.0
    ) -> list[TopicPartition]:
        """The group's committed offsets. A partition whose previous owner has a transaction
        open answers only once it ends: waited out like any retriable error."""
        return retrying(  # type: ignore[no-any-return]
            lambda t: self._consumer.committed(partitions, timeout=t),
            "reading committed offsets",
            self.errors,
            timeout,
        )

    def end_offset(self, partition: TopicPartition, timeout: float = 30.0) -> int:
        """The partition's end offset (for read_committed: its last stable offset)."""
        return retrying(  # type: ignore[no-any-return]
            lambda t: self._consumer.get_watermark_offsets(partition, timeout=t)[1],
            f"reading the end of {partition.topic}[{partition.partition}]",
            self.errors,
            timeout,
        )

    def list_topic(self, topic: str, timeout: float = 10.0) -> None:
        """Fetch a topic's metadata now (a first fetch without it waits for librdkafka's
        one-second metadata retry)."""
        retrying(
            lambda t: self._consumer.list_topics(topic, timeout=t),
            f"reading the metadata of {topic}",
            self.errors,
            timeout,
        )

    def commit(self, offsets: list[TopicPartition], wait: bool = True) -> bool:
        """Commit offsets, waiting for the answer (or not, before a bounded `close`); False
        (logged) when the cluster refused for now."""
        try:
            self._consumer.commit(offsets=offsets, asynchronous=not wait)
        except KafkaException as exception:
            error = error_of(exception)
            if classify(error) in (Kind.FATAL, Kind.AUTH):
                raise_for(error, "committing offsets", self.errors.where)
            self.errors.throttle.warning(
                f"commit:{error.name()}", f"offset commit failed, retried later: {error.str()}"
            )
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Leave the group and release the client, waiting at most `timeout` seconds: with
        its brokers gone, librdkafka's close can wait much longer (the group then ends the
        membership itself when the session times out)."""
        closer = threading.Thread(target=self._close_quietly, name="kafka close", daemon=True)
        closer.start()
        closer.join(timeout)
        if closer.is_alive():
            _log.warning("Kafka consumer did not close within %.0f s: leaving it", timeout)

    def _close_quietly(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as error:
            _log.warning("closing the Kafka consumer: %s", error)
