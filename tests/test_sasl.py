"""A SASL cluster (SCRAM-SHA-512, `kafka up --security sasl`) of this module's own: with only
`[kafka]` changed, the client, the worker (engine restore after kill -9 included) and the CLI
all work; with a wrong password each fails at once with an error saying so."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infinitic_streams import InfiniticClient, WorkflowFailed
from infinitic_streams.cli.app import app
from infinitic_streams.kafka.errors import KafkaAuthError
from infinitic_streams.local_kafka import cluster
from infinitic_streams.local_kafka.config import Security
from infinitic_streams.local_kafka.provision import default_cache_dir

from .apps.workflows import Fixable, Sum
from .kafka_support import WorkerProcess
from .ports import free_port_pair

ROOT = Path(__file__).resolve().parent.parent
Settings = dict[str, str]


pytestmark = pytest.mark.kafka  # brokers of its own


@pytest.fixture(scope="module")
def sasl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The client settings of a 1-node SASL cluster."""
    run_dir = tmp_path_factory.mktemp("kafka-sasl")
    record = cluster.up(
        run_dir,
        default_cache_dir(),
        port=free_port_pair(),
        log=lambda _: None,
        security=Security.of("sasl"),
        timeout=180.0,
    )
    try:
        yield dict(record.client_settings)
    finally:
        cluster.down(run_dir, log=lambda _: None)


def worker(settings: Settings, namespace: str, state_dir: Path) -> WorkerProcess:
    kafka = [f"--kafka={key}={value}" for key, value in settings.items()]
    return WorkerProcess(
        settings["bootstrap.servers"], namespace, state_dir, "--engine", "--services", *kafka
    )


def write_config(path: Path, settings: Settings, namespace: str) -> Path:
    kafka = "".join(f'"{key}" = {json.dumps(value)}\n' for key, value in settings.items())
    path.write_text(
        f'namespace = "{namespace}"\n[kafka]\n{kafka}'
        '[worker]\nworkflows = ["tests.apps.workflows:Sum", "tests.apps.workflows:Fixable"]\n'
    )
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture(autouse=True)
def _own_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI imports the config's classes, and must use the config's cluster, not the
    $INFINITIC_KAFKA of `make test`."""
    monkeypatch.setattr(sys, "path", [str(ROOT), *sys.path])
    monkeypatch.delenv("INFINITIC_KAFKA", raising=False)


def test_client_worker_and_cli_work_with_sasl_settings_only(
    sasl: Settings, namespace: str, tmp_path: Path
) -> None:
    first = worker(sasl, namespace, tmp_path / "engine-a")
    try:
        with InfiniticClient(sasl, namespace) as client:
            done = client.dispatch(Sum.run, 5)
            assert done.result(timeout=120) == 10
            assert done.describe().status == "COMPLETED"
            assert [e["event"] for e in done.history()].count("TaskSucceeded") == 5
            fault = tmp_path / "fault"
            fault.touch()
            fixable = client.dispatch(Fixable.run, str(fault))
            with pytest.raises(WorkflowFailed):
                fixable.result(timeout=120)
            fault.unlink()
            fixable.retry()
            assert fixable.result(timeout=120) == "fixed"

            config = write_config(tmp_path / "infinitic.toml", sasl, namespace)
            code, out = cli("describe", done.id, "--config", str(config))
            assert code == 0 and "COMPLETED" in out, out
            code, out = cli("history", done.id, "--config", str(config))
            assert code == 0 and out.count("TaskSucceeded") == 5, out
            code, out = cli("topics", "list", "--config", str(config))
            assert code == 0 and f"{namespace}.engine" in out, out

            # The engine dies; a new one on an empty state dir restores from the changelog.
            first.kill()
            waiting = client.dispatch(Sum.run, 3)
            second = worker(sasl, namespace, tmp_path / "engine-b")
            try:
                assert waiting.result(timeout=120) == 3
                assert done.describe().status == "COMPLETED"  # restored, not lost
                assert second.running(), second.log()[-3000:]
            finally:
                second.kill()
    finally:
        first.kill()


def test_a_wrong_password_fails_at_once_with_an_authentication_error(
    sasl: Settings, namespace: str, tmp_path: Path
) -> None:
    wrong = {**sasl, "sasl.password": "not-the-password"}
    with pytest.raises(KafkaAuthError, match="refused"):
        InfiniticClient(wrong, namespace)

    process = worker(wrong, namespace, tmp_path / "state")
    try:
        code = process.process.wait(120)  # it stops by itself: no retry loop
    finally:
        process.kill()
    assert code != 0
    assert "refused this client" in process.log(), process.log()[-3000:]

    config = write_config(tmp_path / "infinitic.toml", wrong, namespace)
    code, out = cli("topics", "list", "--config", str(config))
    assert code == 1
    assert "refused this client" in out and "sasl.password" in out, out
    code, out = cli("describe", "some-id", "--config", str(config))
    assert code == 1 and "refused this client" in out, out
