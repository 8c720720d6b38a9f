"""`WorkflowEnvironment`: the engine, the visibility index and the services of a test, in
memory, in one process, with no Kafka and no thread, and time that is the environment's own.

The engine is the one that runs on Kafka (`WorkflowEngine` behind `EngineProcessor`), and so is
the visibility index and the task runner of service workers: only the stream runtime is
replaced (`runtime.py`). Time stands still until `skip()`; with `auto_skip=True`, a client
waiting for a result makes it jump to the next timer whenever nothing else can run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from infinitic_streams.definitions import service_spec
from infinitic_streams.engine.engine import WorkflowEngine
from infinitic_streams.engine.processor import EngineProcessor
from infinitic_streams.errors import WorkflowNotFound
from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES
from infinitic_streams.protocol import Envelope, ExecuteTask, cloudevents, decode, encode
from infinitic_streams.protocol.messages import new_message_id
from infinitic_streams.streams.context import Output
from infinitic_streams.testing.client import TestClient
from infinitic_streams.testing.replayer import History, replay
from infinitic_streams.testing.runtime import DeadLetter, MemoryRuntime
from infinitic_streams.topics import Topics
from infinitic_streams.visibility.processor import VisibilityProcessor
from infinitic_streams.worker.task_runner import Result, TaskRunner, context_of

logger = logging.getLogger("infinitic_streams.testing")


class WorkflowEnvironment:
    """Run workflows and services in memory: `env.client` dispatches, signals, lists...;
    `env.skip(timedelta(days=1))` moves time; `auto_skip=True` moves it when a client waits
    for a result and nothing else can run. A context manager: `close()` on exit."""

    def __init__(
        self,
        services: Sequence[object] = (),  # implementations, as a Worker takes them
        workflows: Sequence[type] = (),
        auto_skip: bool = False,
        namespace: str = "test",
        start: datetime | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.auto_skip = auto_skip
        self._now_ms = int((start or datetime.now(UTC)).timestamp() * 1000)
        self.topics = Topics(namespace, 1, max_payload_bytes)
        self.workflows = list(workflows)
        self.engine = WorkflowEngine.of(
            self.workflows, self.topics, clock=lambda: self._now_ms / 1000
        )
        self._runners = {
            self.topics.tasks(service_spec(s).name): TaskRunner(s, max_payload_bytes)
            for s in services
        }
        self.events: list[dict[str, Any]] = []  # every CloudEvent of the events topic
        self.runtime = MemoryRuntime(lambda: self._now_ms, self._deliver, self._observe)
        self.runtime.host(EngineProcessor(self.engine))
        self.runtime.host(VisibilityProcessor(self.topics))
        self._waiting_tasks: list[ExecuteTask] = []  # of services this environment lacks
        self._lock = threading.RLock()
        self._running = False
        self.client = TestClient(self, self.topics)

    def __enter__(self) -> WorkflowEnvironment:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()
        self.engine.cache.clear()  # ends the parked branches of live workflows

    # -- time ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The environment's time: what `self.now()` gives workflow code."""
        return datetime.fromtimestamp(self._now_ms / 1000, UTC)

    def skip(self, duration: float | timedelta) -> None:
        """Move time forward by `duration` (seconds or a timedelta): every timer due on the
        way fires at its own time, and what it starts runs, before this returns."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
        if seconds < 0:
            raise ValueError(f"time only moves forward: skip({duration!r})")
        with self._lock:
            target = self._now_ms + round(seconds * 1000)
            while (due := self.runtime.next_due_ms()) is not None and due <= target:
                self._now_ms = max(self._now_ms, due)
                self._run()
            self._now_ms = target
            self._run()

    # -- what the test looks at ------------------------------------------------------------

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """The inputs dead-lettered (refused signals, undecodable or failing ones)."""
        return self.runtime.dead_letters

    def replay(self, history: History, workflow: type, workflow_id: str = "replay") -> None:
        """Replay a recorded history (`handle.history()`, or its `HistoryEvent`s) with the
        code of `workflow` as it is now: raises `NonDeterministicWorkflow` naming the step
        recorded and the step the code takes, if they differ. Give the `workflow_id` the
        history belongs to when the code uses `self.random()`, `self.uuid()` or the id."""
        replay(history, workflow, workflow_id)

    # -- the host of env.client ------------------------------------------------------------

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        with self._lock:
            self.runtime.send(topic, key, value)
            self._run()

    def progress(self) -> bool:
        """Something new ran: queued work, or (with auto_skip) the next timer."""
        with self._lock:
            if self.runtime.queue:
                self._run()
                return True
            due = self.runtime.next_due_ms() if self.auto_skip else None
            if due is None:
                return False
            self._now_ms = max(self._now_ms, due)
            self._run()
            return True

    def stuck(self, workflow_id: str) -> str:
        try:
            info = self.client.get_workflow(None, workflow_id).describe()
        except WorkflowNotFound:
            return f"workflow {workflow_id} does not exist"
        text = f"workflow {workflow_id} is {info.status}, waiting for {info.pending or 'nothing'}"
        if self._waiting_tasks:
            lacking = sorted({t.service_name for t in self._waiting_tasks})
            text += f"; tasks of services this environment lacks wait: {lacking}"
        if not self.auto_skip:
            text += (
                ". Time stands still in a WorkflowEnvironment: move it with env.skip(...) "
                "or create it with auto_skip=True"
            )
        return text

    # -- internals -------------------------------------------------------------------------

    def _run(self) -> None:
        if self._running:  # a task or a handler sent something: it is queued, run below
            return
        self._running = True
        try:
            self.runtime.run()
        finally:
            self._running = False

    def _observe(self, output: Output) -> None:
        if output.topic == self.topics.events and output.value is not None:
            self.events.append(cloudevents.parse(output.value))

    def _deliver(self, output: Output) -> None:
        """An output no processor reads: a task, an answer, a dead letter."""
        if output.topic == self.topics.replies:
            self.client.take(output.key, decode(output.value).message)  # type: ignore[arg-type]
            return
        runner = self._runners.get(output.topic)
        if output.topic.startswith(f"{self.topics.namespace}.tasks."):
            message = decode(output.value).message  # type: ignore[arg-type]
            if not isinstance(message, ExecuteTask):
                return  # CancelTask: tasks run to their end before anything else happens
            if runner is None:
                logger.warning("no service %s in this environment: task waits", output.topic)
                self._waiting_tasks.append(message)
                return
            result = _run_task(runner, message)
            self.runtime.send(self.topics.engine, message.workflow_id.encode(), _encoded(result))


def _run_task(runner: TaskRunner, task: ExecuteTask) -> Result:
    context = context_of(task)
    if not runner.is_async(task):
        return runner.run_sync(task, context)
    coroutine: Callable[[], Any] = lambda: runner.run_async(task, context)  # noqa: E731
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine())
    # Called from a running event loop (an async test): run the task's own loop aside.
    box: list[Result] = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(coroutine())))
    thread.start()
    thread.join()
    return box[0]


def _encoded(result: Result) -> bytes:
    envelope = Envelope(
        message_id=new_message_id(), sent_at_ms=int(time.time() * 1000), message=result
    )
    return encode(envelope)
