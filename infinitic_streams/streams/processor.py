"""What a processor is: the user-facing side of the stream runtime.

A processor reads its input topics one message at a time. For each message it receives a
`Context` scoped to the message's partition: it reads and writes that partition's state, emits
output messages and schedules timers. All of it commits atomically with the input offset, or not
at all. Messages with the same key always reach the same partition, hence the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infinitic_streams.streams.context import Context

DEFAULT_STORE = "state"


@dataclass(slots=True)  # not frozen: built once per message, frozen init is slower
class Record:
    """One input message, its value already decoded by `Processor.decode`."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any
    timestamp_ms: int
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer that fell due: what `Context.schedule` stored."""

    key: bytes
    due_ms: int
    payload: bytes


class RetryLater(Exception):
    """Raised by a handler when something it needs is not available yet (e.g. Kafka did not
    create a topic in time): its input is not dead-lettered; the open transaction is aborted
    and its inputs are processed again after a pause."""


class Processor:
    """Base class of processors. Subclasses set `name` and `input_topics` and override
    `process` (and `on_timer` if they schedule timers).

    Several input topics must have the same partition count: partition p of each of them is
    processed with the state of partition p (co-partitioning).
    """

    name: str = "processor"
    input_topics: tuple[str, ...] = ()
    stores: tuple[str, ...] = (DEFAULT_STORE,)

    def decode(self, key: bytes | None, value: bytes | None) -> Any:
        """Turn raw bytes into the value `process` receives; raising sends them to the DLQ."""
        return value

    def process(self, ctx: Context, record: Record) -> None:
        raise NotImplementedError

    def on_timer(self, ctx: Context, timer: Timer) -> None:
        """Called once, exactly, for each timer that falls due."""

    def waits_for_commit(self, topic: str) -> bool:
        """Whether someone waits for this processor's outputs to `topic` to commit (a
        read_committed reader: a client, a processor). An idle transaction holding such an
        output commits at once; one holding only outputs nobody waits for (and state
        changes) stays open for more input until `StreamConfig.idle_commit_ms`."""
        return True
