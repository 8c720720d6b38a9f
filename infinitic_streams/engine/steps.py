"""Running workflow code: facts recorded, the code resumed, the commands of its step carried
out (`commands.py`), and its end (`endings.py`).

The rule for facts (task results, final failures, timers fired, signals, children that ended):
- RUNNING: the live instance is taken from the cache or rebuilt by a replay *before* the fact
  joins the history; a replay that diverges ends the workflow FAILED (`NonDeterministicWorkflow`)
  and the fact is then recorded after that `Ended`; otherwise it is recorded and fed to the code.
- FAILED or CANCELED: the fact is recorded, no code runs. `retry()` of a FAILED workflow
  replays the whole history, so the fixed code sees every fact, whenever it came.
- COMPLETED: nothing more is recorded.
The cache trusts an instance only at the exact history size it saw; appending events a replay
ignores (attempt failures) moves its mark along, anything else goes through `apply`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infinitic_streams.engine import commands, continuation, endings, events, instances, storage
from infinitic_streams.engine import state as s
from infinitic_streams.engine.state import Facts, WorkflowState
from infinitic_streams.protocol import WorkflowStatus
from infinitic_streams.streams import Context
from infinitic_streams.workflows import replay
from infinitic_streams.workflows.commands import ContinuedAsNew, Step
from infinitic_streams.workflows.execution import WorkflowExecution

if TYPE_CHECKING:
    from infinitic_streams.engine.engine import WorkflowEngine


def record(engine: WorkflowEngine, ctx: Context, facts: Facts, now: int) -> None:
    """Record `facts` in the history, in order, and resume the code of a RUNNING workflow
    with those it may see (the rule above)."""
    state, recorded = facts
    if state.status != WorkflowStatus.RUNNING:
        _append_all(engine, ctx, state, recorded)
        storage.save_state(ctx, state)
        return
    if not any(isinstance(event, replay.CODE_FACTS) for event in recorded):
        seen = state.history_size
        _append_all(engine, ctx, state, recorded)
        engine.cache.advance(state.workflow_id, seen, state.history_size)
        storage.save_state(ctx, state)
        return
    run = state.run
    execution = execution_of(engine, ctx, state, now)  # may end it: its code changed
    if state.status not in s.RECORDING:
        return  # the replay completed it (changed code that no longer waits)
    if state.run != run:  # the replay continued it as new: its signals go to the new run
        carried = [event for event in recorded if isinstance(event, s.SignalReceived)]
        if carried:
            record(engine, ctx, Facts(state, carried), now)
        return
    _append_all(engine, ctx, state, recorded)
    applied = False
    for event in recorded:
        if state.status != WorkflowStatus.RUNNING or state.run != run:
            break
        step = replay.feed(execution, event)
        if step is not None:
            apply(engine, ctx, state, execution, step, now)
            applied = True
    if not applied:  # nothing it waited for: as a replay would, the instance skips the facts
        storage.save_state(ctx, state)
        if state.status == WorkflowStatus.RUNNING and execution.outcome is None:
            engine.cache.put(state.workflow_id, execution, state.history_size)


def execution_of(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, now: int
) -> WorkflowExecution:
    """The live instance of a RUNNING workflow, from the cache or rebuilt by a replay (whose
    new commands, or outcome, are carried out: a divergence ends the workflow here)."""
    execution, step = instances.cached_or_replayed(engine, ctx, state)
    if step is not None and (step.commands or step.outcome is not None):
        apply(engine, ctx, state, execution, step, now)
    return execution


def apply(
    engine: WorkflowEngine,
    ctx: Context,
    state: WorkflowState,
    execution: WorkflowExecution,
    step: Step,
    now: int,
) -> None:
    """Record and carry out the commands of a step; end the workflow if it ended."""
    for command in step.commands:
        commands.carry_out(engine, ctx, state, command, now)
    if isinstance(step.outcome, ContinuedAsNew):
        continuation.continue_as_new(engine, ctx, state, execution, step.outcome, now)
        return
    if step.outcome is not None:
        endings.end(engine, ctx, state, step.outcome, now)
        return
    state.signals_waiting = execution.untaken_signals()
    state.receiving = execution.receiving()
    storage.save_state(ctx, state)
    if execution.outcome is None:
        engine.cache.put(state.workflow_id, execution, state.history_size)


def _append_all(
    engine: WorkflowEngine, ctx: Context, state: WorkflowState, facts: list[s.HistoryEvent]
) -> None:
    for event in facts:
        events.record(engine, ctx, state, event)
