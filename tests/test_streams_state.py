"""Partition state without Kafka: the RocksDB store, the transaction buffer, timers, changelog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infinitic_streams.streams.context import Context
from infinitic_streams.streams.state.changelog import changelog_records, split_changelog_key
from infinitic_streams.streams.state.recovery import stale_reason
from infinitic_streams.streams.state.store import (
    CHANGELOG_OFFSET,
    META,
    TIMER_HINT,
    TIMER_INDEX,
    TIMERS,
    PartitionStore,
    decode_u64,
    encode_u64,
)
from infinitic_streams.streams.state.transaction import PartitionTransaction


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PartitionStore]:
    opened = PartitionStore(tmp_path / "0", ("state",))
    yield opened
    opened.close()


def test_store_writes_data_and_changelog_offset_together(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "3", ("state", "other"))
    assert store.changelog_offset is None
    store.write({"state": {b"a": b"1", b"b": b"2"}, "other": {b"a": b"x"}}, changelog_offset=42)
    store.write({"state": {b"b": None}}, changelog_offset=43)
    store.close()

    reopened = PartitionStore(tmp_path / "3", ("state", "other"))
    assert reopened.changelog_offset == 43
    assert (reopened.get("state", b"a"), reopened.get("state", b"b")) == (b"1", None)
    assert reopened.get("other", b"a") == b"x"
    reopened.wipe()
    assert reopened.changelog_offset is None
    assert reopened.get("state", b"a") is None
    reopened.close()


def test_store_range_scan_stops_before_the_upper_bound(store: PartitionStore) -> None:
    store.write({TIMERS: {encode_u64(t) + b"k": b"p" for t in (5, 7, 9)}}, 1)
    assert [decode_u64(k[:8]) for k, _ in store.items(TIMERS, encode_u64(6), encode_u64(9))] == [7]


def test_transaction_reads_its_own_changes_then_the_store(store: PartitionStore) -> None:
    store.write({"state": {b"a": b"stored", b"b": b"stored"}}, 1)
    transaction = PartitionTransaction(store)
    transaction.update({"state": {b"a": b"new", b"b": None, b"c": b"added"}})
    transaction.update({"state": {b"c": b"last"}})
    assert transaction.get("state", b"a") == b"new"
    assert transaction.get("state", b"b") is None
    assert transaction.get("state", b"c") == b"last"
    assert store.get("state", b"a") == b"stored"  # nothing on disk before the commit
    transaction.clear()
    assert transaction.is_empty()
    assert transaction.get("state", b"a") == b"stored"


def test_a_delete_of_a_key_the_store_lacks_leaves_no_tombstone(store: PartitionStore) -> None:
    store.write({"state": {b"kept": b"stored"}}, 1)
    transaction = PartitionTransaction(store)
    transaction.update({"state": {b"moved": b"1", b"kept": None}})
    transaction.update({"state": {b"moved": None, b"never": None}})
    assert transaction.changes == {"state": {b"kept": None}}  # only the stored key's delete
    transaction.update({"state": {b"kept": b"again"}})
    transaction.update({TIMERS: {b"gone": None}})
    assert transaction.changes == {"state": {b"kept": b"again"}}


def test_context_changes_stay_private_until_applied(store: PartitionStore) -> None:
    transaction = PartitionTransaction(store)
    context = Context(transaction, partition=0)
    context.put(b"k", b"v")
    context.emit("out", b"k", b"v")
    assert context.get(b"k") == b"v"
    assert transaction.get("state", b"k") is None
    context.delete(b"k")
    assert context.get(b"k") is None
    assert [(o.topic, o.key, o.value) for o in context.outputs] == [("out", b"k", b"v")]


def schedule(transaction: PartitionTransaction, key: bytes, due_ms: int) -> None:
    context = Context(transaction, partition=0)
    context.schedule(key, due_ms, payload=key + b"!")
    transaction.update(context.changes)


def test_due_timers_merge_stored_and_new_timers_oldest_first(store: PartitionStore) -> None:
    transaction = PartitionTransaction(store)
    for key, due in ((b"a", 100), (b"b", 300), (b"c", 200)):
        schedule(transaction, key, due)
    store.write(transaction.changes, 1)
    transaction.clear()
    schedule(transaction, b"d", 150)  # still in memory
    schedule(transaction, b"e", 999)  # not due
    cancel = Context(transaction, 0)
    assert cancel.cancel_timer(b"c")
    assert not cancel.cancel_timer(b"missing")
    transaction.update(cancel.changes)

    due = transaction.due_timers(now_ms=300, limit=100)
    assert [(decode_u64(k[:8]), k[8:], p) for k, p in due] == [
        (100, b"a", b"a!"),
        (150, b"d", b"d!"),
        (300, b"b", b"b!"),
    ]
    assert [k[8:] for k, _ in transaction.due_timers(now_ms=300, limit=2)] == [b"a", b"d"]


def test_rescheduling_a_timer_replaces_it(store: PartitionStore) -> None:
    transaction = PartitionTransaction(store)
    schedule(transaction, b"a", 100)
    store.write(transaction.changes, 1)
    transaction.clear()
    schedule(transaction, b"a", 500)
    assert transaction.due_timers(now_ms=400, limit=10) == []
    assert [k[8:] for k, _ in transaction.due_timers(now_ms=500, limit=10)] == [b"a"]
    assert transaction.get(TIMER_INDEX, b"a") == encode_u64(500)


def test_the_scan_hint_skips_old_timers_and_goes_back_for_late_ones(
    store: PartitionStore,
) -> None:
    transaction = PartitionTransaction(store)
    schedule(transaction, b"old", 100)
    transaction.update({META: {TIMER_HINT: encode_u64(1000)}})
    assert transaction.due_timers(now_ms=2000, limit=10) == []  # before the hint: skipped
    schedule(transaction, b"late", 500)  # scheduled in the past: lowers the hint
    assert transaction.timer_hint == 500
    assert [k[8:] for k, _ in transaction.due_timers(now_ms=2000, limit=10)] == [b"late"]


def test_changelog_keys_carry_the_family_and_skip_metadata() -> None:
    changes = {
        "state": {b"k": b"v", b"gone": None},
        TIMERS: {b"k": b"t"},
        META: {CHANGELOG_OFFSET: b"x"},
    }
    records = list(changelog_records(changes))
    assert [(split_changelog_key(key), value) for key, value in records] == [
        (("state", b"k"), b"v"),
        (("state", b"gone"), None),
        ((TIMERS, b"k"), b"t"),
    ]
    assert split_changelog_key(b"state\x00with\x00nul") == ("state", b"with\x00nul")


def test_a_store_is_rebuilt_when_ahead_of_its_changelog_or_too_old(store: PartitionStore) -> None:
    assert stale_reason(store, changelog_end=0, now_ms=0, max_age_s=60) is None  # empty store
    store.write({"state": {b"k": b"v"}}, changelog_offset=10)
    written = store.written_at_ms
    assert written is not None
    assert stale_reason(store, 10, written, 60) is None
    assert "beyond the changelog's end 5" in (stale_reason(store, 5, written, 60) or "")
    assert "older than 60 s" in (stale_reason(store, 10, written + 61_000, 60) or "")


def test_a_prefix_scan_sees_the_store_the_transaction_and_the_handler_changes(
    store: PartitionStore,
) -> None:
    store.write({"state": {b"g\x00a\x001": b"s1", b"g\x00a\x002": b"s2", b"g\x00b\x001": b"x"}}, 1)
    transaction = PartitionTransaction(store)
    transaction.update({"state": {b"g\x00a\x002": None, b"g\x00a\x003": b"t3"}})
    ctx = Context(transaction, 0)
    ctx.put(b"g\x00a\x004", b"c4")
    ctx.delete(b"g\x00a\x003")
    ctx.put(b"g\x00a\xff", b"edge")
    assert ctx.scan(b"g\x00a\x00") == [(b"g\x00a\x001", b"s1"), (b"g\x00a\x004", b"c4")]
    assert [k for k, _ in ctx.scan(b"g\x00a")] == [b"g\x00a\x001", b"g\x00a\x004", b"g\x00a\xff"]


def test_a_limited_scan_reads_the_first_keys_from_a_start_over_every_layer(
    store: PartitionStore,
) -> None:
    store.write({"state": {b"p\x00%02d" % i: b"s" for i in range(0, 20, 2)}}, 1)  # 00 02 .. 18
    transaction = PartitionTransaction(store)
    transaction.update({"state": {b"p\x0002": None, b"p\x0003": b"t"}})
    ctx = Context(transaction, 0)
    ctx.put(b"p\x0001", b"c")
    ctx.delete(b"p\x0004")
    keys = [k for k, _ in ctx.scan(b"p\x00", limit=4)]
    assert keys == [b"p\x0000", b"p\x0001", b"p\x0003", b"p\x0006"]
    keys = [k for k, _ in ctx.scan(b"p\x00", limit=3, start=b"p\x0003\x00")]
    assert keys == [b"p\x0006", b"p\x0008", b"p\x0010"]
    assert ctx.scan(b"p\x00", limit=0) == []
    assert len(ctx.scan(b"p\x00")) == 10  # 00 01 03 06 .. 18
