"""The view a processor gets of one partition while handling one message or timer.

Changes and outputs are collected here first and handed to the partition's transaction only
when the handler returns: a handler that raises leaves no trace (its input is dead-lettered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from infinitic_streams.streams.processor import DEFAULT_STORE
from infinitic_streams.streams.state.store import (
    META,
    TIMER_HINT,
    TIMER_INDEX,
    TIMERS,
    decode_u64,
    encode_u64,
)
from infinitic_streams.streams.state.transaction import PartitionTransaction


@dataclass(slots=True)  # not frozen: built once per message, frozen init is slower
class Output:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None
    partition: int = -1  # -1: by key


class Context:
    """State, outputs and timers of one partition, for one message or timer."""

    def __init__(self, transaction: PartitionTransaction, partition: int) -> None:
        self.partition = partition
        self._transaction = transaction
        self.changes: dict[str, dict[bytes, bytes | None]] = {}
        self.outputs: list[Output] = []
        self.dead_letter_reason: str | None = None
        self.on_commit: list[Callable[[], None]] = []

    def get(self, key: bytes, store: str = DEFAULT_STORE) -> bytes | None:
        entries = self.changes.get(store)
        if entries is not None and key in entries:
            return entries[key]
        return self._transaction.get(store, key)

    def scan(
        self,
        prefix: bytes,
        store: str = DEFAULT_STORE,
        *,
        limit: int | None = None,
        start: bytes | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with `prefix` (from `start` when given), in key
        order, this handler's own changes included; with `limit`, the first `limit` of them,
        and the cost grows with `limit`, else with the number of keys under the prefix."""
        stop = _after_prefix(prefix)
        begin = prefix if start is None else max(start, prefix)
        own = {
            key: value for key, value in self.changes.get(store, {}).items() if begin <= key < stop
        }
        if limit is None:
            found = self._transaction.items(store, begin, stop)
        else:
            first = self._transaction.first_items(store, begin, stop, limit + len(own))
            found = dict(first)
        for key, value in own.items():
            if value is None:
                found.pop(key, None)
            else:
                found[key] = value
        return sorted(found.items())[:limit]

    def put(self, key: bytes, value: bytes, store: str = DEFAULT_STORE) -> None:
        self.changes.setdefault(store, {})[key] = value

    def delete(self, key: bytes, store: str = DEFAULT_STORE) -> None:
        self.changes.setdefault(store, {})[key] = None

    def emit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int = -1,
    ) -> None:
        """Produce a message, in the same transaction as the state changes (to `partition`,
        or by key when it is -1)."""
        self.outputs.append(Output(topic, key, value, headers, partition))

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the transaction holding this handler's work has committed (never
        if it aborts): for effects that must happen once, such as counting in metrics."""
        self.on_commit.append(action)

    def dead_letter(self, reason: str) -> None:
        """Send the input to the dead-letter topic with `reason`, as if the handler had failed,
        while still applying what the handler did (e.g. an error reply it emitted)."""
        self.dead_letter_reason = reason

    def schedule(self, timer_key: bytes, due_ms: int, payload: bytes = b"") -> None:
        """Fire `on_timer` once at `due_ms` (epoch ms) or soon after; replaces a timer of the
        same key. Timers are part of the partition state: they survive crashes and moves."""
        self.cancel_timer(timer_key)
        due = encode_u64(due_ms)
        self.put(due + timer_key, payload, TIMERS)
        self.put(timer_key, due, TIMER_INDEX)
        if due_ms < self._timer_hint():
            self.put(TIMER_HINT, due, META)  # the scan must look back to this timer

    def cancel_timer(self, timer_key: bytes) -> bool:
        """Remove the timer of this key; False if there was none."""
        due = self.get(timer_key, TIMER_INDEX)
        if due is None:
            return False
        self.delete(due + timer_key, TIMERS)
        self.delete(timer_key, TIMER_INDEX)
        return True

    def _timer_hint(self) -> int:
        raw = self.get(TIMER_HINT, META)
        return 0 if raw is None else decode_u64(raw)


def _after_prefix(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix` (prefix not all 0xff)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise ValueError("a scan prefix must hold a byte below 0xff")
    return stripped[:-1] + bytes([stripped[-1] + 1])
