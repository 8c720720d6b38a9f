"""Schedules in the engine, without Kafka (one partition plays the schedule and its
workflows; the test moves the clock): firing times and ids, overlap skip and allow, pause,
resume, delete, a late timer, idempotent create and replace, and what is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infinitic_streams import payload, service, workflow
from infinitic_streams.engine import schedules
from infinitic_streams.protocol import (
    DispatchWorkflow,
    ExecuteTask,
    Payload,
    QueryReply,
    ScheduleAction,
    ScheduleDefinition,
    ScheduledWorkflowEnded,
    ScheduleRequest,
    WorkflowStatus,
)
from infinitic_streams.protocol.replies import ScheduleAnswer, ScheduleDescription
from infinitic_streams.workflows.workflow import Workflow

from .engine_harness import CLIENT, Harness, harnesses

EVERY_10_S = "*/10 * * * * *"  # seconds first


@service("Ops")
class Ops:
    def check(self, x: int) -> int: ...


@workflow("Job")
class Job(Workflow):
    def run(self, x: int) -> int:
        return self.new_service(Ops).check(x)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    yield from harnesses(tmp_path)


def ask(
    h: Harness, action: ScheduleAction, schedule_id: str = "s1", **definition: str
) -> tuple[bool, ScheduleAnswer]:
    d = None
    if action == ScheduleAction.CREATE:
        fields = {"workflow_name": "Job", "cron": EVERY_10_S, "timezone": "UTC", "overlap": "skip"}
        fields.update(definition)
        d = ScheduleDefinition(
            method_name="run", args=(Payload(data=b"7"),), tags=("nightly",), **fields
        )
    request = ScheduleRequest(
        request_id="r", schedule_id=schedule_id, action=action, reply_to=CLIENT, definition=d
    )
    h.send(request)
    [reply] = h.take(QueryReply)
    return reply.found, payload.decode(reply.data, ScheduleAnswer)  # type: ignore[return-value]


def describe(h: Harness, schedule_id: str = "s1") -> ScheduleDescription:
    found, answer = ask(h, ScheduleAction.DESCRIBE, schedule_id)
    assert found
    return answer.schedules[0]


def fired_ids(h: Harness) -> list[str]:
    """The firings' dispatches sent since the last call, then delivered (the workflows start)."""
    ids = [m.workflow_id for _, m in h.outbox if isinstance(m, DispatchWorkflow)]
    h.pump()
    return ids


def finish_tasks(h: Harness) -> None:
    """The service answers every task sent: the firings' workflows complete."""
    for task in h.take(ExecuteTask):
        h.reply(task, 7, int)
    h.pump()  # their ends reach the schedule


def test_firings_start_workflows_named_by_schedule_and_fire_time(harness) -> None:
    h = harness([Job])  # the clock starts at 1,000 s after the epoch
    found, answer = ask(h, ScheduleAction.CREATE)
    assert found and answer.schedules[0].next_fire_ms == 1_010_000
    h.advance(9)
    assert fired_ids(h) == []
    h.advance(1)
    assert fired_ids(h) == ["s1@1970-01-01T00:16:50Z"]
    started = h.state("s1@1970-01-01T00:16:50Z")
    assert (started.workflow_name, started.tags, started.schedule_id) == ("Job", ["nightly"], "s1")
    assert started.meta == {"schedule": "s1", "fire_time": "1970-01-01T00:16:50Z"}
    [task] = h.take(ExecuteTask)
    assert payload.decode(task.args[0].data, int) == 7
    info = describe(h)
    assert (info.next_fire_ms, info.last_fire_ms, info.fired) == (1_020_000, 1_010_000, 1)
    assert info.last_workflow_id == info.running == "s1@1970-01-01T00:16:50Z"


def test_skip_starts_nothing_while_the_last_firing_runs(harness) -> None:
    h = harness([Job])
    ask(h, ScheduleAction.CREATE, overlap="skip")
    h.advance(10)
    assert fired_ids(h) == ["s1@1970-01-01T00:16:50Z"]
    h.advance(10)  # the first one still runs (its task is not answered)
    assert fired_ids(h) == []
    assert (describe(h).skipped, describe(h).next_fire_ms) == (1, 1_030_000)
    finish_tasks(h)
    assert h.state("s1@1970-01-01T00:16:50Z").status == WorkflowStatus.COMPLETED
    assert describe(h).running is None
    h.advance(10)
    assert fired_ids(h) == ["s1@1970-01-01T00:17:10Z"]


def test_allow_starts_every_firing(harness) -> None:
    h = harness([Job])
    ask(h, ScheduleAction.CREATE, overlap="allow")
    h.advance(10)
    h.advance(10)
    h.advance(10)
    assert fired_ids(h) == [
        "s1@1970-01-01T00:16:50Z",
        "s1@1970-01-01T00:17:00Z",
        "s1@1970-01-01T00:17:10Z",
    ]
    assert describe(h).fired == 3


def test_a_late_timer_starts_its_slot_once_and_skips_the_missed_ones(harness) -> None:
    h = harness([Job])
    ask(h, ScheduleAction.CREATE, overlap="allow")
    h.advance(35)  # due at 1,010 s; no engine ran until 1,035 s: slots 1,020 and 1,030 missed
    assert fired_ids(h) == ["s1@1970-01-01T00:16:50Z"]
    assert describe(h).next_fire_ms == 1_040_000
    h.advance(5)
    assert fired_ids(h) == ["s1@1970-01-01T00:17:20Z"]


def test_pause_resume_and_delete(harness) -> None:
    h = harness([Job])
    ask(h, ScheduleAction.CREATE, overlap="allow")
    found, answer = ask(h, ScheduleAction.PAUSE)
    assert found and answer.schedules[0].paused and answer.schedules[0].next_fire_ms is None
    h.advance(30)
    assert fired_ids(h) == []
    h.advance(3)  # resumed at 1,033 s: the next slot after now
    found, answer = ask(h, ScheduleAction.RESUME)
    assert found and answer.schedules[0].next_fire_ms == 1_040_000
    assert not describe(h).paused
    h.advance(7)
    assert fired_ids(h) == ["s1@1970-01-01T00:17:20Z"]
    found, _ = ask(h, ScheduleAction.DELETE)
    assert found
    assert ask(h, ScheduleAction.DESCRIBE)[0] is False
    h.advance(60)
    assert fired_ids(h) == []
    for action in (ScheduleAction.PAUSE, ScheduleAction.RESUME, ScheduleAction.DELETE):
        assert ask(h, action)[0] is False


def test_create_is_idempotent_and_another_definition_replaces(harness) -> None:
    h = harness([Job])
    ask(h, ScheduleAction.CREATE)
    ask(h, ScheduleAction.PAUSE)
    h.advance(13)
    found, answer = ask(h, ScheduleAction.CREATE)  # same definition: nothing changes
    assert found and answer.schedules[0].paused and answer.schedules[0].created_at_ms == 1_000_000
    found, answer = ask(h, ScheduleAction.CREATE, cron="*/5 * * * * *")  # replaced, active
    new = answer.schedules[0]
    assert (new.cron, new.paused, new.next_fire_ms) == ("*/5 * * * * *", False, 1_015_000)
    h.advance(2)
    assert fired_ids(h) == ["s1@1970-01-01T00:16:55Z"]


def test_a_bad_definition_is_refused_by_the_engine(harness) -> None:
    h = harness([Job])
    found, answer = ask(h, ScheduleAction.CREATE, cron="61 * * * *")
    assert not found and "61 * * * *" in answer.error
    found, answer = ask(h, ScheduleAction.CREATE, timezone="Mars/Base")
    assert not found and "Mars/Base" in answer.error
    assert ask(h, ScheduleAction.DESCRIBE)[0] is False


def test_cron_is_read_in_the_schedules_time_zone(harness) -> None:
    h = harness([Job])
    found, answer = ask(h, ScheduleAction.CREATE, cron="0 9 * * *", timezone="Asia/Tokyo")
    assert found  # 09:00 in Tokyo (UTC+9) is midnight UTC: the next is 1970-01-02T00:00Z
    assert answer.schedules[0].next_fire_ms == 86_400_000


def test_a_firing_that_cannot_start_does_not_block_skip(harness) -> None:
    h = harness([Job])
    found, answer = ask(h, ScheduleAction.CREATE, workflow_name="Missing")
    assert not found and "no workflow named 'Missing'" in answer.error  # refused at create
    ask(h, ScheduleAction.CREATE, overlap="skip")
    h.redeploy([])  # an engine without Job: the firings' dispatches are refused
    h.advance(10)
    assert fired_ids(h) == ["s1@1970-01-01T00:16:50Z"]
    assert "no workflow named 'Job'" in h.dead_letters[0]
    h.pump()
    assert describe(h).running is None
    h.advance(10)
    assert fired_ids(h) == ["s1@1970-01-01T00:17:00Z"]


def test_a_firing_redone_joins_its_workflow(harness) -> None:
    h = harness([Job])
    ask(h, ScheduleAction.CREATE)
    h.advance(10)
    [dispatch] = [m for _, m in h.outbox if isinstance(m, DispatchWorkflow)]
    h.pump()
    h.send(dispatch)  # the same firing again (as a redo would): joins the workflow
    assert len(h.history(dispatch.workflow_id)) == 2  # Started, TaskScheduled: started once
    assert len([m for _, m in h.outbox if isinstance(m, ExecuteTask)]) == 1
    finish_tasks(h)
    assert h.state(dispatch.workflow_id).status == WorkflowStatus.COMPLETED
    h.send(dispatch)  # it has ended: the schedule is told at once
    [ended] = h.take(ScheduledWorkflowEnded)
    assert (ended.workflow_id, ended.status) == (dispatch.workflow_id, WorkflowStatus.COMPLETED)


def test_list_gives_the_partitions_schedules(harness) -> None:
    h = harness([Job])
    ask(h, ScheduleAction.CREATE, "a")
    ask(h, ScheduleAction.CREATE, "b", overlap="allow")
    h.send(
        ScheduleRequest(request_id="l", schedule_id="", action=ScheduleAction.LIST, reply_to=CLIENT)
    )
    [reply] = h.take(QueryReply)
    answer = payload.decode(reply.data, ScheduleAnswer)
    assert [(d.schedule_id, d.overlap) for d in answer.schedules] == [("a", "skip"), ("b", "allow")]
    assert schedules.schedule_key("a") == b"s\x00a"
