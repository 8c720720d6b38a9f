"""Workflows end to end on the real broker: the seed's image workflow, retries, failures,
timers, idempotency, and crashes of the engine and of service workers (subprocesses killed)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from examples.images import ImageUtilImpl, ImageWorkflow
from infinitic_streams import (
    InfiniticClient,
    NonDeterministicWorkflow,
    Worker,
    Workflow,
    WorkflowFailed,
    WorkflowHandle,
    WorkflowStatus,
    workflow,
)

from .apps.workflows import (
    SERVICES,
    WORKFLOWS,
    Compensate,
    Fixable,
    Flaky,
    LoggedSum,
    Race,
    SideBySide,
    Sleeper,
    SlowOnce,
    Steps,
    Sum,
    TimesOut,
)
from .kafka_support import WorkerProcess, read_dead_letters

StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> Iterator[StartWorker]:
    """Start an in-process Worker (engine and services by default); stopped after the test."""
    started: list[Worker] = []

    def start(**options: Any) -> Worker:
        settings: dict[str, Any] = {
            "services": [cls() for cls in SERVICES],
            "workflows": WORKFLOWS,
            "state_dir": tmp_path / "state",
            "stream": {"session_timeout_ms": 6000},
            **options,
        }
        worker = Worker({"bootstrap.servers": kafka_bootstrap}, namespace, **settings).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def client(kafka_bootstrap: str, namespace: str) -> Iterator[InfiniticClient]:
    with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as opened:
        yield opened


def events(history: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in history if event["event"] == name]


def expected_urls(url: str, sizes: list[int]) -> list[str]:
    images = ImageUtilImpl()
    image = images.download(url)
    return [images.upload(images.resize(image, size)) for size in sizes]


def test_the_seed_image_workflow_with_3_and_with_191_sizes(
    start_worker: StartWorker, client: InfiniticClient
) -> None:
    start_worker(services=[ImageUtilImpl()], workflows=[ImageWorkflow])
    url = "https://example.com/cat.png"
    three = client.dispatch(ImageWorkflow.run, "me@example.com", url)
    every = client.dispatch(ImageWorkflow.all_sizes, "me@example.com", url)
    assert three.result(timeout=60) == expected_urls(url, [64, 128, 256])
    assert every.result(timeout=60) == expected_urls(url, list(range(10, 201)))
    history = every.history()
    assert len(events(history, "TaskScheduled")) == 1 + 2 * 191 + 1
    assert every.describe().status == WorkflowStatus.COMPLETED


def test_a_50_task_sequence(start_worker: StartWorker, client: InfiniticClient) -> None:
    start_worker()
    handle = client.dispatch(Sum.run, 50)
    assert handle.result(timeout=60) == sum(range(50))
    history = handle.history()
    assert len(events(history, "TaskSucceeded")) == 50
    assert [e["event"] for e in history[-2:]] == ["TaskSucceeded", "Ended"]


def test_a_task_that_fails_twice_then_succeeds(
    start_worker: StartWorker, client: InfiniticClient
) -> None:
    start_worker()
    handle = client.dispatch(Flaky.run, 3)
    assert handle.result(timeout=60) == [1, 2, 3]  # the attempts task_context() reported
    history = handle.history()
    assert [e["attempt"] for e in events(history, "AttemptFailed")] == [1, 2]
    assert all(e["error"].type_name == "ConnectionError" for e in events(history, "AttemptFailed"))
    assert [e["attempt"] for e in events(history, "TaskSucceeded")] == [3]


def test_a_permanent_failure_caught_by_a_compensating_task(
    start_worker: StartWorker, client: InfiniticClient
) -> None:
    start_worker()
    handle = client.dispatch(Compensate.run, 4)
    assert handle.result(timeout=60) == "undone 4 after ValueError in 3 attempts"


def test_an_uncaught_failure_then_retry_once_the_fault_is_gone(
    start_worker: StartWorker, client: InfiniticClient, tmp_path: Path
) -> None:
    start_worker()
    fault = tmp_path / "fault"
    fault.touch()
    handle = client.dispatch(Fixable.run, str(fault))
    with pytest.raises(WorkflowFailed) as failed:
        handle.result(timeout=60)
    assert "RuntimeError" in str(failed.value)
    info = handle.describe()
    assert info.status == WorkflowStatus.FAILED
    assert info.error is not None and "exists" in info.error
    fault.unlink()
    handle.retry()
    assert handle.result(timeout=60) == "fixed"
    assert handle.describe().status == WorkflowStatus.COMPLETED


def test_a_slow_async_task_does_not_hold_back_its_partition(
    start_worker: StartWorker, client: InfiniticClient
) -> None:
    start_worker()
    assert client.dispatch(SideBySide.run, 2.0).result(timeout=60) == [3, "napped 1"]


def test_sleep_is_a_durable_timer(start_worker: StartWorker, client: InfiniticClient) -> None:
    start_worker()
    result = client.dispatch(Sleeper.run, 2.0).result(timeout=60)
    assert float(result.split()[1]) >= 2.0


@pytest.mark.parametrize(
    ("task_s", "timer_s", "winner"), [(0.0, 10.0, "task"), (10.0, 0.5, "timer")]
)
def test_any_of_task_and_timer_is_won_by_each_side(
    start_worker: StartWorker, client: InfiniticClient, task_s: float, timer_s: float, winner: str
) -> None:
    start_worker()
    assert client.dispatch(Race.run, task_s, timer_s).result(timeout=60) == winner


def test_a_timed_out_task(start_worker: StartWorker, client: InfiniticClient) -> None:
    start_worker()
    handle = client.dispatch(TimesOut.run, 3.0)
    assert handle.result(timeout=60) == "TaskTimedOut"
    [gave_up] = events(handle.history(), "TaskGaveUp")
    assert gave_up["timed_out"]


def test_dispatch_with_the_same_id_starts_one_workflow(
    start_worker: StartWorker, client: InfiniticClient
) -> None:
    start_worker()
    first = client.dispatch(Sum.run, 5, id="order-42")
    second = client.dispatch(Sum.run, 7, id="order-42")
    assert first.result(timeout=60) == second.result(timeout=60) == sum(range(5))
    assert len(events(first.history(), "Started")) == 1


@workflow("Changing")
class ChangingBefore(Workflow):
    def run(self, x: int) -> int:
        return self.new_service(Steps).add(x, 1)


@workflow("Changing")
class ChangingAfter(Workflow):
    def run(self, x: int) -> int:
        self.new_service(Steps).undo(x)
        return x


def test_code_changed_under_a_running_workflow(
    start_worker: StartWorker, client: InfiniticClient
) -> None:
    before = start_worker(services=[], workflows=[ChangingBefore])
    handle = client.dispatch(ChangingBefore.run, 1)
    deadline = time.monotonic() + 30
    while handle.describe().pending == [] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert handle.describe().pending == ["task Steps.add (step 1)"]
    before.stop()
    start_worker(workflows=[ChangingAfter])  # new code; services now answer the task
    with pytest.raises(WorkflowFailed) as failed:
        handle.result(timeout=60)
    assert failed.value.type_name == NonDeterministicWorkflow.__name__
    assert "task Steps.add" in failed.value.error_message
    assert "task Steps.undo" in failed.value.error_message


def test_undecodable_bytes_on_the_engine_topic_are_dead_lettered(
    start_worker: StartWorker, client: InfiniticClient, kafka_bootstrap: str, namespace: str
) -> None:
    start_worker()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"{namespace}.engine", b"\x00garbage\xff", b"some-key")
    assert producer.flush(10) == 0
    handles = [client.dispatch(Sum.run, n) for n in range(1, 6)]
    assert [h.result(timeout=60) for h in handles] == [sum(range(n)) for n in range(1, 6)]
    [letter] = read_dead_letters(kafka_bootstrap, namespace)
    assert letter.source_topic == f"{namespace}.engine"
    assert letter.reason.startswith("undecodable input")
    assert letter.value == b"\x00garbage\xff"


@workflow("NotDeployed")
class NotDeployed(Workflow):
    def run(self) -> int:
        return 1


def test_a_workflow_the_engine_lacks_fails_at_once_and_is_dead_lettered(
    start_worker: StartWorker, client: InfiniticClient, kafka_bootstrap: str, namespace: str
) -> None:
    start_worker()
    with pytest.raises(WorkflowFailed) as failed:
        client.dispatch(NotDeployed.run).result(timeout=60)
    assert failed.value.type_name == "UnknownWorkflow"
    assert "no workflow named 'NotDeployed'" in failed.value.error_message
    [letter] = read_dead_letters(kafka_bootstrap, namespace)
    assert letter.source_topic == f"{namespace}.engine"
    assert "deploy an engine with it" in letter.reason


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.kill()


def test_kill_9_of_the_engine_while_100_workflows_run(
    start_worker: StartWorker,
    client: InfiniticClient,
    processes: list[WorkerProcess],
    kafka_bootstrap: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    start_worker(engine=False)  # services in this process, the engine in a subprocess
    state = tmp_path / "engine-state"
    processes.append(WorkerProcess(kafka_bootstrap, namespace, state, "--engine"))
    handles = [client.dispatch(Sum.run, 10) for _ in range(100)]
    time.sleep(3.0)
    processes[-1].kill()
    processes.append(WorkerProcess(kafka_bootstrap, namespace, state, "--engine"))
    assert [h.result(timeout=120) for h in handles] == [45] * 100
    for handle in handles[::10]:
        history = handle.history()
        assert len(events(history, "TaskSucceeded")) == 10
        assert len(events(history, "Ended")) == 1


def test_tasks_read_before_an_aborted_commit_run_again_and_count_once(
    start_worker: StartWorker,
    client: InfiniticClient,
    processes: list[WorkerProcess],
    kafka_bootstrap: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Service workers read tasks before the engine's transaction commits. The engine here
    aborts each workflow's transaction once, after the service ran the task it issued: the
    redo issues the same task (same id) again, it runs again, and the history records each
    task exactly once."""
    log = tmp_path / "tasks.log"
    start_worker(engine=False)  # services in this process, the aborting engine in another
    engine_args = ("--engine", "--abort-after-task-read", str(log))
    processes.append(WorkerProcess(kafka_bootstrap, namespace, tmp_path / "engine", *engine_args))
    handles = [client.dispatch(LoggedSum.run, 5, str(log)) for _ in range(4)]
    try:
        assert [h.result(timeout=120) for h in handles] == [10] * 4
    except TimeoutError:
        raise AssertionError(processes[-1].log()[-6000:]) from None
    runs: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        task_id, attempt = line.split()
        runs.setdefault(task_id, []).append(attempt)
    for handle in handles:
        wid = handle.id
        # Read from the aborted transaction, then again (more than twice when the redo's
        # transaction was aborted too, for another workflow's task: at least once).
        assert len(runs[f"{wid}:3"]) >= 2, runs
        for seq in range(1, 6):
            assert set(runs[f"{wid}:{seq}"]) == {"1"}, runs  # the same task, not a retry
        history = handle.history()
        assert [e["seq"] for e in events(history, "TaskSucceeded")] == [1, 2, 3, 4, 5]
        assert len(events(history, "Ended")) == 1
    assert "injected abort after task" in processes[-1].log()


def test_kill_9_of_a_service_worker_mid_task(
    start_worker: StartWorker,
    client: InfiniticClient,
    processes: list[WorkerProcess],
    kafka_bootstrap: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    start_worker(services=[])  # the engine here; two service workers in subprocesses
    for name in ("a", "b"):
        processes.append(WorkerProcess(kafka_bootstrap, namespace, tmp_path / name, "--services"))
    time.sleep(5.0)  # both join the group before the task is sent
    marker = tmp_path / "marker"
    handle = client.dispatch(SlowOnce.run, 3.0, str(marker))
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    first_pid = int(marker.read_text().split()[0])
    victim = next(p for p in processes if p.process.pid == first_pid)
    victim.kill()
    result = handle.result(timeout=90)
    runs = marker.read_text().splitlines()
    assert len(runs) == 2, runs
    second_pid = int(runs[1].split()[0])
    assert second_pid != first_pid
    assert result == f"slept in {second_pid}"


@workflow("Evolving")
class EvolvingV1(Workflow):
    def run(self, x: int) -> str:
        added = self.new_service(Steps).add(x, 1)
        self.sleep(2.0)
        return f"added {added}, slept"


@workflow("Evolving")
class EvolvingBroken(Workflow):  # a change that breaks running workflows
    def run(self, x: int) -> str:
        self.new_service(Steps).undo(x)
        return "never"


@workflow("Evolving")
class EvolvingFixed(Workflow):  # the fix: running workflows take the old path
    def run(self, x: int) -> str:
        added = self.new_service(Steps).add(x, 1)
        self.sleep(2.0)
        return f"added {added}, slept (fixed)"


def wait_pending(handle: WorkflowHandle, prefix: str) -> None:
    deadline = time.monotonic() + 60
    while not any(p.startswith(prefix) for p in handle.describe().pending):
        assert time.monotonic() < deadline, handle.describe()
        time.sleep(0.1)


@pytest.mark.parametrize("found_on", ["a task result", "a timer"])
def test_retry_resumes_a_workflow_once_its_changed_code_is_fixed(
    start_worker: StartWorker, client: InfiniticClient, found_on: str
) -> None:
    if found_on == "a task result":  # the task runs only once the broken code is deployed
        old = start_worker(services=[], workflows=[EvolvingV1])
        handle = client.dispatch(EvolvingV1.run, 1)
        wait_pending(handle, "task Steps.add")
    else:  # the timer fires once the broken code is deployed
        old = start_worker(workflows=[EvolvingV1])
        handle = client.dispatch(EvolvingV1.run, 1)
        wait_pending(handle, "timer")
    old.stop()
    broken = start_worker(workflows=[EvolvingBroken])
    with pytest.raises(WorkflowFailed) as failed:
        handle.result(timeout=60)
    assert failed.value.type_name == NonDeterministicWorkflow.__name__
    broken.stop()
    start_worker(workflows=[EvolvingFixed])
    handle.retry()
    assert handle.result(timeout=60) == "added 2, slept (fixed)"
    history = handle.history()
    assert len(events(history, "TaskSucceeded")) == 1  # the result found while FAILED, kept
    assert len(events(history, "TimerFired")) == 1
