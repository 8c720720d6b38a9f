"""Workflow events as CloudEvents 1.0 in structured mode: the JSON object is the record value.

The engine writes one for each event it records in a workflow's history, to `<ns>.events`,
keyed by workflow id, in the transaction that records it (see docs/events.md for the types and
their data). An event's `id` is made of the workflow id, its start time and the event's place
in the history, so an event produced again (after an aborted transaction) has the same id.
Pure: the visibility index and any reader use `parse`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from infinitic_streams.protocol import history as h
from infinitic_streams.protocol.messages import WorkflowStatus

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
# Extension attributes (CloudEvents: lower-case letters and digits) on every event.
NAME = "workflowname"
METHOD = "workflowmethod"
STATUS = "workflowstatus"  # the workflow's status once the event is recorded

STARTED = "infinitic.workflow.started"
COMPLETED = "infinitic.workflow.completed"
FAILED = "infinitic.workflow.failed"
CANCELED = "infinitic.workflow.canceled"
RETRIED = "infinitic.workflow.retried"
REMOVED = "infinitic.workflow.removed"  # retention over: the engine forgot it
CONTINUED = "infinitic.workflow.continued"  # a run ended by continue-as-new (a new run starts)
ENDED = {
    WorkflowStatus.COMPLETED: COMPLETED,
    WorkflowStatus.FAILED: FAILED,
    WorkflowStatus.CANCELED: CANCELED,
}
TYPES: dict[type, str] = {
    h.Started: STARTED,
    h.TaskScheduled: "infinitic.task.scheduled",
    h.TaskSucceeded: "infinitic.task.completed",
    h.TaskGaveUp: "infinitic.task.failed",
    h.TimerScheduled: "infinitic.timer.scheduled",
    h.TimerFired: "infinitic.timer.fired",
    h.InlineRecorded: "infinitic.inline.recorded",
    h.CallRefused: "infinitic.call.refused",
    h.Retried: RETRIED,
    h.SignalReceived: "infinitic.signal.received",
    h.ReceiveStarted: "infinitic.signal.waiting",
    h.SignalSent: "infinitic.signal.sent",
    h.CancelSent: "infinitic.cancel.sent",
    h.ChildStarted: "infinitic.child.started",
    h.ChildFinished: "infinitic.child.ended",
    h.PatchRecorded: "infinitic.patch.recorded",
    h.ContinuedAsNew: CONTINUED,
}
TASK_RETRIED = "infinitic.task.retried"  # an attempt failed, another comes
ATTEMPT_FAILED = "infinitic.task.attemptfailed"  # the last attempt failed (task.failed follows)
_PAYLOADS = ("args", "result", "value")  # payload JSON strings, embedded as JSON in `data`
_SCALARS = frozenset({str, int, float, bool, type(None)})
_DATA_FIELDS: dict[type, tuple[str, ...]] = {}  # by history event type, see _data_fields


@dataclass(frozen=True)
class Subject:
    """What every event says about its workflow."""

    namespace: str
    workflow_id: str
    workflow_name: str
    method: str
    status: WorkflowStatus
    started_at_ms: int
    tags: tuple[str, ...] = ()
    parent_id: str | None = None


def event_type(event: h.HistoryEvent) -> str:
    if isinstance(event, h.Ended):
        return ENDED[event.status]
    if isinstance(event, h.AttemptFailed):
        return ATTEMPT_FAILED if event.retry_in is None else TASK_RETRIED
    known = TYPES.get(type(event))
    return known or f"infinitic.history.{type(event).__name__.lower()}"  # a type added later


def of_history(subject: Subject, index: int, event: h.HistoryEvent) -> dict[str, Any]:
    """The CloudEvent of history event number `index` of `subject`'s workflow."""
    data = {}
    for name in _data_fields(type(event)):
        value = _plain(getattr(event, name))
        if name in _PAYLOADS and value is not None:
            value = _embedded(value)
        data[name] = value
    if isinstance(event, h.Started):
        data.update(tags=list(subject.tags), parent_id=subject.parent_id)
    return _envelope(subject, str(index), event_type(event), event.at_ms, data)


def _data_fields(kind: type) -> tuple[str, ...]:
    """The fields of a history event type that its CloudEvent's `data` carries: not its time
    (the event's `time`), nor how the engine numbers commands (Started.seq_base), nor the
    status an Ended event gives (the event's type and `workflowstatus` say it)."""
    names = _DATA_FIELDS.get(kind)
    if names is None:
        hidden = {"at_ms"}
        if kind is h.Started:
            hidden.add("seq_base")
        if kind is h.Ended:
            hidden.add("status")
        names = tuple(f.name for f in dataclasses.fields(kind) if f.name not in hidden)
        _DATA_FIELDS[kind] = names
    return names


def removal(subject: Subject, at_ms: int) -> dict[str, Any]:
    """The last event of a workflow: its retention ended, its state and history are deleted."""
    return _envelope(subject, "removed", REMOVED, at_ms, {})


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def parse(data: bytes | None) -> dict[str, Any]:
    """A CloudEvent written by an engine; ValueError naming what is wrong otherwise."""
    if data is None:
        raise ValueError("an event record without a value")
    try:
        event = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"an event record that is not JSON: {error}") from None
    if not isinstance(event, dict) or event.get("specversion") != SPEC_VERSION:
        raise ValueError("an event record that is not a CloudEvent 1.0 (no specversion 1.0)")
    for attribute in ("id", "type", "subject", "time", NAME, STATUS):
        if not isinstance(event.get(attribute), str):
            raise ValueError(f"a CloudEvent without its {attribute!r} attribute")
    return event


def time_ms(event: dict[str, Any]) -> int:
    """The event's `time` as epoch milliseconds."""
    return int(datetime.fromisoformat(event["time"]).timestamp() * 1000)


def _envelope(
    subject: Subject, suffix: str, type_: str, at_ms: int, data: dict[str, Any]
) -> dict[str, Any]:
    moment = datetime.fromtimestamp(at_ms / 1000, UTC)
    return {
        "specversion": SPEC_VERSION,
        "id": f"{subject.workflow_id}/{subject.started_at_ms}/{suffix}",
        "source": f"/infinitic/{subject.namespace}/{subject.workflow_name}",
        "type": type_,
        "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "subject": subject.workflow_id,
        "datacontenttype": CONTENT_TYPE,
        NAME: subject.workflow_name,
        METHOD: subject.method,
        STATUS: str(subject.status.value),
        "data": data,
    }


def _plain(value: Any) -> Any:
    """A field's value as JSON-ready values, without `dataclasses.asdict`'s deep copy of
    every field (on every engine step)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _embedded(value: str | list[str]) -> Any:
    """Payload JSON strings become JSON values of the event."""
    if isinstance(value, list):
        return [json.loads(item) for item in value]
    return json.loads(value)
