"""A transactional producer with the error handling Kafka's transaction API asks for.

Errors come in three kinds (librdkafka tells which): retriable (call again), abortable (abort
the transaction and redo its work) and fatal (this producer is fenced or broken: stop).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from infinitic_streams.errors import InfiniticError

DeliveryCallback = Callable[[KafkaError | None, Message], None]


class TransactionAborted(InfiniticError):
    """The transaction failed in a way that requires aborting it and redoing its work."""


class FatalKafkaError(InfiniticError):
    """The producer cannot go on (e.g. fenced by a newer instance): the process must stop."""


class TransactionalProducer:
    def __init__(self, config: dict[str, Any], transactional_id: str, logger: Any) -> None:
        settings = {"transactional.id": transactional_id, **config}
        self._producer = Producer(settings, logger=logger)
        self.in_transaction = False

    def init(self, timeout: float = 60.0) -> None:
        """Fence older instances with the same transactional.id and abort their transaction."""
        self._call(self._producer.init_transactions, timeout)

    def begin(self) -> None:
        if not self.in_transaction:
            self._call(self._producer.begin_transaction)
            self.in_transaction = True

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        while True:
            try:
                if on_delivery is None and partition < 0 and headers is None:
                    self._producer.produce(topic, value, key)  # the hot path: fewest arguments
                else:
                    self._producer.produce(
                        topic, value, key, partition, on_delivery, headers=headers
                    )
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.05)

    def flush(self, timeout: float) -> None:
        if self._producer.flush(timeout) > 0:
            raise TransactionAborted(f"records still undelivered after {timeout:.0f} s")

    def commit(self, offsets: list[TopicPartition], group_metadata: object, timeout: float) -> None:
        """Send `offsets` to the transaction, then commit it."""
        if offsets:
            self._call(self._producer.send_offsets_to_transaction, offsets, group_metadata, timeout)
        self._call(self._producer.commit_transaction, timeout)
        self.in_transaction = False

    def abort(self, timeout: float = 30.0) -> None:
        if self.in_transaction:
            self.in_transaction = False
            self._call(self._producer.abort_transaction, timeout)

    def poll(self, timeout: float = 0) -> None:
        self._producer.poll(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)

    @staticmethod
    def _call(operation: Callable[..., None], *args: object, attempts: int = 10) -> None:
        """Run a transaction operation, retrying retriable errors and classifying the others."""
        for attempt in range(attempts):
            try:
                operation(*args)
                return
            except KafkaException as exception:
                error: KafkaError = exception.args[0]
                if error.fatal():
                    raise FatalKafkaError(f"{operation.__name__}: {error.str()}") from exception
                if error.txn_requires_abort():
                    raise TransactionAborted(f"{operation.__name__}: {error.str()}") from exception
                if not error.retriable() or attempt == attempts - 1:
                    raise FatalKafkaError(f"{operation.__name__}: {error.str()}") from exception
                time.sleep(min(0.05 * 2**attempt, 1.0))
