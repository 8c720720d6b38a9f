"""Python mirror of the Avro envelope schema (avro/envelope/vN.avsc, newest N).

Each record of the schema is a frozen, slotted dataclass whose field names and order equal the
Avro field names and order, and a field has a default exactly when the Avro field has one.
Arrays are tuples so messages stay immutable. Tests check that this module and the current schema
agree, so a schema change must be mirrored here.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias


class WorkflowStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """A user value: UTF-8 JSON bytes produced by the payload codec."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """An exception, described well enough to show and to match on its type."""

    type_name: str
    message: str
    traceback: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentWorkflow:
    """The workflow that started a child, and the step of its code waiting for it."""

    workflow_id: str
    workflow_name: str
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchWorkflow:
    """Start a new workflow instance."""

    workflow_id: str
    workflow_name: str
    method_name: str
    args: tuple[Payload, ...]
    tags: tuple[str, ...]
    meta: dict[str, str]
    reply_to: str | None = None
    parent: ParentWorkflow | None = None
    schedule_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecuteTask:
    """Ask a service worker to run one attempt of a task."""

    task_id: str
    service_name: str
    method_name: str
    args: tuple[Payload, ...]
    attempt: int
    timeout_seconds: float | None = None
    workflow_id: str
    workflow_name: str
    tags: tuple[str, ...]
    meta: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCompleted:
    """A task attempt succeeded."""

    task_id: str
    workflow_id: str
    attempt: int
    result: Payload


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed:
    """A task attempt raised an exception."""

    task_id: str
    workflow_id: str
    attempt: int
    error: ErrorInfo
    retryable: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class SendSignal:
    """Send a value to a channel of a running workflow."""

    workflow_id: str
    signal_id: str
    channel: str
    value: Payload
    reply_to: str | None = None
    sender: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelWorkflow:
    """Cancel a workflow instance."""

    workflow_id: str
    reason: str
    request_id: str | None = None
    reply_to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryWorkflow:
    """Resume a failed workflow instance from where it failed."""

    workflow_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowResult:
    """Sent by the engine to a waiting client when a workflow instance changes status."""

    workflow_id: str
    status: WorkflowStatus
    result: Payload | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A Kafka record that could not be processed, moved aside with its original bytes."""

    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None = None
    value: bytes | None = None


class QueryKind(StrEnum):
    RESULT = "RESULT"
    DESCRIBE = "DESCRIBE"
    HISTORY = "HISTORY"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryWorkflow:
    """A client asks the engine about a workflow instance; the answer goes to `reply_to`."""

    request_id: str
    workflow_id: str
    query: QueryKind
    reply_to: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryReply:
    """The engine's answer to a QueryWorkflow: UTF-8 JSON in `data`."""

    request_id: str
    workflow_id: str
    found: bool
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildEnded:
    """A child workflow ended: sent to its parent, exactly once."""

    workflow_id: str  # the parent's
    seq: int
    child_id: str
    child_name: str
    status: WorkflowStatus
    result: Payload | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTask:
    """The workflow of a task was canceled: tells the service worker running it."""

    task_id: str
    workflow_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TagUpdate:
    """A tagged workflow started, changed status, or was forgotten (`status` None)."""

    tag: str
    workflow_name: str
    workflow_id: str
    status: WorkflowStatus | None = None
    updated_at_ms: int


class GroupAction(StrEnum):
    IDS = "IDS"
    SIGNAL = "SIGNAL"
    CANCEL = "CANCEL"
    RETRY = "RETRY"


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRequest:
    """Act on every workflow of a name carrying a tag; the answer says how many it reached."""

    request_id: str
    tag: str
    workflow_name: str
    action: GroupAction
    channel: str | None = None
    value: Payload | None = None
    reply_to: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListWorkflows:
    """Ask one partition of the visibility index for the workflows matching a filter, newest
    updated first; the answer is a QueryReply (JSON: counts per status, up to `limit` items)."""

    request_id: str
    reply_to: str
    workflow_name: str | None = None
    status: str | None = None
    tag: str | None = None
    limit: int
    after: str | None = None


class ScheduleAction(StrEnum):
    CREATE = "CREATE"
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    DELETE = "DELETE"
    DESCRIBE = "DESCRIBE"
    LIST = "LIST"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleDefinition:
    """A schedule: the workflow method it starts, with which arguments, and when."""

    workflow_name: str
    method_name: str
    args: tuple[Payload, ...]
    tags: tuple[str, ...]
    cron: str
    timezone: str
    overlap: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRequest:
    """Create, pause, resume, delete or describe a schedule (keyed by its id), or list the
    schedules of one engine partition (LIST); the answer is a QueryReply (JSON)."""

    request_id: str
    schedule_id: str
    action: ScheduleAction
    reply_to: str
    definition: ScheduleDefinition | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledWorkflowEnded:
    """A workflow started by a schedule ended: sent to the schedule, exactly once."""

    schedule_id: str
    workflow_id: str
    status: WorkflowStatus


Message: TypeAlias = (
    DispatchWorkflow
    | ExecuteTask
    | TaskCompleted
    | TaskFailed
    | SendSignal
    | CancelWorkflow
    | RetryWorkflow
    | WorkflowResult
    | DeadLetter
    | QueryWorkflow
    | QueryReply
    | ChildEnded
    | CancelTask
    | TagUpdate
    | GroupRequest
    | ListWorkflows
    | ScheduleRequest
    | ScheduledWorkflowEnded
)

# In the order of the Avro union (a new kind is appended in both places).
MESSAGE_TYPES: tuple[type[Message], ...] = (
    DispatchWorkflow,
    ExecuteTask,
    TaskCompleted,
    TaskFailed,
    SendSignal,
    CancelWorkflow,
    RetryWorkflow,
    WorkflowResult,
    DeadLetter,
    QueryWorkflow,
    QueryReply,
    ChildEnded,
    CancelTask,
    TagUpdate,
    GroupRequest,
    ListWorkflows,
    ScheduleRequest,
    ScheduledWorkflowEnded,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """What travels on Kafka: a message plus its id and send time."""

    message_id: str
    sent_at_ms: int
    message: Message


_ID_PREFIX = uuid.uuid4().hex[:20]  # random per process
_ID_COUNTER = itertools.count()


def new_message_id() -> str:
    """A message id unique across processes: a random per-process prefix and a counter (a
    uuid4 per message drew from the OS's random source on each engine step)."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"
