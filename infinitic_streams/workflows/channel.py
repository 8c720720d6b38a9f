"""`Channel`: signals sent to a running workflow, and the `Receive` deferreds that take them.

A channel is a class attribute of a workflow (`approvals = Channel(str)`). Inside the
workflow's code, `self.approvals.receive(limit=None, where=None)` returns a `Receive`; on a
stub of another workflow (`self.get_workflow(Cls, id).approvals`) it offers `send(value)`.

Signals are facts of the history, fed to the code in arrival order whether or not it waits:
the execution keeps the untaken ones per channel and hands each to the oldest pending
`Receive` whose `where` accepts it (see `WorkflowExecution.signal_received`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from infinitic_streams.errors import InfiniticError
from infinitic_streams.workflows.deferred import Deferred, DeferredStatus

if TYPE_CHECKING:
    from infinitic_streams.workflows.execution import WorkflowExecution
    from infinitic_streams.workflows.scheduler import Scheduler

MAX_UNTAKEN_SIGNALS = 10_000  # per channel: past it, a signal is refused (and dead-lettered)


class Channel:
    """A class attribute of a workflow that receives signals. `Channel(T)` checks each value
    against type `T` at the sender; `Channel()` carries any payload value."""

    def __init__(self, type: Any = Any) -> None:
        self.type = type
        self.name = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        execution = getattr(instance, "_execution", None)
        if execution is None:
            return self  # on the class, or outside workflow code
        return BoundChannel(execution, self)

    def receive(self, limit: int | None = None, where: Any = None) -> Any:
        raise InfiniticError(
            f"channel {self.name}: receive() works in workflow code only, as "
            f"self.{self.name}.receive()"
        )

    def __repr__(self) -> str:
        return f"Channel({self.name})"


def channels_of(cls: type) -> dict[str, Channel]:
    """The channels a workflow class declares (its bases' included), by name."""
    found: dict[str, Channel] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Channel):
                found[name] = value
    return found


class BoundChannel:
    """A channel inside the code of the workflow that owns it."""

    def __init__(self, execution: WorkflowExecution, channel: Channel) -> None:
        self._execution, self._channel = execution, channel

    def receive(
        self, limit: int | None = None, where: Callable[[Any], bool] | None = None
    ) -> Receive:
        """A Deferred of the next signal (the oldest untaken one that `where` accepts); with
        `limit=n`, each `.result()` returns its next signal, n in all."""
        if limit is not None and limit < 1:
            raise ValueError("receive(limit=n) needs n >= 1")
        return self._execution.receive(self._channel, limit, where)


class Receive(Deferred[Any]):
    """The signals a `receive()` took. Without a limit, an ordinary Deferred of one signal;
    with `limit=n`, `.result()` returns the next of its n signals at each call (waiting for it
    if needed) and raises `InfiniticError` after n. As a Deferred (`any_of`, `status()`), it
    completes with its first signal."""

    def __init__(
        self,
        scheduler: Scheduler,
        seq: int,
        channel: str,
        limit: int | None,
        where: Callable[[Any], bool] | None,
    ) -> None:
        super().__init__(scheduler, f"receive {channel}")
        self.seq, self.channel, self.limit, self.where = seq, channel, limit, where
        count = limit or 1
        self._slots: list[Deferred[Any]] = [
            Deferred(scheduler, f"receive {channel} #{i + 1}") for i in range(count)
        ]
        self._taken = self._read = 0

    @property
    def full(self) -> bool:
        return self._taken >= len(self._slots) or self.status() is DeferredStatus.FAILED

    def accepts(self, value: Any) -> bool:
        """Whether `where` takes `value`; a `where` that raises fails this receive."""
        if self.where is None:
            return True
        try:
            return bool(self.where(value))
        except Exception as error:
            self._fail(error)
            for slot in self._slots[self._taken :]:
                slot._fail(error)
            return False

    def take(self, value: Any) -> None:
        self._slots[self._taken]._complete(value)
        self._taken += 1
        if self._taken == 1:
            self._complete(value)

    def result(self) -> Any:
        if self.limit is None:
            return super().result()
        if self._read >= len(self._slots):
            raise InfiniticError(
                f"receive({self.channel}, limit={self.limit}) already gave its {self.limit} "
                "signal(s): call receive() again for more"
            )
        slot = self._slots[self._read]
        self._read += 1
        return slot.result()


class SendingChannel:
    """A channel of another workflow, seen from workflow code: `send(value)` only."""

    def __init__(
        self, execution: WorkflowExecution, cls: type, workflow_id: str, channel: Channel
    ) -> None:
        self._execution, self._cls, self._id, self._channel = execution, cls, workflow_id, channel

    def send(self, value: Any) -> None:
        """Record the signal (exactly once); the engine delivers it to the workflow."""
        self._execution.send_signal(self._cls, self._id, self._channel, value)
