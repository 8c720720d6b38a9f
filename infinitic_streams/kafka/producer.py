"""Producers: transactional (the stream runtime) and idempotent (clients, service workers).

Both retry what a moving cluster answers. librdkafka already retries deliveries until
`message.timeout.ms`; the transaction calls (init, send offsets, commit, abort) are retried
here while the process runs, and for a bounded grace once it stops, so that a broker restart
or a coordinator moving is a pause, never the end of the process.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka import Producer as _Producer

from infinitic_streams.kafka.errors import (
    LIBRDKAFKA_LOG,
    Backoff,
    ClientErrors,
    FatalKafkaError,
    KafkaUnavailable,
    Kind,
    ProducerFenced,
    TransactionAborted,
    classify,
    error_of,
    raise_for,
)
from infinitic_streams.kafka.settings import bootstrap_of, client_config

_log = logging.getLogger("infinitic_streams.kafka")
Stopping = Callable[[], bool]
_TOO_LARGE = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_MSG_SIZE,
}
# Once the process is stopping, retriable transaction calls give up after this long.
SHUTDOWN_GRACE_S = 10.0
IDLE_CLOSE_MS = 15_000


@dataclass(frozen=True)
class Delivery:
    """What the broker said about one record: its offset, or why it was not written."""

    offset: int
    error: str | None = None
    kind: Kind | None = None
    too_large: bool = False

    @classmethod
    def of(cls, error: KafkaError | None, message: Message) -> Delivery:
        if error is None:
            return cls(message.offset())
        return cls(-1, error.str(), classify(error), error.code() in _TOO_LARGE)


OnDelivery = Callable[[Delivery], None]
RawCallback = Callable[[KafkaError | None, Message], None]


def _served(serve: Callable[[float], int], timeout: float) -> int:
    """`poll` or `flush` of a librdkafka producer. On a fatal error confluent-kafka raises
    from inside them (from its error callback, which it then skips), and a callback run after
    that fails with a SystemError: caused by that KafkaException, or, when another callback
    (a log line) ran meanwhile, with no cause at all ("returned NULL without setting an
    exception"). Every such SystemError comes out as a fatal KafkaException: the producer is
    broken, only a new one can go on."""
    try:
        return serve(timeout)
    except SystemError as error:
        if isinstance(error.__cause__, KafkaException):
            raise error.__cause__ from None
        raise KafkaException(KafkaError(KafkaError._FATAL, f"producer failed: {error}")) from None


def _discard(producer: _Producer) -> None:
    """Drop a broken producer: its queued records fail their delivery callbacks. It is
    destroyed in a thread of its own, since librdkafka's destroy of a failed producer may
    wait on its brokers: the caller goes on with a new producer meanwhile."""
    try:
        producer.purge()
        _served(producer.flush, 0)
    except KafkaException as error:  # it is broken: what it says no longer matters
        _log.info("discarding a failed producer: %s", error)
    threading.Thread(
        target=_destroy, args=([producer],), name="kafka producer destroy", daemon=True
    ).start()


def _destroy(holder: list[_Producer]) -> None:
    """Drop the last reference to a producer (librdkafka's destroy runs here), once its
    caller has let go of its own (for 5 s at most)."""
    for _ in range(100):
        if sys.getrefcount(holder[0]) <= 2:  # the holder's, and getrefcount's argument
            break
        time.sleep(0.05)
    holder.clear()


def _callback(on_delivery: OnDelivery | None) -> RawCallback | None:
    if on_delivery is None:
        return None
    return lambda error, message: on_delivery(Delivery.of(error, message))


class TransactionalProducer:
    """Exactly-once output: records and consumer offsets committed together or not at all."""

    def __init__(
        self,
        kafka: Mapping[str, Any],
        transactional_id: str,
        defaults: Mapping[str, Any] | None = None,
        stopping: Stopping = lambda: False,
    ) -> None:
        self.errors = ClientErrors(bootstrap_of(kafka))
        self.transactional_id = transactional_id
        self._config = client_config(
            kafka,
            {
                "transaction.timeout.ms": 60_000,
                # librdkafka (2.10 to 2.16 at least) can leave send_offsets_to_transaction
                # waiting forever for a group coordinator whose broker was restarted: its
                # lookup resumes only on a broker connection going up or down (issues #5456,
                # #5511). Idle connections closing keep that from lasting.
                "connections.max.idle.ms": IDLE_CLOSE_MS,
                **(defaults or {}),
            },
            {"transactional.id": transactional_id, "error_cb": self.errors},
        )
        self._producer = _Producer(self._config, logger=LIBRDKAFKA_LOG)
        self._stopping = stopping
        self.in_transaction = False

    def init(self) -> None:
        """Fence older instances with the same transactional.id and abort their transaction."""
        self._call(self._producer.init_transactions, 10.0)

    def renew(self) -> None:
        """After `ProducerFenced`: drop this producer (its records are lost with its open
        transaction) and start a new one with the same transactional.id."""
        broken, self._producer = self._producer, _Producer(self._config, logger=LIBRDKAFKA_LOG)
        _discard(broken)
        self.errors.broken = None
        self.in_transaction = False
        self.init()

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
        on_delivery: OnDelivery | None = None,
    ) -> None:
        while True:
            try:
                if on_delivery is None and partition < 0 and headers is None:
                    self._producer.produce(topic, value, key)  # the hot path: fewest arguments
                else:
                    self._producer.produce(
                        topic, value, key, partition, _callback(on_delivery), headers=headers
                    )
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.poll(0.05)
            except KafkaException as exception:
                self._fail(error_of(exception), f"producing to {topic}")

    def flush(self, deadline: float | None = None) -> None:
        """Wait until every record is delivered or has failed (its callback says which).

        librdkafka retries records until `message.timeout.ms`, so this ends; `KafkaUnavailable`
        when `deadline` (monotonic) passes first, or once stopping, after a grace."""
        patience = _Patience(deadline, self._stopping)
        started = time.monotonic()
        while (left := self._flush(1.0)) > 0:
            self._check("delivering records")
            if patience.exhausted():
                raise KafkaUnavailable(f"records still undelivered to {self.errors.where}")
            waited = time.monotonic() - started
            if waited > 5.0:
                text = f"{left} record(s) not acknowledged after {waited:.0f} s: waiting for Kafka"
                self.errors.throttle.warning("flush", text)

    def _flush(self, timeout: float) -> int:
        try:
            return _served(self._producer.flush, timeout)
        except KafkaException as exception:
            self._fail(error_of(exception), "delivering records")

    def commit(
        self, offsets: list[TopicPartition], group_metadata: object, deadline: float | None = None
    ) -> None:
        """Send `offsets` to the transaction, then commit it."""
        if offsets:
            self._call(
                self._producer.send_offsets_to_transaction,
                offsets,
                group_metadata,
                5.0,
                deadline=deadline,
            )
        self._call(self._producer.commit_transaction, 5.0, deadline=deadline)
        self.in_transaction = False

    def abort(self, deadline: float | None = None) -> None:
        if self.in_transaction:
            self._call(self._producer.abort_transaction, 5.0, deadline=deadline)
            self.in_transaction = False

    def poll(self, timeout: float = 0) -> None:
        try:
            _served(self._producer.poll, timeout)
        except KafkaException as exception:
            self._fail(error_of(exception), "serving delivery reports")

    def close(self, timeout: float = 10.0) -> None:
        try:
            _served(self._producer.flush, timeout)
        except KafkaException as error:  # closing: its transaction is aborted by the broker
            _log.info("closing a failed producer: %s", error)

    def _check(self, what: str) -> None:
        if self.errors.broken is not None:
            self._fail(self.errors.broken, what)

    def _fail(self, error: KafkaError, what: str) -> NoReturn:
        """Raise what `error` means. Every fatal error of a transactional producer counts as
        a fencing (after one, librdkafka answers every call with a bare `_FATAL`): only a new
        producer can go on, which the runtime starts (and stops if that keeps happening)."""
        if classify(error) is Kind.FATAL:
            cause = self.errors.broken or error
            raise ProducerFenced(f"{what}: {cause.str()}")
        raise_for(error, what, self.errors.where)

    def _call(
        self, operation: Callable[..., None], *args: object, deadline: float | None = None
    ) -> None:
        """Run a transaction operation; retry retriable errors (see `_Patience`); raise the
        others as TransactionAborted, FatalKafkaError or KafkaAuthError."""
        backoff = Backoff()
        patience = _Patience(deadline, self._stopping)
        name = operation.__name__
        while True:
            try:
                operation(*args)
                return
            except KafkaException as exception:
                error = error_of(exception)
                self._check(name)
                if classify(error) is not Kind.RETRIABLE:
                    self._fail(error, name)
                if patience.exhausted():
                    raise KafkaUnavailable(f"{name}: {error.str()} (gave up waiting)") from None
                self.errors.throttle.warning(name, f"{name}: {error.str()} (retrying)")
                backoff.sleep()


class _Patience:
    """How long retriable errors are waited out: until `deadline` (monotonic) if there is one;
    else while the process runs, and for `SHUTDOWN_GRACE_S` once it stops."""

    def __init__(self, deadline: float | None, stopping: Stopping) -> None:
        self._deadline, self._stopping = deadline, stopping
        self._stop_deadline: float | None = None

    def exhausted(self) -> bool:
        now = time.monotonic()
        if self._deadline is not None and now > self._deadline:
            return True
        if self._stopping():
            if self._stop_deadline is None:
                self._stop_deadline = now + SHUTDOWN_GRACE_S
            return now > self._stop_deadline
        return False


class Producer:
    """An idempotent producer: each record is written once, in order per partition, retried
    through leader moves by librdkafka. A producer that hits a fatal error (which only a new
    producer can clear) is replaced: records it still held fail their delivery callback, so
    their senders can send them again."""

    def __init__(self, kafka: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> None:
        self.errors = ClientErrors(bootstrap_of(kafka))
        self._config = client_config(
            kafka, {"linger.ms": 1, **(defaults or {})}, {"enable.idempotence": True}
        )
        self._lock = threading.Lock()
        self._producer = self._new()

    def _new(self) -> _Producer:
        self.errors.broken = None
        return _Producer({**self._config, "error_cb": self.errors}, logger=LIBRDKAFKA_LOG)

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        on_delivery: OnDelivery | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int = -1,
    ) -> None:
        """Queue a record (to `partition`, or by key when -1); `on_delivery` is called (from
        `poll`) with its `Delivery`."""
        callback = _callback(on_delivery)
        while True:
            self._renew_if_broken()
            try:
                self._producer.produce(
                    topic, value, key, partition, on_delivery=callback, headers=headers
                )
                return
            except BufferError:
                self._serve(self._producer.poll, 0.05)
            except KafkaException as exception:
                self._broken(error_of(exception), f"producing to {topic}")

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        timeout: float,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int = -1,
    ) -> Delivery:
        """Produce one record and wait until the broker has it; `KafkaUnavailable` after
        `timeout` (the record may still arrive later: sending it again must be harmless)."""
        return self.send_all(topic, [(key, value, partition)], timeout, headers)[0]

    def send_all(
        self,
        topic: str,
        records: list[tuple[bytes | None, bytes, int]],
        timeout: float,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> list[Delivery]:
        """Produce (key, value, partition) records at once, then wait until the broker has
        them all (a partition of -1: by key); their deliveries in the same order."""
        reports: dict[int, Delivery] = {}

        def delivered_as(index: int) -> OnDelivery:
            return lambda report: reports.__setitem__(index, report)

        for index, (key, value, partition) in enumerate(records):
            self.produce(topic, key, value, delivered_as(index), headers, partition)
        deadline = time.monotonic() + timeout
        while len(reports) < len(records):
            self.poll(0.05)
            self.errors.check(f"producing to {topic}")
            if time.monotonic() > deadline and len(reports) < len(records):
                raise KafkaUnavailable(
                    f"Kafka at {self.errors.where} did not acknowledge a record to {topic} "
                    f"within {timeout:g} s (it may still be written). Check the brokers."
                )
        return [reports[index] for index in range(len(records))]

    def poll(self, timeout: float = 0) -> int:
        served = self._serve(self._producer.poll, timeout)
        self._renew_if_broken()
        return served

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` for every queued record; return how many are still queued."""
        left = self._serve(self._producer.flush, timeout)
        if self.errors.broken is not None:
            self._renew_if_broken()  # its records failed their callbacks: none is queued
            return 0
        return left

    def _serve(self, serve: Callable[[float], int], timeout: float) -> int:
        try:
            return _served(serve, timeout)
        except KafkaException as exception:
            self._broken(error_of(exception), "serving delivery reports")
            return 0

    def _broken(self, error: KafkaError, what: str) -> None:
        """A fatal error marks this producer for replacement; others are raised."""
        if classify(error) is not Kind.FATAL:
            raise_for(error, what, self.errors.where)
        self.errors.broken = error

    def _renew_if_broken(self) -> None:
        broken = self.errors.broken
        if broken is None:
            return
        if classify(broken) is not Kind.FATAL:
            self.errors.check("producing")  # refused credentials: raise, a new one won't help
        with self._lock:
            if self.errors.broken is None:
                return
            _log.warning("Kafka producer failed (%s): replacing it", broken.str())
            broken, self._producer = self._producer, self._new()
            _discard(broken)  # their failed callbacks tell the senders to resend


__all__ = [
    "Delivery",
    "FatalKafkaError",
    "Producer",
    "TransactionAborted",
    "TransactionalProducer",
]
