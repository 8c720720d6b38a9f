"""The workflow engine's logic: one message (or timer) in, state changes and messages out.

It runs inside the stream runtime, which gives it a `Context` over the state of the message's
partition; everything it writes and emits commits atomically, exactly once. Workflow code runs
here too, in the process that owns the workflow's partition: a task step costs two Kafka hops
(engine -> service worker -> engine), not three.

Live workflow instances stay in an LRU cache (`ExecutionCache`). An instance is trusted only
if it saw exactly the history the store holds; otherwise (cache miss, restart, rebalance,
aborted transaction) it is rebuilt by replaying the history.
"""

from __future__ import annotations

import dataclasses
import random
import time
import traceback as tb
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infinitic_streams.definitions import workflow_spec
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import (
    ErrorState,
    HistoryEvent,
    RetryState,
    TaskState,
    WorkflowState,
)
from infinitic_streams.errors import InfiniticError, TaskFailed, TaskTimedOut
from infinitic_streams.protocol import (
    DispatchWorkflow,
    Envelope,
    ErrorInfo,
    ExecuteTask,
    Message,
    Payload,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    RetryWorkflow,
    WorkflowResult,
    WorkflowStatus,
    encode,
)
from infinitic_streams.protocol import TaskCompleted as TaskCompletedMessage
from infinitic_streams.protocol import TaskFailed as TaskFailedMessage
from infinitic_streams.streams import Context, Timer
from infinitic_streams.topics import Topics
from infinitic_streams.workflows.commands import (
    Command,
    Completed,
    Failed,
    InlineCommand,
    Step,
    TaskCommand,
    TimerCommand,
)
from infinitic_streams.workflows.execution import WorkflowExecution

DEFAULT_RETENTION_S = 7 * 24 * 3600

# Runtime timer kinds: the first byte of a timer key.
TASK_TIMEOUT, TASK_RETRY, WORKFLOW_TIMER, RETENTION = b"T", b"R", b"W", b"X"


class UnknownWorkflow(InfiniticError):
    """The engine has no workflow class of this name (a dispatch is dead-lettered)."""


class UnknownMessage(InfiniticError):
    """A message kind the engine does not handle: the message goes to the DLQ."""


def timer_key(kind: bytes, workflow_id: str, seq: int = 0, attempt: int = 0) -> bytes:
    return kind + b"\x00" + f"{seq}\x00{attempt}\x00".encode() + workflow_id.encode()


def parse_timer_key(key: bytes) -> tuple[bytes, str, int, int]:
    kind, seq, attempt, workflow_id = key.split(b"\x00", 3)
    return kind, workflow_id.decode(), int(seq), int(attempt)


def error_state(error: BaseException) -> ErrorState:
    if isinstance(error, TaskFailed):
        return ErrorState(type(error).__name__, str(error), error.traceback)
    trace = "".join(tb.format_exception(error))
    return ErrorState(type(error).__name__, str(error), trace)


class ExecutionCache:
    """Live instances by workflow id, each with the history size it has seen (LRU)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[WorkflowExecution, int]] = OrderedDict()

    def get(self, workflow_id: str, history_size: int) -> WorkflowExecution | None:
        entry = self._entries.get(workflow_id)
        if entry is None:
            return None
        execution, seen = entry
        if seen != history_size:  # the store moved on without it (or rolled back)
            self.drop(workflow_id)
            return None
        self._entries.move_to_end(workflow_id)
        return execution

    def put(self, workflow_id: str, execution: WorkflowExecution, history_size: int) -> None:
        self._entries[workflow_id] = (execution, history_size)
        self._entries.move_to_end(workflow_id)
        while len(self._entries) > self._size:
            _, (evicted, _) = self._entries.popitem(last=False)
            evicted.close()

    def drop(self, workflow_id: str) -> None:
        entry = self._entries.pop(workflow_id, None)
        if entry is not None:
            entry[0].close()

    def clear(self) -> None:
        for execution, _ in self._entries.values():
            execution.close()
        self._entries.clear()


@dataclass
class WorkflowEngine:
    workflows: Mapping[str, type]  # workflow name -> class
    topics: Topics
    cache_size: int = 1000
    retention_s: float = DEFAULT_RETENTION_S
    clock: Callable[[], float] = time.time
    ensure_topic: Callable[[str], None] = lambda topic: None

    def __post_init__(self) -> None:
        self.cache = ExecutionCache(self.cache_size)
        self._rng = random.Random()

    @classmethod
    def of(cls, workflow_classes: list[type], topics: Topics, **options: Any) -> WorkflowEngine:
        return cls({workflow_spec(c).name: c for c in workflow_classes}, topics, **options)

    # -- entry points ------------------------------------------------------------------------

    def handle(self, ctx: Context, message: Message) -> None:
        now = self._now()
        match message:
            case TaskCompletedMessage():
                self._task_completed(ctx, message, now)
            case TaskFailedMessage():
                self._task_failed(ctx, message, now)
            case DispatchWorkflow():
                self._dispatch(ctx, message, now)
            case QueryWorkflow():
                self._query(ctx, message)
            case RetryWorkflow():
                self._retry(ctx, message, now)
            case _:
                raise UnknownMessage(f"the engine does not handle {type(message).__name__}")

    def handle_timer(self, ctx: Context, timer: Timer) -> None:
        kind, workflow_id, seq, attempt = parse_timer_key(timer.key)
        now = self._now()
        if kind == RETENTION:
            self._forget(ctx, workflow_id)
            return
        state = self._load(ctx, workflow_id)
        if state is None or state.status != WorkflowStatus.RUNNING:
            return
        if kind == WORKFLOW_TIMER:
            execution = self._execution(ctx, state)
            if execution.waiting_for(seq):
                self._append(ctx, state, s.TimerFired(now, seq))
                self._apply(ctx, state, execution, execution.timer_fired(seq, now), now)
            return
        task = self._load_task(ctx, workflow_id, seq)
        if task is None:
            return
        if kind == TASK_RETRY and task.waiting_retry:
            task.waiting_retry = False
            task.attempt += 1
            self._send_task(ctx, state, task, now)
        elif kind == TASK_TIMEOUT and task.attempt == attempt and not task.waiting_retry:
            message = f"attempt {attempt} did not finish within {task.timeout} s"
            self._attempt_failed(
                ctx, state, task, ErrorState("TaskTimedOut", message), True, now, timed_out=True
            )
        self._save(ctx, state)

    # -- messages ----------------------------------------------------------------------------

    def _dispatch(self, ctx: Context, message: DispatchWorkflow, now: int) -> None:
        state = self._load(ctx, message.workflow_id)
        if state is not None:  # idempotent start: same id, same workflow
            if message.reply_to:
                self._wait_for_end(ctx, state, message.reply_to)
                self._save(ctx, state)
            return
        cls = self.workflows.get(message.workflow_name)
        if cls is None:
            self._refuse(ctx, message)
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
        )
        self._append(ctx, state, s.Started(now, message.method_name, args))
        try:
            execution = self._new_execution(state, {})
        except TypeError as error:  # e.g. no such method
            self._end(ctx, state, Failed(error), now)
            return
        self._apply(ctx, state, execution, execution.start(_data(args), now), now)

    def _refuse(self, ctx: Context, message: DispatchWorkflow) -> None:
        """No such workflow here: dead-letter the dispatch (nothing is stored, so the same
        dispatch works once an engine runs the workflow) and tell the waiting client now."""
        reason = (
            f"no workflow named {message.workflow_name!r} in this engine (it runs: "
            f"{sorted(self.workflows)}); deploy an engine with it and dispatch again"
        )
        ctx.dead_letter(reason)
        if message.reply_to:
            error = ErrorInfo(type_name=UnknownWorkflow.__name__, message=reason, traceback="")
            reply = WorkflowResult(
                workflow_id=message.workflow_id, status=WorkflowStatus.FAILED, error=error
            )
            self._reply(ctx, message.reply_to, reply)

    def _task_completed(self, ctx: Context, message: TaskCompletedMessage, now: int) -> None:
        state = self._load(ctx, message.workflow_id)
        seq = _seq_of(message.task_id)
        task = self._load_task(ctx, message.workflow_id, seq) if state else None
        if state is None or task is None or state.status != WorkflowStatus.RUNNING:
            return  # a duplicate, or a result that arrived after the workflow ended
        execution = self._execution(ctx, state)  # before the event joins the history
        if execution.outcome is not None:
            return  # replaying the history ended it (its code changed)
        self._finish_task(ctx, task, message.workflow_id)
        result = message.result.data.decode()
        self._append(ctx, state, s.TaskSucceeded(now, seq, message.attempt, result))
        if execution.waiting_for(seq):  # not when the replay itself ended the workflow
            step = execution.task_completed(seq, message.result.data, now)
            self._apply(ctx, state, execution, step, now)
        else:
            self._save(ctx, state)

    def _task_failed(self, ctx: Context, message: TaskFailedMessage, now: int) -> None:
        state = self._load(ctx, message.workflow_id)
        seq = _seq_of(message.task_id)
        task = self._load_task(ctx, message.workflow_id, seq) if state else None
        if state is None or task is None or state.status != WorkflowStatus.RUNNING:
            return
        if task.attempt != message.attempt or task.waiting_retry:
            return  # a late failure of an attempt that already timed out
        error = ErrorState(message.error.type_name, message.error.message, message.error.traceback)
        self._attempt_failed(ctx, state, task, error, message.retryable, now)
        self._save(ctx, state)

    def _retry(self, ctx: Context, message: RetryWorkflow, now: int) -> None:
        """Resume a failed workflow: its failed task runs again, its code is replayed (with
        the code deployed now, so a fix applies)."""
        state = self._load(ctx, message.workflow_id)
        if state is None or state.status != WorkflowStatus.FAILED:
            return
        voided = [state.failed_task] if state.failed_task is not None else []
        state.status, state.error, state.failed_task = WorkflowStatus.RUNNING, None, None
        self._append(ctx, state, s.Retried(now, voided))
        history = self._history(ctx, state)
        for seq in voided:
            scheduled = next(e for e in history if isinstance(e, s.TaskScheduled) and e.seq == seq)
            attempts = sum(1 for e in history if isinstance(e, s.AttemptFailed) and e.seq == seq)
            self._send_task(ctx, state, TaskState.of(scheduled, attempt=attempts + 1), now)
        self.cache.drop(state.workflow_id)
        execution, step = self._replay(state, history)
        self._apply(ctx, state, execution, step, now)

    def _query(self, ctx: Context, message: QueryWorkflow) -> None:
        state = self._load(ctx, message.workflow_id)
        if message.query == QueryKind.RESULT and state is not None:
            self._wait_for_end(ctx, state, message.reply_to)
            self._save(ctx, state)
            return
        data = b""
        if state is not None and message.query == QueryKind.DESCRIBE:
            description = s.Description(state, _pending(self._history(ctx, state)))
            data = s.dump(description, s.Description)
        elif state is not None and message.query == QueryKind.HISTORY:
            history = [_shortened(event) for event in self._history(ctx, state)]
            data = s.dump(history, list[HistoryEvent])
        reply = QueryReply(
            request_id=message.request_id,
            workflow_id=message.workflow_id,
            found=state is not None,
            data=data,
        )
        self._reply(ctx, message.reply_to, reply)

    # -- steps ---------------------------------------------------------------------------------

    def _apply(
        self,
        ctx: Context,
        state: WorkflowState,
        execution: WorkflowExecution,
        step: Step,
        now: int,
    ) -> None:
        """Record and carry out the commands of a step; end the workflow if it ended."""
        for command in step.commands:
            self._record(ctx, state, command, now)
        if step.outcome is not None:
            self._end(ctx, state, step.outcome, now)
            return
        self._save(ctx, state)
        if execution.outcome is None:
            self.cache.put(state.workflow_id, execution, state.history_size)

    def _record(self, ctx: Context, state: WorkflowState, command: Command, now: int) -> None:
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
                self._append(ctx, state, event)
                self._send_task(ctx, state, TaskState.of(event, attempt=1), now)
            case TimerCommand():
                self._append(ctx, state, s.TimerScheduled(now, command.seq, command.due_ms))
                ctx.schedule(
                    timer_key(WORKFLOW_TIMER, state.workflow_id, command.seq), command.due_ms
                )
            case InlineCommand():
                event = s.InlineRecorded(now, command.seq, command.name, command.result.decode())
                self._append(ctx, state, event)

    def _send_task(self, ctx: Context, state: WorkflowState, task: TaskState, now: int) -> None:
        """Emit the task's current attempt, with its timeout timer."""
        ctx.put(s.task_key(state.workflow_id, task.seq), s.dump(task, TaskState))
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
        topic = self.topics.tasks(task.service)
        self.ensure_topic(topic)
        self._emit(ctx, topic, state.workflow_id, message)
        if task.timeout is not None:
            due = now + int(task.timeout * 1000)
            ctx.schedule(timer_key(TASK_TIMEOUT, state.workflow_id, task.seq, task.attempt), due)

    def _attempt_failed(
        self,
        ctx: Context,
        state: WorkflowState,
        task: TaskState,
        error: ErrorState,
        retryable: bool,
        now: int,
        timed_out: bool = False,
    ) -> None:
        """Retry later (durable timer) or give up and tell the workflow code."""
        workflow_id = state.workflow_id
        ctx.cancel_timer(timer_key(TASK_TIMEOUT, workflow_id, task.seq, task.attempt))
        delay = task.retry.policy().delay_after(task.attempt, self._rng) if retryable else None
        self._append(ctx, state, s.AttemptFailed(now, task.seq, task.attempt, error, delay))
        if delay is not None:
            task.waiting_retry = True
            ctx.put(s.task_key(workflow_id, task.seq), s.dump(task, TaskState))
            ctx.schedule(timer_key(TASK_RETRY, workflow_id, task.seq), now + int(delay * 1000))
            return
        execution = self._execution(ctx, state)
        if execution.outcome is not None:
            return  # replaying the history ended it (its code changed)
        self._finish_task(ctx, task, workflow_id)
        gave_up = s.TaskGaveUp(now, task.seq, task.attempt, error, timed_out)
        self._append(ctx, state, gave_up)
        if execution.waiting_for(task.seq):
            error_ = _task_error(state, task.service, task.method, gave_up)
            self._apply(ctx, state, execution, execution.task_failed(task.seq, error_, now), now)

    def _finish_task(self, ctx: Context, task: TaskState, workflow_id: str) -> None:
        ctx.delete(s.task_key(workflow_id, task.seq))
        ctx.cancel_timer(timer_key(TASK_TIMEOUT, workflow_id, task.seq, task.attempt))

    def _end(
        self, ctx: Context, state: WorkflowState, outcome: Completed | Failed, now: int
    ) -> None:
        if isinstance(outcome, Completed):
            state.status, state.result = WorkflowStatus.COMPLETED, outcome.result.decode()
        else:
            state.status, state.error = WorkflowStatus.FAILED, error_state(outcome.error)
            if isinstance(outcome.error, TaskFailed):
                state.failed_task = _seq_of(outcome.error.task_id)
        self._append(ctx, state, s.Ended(now, state.status, state.result, state.error))
        for reply_to in state.waiters:
            self._reply_result(ctx, reply_to, state)
        state.waiters = []
        self._save(ctx, state)
        self.cache.drop(state.workflow_id)
        retention_due = now + int(self.retention_s * 1000)
        ctx.schedule(timer_key(RETENTION, state.workflow_id), retention_due)

    def _wait_for_end(self, ctx: Context, state: WorkflowState, reply_to: str) -> None:
        if state.status == WorkflowStatus.RUNNING:
            if reply_to not in state.waiters:
                state.waiters.append(reply_to)
        else:
            self._reply_result(ctx, reply_to, state)

    def _reply_result(self, ctx: Context, reply_to: str, state: WorkflowState) -> None:
        error = state.error
        reply = WorkflowResult(
            workflow_id=state.workflow_id,
            status=state.status,
            result=Payload(data=state.result.encode()) if state.result is not None else None,
            error=ErrorInfo(
                type_name=error.type_name, message=error.message, traceback=error.traceback
            )
            if error
            else None,
        )
        self._reply(ctx, reply_to, reply)

    def _reply(self, ctx: Context, reply_to: str, message: Message) -> None:
        """To a client: `reply_to` is `<partition>:<client id>` of the replies topic."""
        partition, _, client_id = reply_to.partition(":")
        self._emit(ctx, self.topics.replies, client_id, message, int(partition))

    # -- executions ----------------------------------------------------------------------------

    def _execution(self, ctx: Context, state: WorkflowState) -> WorkflowExecution:
        """The live instance, from the cache or rebuilt by replaying the history."""
        cached = self.cache.get(state.workflow_id, state.history_size)
        if cached is not None:
            return cached
        execution, step = self._replay(state, self._history(ctx, state))
        if step.commands or step.outcome is not None:
            now = self._now()
            self._apply(ctx, state, execution, step, now)
        return execution

    def _replay(
        self, state: WorkflowState, history: list[HistoryEvent]
    ) -> tuple[WorkflowExecution, Step]:
        """Rebuild the instance from `history`. Commands it issues beyond the recorded ones
        (code that changed after a failure, then was retried) come back in the step."""
        recorded: dict[int, Command] = {}
        voided: set[tuple[int, int]] = set()  # (seq, index of the TaskGaveUp)
        for index, event in enumerate(history):
            if isinstance(event, s.TaskScheduled | s.TimerScheduled | s.InlineRecorded):
                recorded[event.seq] = _command_of(event)
            elif isinstance(event, s.Retried):
                voided |= {
                    (seq, i)
                    for i, e in enumerate(history[:index])
                    if isinstance(e, s.TaskGaveUp) and e.seq in event.tasks
                    for seq in [e.seq]
                }
        execution = self._new_execution(state, recorded)
        commands: list[Command] = []
        outcome = None
        for index, event in enumerate(history):
            step = None
            match event:
                case s.Started():
                    step = execution.start(_data(event.args), event.at_ms)
                case s.TaskSucceeded() if execution.waiting_for(event.seq):
                    step = execution.task_completed(event.seq, event.result.encode(), event.at_ms)
                case s.TaskGaveUp() if (event.seq, index) not in voided and execution.waiting_for(
                    event.seq
                ):
                    task = recorded[event.seq]
                    assert isinstance(task, TaskCommand)
                    error = _task_error(state, task.service, task.method, event)
                    step = execution.task_failed(event.seq, error, event.at_ms)
                case s.TimerFired() if execution.waiting_for(event.seq):
                    step = execution.timer_fired(event.seq, event.at_ms)
            if step is not None:
                commands += step.commands
                outcome = outcome or step.outcome
        end = execution.end_of_replay()
        return execution, Step(commands, outcome or end.outcome)

    def _new_execution(
        self, state: WorkflowState, recorded: dict[int, Command]
    ) -> WorkflowExecution:
        cls = self.workflows.get(state.workflow_name)
        if cls is None:
            raise UnknownWorkflow(f"no workflow named {state.workflow_name!r} in this engine")
        return WorkflowExecution(
            cls, state.method, state.workflow_id, tuple(state.tags), state.meta, recorded
        )

    # -- storage -------------------------------------------------------------------------------

    def _load(self, ctx: Context, workflow_id: str) -> WorkflowState | None:
        raw = ctx.get(s.state_key(workflow_id))
        return None if raw is None else s.load(raw, WorkflowState)  # type: ignore[return-value]

    def _save(self, ctx: Context, state: WorkflowState) -> None:
        ctx.put(s.state_key(state.workflow_id), s.dump(state, WorkflowState))

    def _load_task(self, ctx: Context, workflow_id: str, seq: int) -> TaskState | None:
        raw = ctx.get(s.task_key(workflow_id, seq))
        return None if raw is None else s.load(raw, TaskState)  # type: ignore[return-value]

    def _append(self, ctx: Context, state: WorkflowState, event: HistoryEvent) -> None:
        ctx.put(s.history_key(state.workflow_id, state.history_size), s.dump(event, HistoryEvent))
        state.history_size += 1
        state.updated_at_ms = event.at_ms

    def _history(self, ctx: Context, state: WorkflowState) -> list[HistoryEvent]:
        events = []
        for index in range(state.history_size):
            raw = ctx.get(s.history_key(state.workflow_id, index))
            assert raw is not None, f"history of {state.workflow_id} misses event {index}"
            events.append(s.load(raw, HistoryEvent))
        return events  # type: ignore[return-value]

    def _forget(self, ctx: Context, workflow_id: str) -> None:
        """Retention is over: delete the workflow's state and history."""
        state = self._load(ctx, workflow_id)
        if state is None or state.status == WorkflowStatus.RUNNING:
            return
        for index, event in enumerate(self._history(ctx, state)):
            ctx.delete(s.history_key(workflow_id, index))
            if isinstance(event, s.TaskScheduled):
                ctx.delete(s.task_key(workflow_id, event.seq))
        ctx.delete(s.state_key(workflow_id))

    def _emit(
        self, ctx: Context, topic: str, key: str, message: Message, partition: int = -1
    ) -> None:
        envelope = Envelope(message_id=str(uuid.uuid4()), sent_at_ms=self._now(), message=message)
        ctx.emit(topic, key.encode(), encode(envelope), None, partition)

    def _now(self) -> int:
        return int(self.clock() * 1000)


def _pending(history: list[HistoryEvent]) -> list[str]:
    """What a running workflow waits for: tasks and timers not finished yet."""
    names: dict[int, str] = {}
    pending: dict[int, str] = {}
    for event in history:
        match event:
            case s.TaskScheduled():
                names[event.seq] = f"task {event.service}.{event.method} (step {event.seq})"
                pending[event.seq] = names[event.seq]
            case s.TimerScheduled():
                pending[event.seq] = f"timer due at {event.due_ms} ms (step {event.seq})"
            case s.TaskSucceeded() | s.TaskGaveUp() | s.TimerFired():
                pending.pop(event.seq, None)
            case s.Retried():
                pending.update((seq, names[seq]) for seq in event.tasks)
            case s.Ended():
                pending.clear()
    return [pending[seq] for seq in sorted(pending)]


SHOWN_PAYLOAD_BYTES = 2048


def _shortened(event: HistoryEvent) -> HistoryEvent:
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


def _data(args: list[str]) -> list[bytes]:
    return [a.encode() for a in args]


def _seq_of(task_id: str) -> int:
    return int(task_id.rsplit(":", 1)[1])


def _task_error(
    state: WorkflowState, service: str, method: str, gave_up: s.TaskGaveUp
) -> TaskFailed:
    error_type = TaskTimedOut if gave_up.timed_out else TaskFailed
    return error_type(
        service,
        method,
        f"{state.workflow_id}:{gave_up.seq}",
        gave_up.attempts,
        gave_up.error.type_name,
        gave_up.error.message,
        gave_up.error.traceback,
    )


def _command_of(event: s.TaskScheduled | s.TimerScheduled | s.InlineRecorded) -> Command:
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
