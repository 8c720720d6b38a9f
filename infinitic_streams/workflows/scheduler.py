"""Runs workflow code, and its branches, one at a time and in a deterministic order.

Workflow code is plain synchronous Python that "blocks" on `Deferred.result()`. Each branch
(the workflow method itself, and every `Workflow.branch`) runs in its own greenlet: a
coroutine with its own stack, switched explicitly, on the engine's thread. The scheduler
switches to a branch and gets control back when that branch blocks on an incomplete Deferred
or returns. Branches are resumed in creation order, so the same history always produces the
same sequence of commands: that is what replay relies on.

A live instance stays in memory between events (its greenlets parked, a few kB each, no OS
thread), so one more step costs one switch (about a microsecond), not a replay of the whole
history. Greenlets belong to the thread that made them: an instance is resumed by the thread
that runs it (the engine's), and a switch from another thread is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

from infinitic_streams.workflows.deferred import Deferred


class Unwind(GreenletExit):
    """Raised inside a parked branch to end it (workflow over, or instance evicted).

    A BaseException, so that workflow code's `except Exception` does not swallow it."""


class Branch:
    """One branch of workflow code, in its own greenlet."""

    def __init__(
        self, scheduler: Scheduler, fn: Callable[..., Any], args: tuple[Any, ...], name: str
    ) -> None:
        self.deferred: Deferred[Any] = Deferred(scheduler, name)
        self.waiting_on: Deferred[Any] | None = None
        self.finished = False
        self.unwinding = False
        self._fn, self._args = fn, args
        self._greenlet: greenlet | None = None

    @property
    def started(self) -> bool:
        return self._greenlet is not None

    def runnable(self) -> bool:
        if self.finished:
            return False
        return not self.started or (self.waiting_on is not None and self.waiting_on.is_completed())

    def resume(self) -> None:
        """Run this branch until it blocks or ends (called by the scheduler)."""
        if self._greenlet is None:
            self._greenlet = greenlet(self._main)
        self._greenlet.parent = getcurrent()  # where control comes back when it blocks
        self._greenlet.switch()

    def park(self, deferred: Deferred[Any]) -> None:
        """Block this branch until `deferred` completes (called in this branch)."""
        assert self._greenlet is not None and self._greenlet.parent is not None
        if self.unwinding:  # a `finally` block waiting while its branch ends
            raise Unwind
        self.waiting_on = deferred
        self._greenlet.parent.switch()
        self.waiting_on = None

    def unwind(self) -> None:
        """End a parked branch: `Unwind` is raised where it waits (its `finally` blocks run)."""
        self.unwinding = True
        if self._greenlet is not None and not self._greenlet.dead:
            self._greenlet.parent = getcurrent()
            self._greenlet.throw(Unwind)
        self.finished = True

    def is_current(self) -> bool:
        return self._greenlet is not None and getcurrent() is self._greenlet

    def _main(self) -> None:
        try:
            self.deferred._complete(self._fn(*self._args))
        except Exception as error:  # the branch's own failure, seen by whoever waits on it
            self.deferred._fail(error)
        finally:
            self.finished = True


class Scheduler:
    """Cooperative, deterministic scheduling of the branches of one workflow instance."""

    def __init__(self) -> None:
        self.branches: list[Branch] = []
        self.current: Branch | None = None
        self._completions = 0
        self._stopped = False  # the run ends (continue-as-new): no branch resumes

    def spawn(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> Branch:
        """A new branch; it starts at the next `run_until_blocked`."""
        branch = Branch(self, fn, args, name)
        self.branches.append(branch)
        return branch

    def run_until_blocked(self) -> None:
        """Resume runnable branches, oldest first, until every branch is blocked or done."""
        while not self._stopped:
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
        if branch is None or not branch.is_current():
            raise RuntimeError(
                f"{deferred!r}.result() was called outside workflow code; Deferred values can "
                "only be awaited by the workflow (or a branch of it) that created them."
            )
        branch.park(deferred)

    def stop(self) -> None:
        """Resume no branch any more (the current one is unwinding)."""
        self._stopped = True

    def next_completion(self) -> int:
        self._completions += 1
        return self._completions

    def close(self) -> None:
        """End every branch still parked; the instance cannot be resumed afterwards."""
        for branch in self.branches:
            if branch.started and not branch.finished:
                branch.unwind()
        self.branches.clear()
