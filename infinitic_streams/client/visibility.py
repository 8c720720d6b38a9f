"""`list` and `count`: one round trip to the visibility index. The client sends a
ListWorkflows to each partition of the visibility-queries topic at once (scatter), each
partition answers with its counts and its first matching workflows, and the client merges
them, newest updated first (gather). No partition reads more than `limit` workflows."""

from __future__ import annotations

import dataclasses
import time
import uuid
from concurrent.futures import Future
from typing import TYPE_CHECKING

from infinitic_streams import payload
from infinitic_streams.client.handle import WorkflowInfo, datetime_of_ms
from infinitic_streams.definitions import workflow_spec
from infinitic_streams.errors import InfiniticError
from infinitic_streams.protocol import ListWorkflows, QueryReply, WorkflowStatus
from infinitic_streams.protocol.replies import ListAnswer, WorkflowSummary

if TYPE_CHECKING:
    from infinitic_streams.client.client import InfiniticClient

LIST_TIMEOUT_S = 30.0


def ask(
    client: InfiniticClient,
    workflow: type | str | None,
    status: str | None,
    tag: str | None,
    limit: int,
    after: str | None = None,
) -> tuple[dict[str, int], list[WorkflowSummary]]:
    """Counts per status (for `workflow` and `tag`) and the first `limit` matching summaries."""
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
    name = workflow_spec(workflow).name if isinstance(workflow, type) else workflow
    if status is not None:
        status = status_of(status).value
    request_id = uuid.uuid4().hex
    futures: dict[int, Future[QueryReply]] = {}
    queries = []
    for partition in range(_partitions(client)):
        futures[partition] = client._replies.expect(f"{request_id}.{partition}")
        query = ListWorkflows(
            request_id=f"{request_id}.{partition}",
            reply_to=client.reply_to,
            workflow_name=name,
            status=status,
            tag=tag,
            limit=limit,
            after=after,
        )
        queries.append((request_id, query, partition))
    client._send_all(client.topics.visibility_queries, queries)  # all at once
    counts = {s.value: 0 for s in WorkflowStatus}
    items: list[WorkflowSummary] = []
    deadline = time.monotonic() + LIST_TIMEOUT_S  # one for the whole gather
    try:
        for partition, future in futures.items():
            answer = _answer(client, future, partition, deadline)
            for key, value in answer.counts.items():
                counts[key] = counts.get(key, 0) + value
            items += answer.items
    finally:
        for future in futures.values():
            future.cancel()  # answers still expected after a failure: no longer awaited
    items.sort(key=lambda s: (-s.updated_at_ms, s.workflow_id.encode()))
    return counts, items[:limit]


def status_of(status: str) -> WorkflowStatus:
    """A status given in any case; ValueError naming the valid ones otherwise."""
    try:
        return WorkflowStatus(str(status).upper())
    except ValueError:
        valid = ", ".join(s.value for s in WorkflowStatus)
        raise ValueError(f"unknown status {status!r}: use one of {valid}") from None


def info(summary: WorkflowSummary) -> WorkflowInfo:
    error = None
    if summary.error_type is not None:
        error = f"{summary.error_type}: {summary.error_message or ''}"
    return WorkflowInfo(
        id=summary.workflow_id,
        name=summary.workflow_name,
        method=summary.method,
        status=WorkflowStatus(summary.status),
        result=None,
        error=error,
        started_at=datetime_of_ms(summary.started_at_ms),
        updated_at=datetime_of_ms(summary.updated_at_ms),
        pending=[],
        tags=tuple(summary.tags),
        ended_at=None if summary.ended_at_ms is None else datetime_of_ms(summary.ended_at_ms),
        cursor=summary.cursor,
    )


def _partitions(client: InfiniticClient) -> int:
    """The visibility-queries topic's partition count (created when missing, as a Worker
    would: same count as the events topic)."""
    if client._visibility_partitions is None:
        spec = dataclasses.replace(client.topics.visibility_queries_spec(), any_partitions=True)
        client._admin.ensure_topics([spec])
        topic = spec.name
        client._visibility_partitions = client._admin.topic_partitions((topic,))[topic]
    return client._visibility_partitions


def _answer(
    client: InfiniticClient, future: Future[QueryReply], partition: int, deadline: float
) -> ListAnswer:
    try:
        reply = future.result(max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise TimeoutError(
            f"no answer from partition {partition} of the visibility index within "
            f"{LIST_TIMEOUT_S:.0f} s." + _no_index_hint(client)
        ) from None
    if not reply.found:
        why = payload.decode(reply.data, str)
        raise InfiniticError(f"the visibility index refused the query: {why}")
    return payload.decode(reply.data, ListAnswer)  # type: ignore[return-value]


def _no_index_hint(client: InfiniticClient) -> str:
    try:
        members = client._admin.group_members(client.topics.visibility_group, timeout=3.0)
    except InfiniticError:
        return " (Kafka did not say whether it runs.)"
    if members == 0:
        return (
            f" No visibility index runs for namespace {client.topics.namespace!r}: every Worker "
            "with engine=True runs one, unless started with visibility=False."
        )
    return ""
