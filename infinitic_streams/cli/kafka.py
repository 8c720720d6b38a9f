"""`infinitic-streams kafka ...`: a local Apache Kafka for development and tests."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from infinitic_streams.cli.common import KAFKA_CHECK_TIMEOUT_S, unreachable
from infinitic_streams.kafka.admin import describe_cluster
from infinitic_streams.kafka.errors import KafkaAuthError, KafkaUnavailable
from infinitic_streams.local_kafka import cluster, nodes
from infinitic_streams.local_kafka.config import Security, toml_block
from infinitic_streams.local_kafka.provision import LocalKafkaError, default_cache_dir

app = typer.Typer(help="Run a local Apache Kafka (KRaft) for development and tests.")

DEFAULT_RUN_DIR = Path(".infinitic/kafka")
RunDir = Annotated[
    Path,
    typer.Option(
        envvar="INFINITIC_KAFKA_RUN_DIR",
        help="Where the local cluster keeps its pids, configuration, data and logs.",
    ),
]


class SecurityMode(StrEnum):
    plaintext = "plaintext"
    sasl = "sasl"


Timeout = Annotated[
    float,
    typer.Option(min=1, help="How long to wait for the node(s) to serve, in seconds."),
]


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@app.command()
def up(
    run_dir: RunDir = DEFAULT_RUN_DIR,
    port: Annotated[int, typer.Option(help="Broker port (node i uses port+i).")] = (
        cluster.DEFAULT_PORT
    ),
    controller_port: Annotated[
        int | None,
        typer.Option(help="KRaft controller port (node i uses it+i). Default: port+100."),
    ] = None,
    nodes: Annotated[int, typer.Option(min=1, max=3, help="1, or 3 for fault tests.")] = 1,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Where the Kafka jars are cached. Default: ~/.cache/infinitic-streams."),
    ] = None,
    security: Annotated[
        SecurityMode,
        typer.Option(help="plaintext (no authentication) or sasl (SASL_PLAINTEXT, SCRAM-SHA-512)."),
    ] = SecurityMode.plaintext,
    user: Annotated[
        str | None, typer.Option(help="SASL user (with --security sasl). Default: infinitic.")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(help="SASL password (with --security sasl). Default: random, per `up`."),
    ] = None,
    timeout: Timeout = cluster.READY_TIMEOUT,
) -> None:
    """Start a local Kafka broker (downloaded from Maven Central once) and wait until ready;
    print the client settings for infinitic.toml."""
    if nodes == 2:
        raise _fail("--nodes must be 1 or 3: a KRaft quorum of two cannot lose a node.")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        record = cluster.up(
            run_dir.resolve(),
            cache_dir or default_cache_dir(),
            nodes,
            port,
            controller_port,
            security=Security.of(security.value, user, password),
            timeout=timeout,
        )
    except LocalKafkaError as error:
        raise _fail(str(error)) from None
    typer.echo(f"bootstrap servers: {record.bootstrap}")
    typer.echo(f"client settings, for infinitic.toml:\n\n{toml_block(record.client_settings)}\n")
    typer.echo(f"logs: {run_dir}/node-*/broker.log; stop with `infinitic-streams kafka down`")


@app.command()
def down(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Stop the local Kafka started by `up` (SIGTERM, then SIGKILL after 20 s)."""
    try:
        cluster.down(run_dir.resolve())
    except LocalKafkaError as error:
        raise _fail(str(error)) from None


@app.command("stop-node")
def stop_node(
    node: Annotated[int, typer.Argument(help="The node's number: 1, or 1 to 3.")],
    kill: Annotated[
        bool, typer.Option("--kill", help="SIGKILL at once, as a crash (default: SIGTERM).")
    ] = False,
    run_dir: RunDir = DEFAULT_RUN_DIR,
) -> None:
    """Stop one node of the local cluster, keeping its data (SIGTERM, SIGKILL after 20 s)."""
    try:
        cluster.stop_node(run_dir.resolve(), node, kill=kill, log=typer.echo)
    except LocalKafkaError as error:
        raise _fail(str(error)) from None


@app.command("start-node")
def start_node(
    node: Annotated[list[int], typer.Argument(help="The node's number; several start together.")],
    run_dir: RunDir = DEFAULT_RUN_DIR,
    timeout: Timeout = cluster.READY_TIMEOUT,
) -> None:
    """Start stopped node(s) again with their kept data; wait until they serve."""
    try:
        nodes.start_nodes(run_dir.resolve(), node, log=typer.echo, timeout=timeout)
    except LocalKafkaError as error:
        raise _fail(str(error)) from None


@app.command()
def settings(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Print the client settings of the local cluster, for infinitic.toml."""
    record = cluster.ClusterRecord.load(run_dir.resolve())
    if record is None:
        raise _fail(f"No local Kafka is recorded in {run_dir}: start one with `kafka up`.")
    typer.echo(toml_block(record.client_settings))


@app.command()
def status(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Say whether the local Kafka runs; exit code 1 when it does not."""
    current = cluster.status(run_dir.resolve())
    record = current.record
    if current.state == "up" and record is not None:
        pids = ", ".join(str(node.pid) for node in record.nodes)
        typer.echo(f"up: {record.bootstrap} (Kafka {record.kafka_version}, pid {pids})")
        return
    if current.state == "degraded" and record is not None:
        stopped = " ".join(str(n) for n in current.stopped_nodes)
        raise _fail(
            f"degraded: only node(s) {current.running_nodes} of {record.bootstrap} run. "
            f"Start the others with `infinitic-streams kafka start-node {stopped}` (their data "
            "is kept), or get a fresh cluster with `down` then `up`."
        )
    typer.echo("down" + (f" (was {record.bootstrap})" if record else ""))
    raise typer.Exit(1)


@app.command()
def info(
    bootstrap: Annotated[
        str | None,
        typer.Option(
            envvar="INFINITIC_KAFKA",
            help="Bootstrap servers. Default: $INFINITIC_KAFKA, else the local cluster.",
        ),
    ] = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
) -> None:
    """Show the brokers and topics of a Kafka cluster; exit code 1 when it is unreachable."""
    kafka = _settings_for(bootstrap, run_dir)
    address = kafka["bootstrap.servers"]
    try:
        overview = describe_cluster(kafka, timeout=KAFKA_CHECK_TIMEOUT_S)
    except KafkaUnavailable:
        raise _fail(unreachable(address, "--bootstrap or $INFINITIC_KAFKA")) from None
    except KafkaAuthError as error:
        raise _fail(str(error)) from None
    typer.echo(f"cluster {overview.cluster_id} at {address}")
    for broker in overview.brokers:
        role = " (controller)" if broker.node_id == overview.controller_id else ""
        typer.echo(f"  broker {broker.node_id}: {broker.host}:{broker.port}{role}")
    typer.echo(f"topics ({len(overview.topics)}):")
    for name, partitions in overview.topics.items():
        typer.echo(f"  {name}  [{partitions} partition{'s' if partitions != 1 else ''}]")


def _settings_for(bootstrap: str | None, run_dir: Path) -> dict[str, str]:
    """The local cluster's client settings (SASL ones included) when no other bootstrap is
    given, or when it is the local cluster's; else plain bootstrap servers (9092 by default)."""
    record = cluster.ClusterRecord.load(run_dir.resolve())
    if record is not None and bootstrap in (None, record.bootstrap):
        return record.client_settings
    return {"bootstrap.servers": bootstrap or f"127.0.0.1:{cluster.DEFAULT_PORT}"}
