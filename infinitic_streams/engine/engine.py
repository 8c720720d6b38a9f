"""The workflow engine's logic: one message (or timer) in, state changes and messages out.

It runs inside the stream runtime, which gives it a `Context` over the state of the message's
partition; everything it writes and emits commits atomically, exactly once. Workflow code runs
here too, in the process that owns the workflow's partition: a task step costs two Kafka hops
(engine -> service worker -> engine), not three.

`WorkflowEngine` only routes each message (or timer) to the module of its family:
- `lifecycle.py`: DispatchWorkflow, RetryWorkflow, and the retention timer;
- `tasks.py`: TaskCompleted, TaskFailed, and the task timeout and retry timers;
- `timers.py`: workflow timers (and the keys of every timer);
- `signals.py`: SendSignal;
- `children.py`: ChildEnded (and a child's parents);
- `cancel.py`: CancelWorkflow, and the workflow timeout timer;
- `tags.py`: TagUpdate and GroupRequest (the tag index, on the tags topic);
- `queries.py`: QueryWorkflow (result, describe, history);
- `schedules.py`: ScheduleRequest, ScheduledWorkflowEnded, and the schedule timer;
and `steps.py` records the facts those handlers return and runs the workflow code
(`instances.py` gives the live instance, from `cache.py` or a replay; `commands.py` carries
out what the code asks; `endings.py` ends a workflow).

The rule: a history records facts. While a workflow is RUNNING its code runs on each fact;
while it is FAILED the facts (task results, attempt failures and timeouts, retry timers sending
the next attempts, timers fired) are still recorded, without running code. A fact whose replay
reveals a divergence (code changed under the workflow) is recorded after the `Ended` it caused.
`retry()` voids the final failure of the task that failed the workflow and of every task that
gave up while it was FAILED, sends those tasks again, and replays the whole history with the
code deployed now: once the code is fixed, the workflow goes on, whatever message failed it.

Live workflow instances stay in an LRU cache (`ExecutionCache`). An instance is trusted only
if it saw exactly the history the store holds; otherwise (cache miss, restart, rebalance,
aborted transaction) it is rebuilt by replaying the history.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infinitic_streams.definitions import workflow_spec
from infinitic_streams.engine import (
    cancel,
    children,
    lifecycle,
    queries,
    schedules,
    signals,
    steps,
    tags,
    tasks,
    timers,
)
from infinitic_streams.engine.cache import ExecutionCache
from infinitic_streams.engine.instances import UnknownWorkflow
from infinitic_streams.engine.state import Facts
from infinitic_streams.errors import InfiniticError
from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES
from infinitic_streams.protocol import (
    CancelWorkflow,
    ChildEnded,
    DispatchWorkflow,
    GroupRequest,
    Message,
    QueryWorkflow,
    RetryWorkflow,
    ScheduledWorkflowEnded,
    ScheduleRequest,
    SendSignal,
    TagUpdate,
)
from infinitic_streams.protocol import TaskCompleted as TaskCompletedMessage
from infinitic_streams.protocol import TaskFailed as TaskFailedMessage
from infinitic_streams.streams import Context, Timer
from infinitic_streams.topics import Topics

if TYPE_CHECKING:
    from infinitic_streams.engine.metrics import EngineMetrics

__all__ = ["DEFAULT_RETENTION_S", "ExecutionCache", "UnknownMessage", "UnknownWorkflow"]
__all__ += ["WorkflowEngine"]

DEFAULT_RETENTION_S = 7 * 24 * 3600


class UnknownMessage(InfiniticError):
    """A message kind the engine does not handle: the message goes to the DLQ."""


@dataclass
class WorkflowEngine:
    workflows: Mapping[str, type]  # workflow name -> class
    topics: Topics
    cache_size: int = 1000
    retention_s: float = DEFAULT_RETENTION_S
    clock: Callable[[], float] = time.time
    ensure_topic: Callable[[str], None] = lambda topic: None
    # The most task arguments, an inline result or a workflow result may take, encoded.
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    # Produce each recorded event to the events topic (what `list()` and the dashboard read).
    publish_events: bool = True
    metrics: EngineMetrics | None = None  # None: nothing counted (unit tests)

    def __post_init__(self) -> None:
        self.cache = ExecutionCache(self.cache_size)
        self.rng = random.Random()  # retry jitter (the delay drawn is recorded)

    @classmethod
    def of(cls, workflow_classes: list[type], topics: Topics, **options: Any) -> WorkflowEngine:
        return cls({workflow_spec(c).name: c for c in workflow_classes}, topics, **options)

    def handle(self, ctx: Context, message: Message) -> None:
        now = self.now_ms()
        match message:
            case TaskCompletedMessage():
                self._record(ctx, tasks.completed(self, ctx, message, now), now)
            case TaskFailedMessage():
                self._record(ctx, tasks.failed(self, ctx, message, now), now)
            case DispatchWorkflow():
                lifecycle.dispatch(self, ctx, message, now)
            case QueryWorkflow():
                queries.query(self, ctx, message)
            case RetryWorkflow():
                lifecycle.retry(self, ctx, message, now)
            case SendSignal():
                signals.received(self, ctx, message, now)
            case ChildEnded():
                self._record(ctx, children.ended(ctx, message, now), now)
            case CancelWorkflow():
                cancel.cancel(self, ctx, message, now)
            case TagUpdate():
                tags.update(ctx, message)
            case GroupRequest():
                tags.act(self, ctx, message)
            case ScheduleRequest():
                schedules.request(self, ctx, message, now)
            case ScheduledWorkflowEnded():
                schedules.workflow_ended(ctx, message)
            case _:
                raise UnknownMessage(f"the engine does not handle {type(message).__name__}")

    def handle_timer(self, ctx: Context, timer: Timer) -> None:
        kind, workflow_id, seq, attempt = timers.parse_timer_key(timer.key)
        now = self.now_ms()
        if kind == timers.RETENTION:
            lifecycle.forget(self, ctx, workflow_id)
        elif kind == timers.WORKFLOW_TIMEOUT:
            cancel.timed_out(self, ctx, workflow_id, now)
        elif kind == timers.WORKFLOW_TIMER:
            self._record(ctx, timers.fired(ctx, workflow_id, seq, now), now)
        elif kind == timers.TASK_RETRY:
            tasks.retry_due(self, ctx, workflow_id, seq, now)
        elif kind == timers.SCHEDULE:
            schedules.fire(self, ctx, workflow_id, now)
        elif kind == timers.NEW_RUN:
            lifecycle.start_run(self, ctx, workflow_id, now)
        elif kind == timers.TASK_TIMEOUT:
            self._record(ctx, tasks.timed_out(self, ctx, workflow_id, seq, attempt, now), now)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _record(self, ctx: Context, facts: Facts | None, now: int) -> None:
        """Facts a handler found (none for a duplicate or a late message) join the history."""
        if facts is not None:
            steps.record(self, ctx, facts, now)
