"""`infinitic-streams engine | worker | dev`: long-running processes, stopped by SIGTERM/SIGINT.

- `engine`: the workflow engine only (it runs the workflow code of [worker].workflows).
- `worker`: what [worker] says: the engine (`engine = true`) and/or the service workers.
- `dev`: a Kafka (the configured one if it answers, else a local broker) plus the engine, the
  service workers and the dashboard, in one process; a broker it started is stopped when it
  ends.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infinitic_streams.cli.common import (
    KAFKA_CHECK_TIMEOUT_S,
    bootstrap_of,
    fail,
    load_config,
    require_kafka,
    require_workflows,
    service_classes,
    unreachable,
    with_options,
    workflow_classes,
)
from infinitic_streams.cli.dashboard import DEFAULT_PORT, start_for_dev
from infinitic_streams.cli.kafka import DEFAULT_RUN_DIR, RunDir
from infinitic_streams.cli.options import (
    DEFAULT_CONFIG,
    Bootstrap,
    ConfigPath,
    LogFormat,
    LogFormatOption,
    LogLevel,
    Namespace,
    configure_logging,
)
from infinitic_streams.config import InfiniticConfig
from infinitic_streams.kafka.admin import is_reachable
from infinitic_streams.kafka.errors import KafkaAuthError
from infinitic_streams.local_kafka import cluster
from infinitic_streams.local_kafka.provision import LocalKafkaError, default_cache_dir

if TYPE_CHECKING:
    from infinitic_streams.worker.worker import Worker

MetricsPort = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=65535,
        metavar="PORT",
        envvar="INFINITIC_METRICS_PORT",
        help="Serve /metrics, /healthz and /readyz on this port (default: [metrics] port; none).",
    ),
]
InstanceId = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        envvar="INFINITIC_INSTANCE_ID",
        help="Stable name of this process among the engines (its Kafka transactional.id), "
        "e.g. a StatefulSet pod's name (default: [worker] instance_id, else one kept in the "
        "state directory).",
    ),
]


def engine(
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    metrics_port: MetricsPort = None,
    instance_id: InstanceId = None,
    log_level: LogLevel = "INFO",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Run the workflow engine (no service) and the visibility index until SIGTERM or Ctrl-C."""
    configure_logging(log_level, log_format)
    settings = with_options(load_config(config), config, namespace, bootstrap)
    names = require_workflows(settings, config, "the engine runs workflow code")
    address = require_kafka(settings, config)
    options = {"services": [], "engine": True, **_process(metrics_port, instance_id)}
    worker = _worker(config, settings, options)
    _announce(settings, address, sorted(names), [])
    _run(worker)


def worker(
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    metrics_port: MetricsPort = None,
    instance_id: InstanceId = None,
    log_level: LogLevel = "INFO",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Run what the configuration's worker section says: engine and/or services.

    Until SIGTERM or Ctrl-C."""
    configure_logging(log_level, log_format)
    settings = with_options(load_config(config), config, namespace, bootstrap)
    names = _check_runnable(settings, config, settings.worker.engine)
    address = require_kafka(settings, config)
    worker = _worker(config, settings, _process(metrics_port, instance_id))
    _announce(settings, address, names if settings.worker.engine else None, worker.services)
    _run(worker)


def dev(
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    dashboard_port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, metavar="PORT", help="The dashboard's port on 127.0.0.1; 0: none."
        ),
    ] = DEFAULT_PORT,
    log_level: LogLevel = "INFO",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Kafka, the engine, the services of the configuration and the dashboard, in one process.

    Kafka is --bootstrap or $INFINITIC_KAFKA, else the configured bootstrap servers if they
    answer, else the local broker of --run-dir: started if it does not run, then stopped on
    exit.
    """
    configure_logging(log_level, log_format)
    settings = with_options(load_config(config), config, namespace, bootstrap)
    names = _check_runnable(settings, config, True)
    kafka, started = _dev_kafka(settings, run_dir.resolve(), explicit=bool(bootstrap))
    address = kafka["bootstrap.servers"]
    try:
        worker = _worker(config, settings, {"kafka": kafka, "engine": True})
        if started:
            typer.echo(
                f"Kafka: {address}, a local broker that stops with this command "
                f"(logs: {run_dir}/node-*/broker.log)"
            )
        else:
            typer.echo(f"Kafka: {address}")
        _announce(settings, address, names, worker.services)
        board = start_for_dev(kafka, settings, dashboard_port) if dashboard_port else None
        try:
            _run(worker)
        finally:
            if board is not None:
                board.stop()
    finally:
        if started:
            typer.echo(f"Stopping the local Kafka at {address}...")
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


def _process(metrics_port: int | None, instance_id: str | None) -> dict[str, Any]:
    """The Worker settings the command line gives over the configuration's."""
    given = {"metrics_port": metrics_port, "instance_id": instance_id}
    return {key: value for key, value in given.items() if value is not None}


def _worker(path: Path, settings: InfiniticConfig, overrides: dict[str, Any]) -> Worker:
    from infinitic_streams.worker.worker import Worker  # the stream runtime: only when needed

    options = {"kafka": settings.kafka, "namespace": settings.namespace, **overrides}
    try:
        return Worker.from_config(path, **options)
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


def _run(worker: Worker) -> None:
    try:
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C while stopping
            worker.run()
    except Exception as error:  # its ERROR log line above has the traceback
        raise fail(f"The worker stopped on an error: {type(error).__name__}: {error}") from None
    typer.echo("Stopped.")


def _dev_kafka(
    settings: InfiniticConfig, run_dir: Path, explicit: bool
) -> tuple[dict[str, Any], bool]:
    """(Kafka settings, whether this command started the broker). Like scripts/with-kafka.sh:
    --bootstrap or $INFINITIC_KAFKA must answer; else the configured cluster if it answers;
    else the local cluster of `run_dir` (with its recorded settings, SASL included), started
    unless it already runs."""
    configured = bootstrap_of(settings)  # --bootstrap or $INFINITIC_KAFKA already replaced it
    if explicit or os.environ.get("INFINITIC_KAFKA"):
        if not _answers(settings, KAFKA_CHECK_TIMEOUT_S):
            raise fail(unreachable(configured, "--bootstrap or $INFINITIC_KAFKA"))
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
