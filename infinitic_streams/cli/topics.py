"""`infinitic-streams topics create | list`: the Kafka topics of the configured namespace."""

from __future__ import annotations

import typer

from infinitic_streams.cli.common import (
    DEFAULT_CONFIG,
    ConfigPath,
    fail,
    load_config,
    require_kafka,
    service_classes,
)
from infinitic_streams.definitions import service_spec
from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import describe_cluster, ensure_topics
from infinitic_streams.topics import Topics

app = typer.Typer(help="Create and list the Kafka topics of the configured namespace.")


@app.command()
def create(config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Create the engine and replies topics and the task topics of worker.services.

    With the configured partitions; the partition count of existing topics is checked."""
    settings = load_config(config)
    services = service_classes(settings, config)
    bootstrap = require_kafka(settings, config)
    topics = Topics(settings.namespace, settings.partitions, settings.max_payload_bytes)
    specs = topics.specs([service_spec(cls).name for cls in services])
    try:
        created = ensure_topics(settings.kafka, specs)
    except InfiniticError as error:  # unreachable, refused, or a TopicMismatchError (its fix)
        raise fail(f"Cannot create topics at {bootstrap}: {error}") from None
    for spec in specs:
        state = "created" if spec.name in created else "exists "
        typer.echo(f"{state} {spec.name}  [{_partitions(spec.partitions)}]")
    if not services:
        typer.echo(f"([worker] services of {config} lists none: no task topic to create.)")


@app.command("list")
def list_topics(config: ConfigPath = DEFAULT_CONFIG) -> None:
    """List the topics of the namespace with their partition counts."""
    settings = load_config(config)
    bootstrap = require_kafka(settings, config)
    prefix = f"{settings.namespace}."
    try:
        overview = describe_cluster(settings.kafka, timeout=10.0)
    except InfiniticError as error:
        raise fail(f"Kafka at {bootstrap} is unreachable: {error}") from None
    topics = {
        name: partitions for name, partitions in overview.topics.items() if name.startswith(prefix)
    }
    if not topics:
        typer.echo(
            f"No topics of namespace {settings.namespace!r} at {bootstrap}: create them with "
            "`infinitic-streams topics create` (engines and workers create theirs too)."
        )
        return
    typer.echo(f"Topics of namespace {settings.namespace!r} at {bootstrap} ({len(topics)}):")
    width = max(len(name) for name in topics)
    for name, partitions in topics.items():
        typer.echo(f"  {name:<{width}}  [{_partitions(partitions)}]")


def _partitions(count: int) -> str:
    return f"{count} partition{'s' if count != 1 else ''}"
