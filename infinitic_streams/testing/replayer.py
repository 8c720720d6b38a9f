"""Replaying recorded histories against the code of today: what catches a non-deterministic
change before it is deployed (`env.replay`, `infinitic-streams replay-check`).

A history is the list `WorkflowHandle.history()` gives (dicts: "at", "event" and the event's
fields) or the `HistoryEvent`s themselves. The replay is the engine's own
(`workflows/replay.py`): the same code that rebuilds a workflow after a restart."""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from infinitic_streams import payload
from infinitic_streams.errors import InfiniticError, NonDeterministicWorkflow
from infinitic_streams.protocol import history as h
from infinitic_streams.workflows import replay as r
from infinitic_streams.workflows.commands import Failed
from infinitic_streams.workflows.execution import WorkflowExecution

History = Sequence[dict[str, Any]] | Sequence[h.HistoryEvent]
EVENT_TYPES = {cls.__name__: cls for cls in typing.get_args(h.HistoryEvent)}


def replay(history: History, workflow: type, workflow_id: str = "replay") -> None:
    """Replay `history` with the code of `workflow`; raise `NonDeterministicWorkflow` when the
    code takes another step than the one recorded (naming both)."""
    events = [event_of(e) if isinstance(e, dict) else e for e in history]
    started = next((e for e in events if isinstance(e, h.Started)), None)
    if started is None:
        raise InfiniticError("a history to replay starts with its Started event: none found")

    def new_execution(recorded: dict[int, Any]) -> WorkflowExecution:
        return WorkflowExecution(
            workflow,
            started.method,
            workflow_id,
            recorded=recorded,
            first_seq=started.seq_base,
            run=started.run,
        )

    execution, step = r.replay(new_execution, events)
    execution.close()
    outcome = step.outcome
    if isinstance(outcome, Failed) and isinstance(outcome.error, NonDeterministicWorkflow):
        raise outcome.error


def event_of(entry: dict[str, Any]) -> h.HistoryEvent:
    """A `HistoryEvent` back from a `history()` dict."""
    name = entry.get("event")
    cls = EVENT_TYPES.get(str(name))
    if cls is None:
        raise InfiniticError(f"unknown history event {name!r} (known: {sorted(EVENT_TYPES)})")
    at = entry.get("at")
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    fields = {k: v for k, v in entry.items() if k not in ("at", "event")}
    fields["at_ms"] = round(at.timestamp() * 1000) if isinstance(at, datetime) else 0
    data = json.dumps(fields, default=_plain).encode()
    return payload.decode(data, cls, path=str(name))  # type: ignore[no-any-return]


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot replay a history holding {type(value).__name__}")
