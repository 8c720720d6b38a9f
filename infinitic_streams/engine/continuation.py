"""Continue-as-new: a run that called `self.continue_as_new(*args)` ends, and a new run of the
same workflow (id, name, method, tags, meta) starts with `args` and a fresh history.

In the transaction that ends the run:
- a `ContinuedAsNew` event ends the run's history (published to the events topic), then the
  whole history is deleted: a workflow that loops through continue-as-new keeps a bounded
  state (`w|id`, the current run's history and unfinished tasks);
- the run's work stops: its timers are dropped, its unfinished tasks are told (`CancelTask`)
  and forgotten (a late result finds no task), its running children keep running on their
  own (their end is not recorded: it belongs to a run that is over);
- the signals the run did not take (recorded, no receive took them) are carried, in arrival
  order, into the new history, after its `Started`;
- whoever waits for the workflow (clients, parent workflows) keeps waiting: they get the end
  of the last run. The workflow timeout (`@workflow(timeout=)`) covers all runs;
- the new run numbers its commands after the last one of the run before (`seq_base`), so task
  ids, timer keys and default child ids never meet those of an earlier run; its start time is
  later than the previous run's, so the ids of its events are new.
The new run's code runs in a later transaction (a runtime timer due now, `lifecycle.start_run`),
or at the first fact that reaches it, whichever comes first: a loop of runs that do nothing
takes a transaction per run, not one unbounded transaction.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from infinitic_streams.engine import endings, events, storage, timers
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import WorkflowState
from infinitic_streams.streams import Context
from infinitic_streams.workflows.commands import ContinuedAsNew
from infinitic_streams.workflows.execution import WorkflowExecution

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine


def continue_as_new(
    engine: WorkflowEngine,
    ctx: Context,
    state: WorkflowState,
    execution: WorkflowExecution,
    outcome: ContinuedAsNew,
    now: int,
) -> None:
    """End the run of `state` and set up the next one (see the module's docstring)."""
    workflow_id = state.workflow_id
    args = [a.decode() for a in outcome.args]
    history = storage.read_history(ctx, state)
    signals = [event for event in history if isinstance(event, s.SignalReceived)]
    carried = [signals[i] for i in execution.untaken_arrivals() if i < len(signals)]
    events.record(engine, ctx, state, s.ContinuedAsNew(now, state.run, args))
    reason = f"its run {state.run} continued as new"
    endings.stop_work(engine, ctx, state, reason, history, cancel_children=False)
    for event in history:
        if isinstance(event, s.TaskScheduled):
            ctx.delete(s.task_key(workflow_id, event.seq))
    for index in range(state.history_size):
        ctx.delete(s.history_key(workflow_id, index))
    engine.cache.drop(workflow_id)

    state.run += 1
    state.seq_base = execution.last_seq
    state.history_size = 0
    state.started_at_ms = max(now, state.started_at_ms + 1)  # unique event ids per run
    state.receiving = []
    events.record(engine, ctx, state, s.Started(now, state.method, args, state.run, state.seq_base))
    waiting: dict[str, int] = {}
    for signal in carried:
        events.record(engine, ctx, state, dataclasses.replace(signal, at_ms=now))
        waiting[signal.channel] = waiting.get(signal.channel, 0) + 1
    state.signals_waiting = waiting
    storage.save_state(ctx, state)
    ctx.schedule(timers.timer_key(timers.NEW_RUN, workflow_id), now)
