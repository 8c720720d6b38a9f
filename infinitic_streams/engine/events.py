"""Recording a history event, and publishing it: each event the engine appends to a workflow's
history is also produced to `<ns>.events` as a CloudEvent (`protocol/cloudevents.py`), in the
same transaction, so readers see every event exactly once and in order per workflow; and
workflows started and ended and signals received are counted (`metrics.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams.engine import state as s
from infinitic_streams.engine import storage
from infinitic_streams.engine.state import HistoryEvent, WorkflowState
from infinitic_streams.protocol import cloudevents
from infinitic_streams.streams import Context

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine
    from infinitic_streams.engine.metrics import EngineMetrics


def record(engine: WorkflowEngine, ctx: Context, state: WorkflowState, event: HistoryEvent) -> None:
    """Append `event` to the workflow's history (the caller saves `state`) and publish it."""
    index = state.history_size
    storage.append(ctx, state, event)
    if engine.metrics is not None:
        _count(engine.metrics, ctx, state, event)
    if engine.publish_events:
        _publish(engine, ctx, state, cloudevents.of_history(subject(engine, state), index, event))


def removed(engine: WorkflowEngine, ctx: Context, state: WorkflowState, now: int) -> None:
    """Publish that the workflow's retention ended (its state and history are deleted)."""
    if engine.publish_events:
        _publish(engine, ctx, state, cloudevents.removal(subject(engine, state), now))


def _count(metrics: EngineMetrics, ctx: Context, state: WorkflowState, event: HistoryEvent) -> None:
    name = state.workflow_name
    if isinstance(event, s.Started) and state.run == 1:  # a new run is the same workflow
        metrics.started(ctx, name)
    elif isinstance(event, s.Ended):
        seconds = (event.at_ms - state.started_at_ms) / 1000
        metrics.ended(ctx, name, event.status.value, seconds)
    elif isinstance(event, s.SignalReceived):
        metrics.signal(ctx, name, "received")


def subject(engine: WorkflowEngine, state: WorkflowState) -> cloudevents.Subject:
    return cloudevents.Subject(
        engine.topics.namespace,
        state.workflow_id,
        state.workflow_name,
        state.method,
        state.status,
        state.started_at_ms,
        tuple(state.tags),
        state.parents[0].workflow_id if state.parents else None,
    )


def _publish(engine: WorkflowEngine, ctx: Context, state: WorkflowState, event: dict) -> None:
    ctx.emit(engine.topics.events, state.workflow_id.encode(), cloudevents.encode(event))
