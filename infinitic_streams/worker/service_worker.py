"""Service workers: run the tasks of one service, at least once, many at a time.

Loop of the worker's thread:
1. Consume ExecuteTask messages while fewer than `concurrency` tasks run.
2. Run each in a thread pool (or on an asyncio loop for `async def` methods); tasks of one
   partition run side by side, so a slow task does not hold back the others.
3. A finished task produces its result to the engine at once, from the thread that ran it.
4. Once a result is acknowledged by Kafka, its input offset counts as finished; the consumer
   commits, per partition, up to the first offset not finished yet. A crash re-runs the
   unfinished tasks elsewhere (the engine ignores duplicate results).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from infinitic_streams import payload
from infinitic_streams.definitions import ServiceSpec, service_spec
from infinitic_streams.errors import SerializationError
from infinitic_streams.kafka.consume import consume_available
from infinitic_streams.protocol import (
    DeadLetter,
    Envelope,
    ErrorInfo,
    ExecuteTask,
    Payload,
    TaskCompleted,
    TaskFailed,
    decode,
    encode,
)
from infinitic_streams.topics import Topics
from infinitic_streams.worker.offsets import OffsetTracker
from infinitic_streams.worker.task_context import TaskContext, set_task_context

logger = logging.getLogger("infinitic_streams.worker")
kafka_logger = logging.getLogger("infinitic_streams.kafka")
COMMIT_INTERVAL_S = 0.2


class ServiceWorker:
    def __init__(
        self,
        implementation: object,
        bootstrap: str,
        topics: Topics,
        concurrency: int = 16,
        kafka: dict[str, Any] | None = None,
    ) -> None:
        self.implementation = implementation
        self.spec: ServiceSpec = service_spec(implementation)
        self.topics = topics
        self.topic = topics.tasks(self.spec.name)
        self.concurrency = concurrency
        common = {"bootstrap.servers": bootstrap, **(kafka or {})}
        self._consumer = Consumer(
            {
                **common,
                "group.id": f"{topics.namespace}.service.{self.spec.name}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 2_000,
            },
            logger=kafka_logger,
        )
        self._producer = Producer(
            {**common, "enable.idempotence": True, "linger.ms": 1}, logger=kafka_logger
        )
        self._offsets = OffsetTracker()
        self._running = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"task {self.spec.name}")
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; then finish running tasks and commit."""
        self._consumer.subscribe([self.topic], on_revoke=self._on_revoke, on_lost=self._on_lost)
        logger.info("service %s: consuming %s", self.spec.name, self.topic)
        next_commit = time.monotonic() + COMMIT_INTERVAL_S
        try:
            while not stop.is_set():
                free = self.concurrency - self._running
                if free > 0:
                    for message in consume_available(self._consumer, free, 0.05):
                        self._start(message)
                else:
                    self._producer.poll(0.01)
                self._producer.poll(0)
                if time.monotonic() >= next_commit:
                    self._commit()
                    next_commit = time.monotonic() + COMMIT_INTERVAL_S
        finally:
            self._pool.shutdown(wait=True)
            self._producer.flush(30)
            self._commit()
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._consumer.close()

    # -- one task ------------------------------------------------------------------------------

    def _start(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            logger.warning("service %s: consumer error %s", self.spec.name, error.str())
            return
        position = (message.topic(), message.partition(), message.offset())
        self._offsets.started(*position)
        try:
            task = decode(message.value()).message
            if not isinstance(task, ExecuteTask):
                raise TypeError(f"expected ExecuteTask, got {type(task).__name__}")
        except Exception as exc:
            self._dead_letter(message, f"not a task: {exc!r}", position)
            return
        with self._lock:
            self._running += 1
        method = getattr(self.implementation, task.method_name, None)
        if method is not None and inspect.iscoroutinefunction(method):
            future = asyncio.run_coroutine_threadsafe(
                self._run_async(task, method), self._async_loop()
            )
            future.add_done_callback(lambda f: self._finished(task, f.result(), position))
        else:
            self._pool.submit(lambda: self._finished(task, self._run_sync(task, method), position))

    def _run_sync(
        self, task: ExecuteTask, method: Callable[..., Any] | None
    ) -> TaskCompleted | TaskFailed:
        try:
            args, return_hint = self._prepare(task, method)
            assert method is not None
            return self._completed(task, method(*args), return_hint)
        except Exception as error:
            return self._failed(task, error)

    async def _run_async(
        self, task: ExecuteTask, method: Callable[..., Any]
    ) -> TaskCompleted | TaskFailed:
        try:
            args, return_hint = self._prepare(task, method)
            running = method(*args)
            if task.timeout_seconds is not None:  # an async task can be stopped; a thread cannot
                running = asyncio.wait_for(running, task.timeout_seconds)
            return self._completed(task, await running, return_hint)
        except Exception as error:
            return self._failed(task, error)

    def _prepare(
        self, task: ExecuteTask, method: Callable[..., Any] | None
    ) -> tuple[list[Any], Any]:
        """Decode the arguments with the contract's hints and set `task_context()`."""
        if method is None or task.method_name.startswith("_"):
            raise UnknownMethod(f"service {self.spec.name} has no method {task.method_name!r}")
        contract_method = getattr(self.spec.contract, task.method_name, method)
        param_hints, return_hint = payload.hints_of(contract_method)
        args = payload.decode_args([p.data for p in task.args], param_hints)
        set_task_context(
            TaskContext(
                task.task_id,
                task.attempt,
                task.service_name,
                task.method_name,
                task.workflow_id,
                task.workflow_name,
                task.tags,
                dict(task.meta),
            )
        )
        return args, return_hint

    def _completed(
        self, task: ExecuteTask, value: Any, return_hint: Any
    ) -> TaskCompleted | TaskFailed:
        try:
            data = payload.encode(value, return_hint, path="result")
        except SerializationError as error:
            return self._failed(task, error)
        return TaskCompleted(
            task_id=task.task_id,
            workflow_id=task.workflow_id,
            attempt=task.attempt,
            result=Payload(data=data),
        )

    def _failed(self, task: ExecuteTask, error: Exception) -> TaskFailed:
        retryable = self.spec.retry.retries(error) and not isinstance(
            error, UnknownMethod | SerializationError
        )
        return TaskFailed(
            task_id=task.task_id,
            workflow_id=task.workflow_id,
            attempt=task.attempt,
            error=ErrorInfo(
                type_name=type(error).__name__,
                message=str(error),
                traceback="".join(traceback.format_exception(error)),
            ),
            retryable=retryable,
        )

    def _finished(
        self,
        task: ExecuteTask,
        result: TaskCompleted | TaskFailed,
        position: tuple[str, int, int],
    ) -> None:
        """Send the result now (from the task's thread: producing is thread-safe)."""
        self._send(self.topics.engine, task.workflow_id.encode(), result, position)
        with self._lock:
            self._running -= 1

    def _dead_letter(self, message: Message, reason: str, position: tuple[str, int, int]) -> None:
        logger.warning("service %s: dead-lettered %s: %s", self.spec.name, position, reason)
        dead = DeadLetter(
            reason=reason,
            source_topic=position[0],
            source_partition=position[1],
            source_offset=position[2],
            key=message.key(),
            value=message.value(),
        )
        self._send(self.topics.dlq, message.key(), dead, position)

    def _send(
        self,
        topic: str,
        key: bytes | None,
        message: TaskCompleted | TaskFailed | DeadLetter,
        position: tuple[str, int, int],
    ) -> None:
        envelope = Envelope(
            message_id=str(uuid.uuid4()), sent_at_ms=int(time.time() * 1000), message=message
        )

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is None:
                self._offsets.finished(*position)
            else:  # never committed: the task runs again after a restart
                logger.error("service %s: result not delivered: %s", self.spec.name, error.str())

        self._producer.produce(topic, encode(envelope), key, on_delivery=delivered)

    def _async_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(
                target=self._loop.run_forever, name=f"async {self.spec.name}", daemon=True
            ).start()
        return self._loop

    # -- offsets -------------------------------------------------------------------------------

    def _commit(self) -> None:
        offsets = self._offsets.committable()
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as error:  # e.g. during a rebalance: the next commit catches up
                logger.info("service %s: commit failed: %s", self.spec.name, error)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._producer.flush(10)
        self._producer.poll(0)
        self._commit()
        self._offsets.forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._offsets.forget(partitions)


class UnknownMethod(Exception):
    """The task names a method the service does not have (never retried)."""
