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
from infinitic_streams.protocol import WorkflowStatus
from infinitic_streams.protocol.history import (  # noqa: F401 - the engine's view of history
    AttemptFailed,
    CallRefused,
    CancelSent,
    ChildFinished,
    ChildStarted,
    ContinuedAsNew,
    Ended,
    ErrorState,
    HistoryEvent,
    InlineRecorded,
    PatchRecorded,
    ReceiveStarted,
    Retried,
    RetryState,
    SignalReceived,
    SignalSent,
    Started,
    TaskGaveUp,
    TaskScheduled,
    TaskSucceeded,
    TimerFired,
    TimerScheduled,
)

_U32 = struct.Struct(">I")


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
    parents: list[ParentRef] = field(default_factory=list)  # parent workflows waiting for it
    # What its code holds, saved at each step (for describe and the signal bound): untaken
    # signals per channel, and the receives waiting for a signal.
    signals_waiting: dict[str, int] = field(default_factory=dict)
    receiving: list[str] = field(default_factory=list)
    schedule_id: str | None = None  # the schedule that started it: told when it ends
    # Continue-as-new: the run's number (1 for the first), and the last command number of the
    # runs before it (this run numbers its commands after it, so task ids, timer keys and
    # default child ids of two runs never meet).
    run: int = 1
    seq_base: int = 0


@dataclass
class ParentRef:
    """A parent workflow waiting for this one: its id, name and the step that waits."""

    workflow_id: str
    workflow_name: str
    seq: int


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


# Workflows in these statuses keep recording facts (task results, attempt failures and
# timeouts, timers fired, children that ended); their code runs only while RUNNING. A
# COMPLETED one records nothing more.
RECORDING = (WorkflowStatus.RUNNING, WorkflowStatus.FAILED, WorkflowStatus.CANCELED)


class Facts(NamedTuple):
    """What happened to a workflow, to be recorded in its history in this order."""

    state: WorkflowState
    events: list[HistoryEvent]


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
