"""What was processed since the last commit, and the protocol that commits it exactly once.

Commit protocol:
1. Produce each touched partition's state changes to its changelog partition (outputs were
   produced while processing, in the same transaction).
2. Flush: every record is acknowledged, so the changelog offsets are known.
3. Send the input offsets to the transaction. The consumer group generation goes with them,
   so a zombie that lost its partitions in a rebalance is refused here.
4. Commit the transaction.
5. Only now write each partition's changes to RocksDB, with its new changelog offset.

An abortable error in steps 1-4 aborts the transaction: nothing reaches RocksDB, the buffered
changes are dropped, and the consumer rewinds to the last committed offsets to redo the work.
Retriable errors (a broker restarting, a coordinator moving) are waited out by the producer;
aborts in a row back off (up to 5 s), so a cluster that keeps refusing is not hammered.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from infinitic_streams.kafka.consumer import Consumer, TopicPartition
from infinitic_streams.kafka.errors import FatalKafkaError, KafkaUnavailable, TransactionAborted
from infinitic_streams.kafka.producer import Delivery, TransactionalProducer
from infinitic_streams.streams.metrics import StreamMetrics
from infinitic_streams.streams.state.changelog import changelog_records
from infinitic_streams.streams.state.transaction import PartitionTransaction

MAX_ABORT_BACKOFF_S = 5.0
MAX_FENCINGS_PER_MINUTE = 3
Log = Callable[[str], None]


class Checkpoint:
    def __init__(
        self,
        producer: TransactionalProducer,
        consumer: Consumer,
        input_topics: tuple[str, ...],
        changelog_topic: str,
        metrics: StreamMetrics,
        log: Log,
    ) -> None:
        self._producer = producer
        self._consumer = consumer
        self._input_topics = input_topics
        self._changelog = changelog_topic
        self._metrics = metrics
        self._log = log
        self.offsets: dict[tuple[str, int], int] = {}  # next offset to consume, uncommitted
        self.committed: dict[tuple[str, int], int] = {}
        self.touched: set[int] = set()  # partitions with work in this transaction
        self.count = 0
        self.outputs = 0  # records the handlers produced that someone waits for
        self.opened_at = 0.0
        self._aborts_in_a_row = 0
        self._fencings: list[float] = []
        self._delivery_errors: list[str] = []
        self.on_commit: list[Callable[[], None]] = []  # run once the transaction committed

    @property
    def pending(self) -> bool:
        return bool(self.touched)

    def begin(self) -> None:
        if not self._producer.in_transaction:
            self._producer.begin()
            self.opened_at = time.monotonic()

    def consumed(self, topic: str, partition: int, offset: int) -> None:
        self.offsets[(topic, partition)] = offset + 1
        self.touched.add(partition)
        self.count += 1

    def touch(self, partition: int) -> None:
        self.touched.add(partition)
        self.count += 1

    def commit(
        self, transactions: dict[int, PartitionTransaction], timeout: float | None = None
    ) -> bool:
        """Commit the open transaction; False if it had to be aborted (work will be redone).

        Without `timeout`, retriable errors are waited out (bounded only once the app stops);
        with it (a revoke), `KafkaUnavailable` ends the wait and the transaction is aborted."""
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        try:
            changelog_ends = self._produce_changelogs(transactions)
            self._producer.flush(deadline)
            self._check_delivery(changelog_ends)
            offsets = self._offsets_to_commit()
            metadata = self._consumer.group_metadata()
            self._producer.commit(offsets, metadata, deadline)
        except TransactionAborted as reason:
            self.abort(transactions, reason=str(reason))
            return False
        except KafkaUnavailable as reason:
            if deadline is None:
                raise
            self.abort(transactions, reason=str(reason), rewind=False)
            return False
        for partition in self.touched:
            transaction = transactions.get(partition)
            if transaction is None or transaction.is_empty():
                continue
            store = transaction.store
            end = changelog_ends.get(partition)
            offset = end[0] + 1 if end is not None else (store.changelog_offset or 0)
            store.write(transaction.changes, offset)
            transaction.clear()
        for offset in offsets:
            self.committed[(offset.topic, offset.partition)] = offset.offset
        self._metrics.batch_size.observe(self.count)
        self._metrics.commit_latency.observe(time.monotonic() - started)
        for action in self.on_commit:
            action()
        self._reset()
        self._aborts_in_a_row = 0
        return True

    def abort(
        self, transactions: dict[int, PartitionTransaction], reason: str, rewind: bool = True
    ) -> None:
        """Abort the open transaction, drop its buffered changes, rewind the consumer."""
        self._aborts_in_a_row += 1
        self._log(f"aborting transaction ({self._aborts_in_a_row} in a row): {reason}")
        self._metrics.aborts.inc()
        self._producer.abort()
        for transaction in transactions.values():
            transaction.clear()
        if rewind:
            self._rewind()
        self._reset()
        if self._aborts_in_a_row > 1:  # the cluster keeps refusing: give it time
            time.sleep(min(0.1 * 2 ** (self._aborts_in_a_row - 2), MAX_ABORT_BACKOFF_S))

    def drop(self, transactions: dict[int, PartitionTransaction], reason: str) -> None:
        """Stopping without Kafka: forget the open transaction's work without a word to Kafka
        (its coordinator aborts it, or the next instance with this transactional.id fences
        it); the partitions' next owner redoes it."""
        self._log(f"dropping the uncommitted work while stopping: {reason}")
        for transaction in transactions.values():
            transaction.clear()
        self._reset()

    def fenced(self, transactions: dict[int, PartitionTransaction], reason: str) -> None:
        """The producer was fenced (its open transaction is gone): drop the buffered changes,
        renew the producer, rewind the consumer to the committed offsets to redo the work.

        Fenced again and again within a minute means another process has this
        transactional.id: stop, rather than fence each other forever."""
        now = time.monotonic()
        self._fencings = [at for at in self._fencings if now - at < 60.0] + [now]
        if len(self._fencings) > MAX_FENCINGS_PER_MINUTE:
            raise FatalKafkaError(
                f"fenced {len(self._fencings)} times within a minute ({reason}): another "
                f"process uses transactional.id {self._producer.transactional_id}. Give each "
                "process its own state_dir, or its own instance_id."
            )
        self._log(f"producer fenced, starting a new one: {reason}")
        self._metrics.aborts.inc()
        for transaction in transactions.values():
            transaction.clear()
        self._producer.renew()
        self._rewind()
        self._reset()

    def _produce_changelogs(
        self, transactions: dict[int, PartitionTransaction]
    ) -> dict[int, list[int]]:
        """Produce the changes; return, per partition, a cell that delivery fills with the
        offset of its last changelog record (records of one partition arrive in order)."""
        ends: dict[int, list[int]] = {}
        errors: list[str] = []
        for partition in self.touched:
            transaction = transactions.get(partition)
            if transaction is None or transaction.is_empty():
                continue
            end = ends[partition] = [-1]

            def delivered(report: Delivery, end: list[int] = end) -> None:
                if report.error is not None:
                    errors.append(report.error)
                else:
                    end[0] = max(end[0], report.offset)

            for key, value in changelog_records(transaction.changes):
                self._producer.produce(self._changelog, key, value, None, partition, delivered)
        self._delivery_errors = errors
        return ends

    def _check_delivery(self, ends: dict[int, list[int]]) -> None:
        if self._delivery_errors:
            raise TransactionAborted(f"changelog delivery failed: {self._delivery_errors[0]}")
        for partition, end in ends.items():
            if end[0] < 0:
                raise TransactionAborted(f"no changelog offset acknowledged for {partition}")

    def _offsets_to_commit(self) -> list[TopicPartition]:
        """Offsets of every touched partition: new ones, else the committed ones again, so the
        group generation is checked even for a transaction made only of fired timers."""
        offsets = []
        for partition in self.touched:
            for topic in self._input_topics:
                offset = self.offsets.get(
                    (topic, partition), self.committed.get((topic, partition))
                )
                if offset is not None and offset >= 0:
                    offsets.append(TopicPartition(topic, partition, offset))
        return offsets

    def forget(self, partition: int) -> None:
        """The partition is closed: its committed offsets are no longer ours to seek to."""
        for key in [key for key in self.committed if key[1] == partition]:
            del self.committed[key]

    def _rewind(self) -> None:
        """Seek every open partition back to its committed offset, not only those consumed
        so far: a batch cut short (a fence raised while producing) has fetched messages of
        other partitions that nothing handled, and they must be fetched again."""
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        for (topic, partition), offset in self.committed.items():  # each opened partition
            if (topic, partition) not in assigned:
                continue
            if offset < 0:
                self._log(f"no committed offset for {topic}[{partition}]: rewinding to the start")
                offset = 0
            self._consumer.seek(TopicPartition(topic, partition, offset))

    def _reset(self) -> None:
        self.on_commit = []
        self.offsets.clear()
        self.touched.clear()
        self.count = 0
        self.outputs = 0
