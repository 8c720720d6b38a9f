"""What workflow code asks the engine to do, and how the engine answers.

Each command gets the next sequence number of its workflow instance. Replaying the same
history with the same code issues the same commands in the same order, so the number and the
`step` description identify a command across replays; a different step at the same number means
the code changed (`NonDeterministicWorkflow`).
"""

from __future__ import annotations

from dataclasses import dataclass

from infinitic_streams.definitions import RetryPolicy
from infinitic_streams.errors import PayloadTooLarge


@dataclass(frozen=True)
class TaskCommand:
    seq: int
    service: str
    method: str
    args: tuple[bytes, ...]  # payload-encoded arguments
    tags: tuple[str, ...]
    meta: dict[str, str]
    retry: RetryPolicy
    timeout: float | None

    @property
    def step(self) -> str:
        return f"task {self.service}.{self.method}"


@dataclass(frozen=True)
class TimerCommand:
    seq: int
    due_ms: int

    @property
    def step(self) -> str:
        return "timer"


@dataclass(frozen=True)
class InlineCommand:
    """Non-deterministic code run once; its encoded result is recorded and replayed."""

    seq: int
    name: str
    result: bytes

    @property
    def step(self) -> str:
        return f"inline {self.name}"


@dataclass(frozen=True)
class RefusedCommand:
    """A call that workflow code made with a payload over the limit (a task's arguments, an
    inline result): nothing runs and the call raises `PayloadTooLarge` in workflow code.

    It is recorded like any command, so a replay decides the call by its record, not by the
    limit configured then: a call refused once is refused on every replay, a call accepted once
    is accepted on every replay (engines with different limits replay the same history alike).
    """

    seq: int
    step: str  # the step refused, e.g. "task ImageUtil.resize" or "inline pick"
    what: str
    size: int
    limit: int

    def error(self) -> PayloadTooLarge:
        return PayloadTooLarge(self.what, self.size, self.limit)


@dataclass(frozen=True)
class ReceiveCommand:
    """Workflow code waits for signals of a channel (`channel.receive()`)."""

    seq: int
    channel: str
    limit: int | None

    @property
    def step(self) -> str:
        return f"receive {self.channel}"


@dataclass(frozen=True)
class ChildCommand:
    """Workflow code starts a child workflow (or joins the one with `child_id`)."""

    seq: int
    workflow_name: str
    method: str
    args: tuple[bytes, ...]
    child_id: str
    tags: tuple[str, ...]

    @property
    def step(self) -> str:
        return f"workflow {self.workflow_name}.{self.method}"


@dataclass(frozen=True)
class SignalCommand:
    """Workflow code sends `value` to a channel of another workflow."""

    seq: int
    workflow_id: str
    workflow_name: str
    channel: str
    value: bytes

    @property
    def step(self) -> str:
        return f"signal {self.workflow_name}.{self.channel}"


@dataclass(frozen=True)
class CancelCommand:
    """Workflow code cancels another workflow."""

    seq: int
    workflow_id: str
    workflow_name: str

    @property
    def step(self) -> str:
        return f"cancel {self.workflow_name}"


@dataclass(frozen=True)
class PatchCommand:
    """Workflow code took the new path of a change (`self.patched(change_id)` was True when
    first reached): a marker, so that replays take the same path."""

    seq: int
    change_id: str

    @property
    def step(self) -> str:
        return f"patch {self.change_id}"


Command = (
    TaskCommand
    | TimerCommand
    | InlineCommand
    | RefusedCommand
    | ReceiveCommand
    | ChildCommand
    | SignalCommand
    | CancelCommand
    | PatchCommand
)


@dataclass(frozen=True)
class Completed:
    """The workflow method returned; `result` is its payload-encoded value."""

    result: bytes


@dataclass(frozen=True)
class Failed:
    """The workflow method raised (or its history diverged from its code)."""

    error: BaseException


@dataclass(frozen=True)
class ContinuedAsNew:
    """The method called `self.continue_as_new(*args)`: this run ends, a new run of the same
    workflow (id, method, tags, meta) starts with `args` (payload-encoded) and a fresh
    history."""

    args: tuple[bytes, ...]


Outcome = Completed | Failed | ContinuedAsNew


@dataclass(frozen=True)
class Step:
    """What one event caused: the commands newly issued, and the outcome if it ended."""

    commands: list[Command]
    outcome: Outcome | None = None
