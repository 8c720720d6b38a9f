"""Errors raised by infinitic-streams. Every error names what went wrong and what to do."""

from __future__ import annotations


class InfiniticError(Exception):
    """Base class of every error this package raises on purpose."""


class SerializationError(InfiniticError):
    """A user value cannot be encoded or decoded as a payload.

    `path` locates the offending value inside the encoded structure, for example
    `args[1].items[3]`; `type_name` names its Python type (or the expected type when decoding).
    """

    def __init__(self, path: str, type_name: str, reason: str) -> None:
        self.path = path
        self.type_name = type_name
        self.reason = reason
        super().__init__(f"{path}: {reason} (type {type_name})")


class PayloadTooLarge(InfiniticError):
    """An encoded value (arguments, a result) is over the `max_payload_bytes` limit.

    Kafka messages have a size limit, so payloads do too; `size` and `limit` are in bytes."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what, self.size, self.limit = what, size, limit
        super().__init__(
            f"{what} takes {size} bytes encoded, over the {limit}-byte limit "
            "(max_payload_bytes): pass a reference to the data (a URL, an object-store key) "
            "instead, or raise max_payload_bytes for clients and workers alike"
        )


class TaskFailed(InfiniticError):
    """A task failed on its last attempt; raised in the workflow at the task's result.

    `type_name`, `error_message` and `traceback` describe the exception the task raised (in
    the worker's process); `attempts` counts the attempts made.
    """

    def __init__(
        self,
        service: str,
        method: str,
        task_id: str,
        attempts: int,
        type_name: str,
        error_message: str,
        traceback: str,
    ) -> None:
        self.service, self.method, self.task_id = service, method, task_id
        self.attempts = attempts
        self.type_name, self.error_message, self.traceback = type_name, error_message, traceback
        super().__init__(
            f"task {service}.{method} ({task_id}) failed after {attempts} attempt(s): "
            f"{type_name}: {error_message}"
        )


class TaskTimedOut(TaskFailed):
    """A task's last attempt did not finish within its timeout."""


class WorkflowFailed(InfiniticError):
    """A workflow ended with an error; `type_name` and `error_message` describe it."""

    def __init__(self, workflow_id: str, type_name: str, error_message: str) -> None:
        self.workflow_id, self.type_name, self.error_message = workflow_id, type_name, error_message
        super().__init__(f"workflow {workflow_id} failed: {type_name}: {error_message}")


class WorkflowTimedOut(WorkflowFailed):
    """A workflow was still running `timeout` seconds (`@workflow(timeout=...)`) after its
    start: it ended FAILED, its children and tasks canceled."""


class WorkflowNotFound(InfiniticError):
    """The engine has no workflow with this id (never started, or forgotten after retention)."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"no workflow with id {workflow_id}")


class ScheduleNotFound(InfiniticError):
    """The engine has no schedule with this id (never created, or deleted)."""

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(f"no schedule with id {schedule_id}")


class WorkflowCanceled(InfiniticError):
    """A workflow was canceled."""

    def __init__(self, workflow_id: str, reason: str = "") -> None:
        self.workflow_id, self.reason = workflow_id, reason
        super().__init__(f"workflow {workflow_id} was canceled" + (f": {reason}" if reason else ""))


class NonDeterministicWorkflow(InfiniticError):
    """Replaying a workflow's history with its current code issued a different step: the code
    changed under a running workflow. Fix the code, then `retry()` the workflow."""

    def __init__(self, workflow_id: str, position: int, expected: str, found: str) -> None:
        self.workflow_id, self.position, self.expected, self.found = (
            workflow_id,
            position,
            expected,
            found,
        )
        super().__init__(
            f"workflow {workflow_id} is not deterministic: at step {position} its history has "
            f"{expected}, but the code now issues {found}"
        )
