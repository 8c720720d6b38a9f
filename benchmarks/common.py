"""What the benchmarks (streams.py, workflows.py, scale.py, ...) share: their floors' Kafka
plumbing, a background thread, waiting, percentiles, clean-up, progress notes and the run from
settings to JSON.

The scripts run as `python benchmarks/X.py`, which puts this folder on sys.path: they import
this module as `common`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from infinitic_streams.streams import StreamConfig

# The runtime's defaults (StreamConfig), which the floors copy.
COMMIT_INTERVAL_S = StreamConfig.commit_interval_ms / 1000
COMMIT_EVERY = StreamConfig.commit_every
MAX_POLL_RECORDS = StreamConfig.max_poll_records

S = TypeVar("S")


# -- running things in the background ----------------------------------------------------------


class Background:
    """Runs `target` in a daemon thread and keeps its exception for `check` and `join`."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.error: BaseException | None = None
        self._target = target
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as error:
            self.error = error

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"{self._thread.name} failed: {self.error!r}") from self.error
        if not self._thread.is_alive():
            raise RuntimeError(f"{self._thread.name} stopped early")

    def join(self, timeout: float = 60.0) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"{self._thread.name} did not stop within {timeout} s")
        if self.error is not None:
            raise RuntimeError(f"{self._thread.name} failed: {self.error!r}") from self.error


def wait_until(
    condition: Callable[[], bool],
    what: str,
    check: Callable[[], None],
    timeout: float,
    interval: float = 0.005,
) -> float:
    """Poll `condition` until true; return the time it was seen true. `check` raises if the
    thing being waited for has failed."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout:.0f} s")
        time.sleep(interval)


def nearest_rank(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (0.0 when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# -- the floors' clients: the runtime's exactly-once shape with plain confluent-kafka ----------


def consumer_config(bootstrap: str, group: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The read_committed consumer of StreamApp and ServiceWorker; `extra` overrides."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
        **extra,
    }


def transactional_producer(bootstrap: str, id_prefix: str, extra: dict[str, Any]) -> Producer:
    """A transactional producer, its transactions initialized; `extra` overrides."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"{id_prefix}.{uuid.uuid4()}",
            "transaction.timeout.ms": 60_000,
            **extra,
        }
    )
    producer.init_transactions(60)
    return producer


def check_message(message: Message) -> bool:
    """True for a record; False for an ignorable consumer event; raises on a fatal one."""
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    return False


def commit(consumer: Consumer, producer: Producer, topic: str, offsets: dict[int, int]) -> None:
    """Flush, send the offsets (partition -> next offset of `topic`), commit: the runtime's
    order, and the faster one. Offsets sent before the flush often reach the coordinator while
    it still writes the previous transaction's markers: it answers CONCURRENT_TRANSACTIONS and
    librdkafka retries after retry.backoff.ms (100 ms), which cut a loop's throughput by half
    or more."""
    positions = [TopicPartition(topic, p, o) for p, o in offsets.items()]
    producer.flush(30)
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)


# -- clean-up ----------------------------------------------------------------------------------


def delete_namespace(
    config: dict[str, Any], namespace: str, log: logging.Logger, groups: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Delete the topics of `namespace` and the consumer groups `groups` (default: every group
    whose name starts with the namespace), best effort: report on `log`, do not raise.
    Returns the topics and the groups."""
    admin = AdminClient(config)
    prefix = namespace + "."
    topics = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    if groups is None:
        listed = admin.list_consumer_groups(request_timeout=30).result(60)
        groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
    futures: dict[str, Any] = {}
    if topics:
        futures.update(admin.delete_topics(topics, operation_timeout=30))
    if groups:
        futures.update(admin.delete_consumer_groups(groups, request_timeout=30))
    for name, future in futures.items():
        try:
            future.result(60)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:  # a phase that never ran
                log.warning("could not delete %s: %s", name, error.args[0].str())
    return topics, groups


# -- settings, progress and the run --------------------------------------------------------------


def note(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def argument_parser(description: str) -> argparse.ArgumentParser:
    """The parser of a benchmark's options, with the first of them: --bootstrap."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("INFINITIC_KAFKA") or "127.0.0.1:9092",
        help="the broker (default: $INFINITIC_KAFKA, else 127.0.0.1:9092)",
    )
    return parser


def run_benchmark(
    settings: S,
    verbose: bool,
    run: Callable[[S, Path], dict[str, Any]],
    clean_up: Callable[[S], None],
) -> None:
    """`run` in a temporary work dir, then `clean_up` whatever happened; print the result as
    the last line of stdout, one JSON object."""
    # stderr shows warnings only, unless verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="infinitic-bench-", ignore_cleanup_errors=True) as work:
        try:
            result = run(settings, Path(work))
        finally:
            clean_up(settings)
    note(f"done in {time.monotonic() - started:.1f} s")
    print(json.dumps(result), flush=True)
