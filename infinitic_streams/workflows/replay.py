"""Rebuilding a live workflow instance from its history, and handing facts to its code. Pure:
the engine uses it on every cache miss; a test kit can use it the same way.

A replay creates the instance with every command the history records (so the code's commands
are matched against them, `NonDeterministicWorkflow` on a different step) and feeds it, in
history order, every fact its code may see: wherever the fact sits in the history, before an
`Ended`, or after it (recorded while the workflow was FAILED). A `Retried` voids the final
failures (`TaskGaveUp`) recorded before it of the tasks it lists: those tasks ran again.
Signals are fed whether or not the code waits for one: untaken, they wait for a `receive()`.
"""

from __future__ import annotations

from collections.abc import Callable

from infinitic_streams.errors import (
    TaskFailed,
    TaskTimedOut,
    WorkflowCanceled,
    WorkflowFailed,
    WorkflowTimedOut,
)
from infinitic_streams.protocol import WorkflowStatus
from infinitic_streams.protocol import history as h
from infinitic_streams.workflows.commands import (
    CancelCommand,
    ChildCommand,
    Command,
    Completed,
    Failed,
    InlineCommand,
    PatchCommand,
    ReceiveCommand,
    RefusedCommand,
    SignalCommand,
    Step,
    TaskCommand,
    TimerCommand,
)
from infinitic_streams.workflows.execution import WorkflowExecution

# The facts that workflow code sees; a replay ignores every other event but the commands.
CODE_FACTS = (h.TaskSucceeded, h.TaskGaveUp, h.TimerFired, h.SignalReceived, h.ChildFinished)
RECORDED_COMMANDS = (
    h.TaskScheduled,
    h.TimerScheduled,
    h.InlineRecorded,
    h.CallRefused,
    h.ReceiveStarted,
    h.ChildStarted,
    h.SignalSent,
    h.CancelSent,
    h.PatchRecorded,
)
RecordedCommand = (
    h.TaskScheduled
    | h.TimerScheduled
    | h.InlineRecorded
    | h.CallRefused
    | h.ReceiveStarted
    | h.ChildStarted
    | h.SignalSent
    | h.CancelSent
    | h.PatchRecorded
)
NewExecution = Callable[[dict[int, Command]], WorkflowExecution]


def replay(
    new_execution: NewExecution, history: list[h.HistoryEvent]
) -> tuple[WorkflowExecution, Step]:
    """Rebuild the instance from the whole `history` with the code deployed now
    (`new_execution` makes one with the recorded commands). Commands it issues beyond the
    recorded ones (code that changed, then was retried) and its outcome, if the replay ends it
    (a divergence, or fixed code that now finishes), come back in the step."""
    recorded = {e.seq: command_of(e) for e in history if isinstance(e, RECORDED_COMMANDS)}
    voided = voided_failures(history)
    execution = new_execution(recorded)
    commands: list[Command] = []
    outcome = None
    for index, event in enumerate(history):
        step = None
        if isinstance(event, h.Started):
            step = execution.start([a.encode() for a in event.args], event.at_ms)
        elif isinstance(event, CODE_FACTS) and index not in voided:
            step = feed(execution, event)
        if step is not None:
            commands += step.commands
            outcome = outcome or step.outcome
    end = execution.end_of_replay()
    return execution, Step(commands, outcome or end.outcome)


def feed(execution: WorkflowExecution, event: h.HistoryEvent) -> Step | None:
    """Give the fact `event` to the code if it may see it; None when it does not."""
    if isinstance(event, h.SignalReceived):
        return execution.signal_received(event.channel, event.value.encode(), event.at_ms)
    if not isinstance(event, CODE_FACTS) or not execution.waiting_for(event.seq):
        return None
    match event:
        case h.TaskSucceeded():
            return execution.task_completed(event.seq, event.result.encode(), event.at_ms)
        case h.TaskGaveUp():
            error = task_error(execution, execution.task_waited_for(event.seq), event)
            return execution.task_failed(event.seq, error, event.at_ms)
        case h.TimerFired():
            return execution.timer_fired(event.seq, event.at_ms)
        case h.ChildFinished():
            return execution.child_ended(
                event.seq, event.child_id, child_outcome(event), event.at_ms
            )
    return None


def child_outcome(event: h.ChildFinished) -> Completed | Failed:
    """What the parent's code gets for a child that ended."""
    if event.status == WorkflowStatus.COMPLETED:
        return Completed((event.result or "null").encode())
    error = event.error or h.ErrorState("", "")
    if event.status == WorkflowStatus.CANCELED:
        return Failed(WorkflowCanceled(event.child_id, error.message))
    kind = WorkflowTimedOut if error.type_name == WorkflowTimedOut.__name__ else WorkflowFailed
    return Failed(kind(event.child_id, error.type_name, error.message))


def voided_failures(history: list[h.HistoryEvent]) -> set[int]:
    """Indexes of the `TaskGaveUp` events that a later `Retried` voids."""
    gave_up: dict[int, list[int]] = {}  # seq -> indexes of its TaskGaveUp not voided yet
    voided: set[int] = set()
    for index, event in enumerate(history):
        if isinstance(event, h.TaskGaveUp):
            gave_up.setdefault(event.seq, []).append(index)
        elif isinstance(event, h.Retried):
            for seq in event.tasks:
                voided.update(gave_up.pop(seq, []))
    return voided


def task_error(
    execution: WorkflowExecution, task: TaskCommand, gave_up: h.TaskGaveUp
) -> TaskFailed:
    """The error workflow code gets for a task that gave up."""
    error_type = TaskTimedOut if gave_up.timed_out else TaskFailed
    return error_type(
        task.service,
        task.method,
        f"{execution.workflow_id}:{gave_up.seq}",
        gave_up.attempts,
        gave_up.error.type_name,
        gave_up.error.message,
        gave_up.error.traceback,
    )


def command_of(event: RecordedCommand) -> Command:
    match event:
        case h.TaskScheduled():
            return TaskCommand(
                event.seq,
                event.service,
                event.method,
                tuple(a.encode() for a in event.args),
                tuple(event.tags),
                event.meta,
                event.retry.policy(),
                event.timeout,
            )
        case h.TimerScheduled():
            return TimerCommand(event.seq, event.due_ms)
        case h.InlineRecorded():
            return InlineCommand(event.seq, event.name, event.result.encode())
        case h.CallRefused():
            return RefusedCommand(event.seq, event.step, event.what, event.size, event.limit)
        case h.ReceiveStarted():
            return ReceiveCommand(event.seq, event.channel, event.limit)
        case h.ChildStarted():
            args = tuple(a.encode() for a in event.args)
            tags = tuple(event.tags)
            return ChildCommand(
                event.seq, event.workflow_name, event.method, args, event.child_id, tags
            )
        case h.SignalSent():
            value = event.value.encode()
            return SignalCommand(
                event.seq, event.workflow_id, event.workflow_name, event.channel, value
            )
        case h.CancelSent():
            return CancelCommand(event.seq, event.workflow_id, event.workflow_name)
        case h.PatchRecorded():
            return PatchCommand(event.seq, event.change_id)
