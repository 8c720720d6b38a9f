"""`infinitic-streams topics create | list`: the Kafka topics of the configured namespace."""

from __future__ import annotations

import typer
from confluent_kafka import KafkaException

from infinitic_streams.cli.common import (
    DEFAULT_CONFIG,
    ConfigPath,
    fail,
    load_config,
    require_kafka,
    service_classes,
)
from infinitic_streams.client import REPLY_PARTITIONS
from infinitic_streams.definitions import service_spec
from infinitic_streams.kafka.admin import TopicSpec, describe_cluster, ensure_topics
from infinitic_streams.topics import Topics

app = typer.Typer(help="Create and list the Kafka topics of the configured namespace.")


@app.command()
def create(config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Create the engine and replies topics and the task topics of worker.services.

    With the configured partitions; the partition count of existing topics is checked."""
    settings = load_config(config)
    services = service_classes(settings, config)
    bootstrap = require_kafka(settings, config)
    topics = Topics(settings.namespace)
    names = [topics.engine] + [topics.tasks(service_spec(cls).name) for cls in services]
    specs = [TopicSpec(name, settings.partitions) for name in dict.fromkeys(names)]
    specs.append(TopicSpec(topics.replies, REPLY_PARTITIONS, {"retention.ms": "3600000"}))
    try:
        created = ensure_topics(bootstrap, specs)
    except KafkaException as error:
        raise fail(f"Cannot create topics at {bootstrap}: {error.args[0]}") from None
    except Exception as error:  # TopicMismatchError names its fix
        raise fail(str(error)) from None
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
        overview = describe_cluster(bootstrap, timeout=10.0)
    except KafkaException as error:
        raise fail(f"Kafka at {bootstrap} is unreachable: {error.args[0]}") from None
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
