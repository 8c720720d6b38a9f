"""One RocksDB database per (processor, partition), with a column family per concern.

Column families:
- one per declared state store (user data, `bytes -> bytes`);
- `__timers__`: big-endian due time (ms) + timer key -> payload, so a range scan finds due timers;
- `__timer_index__`: timer key -> big-endian due time, to cancel or move a timer by its key;
- `__meta__`: the changelog offset and the timer scan hint, written in the same atomic batch
  as the data they describe, so a restart knows exactly which changelog tail to replay.
"""

from __future__ import annotations

import shutil
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from rocksdict import Options, Rdict, ReadOptions, WriteBatch

TIMERS = "__timers__"
TIMER_INDEX = "__timer_index__"
META = "__meta__"
INTERNAL_FAMILIES = (TIMERS, TIMER_INDEX, META)

CHANGELOG_OFFSET = b"changelog_offset"
WRITTEN_AT = b"written_at_ms"
TIMER_HINT = b"timer_hint"

_U64 = struct.Struct(">Q")

# family -> key -> value, where None deletes the key
Changes = Mapping[str, Mapping[bytes, bytes | None]]


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)


def decode_u64(data: bytes) -> int:
    return _U64.unpack(data)[0]


class PartitionStore:
    """The RocksDB database of one partition of one processor."""

    def __init__(self, path: Path, stores: tuple[str, ...]) -> None:
        self.path = path
        self.families = (*stores, *INTERNAL_FAMILIES)
        self._open()

    def _open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        self._db = Rdict(
            str(self.path),
            options=options,
            column_families={name: Options(raw_mode=True) for name in self.families},
        )
        self._cf = {name: self._db.get_column_family(name) for name in self.families}
        self._handles = {name: self._db.get_column_family_handle(name) for name in self.families}

    def get(self, family: str, key: bytes) -> bytes | None:
        return self._cf[family].get(key)

    def items(self, family: str, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Items of `family` with `start <= key < stop`, in key order."""
        bounds = ReadOptions()
        bounds.set_iterate_upper_bound(stop)
        return self._cf[family].items(from_key=start, read_opt=bounds)

    @property
    def changelog_offset(self) -> int | None:
        """The changelog offset from which to replay to catch up, None for an empty store."""
        raw = self.get(META, CHANGELOG_OFFSET)
        return None if raw is None else decode_u64(raw)

    @property
    def written_at_ms(self) -> int | None:
        """When the store last caught up with its changelog (epoch ms)."""
        raw = self.get(META, WRITTEN_AT)
        return None if raw is None else decode_u64(raw)

    @property
    def timer_hint(self) -> int:
        """Every timer due before this time (ms) has fired: scans may start here."""
        raw = self.get(META, TIMER_HINT)
        return 0 if raw is None else decode_u64(raw)

    def write(self, changes: Changes, changelog_offset: int) -> None:
        """Apply `changes` and record `changelog_offset`, atomically."""
        batch = WriteBatch(raw_mode=True)
        for family, entries in changes.items():
            batch.set_default_column_family(self._handles[family])
            for key, value in entries.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
        batch.set_default_column_family(self._handles[META])
        batch.put(CHANGELOG_OFFSET, encode_u64(changelog_offset))
        batch.put(WRITTEN_AT, encode_u64(int(time.time() * 1000)))
        self._db.write(batch)

    def estimate_keys(self, family: str) -> int:
        return self._cf[family].property_int_value("rocksdb.estimate-num-keys") or 0

    def close(self) -> None:
        # Column family views hold the database open: drop them before closing it.
        self._cf.clear()
        self._handles.clear()
        self._db.close()

    def wipe(self) -> None:
        """Delete every key, to rebuild the store from its changelog."""
        self.close()
        shutil.rmtree(self.path)
        self._open()
