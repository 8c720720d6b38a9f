"""`infinitic-streams list | count | events` against a real broker. One Worker (engine,
visibility index and the Steps service) runs the workflows of `tests/apps/workflows.py` for the
whole module; the commands run from a directory without infinitic.toml, with --namespace and
--bootstrap. The index reflects a change within about a second: tests wait until
`client.count(...)` says what they expect before reading the commands' output."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from infinitic_streams import InfiniticClient, Worker
from infinitic_streams.cli.visibility import partition_of
from infinitic_streams.kafka.admin import Admin
from infinitic_streams.kafka.consumer import Consumer, TopicPartition
from infinitic_streams.kafka.producer import Producer
from infinitic_streams.topics import Topics, TopicSpec

from .apps import workflows as apps
from .test_cli import cli, write_config

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 3
WAIT_S = 60.0
SUM_EVENTS = [
    "infinitic.workflow.started",
    "infinitic.task.scheduled",
    "infinitic.task.completed",
    "infinitic.task.scheduled",
    "infinitic.task.completed",
    "infinitic.workflow.completed",
]


@dataclass
class Namespace:
    client: InfiniticClient
    where: list[str]  # --namespace and --bootstrap
    sums: list[str]  # Sum(2) tagged blue, ended in this order
    failed: str  # Fixable, tagged blue, FAILED
    running: str  # Sleeper, tagged red, RUNNING
    eventful: str  # Eventful: a retry, a timer, a task that fails: FAILED


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test runs in its own directory, without infinitic.toml."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INFINITIC_CONFIG", raising=False)


@pytest.fixture(scope="module")
def ns(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Namespace]:
    """The module's namespace, its Worker, and its workflows (all recorded by the index)."""
    name = f"t-cli-visibility-{uuid.uuid4().hex[:8]}"
    kafka = {"bootstrap.servers": kafka_bootstrap}
    state = tmp_path_factory.mktemp("cli-visibility")
    worker = Worker(
        kafka,
        name,
        services=[cls() for cls in apps.SERVICES],
        workflows=apps.WORKFLOWS,
        state_dir=state,
        partitions=PARTITIONS,
        registry=CollectorRegistry(),
    ).start()
    try:
        with InfiniticClient(kafka, name, PARTITIONS) as client:
            wait_until(client.engine_running, "the engine joins its group")
            blocker = state / "fault"
            blocker.touch()  # Fixable fails while it exists
            failed = client.dispatch(apps.Fixable.run, str(blocker), tags=["blue"])
            running = client.dispatch(apps.Sleeper.run, 600.0, tags=["red"])
            eventful = client.dispatch(apps.Eventful.run, 1)
            sums = []
            for _ in range(3):  # one after the other: each ends after the one before
                handle = client.dispatch(apps.Sum.run, 2, tags=["blue"])
                assert handle.result(timeout=WAIT_S) == 1
                sums.append(handle.id)
            wait_until(lambda: client.count(status="FAILED") == 2, "two workflows failed")
            wait_until(lambda: client.count() == 6, "the index lists all six")
            yield Namespace(
                client,
                ["--namespace", name, "--bootstrap", kafka_bootstrap],
                sums,
                failed.id,
                running.id,
                eventful.id,
            )
    finally:
        worker.stop()


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.1)
    return found


def ok(*args: str) -> str:
    code, out, err = cli(*args)
    assert code == 0, (args, out, err)
    return out


def failed(*args: str) -> str:
    """Run a command that must fail (exit code 1); its stderr on one line."""
    code, out, err = cli(*args)
    assert code == 1, (args, out, err)
    return " ".join(err.split())


def table(out: str) -> list[list[str]]:
    """The rows of a `kubectl get`-like table (cells split on runs of 2+ spaces)."""
    return [
        [cell.strip() for cell in line.split("  ") if cell.strip()] for line in out.splitlines()
    ]


# -- list and count --------------------------------------------------------------------------


def test_list_filters_newest_first(ns: Namespace) -> None:
    blue_sums = ["--workflow", "Sum", "--tag", "blue", *ns.where]
    listed = json.loads(ok("list", *blue_sums, "-o", "json"))
    assert [w["id"] for w in listed["workflows"]] == ns.sums[::-1]  # newest first
    assert listed["next"] is None
    first = listed["workflows"][0]
    assert set(first) == {"id", "name", "method", "status", "tags", "started_at"} | {
        "updated_at", "ended_at", "error", "cursor"
    }  # fmt: skip
    assert (first["name"], first["method"], first["status"]) == ("Sum", "run", "COMPLETED")
    assert first["tags"] == ["blue"] and first["ended_at"] and first["error"] is None
    assert json.loads(ok("list", *blue_sums, "--json")) == listed  # --json is -o json

    rows = table(ok("list", "--tag", "blue", *ns.where))
    assert rows[0] == ["ID", "NAME", "STATUS", "TAGS", "STARTED", "UPDATED", "ERROR"]
    assert [row[0] for row in rows[1:] if row[0] in ns.sums] == ns.sums[::-1]
    assert {row[0] for row in rows[1:]} == {*ns.sums, ns.failed}
    everything = json.loads(ok("list", *ns.where, "-o", "json"))["workflows"]
    assert len(everything) == 6
    updated = [w["updated_at"] for w in everything]
    assert updated == sorted(updated, reverse=True)  # newest first (ISO: in time order)
    error = next(row[-1] for row in rows if row[0] == ns.failed)
    assert error.startswith("TaskFailed: task Steps.fails_while_file_exists") and error[-1] == "…"
    assert all(row[2] in ("COMPLETED", "FAILED") and row[3] == "blue" for row in rows[1:])
    assert all(row[4].endswith(" ago") for row in rows[1:])

    failed_blue = table(ok("list", "--tag", "blue", "--status", "failed", *ns.where))
    assert [row[:3] for row in failed_blue[1:]] == [[ns.failed, "Fixable", "FAILED"]]
    running = table(ok("list", "--status", "Running", *ns.where))
    assert [row[:4] for row in running[1:]] == [[ns.running, "Sleeper", "RUNNING", "red"]]
    none = ok("list", "--workflow", "Sleeper", "--tag", "blue", *ns.where)
    assert none.strip() == f"No workflows matching these filters in namespace {ns.where[1]!r}."


def test_list_limit_and_the_next_page(ns: Namespace) -> None:
    out = ok("list", "--workflow", "Sum", "--limit", "2", *ns.where)
    *rows, blank, hint = out.splitlines()
    assert [row[0] for row in table("\n".join(rows))[1:]] == ns.sums[:0:-1]  # the two newest
    assert blank == ""
    assert hint.startswith("More: infinitic-streams list --workflow Sum --limit 2 --after ")
    again = hint.removeprefix("More: infinitic-streams ").split()
    last = ok(*again, *ns.where)
    assert [row[0] for row in table(last)[1:]] == [ns.sums[0]]
    assert "More:" not in last
    page = json.loads(ok("list", "--workflow", "Sum", "--limit", "2", "-o", "json", *ns.where))
    assert page["next"] == again[-1] == page["workflows"][-1]["cursor"]


def test_count_per_status(ns: Namespace) -> None:
    rows = table(ok("count", *ns.where))
    assert rows == [
        ["STATUS", "COUNT"],
        ["RUNNING", "1"],
        ["COMPLETED", "3"],
        ["FAILED", "2"],
        ["CANCELED", "0"],
        ["TOTAL", "6"],
    ]
    assert ok("count", "--status", "failed", *ns.where) == "2\n"
    assert ok(
        "count", "--tag", "blue", "--workflow", "Sum", "--status", "COMPLETED", *ns.where
    ) == ("3\n")
    assert json.loads(ok("count", "--tag", "blue", "-o", "json", *ns.where)) == {
        "count": 4,
        "by_status": {"RUNNING": 0, "COMPLETED": 3, "FAILED": 1, "CANCELED": 0},
    }
    assert json.loads(ok("count", "--tag", "red", "--status", "running", "--json", *ns.where)) == {
        "count": 1
    }


def test_a_wrong_status_names_the_valid_ones() -> None:
    for command in ("list", "count"):
        err = failed(command, "--status", "done", "--bootstrap", "127.0.0.1:1")
        assert (
            err
            == "Unknown status 'done': use one of RUNNING, COMPLETED, FAILED, CANCELED (any case)."
        )


def test_an_empty_namespace_says_what_is_missing(kafka_bootstrap: str, namespace: str) -> None:
    where = ["--namespace", namespace, "--bootstrap", kafka_bootstrap]
    for command in ("list", "count"):
        err = failed(command, *where)
        assert f"No visibility index runs for namespace '{namespace}'" in err
        assert "infinitic-streams engine" in err
    err = failed("events", "some-id", *where)
    assert f"Namespace '{namespace}' has no events topic ({namespace}.events is absent)" in err


@pytest.mark.parametrize("command", ["list", "count", "events"])
def test_the_commands_are_in_the_help(command: str) -> None:
    assert f"  {command}  " in ok("-h")
    out = ok(command, "-h")
    options = out[out.index("Options:") :]
    assert "<bool>" not in options and "<str>" not in options
    for option in ("--namespace", "--bootstrap", "--config", "--output", "--workflow"):
        assert option in options or (command == "events" and option == "--workflow")
    assert ("--follow" in options) == (command == "events")


# -- events ----------------------------------------------------------------------------------


def test_events_of_a_workflow(ns: Namespace) -> None:
    workflow_id = ns.sums[0]
    lines = ok("events", workflow_id, *ns.where).splitlines()
    assert [line.split()[1] for line in lines] == SUM_EVENTS
    assert lines[0].split()[2] == "Sum.run(2)"
    assert lines[1].split()[2:] == ["#1", "Steps.add(0,", "0)"]
    assert lines[-1].split()[2] == "result=1"
    for line in lines:
        time.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")

    events = [
        json.loads(line) for line in ok("events", workflow_id, "-o", "json", *ns.where).splitlines()
    ]
    assert [e["type"] for e in events] == SUM_EVENTS
    assert {e["subject"] for e in events} == {workflow_id}
    assert len({e["id"] for e in events}) == len(events)
    assert events[0]["specversion"] == "1.0" and events[0]["workflowname"] == "Sum"
    assert events[-1]["workflowstatus"] == "COMPLETED"
    assert ok("events", workflow_id, "--json", *ns.where) == ok(
        "events", workflow_id, "-o", "json", *ns.where
    )

    types = [line.split()[1] for line in ok("events", ns.eventful, *ns.where).splitlines()]
    for expected in ("task.retried", "timer.fired", "task.failed", "workflow.failed"):
        assert f"infinitic.{expected}" in types
    assert types[0] == "infinitic.workflow.started" and types[-1] == "infinitic.workflow.failed"


def test_events_of_an_unknown_workflow_say_so(ns: Namespace) -> None:
    err = failed("events", "nobody", *ns.where)
    assert f"No events of workflow nobody in {ns.where[1]}.events" in err
    assert "events exist only for workflows recorded since the events topic exists" in err


def test_events_follow_prints_new_events_until_sigint(ns: Namespace, kafka_bootstrap: str) -> None:
    """`events ID -f` before the workflow exists: it says it waits, prints each event as it
    happens, and Ctrl-C ends it with code 130 and no traceback. (Its workflow is the module's
    seventh: the list and count tests, which come first, count six.)"""
    workflow_id = f"followed-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "infinitic_streams", "events", workflow_id, "-f", *ns.where],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = lines_of(process.stdout), lines_of(process.stderr)
    try:
        assert "No events of workflow" in next_line(err, "the follower waits")
        assert "Waiting for them (Ctrl-C to stop)" in next_line(err, "the follower waits")
        ns.client.dispatch(apps.Sum.run, 2, id=workflow_id)
        seen = [next_line(out, "an event is printed").split()[1] for _ in SUM_EVENTS]
        assert seen == SUM_EVENTS
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in "".join(drain(err))


def lines_of(stream: Any) -> queue.Queue[str]:
    """The lines of a subprocess's stream, as they come (read by a thread of their own)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def next_line(lines: queue.Queue[str], what: str) -> str:
    try:
        return lines.get(timeout=WAIT_S)
    except queue.Empty:
        raise AssertionError(f"not within {WAIT_S:g} s: {what}") from None


def drain(lines: queue.Queue[str]) -> list[str]:
    time.sleep(0.2)  # the reader thread takes what the process wrote last
    found = []
    while not lines.empty():
        found.append(lines.get())
    return found


def test_keys_go_to_their_crc32_partition(ns: Namespace, kafka_bootstrap: str) -> None:
    """librdkafka's default partitioner puts a record keyed K in partition CRC32(K) % n,
    which `events` relies on: checked for keys sent through the project's producer, and for
    every record of the module's events topic (written by the engine's transactions)."""
    kafka = {"bootstrap.servers": kafka_bootstrap}
    topic = f"{ns.where[1]}.crc32-check"
    Admin(kafka).ensure_topics([TopicSpec(topic, 7)])
    producer = Producer(kafka)
    keys = [f"key-{i}-{uuid.uuid4().hex[:6]}" for i in range(100)]
    for key in keys:
        assert producer.send(topic, key.encode(), b"x", 30.0).error is None
    assert read_keys(kafka, topic, 7) == {key: partition_of(key, 7) for key in keys}

    events = Topics(ns.where[1]).events
    found = read_keys(kafka, events, PARTITIONS)
    assert set(found) >= {*ns.sums, ns.failed, ns.running, ns.eventful}
    assert found == {key: partition_of(key, PARTITIONS) for key in found}


def read_keys(kafka: dict[str, str], topic: str, partitions: int) -> dict[str, int]:
    """The partition of every key of `topic` (read from the start to its end now)."""
    consumer = Consumer(kafka, f"{topic}.check.{uuid.uuid4().hex[:8]}")
    found: dict[str, int] = {}
    try:
        consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
        ends = {p: consumer.end_offset(TopicPartition(topic, p)) for p in range(partitions)}
        ends = {p: end for p, end in ends.items() if end > 0}  # an empty one has no position
        deadline = time.monotonic() + WAIT_S
        while any(
            tp.offset < ends[tp.partition]
            for tp in consumer.position([TopicPartition(topic, p) for p in ends])
        ):
            assert time.monotonic() < deadline, f"{topic} not read within {WAIT_S:g} s"
            for message in consumer.consume(500, 0.5):
                key = message.key().decode()
                assert found.setdefault(key, message.partition()) == message.partition()
    finally:
        consumer.close()
    return found


# -- replay-check ----------------------------------------------------------------------------


def test_replay_check_finds_a_change_running_workflows_cannot_take(
    ns: Namespace, tmp_path: Path
) -> None:
    def check(module: str) -> tuple[int, str]:
        config = tmp_path / f"{module}.toml"
        workflows = (f"tests.apps.{module}:Sleeper",)
        write_config(config, "127.0.0.1:1", workflows=workflows, services=())
        code, out, err = cli("replay-check", "--workflow", "Sleeper", "-c", str(config), *ns.where)
        return code, out + err

    code, out = check("workflows")
    assert code == 0, out
    assert "1 running workflows checked: 1 replay, 0 diverge, 0 skipped." in out
    code, out = check("changed")
    assert code == 1, out
    [row] = [r for r in table(out) if r and r[0] == ns.running]
    assert row[1:3] == ["Sleeper", "DIVERGES"]
    assert "timer" in row[3] and "task Steps.add" in row[3]
