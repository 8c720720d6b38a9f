"""Names of the Kafka topics of a namespace: one place, so engine, workers and clients agree."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VALID = re.compile(r"[a-zA-Z0-9._-]+")


@dataclass(frozen=True)
class Topics:
    namespace: str

    def __post_init__(self) -> None:
        if not _VALID.fullmatch(self.namespace):
            raise ValueError(
                f"namespace {self.namespace!r} may only contain letters, digits, '.', '_', '-'"
            )

    @property
    def engine(self) -> str:
        """Workflow engine input, keyed by workflow id."""
        return f"{self.namespace}.engine"

    @property
    def engine_group(self) -> str:
        """Consumer group of the engines (the stream app names it after its processor)."""
        return f"{self.namespace}.engine"

    def tasks(self, service: str) -> str:
        """Task executions of one service, keyed by workflow id."""
        return f"{self.namespace}.tasks.{_checked(service)}"

    @property
    def replies(self) -> str:
        """Answers to clients: each client reads one partition and keeps the records keyed by
        its id, so no client reads every other client's replies."""
        return f"{self.namespace}.replies"

    @property
    def dlq(self) -> str:
        return f"{self.namespace}.dlq"


def _checked(name: str) -> str:
    if not _VALID.fullmatch(name):
        raise ValueError(f"{name!r} cannot be part of a topic name: use [a-zA-Z0-9._-] only")
    return name
