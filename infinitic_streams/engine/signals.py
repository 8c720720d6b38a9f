"""Signals: a value sent to a channel of a running workflow, by a client or another workflow.

An accepted signal is a fact (`SignalReceived`), recorded in arrival order whether or not the
code waits for one, and fed to the code (which keeps it untaken until a `receive()` takes it).
A signal is refused, dead-lettered with the reason and, when a client sent it, answered with
the error its `signal()` raises, when: there is no such workflow (`WorkflowNotFound`); it is not
running; it has no such channel (the answer names those it has); the value does not fit the
channel's type; or the channel already holds `MAX_UNTAKEN_SIGNALS` untaken signals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams import payload
from infinitic_streams.engine import outputs, steps, storage
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import Facts, WorkflowState
from infinitic_streams.errors import SerializationError
from infinitic_streams.protocol import QueryReply, SendSignal, WorkflowStatus
from infinitic_streams.protocol.replies import SignalAnswer
from infinitic_streams.streams import Context
from infinitic_streams.workflows.channel import MAX_UNTAKEN_SIGNALS, channels_of

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine


def received(engine: WorkflowEngine, ctx: Context, message: SendSignal, now: int) -> None:
    state = storage.load_state(ctx, message.workflow_id)
    refusal = _refusal(engine, state, message)
    if refusal is not None:
        error_type, text = refusal
        ctx.dead_letter(
            f"signal to channel {message.channel!r} of workflow {message.workflow_id} "
            f"refused: {text}"
        )
        _answer(engine, ctx, message, SignalAnswer(False, error_type, text))
        if engine.metrics is not None:  # a workflow that is not known has no name to count
            engine.metrics.signal(ctx, state.workflow_name if state else "", "refused")
        return
    assert state is not None
    event = s.SignalReceived(
        now, message.signal_id, message.channel, message.value.data.decode(), message.sender
    )
    steps.record(engine, ctx, Facts(state, [event]), now)
    _answer(engine, ctx, message, SignalAnswer(True))


def _refusal(
    engine: WorkflowEngine, state: WorkflowState | None, message: SendSignal
) -> tuple[str, str] | None:
    """(error type, message) of why the signal is refused, or None."""
    if state is None:
        return "WorkflowNotFound", f"no workflow with id {message.workflow_id}"
    what = f"workflow {state.workflow_name} {state.workflow_id}"
    if state.status != WorkflowStatus.RUNNING:
        return "InfiniticError", f"{what} has ended ({state.status}): it takes no more signals"
    cls = engine.workflows.get(state.workflow_name)
    if cls is None:
        return "InfiniticError", f"this engine does not run workflow {state.workflow_name}"
    unfit = unfit_signal(cls, message.channel, message.value.data)
    if unfit is not None:
        return "InfiniticError", f"{what}: {unfit}"
    if state.signals_waiting.get(message.channel, 0) >= MAX_UNTAKEN_SIGNALS:
        return (
            "InfiniticError",
            f"channel {message.channel!r} of {what} already holds {MAX_UNTAKEN_SIGNALS} "
            "untaken signals: its code does not receive them",
        )
    return None


def unfit_signal(cls: type, channel_name: str, value: bytes) -> str | None:
    """Why workflows of `cls` refuse this value on this channel (no such channel, a value not
    of its type); None when it fits."""
    channel = channels_of(cls).get(channel_name)
    if channel is None:
        return f"no channel {channel_name!r} (its channels: {sorted(channels_of(cls))})"
    try:
        payload.decode(value, channel.type, path=f"signal {channel_name}")
    except SerializationError as error:
        return f"the value does not fit channel {channel_name!r}: {error}"
    return None


def _answer(
    engine: WorkflowEngine, ctx: Context, message: SendSignal, answer: SignalAnswer
) -> None:
    if message.reply_to is None:
        return  # sent by a workflow or a group: nobody waits
    data = payload.encode(answer, SignalAnswer)
    reply = QueryReply(
        request_id=message.signal_id,
        workflow_id=message.workflow_id,
        found=answer.error_type != "WorkflowNotFound",
        data=data,
    )
    outputs.reply(engine, ctx, message.reply_to, reply)
