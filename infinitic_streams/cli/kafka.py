"""`infinitic-streams kafka ...`: a local Apache Kafka for development and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from confluent_kafka import KafkaException

from infinitic_streams.kafka.admin import describe_cluster
from infinitic_streams.local_kafka import cluster
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
) -> None:
    """Start a local Kafka broker (downloaded from Maven Central once) and wait until ready."""
    if nodes == 2:
        raise _fail("--nodes must be 1 or 3: a KRaft quorum of two cannot lose a node.")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        record = cluster.up(
            run_dir.resolve(), cache_dir or default_cache_dir(), nodes, port, controller_port
        )
    except LocalKafkaError as error:
        raise _fail(str(error)) from None
    typer.echo(f"bootstrap servers: {record.bootstrap}")
    typer.echo(f"logs: {run_dir}/node-*/broker.log; stop with `infinitic-streams kafka down`")


@app.command()
def down(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Stop the local Kafka started by `up` (SIGTERM, then SIGKILL after 20 s)."""
    cluster.down(run_dir.resolve())


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
        raise _fail(
            f"degraded: only node(s) {current.running_nodes} of {record.bootstrap} run. "
            "Restart with `infinitic-streams kafka down` then `up`."
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
    address = bootstrap or _local_bootstrap(run_dir)
    try:
        overview = describe_cluster(address, timeout=10.0)
    except KafkaException as error:
        raise _fail(f"Kafka at {address} is unreachable: {error.args[0]}") from None
    typer.echo(f"cluster {overview.cluster_id} at {address}")
    for broker in overview.brokers:
        role = " (controller)" if broker.node_id == overview.controller_id else ""
        typer.echo(f"  broker {broker.node_id}: {broker.host}:{broker.port}{role}")
    typer.echo(f"topics ({len(overview.topics)}):")
    for name, partitions in overview.topics.items():
        typer.echo(f"  {name}  [{partitions} partition{'s' if partitions != 1 else ''}]")


def _local_bootstrap(run_dir: Path) -> str:
    record = cluster.ClusterRecord.load(run_dir.resolve())
    return record.bootstrap if record else f"127.0.0.1:{cluster.DEFAULT_PORT}"
