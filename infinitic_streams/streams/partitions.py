"""The partitions a stream app owns, from their assignment to their revocation.

Rebalance callbacks run inside `consume`, and whatever they raise ends the loop, so they do
only local work: an assignment pauses the new partitions and queues them, and the main loop
opens them (`open_pending`: committed offsets, stores, restore from the changelog). Those
steps ask the cluster, which may be moving (no leader yet, a previous owner's transaction still
open): they are retried with backoff until they succeed, while the rest of the app goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infinitic_streams.kafka.consumer import Consumer, TopicPartition
from infinitic_streams.kafka.errors import Backoff, KafkaUnavailable, ProducerFenced
from infinitic_streams.logs import numbers as numbers_of
from infinitic_streams.streams.checkpoint import Checkpoint
from infinitic_streams.streams.metrics import StreamMetrics
from infinitic_streams.streams.state.recovery import Recovery
from infinitic_streams.streams.state.store import PartitionStore
from infinitic_streams.streams.state.transaction import PartitionTransaction

Log = Callable[..., None]  # (text, level=logging.INFO)


@dataclass
class AssignedPartition:
    store: PartitionStore
    transaction: PartitionTransaction
    ready: bool = False  # restored: its input may be processed


class Partitions:
    def __init__(
        self,
        consumer: Consumer,
        checkpoint: Checkpoint,
        recovery: Recovery,
        state_path: Path,
        stores: tuple[str, ...],
        metrics: StreamMetrics,
        log: Log,
        revoke_timeout_s: float,
    ) -> None:
        self._consumer = consumer
        self._checkpoint = checkpoint
        self._recovery = recovery
        self._state_path = state_path
        self._stores = stores
        self._metrics = metrics
        self._log = log
        self._revoke_timeout_s = revoke_timeout_s
        self.assigned: dict[int, AssignedPartition] = {}
        self.joined = False  # an assignment came (even an empty one): the group has us
        self._pending: list[TopicPartition] = []
        self._backoff = Backoff(first=0.2, cap=5.0)
        self._next_try = 0.0

    @property
    def pending(self) -> bool:
        """Partitions assigned but not opened yet."""
        return bool(self._pending)

    @property
    def restoring(self) -> int:
        """Partitions assigned and not ready yet (not opened, or restoring)."""
        opening = {tp.partition for tp in self._pending}
        waiting = {n for n, p in self.assigned.items() if not p.ready}
        return len(opening | waiting)

    def transactions(self) -> dict[int, PartitionTransaction]:
        return {number: p.transaction for number, p in self.assigned.items()}

    # -- rebalance callbacks (inside consume: local work only) ------------------------------------

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        """Take the partitions paused: they are opened by the main loop."""
        self.joined = True
        self._consumer.assign(partitions)
        if partitions:
            self._consumer.pause(partitions)
        self._pending = list(partitions)
        self._next_try = 0.0

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Commit pending work while the partitions are still ours (bounded), then close them."""
        if self._checkpoint.pending:
            try:
                self._checkpoint.commit(self.transactions(), timeout=self._revoke_timeout_s)
            except ProducerFenced as fenced:  # the work is redone by the partitions' next owner
                self._checkpoint.fenced(self.transactions(), str(fenced))
        self._pending = []
        revoked = sorted({tp.partition for tp in partitions})
        self.close(revoked)
        if revoked:
            self._log(f"partitions revoked: {numbers_of(revoked)}")

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        """The partitions already belong to another member: drop the work, do not commit."""
        if self._checkpoint.pending:
            try:
                self._checkpoint.abort(self.transactions(), "partitions lost", rewind=False)
            except ProducerFenced as fenced:
                self._checkpoint.fenced(self.transactions(), str(fenced))
        self._pending = []
        self.joined = False  # until the group assigns again
        lost = sorted({tp.partition for tp in partitions})
        self.close(lost)
        if lost:
            self._log(
                f"partitions lost (another member owns them now; pending work dropped): "
                f"{numbers_of(lost)}",
                logging.WARNING,
            )

    # -- the main loop's side ---------------------------------------------------------------------

    def open_pending(self) -> None:
        """Open the assigned partitions: committed offsets, stores, restores. On a cluster that
        does not answer yet, try again later (with backoff); the partitions stay paused."""
        if not self._pending or time.monotonic() < self._next_try:
            return
        pending = self._pending
        try:
            committed = self._consumer.committed(pending, timeout=5.0)
            numbers = sorted({tp.partition for tp in pending})
            new = {
                n: PartitionStore(self._state_path / str(n), self._stores)
                for n in numbers
                if n not in self.assigned
            }
            for number, store in new.items():
                self.assigned[number] = AssignedPartition(store, PartitionTransaction(store))
            ready = self._recovery.start(
                {
                    n: p.store
                    for n, p in self.assigned.items()
                    if n in numbers and not p.ready and not self._recovery.restoring(n)
                }
            )
        except KafkaUnavailable as error:
            self._next_try = time.monotonic() + self._backoff.next_delay()
            self._log(f"cannot open partitions yet (retrying): {error}")
            return
        for tp in committed:
            self._checkpoint.committed[(tp.topic, tp.partition)] = tp.offset
        self._pending = []
        self._backoff.reset()
        for number in ready:
            self.resume(number)
        restoring = [n for n in numbers if self._recovery.restoring(n)]
        detail = f" ({len(restoring)} restoring)" if restoring else " (all ready)"
        self._log(f"partitions assigned: {numbers_of(numbers)}{detail}")

    def resume(self, number: int) -> None:
        """The partition is restored: process its input."""
        partition = self.assigned.get(number)
        if partition is None:
            return
        partition.ready = True
        self._consumer.resume([tp for tp in self._consumer.assignment() if tp.partition == number])

    def close(self, numbers: list[int]) -> None:
        for number in numbers:
            partition = self.assigned.pop(number, None)
            if partition is not None:
                self._recovery.cancel(number)
                partition.store.close()
                self._metrics.forget(number)
            self._checkpoint.forget(number)
