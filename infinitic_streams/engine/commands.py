"""Carrying out what workflow code asked for: each command is recorded in the history, and
what it starts is emitted in the engine's transaction (exactly once): a task attempt, a durable
timer, a child workflow, a signal or a cancel sent to another workflow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams.engine import events, outputs, tasks, timers
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import RetryState, TaskState, WorkflowState
from infinitic_streams.protocol import (
    CancelWorkflow,
    DispatchWorkflow,
    ParentWorkflow,
    Payload,
    SendSignal,
)
from infinitic_streams.streams import Context
from infinitic_streams.workflows.commands import (
    CancelCommand,
    ChildCommand,
    Command,
    InlineCommand,
    PatchCommand,
    ReceiveCommand,
    RefusedCommand,
    SignalCommand,
    TaskCommand,
    TimerCommand,
)

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine


def carry_out(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, command: Command, now: int
) -> None:
    match command:
        case TaskCommand():
            event = s.TaskScheduled(
                now,
                command.seq,
                command.service,
                command.method,
                [a.decode() for a in command.args],
                RetryState.of(command.retry),
                command.timeout,
                list(command.tags),
                dict(command.meta),
            )
            events.record(engine, ctx, state, event)
            tasks.send(engine, ctx, state, TaskState.of(event, attempt=1), now)
        case TimerCommand():
            events.record(engine, ctx, state, s.TimerScheduled(now, command.seq, command.due_ms))
            timers.schedule(ctx, state.workflow_id, command.seq, command.due_ms)
        case InlineCommand():
            event = s.InlineRecorded(now, command.seq, command.name, command.result.decode())
            events.record(engine, ctx, state, event)
        case RefusedCommand():
            refused = s.CallRefused(
                now, command.seq, command.step, command.what, command.size, command.limit
            )
            events.record(engine, ctx, state, refused)
        case ReceiveCommand():
            received = s.ReceiveStarted(now, command.seq, command.channel, command.limit)
            events.record(engine, ctx, state, received)
        case PatchCommand():
            events.record(engine, ctx, state, s.PatchRecorded(now, command.seq, command.change_id))
        case ChildCommand():
            _start_child(engine, ctx, state, command, now)
        case SignalCommand():
            value = command.value.decode()
            sent = s.SignalSent(
                now, command.seq, command.workflow_id, command.workflow_name, command.channel, value
            )
            events.record(engine, ctx, state, sent)
            signal = SendSignal(
                workflow_id=command.workflow_id,
                signal_id=f"{state.workflow_id}:{command.seq}",
                channel=command.channel,
                value=Payload(data=command.value),
                sender=state.workflow_id,
            )
            outputs.emit(engine, ctx, engine.topics.engine, command.workflow_id, signal)
        case CancelCommand():
            event = s.CancelSent(now, command.seq, command.workflow_id, command.workflow_name)
            events.record(engine, ctx, state, event)
            reason = f"canceled by workflow {state.workflow_name} {state.workflow_id}"
            cancel = CancelWorkflow(workflow_id=command.workflow_id, reason=reason)
            outputs.emit(engine, ctx, engine.topics.engine, command.workflow_id, cancel)


def _start_child(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, command: ChildCommand, now: int
) -> None:
    """Record the child and dispatch it; its engine answers with `ChildEnded` when it ends (a
    child with an existing id is joined: the same answer comes when that one ends)."""
    args = [a.decode() for a in command.args]
    started = s.ChildStarted(
        now,
        command.seq,
        command.child_id,
        command.workflow_name,
        command.method,
        args,
        list(command.tags),
    )
    events.record(engine, ctx, state, started)
    dispatch = DispatchWorkflow(
        workflow_id=command.child_id,
        workflow_name=command.workflow_name,
        method_name=command.method,
        args=tuple(Payload(data=a) for a in command.args),
        tags=command.tags,
        meta={},
        parent=ParentWorkflow(
            workflow_id=state.workflow_id, workflow_name=state.workflow_name, seq=command.seq
        ),
    )
    outputs.emit(engine, ctx, engine.topics.engine, command.child_id, dispatch)
