"""A harness for the engine's state machine without Kafka: it plays the stream runtime (a
partition store, contexts, due timers) and the service workers (the test answers ExecuteTask
messages), with a clock the test moves by hand. Used by the `test_engine*.py` modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from infinitic_streams import payload
from infinitic_streams.engine import state as s
from infinitic_streams.engine.engine import WorkflowEngine
from infinitic_streams.protocol import (
    DispatchWorkflow,
    ErrorInfo,
    ExecuteTask,
    Message,
    Payload,
    TaskCompleted,
    cloudevents,
    decode,
)
from infinitic_streams.protocol import TaskFailed as TaskFailedMessage
from infinitic_streams.streams import Context, Timer
from infinitic_streams.streams.state.store import PartitionStore, decode_u64
from infinitic_streams.streams.state.transaction import PartitionTransaction
from infinitic_streams.topics import Topics

TOPICS = Topics("test")
CLIENT = "3:c1"  # partition 3 of the replies topic, client c1


class Harness:
    def __init__(self, tmp_path: Path, workflows: list[type], **options: Any) -> None:
        self.now = 1_000.0
        self.engine = WorkflowEngine.of(workflows, TOPICS, clock=lambda: self.now, **options)
        self.store = PartitionStore(tmp_path / "engine", ("state",))
        self.transaction = PartitionTransaction(self.store)
        self.outbox: list[tuple[str, Message]] = []
        self.drop_cache = False  # True: every message and timer finds no live instance
        self.dead_letters: list[str] = []  # the reasons of the inputs dead-lettered
        self.events: list[dict[str, Any]] = []  # CloudEvents produced to the events topic

    def redeploy(self, workflows: list[type], **options: Any) -> None:
        """A new engine over the same store, as after deploying other code (or settings)."""
        self.engine.cache.clear()
        self.engine = WorkflowEngine.of(workflows, TOPICS, clock=lambda: self.now, **options)

    def send(self, message: Message) -> None:
        self._run(lambda ctx: self.engine.handle(ctx, message))

    def advance(self, seconds: float) -> None:
        """Move the clock and fire the timers that fell due."""
        self.now += seconds
        for key, payload_ in self.transaction.due_timers(int(self.now * 1000), 1000):
            timer = Timer(key[8:], decode_u64(key[:8]), payload_)

            def fire(ctx: Context, timer: Timer = timer, key: bytes = key) -> None:
                ctx.delete(key, "__timers__")
                ctx.delete(timer.key, "__timer_index__")
                self.engine.handle_timer(ctx, timer)

            self._run(fire)

    def pump(self) -> None:
        """Deliver what the engine sent to its own inputs (children, signals, cancels, tag
        updates and group orders) until nothing is left: one partition plays them all."""
        inputs = (TOPICS.engine, TOPICS.tags)
        while True:
            mine = [message for topic, message in self.outbox if topic in inputs]
            if not mine:
                return
            self.outbox = [(t, m) for t, m in self.outbox if t not in inputs]
            for message in mine:
                self.send(message)

    def _run(self, handler: Callable[[Context], None]) -> None:
        if self.drop_cache:
            self.engine.cache.clear()  # as after a restart: the handler replays the history
        ctx = Context(self.transaction, 0)
        handler(ctx)
        self.transaction.update(ctx.changes)
        for output in ctx.outputs:
            if output.topic == TOPICS.events:
                self.events.append(cloudevents.parse(output.value))
            else:
                self.outbox.append((output.topic, decode(output.value).message))
        if ctx.dead_letter_reason is not None:
            self.dead_letters.append(ctx.dead_letter_reason)

    def take(self, kind: type) -> list[Any]:
        taken = [m for _, m in self.outbox if isinstance(m, kind)]
        self.outbox = [(t, m) for t, m in self.outbox if not isinstance(m, kind)]
        return taken

    def reply(self, task: ExecuteTask, result: object, hint: object) -> None:
        data = payload.encode(result, hint)
        self.send(
            TaskCompleted(
                task_id=task.task_id,
                workflow_id=task.workflow_id,
                attempt=task.attempt,
                result=Payload(data=data),
            )
        )

    def fail(self, task: ExecuteTask, retryable: bool = True) -> None:
        error = ErrorInfo(type_name="OSError", message="disk full", traceback="Traceback ...")
        failed = TaskFailedMessage(
            task_id=task.task_id,
            workflow_id=task.workflow_id,
            attempt=task.attempt,
            error=error,
            retryable=retryable,
        )
        self.send(failed)

    def state(self, workflow_id: str) -> s.WorkflowState:
        raw = self.transaction.get("state", s.state_key(workflow_id))
        assert raw is not None
        return s.load(raw, s.WorkflowState)  # type: ignore[return-value]

    def history(self, workflow_id: str) -> list[s.HistoryEvent]:
        events = []
        for index in range(self.state(workflow_id).history_size):
            raw = self.transaction.get("state", s.history_key(workflow_id, index))
            assert raw is not None
            events.append(s.load(raw, s.HistoryEvent))
        return events  # type: ignore[return-value]

    def close(self) -> None:
        self.engine.cache.clear()
        self.store.close()


def harnesses(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """The body of a `harness` fixture: makes harnesses, closes them after the test."""
    made: list[Harness] = []

    def make(workflows: list[type], **options: Any) -> Harness:
        made.append(Harness(tmp_path / str(len(made)), workflows, **options))
        return made[-1]

    yield make
    for h in made:
        h.close()


def dispatch(
    workflow_id: str,
    name: str,
    args: list[bytes],
    method: str = "run",
    tags: tuple[str, ...] = (),
) -> Message:
    return DispatchWorkflow(
        workflow_id=workflow_id,
        workflow_name=name,
        method_name=method,
        args=tuple(Payload(data=a) for a in args),
        tags=tags,
        meta={},
        reply_to=CLIENT,
    )


def names(events: list[s.HistoryEvent]) -> list[str]:
    return [type(event).__name__ for event in events]
