"""Questions clients ask about a workflow: its result (now or once it ends), its description
(state and pending work) and its history. Answers go out after the engine's commit."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from infinitic_streams.engine import outputs, storage
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import HistoryEvent, WorkflowState
from infinitic_streams.protocol import QueryKind, QueryReply, QueryWorkflow, WorkflowStatus
from infinitic_streams.protocol.replies import ChildInfo, WorkflowDescription
from infinitic_streams.streams import Context

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine

SHOWN_PAYLOAD_BYTES = 2048


def query(engine: WorkflowEngine, ctx: Context, message: QueryWorkflow) -> None:
    state = storage.load_state(ctx, message.workflow_id)
    if message.query == QueryKind.RESULT and state is not None:
        wait_for_end(engine, ctx, state, message.reply_to)
        storage.save_state(ctx, state)
        return
    data = b""
    if state is not None and message.query == QueryKind.DESCRIBE:
        data = s.dump(describe(state, storage.read_history(ctx, state)), WorkflowDescription)
    elif state is not None and message.query == QueryKind.HISTORY:
        history = [shortened(event) for event in storage.read_history(ctx, state)]
        data = s.dump(history, list[HistoryEvent])
    reply = QueryReply(
        request_id=message.request_id,
        workflow_id=message.workflow_id,
        found=state is not None,
        data=data,
    )
    outputs.reply(engine, ctx, message.reply_to, reply)


def wait_for_end(engine: WorkflowEngine, ctx: Context, state: WorkflowState, reply_to: str) -> None:
    """Answer `reply_to` with the outcome now, or when the workflow ends (the caller saves)."""
    if state.status == WorkflowStatus.RUNNING:
        if reply_to not in state.waiters:
            state.waiters.append(reply_to)
    else:
        outputs.reply_result(engine, ctx, reply_to, state)


def describe(state: WorkflowState, history: list[HistoryEvent]) -> WorkflowDescription:
    return WorkflowDescription(
        workflow_id=state.workflow_id,
        workflow_name=state.workflow_name,
        method=state.method,
        status=state.status,
        started_at_ms=state.started_at_ms,
        updated_at_ms=state.updated_at_ms,
        tags=state.tags,
        result=state.result,
        error=state.error,
        args=start_args(history),
        pending=pending(state, history),
        children=children_of(history),
        signals_waiting=state.signals_waiting,
        run=state.run,
        patches=[e.change_id for e in history if isinstance(e, s.PatchRecorded)],
    )


def pending(state: WorkflowState, history: list[HistoryEvent]) -> list[str]:
    """What a running workflow waits for: tasks, timers and children not finished yet
    (including those started before a failure and a `retry()`), and signals its receives wait
    for; nothing once it has ended."""
    if state.status != WorkflowStatus.RUNNING:
        return []
    names: dict[int, str] = {}
    waiting: dict[int, str] = {}
    for event in history:
        match event:
            case s.TaskScheduled():
                names[event.seq] = f"task {event.service}.{event.method} (step {event.seq})"
                waiting[event.seq] = names[event.seq]
            case s.TimerScheduled():
                waiting[event.seq] = f"timer due at {_iso(event.due_ms)} (step {event.seq})"
            case s.ChildStarted():
                waiting[event.seq] = (
                    f"workflow {event.workflow_name} {event.child_id} (step {event.seq})"
                )
            case s.TaskSucceeded() | s.TaskGaveUp() | s.TimerFired() | s.ChildFinished():
                waiting.pop(event.seq, None)
            case s.Retried():
                waiting.update((seq, names[seq]) for seq in event.tasks)
    return [waiting[seq] for seq in sorted(waiting)] + state.receiving


def children_of(history: list[HistoryEvent]) -> list[ChildInfo]:
    """The children a workflow started, in order, with their status as it knows it."""
    found: dict[int, ChildInfo] = {}
    for event in history:
        if isinstance(event, s.ChildStarted):
            found[event.seq] = ChildInfo(
                event.child_id, event.workflow_name, WorkflowStatus.RUNNING
            )
        elif isinstance(event, s.ChildFinished) and event.seq in found:
            found[event.seq].status = event.status
    return list(found.values())


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def start_args(history: list[HistoryEvent]) -> list[str]:
    """The arguments the workflow was started with (JSON, large ones shortened)."""
    for event in history[:1]:
        if isinstance(event, s.Started):
            return shortened(event).args  # type: ignore[attr-defined,no-any-return]
    return []


def shortened(event: HistoryEvent) -> HistoryEvent:
    """The event with its large payloads replaced by their size, so a history reply stays
    small whatever the workflow carried."""

    def short(text: str) -> str:
        return text if len(text) <= SHOWN_PAYLOAD_BYTES else f'"<{len(text)} bytes>"'

    changes: dict[str, Any] = {}
    if isinstance(event, s.Started | s.TaskScheduled):
        changes["args"] = [short(a) for a in event.args]
    if isinstance(event, s.TaskSucceeded | s.InlineRecorded) or (
        isinstance(event, s.Ended) and event.result is not None
    ):
        changes["result"] = short(event.result)  # type: ignore[arg-type]
    return dataclasses.replace(event, **changes) if changes else event
