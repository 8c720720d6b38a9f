"""`infinitic-streams schedule create | list | describe | pause | resume | delete` against a
real broker and an engine in this process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from examples.images import ImageUtilImpl, ImageWorkflow
from infinitic_streams import Worker

from .test_cli import PARTITIONS, _isolated, cli, write_config  # noqa: F401 - the fixture

pytestmark = pytest.mark.kafka
URL = '"https://example.com/cat.png"'


@pytest.fixture
def engine(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> Iterator[Worker]:
    write_config(tmp_path / "infinitic.toml", kafka_bootstrap, namespace)
    worker = Worker(
        {"bootstrap.servers": kafka_bootstrap},
        namespace,
        services=[ImageUtilImpl()],
        workflows=[ImageWorkflow],
        state_dir=tmp_path / "state",
        partitions=PARTITIONS,
        registry=CollectorRegistry(),
    ).start()
    deadline = time.monotonic() + 60
    while not (worker.app is not None and worker.app.ready):  # the CLI checks for an engine
        assert time.monotonic() < deadline, "the engine did not start"
        time.sleep(0.1)
    yield worker
    worker.stop()


def test_schedule_create_list_pause_resume_delete(engine: Worker) -> None:
    code, out, err = cli(
        "schedule", "create", "nightly", "ImageWorkflow", "--cron", "0 3 * * *",
        "--timezone", "Europe/Paris", "--arg", '"me@example.com"', "--arg", URL, "-o", "json",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert (info["id"], info["workflow"], info["method"]) == ("nightly", "ImageWorkflow", "run")
    assert (info["cron"], info["timezone"], info["overlap"]) == (
        "0 3 * * *",
        "Europe/Paris",
        "skip",
    )
    assert info["args"] == ["me@example.com", "https://example.com/cat.png"]
    assert info["next_fire"].endswith(("T01:00:00.000Z", "T02:00:00.000Z"))  # 03:00 in Paris

    code, out, err = cli("schedule", "list")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:3] == ["ID", "WORKFLOW", "CRON"]
    assert row.split()[:2] == ["nightly", "ImageWorkflow.run"] and " active " in row

    code, out, err = cli("schedule", "pause", "nightly")
    assert (code, out.strip()) == (0, "Schedule nightly: paused."), err
    code, out, _ = cli("schedule", "list", "-o", "json")
    [listed] = json.loads(out)
    assert (listed["paused"], listed["next_fire"]) == (True, None)
    code, out, _ = cli("schedule", "resume", "nightly")
    assert code == 0 and out.startswith("Schedule nightly: next firing ")
    code, out, _ = cli("schedule", "describe", "nightly")
    assert code == 0
    rows = dict(line.split(None, 1) for line in out.splitlines())
    assert (rows["paused"], rows["overlap"]) == ("False", "skip")

    code, out, _ = cli("schedule", "delete", "nightly")
    assert (code, out.strip()) == (0, "Schedule nightly: deleted.")
    code, out, _ = cli("schedule", "list")
    assert (code, out.strip()) == (0, "No schedules.")
    code, _, err = cli("schedule", "pause", "nightly")
    assert code == 1 and "No schedule with id nightly" in err


def test_schedule_create_refuses_what_is_wrong_before_sending(engine: Worker) -> None:
    code, _, err = cli("schedule", "create", "s", "ImageWorkflow", "-a", '"a"', "-a", URL)
    assert code == 1 and "--cron is required" in err
    code, _, err = cli(
        "schedule", "create", "s", "ImageWorkflow", "-a", '"a"', "-a", URL, "--cron", "* * *"
    )
    assert code == 1 and "cron expression '* * *' has 3 fields" in err
    code, _, err = cli(
        "schedule", "create", "s", "ImageWorkflow", "-a", '"a"', "--cron", "0 3 * * *"
    )
    assert code == 1 and "takes 2 argument(s), got 1" in err
    code, _, err = cli(
        "schedule", "create", "s", "ImageWorkflow", "-a", '"a"', "-a", URL, "--cron", "0 3 * * *",
        "--timezone", "Nowhere/City",
    )  # fmt: skip
    assert code == 1 and "unknown time zone 'Nowhere/City'" in err
