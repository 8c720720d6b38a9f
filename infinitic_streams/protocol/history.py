"""A workflow's history: the events the engine records, oldest first, and that a replay reads.

Stored by the engine (JSON through the payload codec: dataclasses, a missing field takes its
default, so events evolve like the messages do) and sent to clients that ask for a history.
A union member is tagged with its class name: never rename one. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from infinitic_streams.definitions import RetryPolicy
from infinitic_streams.protocol.messages import WorkflowStatus


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
class Started:
    at_ms: int
    method: str
    args: list[str]
    run: int = 1  # continue-as-new: the run this history is of (1 for the first)
    seq_base: int = 0  # ... and the number of the last command of the runs before it


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


@dataclass
class SignalReceived:
    """A signal recorded for the workflow, whether or not its code waits for one."""

    at_ms: int
    signal_id: str
    channel: str
    value: str
    sender: str | None = None  # the workflow that sent it, if one did


@dataclass
class ReceiveStarted:
    """Workflow code called `channel.receive()` (command `seq`)."""

    at_ms: int
    seq: int
    channel: str
    limit: int | None = None


@dataclass
class ChildStarted:
    """Workflow code started a child workflow (or joined one with the same id)."""

    at_ms: int
    seq: int
    child_id: str
    workflow_name: str
    method: str
    args: list[str]
    tags: list[str] = field(default_factory=list)


@dataclass
class ChildFinished:
    """A child workflow ended: COMPLETED with a result, FAILED or CANCELED with an error."""

    at_ms: int
    seq: int
    child_id: str
    status: WorkflowStatus
    result: str | None = None
    error: ErrorState | None = None


@dataclass
class SignalSent:
    """Workflow code sent a signal to another workflow (command `seq`)."""

    at_ms: int
    seq: int
    workflow_id: str
    workflow_name: str
    channel: str
    value: str


@dataclass
class CancelSent:
    """Workflow code canceled another workflow (command `seq`)."""

    at_ms: int
    seq: int
    workflow_id: str
    workflow_name: str


@dataclass
class PatchRecorded:
    """Workflow code reached `self.patched(change_id)` for the first time and took the new
    path (command `seq`): replays take it too."""

    at_ms: int
    seq: int
    change_id: str


@dataclass
class ContinuedAsNew:
    """The run ended by `continue_as_new(*args)`: the last event of a run (published, then
    deleted with the run's history); the next run starts with a `Started` of these args."""

    at_ms: int
    run: int  # the run that ends (1 for the first)
    args: list[str]


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
    | SignalReceived
    | ReceiveStarted
    | ChildStarted
    | ChildFinished
    | SignalSent
    | CancelSent
    | PatchRecorded
    | ContinuedAsNew
)
