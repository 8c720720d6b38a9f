"""Messages the engine produces: envelopes to topics, replies to clients."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams.engine.state import WorkflowState
from infinitic_streams.protocol import (
    Envelope,
    ErrorInfo,
    Message,
    Payload,
    WorkflowResult,
    encode,
)
from infinitic_streams.protocol.messages import new_message_id
from infinitic_streams.streams import Context

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine


def emit(
    engine: WorkflowEngine,
    ctx: Context,
    topic: str,
    key: str,
    message: Message,
    partition: int = -1,
) -> None:
    """Produce `message` in the engine's transaction (by `key`, or to `partition`)."""
    envelope = Envelope(message_id=new_message_id(), sent_at_ms=engine.now_ms(), message=message)
    ctx.emit(topic, key.encode(), encode(envelope), None, partition)


def reply(engine: WorkflowEngine, ctx: Context, reply_to: str, message: Message) -> None:
    """To a client: `reply_to` is `<partition>:<client id>` of the replies topic."""
    partition, _, client_id = reply_to.partition(":")
    emit(engine, ctx, engine.topics.replies, client_id, message, int(partition))


def reply_result(engine: WorkflowEngine, ctx: Context, reply_to: str, state: WorkflowState) -> None:
    """Tell a client how the workflow ended (or that it runs, for a RESULT query)."""
    error = state.error
    result = WorkflowResult(
        workflow_id=state.workflow_id,
        status=state.status,
        result=Payload(data=state.result.encode()) if state.result is not None else None,
        error=ErrorInfo(type_name=error.type_name, message=error.message, traceback=error.traceback)
        if error
        else None,
    )
    reply(engine, ctx, reply_to, result)
