"""What the engine stores per workflow, and where.

Keys in the engine's state store (`id` is the workflow id):
- `w NUL id`              -> WorkflowState: small, rewritten at each step;
- `h NUL id NUL index`    -> one HistoryEvent, appended, never rewritten (index: big-endian);
- `t NUL id NUL seq`      -> TaskState of a task not finished yet (deleted when it finishes).
So one more step costs a few small writes, whatever the length of the history.

Values are JSON from the payload codec (dataclasses; a missing field takes its default), so
the state evolves like the messages do: new fields get defaults.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from infinitic_streams import payload
from infinitic_streams.definitions import RetryPolicy
from infinitic_streams.protocol import WorkflowStatus

_U32 = struct.Struct(">I")


@dataclass
class ErrorState:
    type_name: str
    message: str
    traceback: str = ""


@dataclass
class RetryState:
    max_attempts: int = 1
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.5

    @classmethod
    def of(cls, policy: RetryPolicy) -> RetryState:
        return cls(
            policy.max_attempts,
            policy.initial_delay,
            policy.backoff,
            policy.max_delay,
            policy.jitter,
        )

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.max_attempts, self.initial_delay, self.backoff, self.max_delay, self.jitter
        )


@dataclass
class WorkflowState:
    workflow_id: str
    workflow_name: str
    method: str  # its arguments are in the Started event: this record stays small
    tags: list[str]
    meta: dict[str, str]
    status: WorkflowStatus
    started_at_ms: int
    updated_at_ms: int
    history_size: int = 0
    result: str | None = None
    error: ErrorState | None = None
    failed_task: int | None = None  # seq of the task whose failure ended the workflow
    waiters: list[str] = field(default_factory=list)  # client topics waiting for the end


@dataclass
class TaskState:
    seq: int
    service: str
    method: str
    args: list[str]
    attempt: int
    retry: RetryState
    timeout: float | None
    tags: list[str]
    meta: dict[str, str]
    waiting_retry: bool = False  # between attempts: a retry timer is pending

    @classmethod
    def of(cls, scheduled: TaskScheduled, attempt: int) -> TaskState:
        return cls(
            scheduled.seq,
            scheduled.service,
            scheduled.method,
            scheduled.args,
            attempt,
            scheduled.retry,
            scheduled.timeout,
            scheduled.tags,
            scheduled.meta,
        )


# -- history ---------------------------------------------------------------------------------


@dataclass
class Started:
    at_ms: int
    method: str
    args: list[str]


@dataclass
class TaskScheduled:
    at_ms: int
    seq: int
    service: str
    method: str
    args: list[str]
    retry: RetryState
    timeout: float | None
    tags: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class TimerScheduled:
    at_ms: int
    seq: int
    due_ms: int


@dataclass
class InlineRecorded:
    at_ms: int
    seq: int
    name: str
    result: str


@dataclass
class CallRefused:
    """A call of workflow code refused for its payload size (see `RefusedCommand`)."""

    at_ms: int
    seq: int
    step: str
    what: str
    size: int
    limit: int


@dataclass
class AttemptFailed:
    at_ms: int
    seq: int
    attempt: int
    error: ErrorState
    retry_in: float | None  # seconds until the next attempt, None when it gave up


@dataclass
class TaskSucceeded:
    at_ms: int
    seq: int
    attempt: int
    result: str


@dataclass
class TaskGaveUp:
    at_ms: int
    seq: int
    attempts: int
    error: ErrorState
    timed_out: bool = False


@dataclass
class TimerFired:
    at_ms: int
    seq: int


@dataclass
class Ended:
    at_ms: int
    status: WorkflowStatus
    result: str | None = None
    error: ErrorState | None = None


@dataclass
class Retried:
    at_ms: int
    tasks: list[int]  # tasks whose final failure is voided and which run again


HistoryEvent = (
    Started
    | TaskScheduled
    | TimerScheduled
    | InlineRecorded
    | CallRefused
    | AttemptFailed
    | TaskSucceeded
    | TaskGaveUp
    | TimerFired
    | Ended
    | Retried
)


# Workflows in these statuses keep recording facts (task results, attempt failures and
# timeouts, timers fired); their code runs only while RUNNING. A COMPLETED one records nothing.
RECORDING = (WorkflowStatus.RUNNING, WorkflowStatus.FAILED)


class Facts(NamedTuple):
    """What happened to a workflow, to be recorded in its history in this order."""

    state: WorkflowState
    events: list[HistoryEvent]


@dataclass
class Description:
    """The engine's answer to DESCRIBE: the state, and what the workflow waits for."""

    state: WorkflowState
    pending: list[str]
    args: list[str] = field(default_factory=list)  # JSON of the start arguments


def state_key(workflow_id: str) -> bytes:
    return b"w\x00" + workflow_id.encode()


def history_key(workflow_id: str, index: int) -> bytes:
    return b"h\x00" + workflow_id.encode() + b"\x00" + _U32.pack(index)


def task_key(workflow_id: str, seq: int) -> bytes:
    return b"t\x00" + workflow_id.encode() + b"\x00" + _U32.pack(seq)


def dump(value: object, hint: object) -> bytes:
    return payload.encode(value, hint, path=getattr(hint, "__name__", "state"))


def load(data: bytes, hint: object) -> object:
    return payload.decode(data, hint, path=getattr(hint, "__name__", "state"))
