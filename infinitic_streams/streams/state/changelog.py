"""How state changes travel on the changelog topic.

A changelog record's key is the column family name, a NUL byte, then the key: compaction keeps
the last value per changelog key, so the family must be part of it. A `None` value is a
tombstone. The metadata family is local bookkeeping and never leaves the store.
"""

from __future__ import annotations

from collections.abc import Iterator

from infinitic_streams.streams.state.store import META, Changes

SEPARATOR = b"\x00"


def changelog_key(family: str, key: bytes) -> bytes:
    return family.encode() + SEPARATOR + key


def split_changelog_key(raw: bytes) -> tuple[str, bytes]:
    family, _, key = raw.partition(SEPARATOR)
    return family.decode(), key


def changelog_records(changes: Changes) -> Iterator[tuple[bytes, bytes | None]]:
    """The (changelog key, value) records that carry `changes`."""
    for family, entries in changes.items():
        if family == META:
            continue
        for key, value in entries.items():
            yield changelog_key(family, key), value
