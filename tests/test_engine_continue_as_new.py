"""Continue-as-new on the engine: a new run with a fresh history and the same id, tags and
waiters; untaken signals carried over; the old run's timers and tasks dropped, its children
left running; a bounded state and history over thousands of runs. Most tests run with the
cache of live instances, and with every step a replay of the history."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infinitic_streams import payload
from infinitic_streams.definitions import service, workflow
from infinitic_streams.engine import state as s
from infinitic_streams.engine.timers import WORKFLOW_TIMER, timer_key
from infinitic_streams.protocol import (
    CancelTask,
    ChildEnded,
    ExecuteTask,
    Payload,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    SendSignal,
    WorkflowResult,
    WorkflowStatus,
)
from infinitic_streams.protocol.replies import WorkflowDescription
from infinitic_streams.workflows.channel import Channel
from infinitic_streams.workflows.workflow import Workflow

from .engine_harness import CLIENT, Harness, dispatch, harnesses, names

CACHE = pytest.mark.parametrize("drop_cache", [False, True], ids=["cached", "replayed"])


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    yield from harnesses(tmp_path)


@service("Counter")
class Counter:
    def add(self, x: int, y: int) -> int: ...


@workflow("Loop")
class Loop(Workflow):
    """`n` more runs, one inline step each."""

    def run(self, n: int, total: int) -> int:
        if n == 0:
            return total
        total = self.inline(lambda: total + n)
        self.continue_as_new(n - 1, total)


@workflow("TaskLoop")
class TaskLoop(Workflow):
    def run(self, n: int, total: int) -> int:
        if n == 0:
            return total
        total = self.new_service(Counter).add(total, n)
        self.continue_as_new(n - 1, total)


@workflow("Inbox")
class Inbox(Workflow):
    """Takes one signal per run, after a timer: the others wait, and are carried over."""

    items = Channel(str)

    def run(self, seen: list[str], runs: int) -> list[str]:
        self.sleep(1.0)
        seen = [*seen, self.items.receive().result()]
        if len(seen) == runs:
            return seen
        self.continue_as_new(seen, runs)


@workflow("Leaver")
class Leaver(Workflow):
    """Run 1 leaves a task, a timer and a child behind; run 2 waits on a timer."""

    def run(self, first: bool) -> str:
        if first:
            self.dispatch(self.new_service(Counter).add, 1, 2)
            self.timer(60.0)
            self.dispatch(self.new_workflow(Loop, id="left-child").run, 1, 0)
            self.continue_as_new(False)
        self.sleep(10.0)
        return "second run"


@workflow("LoopParent")
class LoopParent(Workflow):
    def run(self, n: int) -> int:
        return self.new_workflow(Loop).run(n, 0)  # type: ignore[no-any-return]


def drive(h: Harness, workflow_id: str, most: int = 100_000) -> int:
    """Fire due timers (each starts the next run) until the workflow ends; how many rounds."""
    for rounds in range(most):
        if h.state(workflow_id).status != WorkflowStatus.RUNNING:
            return rounds
        h.advance(0.001)
    raise AssertionError(f"{workflow_id} still running after {most} rounds")


def describe(h: Harness, workflow_id: str) -> WorkflowDescription:
    query = QueryWorkflow(
        request_id="d", workflow_id=workflow_id, query=QueryKind.DESCRIBE, reply_to=CLIENT
    )
    h.send(query)
    [reply] = h.take(QueryReply)
    return payload.decode(reply.data, WorkflowDescription)  # type: ignore[no-any-return]


def result_of(h: Harness) -> object:
    [result] = h.take(WorkflowResult)
    assert result.status == WorkflowStatus.COMPLETED, result.error
    return json.loads(result.result.data)


def store_keys(h: Harness) -> int:
    return len(h.transaction.items("state", b"", b"\xff"))


@CACHE
def test_a_workflow_continues_as_new_and_its_waiter_gets_the_last_result(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([TaskLoop, Counter])
    h.drop_cache = drop_cache
    h.send(dispatch("t-1", "TaskLoop", [b"3", b"0"], tags=("team:a",)))
    for run in range(1, 4):
        [task] = h.take(ExecuteTask)
        assert task.task_id == f"t-1:{run}"  # numbered after the runs before
        assert h.take(WorkflowResult) == []  # nobody is answered when a run ends
        assert describe(h, "t-1").run == run
        h.reply(task, payload.decode(task.args[0].data, int) + 4 - run, int)
        h.advance(0.001)  # the next run starts
    assert result_of(h) == 6
    described = describe(h, "t-1")
    assert (described.run, described.status, described.tags) == (4, "COMPLETED", ["team:a"])
    assert names(h.history("t-1")) == ["Started", "Ended"]  # only the last run's history
    started = [e for e in h.events if e["type"] == "infinitic.workflow.started"]
    assert [e["data"]["args"] for e in started] == [[3, 0], [2, 3], [1, 5], [0, 6]]
    assert len({e["id"] for e in h.events}) == len(h.events)  # event ids stay unique
    assert len([e for e in h.events if e["type"] == "infinitic.workflow.continued"]) == 3


@CACHE
def test_untaken_signals_are_carried_into_the_new_run_in_order(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([Inbox])
    h.drop_cache = drop_cache
    h.send(dispatch("i-1", "Inbox", [b"[]", b"3"]))
    for n, value in enumerate(["a", "b", "c"]):
        signal = SendSignal(
            workflow_id="i-1",
            signal_id=f"s{n}",
            channel="items",
            value=Payload(data=json.dumps(value).encode()),
        )
        h.send(signal)
    h.advance(1.0)  # run 1 takes "a"
    history = h.history("i-1")
    assert names(history) == ["Started", "SignalReceived", "SignalReceived"]
    assert [e.value for e in history if isinstance(e, s.SignalReceived)] == ['"b"', '"c"']
    assert h.state("i-1").signals_waiting == {"items": 2}
    h.advance(0.001)
    h.advance(1.0)  # run 2 takes "b"
    h.advance(0.001)
    h.advance(1.0)  # run 3 takes "c"
    assert result_of(h) == ["a", "b", "c"]
    assert h.state("i-1").run == 3


@CACHE
def test_the_old_run_timers_and_tasks_are_dropped_its_children_left_running(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([Leaver, Loop, Counter])
    h.drop_cache = drop_cache
    h.send(dispatch("l-1", "Leaver", [b"true"]))
    [task] = h.take(ExecuteTask)
    [cancel] = h.take(CancelTask)
    assert cancel.task_id == task.task_id == "l-1:1"
    assert h.transaction.get("state", s.task_key("l-1", 1)) is None  # forgotten
    timer_of_run_1 = timer_key(WORKFLOW_TIMER, "l-1", 2)
    assert h.transaction.get("__timer_index__", timer_of_run_1) is None  # dropped
    h.pump()  # the child starts
    h.advance(0.001)  # run 2 starts (waits 10 s); the child's run 2 ends it
    assert h.state("left-child").status == WorkflowStatus.COMPLETED
    assert [m.seq for _, m in h.outbox if isinstance(m, ChildEnded)] == [3]
    h.pump()  # delivered to run 2, which does not record it: it was run 1's child
    assert h.transaction.get("__timer_index__", timer_key(WORKFLOW_TIMER, "l-1", 4)) is not None
    h.reply(task, 3, int)  # a late result of run 1's task: ignored
    h.advance(59.0)  # run 1's timer was dropped; run 2's fired
    assert names(h.history("l-1")) == ["Started", "TimerScheduled", "TimerFired", "Ended"]
    assert [e.seq for e in h.history("l-1") if isinstance(e, s.TimerScheduled)] == [4]
    assert result_of(h) == "second run"


def test_a_parent_waiting_for_a_looping_child_gets_its_last_result(
    harness: Callable[..., Harness],
) -> None:
    h = harness([LoopParent, Loop])
    h.send(dispatch("p-1", "LoopParent", [b"5"]))
    h.pump()
    drive(h, "p-1.1")
    h.pump()
    assert h.state("p-1.1").run == 6
    assert result_of(h) == 15


def test_two_thousand_runs_keep_a_bounded_state_and_history(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Loop], publish_events=False)
    h.send(dispatch("loop-1", "Loop", [b"2000", b"0"]))
    sizes = set()
    for _ in range(20):
        for _ in range(100):
            h.advance(0.001)
        sizes.add((store_keys(h), h.state("loop-1").history_size))
    # after each step: w|id and the history of the next run, [Started]; then the last one:
    assert sizes == {(2, 1), (3, 2)}  # [Started, Ended]
    assert drive(h, "loop-1") == 0
    assert result_of(h) == sum(range(2001))
    assert h.state("loop-1").run == 2001
    assert len(h.transaction.items("__timers__", b"", b"\xff")) == 1  # its retention only


@workflow("Switch")
class SwitchV1(Workflow):
    items = Channel(str)

    def run(self, again: bool) -> str:
        return self.items.receive().result()  # type: ignore[no-any-return]


@workflow("Switch")
class SwitchV2(Workflow):
    items = Channel(str)

    def run(self, again: bool) -> str:
        if again:
            self.continue_as_new(False)
        return self.items.receive().result()  # type: ignore[no-any-return]


def test_a_signal_whose_replay_continues_the_workflow_goes_to_the_new_run(
    harness: Callable[..., Harness],
) -> None:
    h = harness([SwitchV1])
    h.send(dispatch("s-1", "Switch", [b"true"]))
    h.redeploy([SwitchV2])  # changed code: the replay that the signal causes continues
    signal = SendSignal(
        workflow_id="s-1", signal_id="s", channel="items", value=Payload(data=b'"x"')
    )
    h.send(signal)
    assert result_of(h) == "x"
    assert names(h.history("s-1")) == ["Started", "ReceiveStarted", "SignalReceived", "Ended"]
    assert h.state("s-1").run == 2
