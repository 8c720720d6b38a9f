"""Topic administration on the real broker: create, accept matching, refuse mismatching."""

from __future__ import annotations

import pytest

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
