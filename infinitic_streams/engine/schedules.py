"""Schedules: a workflow method started on a cron expression (`client.schedule(...)`).

A schedule is engine state keyed by its id, routed like a workflow id (the schedule id is the
key on the engine topic): `s NUL id` -> ScheduleDescription (JSON), in one partition. Its next
firing is a durable runtime timer (kind `S`, `timers.py`). When it fires, in one transaction:
the firing's workflow is started by a `DispatchWorkflow` to the engine topic keyed by its id
`<schedule id>@<fire time, ISO UTC to the second>` (so a firing redone after an aborted
transaction dispatches the same id, which joins: never twice), the schedule records it, and
the next firing's timer is set.

Overlap: the dispatch carries the schedule's id; the workflow keeps it, and when it ends (or
could not start: no engine runs its class) its engine sends the schedule a
`ScheduledWorkflowEnded`, keyed by schedule id, in its transaction. The schedule keeps the
workflow of its last firing in `running` until then; with `overlap="skip"` a firing that finds
it still running starts nothing (counted in `skipped`); `"allow"` starts every firing. A
workflow that ended FAILED counts as ended (a later `retry()` does not tell the schedule).

Missed firings: a timer fires late when no engine ran at its time. The firing then starts the
workflow of its own (missed) slot, once, and the next timer is set to the first slot after
now: the slots missed in between are not started. Pause cancels the timer; resume sets it to
the first slot after now. Delete removes the state and the timer (a workflow running keeps
running; its end notice finds no schedule and is dropped).

A CREATE naming a workflow this engine does not run is refused (its firings would be). A
CREATE of an existing id with the same definition changes nothing (idempotent, paused or
not); with another definition it replaces it: the new definition, active, next firing from
now, keeping what it fired (last firing, last workflow, the one running, counters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams import cron, payload
from infinitic_streams.engine import outputs, timers
from infinitic_streams.engine import state as s
from infinitic_streams.protocol import (
    DispatchWorkflow,
    Payload,
    QueryReply,
    ScheduleAction,
    ScheduledWorkflowEnded,
    ScheduleRequest,
    WorkflowStatus,
)
from infinitic_streams.protocol.replies import ScheduleAnswer, ScheduleDescription
from infinitic_streams.streams import Context

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine

_PREFIX = b"s\x00"


def schedule_key(schedule_id: str) -> bytes:
    return _PREFIX + schedule_id.encode()


def _timer(schedule_id: str) -> bytes:
    return timers.timer_key(timers.SCHEDULE, schedule_id)


def load(ctx: Context, schedule_id: str) -> ScheduleDescription | None:
    raw = ctx.get(schedule_key(schedule_id))
    return None if raw is None else s.load(raw, ScheduleDescription)  # type: ignore[return-value]


def _save(ctx: Context, schedule: ScheduleDescription) -> None:
    ctx.put(schedule_key(schedule.schedule_id), s.dump(schedule, ScheduleDescription))


def request(engine: WorkflowEngine, ctx: Context, message: ScheduleRequest, now: int) -> None:
    """Carry out a client's request and answer it (after the engine's commit)."""
    if message.action == ScheduleAction.LIST:
        found = [s.load(raw, ScheduleDescription) for _, raw in ctx.scan(_PREFIX)]
        _answer(engine, ctx, message, True, ScheduleAnswer(found))  # type: ignore[arg-type]
        return
    if message.action == ScheduleAction.CREATE:
        _create(engine, ctx, message, now)
        return
    schedule = load(ctx, message.schedule_id)
    if schedule is None:
        _answer(engine, ctx, message, False, ScheduleAnswer())
        return
    if message.action == ScheduleAction.PAUSE and not schedule.paused:
        schedule.paused, schedule.next_fire_ms = True, None
        ctx.cancel_timer(_timer(schedule.schedule_id))
        _save(ctx, schedule)
    elif message.action == ScheduleAction.RESUME and schedule.paused:
        schedule.paused = False
        _set_next(ctx, schedule, now)
        _save(ctx, schedule)
    elif message.action == ScheduleAction.DELETE:
        ctx.cancel_timer(_timer(schedule.schedule_id))
        ctx.delete(schedule_key(schedule.schedule_id))
    _answer(engine, ctx, message, True, ScheduleAnswer([schedule]))


def _create(engine: WorkflowEngine, ctx: Context, message: ScheduleRequest, now: int) -> None:
    definition = message.definition
    if definition is None:
        _answer(engine, ctx, message, False, ScheduleAnswer(error="CREATE without a definition"))
        return
    try:
        cron.check(definition.cron, definition.timezone, definition.overlap)
    except ValueError as error:
        _answer(engine, ctx, message, False, ScheduleAnswer(error=str(error)))
        return
    if definition.workflow_name not in engine.workflows:  # its firings would be refused
        why = (
            f"no workflow named {definition.workflow_name!r} in this engine (it runs: "
            f"{sorted(engine.workflows)})"
        )
        _answer(engine, ctx, message, False, ScheduleAnswer(error=why))
        return
    new = ScheduleDescription(
        schedule_id=message.schedule_id,
        workflow_name=definition.workflow_name,
        method=definition.method_name,
        cron=definition.cron,
        timezone=definition.timezone,
        overlap=definition.overlap,
        tags=list(definition.tags),
        args=[a.data.decode() for a in definition.args],
        created_at_ms=now,
    )
    old = load(ctx, message.schedule_id)
    if old is not None and _definition(old) == _definition(new):
        _answer(engine, ctx, message, True, ScheduleAnswer([old]))  # idempotent
        return
    if old is not None:  # replaced: keeps what it fired
        new.last_fire_ms, new.last_workflow_id = old.last_fire_ms, old.last_workflow_id
        new.running, new.fired, new.skipped = old.running, old.fired, old.skipped
        new.created_at_ms = old.created_at_ms
    _set_next(ctx, new, now)
    _save(ctx, new)
    _answer(engine, ctx, message, True, ScheduleAnswer([new]))


def _definition(schedule: ScheduleDescription) -> tuple[object, ...]:
    d = schedule
    return (d.workflow_name, d.method, d.args, d.tags, d.cron, d.timezone, d.overlap)


def _set_next(ctx: Context, schedule: ScheduleDescription, after_ms: int) -> None:
    schedule.next_fire_ms = cron.next_fire_ms(schedule.cron, schedule.timezone, after_ms)
    ctx.schedule(_timer(schedule.schedule_id), schedule.next_fire_ms)


def fire(engine: WorkflowEngine, ctx: Context, schedule_id: str, now: int) -> None:
    """The schedule's timer fell due: start the firing's workflow (unless skipped), set the
    next timer at the first slot after now (missed slots in between are not started)."""
    schedule = load(ctx, schedule_id)
    if schedule is None or schedule.paused or schedule.next_fire_ms is None:
        return
    fire_ms = schedule.next_fire_ms
    if schedule.overlap == "skip" and schedule.running is not None:
        schedule.skipped += 1
    else:
        workflow_id = cron.firing_id(schedule_id, fire_ms)
        dispatch = DispatchWorkflow(
            workflow_id=workflow_id,
            workflow_name=schedule.workflow_name,
            method_name=schedule.method,
            args=tuple(Payload(data=a.encode()) for a in schedule.args),
            tags=tuple(schedule.tags),
            meta={"schedule": schedule_id, "fire_time": cron.iso(fire_ms)},
            schedule_id=schedule_id,
        )
        outputs.emit(engine, ctx, engine.topics.engine, workflow_id, dispatch)
        schedule.last_fire_ms, schedule.last_workflow_id = fire_ms, workflow_id
        schedule.running = workflow_id
        schedule.fired += 1
    _set_next(ctx, schedule, max(now, fire_ms))
    _save(ctx, schedule)


def workflow_ended(ctx: Context, message: ScheduledWorkflowEnded) -> None:
    """A firing's workflow ended: the schedule may fire again (overlap="skip")."""
    schedule = load(ctx, message.schedule_id)
    if schedule is not None and schedule.running == message.workflow_id:
        schedule.running = None
        _save(ctx, schedule)


def tell_schedule(
    engine: WorkflowEngine,
    ctx: Context,
    schedule_id: str,
    workflow_id: str,
    status: WorkflowStatus,
) -> None:
    """From the workflow's engine: the workflow a schedule started ended (or never started)."""
    ended = ScheduledWorkflowEnded(schedule_id=schedule_id, workflow_id=workflow_id, status=status)
    outputs.emit(engine, ctx, engine.topics.engine, schedule_id, ended)


def _answer(
    engine: WorkflowEngine,
    ctx: Context,
    message: ScheduleRequest,
    found: bool,
    answer: ScheduleAnswer,
) -> None:
    reply = QueryReply(
        request_id=message.request_id,
        workflow_id=message.schedule_id,
        found=found,
        data=payload.encode(answer, ScheduleAnswer),
    )
    outputs.reply(engine, ctx, message.reply_to, reply)
