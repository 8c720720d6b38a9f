"""Rebuild partition stores from their changelog partitions.

Protocol, per partition being assigned:
1. Read the changelog offset stored in the partition's RocksDB (None for a new store).
2. Ask for the changelog partition's bounds: its start, its last stable offset and its end;
   wait while they differ (a transaction in flight: maybe the previous owner's last commit,
   whose markers are not all written yet). Wipe the store and restore it all when its offset
   lies beyond the end (the changelog was recreated) or when it is older than
   `max_state_age_s`: compaction drops tombstones after a day by default, so an old store
   replaying only the tail could keep keys deleted meanwhile.
3. If the store is not behind, it is ready. Otherwise assign the changelog partition to the
   restore consumer at the stored offset (the tail) or the start (a new store).
4. `step()` applies batches of records to the stores, each batch with its offset in one
   atomic write, until the consumer *position* reaches the end (transaction markers take
   offsets too, so the last record's offset is not a reliable signal).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from infinitic_streams.kafka.admin import Admin
from infinitic_streams.kafka.consumer import Consumer, TopicPartition
from infinitic_streams.kafka.errors import KafkaUnavailable
from infinitic_streams.logs import numbers
from infinitic_streams.streams.metrics import StreamMetrics
from infinitic_streams.streams.state.changelog import split_changelog_key
from infinitic_streams.streams.state.store import PartitionStore

Log = Callable[..., None]  # (text, level=logging.INFO)


def stale_reason(
    store: PartitionStore, changelog_end: int, now_ms: int, max_age_s: float
) -> str | None:
    """Why the store cannot be caught up by replaying the changelog's tail (which ends at
    `changelog_end`, its high watermark), or None."""
    offset, written_at = store.changelog_offset, store.written_at_ms
    if offset is None:
        return None
    if offset > changelog_end:
        return f"its offset {offset} is beyond the changelog's end {changelog_end}"
    if written_at is not None and now_ms - written_at > max_age_s * 1000:
        return f"it is older than {max_age_s:.0f} s"
    return None


class ChangelogUnsettled(KafkaUnavailable):
    """A changelog partition still has a transaction in flight: restoring now could miss
    records committed a moment ago whose markers are not written yet."""


@dataclass
class RestoreTask:
    store: PartitionStore
    end_offset: int
    started_at: float = field(default_factory=time.monotonic)
    records: int = 0


@dataclass
class RestoreRound:
    """Restores that overlap in time, told as one story: started, then all done."""

    started_at: float = field(default_factory=time.monotonic)
    partitions: list[int] = field(default_factory=list)
    records: int = 0


class Recovery:
    """Restores the stores of newly assigned partitions, a bounded batch at a time."""

    def __init__(
        self,
        consumer: Consumer,
        admin: Admin,
        changelog_topic: str,
        metrics: StreamMetrics,
        log: Log,
        max_state_age_s: float,
    ) -> None:
        self._consumer = consumer
        self._admin = admin
        self._max_age_s = max_state_age_s
        self._topic = changelog_topic
        self._metrics = metrics
        self._log = log
        self._tasks: dict[int, RestoreTask] = {}
        self._round: RestoreRound | None = None
        # Fetch the changelog's metadata now: a first fetch without it waits for librdkafka's
        # one-second metadata retry.
        with contextlib.suppress(KafkaUnavailable):  # a warm-up: the restore waits anyway
            consumer.list_topic(changelog_topic)

    @property
    def active(self) -> bool:
        return bool(self._tasks)

    def start(self, stores: dict[int, PartitionStore]) -> list[int]:
        """Begin restoring the stores behind their changelog; return the ones ready now.

        `KafkaUnavailable` (nothing started) when the changelog's offsets cannot be read, or
        while one of its partitions has a transaction in flight (`ChangelogUnsettled`): the
        previous owner's last commit may still be writing its markers, and a restore that
        stopped at the last stable offset would miss it. A transaction left open by a process
        that died ends within `transaction.timeout.ms`."""
        bounds = self._admin.partition_bounds(self._topic, sorted(stores), timeout=10.0)
        unsettled = [p for p, b in sorted(bounds.items()) if not b.settled]
        if unsettled:
            raise ChangelogUnsettled(
                f"changelog partition(s) {unsettled} of {self._topic} have a transaction in "
                "flight: waiting for it to end"
            )
        now_ms = int(time.time() * 1000)
        ready, tail = [], []
        for partition, store in stores.items():
            bound = bounds[partition]
            why = stale_reason(store, bound.end, now_ms, self._max_age_s)
            if why is not None:
                self._log(f"partition {partition}: {why}: wiping its local state")
                store.wipe()
            start = max(bound.start, store.changelog_offset or 0)
            if start >= bound.end:
                ready.append(partition)
                continue
            self._tasks[partition] = RestoreTask(store, bound.end)
            tail.append(TopicPartition(self._topic, partition, start))
        if tail:
            self._consumer.incremental_assign(tail)
            at_most = sum(bounds[tp.partition].end - tp.offset for tp in tail)
            self._log(
                f"restoring partition(s) {numbers([tp.partition for tp in tail])} from "
                f"{self._topic}: up to {at_most} records"
            )
            self._round = self._round or RestoreRound()
        return ready

    def restoring(self, partition: int) -> bool:
        return partition in self._tasks

    def cancel(self, partition: int) -> None:
        if self._tasks.pop(partition, None) is not None:
            self._consumer.incremental_unassign([TopicPartition(self._topic, partition)])
            if not self._tasks:
                self._end_round()

    def step(self, max_records: int = 10_000, timeout: float = 0.05) -> list[int]:
        """Apply up to `max_records` changelog records; return the partitions now restored."""
        started = time.monotonic()
        batch: dict[int, dict[str, dict[bytes, bytes | None]]] = {}
        last_offsets: dict[int, int] = {}
        counts: dict[int, int] = {}
        for message in self._consumer.consume(max_records, timeout):
            partition = message.partition()
            if partition not in self._tasks:
                continue
            family, key = split_changelog_key(message.key())
            batch.setdefault(partition, {}).setdefault(family, {})[key] = message.value()
            last_offsets[partition] = message.offset()
            counts[partition] = counts.get(partition, 0) + 1
        for partition, changes in batch.items():
            task = self._tasks[partition]
            task.store.write(changes, last_offsets[partition] + 1)
            task.records += counts[partition]
            self._metrics.restore_records.inc(counts[partition])
        finished = self._finished()
        self._metrics.restore_seconds.inc(time.monotonic() - started)
        return finished

    def _finished(self) -> list[int]:
        partitions = [TopicPartition(self._topic, p) for p in self._tasks]
        done = []
        for position in self._consumer.position(partitions):
            task = self._tasks[position.partition]
            if position.offset >= task.end_offset:
                # The position may sit past the last record (after a commit marker).
                task.store.write({}, position.offset)
                done.append(position.partition)
        for partition in done:
            task = self._tasks[partition]
            seconds = time.monotonic() - task.started_at
            self._log(
                f"partition {partition} restored: {task.records} records in {seconds:.2f} s",
                logging.DEBUG,
            )
            if self._round is not None:
                self._round.partitions.append(partition)
                self._round.records += task.records
            self.cancel(partition)
        return done

    def _end_round(self) -> None:
        """Every restore under way is over (done, or its partition revoked)."""
        finished, self._round = self._round, None
        if finished is not None and finished.partitions:
            seconds = time.monotonic() - finished.started_at
            self._log(
                f"restored partition(s) {numbers(finished.partitions)}: "
                f"{finished.records} records in {seconds:.2f} s"
            )

    def close(self) -> None:
        self._tasks.clear()
        self._consumer.close()
