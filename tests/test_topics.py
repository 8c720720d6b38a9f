"""Topic administration on the real broker: create, accept matching, refuse mismatching."""

from __future__ import annotations

import pytest

from infinitic_streams.kafka.admin import (
    TopicMismatchError,
    TopicSpec,
    ensure_topics,
    topic_partitions,
)


def test_topics_are_created_once_and_checked_afterwards(
    kafka_bootstrap: str, namespace: str
) -> None:
    compacted = TopicSpec(f"{namespace}.changelog", 4, {"cleanup.policy": "compact"})
    plain = TopicSpec(f"{namespace}.input", 2)
    assert ensure_topics(kafka_bootstrap, [compacted, plain]) == [compacted.name, plain.name]
    assert ensure_topics(kafka_bootstrap, [compacted, plain]) == []
    assert topic_partitions(kafka_bootstrap, (compacted.name, plain.name)) == {
        compacted.name: 4,
        plain.name: 2,
    }

    with pytest.raises(TopicMismatchError, match=r"has 4 partitions but 8 are expected"):
        ensure_topics(kafka_bootstrap, [TopicSpec(compacted.name, 8)])
    with pytest.raises(TopicMismatchError, match=r"cleanup.policy=delete but cleanup.policy="):
        ensure_topics(kafka_bootstrap, [TopicSpec(plain.name, 2, {"cleanup.policy": "compact"})])
    with pytest.raises(TopicMismatchError, match=r"do not exist.*Create them first"):
        topic_partitions(kafka_bootstrap, (f"{namespace}.missing",))
