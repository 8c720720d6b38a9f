"""`Workflow`: the base class of user workflows, and the service proxies it hands out.

Everything here runs inside workflow code and delegates to the instance's `WorkflowExecution`
(set by the engine before the method starts), so a workflow class holds no Kafka or engine
reference of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

from infinitic_streams import payload
from infinitic_streams.definitions import public_method, service_spec
from infinitic_streams.workflows.channel import SendingChannel, channels_of
from infinitic_streams.workflows.commands import TaskCommand, TimerCommand
from infinitic_streams.workflows.deferred import Deferred

if TYPE_CHECKING:
    from infinitic_streams.workflows.execution import WorkflowExecution


class Workflow:
    """Subclass it, decorate with `@workflow`, and write public methods as workflow code:
    deterministic, waiting only on what this class offers (tasks, timers, branches, signals,
    child workflows)."""

    _execution: WorkflowExecution

    @property
    def workflow_id(self) -> str:
        return self._execution.workflow_id

    @property
    def workflow_name(self) -> str:
        return self._execution.workflow_name

    @property
    def tags(self) -> tuple[str, ...]:
        return self._execution.tags

    @property
    def meta(self) -> dict[str, str]:
        return self._execution.meta

    def new_service(
        self, contract: type, tags: tuple[str, ...] = (), meta: Mapping[str, str] | None = None
    ) -> Any:
        """A proxy of the service: calling a method runs the task and returns its result."""
        return ServiceProxy(self._execution, contract, tuple(tags), dict(meta or {}))

    def new_workflow(
        self, cls: type, id: str | None = None, tags: tuple[str, ...] | list[str] = ()
    ) -> Any:
        """A proxy of a child workflow: calling a method starts the child (or joins the one
        with this `id`) and returns its result, or raises `WorkflowFailed` /
        `WorkflowCanceled`. Without an id, each call starts a child of its own."""
        return ChildProxy(self._execution, cls, id, tuple(tags))

    def get_workflow(self, cls: type, id: str) -> Any:
        """A stub of another workflow: `stub.<channel>.send(value)` signals it,
        `stub.cancel()` cancels it."""
        return WorkflowStub(self._execution, cls, id)

    def dispatch(self, method: TaskMethod | ChildMethod, *args: Any) -> Deferred[Any]:
        """Start a task, or a child workflow, without waiting for it."""
        if not isinstance(method, TaskMethod | ChildMethod):
            raise TypeError(
                "dispatch() takes a method of a proxy from new_service() or new_workflow()"
            )
        return method.dispatch(args)

    def branch(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run workflow code concurrently with the caller."""
        return self._execution.branch(fn, args)

    def timer(self, duration: float | timedelta | datetime) -> Deferred[datetime]:
        """A durable timer: seconds, a timedelta, or an aware datetime to wait until."""
        execution = self._execution
        if isinstance(duration, datetime):
            if duration.tzinfo is None:
                raise ValueError("timer(datetime) needs an aware datetime (with a tzinfo)")
            due_ms = int(duration.timestamp() * 1000)
        else:
            seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
            due_ms = execution.now_ms + int(seconds * 1000)
        command = execution.issue(lambda seq: TimerCommand(seq, due_ms))
        assert isinstance(command, TimerCommand)
        return execution.wait_timer(command)

    def sleep(self, duration: float | timedelta | datetime) -> None:
        self.timer(duration).result()

    def inline(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run non-deterministic code once; replays get the recorded result."""
        return self._execution.inline(fn, args)

    def now(self) -> datetime:
        return self._execution.now()

    def patched(self, change_id: str) -> bool:
        """Versioning: True where this workflow reaches the change `change_id` for the first
        time with code that has it (the answer is recorded, so replays agree); False while it
        replays a history that an older code made, which went on without it. Write
        `if self.patched("id"): <new code> else: <old code>`."""
        return self._execution.patched(change_id)

    def deprecate_patch(self, change_id: str) -> None:
        """Once no running workflow can take the old path of `change_id`: replace the `if`
        with this call and keep only the new code; histories that recorded the patch still
        replay (its marker is skipped), new runs record nothing."""
        self._execution.deprecate_patch(change_id)

    def continue_as_new(self, *args: Any) -> NoReturn:
        """End this run and start a new run of the same workflow (id, method, tags, meta)
        with `args` and a fresh history; signals not received yet are carried over, whoever
        waits for this workflow gets the result of its last run. Does not return."""
        self._execution.continue_as_new(args)
        raise AssertionError("continue_as_new returned")  # unreachable

    def random(self) -> float:
        return self._execution.random()

    def uuid(self) -> UUID:
        return self._execution.uuid()


class ServiceProxy:
    """Stands for a service inside workflow code; its methods are `TaskMethod`s."""

    def __init__(
        self,
        execution: WorkflowExecution,
        contract: type,
        tags: tuple[str, ...],
        meta: dict[str, str],
    ) -> None:
        self._execution = execution
        self._spec = service_spec(contract)
        self._tags, self._meta = tags, meta

    def __getattr__(self, name: str) -> TaskMethod:
        fn = public_method(self._spec.contract, name)
        return TaskMethod(self, name, fn)


class TaskMethod:
    def __init__(self, proxy: ServiceProxy, name: str, fn: Callable[..., Any]) -> None:
        self._proxy, self._name, self._fn = proxy, name, fn

    def __call__(self, *args: Any) -> Any:
        return self.dispatch(args).result()

    def dispatch(self, args: tuple[Any, ...]) -> Deferred[Any]:
        """Issue the task; `PayloadTooLarge` when its encoded arguments are over the engine's
        `max_payload_bytes` (nothing is sent; the refusal is recorded, see `RefusedCommand`)."""
        proxy = self._proxy
        spec = proxy._spec
        param_hints, return_hint = payload.hints_of(self._fn)
        encoded = tuple(payload.encode_args(args, param_hints))
        command = proxy._execution.issue_within_limit(
            lambda seq: TaskCommand(
                seq,
                spec.name,
                self._name,
                encoded,
                proxy._tags,
                proxy._meta,
                spec.retry,
                spec.timeout,
            ),
            encoded,
        )
        assert isinstance(command, TaskCommand)
        return proxy._execution.wait_task(command, return_hint)


class ChildProxy:
    """Stands for a child workflow inside workflow code; its methods are `ChildMethod`s."""

    def __init__(
        self, execution: WorkflowExecution, cls: type, child_id: str | None, tags: tuple[str, ...]
    ) -> None:
        self._execution, self._cls, self._id, self._tags = execution, cls, child_id, tags

    def __getattr__(self, name: str) -> ChildMethod:
        public_method(self._cls, name)  # a TypeError naming the methods it has
        return ChildMethod(self, name)


class ChildMethod:
    def __init__(self, proxy: ChildProxy, name: str) -> None:
        self._proxy, self._name = proxy, name

    def __call__(self, *args: Any) -> Any:
        return self.dispatch(args).result()

    def dispatch(self, args: tuple[Any, ...]) -> Deferred[Any]:
        proxy = self._proxy
        return proxy._execution.start_child(proxy._cls, self._name, args, proxy._id, proxy._tags)


class WorkflowStub:
    """Another workflow, seen from workflow code: its channels (to send signals) and
    `cancel()`."""

    def __init__(self, execution: WorkflowExecution, cls: type, workflow_id: str) -> None:
        self._execution, self._cls, self.id = execution, cls, workflow_id

    def cancel(self) -> None:
        """Cancel that workflow (recorded once; it ends CANCELED unless it has ended)."""
        self._execution.cancel_workflow(self._cls, self.id)

    def __getattr__(self, name: str) -> SendingChannel:
        channel = channels_of(self._cls).get(name)
        if channel is None:
            channels = sorted(channels_of(self._cls))
            raise AttributeError(
                f"workflow {self._cls.__name__} has no channel {name!r} (channels: {channels}); "
                "a stub signals or cancels a running workflow"
            )
        return SendingChannel(self._execution, self._cls, self.id, channel)
