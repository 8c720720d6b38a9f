"""Schedules seen from the client: `client.schedule(...)` and `ScheduleHandle`, `ScheduleInfo`.

A schedule lives in the engine partition of its id (`engine/schedules.py`): create, pause,
resume, delete and describe are one `ScheduleRequest` keyed by the schedule id, answered (with
a QueryReply) once the engine has committed it. `list_schedules` sends a LIST request to every
partition of the engine topic at once and merges the answers, sorted by id: no index to keep
in step, and one round trip whatever the number of partitions.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from infinitic_streams import cron, payload
from infinitic_streams.client.handle import datetime_of_ms
from infinitic_streams.errors import InfiniticError, ScheduleNotFound
from infinitic_streams.protocol import (
    Payload,
    QueryReply,
    ScheduleAction,
    ScheduleDefinition,
    ScheduleRequest,
)
from infinitic_streams.protocol.replies import ScheduleAnswer, ScheduleDescription

if TYPE_CHECKING:
    from infinitic_streams.client.client import InfiniticClient

LIST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule as its engine keeps it. Times are UTC datetimes; `next_fire` is None while
    paused; `running` is the workflow of the last firing while it runs."""

    id: str
    workflow: str
    method: str
    cron: str
    timezone: str
    overlap: str
    paused: bool
    next_fire: datetime | None
    last_fire: datetime | None
    last_workflow_id: str | None
    running: str | None
    tags: tuple[str, ...]
    args: tuple[Any, ...]  # the arguments as JSON values
    fired: int  # workflows started
    skipped: int  # firings skipped (overlap="skip")
    created_at: datetime

    @classmethod
    def of(cls, d: ScheduleDescription) -> ScheduleInfo:
        def at(ms: int | None) -> datetime | None:
            return None if ms is None else datetime_of_ms(ms)

        return cls(
            id=d.schedule_id,
            workflow=d.workflow_name,
            method=d.method,
            cron=d.cron,
            timezone=d.timezone,
            overlap=d.overlap,
            paused=d.paused,
            next_fire=at(d.next_fire_ms),
            last_fire=at(d.last_fire_ms),
            last_workflow_id=d.last_workflow_id,
            running=d.running,
            tags=tuple(d.tags),
            args=tuple(json.loads(a) for a in d.args),
            fired=d.fired,
            skipped=d.skipped,
            created_at=datetime_of_ms(d.created_at_ms),
        )


class ScheduleHandle:
    """A schedule by id: each call returns once the engine has recorded it."""

    def __init__(self, client: InfiniticClient, id: str) -> None:
        self._client, self.id = client, id

    def describe(self) -> ScheduleInfo:
        return request(self._client, self.id, ScheduleAction.DESCRIBE)

    def pause(self) -> ScheduleInfo:
        return self._client.pause_schedule(self.id)

    def resume(self) -> ScheduleInfo:
        return self._client.resume_schedule(self.id)

    def delete(self) -> None:
        self._client.delete_schedule(self.id)

    def __repr__(self) -> str:
        return f"ScheduleHandle({self.id!r})"


def create(
    client: InfiniticClient,
    schedule_id: str,
    workflow_name: str,
    method_name: str,
    args: list[bytes],
    cron_expression: str,
    timezone: str,
    overlap: str,
    tags: tuple[str, ...] | list[str],
) -> ScheduleInfo:
    """Check the definition here (a clear error before anything is sent), then create it."""
    if not schedule_id:
        raise ValueError("a schedule needs an id")
    cron.check(cron_expression, timezone, overlap)
    what = f"the arguments of schedule {schedule_id}"
    payload.check_size(args, client.topics.max_payload_bytes, what)
    definition = ScheduleDefinition(
        workflow_name=workflow_name,
        method_name=method_name,
        args=tuple(Payload(data=a) for a in args),
        tags=tuple(tags),
        cron=cron_expression,
        timezone=timezone,
        overlap=overlap,
    )
    info = request(client, schedule_id, ScheduleAction.CREATE, definition)
    client._warn_without_engine()
    return info


def request(
    client: InfiniticClient,
    schedule_id: str,
    action: ScheduleAction,
    definition: ScheduleDefinition | None = None,
) -> ScheduleInfo:
    """One request to the schedule's engine; its state after it (before, for DELETE)."""
    request_id = uuid.uuid4().hex
    message = ScheduleRequest(
        request_id=request_id,
        schedule_id=schedule_id,
        action=action,
        reply_to=client.reply_to,
        definition=definition,
    )
    reply = client._request(schedule_id, message, request_id)
    answer = _decode(reply)
    if answer.error:
        raise InfiniticError(f"schedule {schedule_id!r} refused: {answer.error}")
    if not reply.found:
        raise ScheduleNotFound(schedule_id)
    return ScheduleInfo.of(answer.schedules[0])


def list_all(client: InfiniticClient) -> list[ScheduleInfo]:
    """Every schedule: a LIST request to each partition of the engine topic, merged."""
    topic = client.topics.engine
    partitions = client._partitions_of(topic)
    request_id = uuid.uuid4().hex
    futures: dict[int, Future[QueryReply]] = {}
    messages = []
    for partition in range(partitions):
        part_id = f"{request_id}.{partition}"
        futures[partition] = client._replies.expect(part_id)
        message = ScheduleRequest(
            request_id=part_id, schedule_id="", action=ScheduleAction.LIST, reply_to=client.reply_to
        )
        messages.append((request_id, message, partition))
    client._send_all(topic, messages)
    found: list[ScheduleDescription] = []
    deadline = time.monotonic() + LIST_TIMEOUT_S
    try:
        for partition, future in futures.items():
            try:
                reply = future.result(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(
                    f"no answer from partition {partition} of {topic} within "
                    f"{LIST_TIMEOUT_S:.0f} s." + client._no_engine_hint()
                ) from None
            found += _decode(reply).schedules
    finally:
        for future in futures.values():
            future.cancel()
    return [ScheduleInfo.of(d) for d in sorted(found, key=lambda d: d.schedule_id)]


def _decode(reply: QueryReply) -> ScheduleAnswer:
    return payload.decode(reply.data, ScheduleAnswer)  # type: ignore[return-value]
