"""A Worker on the real broker tells its story in its log (failed attempts with their retry
decision, dead letters with their reason, start and stop) and never fails silently: a part
that dies stops the worker and its error comes out of `run()`, `join()` and `stop()`."""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from infinitic_streams import InfiniticClient, Worker, Workflow, WorkflowFailed, service, workflow
from infinitic_streams.streams.app import StateDirLocked

from .apps.workflows import SERVICES, WORKFLOWS, Compensate, Flaky, StepsImpl
from .kafka_support import WorkerProcess, read_dead_letters

SECRET = "never-logged-s3cret"
StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> Iterator[StartWorker]:
    """Start an in-process Worker (engine and services by default); stopped after the test
    (a worker a test made fail raises its error from `stop()`: the test checks it)."""
    started: list[Worker] = []

    def start(**options: Any) -> Worker:
        settings: dict[str, Any] = {
            "kafka": {"bootstrap.servers": kafka_bootstrap},
            "namespace": namespace,
            "services": [cls() for cls in SERVICES],
            "workflows": WORKFLOWS,
            "state_dir": tmp_path / "state",
            "stream": {"session_timeout_ms": 6000},
            **options,
        }
        worker = Worker(**settings).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.error is None:
            worker.stop()


@pytest.fixture
def client(kafka_bootstrap: str, namespace: str) -> Iterator[InfiniticClient]:
    with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as opened:
        yield opened


def lines(caplog: pytest.LogCaptureFixture, logger: str = "infinitic_streams") -> list[str]:
    return [r.getMessage() for r in list(caplog.records) if r.name.startswith(logger)]


def wait_for_line(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 60.0) -> str:
    """The first captured line containing `text`, waiting for it (bounded, not timed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in lines(caplog) if text in line]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"{text!r} not logged:\n" + "\n".join(lines(caplog))
        time.sleep(0.1)


def produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value, b"some-key")
    assert producer.flush(30) == 0


@workflow("NotDeployed")
class NotDeployed(Workflow):
    def run(self) -> int:
        return 1


def test_the_log_names_failed_attempts_their_retries_and_dead_letters_with_reasons(
    start_worker: StartWorker,
    client: InfiniticClient,
    kafka_bootstrap: str,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "infinitic_streams")
    # A secret setting (unused without SASL) must never be logged, even without a filter.
    worker = start_worker(kafka={"bootstrap.servers": kafka_bootstrap, "sasl.password": SECRET})
    handle = client.dispatch(Compensate.run, 7)  # always_fails: 3 attempts, then undo
    assert handle.result(timeout=60) == "undone 7 after ValueError in 3 attempts"
    task = f"{handle.id}:1"
    # (a line repeats if the engine's transaction is aborted and the attempt handled again)
    engine = list(dict.fromkeys(lines(caplog, "infinitic_streams.engine")))
    assert engine == [
        "task Steps.always_fails attempt 1 of 3 failed: ValueError: 7 is not acceptable; "
        f"attempt 2 in 0.2 s [task {task}, workflow Compensate]",
        "task Steps.always_fails attempt 2 of 3 failed: ValueError: 7 is not acceptable; "
        f"attempt 3 in 0.4 s [task {task}, workflow Compensate]",
        "task Steps.always_fails attempt 3 of 3 failed: ValueError: 7 is not acceptable; no "
        f"attempt left: the task failed (TaskFailed in the workflow) [task {task}, workflow "
        "Compensate]",
    ]
    # With the engine in the process, the service worker leaves the attempt to its line.
    assert not any("always_fails failed (attempt" in line for line in lines(caplog))

    with pytest.raises(WorkflowFailed):
        client.dispatch(NotDeployed.run).result(timeout=60)
    dead = wait_for_line(caplog, "no workflow named 'NotDeployed'")
    assert dead.startswith(f"engine: dead-lettered {namespace}.engine[")
    assert f"to {namespace}.dlq: no workflow named 'NotDeployed' in this engine" in dead

    produce(kafka_bootstrap, f"{namespace}.engine", b"\x00garbage\xff")
    garbage = wait_for_line(caplog, "undecodable input")
    assert f"dead-lettered {namespace}.engine[" in garbage

    worker.stop()
    text = "\n".join(lines(caplog))
    assert (
        f"worker starting: namespace {namespace!r} on Kafka {kafka_bootstrap} (8 partitions "
        "per topic): the engine (workflows " in text
    )
    assert "services Steps (16 at a time), Slow (16 at a time)" in text
    assert "engine: partitions assigned: 0-7" in text
    assert "service Steps: stopped (" in text
    assert text.index("engine: stopped (left group") < text.index("\nworker stopped")
    assert SECRET not in text
    dead_letter_records = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert {r.levelname for r in dead_letter_records} == {"WARNING"}


def test_a_service_worker_process_logs_its_failed_attempts_and_dead_letters(
    start_worker: StartWorker,
    client: InfiniticClient,
    kafka_bootstrap: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    start_worker(services=[])  # the engine here, the services in a process of their own
    process = WorkerProcess(kafka_bootstrap, namespace, tmp_path / "services", "--services")
    try:
        assert client.dispatch(Flaky.run, 2).result(timeout=60) == [1, 2]
        produce(kafka_bootstrap, f"{namespace}.tasks.Steps", b"not a task")
        deadline = time.monotonic() + 60
        while not read_dead_letters(kafka_bootstrap, namespace):
            assert time.monotonic() < deadline, process.log()
            time.sleep(0.2)
        assert process.terminate() == 0, process.log()
    finally:
        process.kill()
    log = process.log()
    assert "INFO infinitic_streams.worker: task Steps.fail_until failed (attempt 1, task " in log, (
        log
    )
    assert "): ConnectionError: attempt 1 fails on purpose" in log
    assert (
        f"WARNING infinitic_streams.worker: service Steps: dead-lettered {namespace}.tasks" in log
    )
    assert f"to {namespace}.dlq: not a task: " in log
    assert "INFO infinitic_streams.worker: service Steps: stopped (" in log
    assert "INFO infinitic_streams.worker: worker stopped" in log, log[-2000:]


# -- a part that dies stops the worker, and its error comes out ------------------------------


class Crash(BaseException):
    """Not an Exception: it escapes the task's error handling and the task's thread."""


@service("Crashing")
class Crashing:
    def crash(self, x: int) -> int: ...


class CrashingImpl(Crashing):
    def crash(self, x: int) -> int:
        raise Crash(f"crashed on {x}")


@workflow("CrashesItsService")
class CrashesItsService(Workflow):
    def run(self, x: int) -> int:
        return self.new_service(Crashing).crash(x)


def test_a_dead_service_thread_stops_a_started_worker_and_join_and_stop_raise(
    start_worker: StartWorker, client: InfiniticClient, caplog: pytest.LogCaptureFixture
) -> None:
    worker = start_worker(services=[CrashingImpl(), StepsImpl()], workflows=[CrashesItsService])
    client.dispatch(CrashesItsService.run, 3)
    with pytest.raises(Crash, match="crashed on 3"):
        worker.join(timeout=120)  # the whole worker stopped, the engine too
    assert isinstance(worker.error, Crash)
    with pytest.raises(Crash):
        worker.stop()
    [failed] = [r for r in caplog.records if "failed (stopping the worker)" in r.getMessage()]
    assert failed.levelname == "ERROR"
    assert failed.getMessage() == (
        "service Crashing failed (stopping the worker): Crash: crashed on 3"
    )


def test_run_raises_when_a_service_thread_dies(
    start_worker: StartWorker, client: InfiniticClient, kafka_bootstrap: str, namespace: str
) -> None:
    start_worker(services=[], workflows=[CrashesItsService])  # the engine
    services = Worker(
        {"bootstrap.servers": kafka_bootstrap}, namespace, services=[CrashingImpl()], engine=False
    )
    raised: list[BaseException] = []

    def run() -> None:  # not the main thread: run() installs no signal handler
        try:
            services.run()
        except BaseException as error:
            raised.append(error)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    client.dispatch(CrashesItsService.run, 5)
    runner.join(120)
    assert not runner.is_alive()
    [error] = raised
    assert isinstance(error, Crash) and str(error) == "crashed on 5"


def test_an_engine_that_cannot_start_fails_its_worker_with_the_reason(
    start_worker: StartWorker, client: InfiniticClient, namespace: str, tmp_path: Path
) -> None:
    state = tmp_path / "shared-state"
    lock_path = state / namespace / "engine" / "lock"
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as held:  # another process holds this state directory
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        worker = start_worker(state_dir=state)  # the engine and service threads
        with pytest.raises(StateDirLocked, match="used by another running process"):
            worker.join(timeout=120)
    with pytest.raises(StateDirLocked):
        worker.stop()
    # Its service threads stopped with it: they no longer run the workflows' tasks.
    assert not [t for t in threading.enumerate() if t.name.startswith("service Steps")]
    assert isinstance(worker.error, StateDirLocked)
