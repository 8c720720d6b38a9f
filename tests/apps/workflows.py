"""Services and workflows of the end-to-end tests, and a Worker entry point for subprocesses:

python -m tests.apps.workflows --bootstrap B --namespace N --state-dir D [--engine] [--services]
                               [--language] [--kafka KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import os
import signal
import threading
import time
from pathlib import Path

from infinitic_streams import (
    RetryPolicy,
    TaskFailed,
    Worker,
    Workflow,
    any_of,
    logs,
    service,
    task_context,
    workflow,
)
from tests.apps import language, versioning
from tests.apps.aborts import AbortAfterTaskRead

LOG_LOCK = threading.Lock()


@service("Steps", retry=RetryPolicy(max_attempts=3, initial_delay=0.2, jitter=0.0))
class Steps:
    def add(self, x: int, y: int) -> int: ...
    def fail_until(self, attempt: int) -> list[int]: ...
    def always_fails(self, x: int) -> int: ...
    def undo(self, x: int) -> str: ...
    def fails_while_file_exists(self, path: str) -> str: ...
    def slow(self, seconds: float, marker: str) -> str: ...
    def nap(self, seconds: float) -> str: ...
    def logged_add(self, x: int, y: int, log: str) -> int: ...


class StepsImpl(Steps):
    def add(self, x: int, y: int) -> int:
        return x + y

    def fail_until(self, attempt: int) -> list[int]:
        """Fails before the given attempt; returns the attempt numbers it saw."""
        current = task_context().attempt
        if current < attempt:
            raise ConnectionError(f"attempt {current} fails on purpose")
        return list(range(1, current + 1))

    def always_fails(self, x: int) -> int:
        raise ValueError(f"{x} is not acceptable")

    def undo(self, x: int) -> str:
        return f"undone {x}"

    def fails_while_file_exists(self, path: str) -> str:
        if Path(path).exists():
            raise RuntimeError(f"{path} exists")
        return "fixed"

    def slow(self, seconds: float, marker: str) -> str:
        """Writes `pid attempt` to `marker`, then sleeps (a worker can be killed meanwhile)."""
        with open(marker, "a") as out:
            out.write(f"{os.getpid()} {task_context().attempt}\n")
        time.sleep(seconds)
        return f"slept in {os.getpid()}"

    def logged_add(self, x: int, y: int, log: str) -> int:
        """`add`, writing `task_id attempt` to `log` first (one line per execution)."""
        with LOG_LOCK, open(log, "a") as out:
            out.write(f"{task_context().task_id} {task_context().attempt}\n")
        return x + y

    async def nap(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"napped {task_context().attempt}"


@service("Slow", timeout=1.0)
class Slow:
    def wait(self, seconds: float) -> str: ...


class SlowImpl(Slow):
    def wait(self, seconds: float) -> str:
        time.sleep(seconds)
        return "finished"


@workflow("Sum")
class Sum(Workflow):
    def run(self, n: int) -> int:
        steps = self.new_service(Steps)
        total = 0
        for i in range(n):
            total = steps.add(total, i)
        return total


@workflow("LoggedSum")
class LoggedSum(Workflow):
    def run(self, n: int, log: str) -> int:
        steps = self.new_service(Steps)
        total = 0
        for i in range(n):
            total = steps.logged_add(total, i, log)
        return total


@workflow("Flaky")
class Flaky(Workflow):
    def run(self, succeed_at: int) -> list[int]:
        return self.new_service(Steps).fail_until(succeed_at)


@workflow("Compensate")
class Compensate(Workflow):
    def run(self, x: int) -> str:
        steps = self.new_service(Steps)
        try:
            return str(steps.always_fails(x))
        except TaskFailed as failure:
            return f"{steps.undo(x)} after {failure.type_name} in {failure.attempts} attempts"


@workflow("Fixable")
class Fixable(Workflow):
    def run(self, path: str) -> str:
        return self.new_service(Steps).fails_while_file_exists(path)


@workflow("Sleeper")
class Sleeper(Workflow):
    def run(self, seconds: float) -> str:
        before = self.now()
        self.sleep(seconds)
        return f"slept {(self.now() - before).total_seconds():.1f}"


@workflow("Race")
class Race(Workflow):
    def run(self, task_seconds: float, timer_seconds: float) -> str:
        steps = self.new_service(Steps)
        task = self.dispatch(steps.slow, task_seconds, os.devnull)
        winner = any_of(task, self.timer(timer_seconds)).result()
        return "task" if isinstance(winner, str) else "timer"


@workflow("TimesOut")
class TimesOut(Workflow):
    def run(self, seconds: float) -> str:
        try:
            return self.new_service(Slow).wait(seconds)
        except TaskFailed as failure:
            return type(failure).__name__


@workflow("SideBySide")
class SideBySide(Workflow):
    def run(self, slow_seconds: float) -> list[object]:
        steps = self.new_service(Steps)
        slow = self.dispatch(steps.nap, slow_seconds)  # async def, on the same partition
        fast = self.dispatch(steps.add, 1, 2)
        return [any_of(slow, fast).result(), slow.result()]


@workflow("SlowOnce")
class SlowOnce(Workflow):
    def run(self, seconds: float, marker: str) -> str:
        return self.new_service(Steps).slow(seconds, marker)


@workflow("Eventful")
class Eventful(Workflow):
    """A task retried once, a timer, a task, and a task that fails: the workflow fails."""

    def run(self, x: int) -> int:
        steps = self.new_service(Steps)
        steps.fail_until(2)
        self.sleep(0.3)
        return steps.always_fails(steps.add(x, 1))


SERVICES = [StepsImpl, SlowImpl]
WORKFLOWS = [Sum, Flaky, Compensate, Fixable, Sleeper, Race, TimesOut, SideBySide, SlowOnce]
WORKFLOWS += [Eventful, LoggedSum, versioning.Countdown]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--engine", action="store_true")
    parser.add_argument("--services", action="store_true")
    parser.add_argument("--language", action="store_true", help="the workflows of language.py")
    parser.add_argument("--upgraded", choices=sorted(versioning.UPGRADED), help="its version")
    parser.add_argument("--kafka", action="append", default=[], help="a librdkafka KEY=VALUE")
    parser.add_argument("--abort-after-task-read", help="the task log of AbortAfterTaskRead")
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks into the log, on demand
    logs.configure("INFO")
    kafka = dict(item.split("=", 1) for item in args.kafka)
    services, workflows = (
        (language.SERVICES, language.WORKFLOWS) if args.language else (SERVICES, WORKFLOWS)
    )
    if args.upgraded:
        workflows = [*workflows, versioning.UPGRADED[args.upgraded]]
    worker = Worker(
        {"bootstrap.servers": args.bootstrap, **kafka},
        args.namespace,
        services=[cls() for cls in services] if args.services else [],
        workflows=workflows,
        engine=args.engine,
        state_dir=args.state_dir,
        stream={"session_timeout_ms": 6000},
    )
    if args.abort_after_task_read and worker.app is not None:
        worker.app = AbortAfterTaskRead(worker.app, Path(args.abort_after_task_read))
    worker.run()


if __name__ == "__main__":
    main()
