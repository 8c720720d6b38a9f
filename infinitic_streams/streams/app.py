"""The stream app: one consumer, one transactional producer, one thread, one synchronous loop.

Loop, until stopped (SIGTERM, SIGINT or `stop()`):
1. Restore a bounded batch of changelog records for partitions still being restored.
2. Consume a batch of input messages and process each with its partition's state.
3. Every `timer_interval_ms`, fire the timers that fell due, inside the open transaction.
4. Commit when input goes idle, or after `commit_interval_ms` / `commit_every` messages.

Rebalances (`partitions.py`): assigned partitions open their store and restore it (paused
until restored); revoked partitions commit their pending work first; lost partitions drop it.

Kafka errors: retriable ones (a broker restarting, a leader or coordinator moving) are waited
out where they happen; the loop ends only on a fatal one (a fenced producer, refused
credentials), or when stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import IO

from prometheus_client import REGISTRY, CollectorRegistry

from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import Admin, TopicSpec
from infinitic_streams.kafka.consumer import Consumer, Message, TopicPartition
from infinitic_streams.kafka.errors import (
    KafkaRequestError,
    KafkaUnavailable,
    ProducerFenced,
    TransactionAborted,
)
from infinitic_streams.kafka.producer import TransactionalProducer
from infinitic_streams.streams.checkpoint import Checkpoint
from infinitic_streams.streams.config import StreamConfig
from infinitic_streams.streams.context import Context
from infinitic_streams.streams.dead_letter import DeadLetter
from infinitic_streams.streams.metrics import StreamMetrics
from infinitic_streams.streams.partitions import AssignedPartition, Partitions
from infinitic_streams.streams.processor import Processor, Record, RetryLater, Timer
from infinitic_streams.streams.signals import stop_on_signals
from infinitic_streams.streams.state.changelog import changelog_key
from infinitic_streams.streams.state.recovery import Recovery
from infinitic_streams.streams.state.store import (
    META,
    TIMER_HINT,
    TIMER_INDEX,
    TIMERS,
    decode_u64,
    encode_u64,
)

logger = logging.getLogger("infinitic_streams.streams")


class StateDirLocked(InfiniticError):
    """Another process uses the same state directory."""


class OutputTooLarge(InfiniticError):
    """A handler emitted a message over the size limit; its input is dead-lettered."""


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
        self._stop = threading.Event()
        self._lock_file: IO[str] | None = None

    def stop(self) -> None:
        """Ask the loop to finish: it commits pending work and leaves the group."""
        self._stop.set()

    def partitions_ready(self) -> list[int]:
        """The partitions this app owns and has restored, i.e. processes."""
        partitions: Partitions | None = getattr(self, "partitions", None)
        if partitions is None:
            return []
        return sorted(n for n, p in list(partitions.assigned.items()) if p.ready)

    @property
    def ready(self) -> bool:
        """Joined its group and restored every partition it was given (what a readiness
        probe asks); a member given no partition is ready too."""
        partitions: Partitions | None = getattr(self, "partitions", None)
        return partitions is not None and partitions.joined and partitions.restoring == 0

    def run(self, stop_signals: bool = True) -> None:
        """Process until `stop()`, or SIGTERM or SIGINT (unless `stop_signals` is False: the
        caller handles them); then shut down cleanly."""
        with stop_on_signals(self.stop) if stop_signals else contextlib.nullcontext():
            self._start()
            try:
                self._next_timers = self._next_metrics = time.monotonic()
                while not self._stop.is_set():
                    try:
                        self._step()
                    except ProducerFenced as fenced:
                        self.checkpoint.fenced(self.partitions.transactions(), str(fenced))
                    except KafkaUnavailable as error:
                        if not self._stop.is_set():
                            raise
                        # Stopping bounds the wait for Kafka: the uncommitted work is redone
                        # by the next owner of the partitions.
                        self.checkpoint.drop(self.partitions.transactions(), str(error))
            finally:
                self._shutdown()

    def _step(self) -> None:
        """One turn of the loop: open and restore partitions, process a batch, fire timers,
        commit when due."""
        now = time.monotonic()
        if self.partitions.pending:
            self.partitions.open_pending()
        if self.recovery.active:
            for partition in self.recovery.step():
                self.partitions.resume(partition)
        busy = self.checkpoint.pending or self.recovery.active
        wait = self._idle_commit_wait(now) if busy else max(0.0, min(self._next_timers - now, 0.1))
        messages = self.consumer.consume(self.config.max_poll_records, wait)
        if messages:
            self._handle_batch(messages)
        now = time.monotonic()
        if now >= self._next_timers:
            self._fire_timers()
            self._next_timers = now + self.config.timer_interval_ms / 1000
        if self.checkpoint.pending and self._commit_due(now, bool(messages)):
            self._commit()
        if now >= self._next_metrics:
            self._update_gauges()
            self._next_metrics = now + self.config.metrics_interval_s

    # -- start and stop ---------------------------------------------------------------------

    def _start(self) -> None:
        """1. Lock the state dir. 2. Check or create topics. 3. Fence older instances of
        this process (stable transactional.id). 4. Join the consumer group."""
        config = self.config
        self.state_path.mkdir(parents=True, exist_ok=True)
        self._lock_state_dir()
        admin = Admin(config.kafka)
        partitions = self._check_topics(admin)
        self.producer = TransactionalProducer(
            {**config.kafka, **config.producer},
            self._transactional_id(),
            {"message.max.bytes": config.max_message_bytes + 1024},
            stopping=self._stop.is_set,
        )
        self.producer.init()
        self.consumer = Consumer(
            {**config.kafka, **config.consumer},
            config.topic(self.processor.name),
            {
                "session.timeout.ms": config.session_timeout_ms,
                "heartbeat.interval.ms": max(config.session_timeout_ms // 5, 500),
            },
            # range keeps partition p of every input topic on the same member.
            {"isolation.level": "read_committed", "partition.assignment.strategy": "range"},
        )
        restore_consumer = Consumer(
            {**config.kafka, **config.consumer},
            config.topic(f"{self.processor.name}.restore"),  # never joined nor committed
            required={"isolation.level": "read_committed"},
        )
        self.recovery = Recovery(
            restore_consumer,
            admin,
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
        self.partitions = Partitions(
            self.consumer,
            self.checkpoint,
            self.recovery,
            self.state_path,
            self.processor.stores,
            self.metrics,
            self._log,
            config.revoke_timeout_s,
        )
        partitions_of = self.partitions
        self.metrics.track_partitions(
            lambda: len(partitions_of.assigned), lambda: partitions_of.restoring
        )
        self.consumer.subscribe(
            list(self.processor.input_topics),
            on_assign=self.partitions.on_assign,
            on_revoke=self.partitions.on_revoke,
            on_lost=self.partitions.on_lost,
        )
        self._log(
            f"consuming {', '.join(self.processor.input_topics)} ({partitions} partitions) as "
            f"group {config.topic(self.processor.name)}, state in {self.state_path}"
        )

    def _shutdown(self) -> None:
        """Commit (bounded once stopping: see TransactionalProducer), leave the group, close."""
        try:
            if self.checkpoint.pending:
                self._commit()
        except (ProducerFenced, KafkaUnavailable, KafkaRequestError, TransactionAborted) as error:
            # the work is redone by the next owner
            logger.warning(
                "%s: could not commit the last work while stopping (it is redone by the next "
                "owner of its partitions): %s",
                self.processor.name,
                error,
            )
        finally:
            self.consumer.close()  # leaves the group; revokes (nothing pending) and closes stores
            self.partitions.close(list(self.partitions.assigned))
            self.recovery.close()
            self.producer.close()
            if self._lock_file is not None:
                self._lock_file.close()
            self._log(f"stopped (left group {self.config.topic(self.processor.name)})")

    def _check_topics(self, admin: Admin) -> int:
        """Inputs must exist with equal partition counts; changelog and DLQ are created."""
        counts = admin.topic_partitions(self.processor.input_topics)
        if len(set(counts.values())) != 1:
            raise InfiniticError(
                f"input topics of {self.processor.name} must have the same partition count "
                f"(co-partitioning), found {counts}"
            )
        partitions = next(iter(counts.values()))
        sized = {"max.message.bytes": str(self.config.max_message_bytes)}
        admin.ensure_topics(
            [
                TopicSpec(self.changelog_topic, partitions, {"cleanup.policy": "compact", **sized}),
                TopicSpec(self.dlq_topic, 1, sized),
            ]
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
        """Stable across restarts, so a restart fences its own dangling transaction at once:
        from `instance_id` when set, else kept in the state directory."""
        if self.config.instance_id is not None:
            return f"{self.config.topic(self.processor.name)}.{self.config.instance_id}"
        path = self.state_path / "transactional.id"
        if not path.exists():
            path.write_text(f"{self.config.topic(self.processor.name)}.{uuid.uuid4()}\n")
        return path.read_text().strip()

    # -- processing -------------------------------------------------------------------------

    def _handle_batch(self, messages: list[Message]) -> None:
        self.checkpoint.begin()
        handled = 0
        try:
            for message in messages:
                handled += self._handle(message)
        except RetryLater as reason:
            self._retry_later(reason)
            return
        self.metrics.processed.inc(handled)

    def _retry_later(self, reason: RetryLater) -> None:
        """A handler cannot go on now (a resource it needs is not there yet): the transaction
        is aborted, and its inputs and timers are processed again after a pause."""
        self.checkpoint.abort(self.partitions.transactions(), f"retried later: {reason}")

    def _handle(self, message: Message) -> bool:
        """Process one message (or dead-letter it); False if it must be consumed again."""
        topic, number, offset = message.topic(), message.partition(), message.offset()
        partition = self.partitions.assigned.get(number)
        if partition is None or not partition.ready:
            # Fetched just before a pause or revoke: it will be consumed again later.
            self.consumer.seek(TopicPartition(topic, number, offset))
            return False
        key, raw = message.key(), message.value()
        try:
            value = self.processor.decode(key, raw)
        except Exception as exc:
            self._dead_letter(message, f"undecodable input: {exc!r}", "undecodable")
        else:
            record = Record(
                topic, number, offset, key, value, message.timestamp()[1], message.headers() or []
            )
            context = Context(partition.transaction, number)
            try:
                self.processor.process(context, record)
                self._check_sizes(context)
            except RetryLater:
                self.checkpoint.consumed(topic, number, offset)  # so that the abort rewinds it
                raise
            except Exception:
                self._dead_letter(
                    message,
                    f"{self.processor.name} failed on this input:\n{traceback.format_exc()}",
                    "error",
                )
            else:
                if context.dead_letter_reason is not None:
                    self._dead_letter(message, context.dead_letter_reason, "refused")
                self._apply(partition, context)
        self.checkpoint.consumed(topic, number, offset)
        return True

    def _check_sizes(self, context: Context) -> None:
        """Refuse the handler's work if an output or a changelog record is too large for
        Kafka: checked before anything is produced, so that the input is dead-lettered with
        nothing applied (a transaction Kafka refuses would be aborted again and again)."""
        limit = self.config.max_message_bytes
        for output in context.outputs:
            size = len(output.key or b"") + len(output.value or b"")
            if size > limit:
                raise OutputTooLarge(
                    f"an output of {size} bytes to {output.topic} is over the {limit}-byte "
                    "message limit (StreamConfig.max_message_bytes)"
                )
        for family, entries in context.changes.items():
            for key, value in entries.items():
                size = len(changelog_key(family, key)) + len(value or b"")
                if size > limit:
                    raise OutputTooLarge(
                        f"a state record of {size} bytes is over the {limit}-byte message "
                        "limit of the changelog (StreamConfig.max_message_bytes)"
                    )

    def _apply(self, partition: AssignedPartition, context: Context) -> None:
        partition.transaction.update(context.changes)
        self.checkpoint.on_commit += context.on_commit
        waits = self.processor.waits_for_commit
        self.checkpoint.outputs += sum(1 for output in context.outputs if waits(output.topic))
        for output in context.outputs:
            self.producer.produce(
                output.topic, output.key, output.value, output.headers, output.partition
            )

    def _dead_letter(self, message: Message, reason: str, kind: str) -> None:
        """`kind` (undecodable, error, refused, timer) labels the dead-letter metric."""
        dead = DeadLetter(
            reason=reason,
            source_topic=message.topic(),
            source_partition=message.partition(),
            source_offset=message.offset(),
            key=message.key(),
            value=message.value(),
            headers=list(message.headers() or []),
        )
        self._produce_dead_letter(dead, kind)

    def _produce_dead_letter(self, dead: DeadLetter, kind: str) -> None:
        self.producer.produce(self.dlq_topic, dead.key, dead.value, dead.record_headers())
        self.checkpoint.on_commit.append(lambda: self.metrics.dead_letter(kind))
        logger.warning(
            "%s: dead-lettered %s to %s: %s",
            self.processor.name,
            dead.source,
            self.dlq_topic,
            dead.summary(),
            extra={"dead_letter_source": dead.source},
        )

    def _fire_timers(self) -> None:
        """Fire due timers of every ready partition inside the open transaction.

        The scan hint moves to `now + 1` before firing (or to the last fired timer when the
        scan was cut at `max_timers_per_scan`); a handler that schedules a timer in the past
        lowers it again, so the next scan finds that timer.
        """
        now_ms = int(time.time() * 1000)
        limit = self.config.max_timers_per_scan
        for number, partition in self.partitions.assigned.items():
            if not partition.ready:
                continue
            due = partition.transaction.due_timers(now_ms, limit)
            if not due:
                continue
            self.checkpoint.begin()
            self.checkpoint.touch(number)
            hint = decode_u64(due[-1][0][:8]) if len(due) == limit else now_ms + 1
            partition.transaction.update({META: {TIMER_HINT: encode_u64(hint)}})
            try:
                for timers_key, payload in due:
                    self._fire(number, partition, timers_key, payload)
            except RetryLater as reason:
                self._retry_later(reason)
                return

    def _fire(
        self, number: int, partition: AssignedPartition, timers_key: bytes, payload: bytes
    ) -> None:
        timer = Timer(timers_key[8:], decode_u64(timers_key[:8]), payload)
        context = Context(partition.transaction, number)
        context.delete(timers_key, TIMERS)
        context.delete(timer.key, TIMER_INDEX)
        try:
            self.processor.on_timer(context, timer)
            self._check_sizes(context)
        except RetryLater:
            raise
        except Exception:
            dead = DeadLetter(
                reason=f"{self.processor.name} failed on a timer:\n{traceback.format_exc()}",
                source_topic=f"{self.changelog_topic}#timers",
                source_partition=number,
                source_offset=-1,
                key=timer.key,
                value=payload,
            )
            self._produce_dead_letter(dead, "timer")
            partition.transaction.update(
                {TIMERS: {timers_key: None}, TIMER_INDEX: {timer.key: None}}
            )
            return
        self._apply(partition, context)
        self.metrics.timers_fired.inc()

    def _commit_due(self, now: float, got_messages: bool) -> bool:
        checkpoint = self.checkpoint
        age_ms = (now - checkpoint.opened_at) * 1000
        if checkpoint.count >= self.config.commit_every or age_ms >= self.config.commit_interval_ms:
            return True
        return not got_messages and (checkpoint.outputs > 0 or age_ms >= self.config.idle_commit_ms)

    def _idle_commit_wait(self, now: float) -> float:
        """How long to wait for input while a transaction is open: not at all, unless its
        commit waits for `idle_commit_ms` (then until then, or the next timer scan)."""
        checkpoint = self.checkpoint
        if self.recovery.active or checkpoint.outputs or not self.config.idle_commit_ms:
            return 0.0
        due = checkpoint.opened_at + self.config.idle_commit_ms / 1000
        return max(0.0, min(due - now, self._next_timers - now, 0.1))

    def _commit(self) -> None:
        self.checkpoint.commit(self.partitions.transactions())

    # -- observability ----------------------------------------------------------------------

    def _update_gauges(self) -> None:
        positions = {
            (tp.topic, tp.partition): tp.offset
            for tp in self.consumer.position(self.consumer.assignment())
        }
        for number, partition in self.partitions.assigned.items():
            lag = 0
            for topic in self.processor.input_topics:
                position = positions.get((topic, number), -1)
                high = self.consumer.cached_end_offset(TopicPartition(topic, number))
                if high is not None and position >= 0:
                    lag += max(0, high - position)
            keys = sum(partition.store.estimate_keys(s) for s in self.processor.stores)
            timers = partition.store.estimate_keys(TIMER_INDEX)
            self.metrics.partition(number, keys, timers, lag)

    def _log(self, text: str, level: int = logging.INFO) -> None:
        logger.log(level, "%s: %s", self.processor.name, text)
