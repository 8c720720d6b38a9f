"""`retry()` of FAILED workflows: a FAILED workflow keeps recording facts, and a retry after the
code is fixed resumes it, whatever message revealed the divergence or came in meanwhile.

Most tests run twice: with the cache of live instances, and with it dropped before every
message and timer (so every step is a replay of the history)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infinitic_streams import payload
from infinitic_streams.definitions import RetryPolicy, service, workflow
from infinitic_streams.errors import TaskFailed
from infinitic_streams.protocol import (
    ExecuteTask,
    QueryKind,
    QueryWorkflow,
    RetryWorkflow,
    WorkflowResult,
    WorkflowStatus,
)
from infinitic_streams.workflows.workflow import Workflow

from .engine_harness import CLIENT, Harness, dispatch, harnesses, names

CACHE = pytest.mark.parametrize("drop_cache", [False, True], ids=["cached", "replayed"])


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    yield from harnesses(tmp_path)


@service("Ops", retry=RetryPolicy(max_attempts=1), timeout=5.0)
class Ops:
    def add(self, x: int, y: int) -> int: ...
    def undo(self, x: int) -> None: ...


# Version 1 of "Evolving", a version 2 that diverges from its history, and the fix (= v1).
@workflow("Evolving")
class EvolvingV1(Workflow):
    def run(self, x: int) -> str:
        ops = self.new_service(Ops)
        self.sleep(2.0)
        try:
            total = ops.add(x, 1)
        except TaskFailed as error:
            return f"caught {type(error).__name__}"
        return f"total {total}"


@workflow("Evolving")
class EvolvingV2(Workflow):
    def run(self, x: int) -> str:
        self.new_service(Ops).undo(x)  # used to be: a timer, then add
        return "v2"


def failed_with(h: Harness, type_name: str) -> WorkflowResult:
    [result] = h.take(WorkflowResult)
    assert (result.status, result.error.type_name) == (WorkflowStatus.FAILED, type_name)
    return result


def completed_with(h: Harness, value: str) -> None:
    [result] = h.take(WorkflowResult)
    assert result.status == WorkflowStatus.COMPLETED, result.error
    assert payload.decode(result.result.data, str) == value


def retry(h: Harness, workflow_id: str) -> list[ExecuteTask]:
    """Retry, then wait for the result as a client does; the tasks sent."""
    h.send(RetryWorkflow(workflow_id=workflow_id))
    h.send(
        QueryWorkflow(
            request_id="q", workflow_id=workflow_id, query=QueryKind.RESULT, reply_to=CLIENT
        )
    )
    return h.take(ExecuteTask)


def started_v1_waiting_on_add(h: Harness, workflow_id: str) -> ExecuteTask:
    h.send(dispatch(workflow_id, "Evolving", [b"1"]))
    h.advance(2.1)
    [add] = h.take(ExecuteTask)
    assert add.method_name == "add"
    return add


@CACHE
def test_retry_after_a_divergence_found_on_a_task_result(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([EvolvingV1])
    h.drop_cache = drop_cache
    add = started_v1_waiting_on_add(h, "r-1")
    h.redeploy([EvolvingV2])
    h.reply(add, 2, int)
    failed_with(h, "NonDeterministicWorkflow")
    assert names(h.history("r-1"))[-2:] == ["Ended", "TaskSucceeded"]  # the fact, after the end

    h.redeploy([EvolvingV1])  # the fix
    assert retry(h, "r-1") == []  # the result was recorded: nothing runs again
    completed_with(h, "total 2")


@CACHE
def test_retry_after_a_divergence_found_on_a_timer(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([EvolvingV1])
    h.drop_cache = drop_cache
    h.send(dispatch("r-2", "Evolving", [b"1"]))
    h.redeploy([EvolvingV2])
    h.advance(2.1)
    failed_with(h, "NonDeterministicWorkflow")
    assert names(h.history("r-2"))[-2:] == ["Ended", "TimerFired"]

    h.redeploy([EvolvingV1])
    [add] = retry(h, "r-2")  # the timer counts as fired: the code goes on to add
    assert (add.method_name, add.attempt) == ("add", 1)
    h.reply(add, 5, int)
    completed_with(h, "total 5")


@CACHE
@pytest.mark.parametrize("how", ["failure", "timeout"])
def test_retry_after_a_divergence_found_on_a_task_failure(
    harness: Callable[..., Harness], drop_cache: bool, how: str
) -> None:
    h = harness([EvolvingV1])
    h.drop_cache = drop_cache
    add = started_v1_waiting_on_add(h, "r-3")
    h.redeploy([EvolvingV2])
    if how == "failure":
        h.fail(add, retryable=False)
    else:
        h.advance(5.1)  # Ops.timeout, one attempt only
    failed_with(h, "NonDeterministicWorkflow")
    assert names(h.history("r-3"))[-3:] == ["Ended", "AttemptFailed", "TaskGaveUp"]

    h.redeploy([EvolvingV1])
    [again] = retry(h, "r-3")  # it gave up while FAILED: the retry voids that, runs it again
    assert (again.task_id, again.attempt) == (add.task_id, 2)
    h.reply(again, 3, int)
    completed_with(h, "total 3")


@CACHE
def test_a_retry_that_reveals_a_divergence_can_be_retried_once_fixed(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([EvolvingV1])
    h.drop_cache = drop_cache
    add = started_v1_waiting_on_add(h, "r-4")
    h.fail(add, retryable=False)
    completed_with(h, "caught TaskFailed")  # v1 catches it: make it fail the workflow instead

    @workflow("Evolving")
    class Uncaught(Workflow):
        def run(self, x: int) -> str:
            self.sleep(2.0)
            return f"total {self.new_service(Ops).add(x, 1)}"

    h = harness([Uncaught])
    h.drop_cache = drop_cache
    add = started_v1_waiting_on_add(h, "r-5")
    h.fail(add, retryable=False)
    failed_with(h, "TaskFailed")

    h.redeploy([EvolvingV2])  # a wrong fix: the retry itself reveals the divergence
    [again] = retry(h, "r-5")
    assert (again.method_name, again.attempt) == ("add", 2)
    failed_with(h, "NonDeterministicWorkflow")
    h.reply(again, 7, int)  # its result comes in while FAILED: recorded
    assert names(h.history("r-5"))[-1] == "TaskSucceeded"

    h.redeploy([Uncaught])  # the right fix
    assert retry(h, "r-5") == []
    completed_with(h, "total 7")


@service("Pairs", retry=RetryPolicy(max_attempts=2, initial_delay=1.0, jitter=0.0), timeout=5.0)
class Pairs:
    def left(self, x: int) -> int: ...
    def right(self, x: int) -> int: ...


@workflow("Pair")
class Pair(Workflow):
    def run(self, x: int) -> int:
        pairs = self.new_service(Pairs)
        left = self.dispatch(pairs.left, x)
        right = self.dispatch(pairs.right, x)
        return right.result() * 10 + left.result()


def failed_pair(h: Harness, workflow_id: str) -> ExecuteTask:
    """A Pair FAILED by its right task while its left one still runs; returns the left."""
    h.send(dispatch(workflow_id, "Pair", [b"0"]))
    left, right = h.take(ExecuteTask)
    assert (left.method_name, right.method_name) == ("left", "right")
    h.fail(right, retryable=False)
    failed_with(h, "TaskFailed")
    assert h.state(workflow_id).failed_task == 2
    return left


def retried(h: Harness, workflow_id: str) -> dict[str, ExecuteTask]:
    return {task.method_name: task for task in retry(h, workflow_id)}


@CACHE
def test_a_result_that_comes_while_failed_is_used_after_retry(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([Pair])
    h.drop_cache = drop_cache
    left = failed_pair(h, "p-1")
    h.reply(left, 1, int)
    assert names(h.history("p-1"))[-2:] == ["Ended", "TaskSucceeded"]
    again = retried(h, "p-1")
    assert sorted(again) == ["right"]  # left's result is in the history
    h.reply(again["right"], 2, int)
    [result] = h.take(WorkflowResult)
    assert payload.decode(result.result.data, int) == 21


@CACHE
@pytest.mark.parametrize("how", ["failure", "timeouts"])
def test_a_task_that_gives_up_while_failed_runs_again_after_retry(
    harness: Callable[..., Harness], drop_cache: bool, how: str
) -> None:
    h = harness([Pair])
    h.drop_cache = drop_cache
    left = failed_pair(h, "p-2")
    if how == "failure":
        h.fail(left, retryable=False)
        attempts = 1
    else:
        h.advance(5.1)  # attempt 1 times out; the retry timer sends attempt 2 while FAILED
        h.advance(1.1)
        [second] = h.take(ExecuteTask)
        assert (second.method_name, second.attempt) == ("left", 2)
        h.advance(5.1)  # attempt 2 times out: left gives up
        attempts = 2
    assert names(h.history("p-2"))[-1] == "TaskGaveUp"
    again = retried(h, "p-2")
    assert sorted(again) == ["left", "right"]
    assert (again["left"].attempt, again["right"].attempt) == (attempts + 1, 2)
    h.reply(again["left"], 3, int)
    h.reply(again["right"], 4, int)
    [result] = h.take(WorkflowResult)
    assert payload.decode(result.result.data, int) == 43


@CACHE
def test_a_retry_timer_that_fires_while_failed_sends_the_next_attempt(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([Pair])
    h.drop_cache = drop_cache
    left = failed_pair(h, "p-3")
    h.fail(left)  # retryable: attempt 2 in 1 s
    h.advance(1.1)
    [second] = h.take(ExecuteTask)
    assert (second.task_id, second.attempt) == (left.task_id, 2)
    again = retried(h, "p-3")
    assert sorted(again) == ["right"]  # left is still running: it is not sent twice
    h.reply(again["right"], 5, int)
    assert h.take(WorkflowResult) == []  # waiting for left
    h.reply(second, 6, int)
    [result] = h.take(WorkflowResult)
    assert payload.decode(result.result.data, int) == 56


def test_a_completed_workflow_records_nothing_more(harness: Callable[..., Harness]) -> None:
    @workflow("Either")
    class Either(Workflow):
        def run(self) -> str:
            pairs = self.new_service(Pairs)
            return str(self.dispatch(pairs.left, 1).result())

    h = harness([Either])
    h.send(dispatch("c-1", "Either", []))
    [left] = h.take(ExecuteTask)
    h.reply(left, 1, int)
    size = h.state("c-1").history_size
    h.reply(left, 1, int)  # a duplicate
    h.advance(10)  # its timeout timer was canceled
    assert h.state("c-1").history_size == size
    assert h.take(ExecuteTask) == []


def test_histories_are_the_same_with_or_without_the_cache(harness: Callable[..., Harness]) -> None:
    histories = []
    for drop_cache in (False, True):
        h = harness([Pair])
        h.drop_cache = drop_cache
        left = failed_pair(h, "d-1")
        h.fail(left)  # retryable, while FAILED
        h.advance(1.1)
        [second] = h.take(ExecuteTask)
        again = retried(h, "d-1")
        h.reply(again["right"], 5, int)
        h.reply(second, 6, int)
        histories.append(h.history("d-1"))
    assert histories[0] == histories[1]
    assert [(type(e).__name__, getattr(e, "seq", None)) for e in histories[0]] == [
        ("Started", None),
        ("TaskScheduled", 1),
        ("TaskScheduled", 2),
        ("AttemptFailed", 2),
        ("TaskGaveUp", 2),
        ("Ended", None),
        ("AttemptFailed", 1),
        ("Retried", None),
        ("TaskSucceeded", 2),
        ("TaskSucceeded", 1),
        ("Ended", None),
    ]
