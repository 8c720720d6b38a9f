"""A workflow's life: started by a dispatch, resumed by `retry()`, forgotten after retention.

`retry()` of a FAILED workflow voids the final failure (`TaskGaveUp`) of the task that failed
it and of every task that gave up while it was FAILED (a `Retried` event listing them), sends
those tasks again (next attempt), and replays the whole history with the code deployed now:
every fact recorded meanwhile (results, failures, timers fired, the fact whose replay revealed
a divergence) reaches the fixed code. Tasks still in flight carry on; their facts come later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams.engine import (
    cancel,
    children,
    endings,
    events,
    instances,
    outputs,
    queries,
    schedules,
    steps,
    storage,
    tags,
    tasks,
)
from infinitic_streams.engine import state as s
from infinitic_streams.engine.instances import UnknownWorkflow
from infinitic_streams.engine.state import HistoryEvent, TaskState, WorkflowState
from infinitic_streams.engine.timers import RETENTION, timer_key
from infinitic_streams.protocol import (
    DispatchWorkflow,
    ErrorInfo,
    RetryWorkflow,
    WorkflowResult,
    WorkflowStatus,
)
from infinitic_streams.streams import Context
from infinitic_streams.workflows.commands import Failed

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine


def dispatch(engine: WorkflowEngine, ctx: Context, message: DispatchWorkflow, now: int) -> None:
    state = storage.load_state(ctx, message.workflow_id)
    if state is not None:  # idempotent start: same id, same workflow (a parent joins it)
        if message.reply_to:
            queries.wait_for_end(engine, ctx, state, message.reply_to)
        if message.parent is not None:
            children.join(engine, ctx, state, message.parent)
        if message.schedule_id is not None:
            _join_schedule(engine, ctx, state, message.schedule_id)
        storage.save_state(ctx, state)
        return
    if message.workflow_name not in engine.workflows:
        refuse(engine, ctx, message)
        return
    args = [p.data.decode() for p in message.args]
    state = WorkflowState(
        message.workflow_id,
        message.workflow_name,
        message.method_name,
        list(message.tags),
        dict(message.meta),
        WorkflowStatus.RUNNING,
        now,
        now,
        waiters=[message.reply_to] if message.reply_to else [],
        parents=[children.parent_ref(message.parent)] if message.parent else [],
        schedule_id=message.schedule_id,
    )
    events.record(engine, ctx, state, s.Started(now, message.method_name, args))
    tags.status_changed(engine, ctx, state)
    cancel.schedule_timeout(engine, ctx, state, now)
    try:
        execution = instances.new_execution(engine, state, {})
    except TypeError as error:  # e.g. no such method
        endings.end(engine, ctx, state, Failed(error), now)
        return
    step = execution.start([a.encode() for a in args], now)
    steps.apply(engine, ctx, state, execution, step, now)


def _join_schedule(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, schedule_id: str
) -> None:
    """A schedule's firing found its id taken: it waits for that workflow (told now if it
    has ended). The caller saves the state."""
    if state.status != WorkflowStatus.RUNNING:
        schedules.tell_schedule(engine, ctx, schedule_id, state.workflow_id, state.status)
    elif state.schedule_id is None:
        state.schedule_id = schedule_id


def start_run(engine: WorkflowEngine, ctx: Context, workflow_id: str, now: int) -> None:
    """The new run of a workflow that continued as new runs its code (unless a fact came
    first and did), in a transaction after the one that ended the previous run."""
    state = storage.load_state(ctx, workflow_id)
    if state is not None and state.status == WorkflowStatus.RUNNING:
        steps.execution_of(engine, ctx, state, now)


def refuse(engine: WorkflowEngine, ctx: Context, message: DispatchWorkflow) -> None:
    """No such workflow here: dead-letter the dispatch (nothing is stored, so the same
    dispatch works once an engine runs the workflow) and tell the waiting client now."""
    reason = (
        f"no workflow named {message.workflow_name!r} in this engine (it runs: "
        f"{sorted(engine.workflows)}); deploy an engine with it and dispatch again"
    )
    ctx.dead_letter(reason)
    if message.parent is not None:
        children.refused(
            engine, ctx, message.parent, message.workflow_id, message.workflow_name, reason
        )
    if message.schedule_id is not None:  # the schedule must not wait for it
        schedules.tell_schedule(
            engine, ctx, message.schedule_id, message.workflow_id, WorkflowStatus.FAILED
        )
    if message.reply_to:
        error = ErrorInfo(type_name=UnknownWorkflow.__name__, message=reason, traceback="")
        result = WorkflowResult(
            workflow_id=message.workflow_id, status=WorkflowStatus.FAILED, error=error
        )
        outputs.reply(engine, ctx, message.reply_to, result)


def retry(engine: WorkflowEngine, ctx: Context, message: RetryWorkflow, now: int) -> None:
    """Resume a FAILED workflow (see the module's docstring)."""
    state = storage.load_state(ctx, message.workflow_id)
    if state is None or state.status != WorkflowStatus.FAILED:
        return
    history = storage.read_history(ctx, state)
    voided = tasks_to_retry(state, history)
    state.status, state.error, state.failed_task = WorkflowStatus.RUNNING, None, None
    retried = s.Retried(now, voided)
    events.record(engine, ctx, state, retried)
    history.append(retried)
    for seq in voided:
        scheduled = next(e for e in history if isinstance(e, s.TaskScheduled) and e.seq == seq)
        attempts = sum(1 for e in history if isinstance(e, s.AttemptFailed) and e.seq == seq)
        tasks.send(engine, ctx, state, TaskState.of(scheduled, attempt=attempts + 1), now)
    ctx.cancel_timer(timer_key(RETENTION, state.workflow_id))
    tags.status_changed(engine, ctx, state)
    engine.cache.drop(state.workflow_id)
    execution, step = instances.replay(engine, state, history)
    steps.apply(engine, ctx, state, execution, step, now)


def tasks_to_retry(state: WorkflowState, history: list[HistoryEvent]) -> list[int]:
    """The task that failed the workflow, and every task that gave up after its last end."""
    last_end = max(i for i, event in enumerate(history) if isinstance(event, s.Ended))
    seqs = {e.seq for e in history[last_end + 1 :] if isinstance(e, s.TaskGaveUp)}
    if state.failed_task is not None:
        seqs.add(state.failed_task)
    return sorted(seqs)


def forget(engine: WorkflowEngine, ctx: Context, workflow_id: str) -> None:
    """Retention is over: delete the workflow's state and history; it leaves its groups."""
    state = storage.load_state(ctx, workflow_id)
    if state is None or state.status == WorkflowStatus.RUNNING:
        return
    tags.status_changed(engine, ctx, state, forgotten=True)
    events.removed(engine, ctx, state, engine.now_ms())
    for index, event in enumerate(storage.read_history(ctx, state)):
        ctx.delete(s.history_key(workflow_id, index))
        if isinstance(event, s.TaskScheduled):
            ctx.delete(s.task_key(workflow_id, event.seq))
    ctx.delete(s.state_key(workflow_id))
