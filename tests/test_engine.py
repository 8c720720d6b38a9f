"""The workflow engine's state machine without Kafka: messages in, state and messages out
(the harness, in `engine_harness.py`, plays the stream runtime and the service workers)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infinitic_streams import payload
from infinitic_streams.definitions import RetryPolicy, service, workflow
from infinitic_streams.engine import state as s
from infinitic_streams.engine.engine import WorkflowEngine
from infinitic_streams.errors import TaskFailed
from infinitic_streams.protocol import (
    ExecuteTask,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    RetryWorkflow,
    WorkflowResult,
    WorkflowStatus,
    decode,
)
from infinitic_streams.streams import Context
from infinitic_streams.workflows.workflow import Workflow

from .engine_harness import CLIENT, TOPICS, Harness, dispatch, harnesses


@service("Steps", retry=RetryPolicy(max_attempts=3, initial_delay=1.0, jitter=0.0))
class Steps:
    def add(self, x: int, y: int) -> int: ...
    def flaky(self, x: int) -> int: ...
    def undo(self, x: int) -> None: ...


@workflow("Sequence")
class Sequence(Workflow):
    def run(self, n: int) -> int:
        steps = self.new_service(Steps)
        total = 0
        for i in range(n):
            total = steps.add(total, i)
        return total


@workflow("Guarded")
class Guarded(Workflow):
    def run(self, x: int) -> str:
        steps = self.new_service(Steps)
        try:
            steps.flaky(x)
        except TaskFailed:
            steps.undo(x)
            return "compensated"
        return "done"


@workflow("Unguarded")
class Unguarded(Workflow):
    def run(self, x: int) -> int:
        return self.new_service(Steps).flaky(x)


@workflow("Sleepy")
class Sleepy(Workflow):
    def run(self) -> str:
        self.sleep(2.0)
        return "rested"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    yield from harnesses(tmp_path)


def run_sequence(h: Harness, workflow_id: str, n: int, drop_cache_every: int = 0) -> None:
    h.send(dispatch(workflow_id, "Sequence", [b"%d" % n]))
    for step in range(n):
        [task] = h.take(ExecuteTask)
        x, y = payload.decode_args([p.data for p in task.args], [int, int])
        if drop_cache_every and step % drop_cache_every == 0:
            h.engine.cache.clear()  # as after a restart: the next event replays the history
        h.reply(task, x + y, int)


@pytest.mark.parametrize("drop_cache_every", [0, 1, 3])
def test_a_sequence_completes_with_or_without_the_cache(
    harness: Callable[..., Harness], drop_cache_every: int
) -> None:
    h = harness([Sequence])
    run_sequence(h, "seq-1", 12, drop_cache_every)
    [result] = h.take(WorkflowResult)
    assert result.status == WorkflowStatus.COMPLETED
    assert payload.decode(result.result.data, int) == sum(range(12))
    assert h.take(ExecuteTask) == []
    state = h.state("seq-1")
    assert state.history_size == 1 + 2 * 12 + 1  # started, scheduled+succeeded each, ended


def test_dispatch_with_an_existing_id_is_idempotent(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Sequence])
    h.send(dispatch("same", "Sequence", [b"1"]))
    h.send(dispatch("same", "Sequence", [b"1"]))
    assert len(h.take(ExecuteTask)) == 1
    assert h.state("same").waiters == [CLIENT]


def test_retries_are_durable_timers_and_attempts_are_recorded(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Guarded])
    h.send(dispatch("g-1", "Guarded", [b"5"]))
    [first] = h.take(ExecuteTask)
    h.fail(first)
    assert h.take(ExecuteTask) == []  # waiting for the retry timer
    h.advance(0.5)
    assert h.take(ExecuteTask) == []
    h.advance(0.6)  # initial_delay 1 s
    [second] = h.take(ExecuteTask)
    assert (second.task_id, second.attempt) == (first.task_id, 2)
    h.fail(second)
    h.advance(2.1)  # backoff 2: the third attempt comes 2 s later
    [third] = h.take(ExecuteTask)
    assert third.attempt == 3
    h.reply(third, 10, int)
    [result] = h.take(WorkflowResult)
    assert payload.decode(result.result.data, str) == "done"


def test_the_live_instance_is_kept_across_attempt_failures(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Guarded])
    h.send(dispatch("g-3", "Guarded", [b"5"]))
    live = h.engine.cache.get("g-3", h.state("g-3").history_size)
    assert live is not None
    [first] = h.take(ExecuteTask)
    h.fail(first)  # an AttemptFailed joins the history: a replay would ignore it
    assert h.engine.cache.get("g-3", h.state("g-3").history_size) is live
    assert h.engine.cache.get("g-3", h.state("g-3").history_size - 1) is None  # any other: out
    h.advance(1.1)
    [second] = h.take(ExecuteTask)
    h.reply(second, 10, int)  # replayed from the history, as the instance was dropped
    [result] = h.take(WorkflowResult)
    assert payload.decode(result.result.data, str) == "done"


def test_a_permanent_failure_is_caught_and_compensated(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Guarded])
    h.send(dispatch("g-2", "Guarded", [b"5"]))
    [task] = h.take(ExecuteTask)
    h.fail(task, retryable=False)  # non-retryable: no second attempt
    [undo] = h.take(ExecuteTask)
    assert undo.method_name == "undo"
    h.reply(undo, None, None)
    [result] = h.take(WorkflowResult)
    assert payload.decode(result.result.data, str) == "compensated"


def test_an_uncaught_failure_fails_the_workflow_and_retry_resumes_it(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Unguarded])
    h.send(dispatch("u-1", "Unguarded", [b"7"]))
    [task] = h.take(ExecuteTask)
    h.fail(task, retryable=False)
    [failed] = h.take(WorkflowResult)
    assert failed.status == WorkflowStatus.FAILED
    assert failed.error.type_name == "TaskFailed"
    assert "OSError: disk full" in failed.error.message
    assert h.state("u-1").failed_task == 1

    h.engine.cache.clear()
    h.send(RetryWorkflow(workflow_id="u-1"))
    [again] = h.take(ExecuteTask)
    assert (again.task_id, again.attempt) == (task.task_id, 2)
    h.send(
        QueryWorkflow(request_id="r", workflow_id="u-1", query=QueryKind.RESULT, reply_to=CLIENT)
    )
    h.reply(again, 70, int)
    [done] = h.take(WorkflowResult)
    assert done.status == WorkflowStatus.COMPLETED
    assert payload.decode(done.result.data, int) == 70


def test_a_timed_out_attempt_counts_as_a_failed_one(
    harness: Callable[..., Harness],
) -> None:
    @service("Slow", timeout=5.0)
    class Slow:
        def work(self) -> int: ...

    @workflow("WithTimeout")
    class WithTimeout(Workflow):
        def run(self) -> str:
            try:
                self.new_service(Slow).work()
            except TaskFailed as error:
                return type(error).__name__
            return "finished"

    h = harness([WithTimeout])
    h.send(dispatch("t-1", "WithTimeout", []))
    [task] = h.take(ExecuteTask)
    assert task.timeout_seconds == 5.0
    h.advance(5.1)
    [result] = h.take(WorkflowResult)
    assert payload.decode(result.result.data, str) == "TaskTimedOut"
    h.reply(task, 1, int)  # the late result is ignored
    assert h.take(WorkflowResult) == []


def test_sleep_is_a_durable_timer(harness: Callable[..., Harness]) -> None:
    h = harness([Sleepy])
    h.send(dispatch("s-1", "Sleepy", []))
    h.engine.cache.clear()
    h.advance(1.0)
    assert h.take(WorkflowResult) == []
    h.advance(1.1)
    [result] = h.take(WorkflowResult)
    assert payload.decode(result.result.data, str) == "rested"


def test_describe_and_history_answer_queries(harness: Callable[..., Harness]) -> None:
    h = harness([Sequence])
    run_sequence(h, "q-1", 2)
    for kind in (QueryKind.DESCRIBE, QueryKind.HISTORY):
        h.send(QueryWorkflow(request_id=kind, workflow_id="q-1", query=kind, reply_to=CLIENT))
    h.send(
        QueryWorkflow(request_id="x", workflow_id="nope", query=QueryKind.DESCRIBE, reply_to=CLIENT)
    )
    described, history, missing = h.take(QueryReply)
    assert json.loads(described.data)["status"] == "COMPLETED"
    events = payload.decode(history.data, list[s.HistoryEvent])
    assert [type(e).__name__ for e in events] == [
        "Started",
        "TaskScheduled",
        "TaskSucceeded",
        "TaskScheduled",
        "TaskSucceeded",
        "Ended",
    ]
    assert not missing.found


@workflow("Evolving")
class EvolvingBefore(Workflow):
    def run(self, x: int) -> int:
        return self.new_service(Steps).add(x, 1)


@workflow("Evolving")
class EvolvingAfter(Workflow):
    def run(self, x: int) -> int:
        self.new_service(Steps).undo(x)
        return x


def test_a_result_for_code_that_changed_fails_the_workflow(
    harness: Callable[..., Harness], tmp_path: Path
) -> None:
    h = harness([EvolvingBefore])
    h.send(dispatch("e-1", "Evolving", [b"1"]))
    [task] = h.take(ExecuteTask)
    h.engine = WorkflowEngine.of([EvolvingAfter], TOPICS, clock=lambda: h.now)  # redeployed
    h.reply(task, 2, int)
    [result] = h.take(WorkflowResult)
    assert result.status == WorkflowStatus.FAILED
    assert result.error.type_name == "NonDeterministicWorkflow"
    assert "task Steps.add" in result.error.message
    assert "task Steps.undo" in result.error.message
    assert h.take(ExecuteTask) == []


def test_retention_forgets_ended_workflows(harness: Callable[..., Harness]) -> None:
    h = harness([Sequence])
    h.engine.retention_s = 60
    run_sequence(h, "old", 2)
    h.advance(61)
    assert h.transaction.get("state", s.state_key("old")) is None
    assert h.transaction.get("state", s.history_key("old", 0)) is None


def test_an_unknown_workflow_is_dead_lettered_and_its_client_told(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Sequence])
    ctx = Context(h.transaction, 0)
    h.engine.handle(ctx, dispatch("x-1", "Nobody", []))
    assert ctx.dead_letter_reason is not None
    assert "no workflow named 'Nobody'" in ctx.dead_letter_reason
    assert "it runs: ['Sequence']" in ctx.dead_letter_reason
    [(topic, reply)] = [(o.topic, decode(o.value).message) for o in ctx.outputs]
    assert (topic, reply.status, reply.error.type_name) == (
        TOPICS.replies,
        WorkflowStatus.FAILED,
        "UnknownWorkflow",
    )
    assert ctx.changes == {}  # nothing stored: the same dispatch works once deployed
