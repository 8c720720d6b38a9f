"""Child workflows, seen from both sides.

A parent's `ChildCommand` dispatches the child with a `ParentWorkflow` reference (see
`commands.py`); the child keeps its parents in its state (`parents`: its creator, and any
parent that dispatched the same id again, which joins it). When the child ends, each parent
gets a `ChildEnded` in the child engine's transaction, exactly once; the parent records it as
a `ChildFinished` fact, which resumes its code. Parent and child may live on different
partitions and engine processes: they only talk through the engine topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams.engine import outputs, storage
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import ErrorState, Facts, ParentRef, WorkflowState
from infinitic_streams.protocol import (
    ChildEnded,
    ErrorInfo,
    ParentWorkflow,
    Payload,
    WorkflowStatus,
)
from infinitic_streams.streams import Context

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine


def parent_ref(parent: ParentWorkflow) -> ParentRef:
    return ParentRef(parent.workflow_id, parent.workflow_name, parent.seq)


def join(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, parent: ParentWorkflow
) -> None:
    """A parent dispatched an id that exists: it waits for that workflow's end (told now if
    it has ended). The caller saves the state."""
    ref = parent_ref(parent)
    if state.status == WorkflowStatus.RUNNING:
        if ref not in state.parents:
            state.parents.append(ref)
    else:
        tell_parent(engine, ctx, state, ref)


def tell_parent(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, parent: ParentRef
) -> None:
    """Send `parent` how this workflow ended."""
    error = state.error
    ended = ChildEnded(
        workflow_id=parent.workflow_id,
        seq=parent.seq,
        child_id=state.workflow_id,
        child_name=state.workflow_name,
        status=state.status,
        result=Payload(data=state.result.encode()) if state.result is not None else None,
        error=ErrorInfo(type_name=error.type_name, message=error.message, traceback=error.traceback)
        if error
        else None,
    )
    outputs.emit(engine, ctx, engine.topics.engine, parent.workflow_id, ended)


def refused(
    engine: WorkflowEngine,
    ctx: Context,
    parent: ParentWorkflow,
    child_id: str,
    name: str,
    reason: str,
) -> None:
    """The child could not start (no engine runs its class): its parent is told at once."""
    ended = ChildEnded(
        workflow_id=parent.workflow_id,
        seq=parent.seq,
        child_id=child_id,
        child_name=name,
        status=WorkflowStatus.FAILED,
        error=ErrorInfo(type_name="UnknownWorkflow", message=reason, traceback=""),
    )
    outputs.emit(engine, ctx, engine.topics.engine, parent.workflow_id, ended)


def ended(ctx: Context, message: ChildEnded, now: int) -> Facts | None:
    """A child ended: a fact for its parent (recorded while the parent records facts)."""
    state = storage.load_state(ctx, message.workflow_id)
    if state is None or state.status not in s.RECORDING:
        return None
    if message.seq <= state.seq_base:
        return None  # a child of an earlier run (continue-as-new): it was left to run alone
    error = message.error
    finished = s.ChildFinished(
        now,
        message.seq,
        message.child_id,
        message.status,
        message.result.data.decode() if message.result is not None else None,
        ErrorState(error.type_name, error.message, error.traceback) if error else None,
    )
    return Facts(state, [finished])
