"""Cluster inspection and topic administration through the Kafka admin API."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec

from infinitic_streams.errors import InfiniticError

# librdkafka reports unreachable brokers through this logger; the application decides what to
# print (the package's logger has a NullHandler).
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Broker:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True)
class ClusterOverview:
    cluster_id: str | None
    controller_id: int
    brokers: list[Broker]
    topics: dict[str, int]  # topic name -> partition count (internal topics excluded)


def describe_cluster(bootstrap: str, timeout: float = 5.0) -> ClusterOverview:
    """Brokers and topics of the cluster at `bootstrap`; raises `KafkaException` if unreachable."""
    config = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 3000}
    admin = AdminClient(config, logger=_log)
    metadata = admin.list_topics(timeout=timeout)
    brokers = sorted(
        (Broker(b.id, b.host, b.port) for b in metadata.brokers.values()), key=lambda b: b.node_id
    )
    topics = {
        name: len(topic.partitions)
        for name, topic in sorted(metadata.topics.items())
        if not name.startswith("__")
    }
    return ClusterOverview(metadata.cluster_id, metadata.controller_id, brokers, topics)


def is_reachable(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a broker at `bootstrap` answers a metadata request within `timeout` seconds."""
    try:
        describe_cluster(bootstrap, timeout)
    except KafkaException:
        return False
    return True


def topic_partitions(
    bootstrap: str, topics: tuple[str, ...], timeout: float = 30.0
) -> dict[str, int]:
    """Partition count of each topic; raises `TopicMismatchError` naming the missing ones."""
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=_log)
    metadata = admin.list_topics(timeout=timeout)
    missing = [t for t in topics if t not in metadata.topics or metadata.topics[t].error]
    if missing:
        raise TopicMismatchError(
            f"Topic(s) {', '.join(missing)} do not exist at {bootstrap}. Create them first "
            "(the topics are part of the deployment; see `infinitic-streams topics create`)."
        )
    return {t: len(metadata.topics[t].partitions) for t in topics}


def partition_bounds(
    admin: AdminClient, topic: str, partitions: list[int], timeout: float = 30.0
) -> dict[int, tuple[int, int]]:
    """(log start offset, last stable offset) of each partition, in two batched requests.

    A dedicated admin client answers at once, where a consumer's watermark query can queue
    behind its own pending fetch on the same broker connection.
    """
    bounds: dict[int, list[int]] = {p: [0, 0] for p in partitions}
    for index, spec in enumerate((OffsetSpec.earliest(), OffsetSpec.latest())):
        futures = admin.list_offsets(
            {TopicPartition(topic, p): spec for p in partitions},
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=timeout,
        )
        for tp, future in futures.items():
            bounds[tp.partition][index] = future.result().offset
    return {p: (low, high) for p, (low, high) in bounds.items()}


def new_admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap}, logger=_log)


class TopicMismatchError(InfiniticError):
    """An existing topic differs from what infinitic-streams needs; the message says how."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the project needs it. `config` entries are checked on existing topics too."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def ensure_topics(bootstrap: str, specs: list[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create the missing topics and check the existing ones; return the names created.

    1. Create every topic of `specs` (replication: the broker's default).
    2. A topic that already exists must have the same partition count and the same values
       for the configs in its spec; otherwise raise `TopicMismatchError` naming the difference.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=_log)
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, config=s.config) for s in specs],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created, existing = [], []
    for spec in specs:
        try:
            futures[spec.name].result(timeout)
            created.append(spec.name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            existing.append(spec)
    if existing:
        _check_existing(admin, existing, timeout)
    return created


def _check_existing(admin: AdminClient, specs: list[TopicSpec], timeout: float) -> None:
    metadata = admin.list_topics(timeout=timeout)
    for spec in specs:
        partitions = len(metadata.topics[spec.name].partitions)
        if partitions != spec.partitions:
            raise TopicMismatchError(
                f"Topic {spec.name} has {partitions} partitions but {spec.partitions} are "
                "expected. Partition counts of co-partitioned topics and changelogs must match "
                "and never change: delete the topic (losing its data) or use another namespace."
            )
    checked = [s for s in specs if s.config]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in checked]
    for spec, resource in zip(checked, resources, strict=True):
        actual = admin.describe_configs([resource])[resource].result(timeout)
        for key, wanted in spec.config.items():
            value = actual[key].value if key in actual else None
            if value != wanted:
                raise TopicMismatchError(
                    f"Topic {spec.name} has {key}={value} but {key}={wanted} is expected. "
                    f"Fix it with kafka-configs --alter --entity-type topics --entity-name "
                    f"{spec.name} --add-config {key}={wanted}, or use another namespace."
                )
