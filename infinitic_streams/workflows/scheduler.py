"""Runs workflow code, and its branches, one at a time and in a deterministic order.

Workflow code is plain synchronous Python that "blocks" on `Deferred.result()`. Each branch
(the workflow method itself, and every `Workflow.branch`) runs in its own thread, but only one
thread runs at any moment: the scheduler hands control to a branch and waits until that branch
blocks on an incomplete Deferred or returns. Branches are resumed in creation order, so the same
history always produces the same sequence of commands: that is what replay relies on.

A live instance stays in memory between events (its threads parked), so one more step costs one
hand-over, not a replay of the whole history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from infinitic_streams.workflows.deferred import Deferred


class Unwind(BaseException):
    """Raised inside a parked branch to end its thread (workflow over, or instance evicted).

    A BaseException, so that workflow code's `except Exception` does not swallow it."""


class Branch:
    """One thread of workflow code."""

    def __init__(
        self, scheduler: Scheduler, fn: Callable[..., Any], args: tuple[Any, ...], name: str
    ) -> None:
        self.deferred: Deferred[Any] = Deferred(scheduler, name)
        self.waiting_on: Deferred[Any] | None = None
        self.started = False
        self.finished = False
        self.unwinding = False
        self._scheduler = scheduler
        self._fn, self._args = fn, args
        self._go = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._main, name=f"workflow {name}", daemon=True)

    def runnable(self) -> bool:
        if self.finished:
            return False
        return not self.started or (self.waiting_on is not None and self.waiting_on.is_completed())

    def resume(self) -> None:
        """Run this branch until it blocks or ends (called by the scheduler's thread)."""
        if not self.started:
            self.started = True
            self._thread.start()
        self._go.release()
        self._scheduler._parked.acquire()

    def park(self, deferred: Deferred[Any]) -> None:
        """Block this branch until `deferred` completes (called in this branch's thread)."""
        self.waiting_on = deferred
        self._scheduler._parked.release()
        self._go.acquire()
        if self.unwinding:
            raise Unwind
        self.waiting_on = None

    def _main(self) -> None:
        self._go.acquire()
        try:
            if not self.unwinding:
                self.deferred._complete(self._fn(*self._args))
        except Unwind:
            pass
        except Exception as error:  # the branch's own failure, seen by whoever waits on it
            self.deferred._fail(error)
        finally:
            self.finished = True
            self._scheduler._parked.release()


class Scheduler:
    """Cooperative, deterministic scheduling of the branches of one workflow instance."""

    def __init__(self) -> None:
        self.branches: list[Branch] = []
        self.current: Branch | None = None
        self._parked = threading.Semaphore(0)
        self._completions = 0

    def spawn(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> Branch:
        """A new branch; it starts at the next `run_until_blocked`."""
        branch = Branch(self, fn, args, name)
        self.branches.append(branch)
        return branch

    def run_until_blocked(self) -> None:
        """Resume runnable branches, oldest first, until every branch is blocked or done."""
        while True:
            branch = next((b for b in self.branches if b.runnable()), None)
            if branch is None:
                return
            self.current = branch
            try:
                branch.resume()
            finally:
                self.current = None

    def wait_for(self, deferred: Deferred[Any]) -> None:
        """Called by `Deferred.result()` in workflow code."""
        branch = self.current
        if branch is None or threading.current_thread() is not branch._thread:
            raise RuntimeError(
                f"{deferred!r}.result() was called outside workflow code; Deferred values can "
                "only be awaited by the workflow (or a branch of it) that created them."
            )
        branch.park(deferred)

    def next_completion(self) -> int:
        self._completions += 1
        return self._completions

    def close(self) -> None:
        """End every thread still parked; the instance cannot be resumed afterwards."""
        for branch in self.branches:
            if branch.started and not branch.finished:
                branch.unwinding = True
                branch.resume()
        self.branches.clear()
