"""Workflow throughput and latency end to end, next to a raw-Kafka floor of the same hops.

    python benchmarks/workflows.py [--bootstrap ADDR] [--quick] [--workflows N] [--steps S]
                                   [--short-steps S] [--fanout W] [--long-steps S]
                                   [--signal-steps S] [--child-steps S]
                                   [--concurrency C] [--kafka KEY=VALUE ...]
                                   [--stream FIELD=VALUE ...] [--layout single|processes]
                                   [--verbose]

One broker (default: $INFINITIC_KAFKA, else 127.0.0.1:9092), a fresh namespace
`bench-wf-<uuid8>` whose topics and consumer groups are deleted at the end. `--layout single`
(the default): everything runs in this process: a `Worker` (engine + visibility index + one
service worker, its own metrics registry, a temp state dir) in a background thread, an
`InfiniticClient` dispatches. `--layout processes`, as pods would run it: the engine (+ the
visibility index) and the service worker each in its own process (layout.py; the benchmark
reads the engine's /metrics), and this process is the client. The service is a no-op:
`echo(x)` returns x at once, so what is measured is the engine, the service worker and Kafka.
A task step (one task completed) costs two Kafka hops: engine -> service worker, inside the
engine's exactly-once transaction, then worker -> engine, a plain idempotent produce.

After a warm-up workflow (topics, group joins and first-time costs out of the way):
(b) short:      1 workflow x S sequential tasks (50): ms per step = total / S.
(d) long:       1 workflow x S sequential tasks (1,000): ms per step, and
                long_vs_short_per_step = (d) / (b), which shows a cost growing with history.
(c) fanout:     1 workflow dispatching W tasks (200) then waiting on all_of(...): total ms.
(a) throughput: N workflows (200) x S sequential tasks (10), dispatched at once (from 8
                threads: a dispatch waits for Kafka's acknowledgement): workflows/s and
                steps/s, from the first dispatch to the last result received.
(e) signal:     1 workflow taking S signals (50) one after the other (`receive().result()` in
                a loop); the client sends each signal once `h.signal()` returned for the one
                before. `h.signal()` returns when the engine's answer arrives, and the engine
                answers from the transaction that records the signal and runs the workflow's
                code on it up to its next `receive()`, once that transaction committed. So a
                signal round trip is: client -> engine topic (an idempotent produce) ->
                engine: record, run the code, commit -> replies topic -> client; two hops, as a
                task step. ms per signal = total / S.
(f) child:      1 parent calling S child workflows (50) one after the other, each returning its
                argument at once (no task): the parent's transaction dispatches the child ->
                the child's engine starts it, runs it to its end and tells the parent, in one
                transaction -> the parent records the end and dispatches the next. Two hops,
                both transactional. ms per child = total / S.
Each is timed from `client.dispatch` to the result in the client. (a), (b), (c), (e) and (f) are
measured three times (quick) or five times (full), (d) once; the median counts. The sizes are
the same in both modes.

Per-step latency of (b), (e), (f): besides the mean (total / S of the median run), p50 and p95
of the intervals between a workflow's consecutive step events, read from its history after the
run (the engine's clock, in ms): TaskSucceeded for (b), SignalReceived for (e), ChildFinished
for (f), over every run of the measure. The floor's (i) gets the same from the times its engine
loop consumes the chain's message.

Floor: then, with the Worker stopped, plain confluent-kafka plays the same hops between two
8-partition topics: an "engine" loop (read_committed consumer, transactional producer with the
engine's settings, one output per input, commit when input goes idle or after 100 ms / 1,000
messages: flush, send offsets, commit) and a "worker" loop (read_committed consumer, idempotent
producer with linger.ms=1, one output per input, offsets committed asynchronously every
200 ms). Both wait for input the least a loop can (see `consume`: `Consumer.consume(n, t)`
alone waits out its whole timeout unless n messages come). A chain of k round trips is seeded
into the engine topic and ends when the engine loop commits the transaction that consumed its
last message:
(i)  sequential: 1 chain x 200 round trips: floor_ms_per_step, to compare with (b);
(ii) concurrent: 200 chains x 10 round trips: floor_steps_per_s, to compare with (a).
`--kafka` settings reach the floor's clients as they reach the Worker's.
Plain floor: the same two loops and measures without transactions (idempotent producers,
read_uncommitted consumers, offsets committed every 200 ms; a chain ends when the engine loop
reads its last message): the latency limit of Kafka on the box.

CPU: each run's CPU time (/proc/<pid>/stat, user + system) of every process taking part: this
one, the engine's and the worker's, and the broker's when it runs on this machine (found by its
port), per step. The floors run in this process, in both layouts. Peak RSS (VmHWM) of each
process, read after the runtime's measures, before the floors.

Progress goes to stderr; stdout gets a table (one row per run: workflows, steps, seconds,
steps/s, ms/step, the engine's transactions in that run with their mean commit time, from
its metrics (the floor's engine loop counts its own), and CPU ms per step), a comparison with
the team's targets, the per-step latency of (b), (e), (f) and both floors side by side (mean,
p50, p95, and the mean's ratios to (b) and to the floor), the CPU per step of (a) and the peak
RSS by process (report.py), and, as its last line, one JSON object:
    steps_per_s, workflows_per_s        (a)
    ms_per_step                         (b)
    fanout_200_ms                       (c) (for the --fanout width, 200 by default)
    long_ms_per_step, long_vs_short_per_step                        (d)
    signal_ms_per_step, child_ms_per_step                           (e), (f)
    floor_steps_per_s, floor_ms_per_step                            floor (ii), (i)
    steps_ratio_to_floor                (a) / floor (ii): 1.0 means the runtime costs nothing
    ms_per_step_ratio_to_floor          (b) / floor (i)
    signal_ratio_to_floor, child_ratio_to_floor                     (e), (f) / floor (i)
    signal_vs_task_step, child_vs_task_step                         (e), (f) / (b)
    task_step_p50_ms, task_step_p95_ms, signal_p50_ms, signal_p95_ms, child_p50_ms,
    child_p95_ms, floor_p50_ms, floor_p95_ms                        per-step latency
    layout                              "single" or "processes"
    cpu_ms_per_step                     CPU ms per step of (a), all processes and the broker
    cpu_ms_per_step_by_process          the same by process
    short_cpu_ms_per_step(_by_process)  the same for (b)
    floor_cpu_ms_per_step, plain_floor_cpu_ms_per_step              floors (ii)
    plain_floor_ms_per_step, plain_floor_steps_per_s, plain_floor_p50_ms, plain_floor_p95_ms,
    ms_per_step_ratio_to_plain_floor    plain floor (i), (ii), and (b) / plain floor (i)
    rss_mb                              peak RSS (MiB) by process: {"process", "broker"}
                                        (single), {"client", "engine", "worker", "broker"}
    *_seconds, *_runs, sizes, quick, kafka, stream, concurrency, namespace, bootstrap
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    nearest_rank,
    note,
    run_benchmark,
    transactional_producer,
    wait_until,
)
from confluent_kafka import Consumer, Message, Producer
from layout import Processes
from procstat import CpuMeter, broker_pid
from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample
from report import (
    print_header,
    print_latencies,
    print_resources,
    print_row,
    print_targets,
)

from infinitic_streams import (
    Channel,
    InfiniticClient,
    Worker,
    Workflow,
    WorkflowHandle,
    all_of,
    service,
    workflow,
)
from infinitic_streams.kafka.admin import TopicSpec, ensure_topics

PARTITIONS = 8  # the Worker's default, and the floor's topics
# The brief's sizes; they fit the quick run, which the full one repeats for a steadier median.
QUICK = {
    "workflows": 200,
    "steps": 10,
    "short_steps": 50,
    "fanout": 200,
    "long_steps": 1_000,
    "signal_steps": 50,
    "child_steps": 50,
    "floor_sequential": 200,
    "floor_chains": 200,
    "floor_chain_steps": 10,
    "short_runs": 3,
    "throughput_runs": 3,
    "fanout_runs": 3,
    "signal_runs": 3,
    "child_runs": 3,
}
FULL = {
    **QUICK,
    "short_runs": 5,
    "throughput_runs": 5,
    "fanout_runs": 5,
    "signal_runs": 5,
    "child_runs": 5,
}
TARGETS = {  # what the team aims at: reported, not asserted
    "steps_per_s": (">=", 2_000.0),
    "ms_per_step": ("<=", 10.0),
    "fanout_200_ms": ("<=", 300.0),
    "long_vs_short_per_step": ("<=", 1.5),
}
# The service worker's commit interval, which the floor copies (the engine's: in common).
WORKER_COMMIT_INTERVAL_S = 0.2
TIMEOUT_S = 240.0  # for any single wait: a stuck phase fails instead of hanging
DISPATCHERS = 8  # threads dispatching the workflows of (a)

log = logging.getLogger("benchmarks.workflows")


# -- the workload --------------------------------------------------------------------------------


@service("BenchNoop")
class Noop:
    def echo(self, value: int) -> int: ...


class NoopImpl(Noop):
    def echo(self, value: int) -> int:
        return value


@workflow("BenchChain")
class Chain(Workflow):
    def run(self, steps: int) -> int:
        """`steps` tasks, one after the other; returns `steps`."""
        noop = self.new_service(Noop)
        value = 0
        for _ in range(steps):
            value = noop.echo(value + 1)
        return value

    def fan_out(self, width: int) -> int:
        """`width` tasks at once, then wait for all; returns the sum of 0..width-1."""
        noop = self.new_service(Noop)
        deferreds = [self.dispatch(noop.echo, i) for i in range(width)]
        return sum(all_of(*deferreds).result())


@workflow("BenchSignals")
class Signals(Workflow):
    pings = Channel(int)

    def run(self, count: int) -> int:
        """Takes `count` signals, one after the other; returns their sum."""
        total = 0
        for _ in range(count):
            total += self.pings.receive().result()
        return total


@workflow("BenchEcho")
class Echo(Workflow):
    def run(self, value: int) -> int:
        return value


@workflow("BenchParent")
class Parent(Workflow):
    def run(self, children: int) -> int:
        """`children` child workflows, one after the other; returns the sum of 0..children-1."""
        total = 0
        for i in range(children):
            total += self.new_workflow(Echo).run(i)
        return total


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    namespace: str
    workflows: int
    steps: int
    short_steps: int
    fanout: int
    long_steps: int
    signal_steps: int
    child_steps: int
    floor_sequential: int
    floor_chains: int
    floor_chain_steps: int
    short_runs: int
    throughput_runs: int
    fanout_runs: int
    signal_runs: int
    child_runs: int
    concurrency: int
    quick: bool
    layout: str  # "single": everything in this process; "processes": engine, worker, client
    kafka: dict[str, Any]  # librdkafka settings for every client, as Worker(kafka) takes them
    stream: dict[str, Any]  # StreamConfig fields, as Worker(stream) takes them

    def topic(self, suffix: str) -> str:
        return f"{self.namespace}.{suffix}"

    @property
    def client_kafka(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **self.kafka}


@dataclass(frozen=True)
class Measurement:
    phase: str
    workflows: int
    steps: int
    seconds: float
    transactions: int = 0  # engine transactions committed during the run
    commit_seconds: float = 0.0  # their total commit time
    intervals_ms: tuple[float, ...] = ()  # between consecutive steps, when measured
    cpu: tuple[tuple[str, float], ...] = ()  # (process, CPU seconds during the run)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def ms_per_step(self) -> float:
        return self.seconds * 1000 / self.steps if self.steps else 0.0

    @property
    def ms_per_commit(self) -> float:
        return self.commit_seconds * 1000 / self.transactions if self.transactions else 0.0

    @property
    def cpu_ms_per_step(self) -> float:
        """CPU of every measured process (the broker's included) per step."""
        return sum(s for _, s in self.cpu) * 1000 / self.steps if self.steps else 0.0

    def cpu_ms_per_step_by_process(self) -> dict[str, float]:
        return {name: round(s * 1000 / self.steps, 3) for name, s in self.cpu if self.steps}


def median(runs: list[Measurement]) -> Measurement:
    return sorted(runs, key=lambda m: m.seconds)[(len(runs) - 1) // 2]


def percentile(runs: list[Measurement], fraction: float) -> float:
    """The nearest-rank percentile of the step intervals of every run (0.0 when none)."""
    return nearest_rank([v for m in runs for v in m.intervals_ms], fraction)


def intervals(times_ms: list[float]) -> tuple[float, ...]:
    return tuple(b - a for a, b in itertools.pairwise(times_ms))


def cpu_meter(processes: dict[str, int], bootstrap: str) -> CpuMeter:
    """A meter of `processes` and of the broker, when it runs on this machine."""
    broker = broker_pid(bootstrap)
    return CpuMeter({**processes, **({"broker": broker} if broker else {})})


# -- the runtime ---------------------------------------------------------------------------------


class Runtime:
    """The engine and the service worker, and a client in this process. Layout "single": a
    Worker (engine + service worker) in a background thread; "processes": the engine and the
    service worker each in its own process (see layout.py)."""

    def __init__(self, settings: Settings, work_dir: Path) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.worker: Worker | None = None
        self.processes: Processes | None = None
        if settings.layout == "processes":
            config = {
                "bootstrap": settings.bootstrap,
                "namespace": settings.namespace,
                "kafka": settings.kafka,
                "stream": settings.stream,
                "concurrency": settings.concurrency,
                "partitions": PARTITIONS,
            }
            self.processes = Processes(config, work_dir)
            pids = {"client": os.getpid(), **self.processes.pids}
        else:
            self.worker = Worker(
                settings.client_kafka,
                settings.namespace,
                services=[NoopImpl()],
                workflows=[Chain, Signals, Echo, Parent],
                state_dir=work_dir / "state",
                concurrency=settings.concurrency,
                partitions=PARTITIONS,
                registry=self.registry,
                stream=dict(settings.stream),
            ).start()
            pids = {"process": os.getpid()}
        self.cpu = cpu_meter(pids, settings.bootstrap)
        try:
            self.client = InfiniticClient(settings.client_kafka, settings.namespace, PARTITIONS)
        except BaseException:
            self.stop_runtime()
            raise

    def stop_runtime(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.processes is not None:
            self.processes.stop()

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.stop_runtime()

    def check(self) -> None:
        if self.processes is not None:
            self.processes.check()
        thread = getattr(self.worker, "_thread", None)
        if thread is not None and not thread.is_alive():
            raise RuntimeError("the Worker stopped early (its error is printed above)")

    def wait(self, handle: WorkflowHandle, deadline: float) -> Any:
        """The workflow's result; fails if the Worker dies or the deadline passes."""
        while True:
            try:
                return handle.result(timeout=0.5)
            except TimeoutError:
                self.check()
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"workflow {handle.id}: no result in {TIMEOUT_S:.0f} s"
                    ) from None

    def engine_metric(self, name: str) -> float:
        """Sum of the samples `name` of the engine (whatever other labels they have)."""
        total = 0.0
        for sample in self.samples():
            if sample.name == name and sample.labels.get("processor") == "engine":
                total += sample.value
        return total

    def samples(self) -> Iterator[Sample]:
        if self.processes is not None:
            yield from self.processes.samples("engine")
        else:
            for family in self.registry.collect():
                yield from family.samples

    def engine_commits(self) -> tuple[int, float]:
        count = self.engine_metric("infinitic_commit_latency_seconds_count")
        return int(count), self.engine_metric("infinitic_commit_latency_seconds_sum")

    def measure(
        self,
        phase: str,
        start: Callable[[], list[WorkflowHandle]],
        expected: Any,
        steps: int,
        step_event: str | None = None,
    ) -> Measurement:
        """Dispatch (`start`), wait for every result; time from the first dispatch to the
        last result. With `step_event`, the intervals between the consecutive events of that
        name in the first workflow's history (read after the timing)."""
        transactions, commit_seconds = self.engine_commits()
        cpu = self.cpu.read()
        started = time.monotonic()
        handles = start()
        deadline = started + TIMEOUT_S
        results = [self.wait(handle, deadline) for handle in handles]
        seconds = time.monotonic() - started
        cpu_used = tuple(self.cpu.since(cpu).items())
        wrong = [r for r in results if r != expected]
        if wrong:
            raise RuntimeError(f"{phase}: expected {expected!r}, got {wrong[0]!r}")
        time.sleep(0.05)  # let the engine's last commit reach its metrics
        transactions_after, commit_seconds_after = self.engine_commits()
        steps_ms: tuple[float, ...] = ()
        if step_event is not None:
            times = [e["at"] for e in handles[0].history() if e["event"] == step_event]
            steps_ms = intervals([t.timestamp() * 1000 for t in times])
        return Measurement(
            phase,
            len(handles),
            steps,
            seconds,
            transactions_after - transactions,
            commit_seconds_after - commit_seconds,
            steps_ms,
            cpu_used,
        )

    def chains(self, phase: str, workflows: int, steps: int) -> Measurement:
        def start() -> list[WorkflowHandle]:
            # dispatch() returns once Kafka acknowledged it: a load generator sends several
            # at once, as many clients would.
            with ThreadPoolExecutor(DISPATCHERS) as pool:
                return list(
                    pool.map(lambda _: self.client.dispatch(Chain.run, steps), range(workflows))
                )

        step_event = "TaskSucceeded" if workflows == 1 else None
        return self.measure(phase, start, steps, workflows * steps, step_event)

    def signals(self, phase: str, count: int) -> Measurement:
        def start() -> list[WorkflowHandle]:
            handle = self.client.dispatch(Signals.run, count)
            for i in range(count):
                handle.signal("pings", i)  # returns once the engine has run the code on it
            return [handle]

        return self.measure(phase, start, count * (count - 1) // 2, count, "SignalReceived")

    def children(self, phase: str, count: int) -> Measurement:
        def start() -> list[WorkflowHandle]:
            return [self.client.dispatch(Parent.run, count)]

        return self.measure(phase, start, count * (count - 1) // 2, count, "ChildFinished")

    def fan_out(self, phase: str, width: int) -> Measurement:
        def start() -> list[WorkflowHandle]:
            return [self.client.dispatch(Chain.fan_out, width)]

        return self.measure(phase, start, width * (width - 1) // 2, width)

    def check_clean(self) -> None:
        """Warn when the run did not go straight through: aborts redo work and skew numbers."""
        aborts = self.engine_metric("infinitic_transactions_aborted_total")
        dead = self.engine_metric("infinitic_dead_letters_total")
        if aborts or dead:
            log.warning("engine: %d transactions aborted, %d dead letters", aborts, dead)


# -- the floor -----------------------------------------------------------------------------------


def consume(consumer: Consumer, limit: int, wait: float) -> list[Message]:
    """Up to `limit` messages, waiting at most `wait` for the first one only.

    `Consumer.consume(n, timeout)` returns when it has `n` messages or when `timeout` is over,
    not at the first message: a loop that waits on it adds its whole timeout to every hop of
    a chain (100 ms per step here). This is the least a loop must wait."""
    messages = consumer.consume(limit, 0)
    if messages or wait <= 0:
        return messages
    messages = consumer.consume(1, wait)  # returns at the first message
    if messages and limit > 1:
        messages += consumer.consume(limit - 1, 0)
    return messages


class FloorLoops:
    """The two hops of a task step with plain confluent-kafka, in two threads.

    A chain's message is `remaining` (ASCII), keyed by the chain's id. The engine loop turns
    `k > 0` into a task message and records `0` as the chain's end; the worker loop answers a
    task message `k` with `k - 1`.

    `plain`: no transactions at all, the latency limit of Kafka itself: both loops read
    uncommitted, produce with an idempotent producer (linger.ms=1) and commit their offsets
    asynchronously every 200 ms; a chain ends when the engine loop reads its `0`."""

    def __init__(self, settings: Settings, plain: bool = False) -> None:
        self.settings = settings
        self.plain = plain
        prefix = "plain-floor" if plain else "floor"
        self.engine_topic = settings.topic(f"{prefix}-engine")
        self.tasks_topic = settings.topic(f"{prefix}-tasks")
        self.done: dict[bytes, float] = {}  # chain -> when the transaction that ended it committed
        self.tracked: dict[bytes, list[float]] = {}  # chain -> when the engine loop read it (ms)
        self.transactions = 0
        self.commit_seconds = 0.0
        self._stop = threading.Event()
        self._engine = Background(self._engine_run, "floor engine")
        self._worker = Background(self._worker_run, "floor worker")
        self._seeder = self.plain_producer()
        self.cpu = cpu_meter({"process": os.getpid()}, settings.bootstrap)

    def plain_producer(self) -> Producer:
        return Producer({**self.settings.client_kafka, "enable.idempotence": True, "linger.ms": 1})

    def consumer(self, topic: str, extra: dict[str, Any]) -> Consumer:
        """A consumer of `topic` in the group named after it; read_uncommitted when plain."""
        isolation = {"isolation.level": "read_uncommitted"} if self.plain else {}
        settings = self.settings
        consumer = Consumer(
            consumer_config(settings.bootstrap, topic, {**isolation, **extra, **settings.kafka})
        )
        consumer.subscribe([topic])
        return consumer

    def check(self) -> None:
        self._engine.check()
        self._worker.check()

    def stop(self) -> None:
        self._stop.set()
        self._seeder.flush(10)
        self._engine.join()
        self._worker.join()

    def seed(self, chains: list[bytes], round_trips: int) -> None:
        """Start chains like a client dispatches workflows: produce, poll, no flush."""
        value = str(round_trips).encode()
        for chain in chains:
            self._seeder.produce(self.engine_topic, value, chain)
            self._seeder.poll(0)

    # -- engine -> worker: consume, produce, send offsets, commit (StreamApp's shape)

    def _engine_run(self) -> None:
        settings = self.settings
        if self.plain:
            producer = self.plain_producer()
        else:
            producer = transactional_producer(settings.bootstrap, self.engine_topic, settings.kafka)
        consumer = self.consumer(self.engine_topic, {"partition.assignment.strategy": "range"})
        try:
            if self.plain:
                self._worker_loop(consumer, producer, self._plain_engine_step)
            else:
                self._engine_loop(consumer, producer)
        finally:
            consumer.close()
            producer.flush(10)

    def _engine_loop(self, consumer: Consumer, producer: Producer) -> None:
        offsets: dict[int, int] = {}  # partition -> next offset, in the open transaction
        ended: list[bytes] = []
        count, opened_at = 0, 0.0
        while not self._stop.is_set():
            messages = consume(consumer, MAX_POLL_RECORDS, 0.0 if offsets else 0.1)
            for message in messages:
                if not check_message(message):
                    continue
                if not offsets:
                    producer.begin_transaction()
                    opened_at = time.monotonic()
                value = message.value()
                if (times := self.tracked.get(message.key())) is not None:
                    times.append(time.monotonic() * 1000)
                if value == b"0":
                    ended.append(message.key())
                else:
                    producer.produce(self.tasks_topic, value, message.key())
                offsets[message.partition()] = message.offset() + 1
                count += 1
            now = time.monotonic()
            due = not messages or count >= COMMIT_EVERY or now - opened_at >= COMMIT_INTERVAL_S
            if offsets and due:
                commit(consumer, producer, self.engine_topic, offsets)
                committed_at = time.monotonic()
                self.transactions += 1
                self.commit_seconds += committed_at - now
                for chain in ended:
                    self.done[chain] = committed_at
                offsets.clear()
                ended.clear()
                count = 0

    # -- worker -> engine: consume, plain idempotent produce (the service worker's shape)

    def _worker_run(self) -> None:
        producer = self.plain_producer()
        consumer = self.consumer(self.tasks_topic, {})
        try:
            self._worker_loop(consumer, producer, self._worker_step)
        finally:
            producer.flush(10)
            consumer.close()

    def _worker_step(self, producer: Producer, message: Message) -> None:
        remaining = int(message.value()) - 1
        producer.produce(self.engine_topic, str(remaining).encode(), message.key())

    def _plain_engine_step(self, producer: Producer, message: Message) -> None:
        now = time.monotonic()
        if (times := self.tracked.get(message.key())) is not None:
            times.append(now * 1000)
        if message.value() == b"0":
            self.done[message.key()] = now
        else:
            producer.produce(self.tasks_topic, message.value(), message.key())

    def _worker_loop(
        self,
        consumer: Consumer,
        producer: Producer,
        step: Callable[[Producer, Message], None],
    ) -> None:
        """Consume, `step` each message, commit offsets asynchronously every 200 ms."""
        next_commit = time.monotonic() + WORKER_COMMIT_INTERVAL_S
        consumed = False
        while not self._stop.is_set():
            for message in consume(consumer, MAX_POLL_RECORDS, 0.05):
                if not check_message(message):
                    continue
                step(producer, message)
                consumed = True
            producer.poll(0)
            if consumed and time.monotonic() >= next_commit:
                consumer.commit(asynchronous=True)
                consumed = False
                next_commit = time.monotonic() + WORKER_COMMIT_INTERVAL_S

    # -- measuring

    def measure(
        self, phase: str, chains: int, round_trips: int, track: bool = False
    ) -> Measurement:
        """With `track`, the intervals between the engine loop's reads of the first chain."""
        ids = [f"{phase}-{uuid.uuid4().hex[:8]}-{i}".encode() for i in range(chains)]
        if track:
            self.tracked[ids[0]] = []
        transactions, commit_seconds = self.transactions, self.commit_seconds
        cpu = self.cpu.read()
        started = time.monotonic()
        self.seed(ids, round_trips)
        wait_until(
            lambda: all(c in self.done for c in ids), phase, self.check, TIMEOUT_S, interval=0.002
        )
        seconds = max(self.done[c] for c in ids) - started
        cpu_used = tuple(self.cpu.since(cpu).items())
        return Measurement(
            phase,
            chains,
            chains * round_trips,
            seconds,
            self.transactions - transactions,
            self.commit_seconds - commit_seconds,
            intervals(self.tracked.pop(ids[0], [])),
            cpu_used,
        )


def clean_up(settings: Settings) -> None:
    """Delete the run's topics and consumer groups (best effort: report, do not raise)."""
    config = {"bootstrap.servers": settings.bootstrap, **settings.kafka}
    topics, groups = delete_namespace(config, settings.namespace, log)
    note(f"deleted {len(topics)} topics and {len(groups)} consumer groups of {settings.namespace}")


def summary(
    settings: Settings, runtime: RuntimeRuns, floors: FloorRuns, plain: FloorRuns
) -> dict[str, Any]:
    throughput, short, fanout, long = (
        runtime.throughput,
        runtime.short,
        runtime.fanout,
        runtime.long,
    )
    signals, children = runtime.signals, runtime.children
    floor_sequential, floor_concurrent = floors.sequential, floors.concurrent
    a, b, c = median(throughput), median(short), median(fanout)
    e, f = median(signals), median(children)
    floor = floor_sequential.ms_per_step

    def runs(measured: list[Measurement]) -> list[float]:
        return [round(m.seconds, 3) for m in measured]

    return {
        "steps_per_s": round(a.steps_per_s, 1),
        "workflows_per_s": round(a.workflows / a.seconds, 1),
        "ms_per_step": round(b.ms_per_step, 2),
        "fanout_200_ms": round(c.seconds * 1000, 1),
        "long_ms_per_step": round(long.ms_per_step, 2),
        "long_vs_short_per_step": round(long.ms_per_step / b.ms_per_step, 3),
        "floor_steps_per_s": round(floor_concurrent.steps_per_s, 1),
        "floor_ms_per_step": round(floor_sequential.ms_per_step, 2),
        "steps_ratio_to_floor": round(a.steps_per_s / floor_concurrent.steps_per_s, 3),
        "ms_per_step_ratio_to_floor": round(b.ms_per_step / floor, 3),
        "signal_ms_per_step": round(e.ms_per_step, 2),
        "child_ms_per_step": round(f.ms_per_step, 2),
        "signal_ratio_to_floor": round(e.ms_per_step / floor, 3),
        "child_ratio_to_floor": round(f.ms_per_step / floor, 3),
        "signal_vs_task_step": round(e.ms_per_step / b.ms_per_step, 3),
        "child_vs_task_step": round(f.ms_per_step / b.ms_per_step, 3),
        "task_step_p50_ms": round(percentile(short, 0.5), 2),
        "task_step_p95_ms": round(percentile(short, 0.95), 2),
        "signal_p50_ms": round(percentile(signals, 0.5), 2),
        "signal_p95_ms": round(percentile(signals, 0.95), 2),
        "child_p50_ms": round(percentile(children, 0.5), 2),
        "child_p95_ms": round(percentile(children, 0.95), 2),
        "floor_p50_ms": round(percentile([floor_sequential], 0.5), 2),
        "floor_p95_ms": round(percentile([floor_sequential], 0.95), 2),
        "layout": settings.layout,
        "cpu_ms_per_step": round(a.cpu_ms_per_step, 3),
        "cpu_ms_per_step_by_process": a.cpu_ms_per_step_by_process(),
        "short_cpu_ms_per_step": round(b.cpu_ms_per_step, 3),
        "short_cpu_ms_per_step_by_process": b.cpu_ms_per_step_by_process(),
        "floor_cpu_ms_per_step": round(floor_concurrent.cpu_ms_per_step, 3),
        "plain_floor_ms_per_step": round(plain.sequential.ms_per_step, 2),
        "plain_floor_steps_per_s": round(plain.concurrent.steps_per_s, 1),
        "plain_floor_p50_ms": round(percentile([plain.sequential], 0.5), 2),
        "plain_floor_p95_ms": round(percentile([plain.sequential], 0.95), 2),
        "plain_floor_cpu_ms_per_step": round(plain.concurrent.cpu_ms_per_step, 3),
        "ms_per_step_ratio_to_plain_floor": round(b.ms_per_step / plain.sequential.ms_per_step, 3),
        "rss_mb": runtime.rss_mb,
        "throughput_seconds": round(a.seconds, 3),
        "throughput_runs": runs(throughput),
        "short_runs": runs(short),
        "fanout_runs": runs(fanout),
        "signal_runs": runs(signals),
        "child_runs": runs(children),
        "long_seconds": round(long.seconds, 3),
        "floor_sequential_seconds": round(floor_sequential.seconds, 3),
        "floor_concurrent_seconds": round(floor_concurrent.seconds, 3),
        "plain_floor_sequential_seconds": round(plain.sequential.seconds, 3),
        "plain_floor_concurrent_seconds": round(plain.concurrent.seconds, 3),
        "workflows": settings.workflows,
        "steps_per_workflow": settings.steps,
        "short_steps": settings.short_steps,
        "fanout": settings.fanout,
        "long_steps": settings.long_steps,
        "signal_steps": settings.signal_steps,
        "child_steps": settings.child_steps,
        "floor_sequential": settings.floor_sequential,
        "floor_chains": settings.floor_chains,
        "floor_chain_steps": settings.floor_chain_steps,
        "partitions": PARTITIONS,
        "concurrency": settings.concurrency,
        "quick": settings.quick,
        "kafka": settings.kafka,
        "stream": settings.stream,
        "namespace": settings.namespace,
        "bootstrap": settings.bootstrap,
    }


# -- main ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeRuns:
    throughput: list[Measurement]
    short: list[Measurement]
    fanout: list[Measurement]
    long: Measurement
    signals: list[Measurement]
    children: list[Measurement]
    rss_mb: dict[str, float | None]  # peak resident set of each process, the broker's included


@dataclass(frozen=True)
class FloorRuns:
    sequential: Measurement  # (i)
    concurrent: Measurement  # (ii)


def run_runtime(settings: Settings, work_dir: Path) -> RuntimeRuns:
    if settings.layout == "processes":
        note("runtime: starting the engine and the service worker, each in its own process")
    else:
        note(f"runtime: starting a Worker (engine + service) and a client, in {work_dir}")
    runtime = Runtime(settings, work_dir)
    try:
        started = time.monotonic()
        deadline = started + TIMEOUT_S
        runtime.wait(runtime.client.dispatch(Chain.run, 5), deadline)
        runtime.wait(runtime.client.dispatch(Chain.fan_out, 5), deadline)
        runtime.signals("warm-up signals", 5)
        runtime.children("warm-up children", 5)
        note(f"warm-up workflows done in {time.monotonic() - started:.2f} s")

        short = []
        for i in range(settings.short_runs):
            phase = f"(b) short 1x{settings.short_steps} #{i + 1}"
            short.append(runtime.chains(phase, 1, settings.short_steps))
            print_row(short[-1])
        signals = []
        for i in range(settings.signal_runs):
            phase = f"(e) signal 1x{settings.signal_steps} #{i + 1}"
            signals.append(runtime.signals(phase, settings.signal_steps))
            print_row(signals[-1])
        children = []
        for i in range(settings.child_runs):
            phase = f"(f) child 1x{settings.child_steps} #{i + 1}"
            children.append(runtime.children(phase, settings.child_steps))
            print_row(children[-1])
        long = runtime.chains(f"(d) long 1x{settings.long_steps}", 1, settings.long_steps)
        print_row(long)
        fanout = []
        for i in range(settings.fanout_runs):
            fanout.append(
                runtime.fan_out(f"(c) fanout {settings.fanout} #{i + 1}", settings.fanout)
            )
            print_row(fanout[-1])
        throughput = []
        for i in range(settings.throughput_runs):
            phase = f"(a) {settings.workflows}x{settings.steps} #{i + 1}"
            throughput.append(runtime.chains(phase, settings.workflows, settings.steps))
            print_row(throughput[-1])
        runtime.check_clean()
        rss_mb = runtime.cpu.peak_rss_mb()  # before the floors run in this process
    finally:
        runtime.close()
    return RuntimeRuns(throughput, short, fanout, long, signals, children, rss_mb)


def run_floor(settings: Settings, plain: bool = False) -> FloorRuns:
    name = "plain floor" if plain else "floor"
    how = "without transactions" if plain else "exactly-once"
    note(f"{name}: plain confluent-kafka, the same two hops per step, {how}, the Worker stopped")
    loops = FloorLoops(settings, plain)
    try:
        ensure_topics(
            {"bootstrap.servers": settings.bootstrap},
            [TopicSpec(t, PARTITIONS) for t in (loops.engine_topic, loops.tasks_topic)],
        )
        loops.measure("warm-up", 1, 5)
        loops.measure("warm-up", 10, 5)
        sequential = loops.measure(
            f"{name} 1x{settings.floor_sequential}", 1, settings.floor_sequential, track=True
        )
        print_row(sequential)
        chains, steps = settings.floor_chains, settings.floor_chain_steps
        concurrent = loops.measure(f"{name} {chains}x{steps}", chains, steps)
        print_row(concurrent)
    finally:
        loops.stop()
    return FloorRuns(sequential, concurrent)


def run(settings: Settings, work_dir: Path) -> dict[str, Any]:
    note(f"namespace {settings.namespace} on {settings.bootstrap}, layout {settings.layout}")
    print_header()
    runs = run_runtime(settings, work_dir)
    result = summary(settings, runs, run_floor(settings), run_floor(settings, plain=True))
    print_targets(result, TARGETS)
    print_latencies(result)
    print_resources(result)
    return result


def setting_value(text: str) -> Any:
    """A --stream value: int, float, true/false, else the string."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_settings(argv: list[str] | None = None) -> tuple[Settings, bool]:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 runs of (a), (b), (c), (e), (f) instead of 5 (< 5 min)",
    )
    parser.add_argument("--workflows", type=int, help="(a): workflows dispatched at once (200)")
    parser.add_argument("--steps", type=int, help="(a): tasks per workflow (10)")
    parser.add_argument("--short-steps", type=int, help="(b): tasks of the short workflow (50)")
    parser.add_argument("--fanout", type=int, help="(c): parallel tasks (200)")
    parser.add_argument("--long-steps", type=int, help="(d): tasks of the long workflow (1,000)")
    parser.add_argument("--signal-steps", type=int, help="(e): signals, one after the other (50)")
    parser.add_argument("--child-steps", type=int, help="(f): children, one after the other (50)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="tasks the service worker runs at once (16)"
    )
    parser.add_argument(
        "--kafka",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka setting for every client of the Worker, the client and the floor "
        "(Worker's kafka dict; repeatable)",
    )
    parser.add_argument(
        "--stream",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="StreamConfig field of the engine, e.g. commit_interval_ms=20 (repeatable)",
    )
    parser.add_argument(
        "--layout",
        choices=("single", "processes"),
        default="single",
        help="single: engine, service worker and client in this process (default); "
        "processes: the engine and the service worker each in its own process",
    )
    parser.add_argument("--verbose", action="store_true", help="show the runtime's log")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    settings = Settings(
        bootstrap=args.bootstrap,
        namespace=f"bench-wf-{uuid.uuid4().hex[:8]}",
        workflows=args.workflows or sizes["workflows"],
        steps=args.steps or sizes["steps"],
        short_steps=args.short_steps or sizes["short_steps"],
        fanout=args.fanout or sizes["fanout"],
        long_steps=args.long_steps or sizes["long_steps"],
        signal_steps=args.signal_steps or sizes["signal_steps"],
        child_steps=args.child_steps or sizes["child_steps"],
        floor_sequential=sizes["floor_sequential"],
        floor_chains=args.workflows or sizes["floor_chains"],
        floor_chain_steps=args.steps or sizes["floor_chain_steps"],
        short_runs=sizes["short_runs"],
        throughput_runs=sizes["throughput_runs"],
        fanout_runs=sizes["fanout_runs"],
        signal_runs=sizes["signal_runs"],
        child_runs=sizes["child_runs"],
        concurrency=args.concurrency,
        quick=args.quick,
        layout=args.layout,
        kafka=dict(item.split("=", 1) for item in args.kafka),
        stream={k: setting_value(v) for k, v in (item.split("=", 1) for item in args.stream)},
    )
    return settings, args.verbose


def main(argv: list[str] | None = None) -> None:
    settings, verbose = parse_settings(argv)
    run_benchmark(settings, verbose, run, clean_up)


if __name__ == "__main__":
    main()
