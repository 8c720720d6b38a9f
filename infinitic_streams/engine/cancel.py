"""Cancel and workflow timeouts: the engine stops a workflow.

`CancelWorkflow` (a client's `cancel()`, another workflow's `stub.cancel()`, a canceled parent,
a group) ends a RUNNING or FAILED workflow CANCELED; one that has ended already stays as it is
(the client is told False). A workflow whose class has `timeout` gets a durable timer at its
start; if it still runs when the timer fires, it ends FAILED with `WorkflowTimedOut`. Either
way its work stops (`endings.stop_work`): timers dropped, tasks told, children canceled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams import payload
from infinitic_streams.definitions import workflow_spec
from infinitic_streams.engine import endings, outputs, storage
from infinitic_streams.engine.state import WorkflowState
from infinitic_streams.engine.timers import WORKFLOW_TIMEOUT, timer_key
from infinitic_streams.errors import WorkflowCanceled, WorkflowTimedOut
from infinitic_streams.protocol import CancelWorkflow, QueryReply, WorkflowStatus
from infinitic_streams.protocol.replies import CancelAnswer
from infinitic_streams.streams import Context

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine

CANCELABLE = (WorkflowStatus.RUNNING, WorkflowStatus.FAILED)


def cancel(engine: WorkflowEngine, ctx: Context, message: CancelWorkflow, now: int) -> None:
    state = storage.load_state(ctx, message.workflow_id)
    canceled = state is not None and state.status in CANCELABLE
    if state is not None and canceled:
        error = WorkflowCanceled(state.workflow_id, message.reason)
        endings.end(engine, ctx, state, endings.Stopped(error), now)
    if message.reply_to is not None and message.request_id is not None:
        answer = CancelAnswer(canceled, state.status if state is not None else None)
        reply = QueryReply(
            request_id=message.request_id,
            workflow_id=message.workflow_id,
            found=state is not None,
            data=payload.encode(answer, CancelAnswer),
        )
        outputs.reply(engine, ctx, message.reply_to, reply)


def schedule_timeout(engine: WorkflowEngine, ctx: Context, state: WorkflowState, now: int) -> None:
    """At a workflow's start: its timeout timer, if its class has a timeout."""
    timeout = _timeout_of(engine, state)
    if timeout is not None:
        ctx.schedule(timer_key(WORKFLOW_TIMEOUT, state.workflow_id), now + int(timeout * 1000))


def timed_out(engine: WorkflowEngine, ctx: Context, workflow_id: str, now: int) -> None:
    state = storage.load_state(ctx, workflow_id)
    if state is None or state.status != WorkflowStatus.RUNNING:
        return
    timeout = _timeout_of(engine, state)
    message = f"still running {timeout:g} s after its start" if timeout else "timed out"
    error = WorkflowTimedOut(workflow_id, WorkflowTimedOut.__name__, message)
    endings.end(engine, ctx, state, endings.Stopped(error), now)


def _timeout_of(engine: WorkflowEngine, state: WorkflowState) -> float | None:
    cls = engine.workflows.get(state.workflow_name)
    return None if cls is None else workflow_spec(cls).timeout
