"""Topic administration on the real broker: create, accept matching, refuse mismatching."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from infinitic_streams.kafka.admin import Admin, TopicMismatchError, TopicSpec


def test_topics_are_created_once_and_checked_afterwards(
    kafka_bootstrap: str, namespace: str
) -> None:
    admin = Admin({"bootstrap.servers": kafka_bootstrap})
    ensure_topics = admin.ensure_topics
    compacted = TopicSpec(f"{namespace}.changelog", 4, {"cleanup.policy": "compact"})
    plain = TopicSpec(f"{namespace}.input", 2)
    assert ensure_topics([compacted, plain]) == [compacted.name, plain.name]
    assert ensure_topics([compacted, plain]) == []
    assert admin.topic_partitions((compacted.name, plain.name)) == {
        compacted.name: 4,
        plain.name: 2,
    }

    with pytest.raises(TopicMismatchError, match=r"has 4 partitions but 8 are expected"):
        ensure_topics([TopicSpec(compacted.name, 8)])
    with pytest.raises(TopicMismatchError, match=r"cleanup.policy=delete but cleanup.policy="):
        ensure_topics([TopicSpec(plain.name, 2, {"cleanup.policy": "compact"})])
    with pytest.raises(TopicMismatchError, match=r"do not exist.*Create them first"):
        admin.topic_partitions((f"{namespace}.missing",), timeout=2.0)


def test_a_message_limit_below_the_needed_one_is_raised(
    kafka_bootstrap: str, namespace: str
) -> None:
    admin = Admin({"bootstrap.servers": kafka_bootstrap})
    name = f"{namespace}.old"
    admin.ensure_topics([TopicSpec(name, 1, {"max.message.bytes": "100000"})])
    admin.ensure_topics([TopicSpec(name, 1, {"max.message.bytes": "2000000"})])
    admin.ensure_topics([TopicSpec(name, 1, {"max.message.bytes": "1000"})])  # larger is fine
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    raw = AdminClient({"bootstrap.servers": kafka_bootstrap})
    configs = raw.describe_configs([resource])[resource].result(30)
    assert configs["max.message.bytes"].value == "2000000"
