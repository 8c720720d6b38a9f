"""Topics that appear a moment after they are created, and processes that start in any order:
none of it may fail a client or a worker (the real broker)."""

from __future__ import annotations

import threading
from pathlib import Path

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from infinitic_streams import InfiniticClient, Worker
from infinitic_streams.kafka.admin import Admin
from infinitic_streams.topics import Topics

from .apps.workflows import StepsImpl, Sum


def test_a_client_starts_right_after_its_topics_were_created_elsewhere(
    kafka_bootstrap: str, namespace: str
) -> None:
    kafka = {"bootstrap.servers": kafka_bootstrap}
    admin = AdminClient(kafka)
    for attempt in range(5):
        topics = Topics(f"{namespace}-{attempt}")
        # Another process creates the topics; their metadata is not everywhere yet.
        futures = admin.create_topics([NewTopic(topics.engine, 8), NewTopic(topics.replies, 16)])
        with InfiniticClient(kafka, topics.namespace) as client:
            assert int(client.reply_to.split(":")[0]) in range(16)
        for future in futures.values():
            error = future.exception(30)  # the client may have created them first: fine
            assert error is None or error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_two_processes_create_the_same_topics_at_once(kafka_bootstrap: str, namespace: str) -> None:
    specs = Topics(namespace).specs(["Steps", "Other"])
    results: list[object] = []

    def create() -> None:
        try:
            results.append(Admin({"bootstrap.servers": kafka_bootstrap}).ensure_topics(specs))
        except Exception as error:  # the assertion below shows it
            results.append(error)

    threads = [threading.Thread(target=create) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(r, list) for r in results), results
    created = [name for r in results for name in r]  # type: ignore[attr-defined]
    assert sorted(created) == sorted(s.name for s in specs)  # each created exactly once


def test_a_client_dispatches_before_any_engine_exists(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    kafka = {"bootstrap.servers": kafka_bootstrap}
    with InfiniticClient(kafka, namespace) as client:  # creates the engine topic itself
        handle = client.dispatch(Sum.run, 5)
        worker = Worker(
            kafka,
            namespace,
            services=[StepsImpl()],
            workflows=[Sum],
            state_dir=tmp_path / "state",
        ).start()
        try:
            assert handle.result(timeout=60) == sum(range(5))
        finally:
            worker.stop()
