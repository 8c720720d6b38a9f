"""The visibility index of one partition: a summary per workflow, built from its events, and
indexes that answer `list` and `count` without reading every workflow.

Keys in the partition's store (`name` and `tag` are empty for "any"):
- `w NUL id`                                           -> WorkflowSummary (JSON);
- `i NUL name NUL tag NUL status NUL ~updated NUL id`   -> b"" for each of the workflow's
  combinations (name or any) x (each tag or any), under its status; `~updated` is the update
  time in ms, big-endian and inverted, so key order is newest first;
- `c NUL name NUL tag NUL status`                       -> how many workflows (u64).
A workflow with k tags has 2 + 2k index keys, which each event moves (to its new update time),
and as many counters, which change with its status. A `list(limit=n)` with a status reads n
index keys, without one it merges the first n of each status; then n summaries. A `count`
reads one counter per status. (Indexes written by earlier versions also kept "any status"
keys, with an empty status: nothing reads them any more.)
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import Any

from infinitic_streams import payload
from infinitic_streams.protocol import WorkflowStatus, cloudevents
from infinitic_streams.protocol.replies import ListAnswer, WorkflowSummary
from infinitic_streams.streams import Context
from infinitic_streams.streams.state.store import decode_u64, encode_u64

_MAX_U64 = 2**64 - 1
STATUSES = [status.value for status in WorkflowStatus]


def apply(ctx: Context, event: dict[str, Any]) -> None:
    """Update the index with one event of a workflow (events come in order per workflow)."""
    workflow_id = event["subject"]
    old = load(ctx, workflow_id)
    if event["type"] == cloudevents.REMOVED:
        if old is not None:
            _count_out(ctx, old)
            _unindex(ctx, old)
            ctx.delete(_summary_key(workflow_id))
        return
    new = summarize(old, event)
    counted = (new.workflow_name, new.status, new.tags)
    if old is None or (old.workflow_name, old.status, old.tags) != counted:
        if old is not None:
            _count_out(ctx, old)
        _count_in(ctx, new)
    if old is None or (old.workflow_name, old.status, old.tags, old.cursor) != (
        *counted,
        new.cursor,
    ):
        if old is not None:
            _unindex(ctx, old)
        _index(ctx, new)
    ctx.put(_summary_key(workflow_id), payload.encode(new, WorkflowSummary))


def summarize(old: WorkflowSummary | None, event: dict[str, Any]) -> WorkflowSummary:
    """The summary of a workflow once `event` is recorded."""
    at = cloudevents.time_ms(event)
    summary = old or WorkflowSummary(
        event["subject"], event[cloudevents.NAME], event.get(cloudevents.METHOD, ""), "", at, at
    )
    summary = WorkflowSummary(**vars(summary))  # a copy: `old` stays as indexed
    summary.status = WorkflowStatus(event[cloudevents.STATUS])
    summary.updated_at_ms = max(summary.updated_at_ms, at)
    data = event.get("data") or {}
    kind = event["type"]
    if kind == cloudevents.STARTED:
        summary.started_at_ms = at
        summary.tags = [str(tag) for tag in data.get("tags", [])]
        summary.parent_id = data.get("parent_id")
    elif kind in cloudevents.ENDED.values():
        summary.ended_at_ms = at
        error = data.get("error") or {}
        summary.error_type, summary.error_message = error.get("type_name"), error.get("message")
    elif kind == cloudevents.RETRIED:
        summary.ended_at_ms = summary.error_type = summary.error_message = None
    return summary


def load(ctx: Context, workflow_id: str) -> WorkflowSummary | None:
    raw = ctx.get(_summary_key(workflow_id))
    return None if raw is None else payload.decode(raw, WorkflowSummary)  # type: ignore[return-value]


def query(
    ctx: Context,
    name: str | None,
    status: str | None,
    tag: str | None,
    limit: int,
    after: str | None,
) -> ListAnswer:
    """This partition's counts per status for `name` and `tag`, and its first `limit`
    summaries matching all three filters, newest updated first, after the cursor `after`."""
    counts = {s: _count(ctx, _counter_key(name or "", tag or "", s)) for s in STATUSES}
    after_position = None if after is None else _cursor_position(after) + b"\x00"
    scanned = [status] if status else [s for s in STATUSES if counts[s] > 0]
    newest: list[list[bytes]] = []  # per status: positions, newest first
    for each in scanned if limit > 0 else []:
        prefix = _index_prefix(name or "", tag or "", each)
        start = None if after_position is None else prefix + after_position
        newest.append([key[len(prefix) :] for key, _ in ctx.scan(prefix, limit=limit, start=start)])
    items = []
    for position in itertools.islice(heapq.merge(*newest), limit):
        summary = load(ctx, position[9:].decode())
        if summary is not None:
            items.append(summary)
    return ListAnswer(counts, items)


def _index(ctx: Context, summary: WorkflowSummary) -> None:
    for key in _index_keys(summary):
        ctx.put(key, b"")


def _unindex(ctx: Context, summary: WorkflowSummary) -> None:
    for key in _index_keys(summary):
        ctx.delete(key)


def _count_in(ctx: Context, summary: WorkflowSummary) -> None:
    for key in _counter_keys(summary):
        ctx.put(key, encode_u64(_count(ctx, key) + 1))


def _count_out(ctx: Context, summary: WorkflowSummary) -> None:
    for key in _counter_keys(summary):
        left = _count(ctx, key) - 1
        if left > 0:
            ctx.put(key, encode_u64(left))
        else:
            ctx.delete(key)


def _dimensions(summary: WorkflowSummary) -> Iterator[tuple[str, str]]:
    for name in ("", summary.workflow_name):
        for tag in ("", *dict.fromkeys(summary.tags)):
            yield name, tag


def _index_keys(summary: WorkflowSummary) -> Iterator[bytes]:
    position = _position(summary.updated_at_ms, summary.workflow_id)
    for name, tag in _dimensions(summary):
        yield _index_prefix(name, tag, summary.status.value) + position


def _counter_keys(summary: WorkflowSummary) -> Iterator[bytes]:
    for name, tag in _dimensions(summary):
        yield _counter_key(name, tag, summary.status.value)


def _count(ctx: Context, key: bytes) -> int:
    raw = ctx.get(key)
    return 0 if raw is None else decode_u64(raw)


def _summary_key(workflow_id: str) -> bytes:
    return b"w\x00" + workflow_id.encode()


def _index_prefix(name: str, tag: str, status: str) -> bytes:
    return b"i\x00" + "\x00".join((name, tag, status)).encode() + b"\x00"


def _counter_key(name: str, tag: str, status: str) -> bytes:
    return b"c\x00" + "\x00".join((name, tag, status)).encode()


def _position(updated_at_ms: int, workflow_id: str) -> bytes:
    return encode_u64(_MAX_U64 - updated_at_ms) + b"\x00" + workflow_id.encode()


def _cursor_position(cursor: str) -> bytes:
    """`<updated ms>:<id>` (a `WorkflowSummary.cursor`) as the key suffix it names."""
    millis, _, workflow_id = cursor.partition(":")
    try:
        return _position(int(millis), workflow_id)
    except ValueError:
        raise ValueError(f"a list cursor is '<updated ms>:<id>', not {cursor!r}") from None
