"""`WorkflowHandle`: one workflow seen from a client (result, describe, history, signal,
cancel, retry), and `WorkflowInfo`, what `describe()` returns."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from infinitic_streams import payload
from infinitic_streams.definitions import public_method
from infinitic_streams.errors import (
    InfiniticError,
    WorkflowCanceled,
    WorkflowFailed,
    WorkflowNotFound,
    WorkflowTimedOut,
)
from infinitic_streams.protocol import (
    CancelWorkflow,
    Payload,
    QueryKind,
    RetryWorkflow,
    SendSignal,
    WorkflowResult,
    WorkflowStatus,
)
from infinitic_streams.protocol.history import HistoryEvent
from infinitic_streams.protocol.replies import CancelAnswer, SignalAnswer, WorkflowDescription
from infinitic_streams.workflows.channel import channels_of

if TYPE_CHECKING:
    from infinitic_streams.client.client import InfiniticClient


@dataclass(frozen=True)
class WorkflowInfo:
    id: str
    name: str
    method: str
    status: WorkflowStatus
    result: Any  # the decoded return value when COMPLETED
    error: str | None  # "Type: message" when FAILED or CANCELED
    started_at: datetime
    updated_at: datetime
    pending: list[str]  # what it waits for: tasks, timers, children, signals
    tags: tuple[str, ...] = ()
    args: tuple[Any, ...] = ()  # the start arguments as plain JSON values (large ones shortened)
    traceback: str = ""  # of the error, when FAILED
    children: list[tuple[str, str, WorkflowStatus]] = field(default_factory=list)  # id, name
    signals_waiting: dict[str, int] = field(default_factory=dict)  # untaken, per channel
    ended_at: datetime | None = None  # from list(): when it ended (None while RUNNING)
    cursor: str = ""  # from list(): pass it as `after` to get the page that follows
    run: int = 1  # continue-as-new: the number of its current (or last) run, 1 for the first
    patches: list[str] = field(default_factory=list)  # the patches its current run took


class WorkflowHandle:
    """A workflow instance seen from a client."""

    def __init__(
        self,
        client: InfiniticClient,
        cls: type | None,
        workflow_id: str,
        method: str | None,
        waiting: bool,
    ) -> None:
        self._client, self._cls = client, cls
        self.id = workflow_id
        self._method = method
        self._waiting = waiting  # the engine will send us its result

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the end; return the result or raise WorkflowFailed (WorkflowTimedOut) /
        WorkflowCanceled (TimeoutError after `timeout` seconds). A call after the first, or
        after a failure, asks the engine again: the workflow may have been retried since."""
        client = self._client
        latest = client._replies.latest(self.id)
        if latest is not None and latest.status == WorkflowStatus.FAILED:
            self._waiting = False  # a failure that came earlier may have been retried since
        after, asked = 0, None
        if not self._waiting:
            after = client._replies.mark()
            asked = client._ask(self.id, QueryKind.RESULT)
        result = client._replies.wait_result(self.id, timeout, asked, after)
        self._waiting = False
        if result is None:
            hint = client._no_engine_hint()
            raise TimeoutError(f"workflow {self.id} did not end within {timeout:g} s.{hint}")
        if result.status == WorkflowStatus.COMPLETED:
            assert result.result is not None
            return self._decode_result(result.result.data)
        raise _error_of(result)

    def describe(self) -> WorkflowInfo:
        reply = self._client._query(self.id, QueryKind.DESCRIBE)
        described: WorkflowDescription = payload.decode(reply.data, WorkflowDescription)  # type: ignore[assignment]
        self._method = described.method
        result = None
        if described.result is not None:
            result = self._decode_result(described.result.encode())
        error = described.error
        return WorkflowInfo(
            id=described.workflow_id,
            name=described.workflow_name,
            method=described.method,
            status=WorkflowStatus(described.status),
            result=result,
            error=f"{error.type_name}: {error.message}" if error else None,
            started_at=datetime_of_ms(described.started_at_ms),
            updated_at=datetime_of_ms(described.updated_at_ms),
            pending=described.pending,
            tags=tuple(described.tags),
            args=tuple(json.loads(a) for a in described.args),
            traceback=error.traceback if error else "",
            children=[(c.id, c.name, c.status) for c in described.children],
            signals_waiting=described.signals_waiting,
            run=described.run,
            patches=described.patches,
        )

    def history(self) -> list[dict[str, Any]]:
        """The recorded events, oldest first: {"at": datetime, "event": name, ...fields}."""
        reply = self._client._query(self.id, QueryKind.HISTORY)
        events: list[HistoryEvent] = payload.decode(reply.data, list[HistoryEvent])  # type: ignore[assignment]
        return [_event_dict(event) for event in events]

    def signal(self, channel: str, value: Any) -> None:
        """Send `value` to the workflow's `channel`; return once the engine recorded it.
        Raises `WorkflowNotFound`, or `InfiniticError` when the workflow has ended, has no
        such channel, or the value does not fit the channel's type."""
        data = encode_signal(self._cls, channel, value)
        payload.check_size([data], self._client.topics.max_payload_bytes, f"signal {channel}")
        request_id = uuid.uuid4().hex
        message = SendSignal(
            workflow_id=self.id,
            signal_id=request_id,
            channel=channel,
            value=Payload(data=data),
            reply_to=self._client.reply_to,
        )
        reply = self._client._request(self.id, message, request_id)
        answer: SignalAnswer = payload.decode(reply.data, SignalAnswer)  # type: ignore[assignment]
        if answer.recorded:
            return
        if answer.error_type == WorkflowNotFound.__name__:
            raise WorkflowNotFound(self.id)
        raise InfiniticError(f"signal {channel!r} refused: {answer.message}")

    def cancel(self, reason: str = "canceled by a client") -> bool:
        """Cancel the workflow; return once the engine recorded it: True, or False when it
        had already ended (nothing changes). Raises `WorkflowNotFound`."""
        request_id = uuid.uuid4().hex
        message = CancelWorkflow(
            workflow_id=self.id,
            reason=reason,
            request_id=request_id,
            reply_to=self._client.reply_to,
        )
        reply = self._client._request(self.id, message, request_id)
        if not reply.found:
            raise WorkflowNotFound(self.id)
        answer: CancelAnswer = payload.decode(reply.data, CancelAnswer)  # type: ignore[assignment]
        return answer.canceled

    def retry(self) -> None:
        """Resume a FAILED workflow: its failed task runs again and its code is replayed with
        the code deployed now."""
        self._client._send(self.id, RetryWorkflow(workflow_id=self.id))
        self._waiting = False  # the next result() asks for the new outcome

    def _decode_result(self, data: bytes) -> Any:
        if self._cls is None:
            return json.loads(data)
        if self._method is None:
            self.describe()
        assert self._method is not None
        hint = payload.hints_of(public_method(self._cls, self._method))[1]
        return payload.decode(data, hint, path="result")


def encode_signal(cls: type | None, channel: str, value: Any) -> bytes:
    """`value` encoded for `channel`: checked against the channel's type when the workflow
    class is known (an unknown channel is refused here, naming those it has)."""
    hint: Any = Any
    if cls is not None:
        channels = channels_of(cls)
        if channel not in channels:
            raise InfiniticError(
                f"workflow {cls.__name__} has no channel {channel!r} "
                f"(its channels: {sorted(channels)})"
            )
        hint = channels[channel].type
    return payload.encode(value, hint, path=f"signal {channel}")


def _error_of(result: WorkflowResult) -> InfiniticError:
    """What `result()` raises for a workflow that did not complete."""
    error = result.error
    type_name, message = (error.type_name, error.message) if error else ("", "")
    if result.status == WorkflowStatus.CANCELED:
        return WorkflowCanceled(result.workflow_id, message)
    if type_name == WorkflowTimedOut.__name__:
        return WorkflowTimedOut(result.workflow_id, type_name, message)
    return WorkflowFailed(result.workflow_id, type_name, message)


def datetime_of_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _event_dict(event: HistoryEvent) -> dict[str, Any]:
    fields = {k: v for k, v in vars(event).items() if k != "at_ms"}
    return {"at": datetime_of_ms(event.at_ms), "event": type(event).__name__, **fields}
