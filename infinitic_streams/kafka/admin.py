"""Cluster inspection and topic administration through the Kafka admin API.

Every call retries what a moving cluster answers (no leader yet, a topic not in the metadata
yet, a timed-out request) within its timeout, and fails within seconds on refused credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
)

from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.errors import (
    LIBRDKAFKA_LOG,
    ClientErrors,
    KafkaUnavailable,
    Kind,
    classify,
    error_of,
    raise_for,
    retrying,
)
from infinitic_streams.kafka.settings import bootstrap_of, client_config
from infinitic_streams.topics import TopicSpec

__all__ = [
    "Admin",
    "Bounds",
    "ClusterOverview",
    "GroupDescription",
    "GroupMember",
    "TopicMismatchError",
    "TopicSpec",
    "describe_cluster",
    "ensure_topics",
    "is_reachable",
]

# librdkafka reports through this logger; the application decides what to print (the
# package's logger has a NullHandler).
_log = logging.getLogger("infinitic_streams.kafka")
# Configs compared as "at least this much" on existing topics; the others must be equal.
_AT_LEAST = {"max.message.bytes"}


class TopicMismatchError(InfiniticError):
    """A topic is missing, or differs from what infinitic-streams needs; the message says how."""


@dataclass(frozen=True)
class Bounds:
    """Offsets of a partition: its first record, its last stable offset (records before it
    are committed or aborted; one at it belongs to a transaction still open, or committed
    whose markers are not written yet) and its end (the high watermark)."""

    start: int
    stable: int
    end: int

    @property
    def settled(self) -> bool:
        """No transaction is in flight on the partition."""
        return self.stable >= self.end


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


@dataclass(frozen=True)
class GroupMember:
    """A member of a consumer group and the partitions it is assigned."""

    member_id: str
    client_id: str
    host: str
    partitions: tuple[tuple[str, int], ...]  # (topic, partition), sorted


@dataclass(frozen=True)
class GroupDescription:
    group: str
    state: str  # STABLE, PREPARING_REBALANCE, EMPTY, DEAD (no such group), ...
    members: tuple[GroupMember, ...]


class Admin:
    """An admin client with the user's whole settings."""

    def __init__(self, kafka: Mapping[str, Any]) -> None:
        self.where = bootstrap_of(kafka)
        self.errors = ClientErrors(self.where)
        config = client_config(kafka, {"socket.connection.setup.timeout.ms": 5000})
        self._admin = AdminClient({**config, "error_cb": self.errors}, logger=LIBRDKAFKA_LOG)

    def _retrying(self, operation: Any, what: str, timeout: float) -> Any:
        return retrying(operation, what, self.errors, timeout, poll=self._poll)

    def _poll(self) -> None:
        self._admin.poll(0)

    # -- the cluster -----------------------------------------------------------------------------

    def overview(self, timeout: float = 5.0) -> ClusterOverview:
        """Brokers and topics; `KafkaUnavailable` if no broker answers within `timeout`."""
        metadata = self._retrying(
            lambda t: self._admin.list_topics(timeout=t), "reading the cluster metadata", timeout
        )
        brokers = sorted(
            (Broker(b.id, b.host, b.port) for b in metadata.brokers.values()),
            key=lambda b: b.node_id,
        )
        topics = {
            name: len(topic.partitions)
            for name, topic in sorted(metadata.topics.items())
            if not name.startswith("__")
        }
        return ClusterOverview(metadata.cluster_id, metadata.controller_id, brokers, topics)

    def group_members(self, group: str, timeout: float = 5.0) -> int:
        """How many members the consumer group has now."""

        def describe(attempt_timeout: float) -> int:
            futures = self._admin.describe_consumer_groups([group], request_timeout=attempt_timeout)
            return len(futures[group].result(timeout=attempt_timeout + 1).members)

        return self._retrying(describe, f"describing group {group}", timeout)  # type: ignore[no-any-return]

    def list_groups(self, prefix: str = "", timeout: float = 5.0) -> list[str]:
        """The consumer groups whose id starts with `prefix`, sorted."""

        def listing(attempt_timeout: float) -> list[str]:
            result = self._admin.list_consumer_groups(request_timeout=attempt_timeout)
            groups = result.result(timeout=attempt_timeout + 1)
            if groups.errors:  # a broker did not answer: ask them all again
                first = groups.errors[0]
                raise first if isinstance(first, KafkaException) else KafkaException(first)
            return [g.group_id for g in groups.valid]

        groups = self._retrying(listing, "listing consumer groups", timeout)
        return sorted(g for g in groups if g.startswith(prefix))

    def describe_groups(
        self, groups: list[str], timeout: float = 5.0
    ) -> dict[str, GroupDescription]:
        """State and members (with their assigned partitions) of each group; a group that does
        not exist is DEAD with no member."""
        if not groups:
            return {}

        def describe(attempt_timeout: float) -> dict[str, GroupDescription]:
            futures = self._admin.describe_consumer_groups(
                list(groups), request_timeout=attempt_timeout
            )
            return {g: _group(g, futures[g].result(timeout=attempt_timeout + 1)) for g in groups}

        return self._retrying(describe, f"describing groups {', '.join(groups)}", timeout)  # type: ignore[no-any-return]

    def committed_offsets(self, group: str, timeout: float = 5.0) -> dict[tuple[str, int], int]:
        """The offsets `group` committed, by (topic, partition) (none for an unknown group)."""

        def committed(attempt_timeout: float) -> dict[tuple[str, int], int]:
            request = [ConsumerGroupTopicPartitions(group)]
            futures = self._admin.list_consumer_group_offsets(
                request, request_timeout=attempt_timeout
            )
            answer = futures[group].result(timeout=attempt_timeout + 1)
            found: dict[tuple[str, int], int] = {}
            for tp in answer.topic_partitions or []:
                if tp.error is not None:
                    raise KafkaException(tp.error)
                if tp.offset >= 0:
                    found[(tp.topic, tp.partition)] = tp.offset
            return found

        return self._retrying(committed, f"reading the offsets of group {group}", timeout)  # type: ignore[no-any-return]

    def end_offsets(
        self, partitions: list[tuple[str, int]], timeout: float = 5.0
    ) -> dict[tuple[str, int], int]:
        """The last stable offset (what a read_committed consumer reaches) of each
        (topic, partition), in one batched request."""
        if not partitions:
            return {}

        def ends(attempt_timeout: float) -> dict[tuple[str, int], int]:
            futures = self._admin.list_offsets(
                {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=attempt_timeout,
            )
            return {
                (tp.topic, tp.partition): future.result(attempt_timeout + 1).offset
                for tp, future in futures.items()
            }

        return self._retrying(ends, "reading end offsets", timeout)  # type: ignore[no-any-return]

    # -- topics ----------------------------------------------------------------------------------

    def topic_partitions(self, topics: tuple[str, ...], timeout: float = 15.0) -> dict[str, int]:
        """Partition count of each topic, once every one is in the metadata with a leader for
        each partition; `TopicMismatchError` naming the missing ones after `timeout`."""
        missing, metadata = self._wait_visible(topics, timeout)
        if missing:
            raise TopicMismatchError(
                f"Topic(s) {', '.join(missing)} do not exist at {self.where}. Create them "
                "first: they are part of the deployment (`infinitic-streams topics create`)."
            )
        return {t: len(metadata.topics[t].partitions) for t in topics}

    def ensure_topics(self, specs: list[TopicSpec], timeout: float = 30.0) -> list[str]:
        """Create the missing topics, wait until all are visible, check the existing ones;
        return the names created.

        A topic that already exists must have the spec's partition count and its checked
        configs; a `max.message.bytes` below the spec's is raised (topics made by an older
        version). Otherwise `TopicMismatchError` names the difference and the fix."""
        deadline = time.monotonic() + timeout
        created, existing = self._create(specs, timeout)
        names = tuple(s.name for s in specs)
        missing, metadata = self._wait_visible(names, max(0.0, deadline - time.monotonic()))
        if missing:
            raise KafkaUnavailable(
                f"Topic(s) {', '.join(missing)} were created at {self.where} but are still "
                f"not served by a leader after {timeout:g} s: check the brokers' health."
            )
        if existing:
            counts = {s.name: len(metadata.topics[s.name].partitions) for s in existing}
            self._check_existing(existing, counts, max(1.0, deadline - time.monotonic()))
        return created

    def _create(self, specs: list[TopicSpec], timeout: float) -> tuple[list[str], list[TopicSpec]]:
        created: list[str] = []
        existing: list[TopicSpec] = []
        pending = list(specs)
        deadline = time.monotonic() + timeout

        def create(attempt_timeout: float) -> None:
            futures = self._admin.create_topics(
                [NewTopic(s.name, s.partitions, config=dict(s.config)) for s in pending],
                operation_timeout=attempt_timeout,
                request_timeout=attempt_timeout,
            )
            retry: list[TopicSpec] = []
            first_retriable: KafkaException | None = None
            for spec in pending:
                try:
                    futures[spec.name].result(attempt_timeout + 5)
                    created.append(spec.name)
                except KafkaException as exception:
                    error = error_of(exception)
                    if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                        existing.append(spec)
                    elif classify(error) is Kind.RETRIABLE:
                        retry.append(spec)
                        first_retriable = first_retriable or exception
                    else:
                        raise_for(error, f"creating topic {spec.name}", self.where)
            pending[:] = retry
            if first_retriable is not None:
                raise first_retriable

        self._retrying(create, "creating topics", max(0.1, deadline - time.monotonic()))
        return created, existing

    def delete_topics(self, names: list[str], timeout: float = 30.0) -> list[str]:
        """Delete these topics (their data is lost); return those deleted (a topic already
        gone is not an error)."""
        deleted: list[str] = []
        pending = list(names)

        def delete(attempt_timeout: float) -> None:
            futures = self._admin.delete_topics(
                pending, operation_timeout=attempt_timeout, request_timeout=attempt_timeout
            )
            retry: list[str] = []
            first_retriable: KafkaException | None = None
            for name in pending:
                try:
                    futures[name].result(attempt_timeout + 5)
                    deleted.append(name)
                except KafkaException as exception:
                    error = error_of(exception)
                    if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        continue  # gone already (or deleted by the attempt that timed out)
                    if classify(error) is not Kind.RETRIABLE:
                        raise_for(error, f"deleting topic {name}", self.where)
                    retry.append(name)
                    first_retriable = first_retriable or exception
            pending[:] = retry
            if first_retriable is not None:
                raise first_retriable

        if pending:
            self._retrying(delete, "deleting topics", timeout)
        return deleted

    def _wait_visible(self, topics: tuple[str, ...], timeout: float) -> tuple[list[str], Any]:
        """Wait until every topic has a leader for each partition; return those still not,
        and the last metadata read."""
        deadline = time.monotonic() + timeout
        while True:
            metadata = self._retrying(
                lambda t: self._admin.list_topics(timeout=t),
                "reading topic metadata",
                max(1.0, deadline - time.monotonic()),
            )
            missing = [t for t in topics if not _served(metadata, t)]
            if not missing or time.monotonic() >= deadline:
                return missing, metadata
            time.sleep(0.1)

    def _check_existing(
        self, specs: list[TopicSpec], counts: dict[str, int], timeout: float
    ) -> None:
        for spec in specs:
            if counts[spec.name] != spec.partitions and not spec.any_partitions:
                raise TopicMismatchError(
                    f"Topic {spec.name} has {counts[spec.name]} partitions but "
                    f"{spec.partitions} are expected. Partition counts of co-partitioned topics "
                    "and changelogs must match and never change: delete the topic (losing its "
                    "data) or use another namespace."
                )
        checked = [s for s in specs if s.checked_config()]
        if not checked:
            return
        resources = [ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in checked]

        def describe(attempt_timeout: float) -> dict[str, dict[str, Any]]:
            futures = self._admin.describe_configs(resources, request_timeout=attempt_timeout)
            return {r.name: futures[r].result(attempt_timeout + 1) for r in resources}

        actual = self._retrying(describe, "reading topic configs", timeout)
        for spec in checked:
            for key, wanted in spec.checked_config().items():
                entry = actual[spec.name].get(key)
                value = entry.value if entry is not None else None
                if _config_fits(key, value, wanted):
                    continue
                if key in _AT_LEAST and self._raise_config(spec.name, key, value, wanted):
                    continue
                need = f"{key}>={wanted}" if key in _AT_LEAST else f"{key}={wanted}"
                raise TopicMismatchError(
                    f"Topic {spec.name} has {key}={value} but {need} is needed. Fix it with "
                    f"kafka-configs.sh --alter --entity-type topics --entity-name "
                    f"{spec.name} --add-config {key}={wanted}, or use another namespace."
                )

    def _raise_config(self, topic: str, key: str, value: str | None, wanted: str) -> bool:
        """Raise a limit of a topic created before (e.g. by an older version); False if the
        cluster refuses."""
        entry = ConfigEntry(key, wanted, incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])

        def alter(attempt_timeout: float) -> None:
            futures = self._admin.incremental_alter_configs(
                [resource], request_timeout=attempt_timeout
            )
            futures[resource].result(attempt_timeout + 1)

        try:
            self._retrying(alter, f"raising {key} of {topic}", 30.0)
        except InfiniticError as error:
            _log.warning("cannot raise %s of %s to %s: %s", key, topic, wanted, error)
            return False
        _log.warning("raised %s of topic %s from %s to %s", key, topic, value, wanted)
        return True

    def partition_bounds(
        self, topic: str, partitions: list[int], timeout: float = 60.0
    ) -> dict[int, Bounds]:
        """The `Bounds` of each partition, in three batched requests.

        A dedicated admin client answers at once, where a consumer's watermark query can queue
        behind its own pending fetch on the same broker connection."""

        def bounds(attempt_timeout: float) -> dict[int, Bounds]:
            try:
                return self._bounds(topic, partitions, attempt_timeout)
            except KafkaException:
                # After a leader moved, librdkafka's ListOffsets keeps asking the old leader
                # (answers: an old leader epoch, or no offset) until its next periodic
                # metadata refresh, minutes later: refresh now, then retry.
                self._admin.list_topics(topic, timeout=attempt_timeout)
                raise

        return self._retrying(bounds, f"reading the offsets of {topic}", timeout)  # type: ignore[no-any-return]

    def _bounds(self, topic: str, partitions: list[int], timeout: float) -> dict[int, Bounds]:
        found: dict[int, list[int]] = {p: [] for p in partitions}
        for spec, isolation in (
            (OffsetSpec.earliest(), IsolationLevel.READ_COMMITTED),
            (OffsetSpec.latest(), IsolationLevel.READ_COMMITTED),
            (OffsetSpec.latest(), IsolationLevel.READ_UNCOMMITTED),
        ):
            futures = self._admin.list_offsets(
                {TopicPartition(topic, p): spec for p in partitions},
                isolation_level=isolation,
                request_timeout=timeout,
            )
            for tp, future in futures.items():
                offset = future.result(timeout + 1).offset
                if offset < 0:
                    raise KafkaException(
                        KafkaError(
                            KafkaError.LEADER_NOT_AVAILABLE,
                            f"no offset known for {topic}[{tp.partition}] yet",
                            retriable=True,
                        )
                    )
                found[tp.partition].append(offset)
        return {p: Bounds(*offsets) for p, offsets in found.items()}


def _served(metadata: Any, topic: str) -> bool:
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return False
    return all(p.leader >= 0 and p.error is None for p in found.partitions.values())


def _group(group: str, description: Any) -> GroupDescription:
    members = []
    for member in description.members or []:
        assigned = member.assignment.topic_partitions if member.assignment else []
        partitions = tuple(sorted((tp.topic, tp.partition) for tp in assigned))
        members.append(GroupMember(member.member_id, member.client_id, member.host, partitions))
    state = getattr(description.state, "name", str(description.state))
    return GroupDescription(group, state, tuple(sorted(members, key=lambda m: m.partitions)))


def _config_fits(key: str, value: str | None, wanted: str) -> bool:
    if key in _AT_LEAST and value is not None and value.isdigit():
        return int(value) >= int(wanted)
    return value == wanted


# -- one-call helpers (each builds its own admin client) ---------------------------------------


def describe_cluster(kafka: Mapping[str, Any], timeout: float = 5.0) -> ClusterOverview:
    """Brokers and topics of the cluster; `KafkaUnavailable` when no broker answers within
    `timeout`, `KafkaAuthError` when it refuses the credentials."""
    return Admin(kafka).overview(timeout)


def is_reachable(kafka: Mapping[str, Any], timeout: float = 5.0) -> bool:
    """True when a broker answers a metadata request within `timeout` seconds (refused
    credentials raise `KafkaAuthError`: the broker is there, the settings are wrong)."""
    try:
        describe_cluster(kafka, timeout)
    except KafkaUnavailable:
        return False
    return True


def ensure_topics(
    kafka: Mapping[str, Any], specs: list[TopicSpec], timeout: float = 30.0
) -> list[str]:
    """`Admin.ensure_topics` with a client of its own."""
    return Admin(kafka).ensure_topics(specs, timeout)
