"""Service workers: run the tasks of one service, at least once, many at a time.

Loop of the worker's thread:
1. Consume ExecuteTask messages while fewer than `concurrency` tasks run.
2. Run each in a thread pool (or on an asyncio loop for `async def` methods); tasks of one
   partition run side by side, so a slow task does not hold back the others.
3. A finished task produces its result to the engine at once, from the thread that ran it.
4. Once a result is acknowledged by Kafka, its input offset counts as finished; the consumer
   commits, per partition, up to the first offset not finished yet. A crash re-runs the
   unfinished tasks elsewhere (the engine ignores duplicate results).

Logs (logger `infinitic_streams.worker`): the start, partitions assigned and revoked, each
failed attempt (at `failure_level`: INFO when the worker runs alone; a Worker that also runs
the engine passes DEBUG, since the engine logs the attempt with its retry decision), each dead
letter with its reason, and the stop with what was done.

A `CancelTask` (the task's workflow was canceled or timed out) sets the running task's
`task_context().canceled` and cancels an `async def` task; a thread cannot be stopped: a long
sync task should read the flag.

Something escaping the task machinery (a bug, or a task raising a `BaseException` that is not
an `Exception`) stops the service worker: `run` raises it, and `Worker.run` with it.

Kafka faults: a result Kafka could not take (brokers down longer than the producer retries)
is sent again, with backoff, until it is acknowledged; a result over `max_payload_bytes`
fails its task with `PayloadTooLarge` (not retried); consumer and commit errors of a moving
cluster are logged and waited out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from infinitic_streams.definitions import ServiceSpec
from infinitic_streams.errors import PayloadTooLarge
from infinitic_streams.kafka.consumer import Consumer, Message, TopicPartition
from infinitic_streams.kafka.producer import Delivery, Producer
from infinitic_streams.logs import numbers, one_line
from infinitic_streams.protocol import (
    CancelTask,
    Envelope,
    ExecuteTask,
    TaskCompleted,
    TaskFailed,
    decode,
    encode,
)
from infinitic_streams.protocol.messages import new_message_id
from infinitic_streams.streams.dead_letter import DeadLetter
from infinitic_streams.topics import Topics
from infinitic_streams.worker.offsets import OffsetTracker
from infinitic_streams.worker.task_context import TaskContext
from infinitic_streams.worker.task_metrics import CANCELED, FAILED, SUCCEEDED, TaskMetrics
from infinitic_streams.worker.task_runner import TaskRunner, context_of, outcome

logger = logging.getLogger("infinitic_streams.worker")
COMMIT_INTERVAL_S = 0.2
RESEND_DELAY_S = 1.0
Position = tuple[str, int, int]  # topic, partition, offset of the task


class ServiceWorker:
    def __init__(
        self,
        implementation: object,
        kafka: Mapping[str, Any],
        topics: Topics,
        concurrency: int = 16,
        failure_level: int = logging.INFO,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.runner = TaskRunner(implementation, topics.max_payload_bytes, self._log_failure)
        self.spec: ServiceSpec = self.runner.spec
        self.topics = topics
        self.topic = topics.tasks(self.spec.name)
        self.concurrency = concurrency
        self.failure_level = failure_level
        self._consumer = Consumer(
            kafka,
            topics.service_group(self.spec.name),
            {"session.timeout.ms": 10_000, "heartbeat.interval.ms": 2_000},
            # A task is read as soon as the engine produced it, not once its transaction
            # committed: the commit and the task's hop overlap. Execution is at-least-once
            # and task ids are deterministic, so a task of a transaction that aborts is the
            # one the engine issues again, and its result comes after the input that
            # issued it (docs/ARCHITECTURE.md, "The task hop does not wait").
            # Commits never block the loop (a synchronous one waits, with no bound, for a
            # group coordinator that may never come back): a failed one is redone (_on_commit).
            {"isolation.level": "read_uncommitted", "on_commit": self._on_commit},
        )
        self._producer = Producer(kafka, {"message.max.bytes": topics.max_message_bytes + 1024})
        self._resend: deque[tuple[Any, ...]] = deque()  # (due, the arguments of _send)
        self._offsets = OffsetTracker()
        self._running = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"task {self.spec.name}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._crash: BaseException | None = None  # what escaped a task's thread
        # Tasks running now, by task id: their context, and the future of an async one.
        self._active: dict[str, tuple[TaskContext, Future[Any] | None]] = {}
        self._done = self._failed_attempts = 0
        self._started: dict[str, float] = {}  # monotonic start of each running task, by id
        self.metrics = TaskMetrics(topics.namespace, self.spec.name, concurrency, registry)
        self.joined = False  # the group assigned partitions to it (maybe none): ready

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; then finish running tasks and commit. Raises what
        escaped the machinery of a task (after the same shutdown)."""
        self._consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        logger.info(
            "service %s: consuming %s (group %s, %d tasks at a time)",
            self.spec.name,
            self.topic,
            self.topics.service_group(self.spec.name),
            self.concurrency,
        )
        next_commit = time.monotonic() + COMMIT_INTERVAL_S
        try:
            while not stop.is_set() and self._crash is None:
                free = self.concurrency - self._running
                if free > 0:
                    for message in self._consumer.consume(free, 0.05):
                        self._start(message)
                else:
                    self._producer.poll(0.01)
                self._producer.poll(0)
                self._send_again()
                if time.monotonic() >= next_commit:
                    self._commit(wait=False)
                    next_commit = time.monotonic() + COMMIT_INTERVAL_S
        finally:
            self._pool.shutdown(wait=True)  # running tasks finish (their results are sent)
            if self._producer.flush(30) > 0:
                logger.warning("service %s: results not delivered: rerun later", self.spec.name)
            self._commit(wait=False)  # the bounded close sends it
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._consumer.close()
            logger.info(
                "service %s: stopped (tasks done: %d, failed attempts: %d)",
                self.spec.name,
                self._done,
                self._failed_attempts,
            )
        if self._crash is not None:
            raise self._crash

    # -- one task ------------------------------------------------------------------------------

    def _start(self, message: Message) -> None:
        position = (message.topic(), message.partition(), message.offset())
        self._offsets.started(*position)
        try:
            envelope = decode(message.value())
            task = envelope.message
            if isinstance(task, CancelTask):
                self._cancel(task)
                self._offsets.finished(*position)
                return
            if not isinstance(task, ExecuteTask):
                raise TypeError(f"expected ExecuteTask or CancelTask, got {type(task).__name__}")
        except Exception as exc:
            self._dead_letter(message, f"not a task: {exc!r}", position)
            return
        with self._lock:
            self._running += 1
        self._started[task.task_id] = time.monotonic()
        self.metrics.started(task.method_name, time.time() - envelope.sent_at_ms / 1000)
        context = context_of(task)
        if self.runner.is_async(task):
            future = asyncio.run_coroutine_threadsafe(
                self.runner.run_async(task, context), self._async_loop()
            )
            self._active[task.task_id] = (context, future)
            future.add_done_callback(
                lambda f: self._guarded(lambda: self._finished(task, outcome(task, f), position))
            )
        else:
            self._active[task.task_id] = (context, None)
            self._pool.submit(
                self._guarded,
                lambda: self._finished(task, self.runner.run_sync(task, context), position),
            )

    def _cancel(self, message: CancelTask) -> None:
        """The task's workflow was canceled: its context says so, an async task is cancelled
        (a thread cannot be: the task reads `task_context().canceled`)."""
        active = self._active.get(message.task_id)
        if active is None:
            return  # done already, or running elsewhere: its result is recorded and ignored
        context, future = active
        context._canceled.set()
        if future is not None:
            future.cancel()
        logger.info(
            "service %s: task %s canceled: %s", self.spec.name, message.task_id, message.reason
        )

    def _guarded(self, work: Callable[[], None]) -> None:
        """Run a task's work; what escapes it stops the service worker (`run` raises it)
        rather than dying with its thread and leaving the task unfinished forever."""
        try:
            work()
        except BaseException as error:
            if self._crash is None:
                self._crash = error

    def _log_failure(self, task: ExecuteTask, error: Exception, retryable: bool) -> None:
        with self._lock:
            self._failed_attempts += 1
        logger.log(
            self.failure_level,
            "task %s.%s failed (attempt %d, task %s): %s: %s%s",
            task.service_name,
            task.method_name,
            task.attempt,
            task.task_id,
            type(error).__name__,
            one_line(str(error)),
            "" if retryable else " (not retryable)",
            extra=_task_fields(task),
        )
        logger.debug("task %s failed", task.task_id, exc_info=error)

    def _finished(
        self, task: ExecuteTask, result: TaskCompleted | TaskFailed, position: Position
    ) -> None:
        """Send the result now (from the task's thread: producing is thread-safe)."""
        value = _envelope(result)

        def refused(reason: str) -> bytes:  # the topic takes less than we do: fail the task
            what = f"the task's result record (refused by {self.topics.engine}: {reason})"
            error = PayloadTooLarge(what, len(value), self.topics.max_message_bytes)
            return _envelope(self.runner.failed(task, error))

        self._active.pop(task.task_id, None)
        started = self._started.pop(task.task_id, time.monotonic())
        self.metrics.finished(task.method_name, _outcome_name(result), time.monotonic() - started)
        key = task.workflow_id.encode()
        fallback = refused if isinstance(result, TaskCompleted) else None
        self._send(self.topics.engine, key, value, position, fallback=fallback)
        with self._lock:
            self._running -= 1
            self._done += 1

    def _dead_letter(self, message: Message, reason: str, position: Position) -> None:
        dead = DeadLetter(reason, *position, message.key(), message.value())
        logger.warning(
            "service %s: dead-lettered %s to %s: %s",
            self.spec.name,
            dead.source,
            self.topics.dlq,
            dead.summary(),
        )
        topic, key, value = self.topics.dlq, message.key(), message.value() or b""
        self._send(topic, key, value, position, dead.record_headers())

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        position: Position,
        headers: list[tuple[str, bytes]] | None = None,
        fallback: Callable[[str], bytes] | None = None,
    ) -> None:
        """Produce; the task's offset is finished once Kafka has the record. A record Kafka
        refused for now is sent again later (`_send_again`): never lost, never committed
        unsent. One it refuses as too large is replaced by `fallback(reason)`, if any."""

        def delivered(report: Delivery) -> None:
            if report.error is None:
                self._offsets.finished(*position)
            elif report.too_large:
                logger.error(
                    "service %s: %s refused a record: %s", self.spec.name, topic, report.error
                )
                if fallback is not None:
                    self._send(topic, key, fallback(report.error), position)
                else:
                    self._offsets.finished(*position)
            else:
                logger.warning(
                    "service %s: a record to %s was not delivered (%s): sending it again",
                    self.spec.name,
                    topic,
                    report.error,
                )
                due = time.monotonic() + RESEND_DELAY_S
                self._resend.append((due, topic, key, value, position, headers, fallback))

        self._producer.produce(topic, key, value, delivered, headers)

    def _send_again(self) -> None:
        while self._resend and self._resend[0][0] <= time.monotonic():
            _, *record = self._resend.popleft()
            self._send(*record)

    def _async_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(
                target=self._loop.run_forever, name=f"async {self.spec.name}", daemon=True
            ).start()
        return self._loop

    # -- offsets -------------------------------------------------------------------------------

    def _commit(self, wait: bool = True) -> None:
        offsets = self._offsets.committable()
        if offsets and not self._consumer.commit(offsets, wait):
            self._offsets.uncommitted(offsets)  # the next commit tries again

    def _on_commit(self, error: object, partitions: list[TopicPartition]) -> None:
        """An asynchronous commit's answer (served by consume): failed offsets are committed
        again by the next `_commit`."""
        failed = [tp for tp in partitions if error is not None or tp.error is not None]
        if failed:
            self._offsets.uncommitted(failed)

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        self.joined = True
        if partitions:
            logger.info(
                "service %s: partitions assigned: %s",
                self.spec.name,
                numbers({tp.partition for tp in partitions}),
            )

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        self._producer.flush(10)
        self._producer.poll(0)
        # Not waiting: a synchronous commit has no timeout, and with every broker gone it
        # held the loop (and a SIGTERM) forever. The next owner may rerun a task whose offset
        # did not make it: tasks are at-least-once.
        self._commit(wait=False)
        self._offsets.forget(partitions)
        if partitions:
            logger.info(
                "service %s: partitions revoked: %s",
                self.spec.name,
                numbers({tp.partition for tp in partitions}),
            )

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        self._offsets.forget(partitions)
        logger.warning(
            "service %s: partitions lost (another worker owns them now): %s",
            self.spec.name,
            numbers({tp.partition for tp in partitions}),
        )


def _outcome_name(result: TaskCompleted | TaskFailed) -> str:
    if isinstance(result, TaskCompleted):
        return SUCCEEDED
    return CANCELED if result.error.type_name == "CancelledError" else FAILED


def _task_fields(task: ExecuteTask) -> dict[str, object]:
    """The `extra=` of a task's log lines (fields of a JSON log line)."""
    return {
        "service": task.service_name,
        "method": task.method_name,
        "task_id": task.task_id,
        "attempt": task.attempt,
        "workflow_id": task.workflow_id,
        "workflow_name": task.workflow_name,
    }


def _envelope(message: TaskCompleted | TaskFailed) -> bytes:
    return encode(
        Envelope(message_id=new_message_id(), sent_at_ms=int(time.time() * 1000), message=message)
    )
