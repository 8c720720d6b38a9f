"""The Kafka topics of a namespace, names and configs: one place, so that engines, workers,
clients and the CLI create and expect the same topics."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from infinitic_streams.payload import DEFAULT_MAX_PAYLOAD_BYTES

_VALID = re.compile(r"[a-zA-Z0-9._-]+")
REPLY_PARTITIONS = 16
REPLY_RETENTION_MS = 3_600_000
# Room in a message for what surrounds a payload: the envelope, ids, names, tags, meta.
ENVELOPE_ROOM_BYTES = 64 * 1024


def message_limit(max_payload_bytes: int) -> int:
    """The size of the largest Kafka record the project writes for payloads of at most
    `max_payload_bytes`: a stored history event holds a payload as a JSON string inside JSON,
    where escaping can double it. Topics (`max.message.bytes`) and producers
    (`message.max.bytes`) allow this much."""
    return 2 * max_payload_bytes + ENVELOPE_ROOM_BYTES


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the project needs it: created with `config`; on an existing topic the keys
    of `checked` (all of `config` when None) must match (`max.message.bytes`: be as large)."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    checked: tuple[str, ...] | None = None
    any_partitions: bool = False  # an existing topic may have another count (a client's view)

    def checked_config(self) -> dict[str, str]:
        keys = self.config if self.checked is None else self.checked
        return {key: self.config[key] for key in keys}


@dataclass(frozen=True)
class Topics:
    namespace: str
    partitions: int = 8
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    def __post_init__(self) -> None:
        if not _VALID.fullmatch(self.namespace):
            raise ValueError(
                f"namespace {self.namespace!r} may only contain letters, digits, '.', '_', '-'"
            )

    @property
    def max_message_bytes(self) -> int:
        return message_limit(self.max_payload_bytes)

    # -- names -----------------------------------------------------------------------------------

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

    def service_group(self, service: str) -> str:
        """Consumer group of the workers of one service."""
        return f"{self.namespace}.service.{_checked(service)}"

    @property
    def tags(self) -> str:
        """The tag index's input (tag updates, group requests), keyed by tag; consumed by the
        engines with the engine topic (same partition count)."""
        return f"{self.namespace}.tags"

    @property
    def events(self) -> str:
        """Every recorded event of every workflow, CloudEvents JSON keyed by workflow id
        (see docs/events.md); the visibility index reads it."""
        return f"{self.namespace}.events"

    @property
    def visibility_queries(self) -> str:
        """Queries of the visibility index (`list`, `count`), sent to each of its partitions;
        consumed with the events topic (same partition count)."""
        return f"{self.namespace}.visibility-queries"

    @property
    def visibility_group(self) -> str:
        """Consumer group of the visibility index (the stream app names it after its
        processor)."""
        return f"{self.namespace}.visibility"

    @property
    def replies(self) -> str:
        """Answers to clients: each client reads one partition and keeps the records keyed by
        its id, so no client reads every other client's replies."""
        return f"{self.namespace}.replies"

    @property
    def dlq(self) -> str:
        return f"{self.namespace}.dlq"

    def owns(self, topic: str) -> bool:
        """Whether `topic` belongs to this namespace (and not to one named like `<ns>.x`)."""
        own = (
            self.engine,
            f"{self.engine}.changelog",
            self.tags,
            self.events,
            self.visibility_queries,
            f"{self.visibility_group}.changelog",
            self.replies,
            self.dlq,
        )
        return topic in own or topic.startswith(f"{self.namespace}.tasks.")

    # -- specs -----------------------------------------------------------------------------------

    def _sized(self) -> dict[str, str]:
        return {"max.message.bytes": str(self.max_message_bytes)}

    def engine_spec(self) -> TopicSpec:
        return TopicSpec(self.engine, self.partitions, self._sized())

    def tags_spec(self) -> TopicSpec:
        return TopicSpec(self.tags, self.partitions, self._sized())

    def events_spec(self) -> TopicSpec:
        return TopicSpec(self.events, self.partitions, self._sized())

    def visibility_queries_spec(self) -> TopicSpec:
        config = {"retention.ms": str(REPLY_RETENTION_MS)}
        return TopicSpec(self.visibility_queries, self.partitions, config, checked=())

    def task_spec(self, service: str) -> TopicSpec:
        return TopicSpec(self.tasks(service), self.partitions, self._sized())

    def replies_spec(self) -> TopicSpec:
        config = {"retention.ms": str(REPLY_RETENTION_MS), **self._sized()}
        return TopicSpec(self.replies, REPLY_PARTITIONS, config, checked=("max.message.bytes",))

    def specs(self, services: list[str]) -> list[TopicSpec]:
        """Every topic a deployment with these services needs before it starts (the engines
        create their changelog and dead-letter topics themselves)."""
        tasks = [self.task_spec(name) for name in dict.fromkeys(services)]
        return [
            self.engine_spec(),
            self.tags_spec(),
            self.events_spec(),
            self.visibility_queries_spec(),
            *tasks,
            self.replies_spec(),
        ]


def _checked(name: str) -> str:
    if not _VALID.fullmatch(name):
        raise ValueError(f"{name!r} cannot be part of a topic name: use [a-zA-Z0-9._-] only")
    return name
