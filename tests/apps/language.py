"""Services and workflows of the workflow-language tests on the real broker: signals, child
workflows, cancel, timeouts, tags (run in-process, and by `tests.apps.workflows` workers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from infinitic_streams import (
    Channel,
    RetryPolicy,
    Workflow,
    WorkflowFailed,
    any_of,
    service,
    task_context,
    workflow,
)


@service(
    "Chores",
    retry=RetryPolicy(
        max_attempts=3, initial_delay=30.0, jitter=0.0, non_retryable=(RuntimeError, ValueError)
    ),
)
class Chores:
    def double(self, x: int) -> int: ...
    async def linger(self, seconds: float, marker: str) -> str: ...
    def flaky(self, x: int) -> int: ...
    def check(self, path: str) -> str: ...


class ChoresImpl(Chores):
    def double(self, x: int) -> int:
        return 2 * x

    async def linger(self, seconds: float, marker: str) -> str:
        """Writes "started" to `marker`, then "cancelled" if it is cancelled meanwhile."""
        with open(marker, "a") as out:
            out.write("started\n")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            with open(marker, "a") as out:
                out.write(f"cancelled {task_context().canceled}\n")
            raise
        return "lingered"

    def flaky(self, x: int) -> int:
        raise ConnectionError(f"attempt {task_context().attempt} fails")

    def check(self, path: str) -> str:
        if Path(path).exists():
            raise RuntimeError(f"{path} exists")
        return "checked"


@workflow("Approval")
class Approval(Workflow):
    decisions = Channel(str)

    def run(self) -> list[str]:
        first = self.decisions.receive().result()
        firm = self.decisions.receive(where=lambda d: d != "maybe").result()
        pair = self.decisions.receive(limit=2)
        return [first, firm, pair.result(), pair.result()]


@workflow("Deadline")
class Deadline(Workflow):
    answers = Channel(int)

    def run(self, seconds: float) -> str:
        first = any_of(self.answers.receive(), self.timer(seconds)).result()
        return f"signal {first}" if isinstance(first, int) else "timer"


@workflow("Sender")
class Sender(Workflow):
    def run(self, target: str, value: int) -> str:
        self.get_workflow(Deadline, target).answers.send(value)
        return "sent"


@workflow("Child")
class Child(Workflow):
    def run(self, x: int) -> int:
        if x < 0:
            raise ValueError(f"{x} is negative")
        return self.new_service(Chores).double(x)


@workflow("Parent")
class Parent(Workflow):
    def run(self, ids: list[str], xs: list[int]) -> list[int | str]:
        children = [
            self.dispatch(self.new_workflow(Child, id=child_id).run, x)
            for child_id, x in zip(ids, xs, strict=True)
        ]
        results: list[int | str] = []
        for deferred in children:
            try:
                results.append(deferred.result())
            except WorkflowFailed as error:
                results.append(f"{error.workflow_id} {error.type_name}: {error.error_message}")
        return results


@workflow("Lingerer")
class Lingerer(Workflow):
    def run(self, marker: str) -> str:
        return self.new_service(Chores).linger(600.0, marker)  # type: ignore[no-any-return]


@workflow("Holder")
class Holder(Workflow):
    def run(self, child_id: str, marker: str) -> str:
        return self.new_workflow(Lingerer, id=child_id).run(marker)  # type: ignore[no-any-return]


@workflow("Stubborn")
class Stubborn(Workflow):
    def run(self) -> int:
        return self.new_service(Chores).flaky(1)  # type: ignore[no-any-return]


@workflow("Hurried", timeout=2.0)
class Hurried(Workflow):
    def run(self) -> str:
        self.sleep(600.0)
        return "too late"


@workflow("Tagged")
class Tagged(Workflow):
    go = Channel(str)

    def run(self, path: str) -> str:
        self.new_service(Chores).check(path)
        return self.go.receive().result()


@workflow("Waiter")
class Waiter(Workflow):
    """Waits for a child and for a signal: what a kill -9 of the engine must not lose."""

    go = Channel(int)

    def run(self, child_id: str, x: int) -> int:
        child = self.dispatch(self.new_workflow(Child, id=child_id).run, x)
        return child.result() + self.go.receive().result()  # type: ignore[no-any-return]


SERVICES = [ChoresImpl]
WORKFLOWS = [
    Approval,
    Deadline,
    Sender,
    Child,
    Parent,
    Lingerer,
    Holder,
    Stubborn,
    Hurried,
    Tagged,
    Waiter,
]
