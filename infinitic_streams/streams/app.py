"""The stream app: one consumer, one transactional producer, one thread, one synchronous loop.

Loop, until stopped (SIGTERM, SIGINT or `stop()`):
1. Restore a bounded batch of changelog records for partitions still being restored.
2. Consume a batch of input messages and process each with its partition's state.
3. Every `timer_interval_ms`, fire the timers that fell due, inside the open transaction.
4. Commit when input goes idle, or after `commit_interval_ms` / `commit_every` messages.

Rebalances: assigned partitions open their store and restore it (paused until restored);
revoked partitions commit their pending work first; lost partitions drop it.
"""

from __future__ import annotations

import fcntl
import logging
import signal
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from confluent_kafka import Consumer, Message, TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry

from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import TopicSpec, ensure_topics, new_admin, topic_partitions
from infinitic_streams.kafka.consume import consume_available
from infinitic_streams.kafka.producer import TransactionalProducer
from infinitic_streams.protocol import DeadLetter, Envelope, encode
from infinitic_streams.streams.checkpoint import Checkpoint
from infinitic_streams.streams.config import StreamConfig
from infinitic_streams.streams.context import Context
from infinitic_streams.streams.metrics import StreamMetrics
from infinitic_streams.streams.processor import Processor, Record, Timer
from infinitic_streams.streams.state.recovery import Recovery
from infinitic_streams.streams.state.store import (
    META,
    TIMER_HINT,
    TIMER_INDEX,
    TIMERS,
    PartitionStore,
    decode_u64,
    encode_u64,
)
from infinitic_streams.streams.state.transaction import PartitionTransaction

logger = logging.getLogger("infinitic_streams.streams")
kafka_logger = logging.getLogger("infinitic_streams.kafka")


class StateDirLocked(InfiniticError):
    """Another process uses the same state directory."""


class OutputTooLarge(InfiniticError):
    """A handler emitted a message over the size limit; its input is dead-lettered."""


@dataclass
class AssignedPartition:
    store: PartitionStore
    transaction: PartitionTransaction
    ready: bool = False


class StreamApp:
    """Runs one processor over its input topics, exactly once."""

    def __init__(
        self,
        processor: Processor,
        config: StreamConfig,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        if not processor.input_topics:
            raise ValueError(f"processor {processor.name} declares no input_topics")
        self.processor = processor
        self.config = config
        self.changelog_topic = config.topic(f"{processor.name}.changelog")
        self.dlq_topic = config.topic("dlq")
        self.state_path = Path(config.state_dir) / config.namespace / processor.name
        self.metrics = StreamMetrics(config.namespace, processor.name, registry)
        self.partitions: dict[int, AssignedPartition] = {}
        self._stop = threading.Event()
        self._lock_file: IO[str] | None = None

    def stop(self) -> None:
        """Ask the loop to finish: it commits pending work and leaves the group."""
        self._stop.set()

    def run(self) -> None:
        """Process until `stop()`, SIGTERM or SIGINT; then shut down cleanly."""
        self._install_signal_handlers()
        self._start()
        try:
            next_timers = next_metrics = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if self.recovery.active:
                    for partition in self.recovery.step():
                        self._resume(partition)
                idle = self.checkpoint.pending or self.recovery.active
                wait = 0.0 if idle else max(0.0, min(next_timers - now, 0.1))
                messages = consume_available(self.consumer, self.config.max_poll_records, wait)
                if messages:
                    self._handle_batch(messages)
                now = time.monotonic()
                if now >= next_timers:
                    self._fire_timers()
                    next_timers = now + self.config.timer_interval_ms / 1000
                if self.checkpoint.pending and self._commit_due(now, bool(messages)):
                    self._commit()
                if now >= next_metrics:
                    self._update_gauges()
                    next_metrics = now + self.config.metrics_interval_s
        finally:
            self._shutdown()

    # -- start and stop ---------------------------------------------------------------------

    def _start(self) -> None:
        """1. Lock the state dir. 2. Check or create topics. 3. Fence older instances of
        this process (stable transactional.id). 4. Join the consumer group."""
        config = self.config
        self.state_path.mkdir(parents=True, exist_ok=True)
        self._lock_state_dir()
        partitions = self._check_topics()
        common = {"bootstrap.servers": config.bootstrap_servers}
        self.producer = TransactionalProducer(
            {**common, "transaction.timeout.ms": 60_000, **config.producer},
            self._transactional_id(),
            kafka_logger,
        )
        self.producer.init()
        self.consumer = Consumer(
            {
                **common,
                "group.id": config.topic(self.processor.name),
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # range keeps partition p of every input topic on the same member.
                "partition.assignment.strategy": "range",
                "session.timeout.ms": config.session_timeout_ms,
                "heartbeat.interval.ms": max(config.session_timeout_ms // 5, 500),
                **config.consumer,
            },
            logger=kafka_logger,
        )
        restore_consumer = Consumer(
            {
                **common,
                "group.id": config.topic(f"{self.processor.name}.restore"),
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            },
            logger=kafka_logger,
        )
        self.recovery = Recovery(
            restore_consumer,
            new_admin(config.bootstrap_servers),
            self.changelog_topic,
            self.metrics,
            self._log,
            config.max_state_age_s,
        )
        self.checkpoint = Checkpoint(
            self.producer,
            self.consumer,
            self.processor.input_topics,
            self.changelog_topic,
            self.metrics,
            self._log,
        )
        self.consumer.subscribe(
            list(self.processor.input_topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._log(
            f"started on {len(self.processor.input_topics)} topic(s), {partitions} partitions"
        )

    def _shutdown(self) -> None:
        try:
            if self.checkpoint.pending:
                self._commit()
        finally:
            self.consumer.close()  # leaves the group; revokes (nothing pending) and closes stores
            self._close_partitions(list(self.partitions))
            self.recovery.close()
            self.producer.close()
            if self._lock_file is not None:
                self._lock_file.close()
            self._log("stopped")

    def _check_topics(self) -> int:
        """Inputs must exist with equal partition counts; changelog and DLQ are created."""
        counts = topic_partitions(self.config.bootstrap_servers, self.processor.input_topics)
        if len(set(counts.values())) != 1:
            raise InfiniticError(
                f"input topics of {self.processor.name} must have the same partition count "
                f"(co-partitioning), found {counts}"
            )
        partitions = next(iter(counts.values()))
        ensure_topics(
            self.config.bootstrap_servers,
            [
                TopicSpec(self.changelog_topic, partitions, {"cleanup.policy": "compact"}),
                TopicSpec(self.dlq_topic, 1),
            ],
        )
        return partitions

    def _lock_state_dir(self) -> None:
        self._lock_file = open(self.state_path / "lock", "w")  # noqa: SIM115 - held until shutdown
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateDirLocked(
                f"{self.state_path} is used by another running process. Give each process its "
                "own state_dir (processes on one machine share partitions through Kafka)."
            ) from None

    def _transactional_id(self) -> str:
        """Stable across restarts, so a restart fences its own dangling transaction at once."""
        path = self.state_path / "transactional.id"
        if not path.exists():
            path.write_text(f"{self.config.topic(self.processor.name)}.{uuid.uuid4()}\n")
        return path.read_text().strip()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    # -- processing -------------------------------------------------------------------------

    def _handle_batch(self, messages: list[Message]) -> None:
        self.checkpoint.begin()
        handled = 0
        for message in messages:
            handled += self._handle(message)
        self.metrics.processed.inc(handled)

    def _handle(self, message: Message) -> bool:
        """Process one message (or dead-letter it); False if it must be consumed again."""
        error = message.error()
        if error is not None:
            if error.fatal():
                raise InfiniticError(f"consumer failed: {error.str()}")
            self._log(f"consumer error: {error.str()}")
            return False
        topic, number, offset = message.topic(), message.partition(), message.offset()
        partition = self.partitions.get(number)
        if partition is None or not partition.ready:
            # Fetched just before a pause or revoke: it will be consumed again later.
            self.consumer.seek(TopicPartition(topic, number, offset))
            return False
        key, raw = message.key(), message.value()
        try:
            value = self.processor.decode(key, raw)
        except Exception as exc:
            self._dead_letter(message, f"undecodable input: {exc!r}")
        else:
            record = Record(
                topic, number, offset, key, value, message.timestamp()[1], message.headers() or []
            )
            context = Context(partition.transaction, number)
            try:
                self.processor.process(context, record)
                self._check_outputs(context)
            except Exception:
                self._dead_letter(
                    message,
                    f"{self.processor.name} failed on this input:\n{traceback.format_exc()}",
                )
            else:
                if context.dead_letter_reason is not None:
                    self._dead_letter(message, context.dead_letter_reason)
                self._apply(partition, context)
        self.checkpoint.consumed(topic, number, offset)
        return True

    def _check_outputs(self, context: Context) -> None:
        """Refuse the handler's work if an output is too large for Kafka: checked before any
        output is produced, so that the input is dead-lettered with nothing applied."""
        limit = self.config.max_message_bytes
        for output in context.outputs:
            size = len(output.key or b"") + len(output.value or b"")
            if size > limit:
                raise OutputTooLarge(
                    f"an output of {size} bytes to {output.topic} is over the {limit}-byte "
                    "message limit (StreamConfig.max_message_bytes)"
                )

    def _apply(self, partition: AssignedPartition, context: Context) -> None:
        partition.transaction.update(context.changes)
        for output in context.outputs:
            self.producer.produce(
                output.topic, output.key, output.value, output.headers, output.partition
            )

    def _dead_letter(self, message: Message, reason: str) -> None:
        dead = DeadLetter(
            reason=reason,
            source_topic=message.topic(),
            source_partition=message.partition(),
            source_offset=message.offset(),
            key=message.key(),
            value=message.value(),
        )
        self._produce_dead_letter(dead, message.key())
        self._log(f"dead-lettered {message.topic()}[{message.partition()}]@{message.offset()}")

    def _produce_dead_letter(self, dead: DeadLetter, key: bytes | None) -> None:
        envelope = Envelope(
            message_id=str(uuid.uuid4()), sent_at_ms=int(time.time() * 1000), message=dead
        )
        self.producer.produce(self.dlq_topic, key, encode(envelope))
        self.metrics.dead_letters.inc()

    def _fire_timers(self) -> None:
        """Fire due timers of every ready partition inside the open transaction.

        The scan hint moves to `now + 1` before firing (or to the last fired timer when the
        scan was cut at `max_timers_per_scan`); a handler that schedules a timer in the past
        lowers it again, so the next scan finds that timer.
        """
        now_ms = int(time.time() * 1000)
        limit = self.config.max_timers_per_scan
        for number, partition in self.partitions.items():
            if not partition.ready:
                continue
            due = partition.transaction.due_timers(now_ms, limit)
            if not due:
                continue
            self.checkpoint.begin()
            self.checkpoint.touch(number)
            hint = decode_u64(due[-1][0][:8]) if len(due) == limit else now_ms + 1
            partition.transaction.update({META: {TIMER_HINT: encode_u64(hint)}})
            for timers_key, payload in due:
                self._fire(number, partition, timers_key, payload)

    def _fire(
        self, number: int, partition: AssignedPartition, timers_key: bytes, payload: bytes
    ) -> None:
        timer = Timer(timers_key[8:], decode_u64(timers_key[:8]), payload)
        context = Context(partition.transaction, number)
        context.delete(timers_key, TIMERS)
        context.delete(timer.key, TIMER_INDEX)
        try:
            self.processor.on_timer(context, timer)
            self._check_outputs(context)
        except Exception:
            dead = DeadLetter(
                reason=f"{self.processor.name} failed on a timer:\n{traceback.format_exc()}",
                source_topic=f"{self.changelog_topic}#timers",
                source_partition=number,
                source_offset=-1,
                key=timer.key,
                value=payload,
            )
            self._produce_dead_letter(dead, timer.key)
            partition.transaction.update(
                {TIMERS: {timers_key: None}, TIMER_INDEX: {timer.key: None}}
            )
            return
        self._apply(partition, context)
        self.metrics.timers_fired.inc()

    def _commit_due(self, now: float, got_messages: bool) -> bool:
        checkpoint = self.checkpoint
        return (
            not got_messages
            or checkpoint.count >= self.config.commit_every
            or (now - checkpoint.opened_at) * 1000 >= self.config.commit_interval_ms
        )

    def _commit(self) -> None:
        self.checkpoint.commit(self._transactions())

    def _transactions(self) -> dict[int, PartitionTransaction]:
        return {number: p.transaction for number, p in self.partitions.items()}

    # -- rebalancing ------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        """Open each partition's store; pause the ones that must be restored first."""
        consumer.assign(assigned)
        committed = consumer.committed(assigned, timeout=30)
        for tp in committed:
            self.checkpoint.committed[(tp.topic, tp.partition)] = tp.offset
        numbers = sorted({tp.partition for tp in assigned})
        stores = {
            n: PartitionStore(self.state_path / str(n), self.processor.stores) for n in numbers
        }
        for number, store in stores.items():
            self.partitions[number] = AssignedPartition(store, PartitionTransaction(store))
        for number in self.recovery.start(stores):
            self.partitions[number].ready = True
        to_pause = [tp for tp in assigned if not self.partitions[tp.partition].ready]
        if to_pause:
            consumer.pause(to_pause)
        self._log(f"assigned partitions {numbers}")

    def _resume(self, number: int) -> None:
        partition = self.partitions.get(number)
        if partition is None:
            return
        partition.ready = True
        self.consumer.resume([tp for tp in self.consumer.assignment() if tp.partition == number])

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        """Commit pending work while the partitions are still ours, then close them."""
        if self.checkpoint.pending:
            self.checkpoint.commit(self._transactions(), timeout=self.config.revoke_timeout_s)
        self._close_partitions(sorted({tp.partition for tp in revoked}))

    def _on_lost(self, consumer: Consumer, lost: list[TopicPartition]) -> None:
        """The partitions already belong to another member: drop the work, do not commit."""
        if self.checkpoint.pending:
            self.checkpoint.abort(self._transactions(), "partitions lost", rewind=False)
        self._close_partitions(sorted({tp.partition for tp in lost}))

    def _close_partitions(self, numbers: list[int]) -> None:
        for number in numbers:
            partition = self.partitions.pop(number, None)
            if partition is not None:
                self.recovery.cancel(number)
                partition.store.close()
                self.metrics.forget(number)

    # -- observability ----------------------------------------------------------------------

    def _update_gauges(self) -> None:
        positions = {
            (tp.topic, tp.partition): tp.offset
            for tp in self.consumer.position(self.consumer.assignment())
        }
        for number, partition in self.partitions.items():
            lag = 0
            for topic in self.processor.input_topics:
                position = positions.get((topic, number), -1)
                tp = TopicPartition(topic, number)
                high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high is not None and position >= 0:
                    lag += max(0, high[1] - position)
            keys = sum(partition.store.estimate_keys(s) for s in self.processor.stores)
            timers = partition.store.estimate_keys(TIMER_INDEX)
            self.metrics.partition(number, keys, timers, lag)

    def _log(self, text: str) -> None:
        logger.info("[%s] %s", self.processor.name, text)
