"""Root of the `infinitic-streams` command: one sub-command group per concern."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from infinitic_streams import __version__
from infinitic_streams.cli import (
    actions,
    dashboard,
    dlq,
    kafka,
    replay,
    run,
    schedules,
    topics,
    workflows,
)
from infinitic_streams.cli import visibility as visibility_commands

app = typer.Typer(
    name="infinitic-streams",
    help="Durable workflows as plain Python classes, on Apache Kafka.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for group in (kafka.app, topics.app, dlq.app, schedules.app):
    group.rich_markup_mode = None
    group.info.no_args_is_help = True
app.add_typer(kafka.app, name="kafka")
app.add_typer(topics.app, name="topics")
app.add_typer(dlq.app, name="dlq")
app.add_typer(schedules.app, name="schedule")
app.command()(run.dev)
app.command()(run.engine)
app.command()(run.worker)
app.command()(workflows.dispatch)
app.command()(workflows.describe)
app.command()(workflows.history)
app.command()(workflows.result)
app.command()(actions.signal)
app.command()(actions.cancel)
app.command()(actions.retry)
app.command("list")(visibility_commands.list_workflows)
app.command()(visibility_commands.count)
app.command()(visibility_commands.events)
app.command()(dashboard.dashboard)
app.command("replay-check")(replay.replay_check)


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
    """The command; Ctrl-C at any moment ends it with code 130 and no traceback."""
    try:
        app()
    except KeyboardInterrupt:
        typer.secho("Interrupted.", fg=typer.colors.YELLOW, err=True)
        sys.exit(130)
