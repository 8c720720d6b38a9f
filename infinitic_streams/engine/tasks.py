"""Task lifecycle: attempts sent, their results, failures and timeouts, retries after a delay.

A task lives in `t|id|seq` (TaskState) from its `TaskScheduled` until its final fact. Every
attempt is bookkeeping here: the attempt's timeout timer, `AttemptFailed` and the retry timer
(exponential backoff with jitter, `RetryPolicy`), the next attempt sent when it fires. What
workflow code must see, the task's final fact (`TaskSucceeded`, or `AttemptFailed` then
`TaskGaveUp`), is returned as `Facts`; `steps.record` records them and resumes the code.

The lifecycle goes on while the workflow is FAILED: results and failures are recorded, retry
timers send the next attempts, timeouts count. So a `retry()` finds, in the history, every
result that came in meanwhile. Once it is CANCELED, results and failures are still recorded,
but no attempt is retried; once it is COMPLETED, its tasks are ignored.

Each failed attempt is logged (INFO, `infinitic_streams.engine`) where its retry is decided:
the task, the attempt, the error, and when the next attempt comes or why there is none. The
line is written while the engine's transaction is open: if that transaction is aborted, the
attempt is handled again and its line repeats.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from infinitic_streams.engine import outputs, storage
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import ErrorState, Facts, TaskState, WorkflowState
from infinitic_streams.engine.timers import TASK_RETRY, TASK_TIMEOUT, timer_key
from infinitic_streams.logs import one_line
from infinitic_streams.protocol import ExecuteTask, Payload, WorkflowStatus
from infinitic_streams.protocol import TaskCompleted as TaskCompletedMessage
from infinitic_streams.protocol import TaskFailed as TaskFailedMessage
from infinitic_streams.streams import Context

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine

logger = logging.getLogger("infinitic_streams.engine")


def send(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, task: TaskState, now: int
) -> None:
    """Store the task and emit its current attempt, with the attempt's timeout timer."""
    storage.save_task(ctx, state.workflow_id, task)
    message = ExecuteTask(
        task_id=f"{state.workflow_id}:{task.seq}",
        service_name=task.service,
        method_name=task.method,
        args=tuple(Payload(data=a.encode()) for a in task.args),
        attempt=task.attempt,
        timeout_seconds=task.timeout,
        workflow_id=state.workflow_id,
        workflow_name=state.workflow_name,
        tags=tuple(task.tags),
        meta=task.meta,
    )
    topic = engine.topics.tasks(task.service)
    engine.ensure_topic(topic)
    outputs.emit(engine, ctx, topic, state.workflow_id, message)
    if task.timeout is not None:
        due = now + int(task.timeout * 1000)
        ctx.schedule(timer_key(TASK_TIMEOUT, state.workflow_id, task.seq, task.attempt), due)


def completed(
    engine: WorkflowEngine, ctx: Context, message: TaskCompletedMessage, now: int
) -> Facts | None:
    found = _live_task(ctx, message.workflow_id, message.task_id)
    if found is None:
        return None  # a duplicate, or a result that came after the workflow completed
    state, task = found
    _finish(ctx, state.workflow_id, task)
    _count(engine, ctx, task, "completed")
    result = message.result.data.decode()
    return Facts(state, [s.TaskSucceeded(now, task.seq, message.attempt, result)])


def failed(
    engine: WorkflowEngine, ctx: Context, message: TaskFailedMessage, now: int
) -> Facts | None:
    found = _live_task(ctx, message.workflow_id, message.task_id)
    if found is None:
        return None
    state, task = found
    if task.attempt != message.attempt or task.waiting_retry:
        return None  # a late failure of an attempt that already timed out
    error = ErrorState(message.error.type_name, message.error.message, message.error.traceback)
    return _attempt_failed(engine, ctx, state, task, error, message.retryable, now)


def timed_out(
    engine: WorkflowEngine, ctx: Context, workflow_id: str, seq: int, attempt: int, now: int
) -> Facts | None:
    """An attempt's timeout timer fired: the attempt counts as failed (and retryable)."""
    found = _live_task(ctx, workflow_id, f"{workflow_id}:{seq}")
    if found is None:
        return None
    state, task = found
    if task.attempt != attempt or task.waiting_retry:
        return None  # that attempt already ended
    error = ErrorState("TaskTimedOut", f"attempt {attempt} did not finish within {task.timeout} s")
    return _attempt_failed(engine, ctx, state, task, error, True, now, timed_out=True)


def retry_due(engine: WorkflowEngine, ctx: Context, workflow_id: str, seq: int, now: int) -> None:
    """A retry delay is over: send the next attempt."""
    found = _live_task(ctx, workflow_id, f"{workflow_id}:{seq}")
    if found is None or not found[1].waiting_retry:
        return
    state, task = found
    task.waiting_retry = False
    task.attempt += 1
    send(engine, ctx, state, task, now)


def seq_of(task_id: str) -> int:
    return int(task_id.rsplit(":", 1)[1])


def _live_task(
    ctx: Context, workflow_id: str, task_id: str
) -> tuple[WorkflowState, TaskState] | None:
    """The workflow and its unfinished task, if the workflow still records facts."""
    state = storage.load_state(ctx, workflow_id)
    if state is None or state.status not in s.RECORDING:
        return None
    task = storage.load_task(ctx, workflow_id, seq_of(task_id))
    return None if task is None else (state, task)


def _attempt_failed(
    engine: WorkflowEngine,
    ctx: Context,
    state: WorkflowState,
    task: TaskState,
    error: ErrorState,
    retryable: bool,
    now: int,
    timed_out: bool = False,
) -> Facts:
    """Retry later (durable timer), or give up: then the task is over and the code is told."""
    workflow_id = state.workflow_id
    ctx.cancel_timer(timer_key(TASK_TIMEOUT, workflow_id, task.seq, task.attempt))
    if state.status == WorkflowStatus.CANCELED:
        retryable = False  # its result would be ignored: no more attempts
    delay = task.retry.policy().delay_after(task.attempt, engine.rng) if retryable else None
    attempt_failed = s.AttemptFailed(now, task.seq, task.attempt, error, delay)
    _log_attempt(state, task, error, retryable, delay)
    _count(engine, ctx, task, "failed" if delay is None else "retried")
    if delay is not None:
        task.waiting_retry = True
        storage.save_task(ctx, workflow_id, task)
        ctx.schedule(timer_key(TASK_RETRY, workflow_id, task.seq), now + int(delay * 1000))
        return Facts(state, [attempt_failed])
    _finish(ctx, workflow_id, task)
    gave_up = s.TaskGaveUp(now, task.seq, task.attempt, error, timed_out)
    return Facts(state, [attempt_failed, gave_up])


def _log_attempt(
    state: WorkflowState,
    task: TaskState,
    error: ErrorState,
    retryable: bool,
    delay: float | None,
) -> None:
    """One line per failed attempt: what failed, how, and what happens next."""
    attempts = task.retry.max_attempts
    of = f" of {attempts}" if task.attempt <= attempts else " (after a retry of the workflow)"
    if delay is not None:
        then = f"attempt {task.attempt + 1} in {delay:.1f} s"
    elif not retryable:
        then = "not retryable: the task failed (TaskFailed in the workflow)"
    else:
        then = "no attempt left: the task failed (TaskFailed in the workflow)"
    task_id = f"{state.workflow_id}:{task.seq}"
    logger.info(
        "task %s.%s attempt %d%s failed: %s: %s; %s [task %s, workflow %s]",
        task.service,
        task.method,
        task.attempt,
        of,
        error.type_name,
        one_line(error.message),
        then,
        task_id,
        state.workflow_name,
        extra={
            "service": task.service,
            "method": task.method,
            "task_id": task_id,
            "attempt": task.attempt,
            "max_attempts": attempts,
            "error_type": error.type_name,
            "retry_in_s": delay,
            "workflow_id": state.workflow_id,
            "workflow_name": state.workflow_name,
        },
    )


def _count(engine: WorkflowEngine, ctx: Context, task: TaskState, outcome: str) -> None:
    if engine.metrics is not None:
        engine.metrics.task(ctx, task.service, task.method, outcome)


def _finish(ctx: Context, workflow_id: str, task: TaskState) -> None:
    ctx.delete(s.task_key(workflow_id, task.seq))
    ctx.cancel_timer(timer_key(TASK_TIMEOUT, workflow_id, task.seq, task.attempt))
    ctx.cancel_timer(timer_key(TASK_RETRY, workflow_id, task.seq))
