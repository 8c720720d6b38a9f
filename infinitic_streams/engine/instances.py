"""Live workflow instances: taken from the cache, or rebuilt by replaying the history with the
workflow classes this engine runs (the replay itself is pure: `workflows/replay.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams.engine import storage
from infinitic_streams.engine.state import HistoryEvent, WorkflowState
from infinitic_streams.errors import InfiniticError
from infinitic_streams.workflows import replay as pure
from infinitic_streams.workflows.commands import Command, Step
from infinitic_streams.workflows.execution import WorkflowExecution

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine
    from infinitic_streams.streams import Context


class UnknownWorkflow(InfiniticError):
    """The engine has no workflow class of this name (a dispatch is dead-lettered)."""


def new_execution(
    engine: WorkflowEngine, state: WorkflowState, recorded: dict[int, Command]
) -> WorkflowExecution:
    cls = engine.workflows.get(state.workflow_name)
    if cls is None:
        raise UnknownWorkflow(f"no workflow named {state.workflow_name!r} in this engine")
    return WorkflowExecution(
        cls,
        state.method,
        state.workflow_id,
        tuple(state.tags),
        state.meta,
        recorded,
        max_payload_bytes=engine.max_payload_bytes,
        first_seq=state.seq_base,
        run=state.run,
    )


def replay(
    engine: WorkflowEngine, state: WorkflowState, history: list[HistoryEvent]
) -> tuple[WorkflowExecution, Step]:
    """Rebuild the instance of `state` from `history` with the code deployed now."""
    return pure.replay(lambda recorded: new_execution(engine, state, recorded), history)


def cached_or_replayed(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState
) -> tuple[WorkflowExecution, Step | None]:
    """The live instance of a RUNNING workflow: from the cache (no step), or rebuilt by a
    replay, whose step (new commands, an outcome) the caller carries out."""
    cached = engine.cache.get(state.workflow_id, state.history_size)
    if cached is not None:
        if engine.metrics is not None:
            engine.metrics.cache_hit(ctx)
        return cached, None
    history = storage.read_history(ctx, state)
    if engine.metrics is not None:
        engine.metrics.replay(ctx, len(history))
    return replay(engine, state, history)
