"""List and count on the visibility index of a namespace full of workflows, next to a raw-Kafka
floor of the same round trip.

    python benchmarks/visibility.py [--bootstrap ADDR] [--quick] [--workflows N] [--repeat R]
                                    [--limit L] [--verbose]

Everything runs in this process against one broker (default: $INFINITIC_KAFKA, else
127.0.0.1:9092), in a fresh namespace `bench-vis-<uuid8>` whose topics and consumer groups are
deleted at the end. A `Worker` (engine and visibility index, 8 partitions, its own metrics
registry, a temp state dir) runs in a background thread, an `InfiniticClient` dispatches and
asks.

Fill: N workflows (10,000; 2,000 with --quick) that run no task and return (or raise) at once,
dispatched from 16 threads (a dispatch waits for Kafka's acknowledgement); the first alone, as
a warm-up (engine and index started, topics made). Workflow i is of class BenchVisOrder or
BenchVisInvoice (i % 2), has one tag of 20 (`tag-00`..`tag-19`, (i // 2) % 20), and fails one
time in four ((i // 40) % 4 == 0), so every (class, tag) pair holds N / 40 workflows, a quarter
of them FAILED. Reported: the dispatch rate, and after the last dispatch how long until the
engine has ended every workflow (its results reached the client) and until the index counts
them all by status (`count_by_status()` equal to what was dispatched, asked every 20 ms).

Then R rounds (20; 5 with --quick), one warm-up round before, each timing once, in this order:
    list            list(limit=L)                                       (L = 50)
    list_filtered   list(BenchVisOrder, status="FAILED", tag="tag-03", limit=L): N / 160 match
    count           count()
    count_by_status count_by_status(tag="tag-03")
    page            list(BenchVisOrder, tag="tag-03", limit=L, after=cursor) until a short
                    page: the N / 40 workflows of one (class, tag) in pages of L; timed per page
    floor           one request to each of the 8 partitions of a scratch topic, produced at
                    once; a thread answers each (consume, plain idempotent produce of 15 kB,
                    about a partition's answer to a list of 50) to a 1-partition topic that
                    the caller reads: what a list costs in Kafka alone, without transactions
    floor_sequential the same, each request sent once the one before was acknowledged (what
                    the client's scatter would cost sending one partition at a time; it
                    sends them all at once, `Producer.send_all`)
Rounds interleave the measures, so that a busy moment of the machine touches all of them. Every
answer is checked (ids, order, filters, counts against what was dispatched, pages without
duplicates or gaps); a wrong one is reported in `problems` (and on stderr), not raised.

Keys read: a list asks each partition for its counters (one per status) and at most L index
keys of each status it asks for (every status that has workflows, when it names none) and L
summaries, whatever N; a count reads the counters only. `list_keys_read_max` is that bound
over the partitions, `store_keys` what the index holds for N workflows of one tag (a
summary, 4 index keys each) and `store_keys_estimate` RocksDB's estimate, from the index's
metrics. The index answers from its transaction, once it commits: its transactions per query
(list, count or page, the warm-up round included) and their mean commit time are reported too.

Progress goes to stderr; stdout gets the fill, a table (p50, p95 and min ms of each measure,
p50 over the floor's p50), the keys read and, as its last line, one JSON object:
    list_p50_ms, list_p95_ms, list_filtered_*, count_*, count_by_status_*, page_*, floor_*,
    floor_sequential_*                  each measure (page_*: per page)
    list_ratio_to_floor, list_filtered_ratio_to_floor, count_ratio_to_floor,
    count_by_status_ratio_to_floor, page_ratio_to_floor     p50 / floor p50
    page_total_p50_ms, pages, page_selection, list_filtered_selection
    list_keys_read_max, count_keys_read, store_keys, store_keys_estimate
    index_transactions_per_query, index_commit_ms   the index's commits while measuring
    fill_seconds, fill_workflows_per_s, engine_caught_up_s, index_caught_up_s
    counts_by_status, problems, workflows, partitions, limit, repeat, quick, namespace, bootstrap
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    Background,
    argument_parser,
    delete_namespace,
    nearest_rank,
    note,
    run_benchmark,
)
from prometheus_client import CollectorRegistry

from infinitic_streams import InfiniticClient, Worker, Workflow, workflow
from infinitic_streams.client.handle import WorkflowInfo
from infinitic_streams.kafka.admin import TopicSpec, ensure_topics
from infinitic_streams.kafka.consumer import Consumer, TopicPartition
from infinitic_streams.kafka.producer import Producer
from infinitic_streams.protocol import WorkflowStatus

PARTITIONS = 8  # the Worker's default: the events and visibility-queries topics, the floor's
STATUSES = [status.value for status in WorkflowStatus]  # one counter each, per partition
TAGS = 20
FAIL_ONE_IN = 4
TAG = "tag-03"  # the tag of the filtered measures
DISPATCHERS = 16  # threads dispatching the fill
FLOOR_ANSWER_BYTES = 15_000  # one partition's answer to a list of 50 failed workflows (JSON)
SEND_TIMEOUT_S = 60.0
POLL_S = 0.02  # between two looks at the engine's results and the index's counts
TIMEOUT_S = 240.0  # for any single wait (the fill's: more, with N)
QUICK = {"workflows": 2_000, "repeat": 5}
FULL = {"workflows": 10_000, "repeat": 20}
MEASURES = {  # name -> its label in the table
    "list": "list(limit={L})",
    "list_filtered": "list(Order, FAILED, {tag}, limit={L})",
    "count": "count()",
    "count_by_status": "count_by_status(tag={tag})",
    "page": "page of list(Order, {tag}, limit={L}, after)",
    "floor": "floor: 8 requests + 8 answers",
    "floor_sequential": "floor, each request acknowledged",
}

log = logging.getLogger("benchmarks.visibility")


# -- the workload --------------------------------------------------------------------------------


@workflow("BenchVisOrder")
class Order(Workflow):
    def run(self, fail: bool) -> int:
        if fail:
            raise ValueError("failed on purpose")
        return 0


@workflow("BenchVisInvoice")
class Invoice(Workflow):
    def run(self, fail: bool) -> int:
        if fail:
            raise ValueError("failed on purpose")
        return 0


CLASSES = (Order, Invoice)
NAMES = {Order: "BenchVisOrder", Invoice: "BenchVisInvoice"}


def plan(i: int) -> tuple[type[Workflow], str, bool]:
    """Workflow i: its class, its tag, whether it fails."""
    return CLASSES[i % 2], f"tag-{(i // 2) % TAGS:02d}", (i // 40) % FAIL_ONE_IN == 0


def expected_counts(workflows: int) -> Counter[tuple[str, str, str]]:
    """(name, tag, status) -> how many, for the first `workflows` of the plan."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for i in range(workflows):
        cls, tag, fail = plan(i)
        counts[NAMES[cls], tag, "FAILED" if fail else "COMPLETED"] += 1
    return counts


def by_status(
    counts: Counter[tuple[str, str, str]], name: str | None = None, tag: str | None = None
) -> dict[str, int]:
    """What count_by_status(name, tag) should answer."""
    result = dict.fromkeys(STATUSES, 0)
    for (n, t, status), count in counts.items():
        if name in (None, n) and tag in (None, t):
            result[status] += count
    return result


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    namespace: str
    workflows: int
    repeat: int
    limit: int
    quick: bool

    def topic(self, suffix: str) -> str:
        return f"{self.namespace}.{suffix}"

    @property
    def kafka(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap}


# -- the floor -----------------------------------------------------------------------------------


class Floor:
    """A request to each partition of a scratch topic and an answer to each, with the
    project's plain Kafka clients (`infinitic_streams.kafka`), no transactions: a thread reads
    the requests and produces each answer to a 1-partition topic, which the caller reads."""

    def __init__(self, settings: Settings) -> None:
        self.kafka = settings.kafka
        self.requests = settings.topic("floor-requests")
        self.answers = settings.topic("floor-answers")
        ensure_topics(
            self.kafka, [TopicSpec(self.requests, PARTITIONS), TopicSpec(self.answers, 1)]
        )
        self.producer = Producer(self.kafka)
        self.reader = Consumer(self.kafka, settings.topic("floor-caller"))  # assigned, no group
        start = self.reader.end_offset(TopicPartition(self.answers, 0))
        self.reader.assign([TopicPartition(self.answers, 0, start)])
        self._stop = threading.Event()
        self._group = settings.topic("floor-responder")
        self._responder = Background(self._respond, "floor responder")

    def _respond(self) -> None:
        consumer = Consumer(self.kafka, self._group)
        consumer.assign([TopicPartition(self.requests, p, 0) for p in range(PARTITIONS)])
        producer = Producer(self.kafka)
        answer = b"a" * FLOOR_ANSWER_BYTES
        try:
            while not self._stop.is_set():
                for message in consumer.consume(100, 0.05):
                    producer.produce(self.answers, message.key(), answer, partition=0)
                producer.poll(0)
        finally:
            producer.flush(10)
            consumer.close()

    def round_trip(self, sequential: bool = False) -> int:
        """One request per partition, produced at once (or each once the one before was
        acknowledged); returns when every answer came back: how many did."""
        request = uuid.uuid4().hex.encode()
        for partition in range(PARTITIONS):
            key = request + b".%d" % partition
            if sequential:
                self.producer.send(self.requests, key, request, SEND_TIMEOUT_S, partition=partition)
            else:
                self.producer.produce(self.requests, key, request, partition=partition)
        self.producer.poll(0)
        waiting = PARTITIONS
        deadline = time.monotonic() + TIMEOUT_S
        while waiting:
            for message in self.reader.consume(100, 0.5):
                if (message.key() or b"").startswith(request):
                    waiting -= 1
            self._responder.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"floor: {waiting} answers missing after {TIMEOUT_S:.0f} s")
        return PARTITIONS

    def stop(self) -> None:
        self._stop.set()
        try:
            self._responder.join()
        finally:
            self.producer.flush(10)
            self.reader.close()


# -- the runtime ---------------------------------------------------------------------------------


@dataclass
class Fill:
    seconds: float = 0.0  # from the second dispatch to the last one returned
    engine_caught_up_s: float = 0.0  # after the last dispatch: every result reached the client
    index_caught_up_s: float = 0.0  # after the last dispatch: count_by_status() as dispatched
    counts: dict[str, int] = field(default_factory=dict)


class Runtime:
    """A Worker (engine and visibility index) in a background thread, and a client."""

    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.problems: list[str] = []
        self.worker = Worker(
            settings.kafka,
            settings.namespace,
            workflows=list(CLASSES),
            state_dir=state_dir,
            partitions=PARTITIONS,
            registry=self.registry,
        ).start()
        try:
            self.client = InfiniticClient(settings.kafka, settings.namespace, PARTITIONS)
        except BaseException:
            self.worker.stop()
            raise
        self.expected = expected_counts(settings.workflows)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.worker.stop()

    def check(self) -> None:
        thread = getattr(self.worker, "_thread", None)
        if thread is not None and not thread.is_alive():
            raise RuntimeError("the Worker stopped early (its error is printed above)")

    def problem(self, text: str) -> None:
        if text not in self.problems:
            log.warning("wrong answer: %s", text)
            self.problems.append(text)

    def dispatch(self, i: int) -> str:
        cls, tag, fail = plan(i)
        return self.client.dispatch(cls.run, fail, tags=[tag]).id

    def ended(self, ids: list[str]) -> list[str]:
        """The ids whose result has not reached the client yet (read from the answers the
        client keeps, without asking the engine)."""
        return [i for i in ids if self.client._replies.latest(i) is None]

    def wait_counted(self, expected: dict[str, int], deadline: float) -> dict[str, int]:
        while True:
            try:
                counts = self.client.count_by_status()
            except TimeoutError as error:  # the index not started yet: it says why
                note(f"waiting for the visibility index: {error}")
                counts = {}
            if counts == expected:
                return counts
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the index counts {counts}, not {expected}, in time")

    def fill(self) -> Fill:
        settings, fill = self.settings, Fill()
        deadline = time.monotonic() + TIMEOUT_S
        first = self.dispatch(0)  # the warm-up: engine, index and topics ready
        while self.ended([first]):
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError("the first workflow did not end in time")
            time.sleep(0.01)
        self.wait_counted(by_status(expected_counts(1)), deadline)
        note(f"warm-up workflow counted; dispatching {settings.workflows - 1:,} more")
        started = time.monotonic()
        with ThreadPoolExecutor(DISPATCHERS) as pool:
            ids = list(pool.map(self.dispatch, range(1, settings.workflows)))
        last = time.monotonic()
        fill.seconds = last - started
        note(f"dispatched in {fill.seconds:.1f} s; waiting for the engine and the index")
        deadline = last + TIMEOUT_S + settings.workflows / 50
        expected = by_status(self.expected)
        pending, counts = ids, {}
        while pending or counts != expected:
            if pending:
                pending = self.ended(pending)
                if not pending:
                    fill.engine_caught_up_s = time.monotonic() - last
            if counts != expected:
                counts = self.client.count_by_status()
                if counts == expected:
                    fill.index_caught_up_s = time.monotonic() - last
            self.check()
            time.sleep(POLL_S)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"after the fill: {len(pending)} results missing, the index counts "
                    f"{counts}, not {expected}"
                )
        fill.counts = counts
        return fill

    # -- the measures, each checking its answer

    def list_all(self) -> int:
        limit = self.settings.limit
        items = self.client.list(limit=limit)
        self.check_page(items, "list()", lambda _: True, min(limit, self.settings.workflows))
        return len(items)

    def list_filtered(self) -> int:
        limit = self.settings.limit
        items = self.client.list(Order, status="FAILED", tag=TAG, limit=limit)
        matching = self.expected[NAMES[Order], TAG, "FAILED"]
        self.check_page(
            items,
            f"list(Order, FAILED, {TAG})",
            lambda w: w.name == NAMES[Order] and w.status == "FAILED" and TAG in w.tags,
            min(limit, matching),
        )
        return len(items)

    def count(self) -> int:
        counted = self.client.count()
        if counted != self.settings.workflows:
            self.problem(f"count() = {counted}, not {self.settings.workflows}")
        return counted

    def count_by_status(self) -> int:
        counts = self.client.count_by_status(tag=TAG)
        expected = by_status(self.expected, tag=TAG)
        if counts != expected:
            self.problem(f"count_by_status(tag={TAG}) = {counts}, not {expected}")
        return sum(counts.values())

    def page(self) -> tuple[int, int]:
        """Every workflow of (Order, TAG), page after page; returns (pages, workflows)."""
        limit, seen, cursor, pages = self.settings.limit, [], None, 0
        while True:
            items = self.client.list(Order, tag=TAG, limit=limit, after=cursor)
            pages += 1
            seen += items
            if len(items) < limit:
                break
            cursor = items[-1].cursor
        what = f"paging list(Order, {TAG})"
        expected = sum(by_status(self.expected, NAMES[Order], TAG).values())
        self.check_page(seen, what, lambda w: w.name == NAMES[Order] and TAG in w.tags, expected)
        return pages, len(seen)

    def check_page(
        self,
        items: list[WorkflowInfo],
        what: str,
        matches: Callable[[WorkflowInfo], bool],
        expected: int,
    ) -> None:
        if len(items) != expected:
            self.problem(f"{what}: {len(items)} workflows, not {expected}")
        if len({w.id for w in items}) != len(items):
            self.problem(f"{what}: the same workflow more than once")
        if any(not matches(w) for w in items):
            self.problem(f"{what}: a workflow that does not match the filters")
        order = [(-w.updated_at.timestamp(), w.id.encode()) for w in items]
        if order != sorted(order):
            self.problem(f"{what}: not newest updated first")

    def metric(self, name: str) -> float:
        """Sum of the samples `name` of the visibility index (whatever other labels)."""
        total = 0.0
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels.get("processor") == "visibility":
                    total += sample.value
        return total

    def index_commits(self) -> tuple[int, float]:
        """The index's transactions so far, and their total commit time (s)."""
        count = self.metric("infinitic_commit_latency_seconds_count")
        return int(count), self.metric("infinitic_commit_latency_seconds_sum")


# -- running -------------------------------------------------------------------------------------


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000, result


@dataclass
class Measured:
    times: dict[str, list[float]]  # ms per call (per page for `page`), the warm-up left out
    pages: int = 0  # of a paging
    queries: int = 0  # list and count calls, the warm-up round's too
    transactions: int = 0  # the index's transactions meanwhile
    commit_seconds: float = 0.0  # their total commit time


def measure(settings: Settings, runtime: Runtime, floor: Floor) -> Measured:
    """R rounds (after a warm-up one), each timing every measure once: ms per call (per page
    for `page`, whose totals are kept as `page_total`)."""
    actions: dict[str, Callable[[], Any]] = {
        "list": runtime.list_all,
        "list_filtered": runtime.list_filtered,
        "count": runtime.count,
        "count_by_status": runtime.count_by_status,
        "page": runtime.page,
        "floor": floor.round_trip,
        "floor_sequential": lambda: floor.round_trip(sequential=True),
    }
    measured = Measured({name: [] for name in [*actions, "page_total"]})
    transactions, commit_seconds = runtime.index_commits()
    for round_number in range(settings.repeat + 1):
        for name, action in actions.items():
            ms, result = timed(action)
            if name == "page":
                measured.pages = result[0]
                measured.queries += measured.pages
            elif not name.startswith("floor"):
                measured.queries += 1
            if round_number == 0:
                continue  # warm-up
            if name == "page":
                measured.times["page_total"].append(ms)
                ms /= measured.pages
            measured.times[name].append(ms)
        runtime.check()
    time.sleep(0.2)  # let the index's last commit reach its metrics
    transactions_after, commit_seconds_after = runtime.index_commits()
    measured.transactions = transactions_after - transactions
    measured.commit_seconds = commit_seconds_after - commit_seconds
    return measured


def summary(
    settings: Settings,
    fill: Fill,
    measured: Measured,
    store_keys_estimate: int,
    problems: list[str],
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, values in measured.times.items():
        result[f"{name}_p50_ms"] = round(nearest_rank(values, 0.5), 2)
        result[f"{name}_p95_ms"] = round(nearest_rank(values, 0.95), 2)
        result[f"{name}_min_ms"] = round(min(values), 2) if values else 0.0
    floor = result["floor_p50_ms"]
    for name in ("list", "list_filtered", "count", "count_by_status", "page"):
        result[f"{name}_ratio_to_floor"] = round(result[f"{name}_p50_ms"] / floor, 2)
    workflows, limit = settings.workflows, settings.limit
    store_keys = workflows * (1 + 4)  # a summary and 4 index keys per 1-tag workflow
    planned = expected_counts(workflows)
    result.update(
        {
            "pages": measured.pages,
            "page_selection": sum(by_status(planned, NAMES[Order], TAG).values()),
            "list_filtered_selection": planned[NAMES[Order], TAG, "FAILED"],
            "list_keys_read_max": PARTITIONS * (len(STATUSES) * (1 + limit) + limit),
            "count_keys_read": PARTITIONS * len(STATUSES),
            "store_keys": store_keys,
            "store_keys_estimate": store_keys_estimate,
            "index_transactions_per_query": round(measured.transactions / measured.queries, 2),
            "index_commit_ms": round(
                measured.commit_seconds * 1000 / max(1, measured.transactions), 2
            ),
            "fill_seconds": round(fill.seconds, 2),
            "fill_workflows_per_s": round((workflows - 1) / max(fill.seconds, 1e-6), 1),
            "engine_caught_up_s": round(fill.engine_caught_up_s, 2),
            "index_caught_up_s": round(fill.index_caught_up_s, 2),
            "counts_by_status": fill.counts,
            "problems": problems,
            "workflows": workflows,
            "partitions": PARTITIONS,
            "limit": limit,
            "repeat": settings.repeat,
            "quick": settings.quick,
            "namespace": settings.namespace,
            "bootstrap": settings.bootstrap,
        }
    )
    return result


def print_result(settings: Settings, result: dict[str, Any]) -> None:
    workflows = settings.workflows
    print(
        f"fill: {workflows:,} workflows (none runs a task), dispatched in "
        f"{result['fill_seconds']:.1f} s ({result['fill_workflows_per_s']:,.0f}/s from "
        f"{DISPATCHERS} threads); after the last dispatch the engine had ended them all in "
        f"{result['engine_caught_up_s']:.2f} s, the index counted them all in "
        f"{result['index_caught_up_s']:.2f} s",
        flush=True,
    )
    counts = ", ".join(f"{k} {v:,}" for k, v in result["counts_by_status"].items() if v)
    print(f"counted by status: {counts}", flush=True)
    print(
        f"\n{settings.repeat} rounds, ms{'':<36} {'p50':>7} {'p95':>7} {'min':>7} {'/ floor':>8}",
        flush=True,
    )
    for name, label in MEASURES.items():
        text = label.format(L=settings.limit, tag=TAG)
        ratio = result[f"{name}_p50_ms"] / result["floor_p50_ms"]
        print(
            f"{text:<48} {result[f'{name}_p50_ms']:>7.2f} {result[f'{name}_p95_ms']:>7.2f} "
            f"{result[f'{name}_min_ms']:>7.2f} {ratio:>8.2f}",
            flush=True,
        )
    print(
        f"(the filtered list matches {result['list_filtered_selection']:,} workflows; the "
        f"paging reads {result['page_selection']:,} in {result['pages']} pages, "
        f"{result['page_total_p50_ms']:.1f} ms in all at p50)",
        flush=True,
    )
    print(
        f"\nkeys read: a list at most {result['list_keys_read_max']:,} (per partition: "
        f"{len(STATUSES)} counters, {settings.limit} index keys of each status, "
        f"{settings.limit} summaries), "
        f"a count {result['count_keys_read']}; the index holds {result['store_keys']:,} keys "
        f"for {workflows:,} workflows (RocksDB estimates {result['store_keys_estimate']:,})",
        flush=True,
    )
    print(
        f"the index: {result['index_transactions_per_query']:.2f} transactions per list or "
        f"count (its answers go out when one commits), {result['index_commit_ms']:.2f} ms "
        "per commit",
        flush=True,
    )
    if result["problems"]:
        print(f"\nWRONG ANSWERS: {'; '.join(result['problems'])}", flush=True)


def run(settings: Settings, work_dir: Path) -> dict[str, Any]:
    note(f"namespace {settings.namespace} on {settings.bootstrap}")
    note(f"starting a Worker (engine + visibility index) and a client, state in {work_dir}")
    runtime = Runtime(settings, work_dir / "state")
    try:
        fill = runtime.fill()
        note("index caught up; measuring")
        floor = Floor(settings)
        try:
            measured = measure(settings, runtime, floor)
        finally:
            floor.stop()
        time.sleep(1.0)  # let the gauges of the index's stores refresh
        keys = int(runtime.metric("infinitic_store_keys"))
        problems = list(runtime.problems)
    finally:
        runtime.close()
    result = summary(settings, fill, measured, keys, problems)
    print_result(settings, result)
    return result


def clean_up(settings: Settings) -> None:
    """Delete the run's topics and consumer groups (best effort: report, do not raise)."""
    topics, groups = delete_namespace(settings.kafka, settings.namespace, log)
    note(f"deleted {len(topics)} topics and {len(groups)} consumer groups of {settings.namespace}")


def parse_settings(argv: list[str] | None = None) -> tuple[Settings, bool]:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="2,000 workflows and 5 rounds (< 2 min)"
    )
    parser.add_argument("--workflows", type=int, help="workflows in the namespace (10,000)")
    parser.add_argument("--repeat", type=int, help="rounds of measures (20)")
    parser.add_argument("--limit", type=int, default=50, help="page size of the lists (50)")
    parser.add_argument("--verbose", action="store_true", help="show the runtime's log")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    settings = Settings(
        bootstrap=args.bootstrap,
        namespace=f"bench-vis-{uuid.uuid4().hex[:8]}",
        workflows=max(1, args.workflows or sizes["workflows"]),
        repeat=max(1, args.repeat or sizes["repeat"]),
        limit=args.limit,
        quick=args.quick,
    )
    return settings, args.verbose


def main(argv: list[str] | None = None) -> None:
    settings, verbose = parse_settings(argv)
    run_benchmark(settings, verbose, run, clean_up)


if __name__ == "__main__":
    main()
