"""`infinitic-streams engine | worker | dev`: long-running processes, stopped by SIGTERM/SIGINT.

- `engine`: the workflow engine only (it runs the workflow code of [worker].workflows).
- `worker`: what [worker] says: the engine (`engine = true`) and/or the service workers.
- `dev`: a Kafka (the configured one if it answers, else a local broker) plus the engine and
  the service workers, in one process; a broker it started is stopped when it ends.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infinitic_streams import logs
from infinitic_streams.cli.common import (
    DEFAULT_CONFIG,
    SERVER_KAFKA_CHECK_TIMEOUT_S,
    ConfigPath,
    bootstrap_of,
    fail,
    load_config,
    require_kafka,
    require_workflows,
    service_classes,
    workflow_classes,
)
from infinitic_streams.cli.kafka import DEFAULT_RUN_DIR, RunDir
from infinitic_streams.config import InfiniticConfig
from infinitic_streams.kafka.admin import is_reachable
from infinitic_streams.kafka.errors import KafkaAuthError
from infinitic_streams.local_kafka import cluster
from infinitic_streams.local_kafka.provision import LocalKafkaError, default_cache_dir

if TYPE_CHECKING:
    from infinitic_streams.worker.worker import Worker

LogLevel = Annotated[
    str,
    typer.Option(help="Logging level: DEBUG, INFO, WARNING or ERROR.", case_sensitive=False),
]


def engine(config: ConfigPath = DEFAULT_CONFIG, log_level: LogLevel = "INFO") -> None:
    """Run the workflow engine (no service) until SIGTERM or Ctrl-C."""
    level = _log_level(log_level)
    settings = load_config(config)
    names = require_workflows(settings, config, "the engine runs workflow code")
    bootstrap = require_kafka(settings, config, SERVER_KAFKA_CHECK_TIMEOUT_S)
    worker = _worker(config, {"services": [], "engine": True})
    _announce(settings, bootstrap, sorted(names), [])
    _run(worker, level)


def worker(config: ConfigPath = DEFAULT_CONFIG, log_level: LogLevel = "INFO") -> None:
    """Run what the configuration's worker section says: engine and/or services.

    Until SIGTERM or Ctrl-C."""
    level = _log_level(log_level)
    settings = load_config(config)
    names = _check_runnable(settings, config, settings.worker.engine)
    bootstrap = require_kafka(settings, config, SERVER_KAFKA_CHECK_TIMEOUT_S)
    worker = _worker(config, {})
    _announce(settings, bootstrap, names if settings.worker.engine else None, worker.services)
    _run(worker, level)


def dev(
    config: ConfigPath = DEFAULT_CONFIG,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    log_level: LogLevel = "INFO",
) -> None:
    """Kafka, the engine and the services of the configuration, in one process.

    Kafka is $INFINITIC_KAFKA, else the configured bootstrap servers if they answer,
    else the local broker of --run-dir: started if it does not run, then stopped on exit.
    """
    level = _log_level(log_level)
    settings = load_config(config)
    names = _check_runnable(settings, config, True)
    kafka, started = _dev_kafka(settings, run_dir.resolve())
    bootstrap = kafka["bootstrap.servers"]
    try:
        worker = _worker(config, {"kafka": kafka, "engine": True})
        if started:
            typer.echo(
                f"Kafka: {bootstrap}, a local broker that stops with this command "
                f"(logs: {run_dir}/node-*/broker.log)"
            )
        else:
            typer.echo(f"Kafka: {bootstrap}")
        _announce(settings, bootstrap, names, worker.services)
        _run(worker, level)
    finally:
        if started:
            typer.echo(f"Stopping the local Kafka at {bootstrap}...")
            cluster.down(run_dir.resolve(), log=lambda _: None)


# -- helpers ---------------------------------------------------------------------------------


def _check_runnable(settings: InfiniticConfig, path: Path, with_engine: bool) -> list[str]:
    """Import every class the configuration names (errors name the key); the workflow names."""
    names = sorted(workflow_classes(settings, path))
    services = service_classes(settings, path)
    if with_engine and not names:
        raise fail(
            f"[worker] workflows of {path} lists no workflow class, and the engine runs "
            'workflow code. Add your classes, e.g. workflows = ["myapp.workflows:MyWorkflow"].'
        )
    if not with_engine and not services:
        raise fail(
            f"[worker] of {path} runs nothing: set engine = true, or list services "
            '(e.g. services = ["myapp.services:MyServiceImpl"]).'
        )
    return names


def _worker(path: Path, overrides: dict[str, Any]) -> Worker:
    from infinitic_streams.worker.worker import Worker  # the stream runtime: only when needed

    try:
        return Worker.from_config(path, **overrides)
    except Exception as error:  # a service constructor, a state directory, a bad setting
        raise fail(f"Cannot start the worker of {path}: {type(error).__name__}: {error}") from None


def _announce(
    settings: InfiniticConfig, bootstrap: str, workflows: list[str] | None, services: list[Any]
) -> None:
    parts = []
    if workflows is not None:
        parts.append(f"engine (workflows: {', '.join(workflows) or 'none'})")
    if services:
        parts.append(f"services: {', '.join(s.spec.name for s in services)}")
    typer.echo(f"Running {' + '.join(parts)}")
    typer.echo(f"Namespace {settings.namespace!r} on Kafka {bootstrap}.")
    typer.echo("Stop with Ctrl-C or SIGTERM.")


def _log_level(name: str) -> int:
    try:
        return logs.level_of(name)
    except ValueError:
        raise fail(f"--log-level {name}: use {', '.join(logs.LEVELS)}") from None


def _run(worker: Worker, level: int) -> None:
    logs.configure(level)
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C while stopping
        worker.run()
    typer.echo("Stopped.")


def _dev_kafka(settings: InfiniticConfig, run_dir: Path) -> tuple[dict[str, Any], bool]:
    """(Kafka settings, whether this command started the broker). Like scripts/with-kafka.sh:
    $INFINITIC_KAFKA must answer; else the configured cluster if it answers; else the local
    cluster of `run_dir` (with its recorded settings, SASL included), started unless it
    already runs."""
    configured = bootstrap_of(settings)  # $INFINITIC_KAFKA already replaced it
    if os.environ.get("INFINITIC_KAFKA"):
        if not _answers(settings, SERVER_KAFKA_CHECK_TIMEOUT_S):
            raise fail(
                f"INFINITIC_KAFKA={configured} does not answer; unset it to use a local broker."
            )
        return settings.kafka, False
    if _answers(settings, 2.0):
        return settings.kafka, False
    current = cluster.status(run_dir)
    if current.state == "up" and current.record is not None:
        return {**settings.kafka, **current.record.client_settings}, False
    port = _local_port(configured)
    typer.echo(f"No Kafka answers at {configured}: starting a local broker on port {port}...")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        record = cluster.up(run_dir, default_cache_dir(), port=port)
    except LocalKafkaError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        cluster.down(run_dir, log=lambda _: None)
        raise typer.Exit(130) from None
    return {**settings.kafka, **record.client_settings}, True


def _answers(settings: InfiniticConfig, timeout: float) -> bool:
    try:
        return is_reachable(settings.kafka, timeout)
    except KafkaAuthError as error:
        raise fail(str(error)) from None


def _local_port(bootstrap: str) -> int:
    """The port of a single local address (so the configuration stays right), else 9092."""
    host, _, port = bootstrap.strip().rpartition(":")
    if host in ("127.0.0.1", "localhost") and port.isdigit():
        return int(port)
    return cluster.DEFAULT_PORT
