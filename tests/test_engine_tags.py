"""The tag index and group actions in the engine, without Kafka (one partition plays them
all): ids in any status, signal and cancel of the running ones, retry of the failed ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infinitic_streams import Channel, payload, service, workflow
from infinitic_streams.protocol import (
    DispatchWorkflow,
    ExecuteTask,
    GroupAction,
    GroupRequest,
    Payload,
    QueryReply,
    TagUpdate,
    WorkflowStatus,
)
from infinitic_streams.protocol.replies import GroupAnswer
from infinitic_streams.workflows.workflow import Workflow

from .engine_harness import CLIENT, Harness, harnesses


@service("Ops")
class Ops:
    def check(self, x: int) -> int: ...


@workflow("Order")
class Order(Workflow):
    notes = Channel(str)

    def run(self, x: int) -> str:
        self.new_service(Ops).check(x)
        return self.notes.receive().result()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    yield from harnesses(tmp_path)


def start(h: Harness, workflow_id: str, tags: tuple[str, ...]) -> None:
    h.send(
        DispatchWorkflow(
            workflow_id=workflow_id,
            workflow_name="Order",
            method_name="run",
            args=(Payload(data=b"1"),),
            tags=tags,
            meta={},
        )
    )


def act(h: Harness, action: GroupAction, tag: str = "user:7", **fields: object) -> GroupAnswer:
    request = GroupRequest(
        request_id="r", tag=tag, workflow_name="Order", action=action, reply_to=CLIENT, **fields
    )
    h.send(request)
    [reply] = h.take(QueryReply)
    h.pump()
    return payload.decode(reply.data, GroupAnswer)  # type: ignore[return-value]


def test_a_group_of_five_among_others(harness: Callable[..., Harness]) -> None:
    h = harness([Order])
    for i in range(5):
        start(h, f"o-{i}", ("user:7", "eu"))
    for i in range(3):
        start(h, f"x-{i}", ("user:8",))
    h.pump()
    assert sorted(act(h, GroupAction.IDS).ids) == [f"o-{i}" for i in range(5)]
    tasks = {t.workflow_id: t for t in h.take(ExecuteTask)}
    h.fail(tasks["o-0"], retryable=False)  # o-0 FAILED
    for i in range(1, 5):
        h.reply(tasks[f"o-{i}"], 1, int)
    h.pump()
    signaled = act(h, GroupAction.SIGNAL, channel="notes", value=Payload(data=b'"hello"'))
    assert signaled.reached == 4  # the running ones
    assert all(h.state(f"o-{i}").status == WorkflowStatus.COMPLETED for i in range(1, 5))
    assert act(h, GroupAction.CANCEL).reached == 0  # none runs any more
    assert act(h, GroupAction.RETRY).reached == 1  # o-0
    assert h.state("o-0").status == WorkflowStatus.RUNNING
    assert act(h, GroupAction.CANCEL).reached == 1
    assert h.state("o-0").status == WorkflowStatus.CANCELED
    assert len(act(h, GroupAction.IDS, tag="user:8").ids) == 3
    assert act(h, GroupAction.IDS, tag="nobody").ids == []


def test_a_forgotten_workflow_leaves_its_groups(harness: Callable[..., Harness]) -> None:
    h = harness([Order], retention_s=60.0)
    start(h, "o-1", ("t",))
    h.pump()
    [task] = h.take(ExecuteTask)
    h.fail(task, retryable=False)
    h.pump()
    h.advance(61.0)
    updates = [m for _, m in h.outbox if isinstance(m, TagUpdate)]
    assert [(u.workflow_id, u.status) for u in updates] == [("o-1", None)]
    h.pump()
    assert act(h, GroupAction.IDS, tag="t").ids == []


def test_a_group_signal_its_workflows_would_refuse_is_refused_once(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Order])
    start(h, "o-1", ("t",))
    h.pump()
    wrong_channel = act(h, GroupAction.SIGNAL, tag="t", channel="memo", value=Payload(data=b"1"))
    assert (wrong_channel.reached, wrong_channel.ids) == (0, [])
    assert "no channel 'memo' (its channels: ['notes'])" in wrong_channel.error
    wrong_type = act(h, GroupAction.SIGNAL, tag="t", channel="notes", value=Payload(data=b"1"))
    assert "does not fit channel 'notes'" in wrong_type.error
    assert h.dead_letters == []
