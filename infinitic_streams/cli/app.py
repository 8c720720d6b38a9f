"""Root of the `infinitic-streams` command: one sub-command group per concern."""

from __future__ import annotations

from typing import Annotated

import typer

from infinitic_streams import __version__
from infinitic_streams.cli import kafka, run, topics, workflows

app = typer.Typer(
    name="infinitic-streams",
    help="Durable workflows as plain Python classes, on Apache Kafka.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(kafka.app, name="kafka")
app.add_typer(topics.app, name="topics")
app.command()(run.dev)
app.command()(run.engine)
app.command()(run.worker)
app.command()(workflows.dispatch)
app.command()(workflows.describe)
app.command()(workflows.history)
app.command()(workflows.retry)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"infinitic-streams {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Show it.")
    ] = False,
) -> None:
    """Durable workflows as plain Python classes, on Apache Kafka."""


def main() -> None:
    app()
