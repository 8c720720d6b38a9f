"""Workflow code execution without Kafka: commands, branches, timers, replay, determinism."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from infinitic_streams import payload
from infinitic_streams.definitions import RetryPolicy, service, workflow
from infinitic_streams.errors import NonDeterministicWorkflow, PayloadTooLarge, TaskFailed
from infinitic_streams.workflows.commands import (
    Command,
    Completed,
    Failed,
    InlineCommand,
    RefusedCommand,
    Step,
    TaskCommand,
    TimerCommand,
)
from infinitic_streams.workflows.deferred import Deferred, all_of, any_of
from infinitic_streams.workflows.execution import WorkflowExecution
from infinitic_streams.workflows.workflow import Workflow


@dataclass
class Image:
    url: str
    data: bytes


@service("ImageUtil", retry=RetryPolicy(max_attempts=3))
class ImageUtil:
    def download(self, url: str) -> Image: ...
    def resize(self, image: Image, size: int) -> bytes: ...
    def upload(self, data: bytes) -> str: ...
    def save(self, email: str, urls: list[str]) -> None: ...


@workflow("ImageWorkflow")
class ImageWorkflow(Workflow):
    def run(self, email: str, url: str, sizes: list[int]) -> list[str]:
        images = self.new_service(ImageUtil)
        image = images.download(url)
        branches = [self.branch(self.resize_and_upload, image, size) for size in sizes]
        urls = all_of(*branches).result()
        images.save(email, urls)
        return urls

    def resize_and_upload(self, image: Image, size: int) -> str:
        images = self.new_service(ImageUtil)
        return images.upload(images.resize(image, size))


def encode(value: object, hint: object) -> bytes:
    return payload.encode(value, hint)


def tasks(step: Step) -> list[tuple[int, str]]:
    return [(c.seq, c.step) for c in step.commands]


def test_the_image_workflow_issues_its_steps_in_order() -> None:
    execution = WorkflowExecution(ImageWorkflow, "run", "wf-1")
    args = payload.encode_args(["me@x.org", "http://img", [10, 20]], [str, str, list[int]])
    step = execution.start(args, now_ms=1000)
    assert tasks(step) == [(1, "task ImageUtil.download")]
    download = step.commands[0]
    assert isinstance(download, TaskCommand)
    assert payload.decode_args(download.args, [str]) == ["http://img"]
    assert download.retry.max_attempts == 3

    step = execution.task_completed(1, encode(Image("u", b"\x00"), Image), now_ms=2000)
    assert tasks(step) == [(2, "task ImageUtil.resize"), (3, "task ImageUtil.resize")]
    step = execution.task_completed(3, encode(b"small", bytes), now_ms=3000)
    assert tasks(step) == [(4, "task ImageUtil.upload")]
    step = execution.task_completed(2, encode(b"big", bytes), now_ms=3000)
    assert tasks(step) == [(5, "task ImageUtil.upload")]
    step = execution.task_completed(5, encode("url-10", str), now_ms=4000)
    assert tasks(step) == []
    step = execution.task_completed(4, encode("url-20", str), now_ms=4000)
    assert tasks(step) == [(6, "task ImageUtil.save")]
    save = step.commands[0]
    assert isinstance(save, TaskCommand)
    assert payload.decode_args(save.args, [str, list[str]]) == ["me@x.org", ["url-10", "url-20"]]
    step = execution.task_completed(6, encode(None, None), now_ms=5000)
    assert step.outcome == Completed(encode(["url-10", "url-20"], list[str]))


def replay(
    cls: type, method: str, args: list[bytes], history: list[tuple[str, int, bytes]]
) -> tuple[WorkflowExecution, list[Command]]:
    """Run a workflow live through `history` events; return it with every command issued."""
    execution = WorkflowExecution(cls, method, "wf-r")
    issued = list(execution.start(args, 0).commands)
    for kind, seq, data in history:
        if kind == "done":
            issued += execution.task_completed(seq, data, 0).commands
        else:
            issued += execution.timer_fired(seq, 0).commands
    return execution, issued


def test_replay_reissues_nothing_and_reaches_the_same_state() -> None:
    args = payload.encode_args(["me@x.org", "http://img", [10, 20, 30]], [str, str, list[int]])
    history = [("done", 1, encode(Image("u", b""), Image))] + [
        ("done", seq, encode(b"r", bytes)) for seq in (2, 3, 4)
    ]
    live, issued = replay(ImageWorkflow, "run", args, history)
    recorded = {c.seq: c for c in issued}
    assert sorted(recorded) == [1, 2, 3, 4, 5, 6, 7]  # three uploads pending

    again = WorkflowExecution(ImageWorkflow, "run", "wf-r", recorded=recorded)
    replayed = list(again.start(args, 0).commands)
    for _, seq, data in history:
        replayed += again.task_completed(seq, data, 0).commands
    assert replayed == []  # every command was already in history
    assert again.end_of_replay().outcome is None
    for execution in (live, again):
        step = execution.task_completed(5, encode("u1", str), 0)
        assert tasks(step) == []
        execution.close()


@workflow
class Changed(Workflow):
    def run(self, url: str) -> str:
        images = self.new_service(ImageUtil)
        data = images.upload(b"x")  # used to be: images.download(url)
        return data


def test_changed_code_fails_with_non_deterministic_workflow() -> None:
    recorded: dict[int, Command] = {
        1: TaskCommand(1, "ImageUtil", "download", (), (), {}, RetryPolicy(), None)
    }
    execution = WorkflowExecution(Changed, "run", "wf-c", recorded=recorded)
    step = execution.start(payload.encode_args(["u"], [str]), 0)
    assert isinstance(step.outcome, Failed)
    error = step.outcome.error
    assert isinstance(error, NonDeterministicWorkflow)
    assert (error.position, error.expected, error.found) == (
        1,
        "task ImageUtil.download",
        "task ImageUtil.upload",
    )
    assert step.commands == []


@workflow
class Compensating(Workflow):
    def run(self, url: str) -> str:
        images = self.new_service(ImageUtil)
        try:
            return images.upload(b"data")
        except TaskFailed as failure:
            images.save("ops@x.org", [failure.type_name])
            return "compensated"


def test_a_failed_task_raises_in_workflow_code_and_can_be_caught() -> None:
    execution = WorkflowExecution(Compensating, "run", "wf-f")
    execution.start(payload.encode_args(["u"], [str]), 0)
    failure = TaskFailed("ImageUtil", "upload", "wf-f:1", 3, "IOError", "disk full", "tb")
    step = execution.task_failed(1, failure, 0)
    assert tasks(step) == [(2, "task ImageUtil.save")]
    step = execution.task_completed(2, encode(None, None), 0)
    assert step.outcome == Completed(encode("compensated", str))


@workflow
class Racing(Workflow):
    def run(self) -> str:
        images = self.new_service(ImageUtil)
        task = self.dispatch(images.upload, b"x")
        timer = self.timer(5.0)
        first = any_of(task, timer).result()
        return "task" if isinstance(first, str) else "timer"


@pytest.mark.parametrize("winner", ["task", "timer"])
def test_any_of_is_won_by_whoever_completes_first(winner: str) -> None:
    execution = WorkflowExecution(Racing, "run", "wf-a")
    step = execution.start([], now_ms=10_000)
    upload, timer = step.commands
    assert isinstance(timer, TimerCommand) and timer.due_ms == 15_000
    if winner == "task":
        step = execution.task_completed(upload.seq, encode("url", str), 11_000)
    else:
        step = execution.timer_fired(timer.seq, 15_000)
    assert step.outcome == Completed(encode(winner, str))


@workflow
class Inline(Workflow):
    calls = 0

    def run(self) -> list[object]:
        def pick() -> int:
            Inline.calls += 1
            return 42

        return [self.inline(pick), self.now().year, str(self.uuid()), self.random()]


def test_inline_runs_once_and_now_random_uuid_replay_identically() -> None:
    first = WorkflowExecution(Inline, "run", "wf-i")
    step = first.start([], now_ms=1_700_000_000_000)
    [command] = step.commands
    assert isinstance(command, InlineCommand)
    assert Inline.calls == 1
    second = WorkflowExecution(Inline, "run", "wf-i", recorded={1: command})
    assert second.start([], now_ms=1_700_000_000_000).outcome == step.outcome
    assert Inline.calls == 1  # the recorded result was used


@workflow
class Waiting(Workflow):
    closed: ClassVar[list[str]] = []

    def run(self) -> None:
        try:
            self.new_service(ImageUtil).upload(b"x")
        finally:
            Waiting.closed.append(self.workflow_id)


def test_parked_instances_take_no_thread_and_closing_ends_them() -> None:
    before = threading.active_count()
    executions = [WorkflowExecution(Waiting, "run", f"wf-{i}") for i in range(20)]
    for execution in executions:
        execution.start([], 0)
    assert threading.active_count() == before  # each parked branch is a greenlet
    assert Waiting.closed == []
    for execution in executions:
        execution.close()
    assert sorted(Waiting.closed) == sorted(f"wf-{i}" for i in range(20))


@workflow
class Uploading(Workflow):
    def run(self, data: bytes) -> str:
        images = self.new_service(ImageUtil)
        try:
            return images.upload(data)
        except PayloadTooLarge as error:
            return f"refused {error.size}"


def test_a_refused_call_is_recorded_and_replays_the_same_whatever_the_limit() -> None:
    data = payload.encode_args([b"0123456789"], [bytes])  # base64 in quotes: 18 bytes
    refusing = WorkflowExecution(Uploading, "run", "wf-p", max_payload_bytes=17)
    step = refusing.start(data, 0)
    [refused] = step.commands
    assert isinstance(refused, RefusedCommand)
    assert (refused.seq, refused.step, refused.size, refused.limit) == (
        1,
        "task ImageUtil.upload",
        18,
        17,
    )
    assert step.outcome == Completed(encode("refused 18", str))

    replayed = WorkflowExecution(
        Uploading, "run", "wf-p", recorded={1: refused}, max_payload_bytes=1000
    )
    assert replayed.start(data, 0) == Step([], step.outcome)  # still refused, though it fits
    assert replayed.end_of_replay().outcome is None

    accepting = WorkflowExecution(Uploading, "run", "wf-p", max_payload_bytes=18)  # at the limit
    [upload] = accepting.start(data, 0).commands
    assert isinstance(upload, TaskCommand)
    accepting.close()
    again = WorkflowExecution(Uploading, "run", "wf-p", recorded={1: upload}, max_payload_bytes=17)
    assert again.start(data, 0).commands == []  # accepted once, accepted on every replay
    assert again.task_completed(1, encode("url", str), 0).outcome == Completed(encode("url", str))


class _Clock:
    """What a Deferred asks of its scheduler when it settles: the completion order."""

    def __init__(self) -> None:
        self.count = 0

    def next_completion(self) -> int:
        self.count += 1
        return self.count


def test_all_of_and_any_of_settle_by_completion_order_whatever_was_settled_before() -> None:
    clock: Any = _Clock()
    a, b, c, d = (Deferred(clock, name) for name in "abcd")
    b._fail(ValueError("b"))  # settled before the combinators exist
    a._fail(KeyError("a"))
    assert str(all_of(a, b, c).status()) == "FAILED"
    with pytest.raises(ValueError):
        all_of(a, b, c).result()  # b failed first
    together = all_of(c, d, c)  # the same one twice counts twice
    c._complete(1)
    assert not together.is_completed()
    d._complete(2)
    assert together.result() == [1, 2, 1]
    e, f = Deferred(clock, "e"), Deferred(clock, "f")
    first = any_of(e, f)
    f._fail(OSError("f"))
    e._complete(3)
    with pytest.raises(OSError):
        first.result()
    assert any_of(e, f).status() == "FAILED"  # f completed before e
    g, h = Deferred(clock, "g"), Deferred(clock, "h")
    both = all_of(g, h)
    h._fail(OSError("h"))
    g._fail(ValueError("g"))
    with pytest.raises(OSError):
        both.result()
