"""Engines scaled out and in, as pods would be, with 500 workflows of 10 tasks in flight.

Engines run `infinitic-streams engine` exactly as a StatefulSet pod does: a config file, an
instance id (the pod's name: a stable transactional.id) and a state dir of their own (the PVC).
Service workers run in the test's process; each task takes PACE_S and SERVICE_CONCURRENCY run
at once, as real tasks would: on any machine the work then lasts long enough for every change
to happen while every partition still has work (unpaced, the 5,000 steps are done in about 15 s
here, less than the three changes take). While the workflows run:
1. 1 -> 3 engines (two join; partitions move with their state, rebuilt from the changelog);
2. 3 -> 2 (one stops cleanly on SIGTERM: it commits, leaves the group);
3. one of the two is kill -9'd, its state dir deleted, and started again (a pod back on a new
   node without its volume): it rebuilds its partitions from the changelog.
Every workflow must complete with the right result, each task exactly once (the histories, and
the events topic read by a `read_committed` consumer beside the test).

For each change the test prints (run with `-s`; shown on failure too) the longest pause
without any completed task around it, the longest a task that had returned waited for its
engine to record it (how long its workflow paused; the wait for a service slot is not counted),
how long until the engines owned every partition again (restored) and until every partition
with work left completed tasks again, and the restores the engines logged (records, seconds);
then the same pauses between changes, for reference. Nothing is asserted about times: the
machine may be busy."""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import re
import shutil
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from infinitic_streams import InfiniticClient, Worker, WorkflowHandle, task_context

from .apps.workflows import StepsImpl, Sum
from .kafka_support import _Subprocess

WORKFLOWS, STEPS = 500, 10
TASKS = WORKFLOWS * STEPS
RESULT = sum(range(STEPS))
PARTITIONS = 8
RESULT_TIMEOUT_S = 180.0
PACE_S, SERVICE_CONCURRENCY = 0.4, 50  # at most 125 tasks/s: about 40 s of work
SETTLE_TIMEOUT_S = 120.0  # until the engines own every partition again, restored
# Each change starts once this share of the tasks completed, and at least STEADY more since the
# previous change was over (never later than at 90%: work must be in flight).
CHANGE_AT = {"1 -> 3 engines": 0.10, "3 -> 2 (SIGTERM)": 0.35, "kill -9, restart w/o state": 0.60}
STEADY = 0.05
RESTORED = re.compile(
    r"(engine|visibility): restored partition\(s\) ([\d, -]+): (\d+) records in ([\d.]+) s"
)


class PacedSteps(StepsImpl):
    """Steps whose `add` takes PACE_S; it notes when each task returned, by (workflow id, step):
    Sum's step i adds i - 1."""

    def __init__(self) -> None:
        self.returned: dict[tuple[str, int], float] = {}

    def add(self, x: int, y: int) -> int:
        time.sleep(PACE_S)
        self.returned.setdefault((task_context().workflow_id, y + 1), time.time())
        return x + y


class EngineProcess(_Subprocess):
    """`python -m infinitic_streams engine` as a StatefulSet pod runs it: the config file (the
    ConfigMap) names its state dir (the PVC); `name` is the pod's name (`--instance-id`).
    Metrics on a port the kernel picks, read back from the log."""

    def __init__(self, config: Path, name: str) -> None:
        command = ["infinitic_streams", "engine", "-c", str(config), "--instance-id", name]
        super().__init__(command, config.parent / f"{name}-{time.time_ns()}.log")
        self.name = name
        self._metrics_url: str | None = None

    def partitions(self) -> tuple[int, int] | None:
        """(assigned, restoring) partitions of its engine processor; None before it serves."""
        if self._metrics_url is None:
            found = re.search(r"metrics on (http://\S+/metrics)", self.log())
            if found is None:
                return None
            self._metrics_url = found.group(1)
        try:
            with urllib.request.urlopen(self._metrics_url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None
        values = {}
        for name in ("infinitic_partitions_assigned", "infinitic_partitions_restoring"):
            found = re.search(rf'^{name}{{[^}}]*processor="engine"[^}}]*}} (\S+)$', text, re.M)
            if found is None:
                return None
            values[name] = int(float(found.group(1)))
        return values["infinitic_partitions_assigned"], values["infinitic_partitions_restoring"]


class Engines:
    """The engine processes of the test, each with its config file and state dir."""

    def __init__(self, bootstrap: str, namespace: str, root: Path) -> None:
        self.bootstrap, self.namespace, self.root = bootstrap, namespace, root
        self.running: dict[str, EngineProcess] = {}
        self.every: list[EngineProcess] = []  # every process started, for logs and clean-up

    def state_dir(self, name: str) -> Path:
        return self.root / name / "state"

    def start(self, name: str) -> None:
        config = self.root / name / "infinitic.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f'namespace = "{self.namespace}"\n'
            f"partitions = {PARTITIONS}\n"
            f'[kafka]\n"bootstrap.servers" = "{self.bootstrap}"\n'
            f'[worker]\nworkflows = ["tests.apps.workflows:Sum"]\n'
            f'state_dir = "{self.state_dir(name)}"\n'
            f'[metrics]\nport = 0\nhost = "127.0.0.1"\n'
        )
        process = EngineProcess(config, name)
        self.running[name] = process
        self.every.append(process)

    def settled(self) -> bool:
        """Every running engine owns partitions, all restored, and together all of them."""
        counts = [engine.partitions() for engine in self.running.values()]
        if any(c is None or c[0] == 0 or c[1] > 0 for c in counts):
            return False
        return sum(c[0] for c in counts if c is not None) == PARTITIONS

    def log_sizes(self) -> dict[int, int]:
        return {id(engine): len(engine.log()) for engine in self.every}

    def kill_all(self) -> None:
        for engine in self.every:
            engine.kill()


class TaskWatch:
    """Reads `<ns>.events` (read_committed) from its start, in a thread: the task steps each
    workflow scheduled and completed, when each task completed (the engine's time) and in which
    partition, and the workflows' results."""

    def __init__(self, bootstrap: str, namespace: str) -> None:
        self._bootstrap, self._topic = bootstrap, f"{namespace}.events"
        self.scheduled: dict[str, list[int]] = defaultdict(list)
        self.completed: dict[str, list[int]] = defaultdict(list)
        self.results: dict[str, list[Any]] = defaultdict(list)
        self.completions: list[tuple[float, int, str, int]] = []  # (time, partition, id, step)
        self._running: Counter[int] = Counter()  # workflows started and not ended, by partition
        self._last: dict[int, float] = {}  # the last completion, by partition
        self.other: list[str] = []  # event types a task that never fails has no reason for
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="task watch", daemon=True)
        self._thread.start()

    def done(self) -> int:
        with self._lock:
            return len(self.completions)

    def resumed(self, since: float) -> bool:
        """Every partition with workflows still running completed a task since `since`."""
        with self._lock:
            busy = [p for p, n in self._running.items() if n > 0]
            return all(self._last.get(p, 0.0) >= since for p in busy)

    def times(self) -> list[tuple[float, int, str, int]]:
        with self._lock:
            return sorted(self.completions)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": f"{self._topic}.scale-test",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        try:
            partitions: list[int] = []
            while not partitions and not self._stop.is_set():  # the first engine creates it
                topic = consumer.list_topics(self._topic, timeout=10).topics[self._topic]
                partitions = list(topic.partitions) if topic.error is None else []
                if not partitions:
                    time.sleep(0.5)
            consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions])
            while not self._stop.is_set():
                for message in consumer.consume(1000, 0.2):
                    if message.error() is None:
                        self._take(message.partition(), json.loads(message.value()))
        except BaseException as error:  # the test reports it
            self.error = error
        finally:
            consumer.close()

    def _take(self, partition: int, event: dict[str, Any]) -> None:
        kind, workflow_id, data = event["type"], event["subject"], event["data"]
        with self._lock:
            if kind == "infinitic.task.scheduled":
                self.scheduled[workflow_id].append(data["seq"])
            elif kind == "infinitic.task.completed":
                self.completed[workflow_id].append(data["seq"])
                at = datetime.fromisoformat(event["time"]).timestamp()
                self.completions.append((at, partition, workflow_id, data["seq"]))
                self._last[partition] = max(at, self._last.get(partition, 0.0))
            elif kind == "infinitic.workflow.completed":
                self.results[workflow_id].append(data["result"])
                self._running[partition] -= 1
            elif kind == "infinitic.workflow.started":
                self._running[partition] += 1
            else:
                self.other.append(f"{workflow_id}: {kind}")


@dataclass
class Change:
    name: str
    started_at: float  # wall clock, as the events' times
    done_before: int  # tasks completed when it started
    settled_after: float | None = None  # seconds until the engines owned every partition
    resumed_after: float | None = None  # and until each busy partition completed a task again
    done_after: int = 0  # tasks completed then
    log_sizes: dict[int, int] = field(default_factory=dict)


def test_engines_scale_1_3_2_and_one_killed_and_rebuilt_from_the_changelog(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    test_started = time.monotonic()
    engines = Engines(kafka_bootstrap, namespace, tmp_path)
    steps = PacedSteps()
    services = Worker(
        {"bootstrap.servers": kafka_bootstrap},
        namespace,
        services=[steps],
        engine=False,
        concurrency=SERVICE_CONCURRENCY,
    ).start()
    watch = TaskWatch(kafka_bootstrap, namespace)  # waits for the first engine's topics
    changes: list[Change] = []
    try:
        engines.start("engine-1")
        with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as client:
            with ThreadPoolExecutor(8) as pool:  # each dispatch waits for its acknowledgement
                handles = list(
                    pool.map(lambda _: client.dispatch(Sum.run, STEPS), range(WORKFLOWS))
                )
            print(f"\n{WORKFLOWS} workflows dispatched in {time.monotonic() - test_started:.1f} s")

            def change(name: str, action: Callable[[], None]) -> None:
                share = CHANGE_AT[name]
                if changes:
                    share = max(share, changes[-1].done_after / TASKS + STEADY)
                _wait(lambda: watch.done() >= min(share, 0.9) * TASKS, name, engines, watch)
                step = Change(name, time.time(), watch.done(), log_sizes=engines.log_sizes())
                changes.append(step)
                assert step.done_before < TASKS, f"{name}: every task completed already"
                started = time.monotonic()
                action()
                _wait(engines.settled, f"{name}: settled", engines, watch, SETTLE_TIMEOUT_S)
                step.settled_after = time.monotonic() - started
                settled_at = time.time()
                resumed = functools.partial(watch.resumed, settled_at)
                _wait(resumed, f"{name}: resumed", engines, watch, SETTLE_TIMEOUT_S)
                step.resumed_after = time.monotonic() - started
                step.done_after = watch.done()

            def scale_out() -> None:
                engines.start("engine-2")
                engines.start("engine-3")

            def stop_one() -> None:
                code = engines.running.pop("engine-3").terminate()
                assert code == 0, f"engine-3 exited with {code}"

            def kill_one_and_lose_its_volume() -> None:
                engines.running.pop("engine-2").kill()
                shutil.rmtree(engines.state_dir("engine-2"))
                engines.start("engine-2")  # same pod name, an empty volume

            change("1 -> 3 engines", scale_out)
            change("3 -> 2 (SIGTERM)", stop_one)
            change("kill -9, restart w/o state", kill_one_and_lose_its_volume)

            deadline = time.monotonic() + RESULT_TIMEOUT_S
            results = [_result(h, deadline) for h in handles]
            stuck = [h for h, r in zip(handles, results, strict=True) if r is None]
            assert not stuck, _diagnose(stuck, engines)
            assert results == [RESULT] * WORKFLOWS
            asked = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                histories = list(pool.map(lambda h: h.history(), handles))
            print(f"{WORKFLOWS} histories read in {time.monotonic() - asked:.1f} s")
        for handle, history in zip(handles, histories, strict=True):
            events = [e["event"] for e in history]
            for kind in ("TaskScheduled", "TaskSucceeded"):
                seqs = sorted(e["seq"] for e in history if e["event"] == kind)
                assert seqs == list(range(1, STEPS + 1)), f"{handle.id} {kind}: {events}"
            assert events.count("Ended") == 1, f"{handle.id}: {events}"
        _wait(lambda: watch.done() >= TASKS, "the events of every task", engines, watch, 60.0)
        time.sleep(1.0)  # a duplicate would come right after
        assert watch.error is None, watch.error
        assert watch.other == [], watch.other[:10]
        assert len(watch.completions) == TASKS
        for handle in handles:
            for seqs in (watch.scheduled[handle.id], watch.completed[handle.id]):
                assert sorted(seqs) == list(range(1, STEPS + 1)), handle.id
            assert watch.results[handle.id] == [RESULT], handle.id
        for name, engine in engines.running.items():
            assert engine.running(), f"{name}:\n{engine.log()[-5000:]}"
    finally:
        try:
            watch.close()
            _report(changes, engines, watch, steps, time.monotonic() - test_started)
        finally:
            engines.kill_all()
            services.stop()


def _wait(
    condition: Callable[[], bool],
    what: str,
    engines: Engines,
    watch: TaskWatch,
    timeout: float = RESULT_TIMEOUT_S,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if watch.error is not None:
            raise AssertionError(f"{what}: the events topic could not be read") from watch.error
        if time.monotonic() > deadline:
            logs = [
                f"--- {e.name} ({e.log_path})\n{_tail(e.log_with_stacks())}"
                for e in engines.running.values()
            ]
            counts = {name: e.partitions() for name, e in engines.running.items()}
            raise TimeoutError(
                f"{what}: not within {timeout:.0f} s ({watch.done()}/{TASKS} tasks done, "
                f"partitions (assigned, restoring): {counts})\n" + "\n".join(logs)
            )
        time.sleep(0.2)


def _result(handle: WorkflowHandle, deadline: float) -> int | None:
    try:
        return handle.result(timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[no-any-return]
    except TimeoutError:
        return None


def _diagnose(stuck: list[WorkflowHandle], engines: Engines) -> str:
    lines = [f"{len(stuck)} workflows did not end"]
    for handle in stuck[:3]:
        try:
            info = handle.describe()
            lines.append(f"{handle.id}: {info.status} pending {info.pending}")
            lines += [f"    {event}" for event in handle.history()[-3:]]
        except Exception as error:  # the report must not hide the failure
            lines.append(f"{handle.id}: describe failed: {error!r}")
    for engine in engines.running.values():
        lines += [f"--- {engine.name} ({engine.log_path})", _tail(engine.log_with_stacks())]
    return "\n".join(lines)


def _tail(log: str, lines: int = 60) -> str:
    return "\n".join([line for line in log.splitlines() if "librdkafka" not in line][-lines:])


def _report(
    changes: list[Change], engines: Engines, watch: TaskWatch, steps: PacedSteps, seconds: float
) -> None:
    """Print, for each change: the longest pause without a completed task that overlaps it
    (from its start until every partition with work left completed a task again), the longest
    a task that had returned waited for its engine to record it meanwhile (the pause of its
    workflow; the time a task waits for the service is not counted), times relative to the
    change's start; and the restores its engines logged. Then the same between changes."""
    completions = watch.times()
    every = [t for t, *_ in completions]
    waits = sorted(  # (returned, recorded) of each task
        (steps.returned.get((workflow_id, step), at), at)
        for at, _, workflow_id, step in completions
    )
    last = every[-1] if every else float("inf")
    nexts = [c.started_at for c in changes[1:]] + [last]
    later = [c.log_sizes for c in changes[1:]] + [engines.log_sizes()]
    steady = [(every[0] if every else 0.0, changes[0].started_at if changes else 0.0)]
    print(f"\n{watch.done()}/{TASKS} tasks completed; the test took {seconds:.1f} s")
    for step, next_at, until in zip(changes, nexts, later, strict=True):
        at = step.started_at
        end = next_at if step.resumed_after is None else at + step.resumed_after
        steady.append((end, next_at))
        pause = _longest_pause(every, at, end)
        wait = max(
            (w for w in waits if w[0] <= end and w[1] >= at),
            key=lambda w: w[1] - w[0],
            default=(at, at),
        )
        print(
            f"{step.name} (at {step.done_before}/{TASKS} tasks): longest pause without a "
            f"completed task {_gap(pause, at)}; longest wait of a returned task for its "
            f"engine {_gap(wait, at)}; every partition owned and restored after "
            f"{_seconds(step.settled_after)}, completing tasks again after "
            f"{_seconds(step.resumed_after)}"
        )
        for engine in engines.every:
            if id(engine) not in until:
                continue  # started by a later change
            text = engine.log()[step.log_sizes.get(id(engine), 0) : until[id(engine)]]
            for processor, numbers, records, secs in RESTORED.findall(text):
                print(
                    f"    {engine.name} {processor}: restored partitions {numbers}: "
                    f"{records} records in {secs} s"
                )
    quiet = max((_longest_within(every, a, b) for a, b in steady), default=0.0)
    quiet_wait = max((r - t for a, b in steady for t, r in waits if a <= t and r <= b), default=0.0)
    print(
        f"between changes: longest pause without a completed task {quiet:.1f} s; longest wait "
        f"of a returned task for its engine {quiet_wait:.1f} s"
    )


def _longest_pause(times: list[float], start: float, end: float) -> tuple[float, float]:
    """The longest gap between completions that overlaps [start, end] (`times` sorted), from
    the last one before `start` to the first one after `end`, as (from, to)."""
    first = max(bisect.bisect_left(times, start) - 1, 0)
    window = times[first : bisect.bisect_right(times, end) + 1]
    return max(itertools.pairwise(window), key=lambda gap: gap[1] - gap[0], default=(start, start))


def _longest_within(times: list[float], start: float, end: float) -> float:
    """The longest gap between completions within [start, end] (`times` sorted)."""
    window = times[bisect.bisect_left(times, start) : bisect.bisect_right(times, end)]
    return max((b - a for a, b in itertools.pairwise(window)), default=0.0)


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def _gap(gap: tuple[float, float], origin: float) -> str:
    return f"{gap[1] - gap[0]:.1f} s ({gap[0] - origin:+.1f} s to {gap[1] - origin:+.1f} s)"
