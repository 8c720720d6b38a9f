"""The workflow language on the real broker: signals across partitions, child workflows on
other partitions, cancel reaching a running task, tag groups, and a kill -9 of an engine while
parents wait on children and workflows wait on signals. One Worker (engine and services)
serves the module's namespace; the kill -9 case runs its own engines in subprocesses. What
needs no Kafka to be proven (receive's where and limit, any_of against a timer, cancel in a
retry delay, workflow timeouts) is in tests/test_testing_kit.py, on the test kit."""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infinitic_streams import (
    InfiniticClient,
    InfiniticError,
    Worker,
    WorkflowCanceled,
    WorkflowNotFound,
    WorkflowStatus,
)

from .apps import language
from .apps.language import (
    Child,
    Deadline,
    Holder,
    Lingerer,
    Parent,
    Sender,
    Tagged,
    Waiter,
)
from .kafka_support import WorkerProcess, read_dead_letters

PARTITIONS = 8
RESULT_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def module_namespace() -> str:
    return f"t-language-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, module_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    started = Worker(
        {"bootstrap.servers": kafka_bootstrap},
        module_namespace,
        services=[cls() for cls in language.SERVICES],
        workflows=language.WORKFLOWS,
        state_dir=tmp_path_factory.mktemp("language-state"),
        partitions=PARTITIONS,
        stream={"session_timeout_ms": 6000},
    ).start()
    yield started
    started.stop()


@pytest.fixture
def client(
    kafka_bootstrap: str, module_namespace: str, worker: Worker
) -> Iterator[InfiniticClient]:
    with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, module_namespace) as opened:
        yield opened


def partition_of(key: str) -> int:
    """The partition librdkafka's default partitioner (consistent_random: CRC-32) gives."""
    return zlib.crc32(key.encode()) % PARTITIONS


def ids_elsewhere(parent_id: str, count: int) -> list[str]:
    """`count` child ids that land on partitions other than the parent's."""
    ids = (f"{parent_id}-child-{n}" for n in range(10 * count))
    return [i for i in ids if partition_of(i) != partition_of(parent_id)][:count]


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return found


def events(handle: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in handle.history() if e["event"] == name]


def test_signals_to_a_missing_workflow_or_channel_raise_and_are_dead_lettered(
    client: InfiniticClient, kafka_bootstrap: str, module_namespace: str
) -> None:
    with pytest.raises(WorkflowNotFound):
        client.get_workflow(Deadline, f"nobody-{uuid.uuid4()}").signal("answers", 1)
    handle = client.dispatch(Deadline.run, 60.0)
    with pytest.raises(
        InfiniticError, match=r"no channel 'questions' \(its channels: \['answers'\]\)"
    ):
        handle.signal("questions", 1)  # the client knows the class: refused before sending
    untyped = client.get_workflow(None, handle.id)
    with pytest.raises(InfiniticError, match=r"no channel 'questions'.*\['answers'\]"):
        untyped.signal("questions", 1)  # refused by the engine
    with pytest.raises(InfiniticError, match="does not fit channel 'answers'"):
        untyped.signal("answers", "not an int")
    reasons = [d.reason for d in read_dead_letters(kafka_bootstrap, module_namespace)]
    assert any(handle.id in r and "no channel 'questions'" in r for r in reasons)
    assert any("no workflow with id nobody-" in r for r in reasons)
    handle.signal("answers", 3)
    assert handle.result(timeout=RESULT_TIMEOUT_S) == "signal 3"


def test_a_workflow_signals_another_once(client: InfiniticClient) -> None:
    target = client.dispatch(Deadline.run, 60.0)
    sender = client.dispatch(Sender.run, target.id, 5)
    assert sender.result(timeout=RESULT_TIMEOUT_S) == "sent"
    assert target.result(timeout=RESULT_TIMEOUT_S) == "signal 5"
    [received] = events(target, "SignalReceived")
    assert received["sender"] == sender.id


def test_twenty_children_on_other_partitions_return_or_fail(client: InfiniticClient) -> None:
    parent_id = f"parent-{uuid.uuid4().hex[:8]}"
    ids = ids_elsewhere(parent_id, 20)
    xs = [*range(19), -1]
    handle = client.dispatch(Parent.run, ids, xs, id=parent_id)
    results = handle.result(timeout=RESULT_TIMEOUT_S)
    assert results[:19] == [2 * x for x in range(19)]
    assert results[19] == f"{ids[19]} ValueError: -1 is negative"
    children = handle.describe().children
    assert [c[0] for c in children] == ids
    assert [c[2] for c in children] == [WorkflowStatus.COMPLETED] * 19 + [WorkflowStatus.FAILED]
    assert client.get_workflow(Child, ids[0]).result(timeout=RESULT_TIMEOUT_S) == 0
    assert len(events(handle, "ChildFinished")) == 20


def test_cancel_reaches_the_child_and_its_running_async_task(
    client: InfiniticClient, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    child_id = f"lingerer-{uuid.uuid4().hex[:8]}"
    holder = client.dispatch(Holder.run, child_id, str(marker))
    wait_until(lambda: marker.exists() and "started" in marker.read_text())
    assert holder.cancel() is True
    with pytest.raises(WorkflowCanceled):
        holder.result(timeout=RESULT_TIMEOUT_S)
    child = client.get_workflow(Lingerer, child_id)
    with pytest.raises(WorkflowCanceled):
        child.result(timeout=RESULT_TIMEOUT_S)
    wait_until(lambda: "cancelled True" in marker.read_text())  # the async task was cancelled
    assert holder.cancel() is False  # it has ended: nothing changes
    assert holder.describe().status == WorkflowStatus.CANCELED


def test_a_tag_group_of_five_among_others(client: InfiniticClient, tmp_path: Path) -> None:
    tag = f"batch:{uuid.uuid4().hex[:6]}"
    broken = tmp_path / "broken"
    broken.touch()
    members = [
        client.dispatch(Tagged.run, str(broken if i == 0 else tmp_path / "fine"), tags=[tag])
        for i in range(5)
    ]
    others = [client.dispatch(Tagged.run, str(tmp_path / "fine"), tags=["other"]) for _ in range(3)]
    group = client.get_workflows(Tagged, tag=tag)
    wait_until(lambda: len(group.ids()) == 5, timeout=10.0)
    assert sorted(group.ids()) == sorted(h.id for h in members)
    wait_until(lambda: members[0].describe().status == WorkflowStatus.FAILED)
    wait_until(lambda: all("signal" in " ".join(h.describe().pending) for h in members[1:]))
    assert group.signal("go", "ok") == 4  # the running ones
    assert [h.result(timeout=RESULT_TIMEOUT_S) for h in members[1:]] == ["ok"] * 4
    broken.unlink()  # the fault is gone
    assert group.retry() == 1  # the failed one
    wait_until(lambda: members[0].describe().status == WorkflowStatus.RUNNING)
    wait_until(lambda: "signal" in " ".join(members[0].describe().pending))
    assert group.cancel() == 1
    with pytest.raises(WorkflowCanceled):
        members[0].result(timeout=RESULT_TIMEOUT_S)
    assert all(h.describe().status == WorkflowStatus.RUNNING for h in others)
    for other in others:
        other.cancel()


def test_kill_9_of_an_engine_while_parents_wait_on_children_and_signals(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    """Two engine processes share the partitions; one is killed and restarted while 20
    workflows wait on a child (on another partition) and on a signal."""
    services = Worker(
        {"bootstrap.servers": kafka_bootstrap},
        namespace,
        services=[cls() for cls in language.SERVICES],
        engine=False,
        partitions=PARTITIONS,
    ).start()
    engines = [
        WorkerProcess(kafka_bootstrap, namespace, tmp_path / f"e{i}", "--engine", "--language")
        for i in (1, 2)
    ]
    try:
        with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as client:
            handles = []
            for n in range(20):
                parent_id = f"waiter-{n}-{uuid.uuid4().hex[:6]}"
                [child_id] = ids_elsewhere(parent_id, 1)
                handles.append(client.dispatch(Waiter.run, child_id, n, id=parent_id))
            wait_until(lambda: events(handles[-1], "ChildFinished"), timeout=RESULT_TIMEOUT_S)
            engines[0].kill()
            engines[0] = WorkerProcess(
                kafka_bootstrap, namespace, tmp_path / "e1", "--engine", "--language"
            )
            for handle in handles:
                handle.signal("go", 1)
            results = [h.result(timeout=RESULT_TIMEOUT_S) for h in handles]
            assert results == [2 * n + 1 for n in range(20)]
            for handle in handles:
                history = [e["event"] for e in handle.history()]
                assert [history.count(e) for e in ("ChildFinished", "SignalReceived", "Ended")] == [
                    1,
                    1,
                    1,
                ], handle.id
    finally:
        for engine in engines:
            engine.kill()
        services.stop()
