"""Logging (`infinitic_streams/logs.py`): the text and JSON formats, the secret filter, and the
lines of the engine's pure logic (failed attempts with their retry decision). No Kafka."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from infinitic_streams import logs
from infinitic_streams.definitions import RetryPolicy, service, workflow
from infinitic_streams.kafka.settings import client_config
from infinitic_streams.protocol import ExecuteTask
from infinitic_streams.streams.dead_letter import DeadLetter
from infinitic_streams.workflows.workflow import Workflow

from .engine_harness import Harness, dispatch, harnesses


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """`configure` changes the root logger: put it back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def configured(fmt: str = "text", level: str = "INFO") -> io.StringIO:
    out = io.StringIO()
    logs.configure(level, fmt, stream=out)
    return out


def test_text_lines_have_time_level_logger_and_message() -> None:
    out = configured("text")
    logging.getLogger("infinitic_streams.worker").info("worker %s", "starting")
    logging.getLogger("infinitic_streams.worker").debug("not shown at INFO")
    [line] = out.getvalue().splitlines()
    day, time_, rest = line.split(" ", 2)
    datetime.fromisoformat(f"{day} {time_.replace(',', '.')}")
    assert rest == "INFO infinitic_streams.worker: worker starting"


def test_json_lines_are_one_object_each_with_the_exception_and_extra_fields() -> None:
    out = configured("json", level="debug")
    log = logging.getLogger("infinitic_streams.engine")
    log.debug("first", extra={"task_id": "w:1", "attempt": 2})
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        log.exception("second\nline")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert datetime.fromisoformat(first["time"]).utcoffset() is not None  # ISO 8601, zoned
    assert {k: first[k] for k in ("level", "logger", "message", "task_id", "attempt")} == {
        "level": "DEBUG",
        "logger": "infinitic_streams.engine",
        "message": "first",
        "task_id": "w:1",
        "attempt": 2,
    }
    assert "exception" not in first
    assert second["message"] == "second\nline"
    assert second["level"] == "ERROR"
    assert "ZeroDivisionError: division by zero" in second["exception"]


def test_configure_again_replaces_its_handler_and_leaves_others() -> None:
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    first = configured()
    second = configured(level="WARNING")
    logging.getLogger("infinitic_streams").info("hidden")
    logging.getLogger("infinitic_streams").warning("shown")
    assert first.getvalue() == ""
    assert second.getvalue().endswith("WARNING infinitic_streams: shown\n")
    assert other in root.handlers
    assert [h.get_name() for h in root.handlers].count("infinitic_streams.logs") == 1


def test_bad_levels_and_formats_are_refused_with_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="DEBUG, INFO, WARNING, ERROR"):
        logs.configure("LOUD")
    with pytest.raises(ValueError, match="text, json"):
        logs.configure("INFO", "xml")
    assert logs.level_of("warning") == logging.WARNING


def test_secrets_of_kafka_settings_never_reach_a_line() -> None:
    client_config(
        {
            "bootstrap.servers": "127.0.0.1:9092",
            "sasl.username": "alice",
            "sasl.password": "hunter2-pw",
            "sasl.oauthbearer.client.secret": "oauth-s3cret",
            "ssl.key.password": "k3y-pass",
        }
    )
    out = configured("text")
    log = logging.getLogger("infinitic_streams.kafka")
    log.info("settings %s", {"sasl.password": "hunter2-pw", "sasl.username": "alice"})
    log.info("oauth-s3cret and k3y-pass leaked in a message")
    try:
        raise RuntimeError("connect failed with hunter2-pw")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    for secret in ("hunter2-pw", "oauth-s3cret", "k3y-pass"):
        assert secret not in text
    assert "'sasl.password': '***'" in text
    assert "alice" in text  # not a secret
    assert "connect failed with ***" in text


def test_secret_looking_pairs_are_masked_even_if_never_remembered() -> None:
    assert logs.mask("sasl.password=abc ssl.key.password: 'xyz' user=bob") == (
        "sasl.password=*** ssl.key.password: '***' user=bob"
    )
    assert logs.mask('{"Token.Secret": "t0k"}') == '{"Token.Secret": "***"}'
    jaas = 'sasl.jaas.config=org.Module required username="u" password="p4ss";'
    assert "p4ss" not in logs.mask(jaas)


def test_short_secret_values_are_not_remembered() -> None:
    logs.remember_secrets({"sasl.password": "ab"})
    assert logs.mask("a cab") == "a cab"


def test_one_line_and_partition_numbers() -> None:
    assert logs.one_line("first\n\n  second  \n") == "first | second"
    assert logs.one_line("x" * 20, limit=5) == "xxxxx... (15 more characters)"
    assert logs.numbers([5, 0, 1, 2, 3, 7, 8]) == "0-3, 5, 7-8"
    assert logs.numbers([]) == "none"


def test_a_dead_letter_summary_keeps_what_failed_and_the_error() -> None:
    def letter(reason: str) -> DeadLetter:
        return DeadLetter(reason, "ns.engine", 7, 11, b"k", b"v")

    traceback = (
        "engine failed on this input:\nTraceback (most recent call last):\n  ...\nKeyError: 'x'"
    )
    assert letter(traceback).summary() == "engine failed on this input: KeyError: 'x'"
    assert letter("undecodable input: ValueError('bad')").summary() == (
        "undecodable input: ValueError('bad')"
    )
    assert letter("").summary() == "(no reason given)"
    assert letter("x").source == "ns.engine[7]@11"


# -- the engine's lines: one per failed attempt, with the retry decision -----------------------


@service("Disk", retry=RetryPolicy(max_attempts=2, initial_delay=1.5, jitter=0.0))
class Disk:
    def write(self, x: int) -> int: ...


@workflow("Writer")
class Writer(Workflow):
    def run(self, x: int) -> int:
        return self.new_service(Disk).write(x)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    yield from harnesses(tmp_path)


def engine_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "infinitic_streams.engine"]


def test_each_failed_attempt_is_logged_with_what_comes_next(
    harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "infinitic_streams")
    h = harness([Writer])
    h.send(dispatch("w-1", "Writer", [b"5"]))
    [first] = h.take(ExecuteTask)
    h.fail(first)
    h.advance(1.6)
    [second] = h.take(ExecuteTask)
    h.fail(second)
    assert engine_lines(caplog) == [
        "task Disk.write attempt 1 of 2 failed: OSError: disk full; attempt 2 in 1.5 s "
        "[task w-1:1, workflow Writer]",
        "task Disk.write attempt 2 of 2 failed: OSError: disk full; no attempt left: the task "
        "failed (TaskFailed in the workflow) [task w-1:1, workflow Writer]",
        "workflow Writer w-1 failed: TaskFailed: task Disk.write (w-1:1) failed after 2 "
        "attempt(s): OSError: disk full",
    ]
    record = next(r for r in caplog.records if r.name == "infinitic_streams.engine")
    assert (record.task_id, record.attempt, record.retry_in_s) == ("w-1:1", 1, 1.5)  # type: ignore[attr-defined]


def test_a_non_retryable_failure_says_so(
    harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "infinitic_streams")
    h = harness([Writer])
    h.send(dispatch("w-2", "Writer", [b"5"]))
    [task] = h.take(ExecuteTask)
    h.fail(task, retryable=False)
    assert engine_lines(caplog)[0] == (
        "task Disk.write attempt 1 of 2 failed: OSError: disk full; not retryable: the task "
        "failed (TaskFailed in the workflow) [task w-2:1, workflow Writer]"
    )
