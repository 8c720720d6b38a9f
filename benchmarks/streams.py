"""Throughput of the stream runtime, next to a raw-Kafka floor, and its restore speed.

    python benchmarks/streams.py [--bootstrap ADDR] [--quick] [--messages N] [--keys K]
                                 [--restore-keys R] [--producer KEY=VALUE ...] [--verbose]

Everything runs in this process, one measurement at a time, against one broker (default:
$INFINITIC_KAFKA, else 127.0.0.1:9092), in a fresh namespace `bench-<uuid8>` whose topics and
consumer groups are deleted at the end.

1. runtime: a counting processor (state per key += value, emit the new total; the logic of
   tests/apps/processors.Counter) run by `StreamApp`, exactly-once, default commit settings,
   over N pre-produced messages with K keys on an 8-partition input topic.
2. floor: a plain confluent-kafka loop of the same exactly-once shape over the same N messages
   (another copy of the input): a read_committed consumer, one transactional producer with
   the runtime's settings, one output per input, no state; every 100 ms or 1,000 messages,
   and whenever the input goes idle: flush, send the offsets to the transaction, commit. It
   is the least a Python process can do for the same exactly-once output, so
   `ratio_to_floor` (runtime / floor) shows what the runtime's own work costs.
3. restore: the runtime's app goes on with R more messages of R distinct keys, produced in one
   transaction so that the app sees them all at once (its rate on them, every key new to the
   store, is printed as `seed`); that puts R more records in the changelog. The app stops. A
   new StreamApp on an empty state directory restores every changelog partition.

Runtime and floor are timed from the first message processed to the moment the consumer
group's committed offsets, polled from another client, reach the end of every input partition:
that is, until the last output is committed, not merely computed. Each is measured once:
expect +-25% between runs on a small machine (some transactions stall for 20-100 ms).

Restore is timed by the new app's own metrics, read once every partition is restored:
`infinitic_restore_records` over `infinitic_restore_seconds`, the wall-clock time its main loop
spent restoring (all partitions together).

Progress goes to stderr; stdout gets a table (phase, messages, seconds, msgs/s) and, as its
last line, one JSON object:
    runtime_msgs_per_s, floor_msgs_per_s   messages per second of each loop, end to end
    ratio_to_floor                         runtime / floor (1.0: the runtime costs nothing)
    restore_records_per_s                  changelog records restored per second (wall clock)
    restore_records, restore_seconds, seed_msgs_per_s, runtime_seconds, floor_seconds
    messages, keys, restore_keys, partitions, quick, producer, namespace, bootstrap
                                           the run's settings
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from common import (
    COMMIT_EVERY,
    COMMIT_INTERVAL_S,
    MAX_POLL_RECORDS,
    Background,
    argument_parser,
    check_message,
    commit,
    consumer_config,
    delete_namespace,
    note,
    run_benchmark,
    transactional_producer,
    wait_until,
)
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from infinitic_streams.kafka.admin import TopicSpec, ensure_topics
from infinitic_streams.streams import Context, Processor, Record, StreamApp, StreamConfig

PARTITIONS = 8
# Both loops run at 50k-150k msgs/s on a 2-core machine: 25k messages would last a quarter of
# a second, too short to average out the transactions that stall for 20-100 ms.
QUICK = {"messages": 200_000, "keys": 1_000, "restore_keys": 200_000}
FULL = {"messages": 500_000, "keys": 1_000, "restore_keys": 500_000}
TIMEOUT_S = 300.0  # for any single wait: a stuck phase fails instead of hanging

Ends = dict[int, int]  # partition -> the offset after its last input record

log = logging.getLogger("benchmarks.streams")


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    namespace: str
    messages: int
    keys: int
    restore_keys: int
    quick: bool
    # librdkafka settings for the transactional producers of both the runtime and the floor
    producer: dict[str, str]

    def topic(self, suffix: str) -> str:
        return f"{self.namespace}.{suffix}"

    @property
    def group(self) -> str:
        """The consumer group of the runtime's app (StreamApp names it namespace.processor)."""
        return self.topic(Counter.name)


@dataclass(frozen=True)
class Measurement:
    phase: str
    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


# -- the workloads ------------------------------------------------------------------------------


class Counter(Processor):
    """tests/apps/processors.Counter, noting when it processed its first message."""

    name = "counter"

    def __init__(self, namespace: str) -> None:
        self.input_topics = (f"{namespace}.increments",)
        self.output = f"{namespace}.counts"
        self.first_at: float | None = None

    def decode(self, key: bytes | None, value: bytes | None) -> int:
        return int(value or b"")

    def process(self, ctx: Context, record: Record) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        assert record.key is not None
        total = int(ctx.get(record.key) or b"0") + record.value
        ctx.put(record.key, str(total).encode())
        ctx.emit(self.output, record.key, str(total).encode())


class FloorLoop:
    """consume -> produce, exactly once, no state: the runtime's loop minus the runtime.
    Runs in a thread from creation until `stop`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.group = settings.topic("floor")
        self.topic = settings.topic("floor-in")
        self.processed = 0
        self.first_at: float | None = None
        self._stop = threading.Event()
        self.thread = Background(self._run, "floor")
        self.check = self.thread.check

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()

    def _run(self) -> None:
        bootstrap = self.settings.bootstrap
        producer = transactional_producer(bootstrap, self.group, self.settings.producer)
        extra = {"partition.assignment.strategy": "range"}
        consumer = Consumer(consumer_config(bootstrap, self.group, extra))
        consumer.subscribe([self.topic])
        try:
            self._loop(consumer, producer)
        finally:
            consumer.close()
            producer.flush(10)

    def _loop(self, consumer: Consumer, producer: Producer) -> None:
        output = self.settings.topic("floor-out")
        offsets: dict[int, int] = {}  # partition -> next offset, in the open transaction
        count, opened_at = 0, 0.0
        while not self._stop.is_set():
            messages = consumer.consume(MAX_POLL_RECORDS, 0.0 if offsets else 0.1)
            for message in messages:
                if not check_message(message):
                    continue
                if not offsets:
                    producer.begin_transaction()
                    opened_at = time.monotonic()
                    if self.first_at is None:
                        self.first_at = opened_at
                producer.produce(output, message.value(), message.key())
                offsets[message.partition()] = message.offset() + 1
                count += 1
                self.processed += 1
            elapsed = time.monotonic() - opened_at
            if offsets and (not messages or count >= COMMIT_EVERY or elapsed >= COMMIT_INTERVAL_S):
                commit(consumer, producer, self.topic, offsets)
                offsets.clear()
                count = 0


# -- running things in the background ----------------------------------------------------------


class RunningApp:
    """The runtime's loop: a StreamApp running in a thread, with its own metrics registry."""

    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.registry = CollectorRegistry()
        self.processor = Counter(settings.namespace)
        self.group = settings.group
        self.topic = self.processor.input_topics[0]
        config = StreamConfig(
            kafka={"bootstrap.servers": settings.bootstrap},
            namespace=settings.namespace,
            state_dir=state_dir,
            producer=dict(settings.producer),
        )
        self.app = StreamApp(self.processor, config, self.registry)
        self.thread = Background(self.app.run, f"stream-app-{state_dir.name}")
        self.check = self.thread.check

    def metric(self, name: str) -> float:
        labels = {"namespace": self.app.config.namespace, "processor": Counter.name}
        value = self.registry.get_sample_value(name, labels)
        return value or 0.0

    @property
    def processed(self) -> int:
        return int(self.metric("infinitic_messages_processed_total"))

    @property
    def first_at(self) -> float | None:
        return self.processor.first_at

    def restored(self) -> bool:
        """Every partition assigned and restored (its restore metrics are final then)."""
        return len(self.app.partitions_ready()) == PARTITIONS

    def stop(self) -> None:
        self.app.stop()
        self.thread.join()


# -- topics and inputs -------------------------------------------------------------------------


def keyed_records(count: int, keys: int, prefix: str) -> Iterable[tuple[bytes, bytes]]:
    """`count` increments of 1 over `keys` keys, round robin."""
    return ((f"{prefix}{i % keys}".encode(), b"1") for i in range(count))


def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]], atomic: bool = False
) -> Ends:
    """Produce `records`; return the offset after the last one in each partition.

    `atomic`: in one transaction, so that a running app (read_committed) sees none of them
    until all are there. Its commit marker then takes the partitions' last offset, which no
    consumer group ever commits: hence offsets from delivery reports, not watermarks.
    """
    config: dict[str, object] = {"bootstrap.servers": bootstrap, "linger.ms": 20}
    if atomic:
        config["transactional.id"] = f"{topic}.feeder.{uuid.uuid4()}"
    producer = Producer(config)
    ends: Ends = {}
    errors: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error.str())
        else:
            ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)

    if atomic:
        producer.init_transactions(60)
        producer.begin_transaction()
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) > 0 or errors:
        raise RuntimeError(f"could not produce to {topic}: {errors[:1]}")
    if atomic:
        producer.commit_transaction(60)
    return ends


def create_topics(settings: Settings) -> None:
    ensure_topics(
        {"bootstrap.servers": settings.bootstrap},
        [
            TopicSpec(settings.topic(suffix), PARTITIONS)
            for suffix in ("increments", "counts", "floor-in", "floor-out")
        ],
    )


def produce_inputs(settings: Settings) -> tuple[Ends, Ends]:
    """The same N messages for the runtime and for the floor, before either starts."""

    def inputs(suffix: str) -> Ends:
        records = keyed_records(settings.messages, settings.keys, "k")
        return produce(settings.bootstrap, settings.topic(suffix), records)

    return inputs("increments"), inputs("floor-in")


def clean_up(settings: Settings) -> None:
    """Delete the run's topics and consumer groups (best effort: report, do not raise)."""
    config = {"bootstrap.servers": settings.bootstrap}
    groups = [settings.group, settings.topic("floor")]
    topics, _ = delete_namespace(config, settings.namespace, log, groups)
    note(f"deleted {len(topics)} topics and the consumer groups of {settings.namespace}")


# -- the measurements --------------------------------------------------------------------------


def measure(
    bootstrap: str, phase: str, loop: RunningApp | FloorLoop, ends: Ends, total: int
) -> Measurement:
    """Wait until `loop` processed `total` messages in all, then until its consumer group's
    committed offsets, polled from another client, reach `ends`; time it from the loop's first
    message."""
    wait_until(lambda: loop.processed >= total, f"{phase}: processing", loop.check, TIMEOUT_S)
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": loop.group})
    partitions = [TopicPartition(loop.topic, p) for p in sorted(ends)]

    def committed() -> bool:
        offsets = watcher.committed(partitions, timeout=30)
        return all(tp.offset >= ends[tp.partition] for tp in offsets)

    try:
        done_at = wait_until(committed, f"{phase}: commits", loop.check, TIMEOUT_S, interval=0.02)
    finally:
        watcher.close()
    assert loop.first_at is not None
    return Measurement(phase, total, done_at - loop.first_at)


def seed_changelog(settings: Settings, app: RunningApp, ends: Ends) -> Measurement:
    """Send `restore_keys` messages of distinct keys through the running app, so that the
    changelog holds that many more records; time it like the runtime."""
    app.processor.first_at = None
    records = keyed_records(settings.restore_keys, settings.restore_keys, "r")
    seed_ends = produce(settings.bootstrap, settings.topic("increments"), records, atomic=True)
    total = settings.messages + settings.restore_keys
    measured = measure(settings.bootstrap, "seed", app, {**ends, **seed_ends}, total)
    return replace(measured, messages=settings.restore_keys)


def check_runtime(app: RunningApp, expected: int) -> None:
    """Warn when the run did not go straight through: aborts redo work and skew the numbers."""
    aborts = app.metric("infinitic_transactions_aborted_total")
    dead = app.metric("infinitic_dead_letters_total")
    if aborts or dead or app.processed != expected:
        log.warning(
            "runtime: %d processed for %d inputs, %d aborts, %d dead letters",
            app.processed,
            expected,
            aborts,
            dead,
        )


def measure_floor(settings: Settings, ends: Ends) -> Measurement:
    loop = FloorLoop(settings)
    try:
        return measure(settings.bootstrap, "floor", loop, ends, settings.messages)
    finally:
        loop.stop()


def measure_restore(settings: Settings, state_dir: Path) -> Measurement:
    """Restore the whole changelog into an empty state dir; time it by the app's metrics."""
    app = RunningApp(settings, state_dir)
    try:
        wait_until(app.restored, "restore", app.check, TIMEOUT_S, interval=0.01)
    finally:
        app.stop()
    records = int(app.metric("infinitic_restore_records_total"))
    if not records:
        log.warning("restore: the new app found nothing to restore")
    return Measurement("restore", records, app.metric("infinitic_restore_seconds_total"))


# -- output ------------------------------------------------------------------------------------


def print_header() -> None:
    print(f"{'phase':<10} {'messages':>10} {'seconds':>9} {'msgs/s':>10}", flush=True)


def print_row(measured: Measurement) -> None:
    print(
        f"{measured.phase:<10} {measured.messages:>10,} {measured.seconds:>9.3f} "
        f"{measured.per_second:>10,.0f}",
        flush=True,
    )


def summary(
    settings: Settings,
    runtime: Measurement,
    floor: Measurement,
    restore: Measurement,
    seed: Measurement,
) -> dict[str, object]:
    return {
        "runtime_msgs_per_s": round(runtime.per_second, 1),
        "floor_msgs_per_s": round(floor.per_second, 1),
        "ratio_to_floor": round(runtime.per_second / floor.per_second, 3),
        "restore_records_per_s": round(restore.per_second, 1),
        "restore_records": restore.messages,
        "restore_seconds": round(restore.seconds, 3),
        "seed_msgs_per_s": round(seed.per_second, 1),
        "runtime_seconds": round(runtime.seconds, 3),
        "floor_seconds": round(floor.seconds, 3),
        "messages": settings.messages,
        "keys": settings.keys,
        "restore_keys": settings.restore_keys,
        "partitions": PARTITIONS,
        "quick": settings.quick,
        "producer": settings.producer,
        "namespace": settings.namespace,
        "bootstrap": settings.bootstrap,
    }


# -- main --------------------------------------------------------------------------------------


def run(settings: Settings, work_dir: Path) -> dict[str, object]:
    note(f"namespace {settings.namespace} on {settings.bootstrap}")
    create_topics(settings)
    runtime_ends, floor_ends = produce_inputs(settings)
    print_header()

    note(f"runtime: {settings.messages:,} messages over {settings.keys:,} keys")
    app = RunningApp(settings, work_dir / "state")
    try:
        runtime = measure(settings.bootstrap, "runtime", app, runtime_ends, settings.messages)
        print_row(runtime)
        note(f"seed: {settings.restore_keys:,} messages of distinct keys, for the restore")
        seed = seed_changelog(settings, app, runtime_ends)
    finally:
        app.stop()
    check_runtime(app, settings.messages + settings.restore_keys)
    note(f"seed went at {seed.per_second:,.0f} msgs/s ({seed.seconds:.2f} s)")

    note("floor: raw confluent-kafka, same input, same transactions")
    floor = measure_floor(settings, floor_ends)
    print_row(floor)

    note("restore: a new app on an empty state dir")
    restore = measure_restore(settings, work_dir / "restore-state")
    print_row(restore)
    return summary(settings, runtime, floor, restore, seed)


def parse_settings(argv: list[str] | None = None) -> tuple[Settings, bool]:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (well under 2 min)")
    parser.add_argument(
        "--messages",
        type=int,
        help=f"inputs of the runtime and floor runs ({FULL['messages']:,}, quick "
        f"{QUICK['messages']:,})",
    )
    parser.add_argument("--keys", type=int, help=f"distinct keys of those ({FULL['keys']:,})")
    parser.add_argument(
        "--restore-keys",
        type=int,
        help=f"distinct keys sent for the restore ({FULL['restore_keys']:,}, quick "
        f"{QUICK['restore_keys']:,})",
    )
    parser.add_argument(
        "--producer",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka setting of the runtime's and the floor's producers (repeatable)",
    )
    parser.add_argument("--verbose", action="store_true", help="show the runtime's log")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    settings = Settings(
        bootstrap=args.bootstrap,
        namespace=f"bench-{uuid.uuid4().hex[:8]}",
        messages=args.messages or sizes["messages"],
        keys=args.keys or sizes["keys"],
        restore_keys=args.restore_keys or sizes["restore_keys"],
        quick=args.quick,
        producer=dict(item.split("=", 1) for item in args.producer),
    )
    return settings, args.verbose


def main(argv: list[str] | None = None) -> None:
    settings, verbose = parse_settings(argv)
    run_benchmark(settings, verbose, run, clean_up)


if __name__ == "__main__":
    main()
