"""The events the engine publishes: one CloudEvent per recorded history event, in history
order, with ids that do not change when a step is replayed; the visibility index built from
them (pure: the engine harness and a local store, no Kafka)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infinitic_streams import payload
from infinitic_streams.definitions import RetryPolicy, service, workflow
from infinitic_streams.protocol import (
    ExecuteTask,
    Payload,
    RetryWorkflow,
    TaskCompleted,
    WorkflowStatus,
    cloudevents,
)
from infinitic_streams.streams import Context
from infinitic_streams.streams.state.store import PartitionStore
from infinitic_streams.streams.state.transaction import PartitionTransaction
from infinitic_streams.topics import Topics
from infinitic_streams.visibility import index
from infinitic_streams.visibility.processor import VisibilityProcessor
from infinitic_streams.workflows.workflow import Workflow

from .engine_harness import Harness, dispatch


@service("Jobs", retry=RetryPolicy(max_attempts=2, initial_delay=1.0, jitter=0.0))
class Jobs:
    def work(self, x: int) -> int: ...


@workflow("Job")
class Job(Workflow):
    def run(self, x: int) -> int:
        jobs = self.new_service(Jobs)
        y = jobs.work(x)
        self.sleep(5)
        return jobs.work(y)


def run_job(h: Harness) -> None:
    """Task 1 fails once then succeeds, a 5 s timer, task 2 fails twice: the workflow fails."""
    h.send(dispatch("job-1", "Job", [b"1"]))
    [first] = h.take(ExecuteTask)
    h.fail(first)
    h.advance(1.5)
    [again] = h.take(ExecuteTask)
    h.reply(again, 2, int)
    h.advance(5.5)
    [second] = h.take(ExecuteTask)
    h.fail(second)
    h.advance(1.5)
    [last] = h.take(ExecuteTask)
    h.fail(last)


def test_each_recorded_event_is_published_once_in_order_as_a_cloud_event(
    harness_in_both_modes: Callable[..., Harness],
) -> None:
    h = harness_in_both_modes([Job])
    run_job(h)
    assert [e["type"] for e in h.events] == [
        "infinitic.workflow.started",
        "infinitic.task.scheduled",
        "infinitic.task.retried",
        "infinitic.task.completed",
        "infinitic.timer.scheduled",
        "infinitic.timer.fired",
        "infinitic.task.scheduled",
        "infinitic.task.retried",
        "infinitic.task.attemptfailed",
        "infinitic.task.failed",
        "infinitic.workflow.failed",
    ]
    assert len(h.events) == len(h.history("job-1"))
    started_at = h.state("job-1").started_at_ms
    assert [e["id"] for e in h.events] == [f"job-1/{started_at}/{i}" for i in range(11)]
    for event in h.events:
        assert event["specversion"] == "1.0" and event["subject"] == "job-1"
        assert event["source"] == "/infinitic/test/Job" and event["workflowname"] == "Job"
        assert event["datacontenttype"] == "application/json" and event["workflowmethod"] == "run"
    first, completed, failed = h.events[0], h.events[3], h.events[-1]
    assert first["data"] == {"method": "run", "args": [1], "run": 1, "tags": [], "parent_id": None}
    assert completed["data"] == {"seq": 1, "attempt": 2, "result": 2}
    assert failed["workflowstatus"] == "FAILED"
    assert failed["data"]["error"]["type_name"] == "TaskFailed"
    assert "disk full" in failed["data"]["error"]["message"]
    assert first["time"].endswith("Z") and cloudevents.time_ms(first) == started_at

    h.send(RetryWorkflow(workflow_id="job-1"))  # voids the failure, sends task 2 again
    [resent] = h.take(ExecuteTask)
    h.reply(resent, 3, int)
    assert [e["type"] for e in h.events[11:]] == [
        "infinitic.workflow.retried",
        "infinitic.task.completed",
        "infinitic.workflow.completed",
    ]
    assert [e["workflowstatus"] for e in h.events[11:]] == ["RUNNING", "RUNNING", "COMPLETED"]
    assert h.events[-1]["data"] == {"result": 3, "error": None}
    assert len({e["id"] for e in h.events}) == len(h.events) == len(h.history("job-1"))


def test_an_event_produced_again_after_an_abort_has_the_same_id(
    harness_in_both_modes: Callable[..., Harness],
) -> None:
    h = harness_in_both_modes([Job])
    h.send(dispatch("job-2", "Job", [b"1"]))
    [task] = h.take(ExecuteTask)
    h.advance(0.5)
    aborted = Context(h.transaction, 0)  # handled, then its transaction aborts: dropped
    h.engine.cache.clear()  # the instance moved on with it: an abort makes the engine replay
    h.engine.handle(aborted, _completed(task, 2))
    first = [
        cloudevents.parse(o.value) for o in aborted.outputs if o.topic == h.engine.topics.events
    ]
    h.engine.cache.clear()
    h.reply(task, 2, int)
    again = h.events[-len(first) :]
    assert [e["type"] for e in first] == ["infinitic.task.completed", "infinitic.timer.scheduled"]
    assert [e["id"] for e in again] == [e["id"] for e in first]


def _completed(task: ExecuteTask, result: int) -> TaskCompleted:
    return TaskCompleted(
        task_id=task.task_id,
        workflow_id=task.workflow_id,
        attempt=task.attempt,
        result=Payload(data=payload.encode(result, int)),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PartitionStore]:
    opened = PartitionStore(tmp_path / "visibility", ("state",))
    yield opened
    opened.close()


def test_the_index_lists_and_counts_by_name_status_and_tag_newest_first(
    harness_in_both_modes: Callable[..., Harness], store: PartitionStore
) -> None:
    h = harness_in_both_modes([Job])
    for n, tags in enumerate([("a",), ("a", "b"), ("b",), ()]):
        h.send(dispatch(f"w{n}", "Job", [b"1"], tags=tags))
        h.advance(0.01)
    [w0, _, _, w3] = h.take(ExecuteTask)
    h.reply(w0, 2, int)
    h.advance(0.01)
    h.fail(w3, retryable=False)  # w3 FAILED; w0 waits on its timer, others on their task
    ctx = Context(PartitionTransaction(store), 0)
    applied = 0

    def sync() -> None:  # the index takes the events published since the last call
        nonlocal applied
        for event in h.events[applied:]:
            index.apply(ctx, event)
        applied = len(h.events)

    def ids(name=None, status=None, tag=None, limit=10, after=None) -> list[str]:  # type: ignore[no-untyped-def]
        answer = index.query(ctx, name, status, tag, limit, after)
        return [item.workflow_id for item in answer.items]

    def counts(name: str | None = None, tag: str | None = None) -> list[int]:
        return list(index.query(ctx, name, None, tag, 0, None).counts.values())

    sync()
    assert ids() == ["w3", "w0", "w2", "w1"]  # newest updated first
    assert ids(tag="a") == ["w0", "w1"] and ids(tag="b", status="RUNNING") == ["w2", "w1"]
    assert ids(status="FAILED", name="Job") == ["w3"] and ids(name="Other") == []
    assert ids(limit=2) == ["w3", "w0"] and ids(limit=0) == []
    page = index.query(ctx, None, None, None, 2, None).items
    assert ids(after=page[-1].cursor) == ["w2", "w1"]
    assert counts("Job", "b") == [2, 0, 0, 0]  # RUNNING, COMPLETED, FAILED, CANCELED
    assert counts() == [3, 0, 1, 0] and counts(tag="zzz") == [0, 0, 0, 0]
    failed = index.load(ctx, "w3")
    assert failed is not None and failed.status == WorkflowStatus.FAILED
    assert failed.error_type == "TaskFailed" and failed.ended_at_ms is not None
    assert index.load(ctx, "w1").tags == ["a", "b"]  # type: ignore[union-attr]

    h.advance(0.01)
    h.send(RetryWorkflow(workflow_id="w3"))  # back to RUNNING: it moves in every index
    sync()
    assert ids(status="FAILED") == [] and ids(status="RUNNING")[0] == "w3"
    assert counts() == [4, 0, 0, 0] and index.load(ctx, "w3").ended_at_ms is None  # type: ignore[union-attr]
    [resent] = h.take(ExecuteTask)
    h.fail(resent, retryable=False)
    h.advance(8 * 24 * 3600)  # past the retention of the ended one: the engine forgets it
    sync()
    assert h.events[-1]["type"] == cloudevents.REMOVED and h.events[-1]["subject"] == "w3"
    assert "w3" not in ids() and index.load(ctx, "w3") is None
    assert counts()[2] == 0 and sum(counts()) == 3
    with pytest.raises(ValueError, match="cursor"):
        index.query(ctx, None, None, None, 5, "not-a-cursor")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"\xff\xfe garbage", "not JSON"),
        (b'{"hello": 1}', "not a CloudEvent 1.0"),
        (b'{"specversion": "1.0", "id": "x"}', "without its 'type'"),
        (None, "without a value"),
    ],
)
def test_the_index_refuses_what_is_not_an_engine_event(value: bytes | None, why: str) -> None:
    """Garbage on the events topic is dead-lettered with the reason (the runtime's rule for a
    `decode` that raises); the partition moves on."""
    processor = VisibilityProcessor(Topics("t"))
    with pytest.raises(ValueError, match=why):
        processor.decode(b"k", value)
