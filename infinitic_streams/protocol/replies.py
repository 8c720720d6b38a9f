"""What the engine answers to a client's question (the `data` of a `QueryReply`): JSON through
the payload codec, so that a client decodes it without the engine's storage. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from infinitic_streams.protocol.history import ErrorState
from infinitic_streams.protocol.messages import WorkflowStatus


@dataclass
class ChildInfo:
    id: str
    name: str
    status: WorkflowStatus


@dataclass
class WorkflowDescription:
    """The answer to DESCRIBE."""

    workflow_id: str
    workflow_name: str
    method: str
    status: WorkflowStatus
    started_at_ms: int
    updated_at_ms: int
    tags: list[str] = field(default_factory=list)
    result: str | None = None  # JSON of the return value when COMPLETED
    error: ErrorState | None = None
    args: list[str] = field(default_factory=list)  # JSON of the start arguments (shortened)
    pending: list[str] = field(default_factory=list)  # what it waits for, one line each
    children: list[ChildInfo] = field(default_factory=list)
    signals_waiting: dict[str, int] = field(default_factory=dict)  # untaken signals by channel
    run: int = 1  # continue-as-new: the number of the current run
    patches: list[str] = field(default_factory=list)  # versioning: the patches this run took


@dataclass
class SignalAnswer:
    """The answer to a signal: recorded, or refused with the error the sender raises."""

    recorded: bool
    error_type: str = ""  # "WorkflowNotFound" or "InfiniticError" when refused
    message: str = ""


@dataclass
class CancelAnswer:
    """The answer to a cancel: True if it canceled the workflow, False if it had ended."""

    canceled: bool
    status: WorkflowStatus | None = None  # the status it has now (None: no such workflow)


@dataclass
class GroupAnswer:
    """The answer to a group request: how many workflows it reached (their ids for IDS)."""

    reached: int
    ids: list[str] = field(default_factory=list)
    error: str = ""  # why nothing was sent (a signal its workflows would refuse)


@dataclass
class WorkflowSummary:
    """One workflow as the visibility index keeps it (from its events)."""

    workflow_id: str
    workflow_name: str
    method: str
    status: WorkflowStatus
    started_at_ms: int
    updated_at_ms: int
    tags: list[str] = field(default_factory=list)
    ended_at_ms: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    parent_id: str | None = None

    @property
    def cursor(self) -> str:
        """Where a page that ends with this workflow stops: `<updated ms>:<id>`."""
        return f"{self.updated_at_ms}:{self.workflow_id}"


@dataclass
class ListAnswer:
    """The answer of one partition of the visibility index to ListWorkflows: its counts per
    status for the name and tag asked, and its first matching summaries, newest first."""

    counts: dict[str, int] = field(default_factory=dict)
    items: list[WorkflowSummary] = field(default_factory=list)


@dataclass
class ScheduleDescription:
    """A schedule as its engine keeps it (times in epoch ms)."""

    schedule_id: str
    workflow_name: str
    method: str
    cron: str
    timezone: str
    overlap: str
    paused: bool = False
    tags: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)  # JSON of each argument
    created_at_ms: int = 0
    next_fire_ms: int | None = None  # None while paused
    last_fire_ms: int | None = None
    last_workflow_id: str | None = None
    running: str | None = None  # the workflow of the last firing, while it runs
    fired: int = 0  # workflows started
    skipped: int = 0  # firings skipped (overlap="skip")


@dataclass
class ScheduleAnswer:
    """The answer to a ScheduleRequest: the schedule(s) concerned, or why it was refused."""

    schedules: list[ScheduleDescription] = field(default_factory=list)
    error: str = ""
