"""The stream runtime in memory: what the test kit runs the engine and the visibility index on.

Same `Processor` interface and `Context` as on Kafka, one partition per processor, its state in
a `MemoryStore`. A message emitted is queued and handled in order, in the caller's thread (no
thread of its own); a timer fires once the environment's clock reaches it. An input a handler
fails on is dead-lettered (kept in `dead_letters`, with the reason), as on Kafka.
"""

from __future__ import annotations

import bisect
import logging
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from infinitic_streams.streams.context import Context, Output
from infinitic_streams.streams.processor import Processor, Record, Timer
from infinitic_streams.streams.state.store import (
    INTERNAL_FAMILIES,
    TIMER_INDEX,
    TIMERS,
    Changes,
    decode_u64,
)
from infinitic_streams.streams.state.transaction import PartitionTransaction

logger = logging.getLogger("infinitic_streams.testing")
TIMERS_PER_SCAN = 1000


class MemoryStore:
    """What a partition's transaction reads: sorted keys per column family, in memory."""

    def __init__(self, stores: tuple[str, ...]) -> None:
        self._values: dict[str, dict[bytes, bytes]] = {f: {} for f in (*stores, *INTERNAL_FAMILIES)}
        self._keys: dict[str, list[bytes]] = {f: [] for f in self._values}

    def get(self, family: str, key: bytes) -> bytes | None:
        return self._values[family].get(key)

    def items(self, family: str, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        keys, values = self._keys[family], self._values[family]
        first, last = bisect.bisect_left(keys, start), bisect.bisect_left(keys, stop)
        return iter([(key, values[key]) for key in keys[first:last]])

    def write(self, changes: Changes) -> None:
        for family, entries in changes.items():
            keys, values = self._keys[family], self._values[family]
            for key, value in entries.items():
                if value is None:
                    if values.pop(key, None) is not None:
                        del keys[bisect.bisect_left(keys, key)]
                else:
                    if key not in values:
                        bisect.insort(keys, key)
                    values[key] = value

    def count(self, family: str) -> int:
        return len(self._keys[family])

    def first_due_ms(self) -> int | None:
        """When the earliest timer falls due (epoch ms), None without timers."""
        keys = self._keys[TIMERS]
        return decode_u64(keys[0][:8]) if keys else None


@dataclass
class DeadLetter:
    topic: str
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass
class Hosted:
    processor: Processor
    store: MemoryStore
    transaction: PartitionTransaction


class MemoryRuntime:
    """Processors fed by in-memory topics. `deliver` gets every output to a topic that no
    processor reads (tasks, replies, dead letters); `observe` sees every output."""

    def __init__(
        self,
        now_ms: Callable[[], int],
        deliver: Callable[[Output], None],
        observe: Callable[[Output], None] = lambda output: None,
    ) -> None:
        self.now_ms = now_ms
        self.deliver = deliver
        self.observe = observe
        self.hosted: list[Hosted] = []
        self.readers: dict[str, Hosted] = {}  # input topic -> the processor reading it
        self.queue: deque[Output] = deque()
        self.dead_letters: list[DeadLetter] = []
        self._offset = 0

    def host(self, processor: Processor) -> MemoryStore:
        store = MemoryStore(processor.stores)
        hosted = Hosted(processor, store, PartitionTransaction(store))  # type: ignore[arg-type]
        self.hosted.append(hosted)
        for topic in processor.input_topics:
            self.readers[topic] = hosted
        return store

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.queue.append(Output(topic, key, value))

    def run(self) -> None:
        """Handle every queued message and every timer due now, until none is left."""
        while True:
            if self.queue:
                self._route(self.queue.popleft())
            elif not self._fire_due():
                return

    def next_due_ms(self) -> int | None:
        """When the next timer of any processor falls due, None without timers."""
        dues = [d for h in self.hosted if (d := h.store.first_due_ms()) is not None]
        return min(dues, default=None)

    # -- internals -------------------------------------------------------------------------

    def _route(self, output: Output) -> None:
        self.observe(output)
        hosted = self.readers.get(output.topic)
        if hosted is None:
            self.deliver(output)
        else:
            self._process(hosted, output)

    def _process(self, hosted: Hosted, message: Output) -> None:
        processor = hosted.processor
        try:
            value = processor.decode(message.key, message.value)
        except Exception as error:
            self._dead_letter(message, f"undecodable input: {error!r}")
            return
        self._offset += 1
        now = self.now_ms()
        record = Record(message.topic, 0, self._offset, message.key, value, now, [])
        context = Context(hosted.transaction, 0)
        try:
            processor.process(context, record)
        except Exception:
            self._dead_letter(message, f"{processor.name} failed:\n{traceback.format_exc()}")
            return
        if context.dead_letter_reason is not None:
            self._dead_letter(message, context.dead_letter_reason)
        self._apply(hosted, context)

    def _fire_due(self) -> bool:
        """Fire the timers due now; False when none was."""
        fired = False
        now = self.now_ms()
        for hosted in self.hosted:
            for timers_key, payload in hosted.transaction.due_timers(now, TIMERS_PER_SCAN):
                fired = True
                timer = Timer(timers_key[8:], decode_u64(timers_key[:8]), payload)
                context = Context(hosted.transaction, 0)
                context.delete(timers_key, TIMERS)
                context.delete(timer.key, TIMER_INDEX)
                try:
                    hosted.processor.on_timer(context, timer)
                except Exception:
                    reason = f"{hosted.processor.name} failed on a timer:\n{traceback.format_exc()}"
                    self._dead_letter(Output("#timers", timer.key, payload), reason)
                    context = Context(hosted.transaction, 0)
                    context.delete(timers_key, TIMERS)
                    context.delete(timer.key, TIMER_INDEX)
                self._apply(hosted, context)
        return fired

    def _apply(self, hosted: Hosted, context: Context) -> None:
        """Commit at once: the store takes the changes, the outputs are queued."""
        hosted.transaction.update(context.changes)
        hosted.store.write(hosted.transaction.changes)
        hosted.transaction.clear()
        for action in context.on_commit:
            action()
        self.queue.extend(context.outputs)

    def _dead_letter(self, message: Output, reason: str) -> None:
        logger.warning("dead-lettered a record of %s: %s", message.topic, reason)
        self.dead_letters.append(DeadLetter(message.topic, message.key, message.value, reason))
