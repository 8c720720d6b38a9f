"""Signals in the engine, without Kafka: buffered from the start, `where`, `limit`, `any_of`
with a timer, refusals, workflow-to-workflow. Every case runs twice: with live instances, and
with the cache dropped before every message (every step is then a replay)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from infinitic_streams import Channel, payload, workflow
from infinitic_streams.engine import signals as engine_signals
from infinitic_streams.protocol import (
    Payload,
    QueryKind,
    QueryReply,
    QueryWorkflow,
    SendSignal,
    WorkflowResult,
    WorkflowStatus,
)
from infinitic_streams.protocol.replies import SignalAnswer, WorkflowDescription
from infinitic_streams.workflows.workflow import Workflow

from .apps.language import Approval, Deadline, Sender
from .engine_harness import CLIENT, Harness, dispatch, names


@workflow("Counter")
class Counter(Workflow):
    ticks = Channel()

    def run(self, n: int) -> int:
        receive = self.ticks.receive(limit=n)
        return sum(receive.result() for _ in range(n))


@workflow("Idle")
class Idle(Workflow):
    ticks = Channel()

    def run(self) -> None:
        self.sleep(1000.0)


@pytest.fixture
def harness(harness_in_both_modes: Callable[..., Harness]) -> Callable[..., Harness]:
    """Every test of this module runs with live instances and with replays only."""
    return harness_in_both_modes


def signal(h: Harness, workflow_id: str, channel: str, value: object, n: int = 0) -> SignalAnswer:
    h.send(
        SendSignal(
            workflow_id=workflow_id,
            signal_id=f"s{n}",
            channel=channel,
            value=Payload(data=json.dumps(value).encode()),
            reply_to=CLIENT,
        )
    )
    [reply] = h.take(QueryReply)
    assert reply.request_id == f"s{n}"
    return payload.decode(reply.data, SignalAnswer)  # type: ignore[return-value]


def result_of(h: Harness) -> WorkflowResult:
    [result] = h.take(WorkflowResult)
    return result


def test_signals_sent_before_receive_are_kept_and_taken_in_order_where_and_limit(
    harness: Callable[..., Harness],
) -> None:
    h = harness([Approval])
    h.send(dispatch("a-1", "Approval", []))
    for n, value in enumerate(["yes", "maybe", "no", "x"]):
        assert signal(h, "a-1", "decisions", value, n).recorded
    result = result_of(h)
    assert result.status == WorkflowStatus.COMPLETED
    # "maybe" was skipped by `where`, stayed untaken, and went to the pair with "x".
    assert payload.decode(result.result.data, list[str]) == ["yes", "no", "maybe", "x"]
    assert names(h.history("a-1")).count("SignalReceived") == 4


def test_signals_wait_untaken_and_describe_counts_them(harness: Callable[..., Harness]) -> None:
    h = harness([Counter])
    h.send(dispatch("c-1", "Counter", [b"3"]))
    signal(h, "c-1", "ticks", 1)
    h.send(
        QueryWorkflow(request_id="d", workflow_id="c-1", query=QueryKind.DESCRIBE, reply_to=CLIENT)
    )
    [reply] = h.take(QueryReply)
    described = payload.decode(reply.data, WorkflowDescription)
    assert described.pending == ["a signal on channel 'ticks' (step 1)"]
    signal(h, "c-1", "ticks", 2, 1)
    signal(h, "c-1", "ticks", 3, 2)
    assert payload.decode(result_of(h).result.data, int) == 6


@pytest.mark.parametrize(("answer_after", "expected"), [(1.0, "signal 7"), (None, "timer")])
def test_any_of_receive_and_timer_is_won_by_each_side(
    harness: Callable[..., Harness], answer_after: float | None, expected: str
) -> None:
    h = harness([Deadline])
    h.send(dispatch("d-1", "Deadline", [b"5.0"]))
    if answer_after is not None:
        h.advance(answer_after)
        signal(h, "d-1", "answers", 7)
    h.advance(6.0)
    assert payload.decode(result_of(h).result.data, str) == expected


def test_refused_signals_are_answered_and_dead_lettered(harness: Callable[..., Harness]) -> None:
    h = harness([Deadline])
    missing = signal(h, "nope", "answers", 1)
    assert (missing.recorded, missing.error_type) == (False, "WorkflowNotFound")
    h.send(dispatch("d-2", "Deadline", [b"60"]))
    wrong_channel = signal(h, "d-2", "questions", 1, 1)
    assert not wrong_channel.recorded
    assert "no channel 'questions'" in wrong_channel.message
    assert "['answers']" in wrong_channel.message
    wrong_type = signal(h, "d-2", "answers", "seven", 2)
    assert not wrong_type.recorded
    assert "does not fit channel 'answers'" in wrong_type.message
    assert len(h.dead_letters) == 3
    signal(h, "d-2", "answers", 1, 3)
    result_of(h)
    ended = signal(h, "d-2", "answers", 2, 4)
    assert not ended.recorded
    assert "has ended (COMPLETED)" in ended.message


def test_a_channel_holds_a_bounded_number_of_untaken_signals(
    harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_signals, "MAX_UNTAKEN_SIGNALS", 2)
    h = harness([Idle])
    h.send(dispatch("i-1", "Idle", []))
    assert signal(h, "i-1", "ticks", 1, 1).recorded
    assert signal(h, "i-1", "ticks", 2, 2).recorded
    refused = signal(h, "i-1", "ticks", 3, 3)
    assert not refused.recorded
    assert "already holds 2 untaken signals" in refused.message
    assert h.state("i-1").signals_waiting == {"ticks": 2}
    assert len(h.dead_letters) == 1


def test_a_workflow_signals_another_exactly_once(harness: Callable[..., Harness]) -> None:
    h = harness([Deadline, Sender])
    h.send(dispatch("d-4", "Deadline", [b"60"]))
    h.send(dispatch("s-1", "Sender", [b'"d-4"', b"7"]))
    h.pump()
    results = {r.workflow_id: r for r in h.take(WorkflowResult)}
    assert payload.decode(results["d-4"].result.data, str) == "signal 7"
    assert payload.decode(results["s-1"].result.data, str) == "sent"
    [received] = [e for e in h.history("d-4") if type(e).__name__ == "SignalReceived"]
    assert received.sender == "s-1"  # type: ignore[union-attr]
