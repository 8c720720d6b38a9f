"""Versioning (`patched`, `deprecate_patch`) and continue-as-new in the pure execution: what
the code issues live and how it replays histories recorded by older code."""

from __future__ import annotations

from infinitic_streams import payload
from infinitic_streams.definitions import RetryPolicy, service, workflow
from infinitic_streams.errors import NonDeterministicWorkflow, PayloadTooLarge
from infinitic_streams.workflows.channel import Channel
from infinitic_streams.workflows.commands import (
    Command,
    Completed,
    ContinuedAsNew,
    Failed,
    PatchCommand,
    Step,
    TaskCommand,
)
from infinitic_streams.workflows.execution import WorkflowExecution
from infinitic_streams.workflows.workflow import Workflow


@service("Ops")
class Ops:
    def first(self, x: int) -> int: ...
    def old(self, x: int) -> int: ...
    def new(self, x: int) -> int: ...


@workflow("Versioned")
class VersionedV1(Workflow):
    def run(self, x: int) -> str:
        ops = self.new_service(Ops)
        a = ops.first(x)
        return f"old {ops.old(a)}"


@workflow("Versioned")
class VersionedV2(Workflow):
    def run(self, x: int) -> str:
        ops = self.new_service(Ops)
        a = ops.first(x)
        if self.patched("new-step"):
            assert self.patched("new-step")  # the same answer for the rest of the run
            return f"new {ops.new(a)}"
        assert not self.patched("new-step")
        return f"old {ops.old(a)}"


@workflow("Versioned")
class VersionedV3(Workflow):
    """Every run that took the old path has ended: the `if` is gone."""

    def run(self, x: int) -> str:
        ops = self.new_service(Ops)
        a = ops.first(x)
        self.deprecate_patch("new-step")
        return f"new {ops.new(a)}"


@workflow("Versioned")
class VersionedNoMarker(Workflow):
    """The `if` removed without `deprecate_patch`: histories with the marker diverge."""

    def run(self, x: int) -> str:
        ops = self.new_service(Ops)
        a = ops.first(x)
        return f"new {ops.new(a)}"


def steps_of(step: Step) -> list[tuple[int, str]]:
    return [(c.seq, c.step) for c in step.commands]


def task(seq: int, method: str, x: int) -> TaskCommand:
    return TaskCommand(seq, "Ops", method, (payload.encode(x, int),), (), {}, RetryPolicy(), None)


def run_to_end(
    cls: type, recorded: dict[int, Command], results: list[int]
) -> tuple[list[tuple[int, str]], object]:
    """Start `cls` over `recorded`, complete the tasks it waits for with `results` in turn;
    the commands it issued beyond the record, and its outcome."""
    execution = WorkflowExecution(cls, "run", "v-1", recorded=recorded)
    step = execution.start([payload.encode(1, int)], 1000)
    issued = steps_of(step)
    for result in results:
        if execution.outcome is not None:
            break
        seq = next(s for s in range(1, 10) if execution.waiting_for(s))
        step = execution.task_completed(seq, payload.encode(result, int), 2000)
        issued += steps_of(step)
    outcome = execution.outcome
    if isinstance(outcome, Completed):
        return issued, payload.decode(outcome.result, str)
    return issued, outcome


def test_live_the_patch_is_recorded_and_the_new_path_taken() -> None:
    issued, result = run_to_end(VersionedV2, {}, [10, 20])
    assert issued == [(1, "task Ops.first"), (2, "patch new-step"), (3, "task Ops.new")]
    assert result == "new 20"


def test_replaying_an_old_history_takes_the_old_path_without_a_marker() -> None:
    old_history = {1: task(1, "first", 1), 2: task(2, "old", 10)}  # made by V1
    issued, result = run_to_end(VersionedV2, old_history, [10, 20])
    assert issued == []  # every command was the recorded one, at the same number
    assert result == "old 20"


def test_an_old_run_that_had_not_reached_the_change_takes_the_new_path() -> None:
    issued, result = run_to_end(VersionedV2, {1: task(1, "first", 1)}, [10, 20])
    assert issued == [(2, "patch new-step"), (3, "task Ops.new")]
    assert result == "new 20"


def test_replaying_a_history_with_the_marker_takes_the_new_path() -> None:
    history = {1: task(1, "first", 1), 2: PatchCommand(2, "new-step"), 3: task(3, "new", 10)}
    assert run_to_end(VersionedV2, history, [10, 20]) == ([], "new 20")


def test_deprecate_patch_skips_a_recorded_marker_and_records_none() -> None:
    history = {1: task(1, "first", 1), 2: PatchCommand(2, "new-step"), 3: task(3, "new", 10)}
    assert run_to_end(VersionedV3, history, [10, 20]) == ([], "new 20")
    issued, result = run_to_end(VersionedV3, {}, [10, 20])
    assert issued == [(1, "task Ops.first"), (2, "task Ops.new")]  # no marker
    assert result == "new 20"


def test_removing_the_patch_without_deprecate_names_the_marker() -> None:
    history = {1: task(1, "first", 1), 2: PatchCommand(2, "new-step"), 3: task(3, "new", 10)}
    _, outcome = run_to_end(VersionedNoMarker, history, [10])
    assert isinstance(outcome, Failed) and isinstance(outcome.error, NonDeterministicWorkflow)
    assert (outcome.error.expected, outcome.error.found) == ("patch new-step", "task Ops.new")


def test_an_old_path_history_under_deprecated_code_is_a_divergence() -> None:
    old_history = {1: task(1, "first", 1), 2: task(2, "old", 10)}
    _, outcome = run_to_end(VersionedV3, old_history, [10])
    assert isinstance(outcome, Failed) and isinstance(outcome.error, NonDeterministicWorkflow)
    assert (outcome.error.expected, outcome.error.found) == ("task Ops.old", "task Ops.new")


# -- continue-as-new --------------------------------------------------------------------------


@workflow("Looping")
class Looping(Workflow):
    def run(self, n: int, total: int) -> int:
        if n == 0:
            return total
        ops = self.new_service(Ops)
        self.dispatch(ops.first, n)  # left running: the run ends before its result
        try:
            self.continue_as_new(n - 1, total + n)
        except Exception:  # it cannot be caught so
            return -1
        finally:
            ops.old(0)  # a finally block of the ending run issues nothing
        return -2


def test_continue_as_new_ends_the_run_with_the_next_args() -> None:
    execution = WorkflowExecution(Looping, "run", "l-1")
    step = execution.start(payload.encode_args([3, 10], [int, int]), 1000)
    assert steps_of(step) == [(1, "task Ops.first")]
    assert step.outcome == ContinuedAsNew(tuple(payload.encode_args([2, 13], [int, int])))
    assert execution.last_seq == 1


def test_a_next_run_numbers_its_commands_after_the_previous_run() -> None:
    execution = WorkflowExecution(Looping, "run", "l-1", first_seq=7, run=2)
    step = execution.start(payload.encode_args([1, 0], [int, int]), 1000)
    assert steps_of(step) == [(8, "task Ops.first")]
    first = WorkflowExecution(Looping, "run", "l-1")
    assert execution.random() != first.random()  # each run has a seed of its own


@workflow("Big")
class Big(Workflow):
    def run(self, data: str) -> str:
        try:
            self.continue_as_new(data * 100)
        except PayloadTooLarge:
            return "refused"
        return "unreachable"


def test_continue_as_new_with_arguments_over_the_limit_raises_in_workflow_code() -> None:
    execution = WorkflowExecution(Big, "run", "b-1", max_payload_bytes=1000)
    step = execution.start([payload.encode("x" * 20, str)], 1000)
    assert step.outcome == Completed(payload.encode("refused", str))


@workflow("Receiver")
class Receiver(Workflow):
    items = Channel(str)

    def run(self) -> str:
        first = self.items.receive().result()
        self.continue_as_new()
        return first


def test_untaken_signals_are_numbered_in_arrival_order() -> None:
    execution = WorkflowExecution(Receiver, "run", "r-1")
    execution.signal_received("items", payload.encode("a", str), 900)
    execution.signal_received("items", payload.encode("b", str), 900)
    execution.signal_received("items", payload.encode("c", str), 900)
    step = execution.start([], 1000)
    assert isinstance(step.outcome, ContinuedAsNew)
    assert execution.untaken_arrivals() == [1, 2]  # "a" was taken
