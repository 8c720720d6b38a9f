"""Payload limits in workflow code (`WorkflowEngine.max_payload_bytes`): task arguments and
inline results over the limit raise `PayloadTooLarge` at the call (catchable), a workflow
result over it fails the workflow; the same on every replay."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infinitic_streams import payload
from infinitic_streams.definitions import service, workflow
from infinitic_streams.errors import PayloadTooLarge
from infinitic_streams.protocol import ExecuteTask, WorkflowResult, WorkflowStatus
from infinitic_streams.workflows.workflow import Workflow

from .engine_harness import Harness, dispatch, harnesses, names

LIMIT = 100  # bytes; a str of n characters encodes to n + 2 bytes (its JSON quotes)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    yield from harnesses(tmp_path)


@service("Blobs")
class Blobs:
    def store(self, text: str) -> str: ...
    def note(self, text: str) -> None: ...


@workflow("Storing")
class Storing(Workflow):
    def run(self, size: int, catch: bool) -> str:
        blobs = self.new_service(Blobs)
        try:
            key = blobs.store("x" * size)
        except PayloadTooLarge as error:
            if not catch:
                raise
            blobs.note(f"refused {error.size} > {error.limit}")
            return "noted"
        return key


@workflow("Returning")
class Returning(Workflow):
    def run(self, size: int) -> str:
        return "y" * size


@workflow("Inlining")
class Inlining(Workflow):
    def run(self, size: int, catch: bool) -> str:
        try:
            return self.inline(lambda: "z" * size)
        except PayloadTooLarge:
            if not catch:
                raise
            return "too large"


def args(*values: object) -> list[bytes]:
    return [payload.encode(v) for v in values]


def outcome(h: Harness) -> WorkflowResult:
    [result] = h.take(WorkflowResult)
    return result


@pytest.mark.parametrize("drop_cache", [False, True], ids=["cached", "replayed"])
def test_task_arguments_exactly_at_the_limit_are_sent(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([Storing], max_payload_bytes=LIMIT)
    h.drop_cache = drop_cache
    h.send(dispatch("a-1", "Storing", args(LIMIT - 2, False)))
    [task] = h.take(ExecuteTask)
    assert task.method_name == "store" and len(task.args[0].data) == LIMIT
    h.reply(task, "key-1", str)
    assert payload.decode(outcome(h).result.data, str) == "key-1"


@pytest.mark.parametrize("drop_cache", [False, True], ids=["cached", "replayed"])
def test_task_arguments_over_the_limit_raise_in_workflow_code(
    harness: Callable[..., Harness], drop_cache: bool
) -> None:
    h = harness([Storing], max_payload_bytes=LIMIT)
    h.drop_cache = drop_cache
    h.send(dispatch("a-2", "Storing", args(LIMIT - 1, True)))
    [note] = h.take(ExecuteTask)  # the store was refused (not sent), the workflow caught it
    assert note.method_name == "note"
    assert payload.decode(note.args[0].data, str) == f"refused {LIMIT + 1} > {LIMIT}"
    assert names(h.history("a-2"))[1:3] == ["CallRefused", "TaskScheduled"]

    h.redeploy([Storing], max_payload_bytes=10 * LIMIT)  # the refusal is in the history
    h.reply(note, None, None)
    assert payload.decode(outcome(h).result.data, str) == "noted"


def test_task_arguments_over_the_limit_fail_the_workflow_when_not_caught(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Storing], max_payload_bytes=LIMIT)
    h.send(dispatch("a-3", "Storing", args(LIMIT - 1, False)))
    assert h.take(ExecuteTask) == []
    result = outcome(h)
    assert (result.status, result.error.type_name) == (WorkflowStatus.FAILED, "PayloadTooLarge")
    assert f"arguments of task Blobs.store takes {LIMIT + 1} bytes" in result.error.message


@pytest.mark.parametrize(("size", "status"), [(LIMIT - 2, "COMPLETED"), (LIMIT - 1, "FAILED")])
def test_a_workflow_result_over_the_limit_fails_the_workflow(
    harness: Callable[..., Harness], size: int, status: str
) -> None:
    h = harness([Returning], max_payload_bytes=LIMIT)
    h.send(dispatch("a-4", "Returning", args(size)))
    result = outcome(h)
    assert result.status == status
    if status == "FAILED":
        assert result.error.type_name == "PayloadTooLarge"
        assert "result of workflow Returning.run" in result.error.message
    else:
        assert payload.decode(result.result.data, str) == "y" * size


@pytest.mark.parametrize(
    ("size", "catch", "expected"),
    [(LIMIT - 2, False, "z" * (LIMIT - 2)), (LIMIT - 1, True, "too large"), (LIMIT - 1, False, "")],
    ids=["at-the-limit", "over-caught", "over-uncaught"],
)
def test_an_inline_result_over_the_limit_raises_in_workflow_code(
    harness: Callable[..., Harness], size: int, catch: bool, expected: str
) -> None:
    h = harness([Inlining], max_payload_bytes=LIMIT)
    h.send(dispatch("a-5", "Inlining", args(size, catch)))
    result = outcome(h)
    if expected:
        assert payload.decode(result.result.data, str) == expected
    else:
        assert (result.status, result.error.type_name) == (WorkflowStatus.FAILED, "PayloadTooLarge")
        assert "result of inline" in result.error.message
