"""Running workflow code: facts recorded, the code resumed, the commands of its step carried
out, and the end of a workflow.

The rule for facts (task results, final failures, timers fired; see `tasks.py`, `timers.py`):
- RUNNING: the live instance is taken from the cache or rebuilt by a replay *before* the fact
  joins the history; a replay that diverges ends the workflow FAILED (`NonDeterministicWorkflow`)
  and the fact is then recorded after that `Ended`; otherwise it is recorded and fed to the code.
- FAILED: the fact is recorded, no code runs. `retry()` replays the whole history, so the
  fixed code sees every fact, whenever it came.
- COMPLETED: nothing more is recorded.
The cache trusts an instance only at the exact history size it saw; appending events a replay
ignores (attempt failures) moves its mark along, anything else goes through `apply`.
"""

from __future__ import annotations

import logging
import traceback as tb
from typing import TYPE_CHECKING

from infinitic_streams.engine import outputs, replay, storage, tasks, timers
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import ErrorState, Facts, RetryState, TaskState, WorkflowState
from infinitic_streams.engine.timers import RETENTION, timer_key
from infinitic_streams.errors import TaskFailed
from infinitic_streams.logs import one_line
from infinitic_streams.protocol import WorkflowStatus
from infinitic_streams.streams import Context
from infinitic_streams.workflows.commands import (
    Command,
    Completed,
    Failed,
    InlineCommand,
    RefusedCommand,
    Step,
    TaskCommand,
    TimerCommand,
)
from infinitic_streams.workflows.execution import WorkflowExecution

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine

logger = logging.getLogger("infinitic_streams.engine")


def record(engine: WorkflowEngine, ctx: Context, facts: Facts, now: int) -> None:
    """Record `facts` in the history, in order, and resume the code of a RUNNING workflow
    with those it waits for (the rule above)."""
    state, events = facts
    if state.status != WorkflowStatus.RUNNING:
        _append_all(ctx, state, events)
        storage.save_state(ctx, state)
        return
    if not any(isinstance(event, replay.CODE_FACTS) for event in events):
        seen = state.history_size
        _append_all(ctx, state, events)
        engine.cache.advance(state.workflow_id, seen, state.history_size)
        storage.save_state(ctx, state)
        return
    execution = execution_of(engine, ctx, state, now)  # may end it: its code changed
    if state.status not in s.RECORDING:
        return  # the replay completed it (changed code that no longer waits)
    _append_all(ctx, state, events)
    applied = False
    for event in events:
        if state.status != WorkflowStatus.RUNNING:
            break
        step = replay.feed(state, execution, event)
        if step is not None:
            apply(engine, ctx, state, execution, step, now)
            applied = True
    if not applied:  # nothing it waited for: as a replay would, the instance skips the facts
        storage.save_state(ctx, state)
        if state.status == WorkflowStatus.RUNNING and execution.outcome is None:
            engine.cache.put(state.workflow_id, execution, state.history_size)


def execution_of(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, now: int
) -> WorkflowExecution:
    """The live instance of a RUNNING workflow, from the cache or rebuilt by a replay (whose
    new commands, or outcome, are carried out: a divergence ends the workflow here)."""
    cached = engine.cache.get(state.workflow_id, state.history_size)
    if cached is not None:
        return cached
    execution, step = replay.replay(engine, state, storage.read_history(ctx, state))
    if step.commands or step.outcome is not None:
        apply(engine, ctx, state, execution, step, now)
    return execution


def apply(
    engine: WorkflowEngine,
    ctx: Context,
    state: WorkflowState,
    execution: WorkflowExecution,
    step: Step,
    now: int,
) -> None:
    """Record and carry out the commands of a step; end the workflow if it ended."""
    for command in step.commands:
        _record_command(engine, ctx, state, command, now)
    if step.outcome is not None:
        end(engine, ctx, state, step.outcome, now)
        return
    storage.save_state(ctx, state)
    if execution.outcome is None:
        engine.cache.put(state.workflow_id, execution, state.history_size)


def end(
    engine: WorkflowEngine,
    ctx: Context,
    state: WorkflowState,
    outcome: Completed | Failed,
    now: int,
) -> None:
    """Record the end, tell the waiting clients, and start the retention timer."""
    if isinstance(outcome, Completed):
        state.status, state.result = WorkflowStatus.COMPLETED, outcome.result.decode()
    else:
        state.status, state.error = WorkflowStatus.FAILED, error_state(outcome.error)
        if isinstance(outcome.error, TaskFailed):
            state.failed_task = tasks.seq_of(outcome.error.task_id)
    storage.append(ctx, state, s.Ended(now, state.status, state.result, state.error))
    _log_end(state)
    for reply_to in state.waiters:
        outputs.reply_result(engine, ctx, reply_to, state)
    state.waiters = []
    storage.save_state(ctx, state)
    engine.cache.drop(state.workflow_id)
    retention_due = now + int(engine.retention_s * 1000)
    ctx.schedule(timer_key(RETENTION, state.workflow_id), retention_due)


def _log_end(state: WorkflowState) -> None:
    """A failed workflow at INFO (with its error), a completed one at DEBUG."""
    fields = {"workflow_id": state.workflow_id, "workflow_name": state.workflow_name}
    if state.error is None:
        logger.debug("workflow %s %s completed", state.workflow_name, state.workflow_id)
        return
    logger.info(
        "workflow %s %s failed: %s: %s",
        state.workflow_name,
        state.workflow_id,
        state.error.type_name,
        one_line(state.error.message),
        extra={**fields, "error_type": state.error.type_name},
    )


def error_state(error: BaseException) -> ErrorState:
    if isinstance(error, TaskFailed):
        return ErrorState(type(error).__name__, str(error), error.traceback)
    trace = "".join(tb.format_exception(error))
    return ErrorState(type(error).__name__, str(error), trace)


def _record_command(
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
            storage.append(ctx, state, event)
            tasks.send(engine, ctx, state, TaskState.of(event, attempt=1), now)
        case TimerCommand():
            storage.append(ctx, state, s.TimerScheduled(now, command.seq, command.due_ms))
            timers.schedule(ctx, state.workflow_id, command.seq, command.due_ms)
        case InlineCommand():
            event = s.InlineRecorded(now, command.seq, command.name, command.result.decode())
            storage.append(ctx, state, event)
        case RefusedCommand():
            refused = s.CallRefused(
                now, command.seq, command.step, command.what, command.size, command.limit
            )
            storage.append(ctx, state, refused)


def _append_all(ctx: Context, state: WorkflowState, events: list[s.HistoryEvent]) -> None:
    for event in events:
        storage.append(ctx, state, event)
