"""The `infinitic-streams` commands that read infinitic.toml: errors naming their fix, topics,
and dispatch / describe / history / retry against a real engine and service worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from examples.images import ImageUtilImpl, ImageWorkflow
from infinitic_streams import InfiniticClient, Worker
from infinitic_streams.cli import common
from infinitic_streams.cli.app import app
from infinitic_streams.kafka.admin import describe_cluster
from infinitic_streams.local_kafka import cluster

from .ports import free_port_pair

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 2
CLIENT_COMMANDS = [
    ["dispatch", "ImageWorkflow"],
    ["describe", "some-id"],
    ["history", "some-id"],
    ["retry", "some-id"],
    ["cancel", "some-id"],
    ["signal", "some-id", "go", "--value", "1"],
    ["topics", "create"],
    ["topics", "list"],
]
ALL_COMMANDS = [["engine"], ["worker"], ["dev"], *CLIENT_COMMANDS]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test runs in its own directory; the CLI's sys.path additions do not leak."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(ROOT), *sys.path])
    monkeypatch.delenv("INFINITIC_CONFIG", raising=False)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write_config(
    path: Path,
    bootstrap: str,
    namespace: str = "default",
    workflows: tuple[str, ...] = ("examples.images:ImageWorkflow",),
    services: tuple[str, ...] = ("examples.images:ImageUtilImpl",),
    extra: str = "",
) -> Path:
    path.write_text(
        f'namespace = "{namespace}"\n'
        f"partitions = {PARTITIONS}\n"
        f'[kafka]\n"bootstrap.servers" = "{bootstrap}"\n'
        f"[worker]\nworkflows = {json.dumps(list(workflows))}\n"
        f"services = {json.dumps(list(services))}\n"
        f'state_dir = "{path.parent / "state"}"\n{extra}'
    )
    return path


# -- errors that need no Kafka -----------------------------------------------------------------


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_without_config_every_command_says_how_to_make_one(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFINITIC_KAFKA", raising=False)  # else client commands use it
    code, _, err = cli(*command)
    assert code == 1
    assert "No configuration file infinitic.toml" in err
    assert '"bootstrap.servers"' in err  # an example to start from
    assert "--config PATH" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("namespace = = 1", "is not valid TOML"),
        ('namespace = "a b"\n[kafka]\n"bootstrap.servers" = "x:1"', "may only contain letters"),
        ('partitions = 0\n[kafka]\n"bootstrap.servers" = "x:1"', "partitions must be a positive"),
        ("[kafka]\nfoo = 1", 'set "bootstrap.servers" under [kafka]'),
        (
            '[kafka]\n"bootstrap.servers" = "x:1"\n[worker]\nworkflow = []',
            "unknown key 'workflow' in [worker]; did you mean 'workflows'? the keys are services",
        ),
        (
            '[kafka]\n"bootstrap.servers" = "x:1"\n[worker]\nworkflows = ["nope.mod:X"]',
            "[worker] workflows: cannot import nope.mod",
        ),
        (
            '[kafka]\n"bootstrap.servers" = "x:1"\n'
            '[worker]\nworkflows = ["examples.images:ImageUtilImpl"]',
            "examples.images:ImageUtilImpl is not a Workflow subclass",
        ),
        (
            '[kafka]\n"bootstrap.servers" = "x:1"\n[worker]\nworkflows = []',
            "lists no workflow class",
        ),
    ],
    ids=[
        "toml",
        "namespace",
        "partitions",
        "bootstrap",
        "worker-key",
        "import",
        "not-workflow",
        "no-workflow",
    ],
)
def test_a_bad_config_is_named_with_its_fix(
    content: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFINITIC_KAFKA", raising=False)
    (tmp_path / "bad.toml").write_text(content)
    code, _, err = cli("engine", "--config", "bad.toml")
    assert code == 1
    assert message in err


def test_dispatch_checks_name_method_and_arguments_before_kafka(tmp_path: Path) -> None:
    config = str(write_config(tmp_path / "infinitic.toml", "127.0.0.1:1"))
    code, _, err = cli("dispatch", "Nope", "-c", config)
    assert code == 1
    assert "Unknown workflow 'Nope': [worker] workflows of" in err
    assert "has ImageWorkflow" in err
    code, _, err = cli("dispatch", "ImageWorkflow", "nope", "-c", config)
    assert code == 1
    assert "has no method 'nope'; it has: all_sizes, resize_and_upload, run" in err
    code, _, err = cli("dispatch", "ImageWorkflow", "--arg", '"me"', "-c", config)
    assert code == 1
    assert "ImageWorkflow.run(email: str, url: str) takes 2 argument(s), got 1" in err
    code, _, err = cli("dispatch", "ImageWorkflow", "--arg", "me", "--arg", '"u"', "-c", config)
    assert code == 1
    assert "--arg #1 is not JSON" in err
    assert "--arg '\"me\"'" in err
    code, _, err = cli("dispatch", "ImageWorkflow", "--arg", "1", "--arg", '"u"', "-c", config)
    assert code == 1
    assert "--arg #1: expected str" in err
    assert "the parameter is email: str" in err


def test_engine_and_worker_need_something_to_run(tmp_path: Path) -> None:
    config = write_config(tmp_path / "infinitic.toml", "127.0.0.1:1", workflows=(), services=())
    code, _, err = cli("engine", "-c", str(config))
    assert code == 1
    assert "the engine runs workflow code" in err
    config.write_text(config.read_text() + "engine = false\n")
    code, _, err = cli("worker", "-c", str(config))
    assert code == 1
    assert "runs nothing: set engine = true, or list services" in err


def test_unreachable_kafka_fails_fast_naming_the_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFINITIC_KAFKA", raising=False)
    monkeypatch.setattr(common, "KAFKA_CHECK_TIMEOUT_S", 0.5)
    bootstrap = f"127.0.0.1:{free_port_pair()}"
    write_config(tmp_path / "infinitic.toml", bootstrap)
    for command in (["describe", "some-id"], ["topics", "list"]):
        code, _, err = cli(*command)
        assert code == 1
        assert f"Kafka at {bootstrap} does not answer" in err
        assert "infinitic-streams kafka up" in err


# -- with Kafka ------------------------------------------------------------------------------


def test_topics_create_then_list(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    write_config(tmp_path / "infinitic.toml", kafka_bootstrap, namespace)
    code, out, _ = cli("topics", "list")
    assert code == 0
    assert "No topics of namespace" in out
    code, out, _ = cli("topics", "create")
    assert code == 0
    assert f"created {namespace}.engine  [2 partitions]" in out
    assert f"created {namespace}.tasks.ImageUtil  [2 partitions]" in out
    code, out, _ = cli("topics", "create")
    assert code == 0
    assert f"exists  {namespace}.engine  [2 partitions]" in out
    code, out, _ = cli("topics", "list")
    assert code == 0
    lines = out.splitlines()
    assert f"({len(lines) - 1}):" in lines[0]
    assert [line.split() for line in lines[1:]] == [
        [f"{namespace}.engine", "[2", "partitions]"],
        [f"{namespace}.events", "[2", "partitions]"],
        [f"{namespace}.replies", "[16", "partitions]"],
        [f"{namespace}.tags", "[2", "partitions]"],
        [f"{namespace}.tasks.ImageUtil", "[2", "partitions]"],
        [f"{namespace}.visibility-queries", "[2", "partitions]"],
    ]


def test_topics_create_refuses_a_partition_mismatch(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "infinitic.toml", kafka_bootstrap, namespace)
    assert cli("topics", "create")[0] == 0
    config.write_text(config.read_text().replace("partitions = 2", "partitions = 3"))
    code, _, err = cli("topics", "create")
    assert code == 1
    assert f"Topic {namespace}.engine has 2 partitions but 3 are expected" in err


class FlakyImageUtil(ImageUtilImpl):
    """Downloads fail while `broken` is set."""

    broken = True

    def download(self, url: str) -> bytes:
        if self.broken:
            raise ConnectionError(f"cannot reach {url}")
        return super().download(url)


@pytest.fixture
def worker_of(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> Iterator[Any]:
    """Start the engine and an image service in this process (as `infinitic-streams dev` runs
    them), with the tmp infinitic.toml naming the same classes; stopped at the end."""
    workers: list[Worker] = []

    def start(service: object) -> Worker:
        write_config(tmp_path / "infinitic.toml", kafka_bootstrap, namespace)
        worker = Worker(
            {"bootstrap.servers": kafka_bootstrap},
            namespace,
            services=[service],
            workflows=[ImageWorkflow],
            state_dir=tmp_path / "state",
            partitions=PARTITIONS,
            registry=CollectorRegistry(),
        ).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def lines_of(out: str) -> list[str]:
    """Output lines, without what ImageUtil.save prints from the worker's threads."""
    return [line for line in out.splitlines() if "saved" not in line]


def test_dispatch_wait_describe_history(
    worker_of: Any, kafka_bootstrap: str, namespace: str
) -> None:
    worker_of(ImageUtilImpl())
    url = "https://example.com/cat.png"
    code, out, err = cli(
        "dispatch", "ImageWorkflow", "--arg", '"me@example.com"', "--arg", json.dumps(url),
        "--id", "order-42", "--wait", "--timeout", "30",
    )  # fmt: skip
    assert code == 0, err
    workflow_id, result = lines_of(out)
    assert workflow_id == "order-42"
    urls = json.loads(result)
    assert len(urls) == 3
    assert all(u.startswith("https://images.example.com/") for u in urls)

    code, out, err = cli("describe", "order-42")
    assert code == 0, err
    rows = dict(line.split(None, 1) for line in lines_of(out))
    assert rows["id"] == "order-42"
    assert rows["workflow"] == "ImageWorkflow.run"
    assert rows["status"] == "COMPLETED"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \((now|.+ ago)\)", rows["started"])
    assert rows["args"] == f'("me@example.com", "{url}")'
    assert rows["result"].startswith('["https://images.example.com/')

    code, out, _ = cli("describe", "order-42", "-o", "json")
    assert code == 0
    info = json.loads(out)
    assert (info["status"], info["method"], info["result"]) == ("COMPLETED", "run", urls)
    assert info["args"] == ["me@example.com", url]
    assert set(info) == {
        "id", "name", "method", "status", "started_at", "updated_at", "tags", "args", "result",
        "error", "traceback", "pending", "children", "signals_waiting", "run", "patches",
    }  # fmt: skip
    assert (info["children"], info["signals_waiting"]) == ([], {})

    code, out, _ = cli("history", "order-42")
    assert code == 0
    events = [line.split()[1] for line in lines_of(out)]  # ISO 8601 time, event
    assert events[0] == "Started"
    assert events[-1] == "Ended"
    assert events.count("TaskScheduled") == 8  # download, 3 resize, 3 upload, save
    assert f'args=("me@example.com", "{url}")' in lines_of(out)[0]
    assert "ImageUtil.download  seq=1" in lines_of(out)[1]
    assert "status=COMPLETED" in lines_of(out)[-1]

    code, out, _ = cli("history", "order-42", "-o", "json")
    assert code == 0
    history = json.loads(out)
    assert [e["event"] for e in history] == events
    assert history[0]["args"] == ["me@example.com", url]
    assert history[-1]["result"] == urls

    code, _, err = cli("retry", "order-42")
    assert code == 1
    assert "is COMPLETED: only a FAILED workflow can be retried" in err
    code, _, err = cli("describe", "no-such-id")
    assert code == 1
    assert "No workflow with id no-such-id" in err

    code, out, _ = cli("dispatch", "ImageWorkflow", "-a", '"a@b.c"', "-a", '"u"', "--no-wait")
    assert code == 0
    assert len(lines_of(out)) == 1  # only the new id

    # commands leave no topic of their own
    topics = describe_cluster({"bootstrap.servers": kafka_bootstrap}).topics
    assert sorted(t for t in topics if t.startswith(f"{namespace}.")) == [
        f"{namespace}.{name}"
        for name in (
            *("dlq", "engine", "engine.changelog", "events", "replies", "tags"),
            *("tasks.ImageUtil", "visibility-queries", "visibility.changelog"),
        )
    ]


def test_a_failed_workflow_is_described_then_retried(worker_of: Any) -> None:
    service = FlakyImageUtil()
    worker_of(service)
    code, out, err = cli(
        "dispatch", "ImageWorkflow", "-a", '"me@example.com"', "-a", '"https://x.org/a.png"',
        "--id", "flaky", "--wait", "--timeout", "30",
    )  # fmt: skip
    assert code == 1
    assert out.splitlines() == ["flaky"]
    assert "workflow flaky failed" in err
    assert "cannot reach https://x.org/a.png" in err
    assert "`infinitic-streams retry flaky`" in err

    code, out, _ = cli("describe", "flaky")
    assert code == 0
    rows = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith(" "))
    assert rows["status"] == "FAILED"
    assert "cannot reach https://x.org/a.png" in rows["error"]
    assert rows["traceback"] == "Traceback (most recent call last):"  # then indented lines
    assert "in download" in out
    code, out, _ = cli("history", "flaky")
    assert code == 0
    events = [line.split()[1] for line in out.splitlines()]
    assert events.count("AttemptFailed") == 3  # RetryPolicy(max_attempts=3) of ImageUtil
    assert events[-2:] == ["TaskGaveUp", "Ended"]
    assert "error=ConnectionError: cannot reach" in out.splitlines()[-2]

    service.broken = False
    code, out, err = cli("retry", "flaky", "--wait", "--timeout", "30")
    assert code == 0, err
    retried, result = lines_of(out)
    assert retried.startswith("Retrying flaky (ImageWorkflow.run), failed with: ")
    assert len(json.loads(result)) == 3
    code, out, _ = cli("describe", "flaky", "--json")
    assert json.loads(out)["status"] == "COMPLETED"


def test_describe_without_engine_fails_at_once(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    write_config(tmp_path / "infinitic.toml", kafka_bootstrap, namespace)
    code, _, err = cli("describe", "some-id")
    assert code == 1
    assert f"No engine runs for namespace '{namespace}'" in err
    assert "infinitic-streams engine" in err


def test_dev_runs_engine_and_services_until_sigint(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    """`python -m infinitic_streams dev` on $INFINITIC_KAFKA: imports the config's classes
    from its directory, serves a dispatch, and stops cleanly on SIGINT."""
    write_config(tmp_path / "infinitic.toml", kafka_bootstrap, namespace)
    env = {**os.environ, "INFINITIC_KAFKA": kafka_bootstrap, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "infinitic_streams", "dev"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        code, out, err = cli(
            "dispatch", "ImageWorkflow", "-a", '"me@example.com"', "-a", '"u"', "--wait",
            "--timeout", "30",
        )  # fmt: skip
        assert code == 0, err
        assert len(json.loads(lines_of(out)[-1])) == 3
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"Kafka: {kafka_bootstrap}" in output
    assert "Running engine (workflows: ImageWorkflow) + services: ImageUtil" in output
    assert output.rstrip().endswith("Stopped.")


# -- conventions: every command, kubectl / temporal style ----------------------------------


@pytest.mark.parametrize("command", [*ALL_COMMANDS, ["result", "x"], ["dlq", "list"]], ids=" ".join)
def test_every_command_takes_dash_h_and_shows_no_type_names(command: list[str]) -> None:
    code, out, _ = cli(*command[:-1] if command[-1] in ("some-id", "x") else command, "-h")
    assert code == 0
    options = out[out.index("Options:") :]
    assert "<bool>" not in options and "<list" not in options and "<str>" not in options
    if command[0] not in ("kafka",):
        for option in ("--namespace", "--bootstrap", "--config"):
            assert option in options, (command, option)


def test_a_misspelt_config_key_names_the_closest_one(tmp_path: Path) -> None:
    (tmp_path / "infinitic.toml").write_text('partitons = 4\n[kafka]\n"bootstrap.servers" = "x:1"')
    code, _, err = cli("describe", "some-id")
    assert code == 1
    assert "unknown key 'partitons' at the top level; did you mean 'partitions'?" in err


def test_every_command_says_the_same_when_kafka_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFINITIC_KAFKA", raising=False)
    bootstrap = f"127.0.0.1:{free_port_pair()}"
    for command in (
        ["describe", "x"], ["result", "x"], ["dlq", "list"], ["topics", "list"], ["kafka", "info"],
    ):  # fmt: skip
        code, _, err = cli(*command, "--bootstrap", bootstrap)
        assert code == 1, command
        assert f"Kafka at {bootstrap} does not answer (within 3 s)" in err, command
        assert "infinitic-streams kafka up" in err


def test_client_commands_need_only_bootstrap_and_namespace(
    worker_of: Any, kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    """From a directory without infinitic.toml: dispatch by name (arguments as given), result,
    describe and history in table, json and yaml, a joined dispatch, dead letters."""
    worker_of(ImageUtilImpl())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    where = ["--namespace", namespace, "--bootstrap", kafka_bootstrap]
    code, out, err = cli(
        "dispatch", "ImageWorkflow", "-a", '"a@b.c"', "-a", '"u"', "--id", "w1", *where
    )
    assert (code, out.strip()) == (0, "w1"), err
    code, out, err = cli("result", "w1", "--timeout", "60", *where)
    assert code == 0, err
    urls = json.loads(lines_of(out)[-1])
    assert len(urls) == 3

    code, out, err = cli(
        "dispatch", "ImageWorkflow", "-a", '"a@b.c"', "-a", '"v"', "--id", "w1", *where
    )
    assert code == 0, err
    assert "Workflow w1 exists (COMPLETED" in err
    assert 'its arguments differ from these: it was started with ("a@b.c", "u")' in err
    code, out, _ = cli("dispatch", "ImageWorkflow", "-a", '"a@b.c"', "-a", '"u"', "--id", "w1",
                       "-o", "json", *where)  # fmt: skip
    assert json.loads("".join(lines_of(out))) == {"id": "w1", "joined": True, "result": None}

    code, out, _ = cli("describe", "w1", "-o", "json", *where)
    assert json.loads(out)["result"] == urls
    code, out, _ = cli("describe", "w1", "-o", "yaml", *where)
    assert 'status: "COMPLETED"' in out.splitlines()
    assert f'  - "{urls[0]}"' in out.splitlines()
    code, out, _ = cli("history", "w1", *where)
    assert out.splitlines()[0].split()[1:3] == ["Started", "method=run"]

    # Garbage on the engine's topic is dead-lettered with its reason, and listed.
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"{namespace}.engine", b"\xff\x00garbage", b"bad-key")
    producer.flush(30)
    deadline_letters: list[dict[str, Any]] = []
    for _ in range(120):
        code, out, _ = cli("dlq", "list", "-o", "json", *where)
        deadline_letters = [json.loads(line) for line in out.splitlines()]
        if deadline_letters:
            break
        time.sleep(0.5)
    (letter,) = deadline_letters
    assert letter["key"] == "bad-key"
    assert letter["source"].startswith(f"{namespace}.engine[")
    assert "undecodable" in letter["reason"]
    code, out, _ = cli("dlq", "list", *where)
    assert "bad-key" in out and "1 dead letter(s)" in out


def test_topics_delete_asks_then_deletes(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    write_config(tmp_path / "infinitic.toml", kafka_bootstrap, namespace)
    assert cli("topics", "create")[0] == 0
    result = CliRunner().invoke(app, ["topics", "delete"], input="n\n")
    assert result.exit_code == 1
    assert "Nothing deleted" in result.stderr
    assert f"{namespace}.engine" in describe_cluster({"bootstrap.servers": kafka_bootstrap}).topics
    code, out, _ = cli("topics", "delete", "--yes")
    assert code == 0
    assert "Deleted 6 topic(s)" in out
    code, out, _ = cli("topics", "list")
    assert "No topics of namespace" in out


def test_a_client_waiting_on_a_namespace_without_engine_says_so(
    kafka_bootstrap: str, namespace: str
) -> None:
    with InfiniticClient({"bootstrap.servers": kafka_bootstrap}, namespace) as client:
        assert client.engine_running() is False
        handle = client.get_workflow(None, "nobody")
        with pytest.raises(TimeoutError) as raised:
            handle.result(timeout=1.0)
    assert f"No engine consumes namespace '{namespace}'" in str(raised.value)


@pytest.mark.kafka  # it starts a real broker
def test_ctrl_c_while_dev_starts_its_broker_ends_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT while `dev` starts a local broker (or just after): no traceback, and no broker
    left running. Kafka is the one `dev` starts itself."""
    monkeypatch.delenv("INFINITIC_KAFKA", raising=False)
    port = free_port_pair()
    write_config(tmp_path / "infinitic.toml", f"127.0.0.1:{port}", "ctrl-c")
    run_dir = tmp_path / "kafka"
    env = {k: v for k, v in os.environ.items() if k != "INFINITIC_KAFKA"}
    process = subprocess.Popen(
        [sys.executable, "-m", "infinitic_streams", "dev", "--run-dir", str(run_dir)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if "starting a local broker" in line:
                break
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # SIGABRT: faulthandler prints where it hangs
            process.send_signal(signal.SIGABRT)
            rest, _ = process.communicate(timeout=30)
            cluster.down(run_dir, log=lambda _: None)
            pytest.fail(f"still running 120 s after SIGINT:\n{''.join(seen)}{rest}")
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(seen) + rest
    assert process.returncode in (0, 130), output
    assert "Traceback" not in output
    assert cluster.status(run_dir).state == "down", output
