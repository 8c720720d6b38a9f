"""The stream runtime's guarantees on the real broker, with apps in subprocesses that the tests
kill: exactly-once under crashes, restore, rebalance, timers and poison input."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from confluent_kafka import Producer

from infinitic_streams.kafka.admin import TopicSpec, ensure_topics

from .apps.processors import PARTITIONS
from .kafka_support import AppProcess, read_dead_letters, read_topic, wait_caught_up


def create_topics(bootstrap: str, namespace: str, *names: str) -> None:
    ensure_topics(
        {"bootstrap.servers": bootstrap}, [TopicSpec(f"{namespace}.{n}", PARTITIONS) for n in names]
    )


def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], per_second: float = 0
) -> None:
    """Produce `records` in order, at about `per_second` (0: as fast as possible)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    started = time.monotonic()
    for i, (key, value) in enumerate(records):
        producer.produce(topic, value, key)
        if per_second and i % 100 == 99:
            producer.poll(0)
            time.sleep(max(0.0, started + (i + 1) / per_second - time.monotonic()))
    assert producer.flush(30) == 0


def increments(keys: list[bytes], count: int, rng: random.Random) -> list[tuple[bytes, bytes]]:
    return [(rng.choice(keys), b"1") for _ in range(count)]


def assert_exactly_once(bootstrap: str, namespace: str, sent: list[tuple[bytes, bytes]]) -> None:
    """Per key, the emitted totals are exactly 1, 2, ..., n (nothing lost, nothing doubled),
    and the state in the changelog ends at n."""
    expected = Counter(key for key, _ in sent)
    emitted: dict[bytes, list[int]] = defaultdict(list)
    for key, value in read_topic(bootstrap, f"{namespace}.counts"):
        emitted[key].append(int(value))
    for key, n in expected.items():
        assert emitted[key] == list(range(1, n + 1)), f"key {key!r}"
    assert set(emitted) == set(expected)
    final = {key: value for key, value in read_topic(bootstrap, f"{namespace}.counter.changelog")}
    assert {key: int(final[b"state\x00" + key]) for key in expected} == dict(expected)


def test_exactly_once_through_three_kill_9(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    create_topics(kafka_bootstrap, namespace, "increments", "counts")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    sent = increments([f"k{i}".encode() for i in range(100)], 20_000, rng)
    feeder = threading.Thread(
        target=produce, args=(kafka_bootstrap, f"{namespace}.increments", sent, 2500)
    )
    feeder.start()
    state = tmp_path / "state"
    app = AppProcess("counter", kafka_bootstrap, namespace, state)
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 3.0))
        app.kill()
        app = AppProcess("counter", kafka_bootstrap, namespace, state)
    feeder.join()
    wait_caught_up(kafka_bootstrap, f"{namespace}.counter", f"{namespace}.increments", app=app)
    assert app.terminate() == 0, app.log()
    assert_exactly_once(kafka_bootstrap, namespace, sent)


def test_restore_from_changelog_full_and_tail(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    create_topics(kafka_bootstrap, namespace, "increments", "counts")
    rng = random.Random(7)
    keys = [f"k{i}".encode() for i in range(20)]
    changelog = f"{namespace}.counter.changelog"
    sent: list[tuple[bytes, bytes]] = []

    def run(state: Path, batch: list[tuple[bytes, bytes]]) -> float:
        """Process `batch` with an app on `state`; return the records it restored."""
        app = AppProcess("counter", kafka_bootstrap, namespace, state)
        produce(kafka_bootstrap, f"{namespace}.increments", batch)
        sent.extend(batch)
        wait_caught_up(kafka_bootstrap, f"{namespace}.counter", f"{namespace}.increments", app=app)
        restored = app.metric("infinitic_restore_records_total")
        assert app.terminate() == 0, app.log()
        assert_exactly_once(kafka_bootstrap, namespace, sent)
        return restored

    first, second = tmp_path / "first", tmp_path / "second"
    assert run(first, increments(keys, 1000, rng)) == 0  # nothing to restore yet
    after_first = len(read_topic(kafka_bootstrap, changelog))
    # Another instance, without local state, restores the whole changelog.
    assert run(second, increments(keys, 1000, rng)) == after_first
    after_second = len(read_topic(kafka_bootstrap, changelog))
    # The first instance kept its state: it restores only what the second one wrote.
    assert run(first, [(key, b"1") for key in keys]) == after_second - after_first
    after_third = len(read_topic(kafka_bootstrap, changelog))
    # State directory deleted: everything is restored again, and the answers stay exact.
    for path in first.rglob("*"):
        if path.is_file():
            path.unlink()
    assert run(first, [(key, b"1") for key in keys]) == after_third


def test_rebalance_moves_partitions_with_their_state(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    create_topics(kafka_bootstrap, namespace, "increments", "counts")
    sent = increments([f"k{i}".encode() for i in range(50)], 10_000, random.Random(3))
    feeder = threading.Thread(
        target=produce, args=(kafka_bootstrap, f"{namespace}.increments", sent, 2000)
    )
    first = AppProcess("counter", kafka_bootstrap, namespace, tmp_path / "a")
    second = AppProcess("counter", kafka_bootstrap, namespace, tmp_path / "b")
    feeder.start()
    time.sleep(2.0)
    first.wait_for_metric("infinitic_messages_processed_total", above=0)
    assert first.terminate() == 0, first.log()  # mid-stream: the second takes over
    feeder.join()
    wait_caught_up(kafka_bootstrap, f"{namespace}.counter", f"{namespace}.increments", app=second)
    assert "partitions assigned: 0-7" in second.log()
    assert second.metric("infinitic_restore_records_total") > 0
    assert second.terminate() == 0, second.log()
    assert_exactly_once(kafka_bootstrap, namespace, sent)


def fired_timers(bootstrap: str, namespace: str) -> dict[bytes, list[tuple[int, int]]]:
    fired: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for key, value in read_topic(bootstrap, f"{namespace}.fired"):
        due, at = value.split(b",")
        fired[key].append((int(due), int(at)))
    return fired


def test_timers_fire_exactly_once_across_kill_9(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    create_topics(kafka_bootstrap, namespace, "timer-requests", "fired")
    rng = random.Random(11)
    soon = [(f"soon-{i}".encode(), str(rng.randint(1000, 3000)).encode()) for i in range(40)]
    later = [(f"later-{i}".encode(), str(rng.randint(14000, 16000)).encode()) for i in range(40)]
    requests = f"{namespace}.timer-requests"
    app = AppProcess("timers", kafka_bootstrap, namespace, tmp_path / "state")
    app.wait_for_log("partitions assigned")
    produce(kafka_bootstrap, requests, soon + later)
    wait_caught_up(kafka_bootstrap, f"{namespace}.timers", requests)
    app.kill()  # every timer is scheduled; on a loaded machine a few "soon" ones fired already
    # The restart waits for the dead member's session to expire (6 s): the "soon" timers fall
    # due while nothing runs; the "later" ones fall due after the restart. Whichever side of
    # the kill a timer fired on, it fired once.
    app = AppProcess("timers", kafka_bootstrap, namespace, tmp_path / "state")
    deadline = time.monotonic() + 60
    while len(fired_timers(kafka_bootstrap, namespace)) < 80 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # a duplicate would show up now
    assert app.terminate() == 0, app.log()
    fired = fired_timers(kafka_bootstrap, namespace)
    assert sorted(fired) == sorted(key for key, _ in soon + later)
    for key, events in fired.items():
        assert len(events) == 1, f"timer {key!r} fired {len(events)} times"
        due, at = events[0]
        assert at >= due, f"timer {key!r} fired before its due time"


def test_poison_input_goes_to_the_dlq_and_processing_continues(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    create_topics(kafka_bootstrap, namespace, "increments", "counts")
    topic = f"{namespace}.increments"
    good = [(b"k1", b"1")] * 5
    poison = [(b"k1", b"\xff\x00not a number"), (None, b"1")]  # undecodable; process() fails
    app = AppProcess("counter", kafka_bootstrap, namespace, tmp_path / "state")
    produce(kafka_bootstrap, topic, good[:2] + poison + good[2:])
    wait_caught_up(kafka_bootstrap, f"{namespace}.counter", topic, app=app)
    dead_letters = app.metric("infinitic_dead_letters_total")
    assert app.terminate() == 0, app.log()
    assert dead_letters == 2
    assert_exactly_once(kafka_bootstrap, namespace, good)

    letters = read_dead_letters(kafka_bootstrap, namespace)
    by_value = {letter.value: letter for letter in letters}
    undecodable = by_value[b"\xff\x00not a number"]
    assert undecodable.reason.startswith("undecodable input: ValueError")
    assert (undecodable.source_topic, undecodable.key) == (topic, b"k1")
    assert undecodable.source_offset == 2
    failed = by_value[b"1"]
    assert "counter failed on this input" in failed.reason
    assert "AssertionError" in failed.reason


def test_a_fenced_producer_is_renewed_and_nothing_is_doubled(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    """Another producer takes the app's transactional.id (what a coordinator does to a
    transaction left open past its timeout): the app starts a new producer and goes on."""
    create_topics(kafka_bootstrap, namespace, "increments", "counts")
    rng = random.Random(11)
    keys = [f"k{i}".encode() for i in range(10)]
    before, after = increments(keys, 1000, rng), increments(keys, 1000, rng)
    state = tmp_path / "state"
    app = AppProcess("counter", kafka_bootstrap, namespace, state)
    produce(kafka_bootstrap, f"{namespace}.increments", before)
    wait_caught_up(kafka_bootstrap, f"{namespace}.counter", f"{namespace}.increments", app=app)
    fenced_id = (state / namespace / "counter" / "transactional.id").read_text().strip()
    intruder = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": fenced_id})
    intruder.init_transactions(30)  # bumps the epoch: the app's producer is fenced
    produce(kafka_bootstrap, f"{namespace}.increments", after)
    wait_caught_up(kafka_bootstrap, f"{namespace}.counter", f"{namespace}.increments", app=app)
    assert "producer fenced, starting a new one" in app.log()
    assert app.terminate() == 0, app.log()
    assert_exactly_once(kafka_bootstrap, namespace, before + after)
