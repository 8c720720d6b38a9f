"""Child workflows, cancel and workflow timeouts in the engine, without Kafka. Every case runs
with live instances and with the cache dropped before every message (all replays)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infinitic_streams import (
    WorkflowCanceled,
    all_of,
    payload,
    workflow,
)
from infinitic_streams.protocol import (
    CancelTask,
    CancelWorkflow,
    ExecuteTask,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    WorkflowResult,
    WorkflowStatus,
)
from infinitic_streams.protocol.replies import CancelAnswer, WorkflowDescription
from infinitic_streams.workflows.workflow import Workflow

from .apps.language import Child, Chores, Parent
from .engine_harness import CLIENT, Harness, dispatch, names


@workflow("Joiner")
class Joiner(Workflow):
    def run(self, child_id: str) -> list[int]:
        first = self.dispatch(self.new_workflow(Child, id=child_id).run, 1)
        second = self.dispatch(self.new_workflow(Child, id=child_id).run, 1)
        return all_of(first, second).result()  # type: ignore[no-any-return]


@workflow("Waiting")
class Waiting(Workflow):
    def run(self) -> str:
        try:
            self.new_workflow(Child, id="w-child").run(5)
        except WorkflowCanceled:
            return "child canceled"
        return "child done"


@workflow("Slowpoke", timeout=30.0)
class Slowpoke(Workflow):
    def run(self) -> int:
        self.dispatch(self.new_workflow(Child, id="slow-child").run, 3)
        self.sleep(10.0)
        return self.new_service(Chores).double(1)


@workflow("Canceler")
class Canceler(Workflow):
    def run(self, target: str) -> None:
        self.get_workflow(Slowpoke, target).cancel()


@pytest.fixture
def harness(harness_in_both_modes: Callable[..., Harness]) -> Callable[..., Harness]:
    """Every test of this module runs with live instances and with replays only."""
    return harness_in_both_modes


def run_tasks(h: Harness) -> int:
    """Answer every ExecuteTask (double its argument); how many there were."""
    tasks = h.take(ExecuteTask)
    for task in tasks:
        [x] = payload.decode_args([p.data for p in task.args], [int])
        h.reply(task, 2 * x, int)
    return len(tasks)


def results(h: Harness) -> dict[str, WorkflowResult]:
    return {r.workflow_id: r for r in h.take(WorkflowResult)}


def cancel(h: Harness, workflow_id: str) -> CancelAnswer:
    h.send(CancelWorkflow(workflow_id=workflow_id, reason="asked", request_id="c", reply_to=CLIENT))
    [reply] = h.take(QueryReply)
    return payload.decode(reply.data, CancelAnswer)  # type: ignore[return-value]


def test_twenty_children_in_parallel_return_or_fail_to_their_parent(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Parent, Child])
    xs = [*range(19), -1]
    ids = [f"kid-{n}" for n in range(20)]
    h.send(
        dispatch("p-1", "Parent", [payload.encode(ids, list[str]), payload.encode(xs, list[int])])
    )
    h.pump()
    assert run_tasks(h) == 19
    h.pump()
    [result] = results(h).values()
    values = payload.decode(result.result.data, list[int | str])
    assert values[:19] == [2 * x for x in range(19)]
    assert values[19] == "kid-19 ValueError: -1 is negative"
    history = h.history("p-1")
    assert names(history).count("ChildStarted") == 20
    assert names(history).count("ChildFinished") == 20
    describe = QueryWorkflow(
        request_id="d", workflow_id="p-1", query=QueryKind.DESCRIBE, reply_to=CLIENT
    )
    h.send(describe)
    [reply] = h.take(QueryReply)
    children = payload.decode(reply.data, WorkflowDescription).children
    assert [c.id for c in children] == ids
    assert children[0].status == WorkflowStatus.COMPLETED
    assert children[19].status == WorkflowStatus.FAILED


def test_a_child_id_that_exists_is_joined(harness: Callable[..., Harness]) -> None:
    h = harness([Joiner, Child])
    h.send(dispatch("j-1", "Joiner", [b'"shared"']))
    h.pump()
    assert run_tasks(h) == 1  # one child, started once
    h.pump()
    assert payload.decode(results(h)["j-1"].result.data, list[int]) == [2, 2]


def test_cancel_ends_the_workflow_drops_its_timers_and_cancels_its_tasks_and_children(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Slowpoke, Child])
    h.send(dispatch("s-1", "Slowpoke", []))
    h.pump()
    [child_task] = h.take(ExecuteTask)  # the child's task, running
    assert cancel(h, "s-1") == CancelAnswer(True, WorkflowStatus.CANCELED)
    [ended] = results(h).values()
    assert (ended.status, ended.error.message) == (WorkflowStatus.CANCELED, "asked")
    h.pump()  # the child is canceled, and its task told
    [cancel_task] = h.take(CancelTask)
    assert cancel_task.task_id == child_task.task_id
    assert h.state("slow-child").status == WorkflowStatus.CANCELED
    h.reply(child_task, 6, int)  # a late result: recorded, ignored
    assert names(h.history("slow-child"))[-1] == "TaskSucceeded"
    h.advance(60.0)  # its timer and its timeout were dropped: nothing happens
    assert h.take(ExecuteTask) == []
    assert names(h.history("s-1")).count("Ended") == 1
    assert cancel(h, "s-1") == CancelAnswer(False, WorkflowStatus.CANCELED)


def test_a_canceled_child_raises_workflow_canceled_in_its_parent(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Waiting, Child])
    h.send(dispatch("w-1", "Waiting", []))
    h.pump()
    h.take(ExecuteTask)
    assert cancel(h, "w-child").canceled
    h.pump()
    assert payload.decode(results(h)["w-1"].result.data, str) == "child canceled"


def test_cancel_during_a_retry_delay_sends_no_more_attempts(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Child])
    h.send(dispatch("c-1", "Child", [b"4"]))
    [task] = h.take(ExecuteTask)
    h.fail(task)  # retried in 10 s
    assert cancel(h, "c-1").canceled
    h.advance(60.0)
    assert h.take(ExecuteTask) == []


def test_a_workflow_cancels_another(harness: Callable[..., Harness]) -> None:
    h = harness([Slowpoke, Child, Canceler])
    h.send(dispatch("s-2", "Slowpoke", []))
    h.send(dispatch("k-1", "Canceler", [b'"s-2"']))
    h.pump()
    assert h.state("s-2").status == WorkflowStatus.CANCELED
    error = h.state("s-2").error
    assert error is not None
    assert "canceled by workflow Canceler k-1" in error.message


def test_a_workflow_past_its_timeout_fails_and_stops_its_work(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Slowpoke, Child])
    h.send(dispatch("s-3", "Slowpoke", []))
    h.pump()
    h.take(ExecuteTask)
    h.advance(11.0)  # the sleep is over: a task runs
    [task] = h.take(ExecuteTask)
    h.advance(20.0)  # 31 s after the start
    ended = results(h)["s-3"]
    assert (ended.status, ended.error.type_name) == (WorkflowStatus.FAILED, "WorkflowTimedOut")
    assert "still running 30 s after its start" in ended.error.message
    assert [c.task_id for c in h.take(CancelTask)] == [task.task_id]
    h.pump()
    assert h.state("slow-child").status == WorkflowStatus.CANCELED


@workflow("Careless")
class Careless(Workflow):
    def run(self) -> int:
        return self.new_workflow(Child, id="bad-child").run(-5)  # type: ignore[no-any-return]


def test_a_parent_failed_by_its_child_names_the_child_and_its_error(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Careless, Child])
    h.send(dispatch("c-9", "Careless", []))
    h.pump()
    ended = results(h)["c-9"]
    assert ended.status == WorkflowStatus.FAILED
    assert ended.error.type_name == "WorkflowFailed"
    assert "workflow bad-child failed: ValueError: -5 is negative" in ended.error.message


@workflow("Simple")
class Simple(Workflow):
    def run(self, x: int) -> int:
        return self.new_workflow(Child).run(x)  # type: ignore[no-any-return]


def test_a_child_without_an_id_is_named_after_its_parent_and_step(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Simple, Child])
    h.send(dispatch("x-1", "Simple", [b"2"]))
    h.pump()
    assert run_tasks(h) == 1
    h.pump()
    assert payload.decode(results(h)["x-1"].result.data, int) == 4
    assert h.state("x-1.1").workflow_name == "Child"
