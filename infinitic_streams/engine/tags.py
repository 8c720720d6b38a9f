"""The tag index, and what acts on a group of workflows (`client.get_workflows(Cls, tag=)`).

Workflows live in the partition of their id, groups in the partition of their tag: each
status change of a tagged workflow (started, ended, retried, forgotten) is sent, in the
engine's transaction, as a `TagUpdate` to the namespace's tags topic, keyed by tag; the engine
that owns that partition keeps `g NUL tag NUL name NUL id -> status`. A `GroupRequest` (keyed
by tag too) reads the group with a prefix scan, so its cost grows with the group, not with the
number of workflows, and sends each member the signal, cancel or retry it asks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams import payload
from infinitic_streams.engine import outputs, signals
from infinitic_streams.engine.state import WorkflowState
from infinitic_streams.protocol import (
    CancelWorkflow,
    GroupAction,
    GroupRequest,
    Message,
    QueryReply,
    RetryWorkflow,
    SendSignal,
    TagUpdate,
    WorkflowStatus,
)
from infinitic_streams.protocol.replies import GroupAnswer
from infinitic_streams.streams import Context

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine

_PREFIX = b"g\x00"
# Which members each action reaches.
_REACHES = {
    GroupAction.IDS: set(WorkflowStatus),
    GroupAction.SIGNAL: {WorkflowStatus.RUNNING},
    GroupAction.CANCEL: {WorkflowStatus.RUNNING},
    GroupAction.RETRY: {WorkflowStatus.FAILED},
}


def group_prefix(tag: str, workflow_name: str) -> bytes:
    return _PREFIX + tag.encode() + b"\x00" + workflow_name.encode() + b"\x00"


def status_changed(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, forgotten: bool = False
) -> None:
    """Tell the index of each of the workflow's tags its status now (None once forgotten)."""
    for tag in dict.fromkeys(state.tags):
        update = TagUpdate(
            tag=tag,
            workflow_name=state.workflow_name,
            workflow_id=state.workflow_id,
            status=None if forgotten else state.status,
            updated_at_ms=state.updated_at_ms,
        )
        outputs.emit(engine, ctx, engine.topics.tags, tag, update)


def update(ctx: Context, message: TagUpdate) -> None:
    key = group_prefix(message.tag, message.workflow_name) + message.workflow_id.encode()
    if message.status is None:
        ctx.delete(key)
    else:
        ctx.put(key, message.status.encode())


def act(engine: WorkflowEngine, ctx: Context, message: GroupRequest) -> None:
    """Send the group's members what the request asks; answer how many it reached (none,
    with the reason, for a signal that its workflows would refuse)."""
    refusal = _signal_refusal(engine, message)
    if refusal is not None:
        _answer(engine, ctx, message, GroupAnswer(0, [], refusal))
        return
    prefix = group_prefix(message.tag, message.workflow_name)
    wanted = _REACHES[message.action]
    ids = [
        key[len(prefix) :].decode()
        for key, status in ctx.scan(prefix)
        if WorkflowStatus(status.decode()) in wanted
    ]
    for workflow_id in ids:
        order = _order(message, workflow_id)
        if order is not None:
            outputs.emit(engine, ctx, engine.topics.engine, workflow_id, order)
    _answer(engine, ctx, message, GroupAnswer(len(ids), ids))


def _signal_refusal(engine: WorkflowEngine, message: GroupRequest) -> str | None:
    """Why the workflows of the group would refuse this signal, checked once here rather than
    dead-lettered by each member."""
    cls = engine.workflows.get(message.workflow_name)
    if message.action != GroupAction.SIGNAL or cls is None:
        return None
    value = message.value.data if message.value is not None else b"null"
    unfit = signals.unfit_signal(cls, message.channel or "", value)
    return None if unfit is None else f"workflow {message.workflow_name}: {unfit}"


def _answer(
    engine: WorkflowEngine, ctx: Context, message: GroupRequest, answer: GroupAnswer
) -> None:
    data = payload.encode(answer, GroupAnswer)
    reply = QueryReply(request_id=message.request_id, workflow_id="", found=True, data=data)
    outputs.reply(engine, ctx, message.reply_to, reply)


def _order(message: GroupRequest, workflow_id: str) -> Message | None:
    match message.action:
        case GroupAction.SIGNAL if message.channel is not None and message.value is not None:
            return SendSignal(
                workflow_id=workflow_id,
                signal_id=f"{message.request_id}:{workflow_id}",
                channel=message.channel,
                value=message.value,
            )
        case GroupAction.CANCEL:
            reason = f"canceled with its group (tag {message.tag!r})"
            return CancelWorkflow(workflow_id=workflow_id, reason=reason)
        case GroupAction.RETRY:
            return RetryWorkflow(workflow_id=workflow_id)
    return None
