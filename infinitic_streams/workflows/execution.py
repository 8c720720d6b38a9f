"""One live instance of a workflow method, driven by the events of its history.

The engine creates an execution when a workflow starts (or, after a restart, when it needs one
and replays the history into it), then feeds it events: task completed or failed, timer fired.
Each call returns a `Step`: the commands newly issued and, once the method returns or raises,
its outcome. Pure: no Kafka, no storage; commands and results are plain data.

Replay: the engine passes the commands recorded in history. A command issued again with the
same sequence number is checked against the record (same step, else the workflow fails with
`NonDeterministicWorkflow`) and not issued twice; an inline result comes from the record.

Payload limit (`max_payload_bytes`): a task call whose encoded arguments, or an inline result,
are over it raises `PayloadTooLarge` at the call, in workflow code (catchable); the refusal is a
recorded command (`RefusedCommand`), so every replay decides that call the same way. A method
result over it fails the workflow with `PayloadTooLarge`.

Versioning (`patched`, `deprecate_patch`) and continue-as-new: see `versioning.py`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from infinitic_streams import payload
from infinitic_streams.definitions import public_method, workflow_spec
from infinitic_streams.errors import (
    NonDeterministicWorkflow,
    PayloadTooLarge,
    SerializationError,
    TaskFailed,
)
from infinitic_streams.workflows.channel import Channel, Receive, channels_of
from infinitic_streams.workflows.commands import (
    CancelCommand,
    ChildCommand,
    Command,
    Completed,
    ContinuedAsNew,
    Failed,
    InlineCommand,
    Outcome,
    ReceiveCommand,
    RefusedCommand,
    SignalCommand,
    Step,
    TaskCommand,
    TimerCommand,
)
from infinitic_streams.workflows.deferred import Deferred
from infinitic_streams.workflows.scheduler import Branch, Scheduler, Unwind
from infinitic_streams.workflows.versioning import ContinueAsNew, Patches


class WorkflowExecution:
    def __init__(
        self,
        cls: type,
        method: str,
        workflow_id: str,
        tags: tuple[str, ...] = (),
        meta: Mapping[str, str] | None = None,
        recorded: Mapping[int, Command] | None = None,
        max_payload_bytes: int = payload.DEFAULT_MAX_PAYLOAD_BYTES,
        first_seq: int = 0,
        run: int = 1,
    ) -> None:
        self.workflow_id = workflow_id
        self.workflow_name = workflow_spec(cls).name
        self.method_name = method
        self.tags = tuple(tags)
        self.meta = dict(meta or {})
        self._method = public_method(cls, method)
        self._param_hints, self._return_hint = payload.hints_of(self._method)
        self._recorded = dict(recorded or {})
        self.max_payload_bytes = max_payload_bytes
        self.scheduler = Scheduler()
        self._seq = first_seq  # a later run numbers its commands after the previous runs'
        self.run = run
        self._new: list[Command] = []
        self._waiting: dict[int, tuple[Deferred[Any], Any]] = {}  # seq -> (deferred, hint)
        self._tasks: dict[int, TaskCommand] = {}  # seq -> the task waited for
        self._channels = channels_of(cls)
        # channel -> (arrival number, value) of the signals no receive took yet
        self._untaken: dict[str, list[tuple[int, Any]]] = {}
        self._arrivals = 0  # signals seen so far, in history order
        self._receives: list[Receive] = []  # waiting for signals, oldest first
        self._rng = random.Random(workflow_id if run == 1 else f"{workflow_id}/{run}")
        self._patches = Patches(self)
        self.continued: ContinuedAsNew | None = None  # set by continue_as_new()
        self._divergence: NonDeterministicWorkflow | None = None
        self._main: Branch | None = None
        self.outcome: Outcome | None = None
        self.now_ms = 0
        self.workflow = cls()
        self.workflow._execution = self

    # -- events (called by the engine) ------------------------------------------------------

    def start(self, args: Sequence[bytes], now_ms: int) -> Step:
        try:
            values = payload.decode_args(args, self._param_hints)
        except SerializationError as error:
            return self._end(Failed(error))
        bound = self._method.__get__(self.workflow)
        self._main = self.scheduler.spawn(bound, tuple(values), self.method_name)
        return self._advance(now_ms)

    def task_completed(self, seq: int, result: bytes, now_ms: int) -> Step:
        deferred, hint = self._waiting.pop(seq)
        self._tasks.pop(seq, None)
        try:
            deferred._complete(payload.decode(result, hint, path="result"))
        except SerializationError as error:
            deferred._fail(error)
        return self._advance(now_ms)

    def task_failed(self, seq: int, error: TaskFailed, now_ms: int) -> Step:
        deferred, _ = self._waiting.pop(seq)
        self._tasks.pop(seq, None)
        deferred._fail(error)
        return self._advance(now_ms)

    def timer_fired(self, seq: int, now_ms: int) -> Step:
        deferred, due = self._waiting.pop(seq)
        deferred._complete(due)
        return self._advance(now_ms)

    def signal_received(self, channel: str, value: bytes, now_ms: int) -> Step:
        """A signal was recorded: the oldest pending receive of its channel that accepts it
        takes it; else it waits, untaken, for a later receive."""
        arrival, self._arrivals = self._arrivals, self._arrivals + 1
        known = self._channels.get(channel)
        try:
            decoded = payload.decode(value, known.type if known else Any, path=channel)
        except SerializationError:  # the channel's type changed since: keep the JSON value
            decoded = payload.decode(value, Any, path=channel)
        for receive in [r for r in self._receives if r.channel == channel]:
            taken = receive.accepts(decoded)
            if taken:
                receive.take(decoded)
            if receive.full:
                self._receives.remove(receive)
            if taken:
                break
        else:
            self._untaken.setdefault(channel, []).append((arrival, decoded))
        return self._advance(now_ms)

    def child_ended(
        self,
        seq: int,
        child_id: str,
        outcome: Completed | Failed,
        now_ms: int,
    ) -> Step:
        """A child workflow ended: its result, or its `WorkflowFailed` / `WorkflowCanceled`."""
        deferred, hint = self._waiting.pop(seq)
        if isinstance(outcome, Failed):
            deferred._fail(outcome.error)
        else:
            try:
                deferred._complete(payload.decode(outcome.result, hint, path="result"))
            except SerializationError as error:
                deferred._fail(error)
        return self._advance(now_ms)

    def untaken_signals(self) -> dict[str, int]:
        """How many signals wait, untaken, per channel."""
        return {channel: len(values) for channel, values in self._untaken.items() if values}

    def untaken_arrivals(self) -> list[int]:
        """The arrival numbers (0 for the first signal fed) of the signals no receive took,
        in arrival order: a continue-as-new carries them into the next run."""
        return sorted(arrival for values in self._untaken.values() for arrival, _ in values)

    def receiving(self) -> list[str]:
        """The receives waiting for a signal, for humans."""
        return [f"a signal on channel {r.channel!r} (step {r.seq})" for r in self._receives]

    def end_of_replay(self) -> Step:
        """After the whole history was replayed, every recorded command must have been issued
        again; one that was not means the code changed."""
        if self._recorded and self.outcome is None:
            seq = min(self._recorded)
            self._divergence = NonDeterministicWorkflow(
                self.workflow_id, seq, self._recorded[seq].step, "no step (the code stops earlier)"
            )
            return self._end(Failed(self._divergence))
        return Step([])

    @property
    def last_seq(self) -> int:
        """The number of the last command issued (or skipped) so far."""
        return self._seq

    def waiting_for(self, seq: int) -> bool:
        return seq in self._waiting

    def task_waited_for(self, seq: int) -> TaskCommand:
        """The task command of `seq`, which this instance waits for."""
        return self._tasks[seq]

    def close(self) -> None:
        """End the branches of this instance (finished, failed, or evicted from the cache)."""
        self.scheduler.close()

    # -- commands (called from workflow code, in a branch) ----------------------------------

    def issue(self, make: Callable[[int], Command]) -> Command:
        """Give `make` the next sequence number; return the command, or its recorded twin."""
        if self.continued is not None:
            raise Unwind  # a `finally` block of a run that continues as new issues nothing
        self._seq += 1
        command = make(self._seq)
        recorded = self._recorded.pop(self._seq, None)
        if recorded is None:
            self._new.append(command)
            return command
        if recorded.step != command.step:
            self._divergence = NonDeterministicWorkflow(
                self.workflow_id, self._seq, recorded.step, command.step
            )
            raise Unwind  # not catchable by workflow code
        return recorded

    def issue_within_limit(self, make: Callable[[int], Command], data: Sequence[bytes]) -> Command:
        """`issue` for a command carrying the payloads `data`; when they are over the limit,
        a `RefusedCommand` is issued instead. A refused command (new or recorded) raises
        `PayloadTooLarge` here, in workflow code."""

        def build(seq: int) -> Command:
            command = make(seq)
            try:
                payload.check_size(data, self.max_payload_bytes, _payload_of(command))
            except PayloadTooLarge as error:
                return RefusedCommand(seq, command.step, error.what, error.size, error.limit)
            return command

        command = self.issue(build)
        if isinstance(command, RefusedCommand):
            raise command.error()
        return command

    def wait_task(self, command: TaskCommand, return_hint: Any) -> Deferred[Any]:
        deferred: Deferred[Any] = Deferred(self.scheduler, command.step)
        self._waiting[command.seq] = (deferred, return_hint)
        self._tasks[command.seq] = command
        return deferred

    def wait_timer(self, command: TimerCommand) -> Deferred[datetime]:
        deferred: Deferred[datetime] = Deferred(self.scheduler, "timer")
        self._waiting[command.seq] = (deferred, datetime.fromtimestamp(command.due_ms / 1000, UTC))
        return deferred

    def receive(
        self, channel: Channel, limit: int | None, where: Callable[[Any], bool] | None
    ) -> Receive:
        command = self.issue(lambda seq: ReceiveCommand(seq, channel.name, limit))
        receive = Receive(self.scheduler, command.seq, channel.name, limit, where)
        untaken = self._untaken.get(channel.name, [])
        for entry in list(untaken):
            if receive.full:
                break
            if receive.accepts(entry[1]):
                untaken.remove(entry)
                receive.take(entry[1])
        if not receive.full:
            self._receives.append(receive)
        return receive

    def start_child(
        self,
        cls: type,
        method: str,
        args: tuple[Any, ...],
        child_id: str | None,
        tags: tuple[str, ...],
    ) -> Deferred[Any]:
        """Start a child workflow (or join the one with `child_id`): its result, later."""
        name = workflow_spec(cls).name
        param_hints, return_hint = payload.hints_of(public_method(cls, method))
        encoded = tuple(payload.encode_args(args, param_hints))
        command = self.issue_within_limit(
            lambda seq: ChildCommand(
                seq, name, method, encoded, child_id or f"{self.workflow_id}.{seq}", tags
            ),
            encoded,
        )
        deferred: Deferred[Any] = Deferred(self.scheduler, command.step)
        self._waiting[command.seq] = (deferred, return_hint)
        return deferred

    def send_signal(self, cls: type, workflow_id: str, channel: Channel, value: Any) -> None:
        encoded = payload.encode(value, channel.type, path=f"signal {channel.name}")
        name = workflow_spec(cls).name
        self.issue_within_limit(
            lambda seq: SignalCommand(seq, workflow_id, name, channel.name, encoded), [encoded]
        )

    def cancel_workflow(self, cls: type, workflow_id: str) -> None:
        name = workflow_spec(cls).name
        self.issue(lambda seq: CancelCommand(seq, workflow_id, name))

    def inline(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        _, hint = payload.hints_of(fn)
        name = getattr(fn, "__qualname__", repr(fn))
        if self._seq + 1 in self._recorded:
            result = b""  # replaying: the recorded result (or refusal) is used, fn does not run
        else:
            result = payload.encode(fn(*args), hint, path=f"inline {name}")
        command = self.issue_within_limit(lambda s: InlineCommand(s, name, result), [result])
        assert isinstance(command, InlineCommand)
        return payload.decode(command.result, hint, path=f"inline {name}")

    def branch(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Deferred[Any]:
        name = getattr(fn, "__name__", "branch")
        return self.scheduler.spawn(fn, args, f"branch {name}").deferred

    def patched(self, change_id: str) -> bool:
        return self._patches.patched(change_id)

    def deprecate_patch(self, change_id: str) -> None:
        self._patches.deprecate(change_id)

    def continue_as_new(self, args: tuple[Any, ...]) -> None:
        """End this run; the engine starts the next one with `args` (never returns)."""
        encoded = tuple(payload.encode_args(args, self._param_hints))
        what = f"arguments of continue_as_new of {self.workflow_name}.{self.method_name}"
        payload.check_size(encoded, self.max_payload_bytes, what)  # PayloadTooLarge here
        self.continued = ContinuedAsNew(encoded)
        self.scheduler.stop()
        raise ContinueAsNew  # not catchable by workflow code

    def now(self) -> datetime:
        """The time of the event being handled: the same on every replay."""
        return datetime.fromtimestamp(self.now_ms / 1000, UTC)

    def random(self) -> float:
        return self._rng.random()

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)

    # -- internals --------------------------------------------------------------------------

    def _advance(self, now_ms: int) -> Step:
        if self.outcome is not None:
            return Step([])
        self.now_ms = now_ms
        self.scheduler.run_until_blocked()
        if self._divergence is not None:
            return self._end(Failed(self._divergence))
        if self.continued is not None:
            return self._end(self.continued)
        main = self._main
        if main is not None and main.finished:
            deferred = main.deferred
            try:
                value = deferred.result()
            except Exception as error:
                return self._end(Failed(error))
            try:
                result = payload.encode(value, self._return_hint, path="result")
                what = f"result of workflow {self.workflow_name}.{self.method_name}"
                payload.check_size([result], self.max_payload_bytes, what)
            except (SerializationError, PayloadTooLarge) as error:
                return self._end(Failed(error))
            return self._end(Completed(result))
        return self._take()

    def _end(self, outcome: Outcome) -> Step:
        self.outcome = outcome
        self.close()
        return self._take(outcome)

    def _take(self, outcome: Outcome | None = None) -> Step:
        commands, self._new = self._new, []
        return Step(commands, outcome)


def _payload_of(command: Command) -> str:
    """What the payload of `command` is, for a `PayloadTooLarge` message."""
    if isinstance(command, InlineCommand):
        return f"result of {command.step}"
    if isinstance(command, SignalCommand):
        return f"value of {command.step}"
    return f"arguments of {command.step}"
