"""Reading and writing a workflow's state, tasks and history through the runtime's `Context`
(the layout is in `state.py`). Writes reach the store only when the handler returns."""

from __future__ import annotations

from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import HistoryEvent, TaskState, WorkflowState
from infinitic_streams.streams import Context


def load_state(ctx: Context, workflow_id: str) -> WorkflowState | None:
    raw = ctx.get(s.state_key(workflow_id))
    return None if raw is None else s.load(raw, WorkflowState)  # type: ignore[return-value]


def save_state(ctx: Context, state: WorkflowState) -> None:
    ctx.put(s.state_key(state.workflow_id), s.dump(state, WorkflowState))


def load_task(ctx: Context, workflow_id: str, seq: int) -> TaskState | None:
    raw = ctx.get(s.task_key(workflow_id, seq))
    return None if raw is None else s.load(raw, TaskState)  # type: ignore[return-value]


def save_task(ctx: Context, workflow_id: str, task: TaskState) -> None:
    ctx.put(s.task_key(workflow_id, task.seq), s.dump(task, TaskState))


def append(ctx: Context, state: WorkflowState, event: HistoryEvent) -> None:
    """Add `event` at the end of the history (the caller saves `state`)."""
    ctx.put(s.history_key(state.workflow_id, state.history_size), s.dump(event, HistoryEvent))
    state.history_size += 1
    state.updated_at_ms = event.at_ms


def read_history(ctx: Context, state: WorkflowState) -> list[HistoryEvent]:
    events = []
    for index in range(state.history_size):
        raw = ctx.get(s.history_key(state.workflow_id, index))
        assert raw is not None, f"history of {state.workflow_id} misses event {index}"
        events.append(s.load(raw, HistoryEvent))
    return events  # type: ignore[return-value]
