"""Uncommitted changes to one partition's state, kept in memory until their commit succeeds.

Reads see these changes first, then the store. Nothing reaches RocksDB before the Kafka
transaction that carries the same changes to the changelog has committed, so an aborted or
crashed transaction never leaves a trace on disk.
"""

from __future__ import annotations

from infinitic_streams.streams.state.store import (
    META,
    TIMER_HINT,
    TIMERS,
    Changes,
    PartitionStore,
    decode_u64,
    encode_u64,
)


class PartitionTransaction:
    """Last-write-wins changes per column family; `None` marks a deleted key."""

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        self.changes: dict[str, dict[bytes, bytes | None]] = {}

    def get(self, family: str, key: bytes) -> bytes | None:
        entries = self.changes.get(family)
        if entries is not None and key in entries:
            return entries[key]
        return self.store.get(family, key)

    def items(self, family: str, start: bytes, stop: bytes) -> dict[bytes, bytes]:
        """The live items of `family` with `start <= key < stop`: the store's, overlaid with
        this transaction's changes (deleted keys left out)."""
        buffered = self.changes.get(family, {})
        found = {k: v for k, v in self.store.items(family, start, stop) if k not in buffered}
        found.update((k, v) for k, v in buffered.items() if v is not None and start <= k < stop)
        return found

    def first_items(
        self, family: str, start: bytes, stop: bytes, limit: int
    ) -> list[tuple[bytes, bytes]]:
        """The first `limit` live items of `family` with `start <= key < stop`, in key order:
        reads at most `limit` items of the store beyond the keys this transaction changed."""
        buffered = self.changes.get(family, {})
        found: list[tuple[bytes, bytes]] = []
        for key, value in self.store.items(family, start, stop):
            if len(found) >= limit:
                break
            if key not in buffered:
                found.append((key, value))
        found += [(k, v) for k, v in buffered.items() if v is not None and start <= k < stop]
        return sorted(found)[:limit]

    def update(self, changes: Changes) -> None:
        """Take a handler's changes. A delete of a key the store does not hold (put and
        deleted within this transaction, or never there) is dropped rather than kept as a
        tombstone: one changelog record less (an index entry moved twice in a transaction)."""
        for family, entries in changes.items():
            buffered = self.changes.setdefault(family, {})
            for key, value in entries.items():
                if value is None and self.store.get(family, key) is None:
                    buffered.pop(key, None)
                else:
                    buffered[key] = value
            if not buffered:
                del self.changes[family]

    def is_empty(self) -> bool:
        return not self.changes

    def clear(self) -> None:
        self.changes = {}

    @property
    def timer_hint(self) -> int:
        raw = self.get(META, TIMER_HINT)
        return 0 if raw is None else decode_u64(raw)

    def due_timers(self, now_ms: int, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` timers due at `now_ms` or earlier, as (timers key, payload), oldest first.

        Merges the store's timers (minus those deleted in this transaction) with the timers
        scheduled in this transaction. The scan starts at the timer hint, skipping the
        tombstones of timers fired long ago.
        """
        start, stop = encode_u64(self.timer_hint), encode_u64(now_ms + 1)
        buffered = self.changes.get(TIMERS, {})
        due: dict[bytes, bytes] = {}
        for key, payload in self.store.items(TIMERS, start, stop):
            if key not in buffered:
                due[key] = payload
                if len(due) >= limit:
                    break
        for key, payload in buffered.items():
            if payload is not None and start <= key < stop:
                due[key] = payload
        return sorted(due.items())[:limit]
