"""`task_context()`: what a running task knows about itself."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field

from infinitic_streams.errors import InfiniticError


@dataclass(frozen=True)
class TaskContext:
    task_id: str  # stable across retries: use it as an idempotency key
    attempt: int  # 1 on the first try
    service: str
    method: str
    workflow_id: str
    workflow_name: str
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    _canceled: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def canceled(self) -> bool:
        """True once the task's workflow was canceled (or timed out): a long task should stop
        and return (or raise); its result is recorded but no longer used."""
        return self._canceled.is_set()


_current: ContextVar[TaskContext] = ContextVar("infinitic_task_context")


def task_context() -> TaskContext:
    """The context of the task running in this thread (or asyncio task)."""
    try:
        return _current.get()
    except LookupError:
        raise InfiniticError("task_context() is only available inside a running task") from None


def set_task_context(context: TaskContext) -> None:
    _current.set(context)
