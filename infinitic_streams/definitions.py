"""How users declare services and workflows: the `@service` and `@workflow` decorators.

A service contract is a class whose methods have type hints (their bodies are not used); the
implementation a worker runs subclasses it. A workflow is a `Workflow` subclass. The decorators
attach a small spec to the class; nothing is registered globally.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

C = TypeVar("C", bound=type)

SERVICE_ATTRIBUTE = "__infinitic_service__"
WORKFLOW_ATTRIBUTE = "__infinitic_workflow__"


@dataclass(frozen=True)
class RetryPolicy:
    """Durable retries: the delay before attempt n+1 is
    `min(initial_delay * backoff**(n-1), max_delay)`, randomly shortened by up to `jitter`
    (a fraction), and waited on an engine timer, never in a worker."""

    max_attempts: int = 1
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.5
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy.jitter is a fraction between 0 and 1")

    def delay_after(self, attempt: int, rng: random.Random) -> float | None:
        """Seconds to wait before the next attempt, or None when `attempt` was the last."""
        if attempt >= self.max_attempts:
            return None
        base = min(self.initial_delay * self.backoff ** (attempt - 1), self.max_delay)
        return base * (1 - self.jitter * rng.random())

    def retries(self, error: BaseException) -> bool:
        return not isinstance(error, self.non_retryable)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    contract: type
    retry: RetryPolicy
    timeout: float | None


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    cls: type
    timeout: float | None = None  # seconds after its start: then FAILED, WorkflowTimedOut


def service(
    name: str | type | None = None,
    *,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
) -> Any:
    """Declare a service contract: `@service`, `@service("Name")` or
    `@service("Name", retry=RetryPolicy(max_attempts=5), timeout=30.0)`."""

    def decorate(contract: C) -> C:
        spec = ServiceSpec(
            name if isinstance(name, str) else contract.__name__,
            contract,
            retry or RetryPolicy(),
            timeout,
        )
        setattr(contract, SERVICE_ATTRIBUTE, spec)
        return contract

    return decorate(name) if isinstance(name, type) else decorate


def workflow(name: str | type | None = None, *, timeout: float | None = None) -> Any:
    """Declare a workflow class: `@workflow`, `@workflow("Name")` or
    `@workflow("Name", timeout=3600.0)` (still running that many seconds after its start, a
    workflow ends FAILED with `WorkflowTimedOut`)."""
    if timeout is not None and timeout <= 0:
        raise ValueError(f"a workflow timeout must be positive, got {timeout}")

    def decorate(cls: C) -> C:
        spec = WorkflowSpec(name if isinstance(name, str) else cls.__name__, cls, timeout)
        setattr(cls, WORKFLOW_ATTRIBUTE, spec)
        return cls

    return decorate(name) if isinstance(name, type) else decorate


def service_spec(cls_or_instance: Any) -> ServiceSpec:
    """The spec of a contract, an implementation class, or an instance of one."""
    cls = cls_or_instance if isinstance(cls_or_instance, type) else type(cls_or_instance)
    spec = getattr(cls, SERVICE_ATTRIBUTE, None)
    if spec is None:
        raise TypeError(
            f"{cls.__name__} is not a service: decorate its contract class with @service"
        )
    return spec


def workflow_spec(cls: type) -> WorkflowSpec:
    """The spec of a workflow class; an undecorated Workflow subclass is named after itself."""
    spec = cls.__dict__.get(WORKFLOW_ATTRIBUTE)
    return spec if spec is not None else WorkflowSpec(cls.__name__, cls)


def public_method(cls: type, method: str) -> Callable[..., Any]:
    """The public method `method` of `cls`, or a TypeError naming the ones that exist."""
    fn = getattr(cls, method, None) if not method.startswith("_") else None
    if fn is None or not inspect.isfunction(fn):
        methods = [
            m for m, f in inspect.getmembers(cls, inspect.isfunction) if not m.startswith("_")
        ]
        raise TypeError(f"{cls.__name__} has no public method {method!r} (it has: {methods})")
    return fn
