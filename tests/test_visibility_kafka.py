"""The events topic and the visibility index on the real broker: every event of a workflow
exactly once and in order through a kill -9 of its engine, and list/count served by two
engine processes sharing the partitions, right after changes."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infinitic_streams import InfiniticClient, Worker, WorkflowFailed, WorkflowStatus
from infinitic_streams.protocol import cloudevents

from .apps.workflows import Eventful, Fixable, Sleeper, StepsImpl, Sum
from .kafka_support import WorkerProcess, read_topic

RESULT_TIMEOUT_S = 90.0
EVENTFUL = [
    "infinitic.workflow.started",
    "infinitic.task.scheduled",  # fail_until(2)
    "infinitic.task.retried",
    "infinitic.task.completed",
    "infinitic.timer.scheduled",
    "infinitic.timer.fired",
    "infinitic.task.scheduled",  # add
    "infinitic.task.completed",
    "infinitic.task.scheduled",  # always_fails: 3 attempts
    "infinitic.task.retried",
    "infinitic.task.retried",
    "infinitic.task.attemptfailed",
    "infinitic.task.failed",
    "infinitic.workflow.failed",
]


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.2)
    return found


def services_of(bootstrap: str, namespace: str) -> Worker:
    kafka = {"bootstrap.servers": bootstrap}
    return Worker(kafka, namespace, services=[StepsImpl()], engine=False).start()


def test_every_event_once_and_in_order_through_a_kill_9_of_the_engine(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    services = services_of(kafka_bootstrap, namespace)
    engine = WorkerProcess(kafka_bootstrap, namespace, tmp_path / "engine", "--engine")
    try:
        with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as client:
            handles = [client.dispatch(Eventful.run, n) for n in range(12)]
            wait_until(
                lambda: any(e["event"] == "TimerFired" for e in handles[0].history()),
                RESULT_TIMEOUT_S,
                "a timer fired",
            )
            engine.kill()  # mid-way: some workflows wait on tasks, timers, retry delays
            engine = WorkerProcess(kafka_bootstrap, namespace, tmp_path / "engine", "--engine")
            for handle in handles:
                with pytest.raises(WorkflowFailed):
                    handle.result(timeout=RESULT_TIMEOUT_S)
            histories = {h.id: h.history() for h in handles}
    finally:
        engine.kill()
        services.stop()
    by_workflow: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, value in read_topic(kafka_bootstrap, f"{namespace}.events"):
        event = cloudevents.parse(value)
        assert key.decode() == event["subject"]
        by_workflow[event["subject"]].append(event)
    assert sorted(by_workflow) == sorted(histories)
    for workflow_id, events in by_workflow.items():
        assert [e["type"] for e in events] == EVENTFUL, workflow_id
        assert len(events) == len(histories[workflow_id])  # one per recorded event
        assert len({e["id"] for e in events}) == len(events)
        assert events[-1]["workflowstatus"] == "FAILED"
        assert events[-1]["data"]["error"]["type_name"] == "TaskFailed"
        assert json.dumps(events[0]["data"]["args"]) in {f"[{n}]" for n in range(12)}


def test_list_and_count_with_two_engine_processes_sharing_the_partitions(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.touch()  # Fixable fails while it exists
    services = services_of(kafka_bootstrap, namespace)
    engines = [
        WorkerProcess(kafka_bootstrap, namespace, tmp_path / f"e{n}", "--engine") for n in (1, 2)
    ]
    try:
        with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as client:
            run = uuid.uuid4().hex[:6]
            sums = [client.dispatch(Sum.run, 2, id=f"sum-{run}-{n}", tags=["a"]) for n in range(5)]
            fixables = [
                client.dispatch(Fixable.run, str(broken), id=f"fix-{run}-{n}", tags=["b"])
                for n in range(3)
            ]
            sleepers = [
                client.dispatch(Sleeper.run, 3600.0, id=f"sleep-{run}-{n}", tags=["a", "b"])
                for n in range(2)
            ]
            for handle in sums:
                handle.result(timeout=RESULT_TIMEOUT_S)
            for handle in fixables:
                with pytest.raises(WorkflowFailed):
                    handle.result(timeout=RESULT_TIMEOUT_S)
            expected = {"RUNNING": 2, "COMPLETED": 5, "FAILED": 3, "CANCELED": 0}
            wait_until(lambda: client.count_by_status() == expected, what="counts")
            assert client.count() == 10 and client.count(status="failed") == 3
            assert client.count(Sum, tag="a") == 5 and client.count(tag="b") == 5
            with pytest.raises(ValueError, match="'done': use one of RUNNING, COMPLETED"):
                client.list(status="done")

            listed = client.list(Fixable, status="FAILED", tag="b")
            assert sorted(i.id for i in listed) == sorted(h.id for h in fixables)
            assert all(i.error and i.error.startswith("TaskFailed") for i in listed)
            everything = client.list()
            assert len(everything) == 10
            updated = [i.updated_at for i in everything]
            assert updated == sorted(updated, reverse=True)  # newest first
            assert [i.id for i in client.list(tag="a", limit=3)] == [
                i.id for i in everything if "a" in i.tags
            ][:3]
            pages, after = [], None
            while page := client.list(tag="b", limit=2, after=after):
                pages.append([i.id for i in page])
                after = page[-1].cursor
            assert [len(p) for p in pages] == [2, 2, 1]
            assert sorted(i for p in pages for i in p) == sorted(h.id for h in fixables + sleepers)
            sleeper = next(i for i in everything if i.id == sleepers[0].id)
            assert sleeper.status == WorkflowStatus.RUNNING and sleeper.ended_at is None
            assert sleeper.name == "Sleeper" and sleeper.method == "run"

            broken.unlink()
            assert client.get_workflows(Fixable, "b").retry() == 3
            sleepers[0].cancel()
            expected = {"RUNNING": 1, "COMPLETED": 8, "FAILED": 0, "CANCELED": 1}
            wait_until(lambda: client.count_by_status() == expected, what="counts after retry")
            [canceled] = client.list(status="CANCELED")
            assert canceled.id == sleepers[0].id and canceled.ended_at is not None
            assert client.list(Fixable, status="FAILED") == []
            sleepers[1].cancel()
    finally:
        for engine in engines:
            engine.kill()
        services.stop()
