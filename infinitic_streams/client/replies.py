"""Where a client reads its answers: one partition of the namespace's `<ns>.replies` topic,
picked at random and read from its end in a background thread (`read_committed`: the engine
answers after its transaction commits). Records keyed by another client's id are skipped.

What the answers are and how they are waited for: `answers.py`."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

from infinitic_streams.client.answers import Answers
from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.consumer import Consumer, TopicPartition
from infinitic_streams.protocol import EnvelopeDecodeError, decode
from infinitic_streams.topics import REPLY_PARTITIONS

logger = logging.getLogger("infinitic_streams.client")


class Replies(Answers):
    def __init__(self, kafka: Mapping[str, Any], topic: str, client_id: str) -> None:
        super().__init__()
        self._consumer = Consumer(
            kafka,
            f"{topic}.{client_id}",  # never joined nor committed
            required={"isolation.level": "read_committed"},
        )
        partition = random.randrange(REPLY_PARTITIONS)
        self.reply_to = f"{partition}:{client_id}"
        # Start at the current end: every answer to this client comes after its first request.
        start = self._consumer.end_offset(TopicPartition(topic, partition))
        self._consumer.assign([TopicPartition(topic, partition, start)])
        self._key = client_id.encode()
        self._closed = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="infinitic client", daemon=True)
        self._listener.start()

    def close(self) -> None:
        """Stop reading; the listener closes the consumer itself (a librdkafka consumer must
        not be closed by one thread while another consumes)."""
        self._closed.set()
        self._listener.join(15)

    def _listen(self) -> None:
        try:
            self._read()
        except InfiniticError as error:  # refused credentials, a fatal client error
            logger.error("the client stopped reading answers: %s", error)
            self.broken = error
            for future in list(self._requests.values()):
                if not future.done():
                    future.set_exception(error)
            with self._changed:
                self._changed.notify_all()
        finally:
            self._consumer.close()

    def _read(self) -> None:
        while not self._closed.is_set():
            for record in self._consumer.consume(100, 0.1):
                if record.key() != self._key:
                    continue  # another client's answer
                try:
                    message = decode(record.value()).message
                except EnvelopeDecodeError:
                    continue
                self.take(message)
