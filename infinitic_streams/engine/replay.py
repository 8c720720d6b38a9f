"""Rebuilding a live workflow instance from its history, and handing facts to its code.

A replay creates the instance with every command the history records (so the code's commands
are matched against them, `NonDeterministicWorkflow` on a different step) and feeds it, in
history order, every fact its code waits for: wherever the fact sits in the history, before an
`Ended`, or after it (recorded while the workflow was FAILED). A `Retried` voids the final
failures (`TaskGaveUp`) recorded before it of the tasks it lists: those tasks ran again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import HistoryEvent, WorkflowState
from infinitic_streams.errors import InfiniticError, TaskFailed, TaskTimedOut
from infinitic_streams.workflows.commands import (
    Command,
    InlineCommand,
    RefusedCommand,
    Step,
    TaskCommand,
    TimerCommand,
)
from infinitic_streams.workflows.execution import WorkflowExecution

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine

# The facts that workflow code sees; a replay ignores every other event but the commands.
CODE_FACTS = (s.TaskSucceeded, s.TaskGaveUp, s.TimerFired)
RECORDED_COMMANDS = (s.TaskScheduled, s.TimerScheduled, s.InlineRecorded, s.CallRefused)


class UnknownWorkflow(InfiniticError):
    """The engine has no workflow class of this name (a dispatch is dead-lettered)."""


def new_execution(
    engine: WorkflowEngine, state: WorkflowState, recorded: dict[int, Command]
) -> WorkflowExecution:
    cls = engine.workflows.get(state.workflow_name)
    if cls is None:
        raise UnknownWorkflow(f"no workflow named {state.workflow_name!r} in this engine")
    return WorkflowExecution(
        cls,
        state.method,
        state.workflow_id,
        tuple(state.tags),
        state.meta,
        recorded,
        max_payload_bytes=engine.max_payload_bytes,
    )


def replay(
    engine: WorkflowEngine, state: WorkflowState, history: list[HistoryEvent]
) -> tuple[WorkflowExecution, Step]:
    """Rebuild the instance from the whole `history` with the code deployed now. Commands it
    issues beyond the recorded ones (code that changed, then was retried) and its outcome, if
    the replay ends it (a divergence, or fixed code that now finishes), come back in the step."""
    recorded = {e.seq: command_of(e) for e in history if isinstance(e, RECORDED_COMMANDS)}
    voided = voided_failures(history)
    execution = new_execution(engine, state, recorded)
    commands: list[Command] = []
    outcome = None
    for index, event in enumerate(history):
        step = None
        if isinstance(event, s.Started):
            step = execution.start(_data(event.args), event.at_ms)
        elif isinstance(event, CODE_FACTS) and index not in voided:
            step = feed(state, execution, event)
        if step is not None:
            commands += step.commands
            outcome = outcome or step.outcome
    end = execution.end_of_replay()
    return execution, Step(commands, outcome or end.outcome)


def feed(state: WorkflowState, execution: WorkflowExecution, event: HistoryEvent) -> Step | None:
    """Give the fact `event` to the code if it waits for it; None when it does not."""
    if not isinstance(event, CODE_FACTS) or not execution.waiting_for(event.seq):
        return None
    match event:
        case s.TaskSucceeded():
            return execution.task_completed(event.seq, event.result.encode(), event.at_ms)
        case s.TaskGaveUp():
            error = task_error(state, execution.task_waited_for(event.seq), event)
            return execution.task_failed(event.seq, error, event.at_ms)
        case s.TimerFired():
            return execution.timer_fired(event.seq, event.at_ms)
    return None


def voided_failures(history: list[HistoryEvent]) -> set[int]:
    """Indexes of the `TaskGaveUp` events that a later `Retried` voids."""
    gave_up: dict[int, list[int]] = {}  # seq -> indexes of its TaskGaveUp not voided yet
    voided: set[int] = set()
    for index, event in enumerate(history):
        if isinstance(event, s.TaskGaveUp):
            gave_up.setdefault(event.seq, []).append(index)
        elif isinstance(event, s.Retried):
            for seq in event.tasks:
                voided.update(gave_up.pop(seq, []))
    return voided


def task_error(state: WorkflowState, task: TaskCommand, gave_up: s.TaskGaveUp) -> TaskFailed:
    """The error workflow code gets for a task that gave up."""
    error_type = TaskTimedOut if gave_up.timed_out else TaskFailed
    return error_type(
        task.service,
        task.method,
        f"{state.workflow_id}:{gave_up.seq}",
        gave_up.attempts,
        gave_up.error.type_name,
        gave_up.error.message,
        gave_up.error.traceback,
    )


def command_of(
    event: s.TaskScheduled | s.TimerScheduled | s.InlineRecorded | s.CallRefused,
) -> Command:
    match event:
        case s.TaskScheduled():
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
        case s.TimerScheduled():
            return TimerCommand(event.seq, event.due_ms)
        case s.InlineRecorded():
            return InlineCommand(event.seq, event.name, event.result.encode())
        case s.CallRefused():
            return RefusedCommand(event.seq, event.step, event.what, event.size, event.limit)


def _data(args: list[str]) -> list[bytes]:
    return [a.encode() for a in args]
