"""`Deferred`: the future of a task, timer, branch or child workflow, inside workflow code.

`result()` blocks the calling branch until the deferred completes (the scheduler runs other
branches meanwhile) and returns its value or raises its error. Completion order is recorded, so
`any_of` picks the same winner on every replay.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from infinitic_streams.workflows.scheduler import Scheduler

T = TypeVar("T")


class DeferredStatus(StrEnum):
    ONGOING = "ONGOING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class Deferred(Generic[T]):
    """A value that workflow code can wait for."""

    def __init__(self, scheduler: Scheduler | None, description: str) -> None:
        self._scheduler = scheduler
        self.description = description
        self._status = DeferredStatus.ONGOING
        self._value: Any = None
        self._error: BaseException | None = None
        self.completion_order: int | None = None  # set by the scheduler, deterministic
        self._listeners: list[Callable[[], None]] = []

    def result(self) -> T:
        """The value, waiting for it if needed; raises the error it completed with."""
        if self._status is DeferredStatus.ONGOING:
            assert self._scheduler is not None  # only an empty all_of has none, and it is done
            self._scheduler.wait_for(self)
        if self._error is not None:
            raise self._error
        return self._value

    def status(self) -> DeferredStatus:
        return self._status

    def is_completed(self) -> bool:
        return self._status is not DeferredStatus.ONGOING

    def __and__(self, other: Deferred[Any]) -> Deferred[list[Any]]:
        return all_of(self, other)

    def __or__(self, other: Deferred[Any]) -> Deferred[Any]:
        return any_of(self, other)

    def __repr__(self) -> str:
        return f"Deferred({self.description}, {self._status})"

    # -- completion (by the execution or the scheduler, never by user code) -------------------

    def _complete(self, value: Any) -> None:
        self._settle(DeferredStatus.COMPLETED, value, None)

    def _fail(self, error: BaseException) -> None:
        self._settle(DeferredStatus.FAILED, None, error)

    def _settle(self, status: DeferredStatus, value: Any, error: BaseException | None) -> None:
        if self._status is not DeferredStatus.ONGOING:
            return
        self._status, self._value, self._error = status, value, error
        self.completion_order = self._scheduler.next_completion() if self._scheduler else 0
        for listener in self._listeners:
            listener()
        self._listeners.clear()

    def _on_settled(self, listener: Callable[[], None]) -> None:
        if self.is_completed():
            listener()
        else:
            self._listeners.append(listener)


def all_of(*deferreds: Deferred[Any]) -> Deferred[list[Any]]:
    """Completes with the list of all results, or fails with the first error to happen.

    Each completion costs O(1) (a count of those still ongoing), so a fan-out of n tasks
    costs O(n), not O(n^2)."""
    scheduler = _scheduler_of(deferreds)
    combined: Deferred[list[Any]] = Deferred(scheduler, f"all_of({len(deferreds)})")
    failed = [d for d in deferreds if d.status() is DeferredStatus.FAILED]
    if failed:  # the first to fail, by completion order
        combined._fail(min(failed, key=lambda d: d.completion_order or 0)._error)  # type: ignore[arg-type]
        return combined
    ongoing = [d for d in deferreds if not d.is_completed()]
    left = len(ongoing)

    def settled(deferred: Deferred[Any]) -> None:
        nonlocal left
        if deferred.status() is DeferredStatus.FAILED:  # listeners run as each one settles
            combined._fail(deferred._error)  # type: ignore[arg-type]
            return
        left -= 1
        if left == 0:
            combined._complete([d._value for d in deferreds])

    for deferred in ongoing:
        deferred._on_settled(lambda d=deferred: settled(d))
    if not ongoing:
        combined._complete([d._value for d in deferreds])
    return combined


def any_of(*deferreds: Deferred[Any]) -> Deferred[Any]:
    """Completes like the first of `deferreds` to complete (its value or its error)."""
    if not deferreds:
        raise ValueError("any_of needs at least one Deferred")
    scheduler = _scheduler_of(deferreds)
    combined: Deferred[Any] = Deferred(scheduler, f"any_of({len(deferreds)})")
    done = [d for d in deferreds if d.is_completed()]
    if done:
        first = min(done, key=lambda d: d.completion_order or 0)
        combined._settle(first._status, first._value, first._error)
        return combined

    def settled(deferred: Deferred[Any]) -> None:  # the first one wins: later ones are ignored
        combined._settle(deferred._status, deferred._value, deferred._error)

    for deferred in deferreds:
        deferred._on_settled(lambda d=deferred: settled(d))
    return combined


def _scheduler_of(deferreds: tuple[Deferred[Any], ...]) -> Scheduler | None:
    for deferred in deferreds:
        if not isinstance(deferred, Deferred):
            raise TypeError(f"expected Deferred, got {type(deferred).__name__}")
    return deferreds[0]._scheduler if deferreds else None
