"""`InfiniticClient`: dispatch workflows, get handles on them (one by id, a group by tag).

Answers come on the namespace's replies topic (`replies.py`). Nothing is created or deleted
per client, so a client that dies leaves nothing behind. Every request (dispatch, signal,
cancel, retry, a query) returns once Kafka has acknowledged it: through a leader change it just
takes longer; refused credentials raise `KafkaAuthError` at once.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from infinitic_streams import payload
from infinitic_streams.client import schedules, visibility
from infinitic_streams.client.group import WorkflowGroup
from infinitic_streams.client.handle import WorkflowHandle, WorkflowInfo
from infinitic_streams.client.replies import Replies
from infinitic_streams.client.schedules import ScheduleHandle, ScheduleInfo
from infinitic_streams.config import InfiniticConfig
from infinitic_streams.definitions import workflow_spec
from infinitic_streams.errors import InfiniticError, WorkflowNotFound
from infinitic_streams.kafka.admin import Admin
from infinitic_streams.kafka.errors import KafkaRequestError
from infinitic_streams.kafka.producer import Producer
from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES
from infinitic_streams.protocol import (
    DispatchWorkflow,
    Envelope,
    Message,
    Payload,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    ScheduleAction,
    encode,
)
from infinitic_streams.topics import Topics

logger = logging.getLogger("infinitic_streams.client")
DEFAULT_PARTITIONS = 8
QUERY_TIMEOUT_S = 60.0
SEND_TIMEOUT_S = 60.0  # for Kafka to acknowledge a request
ENGINE_CHECK_S = 30.0  # how often a dispatch may check that an engine runs


class InfiniticClient:
    def __init__(
        self,
        kafka: Mapping[str, Any],
        namespace: str = "default",
        partitions: int = DEFAULT_PARTITIONS,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.kafka = dict(kafka)
        self.topics = Topics(namespace, partitions, max_payload_bytes)
        self.client_id = uuid.uuid4().hex[:12]
        self._closed = False
        self._admin = Admin(self.kafka)
        # Records keyed by workflow id reach the right partition whatever the engine topic's
        # count: a client need not know it (created with `partitions` only when missing).
        engine = dataclasses.replace(self.topics.engine_spec(), any_partitions=True)
        tags = dataclasses.replace(self.topics.tags_spec(), any_partitions=True)
        self._admin.ensure_topics([engine, tags, self.topics.replies_spec()])
        self._engine_checked_at: float | None = None  # monotonic time of the last check
        self._producer = Producer(
            self.kafka, {"message.max.bytes": self.topics.max_message_bytes + 1024}
        )
        self._replies = Replies(self.kafka, self.topics.replies, self.client_id)
        self.reply_to = self._replies.reply_to
        self._visibility_partitions: int | None = None  # of the visibility-queries topic

    @classmethod
    def from_config(cls, path: str | Path = "infinitic.toml") -> InfiniticClient:
        config = InfiniticConfig.load(path)
        return cls(config.kafka, config.namespace, config.partitions, config.max_payload_bytes)

    def __enter__(self) -> InfiniticClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and release the connections."""
        if self._closed:
            return
        self._closed = True
        self._replies.close()
        self._producer.flush(10)

    # -- workflows -----------------------------------------------------------------------------

    def dispatch(
        self,
        method: Callable[..., Any],
        *args: Any,
        id: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
        meta: Mapping[str, str] | None = None,
    ) -> WorkflowHandle:
        """Start `MyWorkflow.method(*args)`; with an `id` that exists, return that workflow.

        `method` must be defined in the workflow class itself (an inherited function names the
        class that defines it)."""
        cls = _defining_class(method)
        param_hints, _ = payload.hints_of(method)
        encoded = payload.encode_args(args, param_hints)
        name = workflow_spec(cls).name
        workflow_id = self.dispatch_encoded(name, method.__name__, encoded, id, tags, meta)
        return WorkflowHandle(self, cls, workflow_id, method.__name__, waiting=True)

    def dispatch_encoded(
        self,
        workflow_name: str,
        method_name: str,
        args: list[bytes],
        id: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
        meta: Mapping[str, str] | None = None,
    ) -> str:
        """Start a workflow by its name, with arguments already encoded as payload JSON (what
        a tool without the workflow's code sends); return its id. Results come to
        `get_workflow(None, id)` handles as plain JSON values."""
        what = f"the arguments of {workflow_name}.{method_name}"
        payload.check_size(args, self.topics.max_payload_bytes, what)
        workflow_id = id or str(uuid.uuid4())
        message = DispatchWorkflow(
            workflow_id=workflow_id,
            workflow_name=workflow_name,
            method_name=method_name,
            args=tuple(Payload(data=a) for a in args),
            tags=tuple(tags),
            meta=dict(meta or {}),
            reply_to=self.reply_to,
        )
        self._send(workflow_id, message)
        self._warn_without_engine()
        return workflow_id

    def get_workflow(self, cls: type | None, id: str) -> WorkflowHandle:
        """A handle on the workflow with this id (it may have been started elsewhere).

        With `cls=None`, results come as plain JSON values (dicts, lists, strings, numbers):
        what a tool that does not have the workflow's code can show."""
        return WorkflowHandle(self, cls, id, None, waiting=False)

    def get_workflows(self, workflow: type | str, tag: str) -> WorkflowGroup:
        """Every workflow of this class (or name) carrying `tag`: `ids()`, `signal()`,
        `cancel()`, `retry()` act on the group as it is at the time of the call."""
        cls = workflow if isinstance(workflow, type) else None
        name = workflow_spec(workflow).name if isinstance(workflow, type) else workflow
        return WorkflowGroup(self, cls, name, tag)

    def list(
        self,
        workflow: type | str | None = None,
        status: str | None = None,
        tag: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[WorkflowInfo]:
        """The workflows matching every filter given (a class or name, a status, a tag), most
        recently updated first, at most `limit`; `after` is the `cursor` of the last one of
        the previous page. Served by the visibility index in one round trip: it reflects a
        change within about a second, and lists ended workflows until their retention ends.
        Listed workflows carry no result nor pending work: `describe()` has those."""
        _, summaries = visibility.ask(self, workflow, status, tag, limit, after)
        return [visibility.info(summary) for summary in summaries]

    def count(
        self, workflow: type | str | None = None, status: str | None = None, tag: str | None = None
    ) -> int:
        """How many workflows match every filter given (from the visibility index's counters:
        its cost does not grow with the number of workflows)."""
        counts = self.count_by_status(workflow, tag)
        if status is None:
            return sum(counts.values())
        return counts[visibility.status_of(status).value]

    def count_by_status(
        self, workflow: type | str | None = None, tag: str | None = None
    ) -> dict[str, int]:
        """How many workflows of each status (RUNNING, COMPLETED, FAILED, CANCELED) match."""
        counts, _ = visibility.ask(self, workflow, None, tag, 0)
        return counts

    # -- schedules -----------------------------------------------------------------------------

    def schedule(
        self,
        id: str,
        method: Callable[..., Any],
        *args: Any,
        cron: str,
        timezone: str = "UTC",
        overlap: str = "skip",
        tags: tuple[str, ...] | list[str] = (),
    ) -> ScheduleHandle:
        """Start `MyWorkflow.method(*args)` on each firing of `cron` (5 fields, or 6 with the
        seconds first), read in `timezone`; return once the engine has recorded it.

        Each firing starts the workflow `<id>@<fire time, ISO UTC>`. `overlap="skip"` starts
        nothing while the previous firing's workflow runs; `"allow"` starts every firing.
        Creating an existing id with the same definition changes nothing; with another
        definition it replaces it (active, next firing from now). A bad cron expression, time
        zone or overlap raises ValueError before anything is sent."""
        cls = _defining_class(method)
        param_hints, _ = payload.hints_of(method)
        encoded = payload.encode_args(args, param_hints)
        name = workflow_spec(cls).name
        self.schedule_encoded(id, name, method.__name__, encoded, cron, timezone, overlap, tags)
        return ScheduleHandle(self, id)

    def schedule_encoded(
        self,
        id: str,
        workflow_name: str,
        method_name: str,
        args: list[bytes],
        cron: str,
        timezone: str = "UTC",
        overlap: str = "skip",
        tags: tuple[str, ...] | list[str] = (),
    ) -> ScheduleInfo:
        """`schedule` by workflow name, with arguments already encoded as payload JSON."""
        return schedules.create(
            self, id, workflow_name, method_name, args, cron, timezone, overlap, tags
        )

    def get_schedule(self, id: str) -> ScheduleHandle:
        """A handle on the schedule with this id (`describe()` raises ScheduleNotFound if
        there is none)."""
        return ScheduleHandle(self, id)

    def pause_schedule(self, id: str) -> ScheduleInfo:
        """Stop firing (no-op if paused); raises ScheduleNotFound."""
        return schedules.request(self, id, ScheduleAction.PAUSE)

    def resume_schedule(self, id: str) -> ScheduleInfo:
        """Fire again, from the first firing after now (no-op if active)."""
        return schedules.request(self, id, ScheduleAction.RESUME)

    def delete_schedule(self, id: str) -> None:
        """Remove the schedule (the workflows it started go on); raises ScheduleNotFound."""
        schedules.request(self, id, ScheduleAction.DELETE)

    def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule of the namespace, by id (one request to each engine partition)."""
        return schedules.list_all(self)

    def engine_running(self) -> bool | None:
        """Whether an engine consumes this namespace now (a member of its engine group);
        None when Kafka did not say within a few seconds."""
        self._engine_checked_at = time.monotonic()
        try:
            return self._admin.group_members(self.topics.engine_group, timeout=3.0) > 0
        except InfiniticError:
            return None

    def _warn_without_engine(self) -> None:
        """Warn when no engine would run what was sent; Kafka is asked at most every
        ENGINE_CHECK_S (`engine_running` calls count too)."""
        checked = self._engine_checked_at
        if checked is not None and time.monotonic() - checked < ENGINE_CHECK_S:
            return
        if self.engine_running() is False:
            logger.warning(
                "no engine consumes namespace %r (its group %s has no member): what this "
                "client sends waits until a Worker with engine=True runs for it",
                self.topics.namespace,
                self.topics.engine_group,
            )

    def _no_engine_hint(self) -> str:
        running = self.engine_running()
        if running is False:
            return (
                f" No engine consumes namespace {self.topics.namespace!r}: start a Worker "
                "with engine=True (or `infinitic-streams engine`) for it."
            )
        if running is None:
            return " (Kafka did not say whether an engine runs.)"
        return ""

    # -- plumbing used by handles --------------------------------------------------------------

    def _send(
        self, key: str, message: Message, topic: str | None = None, partition: int = -1
    ) -> None:
        """Send to the engine (its topic, or `topic`), keyed by `key` (or to `partition`);
        return once Kafka has it (idempotent: the engine dedups)."""
        self._send_all(topic or self.topics.engine, [(key, message, partition)])

    def _partitions_of(self, topic: str) -> int:
        """How many partitions `topic` has (asked of Kafka)."""
        return self._admin.topic_partitions((topic,))[topic]

    def _send_all(self, topic: str, messages: list[tuple[str, Message, int]]) -> None:
        """Send (key, message, partition) messages to `topic` at once; return once Kafka has
        them all."""
        self._replies.check()
        now = int(time.time() * 1000)
        records = [
            (key.encode(), encode(_envelope(message, now)), partition)
            for key, message, partition in messages
        ]
        for delivery in self._producer.send_all(topic, records, SEND_TIMEOUT_S):
            if delivery.error is not None:
                kind = type(messages[0][1]).__name__
                raise KafkaRequestError(
                    f"Kafka did not take the {kind} to {topic}: {delivery.error}"
                )

    def _ask(self, workflow_id: str, kind: QueryKind) -> Future[QueryReply]:
        """Send a query; the future gets the engine's QueryReply (none comes for a RESULT query
        on an existing workflow: a WorkflowResult comes when it ends)."""
        request_id = uuid.uuid4().hex
        future = self._replies.expect(request_id)
        query = QueryWorkflow(
            request_id=request_id, workflow_id=workflow_id, query=kind, reply_to=self.reply_to
        )
        self._send(workflow_id, query)
        return future

    def _request(
        self, key: str, message: Message, request_id: str, topic: str | None = None
    ) -> QueryReply:
        """Send a request that the engine answers with a QueryReply; wait for the answer."""
        future = self._replies.expect(request_id)
        self._send(key, message, topic)
        return self._answer(future, f"{type(message).__name__} {key}")

    def _query(self, workflow_id: str, kind: QueryKind) -> QueryReply:
        reply = self._answer(self._ask(workflow_id, kind), f"workflow {workflow_id}")
        if not reply.found:
            raise WorkflowNotFound(workflow_id)
        return reply

    def _answer(self, future: Future[QueryReply], about: str) -> QueryReply:
        try:
            return future.result(QUERY_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"no answer about {about} within {QUERY_TIMEOUT_S:.0f} s." + self._no_engine_hint()
            ) from None


def _envelope(message: Message, now_ms: int) -> Envelope:
    return Envelope(message_id=str(uuid.uuid4()), sent_at_ms=now_ms, message=message)


def _defining_class(method: Callable[..., Any]) -> type:
    """`ImageWorkflow.run` -> ImageWorkflow (a plain function knows its qualified name)."""
    owner_name = getattr(method, "__qualname__", "").rpartition(".")[0]
    owner: Any = sys.modules.get(method.__module__) or importlib.import_module(method.__module__)
    for part in owner_name.split(".") if owner_name else []:
        owner = getattr(owner, part, None)
    if not isinstance(owner, type) or "<locals>" in owner_name:
        raise TypeError(
            f"dispatch() takes a method of a workflow class, like MyWorkflow.run; got {method!r}"
        )
    return owner
