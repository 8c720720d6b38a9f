"""Schedules end to end on Kafka: a schedule firing every 2 s across a kill -9 of its engine
(a subprocess) fires each slot at most once, misses only slots while no engine ran, and starts
the first missed slot once, late; and the client's calls (create, describe, pause, resume,
list, delete, and what is refused)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from infinitic_streams import (
    InfiniticClient,
    InfiniticError,
    ScheduleNotFound,
    Worker,
    WorkflowNotFound,
)
from infinitic_streams.client import ScheduleInfo
from tests.apps.workflows import SERVICES, Sum

from .kafka_support import WorkerProcess

pytestmark = pytest.mark.kafka
PERIOD = timedelta(seconds=2)


@pytest.fixture
def client(kafka_bootstrap: str, namespace: str) -> Iterator[InfiniticClient]:
    with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as opened:
        yield opened


@pytest.fixture
def services(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> Iterator[Worker]:
    """The services of tests.apps.workflows in this process (no engine)."""
    worker = Worker(
        {"bootstrap.servers": kafka_bootstrap},
        namespace,
        services=[cls() for cls in SERVICES],
        engine=False,
        state_dir=tmp_path / "services",
    ).start()
    yield worker
    worker.stop()


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.kill()


def wait_for(client: InfiniticClient, fired: int, timeout: float = 60.0) -> ScheduleInfo:
    """The schedule once it has started `fired` workflows."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.get_schedule("tick").describe()
        if info.fired >= fired:
            return info
        assert time.monotonic() < deadline, f"the schedule fired {info.fired} times: {info}"
        time.sleep(0.3)


def test_a_schedule_fires_each_slot_once_across_a_kill_9_of_its_engine(
    client: InfiniticClient,
    services: Worker,
    processes: list[WorkerProcess],
    kafka_bootstrap: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    state = tmp_path / "engine-state"
    processes.append(WorkerProcess(kafka_bootstrap, namespace, state, "--engine"))
    handle = client.schedule("tick", Sum.run, 3, cron="*/2 * * * * *", overlap="allow")
    first = handle.describe().next_fire
    assert first is not None
    before = wait_for(client, 2)
    processes[-1].kill()  # kill -9
    time.sleep(5.0)  # no engine for 2.5 periods at least: one slot is late, one missed
    processes.append(WorkerProcess(kafka_bootstrap, namespace, state, "--engine"))
    wait_for(client, before.fired + 3, timeout=90)
    final = handle.pause()
    assert final.last_fire is not None and final.next_fire is None

    slots = []
    at = first
    while at <= final.last_fire:
        slots.append(at)
        at += PERIOD
    started, missing = {}, []
    for slot in slots:
        workflow_id = f"tick@{slot:%Y-%m-%dT%H:%M:%SZ}"
        started[slot] = client.get_workflow(Sum, workflow_id)
        try:
            info = started[slot].describe()
        except WorkflowNotFound:
            del started[slot]
            missing.append(slot)
            continue
        assert info.started_at >= slot  # never before its time
    # none doubled: each firing started one workflow of its own id
    assert final.fired == len(started)
    for handle_ in started.values():
        assert handle_.result(timeout=60) == 3
        assert [e["event"] for e in handle_.history()].count("Started") == 1
    # only the slots while no engine ran are missing: one run, after the kill; the slot just
    # before them was started once, late (after the last missed slot)
    assert missing, "the engine was down for several periods: slots must be missing"
    assert missing == slots[slots.index(missing[0]) : slots.index(missing[-1]) + 1]
    late = slots[slots.index(missing[0]) - 1]
    assert late >= before.last_fire  # type: ignore[operator]
    assert started[late].describe().started_at > missing[-1]
    handle.delete()


def test_client_calls_and_refusals(
    client: InfiniticClient, processes: list[WorkerProcess], kafka_bootstrap: str, namespace: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    processes.append(WorkerProcess(kafka_bootstrap, namespace, tmp_path / "engine", "--engine"))
    with pytest.raises(ValueError, match=r"bad cron expression '61 \* \* \* \*'"):
        client.schedule("bad", Sum.run, 1, cron="61 * * * *")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        client.schedule("bad", Sum.run, 1, cron="0 3 * * *", timezone="Mars/Base")
    with pytest.raises(ValueError, match="unknown overlap policy 'queue'"):
        client.schedule("bad", Sum.run, 1, cron="0 3 * * *", overlap="queue")
    with pytest.raises(InfiniticError, match="refused: no workflow named 'NotThere'"):
        client.schedule_encoded("bad", "NotThere", "run", [], cron="0 3 * * *")
    yearly = client.schedule("y", Sum.run, 1, cron="0 3 1 1 *", timezone="Europe/Paris")
    info = yearly.describe()
    assert (info.workflow, info.method, info.args, info.overlap) == ("Sum", "run", (1,), "skip")
    assert info.next_fire is not None and (info.next_fire.month, info.next_fire.hour) == (1, 2)
    again = client.schedule("y", Sum.run, 1, cron="0 3 1 1 *", timezone="Europe/Paris")
    assert again.describe().created_at == info.created_at  # idempotent
    client.schedule("z", Sum.run, 2, cron="0 4 * * *")
    assert [s.id for s in client.list_schedules()] == ["y", "z"]
    assert client.pause_schedule("y").paused
    assert not client.resume_schedule("y").paused
    client.schedule("z", Sum.run, 5, cron="0 4 * * *")  # another definition: replaced
    assert client.get_schedule("z").describe().args == (5,)
    client.delete_schedule("z")
    assert [s.id for s in client.list_schedules()] == ["y"]
    for call in (client.pause_schedule, client.resume_schedule, client.delete_schedule):
        with pytest.raises(ScheduleNotFound, match="no schedule with id z"):
            call("z")
    yearly.delete()
    assert client.list_schedules() == []
