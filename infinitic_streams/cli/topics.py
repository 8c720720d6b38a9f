"""`infinitic-streams topics create | list`: the Kafka topics of the configured namespace."""

from __future__ import annotations

from typing import Annotated

import typer

from infinitic_streams.cli.common import (
    fail,
    load_config,
    load_settings,
    require_kafka,
    service_classes,
    with_options,
)
from infinitic_streams.cli.options import DEFAULT_CONFIG, Bootstrap, ConfigPath, Namespace
from infinitic_streams.definitions import service_spec
from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import Admin, describe_cluster, ensure_topics
from infinitic_streams.topics import Topics

app = typer.Typer(help="Create, list and delete the Kafka topics of a namespace.")


@app.command()
def create(
    namespace: Namespace = None, bootstrap: Bootstrap = None, config: ConfigPath = DEFAULT_CONFIG
) -> None:
    """Create the engine and replies topics and the task topics of worker.services.

    With the configured partitions; the partition count of existing topics is checked."""
    settings = with_options(load_config(config), config, namespace, bootstrap)
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
def list_topics(
    namespace: Namespace = None, bootstrap: Bootstrap = None, config: ConfigPath = DEFAULT_CONFIG
) -> None:
    """List the topics of the namespace with their partition counts."""
    settings = load_settings(config, namespace, bootstrap)
    bootstrap = require_kafka(settings, config)
    try:
        overview = describe_cluster(settings.kafka, timeout=10.0)
    except InfiniticError as error:
        raise fail(f"Kafka at {bootstrap} is unreachable: {error}") from None
    owned = Topics(settings.namespace)
    topics = {name: count for name, count in overview.topics.items() if owned.owns(name)}
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


@app.command()
def delete(
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete the topics of the namespace: its workflows, their state and history are lost."""
    settings = load_settings(config, namespace, bootstrap)
    address = require_kafka(settings, config)
    topics = Topics(settings.namespace)
    try:
        names = [n for n in describe_cluster(settings.kafka, timeout=10.0).topics if topics.owns(n)]
    except InfiniticError as error:
        raise fail(f"Cannot list the topics at {address}: {error}") from None
    if not names:
        typer.echo(f"No topics of namespace {settings.namespace!r} at {address}: none deleted.")
        return
    for name in names:
        typer.echo(f"  {name}")
    question = (
        f"Delete these {len(names)} topics of namespace {settings.namespace!r} at {address}? "
        "Their data is lost"
    )
    if not yes and not typer.confirm(question, default=False):
        raise fail("Nothing deleted.")
    try:
        deleted = Admin(settings.kafka).delete_topics(names)
    except InfiniticError as error:
        raise fail(f"Cannot delete the topics at {address}: {error}") from None
    typer.echo(f"Deleted {len(deleted)} topic(s) of namespace {settings.namespace!r}.")
