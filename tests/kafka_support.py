"""Helpers for tests on the real broker: read topics to their end, run apps in subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from infinitic_streams.streams.dead_letter import DeadLetter

from .ports import free_port_pair


def read_dead_letters(bootstrap: str, namespace: str) -> list[DeadLetter]:
    """Every dead letter of the namespace's `<ns>.dlq` topic."""
    records = read_topic(bootstrap, f"{namespace}.dlq", with_headers=True)
    return [DeadLetter.of_record(key, value, headers) for key, value, headers in records]


def read_topic(
    kafka: str | Mapping[str, str],
    topic: str,
    isolation: str = "read_committed",
    timeout: float = 60.0,
    with_headers: bool = False,
) -> list[Any]:
    """Every (key, value) of `topic` visible at `isolation`, in partition order, read until the
    consumer position reaches each partition's end offset; (key, value, headers) when
    `with_headers`. `kafka`: the bootstrap servers, or client settings."""
    settings = {"bootstrap.servers": kafka} if isinstance(kafka, str) else dict(kafka)
    consumer = Consumer(
        {
            **settings,
            "group.id": f"{topic}.reader",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions}
    consumer.assign(partitions)
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        positions = consumer.position(partitions)
        if all(max(tp.offset, 0) >= ends[tp.partition] for tp in positions):
            break
        for message in consumer.consume(1000, 0.2):
            if message.error() is None:
                record = (message.key(), message.value())
                records.append((*record, message.headers()) if with_headers else record)
    else:
        raise TimeoutError(f"could not read {topic} to its end within {timeout} s")
    consumer.close()
    return records


def wait_caught_up(
    bootstrap: str, group: str, topic: str, timeout: float = 120.0, app: AppProcess | None = None
) -> None:
    """Wait until `group` has committed the end offset of every partition of `topic`; a
    timeout shows the end of `app`'s log."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ends = [consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions]
            committed = [tp.offset for tp in consumer.committed(partitions, timeout=30)]
            if all(max(c, 0) >= e for c, e in zip(committed, ends, strict=True)):
                return
            time.sleep(0.2)
    finally:
        consumer.close()
    log = f"\n--- end of the app's log:\n{app.log_with_stacks()[-12000:]}" if app else ""
    raise TimeoutError(f"group {group} did not catch up on {topic} within {timeout} s{log}")


class _Subprocess:
    """A test app in a subprocess, its stdout and stderr in `log_path`. Its entry point
    registers faulthandler on SIGUSR1, so a stuck one can say where it is (`log_with_stacks`)."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        root = Path(__file__).resolve().parent.parent
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *command], cwd=root, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(root)},
            )  # fmt: skip

    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_with_stacks(self) -> str:
        """The log, with the stacks of every thread appended when the process still runs."""
        if self.running():
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
        return self.log()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code; a process still running after `timeout` raises with
        its stacks."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log = self.log_with_stacks()[-12000:]
            raise TimeoutError(f"still running {timeout} s after SIGTERM:\n{log}") from None


class AppProcess(_Subprocess):
    """A `tests.apps.processors` app in a subprocess, with its metrics on an HTTP port.

    An app still running when its test ends is killed, whatever the outcome (`kill_all`,
    called by an autouse fixture in conftest)."""

    started: list[AppProcess] = []  # noqa: RUF012 - the registry of all apps, on purpose

    def __init__(self, processor: str, bootstrap: str, namespace: str, state_dir: Path) -> None:
        self.metrics_port = free_port_pair()
        command = [
            "tests.apps.processors", processor, "--bootstrap", bootstrap,
            "--namespace", namespace, "--state-dir", str(state_dir),
            "--metrics-port", str(self.metrics_port),
        ]  # fmt: skip
        log_path = state_dir.parent / f"{state_dir.name}-{processor}-{time.time_ns()}.log"
        super().__init__(command, log_path)
        AppProcess.started.append(self)

    @classmethod
    def kill_all(cls) -> None:
        for app in cls.started:
            app.kill()
        cls.started.clear()

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise TimeoutError(f"{text!r} not in the app's log:\n{self.log()}")
            time.sleep(0.1)

    def wait_for_metric(self, name: str, above: float, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.metric(name) <= above:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} stayed at or below {above}:\n{self.log()}")
            time.sleep(0.1)

    def metric(self, name: str, timeout: float = 30.0) -> float:
        """Sum of the samples of metric `name` (all labels)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                url = f"http://127.0.0.1:{self.metrics_port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as response:
                    text = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.2)
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and (line[len(name)] in " {")
        )


class WorkerProcess(_Subprocess):
    """A `tests.apps.workflows` worker in a subprocess (`roles`: --engine, --services, and
    `--kafka KEY=VALUE` settings)."""

    def __init__(self, bootstrap: str, namespace: str, state_dir: Path, *roles: str) -> None:
        command = [
            "tests.apps.workflows", "--bootstrap", bootstrap, "--namespace", namespace,
            "--state-dir", str(state_dir), *roles,
        ]  # fmt: skip
        super().__init__(command, state_dir.parent / f"worker-{time.time_ns()}.log")
