"""Versioning and continue-as-new on the real broker, with engines in subprocesses killed
(kill -9) and restarted: an old instance crosses a restart with changed code and finishes on
its old path; workflows continue as new while the engine is killed, each ends once with the
right result and run number."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infinitic_streams import InfiniticClient, Worker, WorkflowStatus
from infinitic_streams.protocol import cloudevents

from .apps.versioning import Countdown, UpgradedV2
from .apps.workflows import SERVICES
from .kafka_support import WorkerProcess, read_topic

RESULT_TIMEOUT_S = 120.0


@pytest.fixture
def services(kafka_bootstrap: str, namespace: str) -> Iterator[Worker]:
    """The services in this process; the engines run in subprocesses."""
    worker = Worker(
        {"bootstrap.servers": kafka_bootstrap},
        namespace,
        services=[cls() for cls in SERVICES],
        engine=False,
    ).start()
    yield worker
    worker.stop()


@pytest.fixture
def engines() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for engine in started:
        engine.kill()


def wait_until(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
    return found


def names(handle: Any) -> list[str]:
    return [event["event"] for event in handle.history()]


def test_an_old_instance_crosses_a_restart_with_changed_code_on_its_old_path(
    kafka_bootstrap: str,
    namespace: str,
    tmp_path: Path,
    services: Worker,
    engines: list[WorkerProcess],
) -> None:
    state = tmp_path / "engine"
    engines.append(WorkerProcess(kafka_bootstrap, namespace, state, "--engine", "--upgraded", "v1"))
    with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as client:
        old = client.dispatch(UpgradedV2.run, 1)  # the class's name: the engine runs v1
        wait_until(lambda: "ReceiveStarted" in names(old))  # past the change, with v1
        engines[-1].kill()
        engines.append(
            WorkerProcess(kafka_bootstrap, namespace, state, "--engine", "--upgraded", "v2")
        )
        new = client.dispatch(UpgradedV2.run, 1)
        wait_until(lambda: "ReceiveStarted" in names(new))
        old.signal("go", 1)
        new.signal("go", 1)
        assert old.result(timeout=RESULT_TIMEOUT_S) == "old 102"
        assert new.result(timeout=RESULT_TIMEOUT_S) == "new 1002"
        assert (old.describe().patches, new.describe().patches) == ([], ["bigger-bonus"])
        assert names(new).count("PatchRecorded") == 1


def test_workflows_continue_as_new_while_the_engine_is_killed(
    kafka_bootstrap: str,
    namespace: str,
    tmp_path: Path,
    services: Worker,
    engines: list[WorkerProcess],
) -> None:
    runs = 8
    state = tmp_path / "engine"
    engines.append(WorkerProcess(kafka_bootstrap, namespace, state, "--engine"))
    with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as client:
        handles = [client.dispatch(Countdown.run, runs, 0) for _ in range(30)]
        wait_until(lambda: handles[0].describe().run >= 3)
        engines[-1].kill()
        engines.append(WorkerProcess(kafka_bootstrap, namespace, state, "--engine"))
        assert [h.result(timeout=RESULT_TIMEOUT_S) for h in handles] == [36] * 30
        for handle in handles:
            info = handle.describe()
            assert (info.status, info.run) == (WorkflowStatus.COMPLETED, runs + 1)
            assert names(handle) == ["Started", "Ended"]  # the last run's history only
    records = read_topic(kafka_bootstrap, f"{namespace}.events")
    published = [cloudevents.parse(value) for _, value in records]
    assert len({event["id"] for event in published}) == len(published)  # each event once
    kinds = Counter((event["subject"], event["type"]) for event in published)
    for handle in handles:
        assert kinds[(handle.id, cloudevents.STARTED)] == runs + 1
        assert kinds[(handle.id, cloudevents.CONTINUED)] == runs
        assert kinds[(handle.id, cloudevents.COMPLETED)] == 1
        assert kinds[(handle.id, "infinitic.task.completed")] == runs
