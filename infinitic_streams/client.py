"""`InfiniticClient`: dispatch workflows, wait for their results, inspect and retry them.

Answers come on the namespace's replies topic (`<ns>.replies`, several partitions): each client
reads one partition, picked at random, from its end, and keeps the records keyed by its own id.
The engine answers after its transaction commits; the client reads `read_committed` in a
background thread. Nothing is created or deleted per client, so a client that dies leaves
nothing behind.

Every request (dispatch, retry, a query) returns once Kafka has acknowledged it: through a
leader change it just takes longer; refused credentials raise `KafkaAuthError` at once.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infinitic_streams import payload
from infinitic_streams.config import InfiniticConfig
from infinitic_streams.definitions import public_method, workflow_spec
from infinitic_streams.engine import state as s
from infinitic_streams.errors import (
    InfiniticError,
    WorkflowCanceled,
    WorkflowFailed,
    WorkflowNotFound,
)
from infinitic_streams.kafka.admin import Admin
from infinitic_streams.kafka.consumer import Consumer, TopicPartition
from infinitic_streams.kafka.errors import KafkaRequestError
from infinitic_streams.kafka.producer import Producer
from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES
from infinitic_streams.protocol import (
    DispatchWorkflow,
    Envelope,
    EnvelopeDecodeError,
    Message,
    Payload,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    RetryWorkflow,
    WorkflowResult,
    WorkflowStatus,
    decode,
    encode,
)
from infinitic_streams.topics import REPLY_PARTITIONS, Topics

logger = logging.getLogger("infinitic_streams.client")
DEFAULT_PARTITIONS = 8
QUERY_TIMEOUT_S = 60.0
SEND_TIMEOUT_S = 60.0  # for Kafka to acknowledge a request
ENGINE_CHECK_S = 30.0  # how often a dispatch may check that an engine runs


@dataclass(frozen=True)
class WorkflowInfo:
    id: str
    name: str
    method: str
    status: WorkflowStatus
    result: Any  # the decoded return value when COMPLETED
    error: str | None  # "Type: message" when FAILED
    started_at: datetime
    updated_at: datetime
    pending: list[str]  # tasks and timers it waits for
    tags: tuple[str, ...] = ()
    args: tuple[Any, ...] = ()  # the start arguments as plain JSON values (large ones shortened)
    traceback: str = ""  # of the error, when FAILED


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
        self._admin = Admin(self.kafka)
        # Records keyed by workflow id reach the right partition whatever the engine topic's
        # count: a client need not know it (created with `partitions` only when missing).
        engine = dataclasses.replace(self.topics.engine_spec(), any_partitions=True)
        self._admin.ensure_topics([engine, self.topics.replies_spec()])
        self._engine_checked_at: float | None = None  # monotonic time of the last check
        self._producer = Producer(
            self.kafka, {"message.max.bytes": self.topics.max_message_bytes + 1024}
        )
        self._consumer = Consumer(
            self.kafka,
            f"{self.topics.replies}.{self.client_id}",  # never joined nor committed
            required={"isolation.level": "read_committed"},
        )
        self.reply_partition = random.randrange(REPLY_PARTITIONS)
        self.reply_to = f"{self.reply_partition}:{self.client_id}"
        replies = TopicPartition(self.topics.replies, self.reply_partition)
        # Start at the current end: every answer to this client comes after its first request.
        start = self._consumer.end_offset(replies)
        self._consumer.assign([TopicPartition(self.topics.replies, self.reply_partition, start)])
        self._results: dict[str, WorkflowResult] = {}
        self._queries: dict[str, Future[QueryReply]] = {}
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self._broken: InfiniticError | None = None  # what ended the listener, if anything
        self._key = self.client_id.encode()
        self._listener = threading.Thread(target=self._listen, name="infinitic client", daemon=True)
        self._listener.start()

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
        if self._closed.is_set():
            return
        self._closed.set()
        self._listener.join(5)
        self._producer.flush(10)
        self._consumer.close()

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

    def _send(self, workflow_id: str, message: Message) -> None:
        """Send to the engine; return once Kafka has it (idempotent: the engine dedups)."""
        self._check()
        envelope = Envelope(
            message_id=str(uuid.uuid4()), sent_at_ms=int(time.time() * 1000), message=message
        )
        topic = self.topics.engine
        delivery = self._producer.send(
            topic, workflow_id.encode(), encode(envelope), SEND_TIMEOUT_S
        )
        if delivery.error is not None:
            raise KafkaRequestError(
                f"Kafka did not take the {type(message).__name__} to {topic}: {delivery.error}"
            )

    def _check(self) -> None:
        if self._broken is not None:
            raise self._broken

    def _ask(self, workflow_id: str, kind: QueryKind) -> Future[QueryReply]:
        """Send a query; the future gets the engine's QueryReply (none comes for a RESULT query
        on an existing workflow: a WorkflowResult comes when it ends)."""
        request_id = uuid.uuid4().hex
        future: Future[QueryReply] = Future()
        self._queries[request_id] = future
        future.add_done_callback(lambda _: self._queries.pop(request_id, None))
        query = QueryWorkflow(
            request_id=request_id, workflow_id=workflow_id, query=kind, reply_to=self.reply_to
        )
        self._send(workflow_id, query)
        return future

    def _query(self, workflow_id: str, kind: QueryKind) -> QueryReply:
        future = self._ask(workflow_id, kind)
        try:
            reply = future.result(QUERY_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"no answer about workflow {workflow_id} within {QUERY_TIMEOUT_S:.0f} s."
                + self._no_engine_hint()
            ) from None
        if not reply.found:
            raise WorkflowNotFound(workflow_id)
        return reply

    def _wait_result(
        self, workflow_id: str, timeout: float | None, asked: Future[QueryReply] | None
    ) -> WorkflowResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                self._check()
                result = self._results.get(workflow_id)
                if result is not None and result.status != WorkflowStatus.RUNNING:
                    return result
                if asked is not None and asked.done() and not asked.result().found:
                    raise WorkflowNotFound(workflow_id)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(remaining if remaining is not None else 1.0)
        hint = self._no_engine_hint()  # outside the lock: it asks Kafka
        raise TimeoutError(f"workflow {workflow_id} did not end within {timeout:g} s.{hint}")

    def _forget_result(self, workflow_id: str) -> None:
        with self._changed:
            self._results.pop(workflow_id, None)

    def _listen(self) -> None:
        try:
            self._read_replies()
        except InfiniticError as error:  # refused credentials, a fatal client error
            logger.error("the client stopped reading answers: %s", error)
            self._broken = error
            for future in list(self._queries.values()):
                if not future.done():
                    future.set_exception(error)
            with self._changed:
                self._changed.notify_all()

    def _read_replies(self) -> None:
        while not self._closed.is_set():
            for record in self._consumer.consume(100, 0.1):
                if record.key() != self._key:
                    continue  # another client's answer
                try:
                    message = decode(record.value()).message
                except EnvelopeDecodeError:
                    continue
                if isinstance(message, WorkflowResult):
                    with self._changed:
                        self._results[message.workflow_id] = message
                        self._changed.notify_all()
                elif isinstance(message, QueryReply):
                    future = self._queries.get(message.request_id)
                    if future is not None and not future.done():
                        future.set_result(message)
                    with self._changed:
                        self._changed.notify_all()


class WorkflowHandle:
    """A workflow instance seen from a client."""

    def __init__(
        self,
        client: InfiniticClient,
        cls: type | None,
        workflow_id: str,
        method: str | None,
        waiting: bool,
    ) -> None:
        self._client, self._cls = client, cls
        self.id = workflow_id
        self._method = method
        self._waiting = waiting  # the engine will send us its result

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the end; return the result or raise WorkflowFailed / WorkflowCanceled
        (TimeoutError after `timeout` seconds)."""
        asked = None if self._waiting else self._client._ask(self.id, QueryKind.RESULT)
        self._waiting = True
        result = self._client._wait_result(self.id, timeout, asked)
        if result.status == WorkflowStatus.COMPLETED:
            assert result.result is not None
            return self._decode_result(result.result.data)
        error = result.error
        if result.status == WorkflowStatus.CANCELED:
            raise WorkflowCanceled(self.id, error.message if error else "")
        raise WorkflowFailed(
            self.id, error.type_name if error else "", error.message if error else ""
        )

    def describe(self) -> WorkflowInfo:
        reply = self._client._query(self.id, QueryKind.DESCRIBE)
        description: s.Description = s.load(reply.data, s.Description)  # type: ignore[assignment]
        state = description.state
        self._method = state.method
        result = None
        if state.result is not None:
            result = self._decode_result(state.result.encode())
        return WorkflowInfo(
            id=state.workflow_id,
            name=state.workflow_name,
            method=state.method,
            status=WorkflowStatus(state.status),
            result=result,
            error=f"{state.error.type_name}: {state.error.message}" if state.error else None,
            started_at=_datetime(state.started_at_ms),
            updated_at=_datetime(state.updated_at_ms),
            pending=description.pending,
            tags=tuple(state.tags),
            args=tuple(json.loads(a) for a in description.args),
            traceback=state.error.traceback if state.error else "",
        )

    def history(self) -> list[dict[str, Any]]:
        """The recorded events, oldest first: {"at": datetime, "event": name, ...fields}."""
        reply = self._client._query(self.id, QueryKind.HISTORY)
        events: list[s.HistoryEvent] = s.load(reply.data, list[s.HistoryEvent])  # type: ignore[assignment]
        return [_event_dict(event) for event in events]

    def retry(self) -> None:
        """Resume a FAILED workflow: its failed task runs again and its code is replayed with
        the code deployed now."""
        self._client._forget_result(self.id)
        self._client._send(self.id, RetryWorkflow(workflow_id=self.id))
        self._waiting = False  # the next result() asks for the new outcome

    def _decode_result(self, data: bytes) -> Any:
        if self._cls is None:
            return json.loads(data)
        if self._method is None:
            self.describe()
        assert self._method is not None
        hint = payload.hints_of(public_method(self._cls, self._method))[1]
        return payload.decode(data, hint, path="result")


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


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _event_dict(event: s.HistoryEvent) -> dict[str, Any]:
    fields = {k: v for k, v in vars(event).items() if k != "at_ms"}
    return {"at": _datetime(event.at_ms), "event": type(event).__name__, **fields}
