"""How a workflow ends: COMPLETED (its method returned), FAILED (it raised, its code diverged,
or its `timeout` passed), or CANCELED. The end is recorded, then told to whoever waits: the
clients (`WorkflowResult`), the parent workflows (`ChildEnded`), the tag index (`TagUpdate`).
A canceled or timed-out workflow also stops its work: its timers are dropped, its running
tasks are told (`CancelTask`), its running children are canceled, recursively."""

from __future__ import annotations

import logging
import traceback as tb
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infinitic_streams.engine import children, events, outputs, schedules, storage, tags, timers
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import ErrorState, WorkflowState
from infinitic_streams.errors import TaskFailed, WorkflowCanceled, WorkflowTimedOut
from infinitic_streams.logs import one_line
from infinitic_streams.protocol import CancelTask, CancelWorkflow, WorkflowStatus
from infinitic_streams.streams import Context
from infinitic_streams.workflows.commands import Completed, Failed

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine

logger = logging.getLogger("infinitic_streams.engine")


@dataclass(frozen=True)
class Stopped:
    """The engine stops a workflow: canceled (it ends CANCELED), or past its timeout (FAILED
    with `WorkflowTimedOut`)."""

    error: WorkflowCanceled | WorkflowTimedOut


def end(
    engine: WorkflowEngine,
    ctx: Context,
    state: WorkflowState,
    outcome: Completed | Failed | Stopped,
    now: int,
) -> None:
    """Record the end, tell whoever waits, and start the retention timer."""
    if isinstance(outcome, Completed):
        state.status, state.result = WorkflowStatus.COMPLETED, outcome.result.decode()
    elif isinstance(outcome, Stopped):
        stopped = outcome.error
        canceled = isinstance(stopped, WorkflowCanceled)
        state.status = WorkflowStatus.CANCELED if canceled else WorkflowStatus.FAILED
        message = stopped.reason if isinstance(stopped, WorkflowCanceled) else stopped.error_message
        state.error = ErrorState(type(stopped).__name__, message)
        stop_work(engine, ctx, state, message)
    else:
        state.status, state.error = WorkflowStatus.FAILED, error_state(outcome.error)
        if isinstance(outcome.error, TaskFailed):
            state.failed_task = int(outcome.error.task_id.rsplit(":", 1)[1])
    state.signals_waiting, state.receiving = {}, []
    events.record(engine, ctx, state, s.Ended(now, state.status, state.result, state.error))
    _log_end(state)
    for reply_to in state.waiters:
        outputs.reply_result(engine, ctx, reply_to, state)
    state.waiters = []
    _tell_parents(engine, ctx, state)
    if state.schedule_id is not None:
        schedules.tell_schedule(engine, ctx, state.schedule_id, state.workflow_id, state.status)
        state.schedule_id = None
    tags.status_changed(engine, ctx, state)
    storage.save_state(ctx, state)
    engine.cache.drop(state.workflow_id)
    ctx.cancel_timer(timers.timer_key(timers.WORKFLOW_TIMEOUT, state.workflow_id))
    retention_due = now + int(engine.retention_s * 1000)
    ctx.schedule(timers.timer_key(timers.RETENTION, state.workflow_id), retention_due)


def stop_work(
    engine: WorkflowEngine,
    ctx: Context,
    state: WorkflowState,
    reason: str,
    history: list[s.HistoryEvent] | None = None,
    cancel_children: bool = True,
) -> None:
    """Drop the workflow's timers, tell the workers running its tasks, cancel its running
    children. Tasks stay known: a result that comes later is recorded (and ignored)."""
    workflow_id = state.workflow_id
    children: dict[int, str] = {}
    for event in storage.read_history(ctx, state) if history is None else history:
        match event:
            case s.TimerScheduled():
                ctx.cancel_timer(timers.timer_key(timers.WORKFLOW_TIMER, workflow_id, event.seq))
            case s.TaskScheduled():
                task = storage.load_task(ctx, workflow_id, event.seq)
                if task is None:
                    continue
                ctx.cancel_timer(timers.timer_key(timers.TASK_RETRY, workflow_id, task.seq))
                key = timers.timer_key(timers.TASK_TIMEOUT, workflow_id, task.seq, task.attempt)
                ctx.cancel_timer(key)
                cancel = CancelTask(
                    task_id=f"{workflow_id}:{task.seq}", workflow_id=workflow_id, reason=reason
                )
                outputs.emit(engine, ctx, engine.topics.tasks(task.service), workflow_id, cancel)
            case s.ChildStarted():
                children[event.seq] = event.child_id
            case s.ChildFinished():
                children.pop(event.seq, None)
    for child_id in dict.fromkeys(children.values()) if cancel_children else ():
        why = f"its parent {state.workflow_name} {workflow_id} ended: {reason}"
        cancel_child = CancelWorkflow(workflow_id=child_id, reason=why)
        outputs.emit(engine, ctx, engine.topics.engine, child_id, cancel_child)


def _tell_parents(engine: WorkflowEngine, ctx: Context, state: WorkflowState) -> None:
    """Each parent waiting for this workflow gets its end, once."""
    for parent in state.parents:
        children.tell_parent(engine, ctx, state, parent)
    state.parents = []


def _log_end(state: WorkflowState) -> None:
    """A failed or canceled workflow at INFO (with its error), a completed one at DEBUG."""
    fields = {"workflow_id": state.workflow_id, "workflow_name": state.workflow_name}
    if state.error is None:
        logger.debug("workflow %s %s completed", state.workflow_name, state.workflow_id)
        return
    logger.info(
        "workflow %s %s %s: %s: %s",
        state.workflow_name,
        state.workflow_id,
        state.status.lower(),
        state.error.type_name,
        one_line(state.error.message),
        extra={**fields, "error_type": state.error.type_name},
    )


def error_state(error: BaseException) -> ErrorState:
    if isinstance(error, TaskFailed):
        return ErrorState(type(error).__name__, str(error), error.traceback)
    trace = "".join(tb.format_exception(error))
    return ErrorState(type(error).__name__, str(error), trace)
