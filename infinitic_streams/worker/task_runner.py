"""Running one task of a service: arguments decoded with the contract's hints, `task_context()`
set, the method called (sync or `async def`), its result encoded, or its error turned into a
`TaskFailed` that says whether the service's retry policy retries it. Pure: no Kafka. The
service worker runs tasks through it, and so does the test kit."""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from infinitic_streams import payload
from infinitic_streams.definitions import ServiceSpec, service_spec
from infinitic_streams.errors import PayloadTooLarge, SerializationError
from infinitic_streams.protocol import ErrorInfo, ExecuteTask, Payload, TaskCompleted, TaskFailed
from infinitic_streams.worker.task_context import TaskContext, set_task_context

Result = TaskCompleted | TaskFailed
OnFailure = Callable[[ExecuteTask, Exception, bool], None]  # (task, error, retryable)


class UnknownMethod(Exception):
    """The task names a method the service does not have (never retried)."""


class TaskRunner:
    def __init__(
        self,
        implementation: object,
        max_payload_bytes: int,
        on_failure: OnFailure = lambda task, error, retryable: None,
    ) -> None:
        self.implementation = implementation
        self.spec: ServiceSpec = service_spec(implementation)
        self.max_payload_bytes = max_payload_bytes
        self.on_failure = on_failure

    def method(self, task: ExecuteTask) -> Callable[..., Any] | None:
        return getattr(self.implementation, task.method_name, None)

    def is_async(self, task: ExecuteTask) -> bool:
        return inspect.iscoroutinefunction(self.method(task))

    def run_sync(self, task: ExecuteTask, context: TaskContext) -> Result:
        method = self.method(task)
        try:
            args, return_hint = self._prepare(task, method, context)
            assert method is not None
            return self._completed(task, method(*args), return_hint)
        except Exception as error:
            return self.failed(task, error)

    async def run_async(self, task: ExecuteTask, context: TaskContext) -> Result:
        method = self.method(task)
        try:
            args, return_hint = self._prepare(task, method, context)
            assert method is not None
            running = method(*args)
            if task.timeout_seconds is not None:  # an async task can be stopped; a thread cannot
                running = asyncio.wait_for(running, task.timeout_seconds)
            return self._completed(task, await running, return_hint)
        except Exception as error:
            return self.failed(task, error)

    def failed(self, task: ExecuteTask, error: Exception) -> TaskFailed:
        retryable = self.spec.retry.retries(error) and not isinstance(
            error, UnknownMethod | SerializationError | PayloadTooLarge
        )
        self.on_failure(task, error, retryable)
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

    def _prepare(
        self, task: ExecuteTask, method: Callable[..., Any] | None, context: TaskContext
    ) -> tuple[list[Any], Any]:
        """Decode the arguments with the contract's hints and set `task_context()`."""
        if method is None or task.method_name.startswith("_"):
            raise UnknownMethod(f"service {self.spec.name} has no method {task.method_name!r}")
        contract_method = getattr(self.spec.contract, task.method_name, method)
        param_hints, return_hint = payload.hints_of(contract_method)
        args = payload.decode_args([p.data for p in task.args], param_hints)
        set_task_context(context)
        return args, return_hint

    def _completed(self, task: ExecuteTask, value: Any, return_hint: Any) -> Result:
        try:
            data = payload.encode(value, return_hint, path="result")
            payload.check_size([data], self.max_payload_bytes, "the task's result")
        except (SerializationError, PayloadTooLarge) as error:
            return self.failed(task, error)
        return TaskCompleted(
            task_id=task.task_id,
            workflow_id=task.workflow_id,
            attempt=task.attempt,
            result=Payload(data=data),
        )


def context_of(task: ExecuteTask) -> TaskContext:
    return TaskContext(
        task.task_id,
        task.attempt,
        task.service_name,
        task.method_name,
        task.workflow_id,
        task.workflow_name,
        task.tags,
        dict(task.meta),
    )


def outcome(task: ExecuteTask, done: Future[Result]) -> Result:
    """The result of an async task; a cancelled one (its workflow was canceled) failed."""
    if not done.cancelled():
        return done.result()
    return TaskFailed(
        task_id=task.task_id,
        workflow_id=task.workflow_id,
        attempt=task.attempt,
        error=ErrorInfo(
            type_name="CancelledError",
            message="the task was cancelled: its workflow was canceled",
            traceback="",
        ),
        retryable=False,
    )
