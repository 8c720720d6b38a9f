"""`infinitic-streams schedule create | list | describe | pause | resume | delete`: schedules
from the command line (`client/schedules.py`). `create` takes the workflow by name with JSON
arguments, like `dispatch` (checked against the method's hints when the class is in the
configuration)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from infinitic_streams.cli.common import fail, load_settings
from infinitic_streams.cli.options import (
    DEFAULT_CONFIG,
    Bootstrap,
    ConfigPath,
    Format,
    LogFormat,
    LogFormatOption,
    LogLevel,
    Namespace,
    Output,
    configure_logging,
)
from infinitic_streams.cli.render import emit, iso, print_rows, print_table, shorten
from infinitic_streams.cli.workflows import _encoded_args, engine_client, workflow_class
from infinitic_streams.client import ScheduleInfo
from infinitic_streams.errors import InfiniticError, ScheduleNotFound

app = typer.Typer(help="Start workflows on a cron expression.")

ScheduleId = Annotated[str, typer.Argument(metavar="ID", help="The schedule's id.")]


@app.command()
def create(
    schedule_id: ScheduleId,
    workflow_name: Annotated[
        str, typer.Argument(metavar="WORKFLOW", help="The workflow's @workflow name.")
    ],
    method: Annotated[str, typer.Argument(metavar="METHOD", help="The method to start.")] = "run",
    cron: Annotated[
        str,
        typer.Option(
            metavar="CRON",
            help="5 fields (minute hour day month weekday), or 6 with the seconds first: "
            "'*/2 * * * * *' fires every 2 seconds.",
        ),
    ] = "",
    timezone: Annotated[
        str, typer.Option(metavar="ZONE", help="IANA time zone the cron is read in.")
    ] = "UTC",
    overlap: Annotated[
        str,
        typer.Option(
            metavar="POLICY",
            help="skip: start nothing while the last firing's workflow runs; allow: every firing.",
        ),
    ] = "skip",
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", "-a", metavar="JSON", help="One argument as JSON, in order."),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(metavar="TAG", help="A tag of each workflow, repeatable.")
    ] = None,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Create a schedule (the same definition again changes nothing; another replaces it)."""
    configure_logging(log_level, log_format)
    if not cron:
        raise fail("--cron is required, e.g. --cron '0 3 * * *' (every day at 03:00).")
    settings = load_settings(config, namespace, bootstrap)
    cls = workflow_class(settings, config, workflow_name)
    args = _encoded_args(cls, workflow_name, method, arg or [])
    with engine_client(config, namespace, bootstrap, settings) as client:
        info = _asked(
            schedule_id,
            lambda: client.schedule_encoded(
                schedule_id, workflow_name, method, args, cron, timezone, overlap, tag or []
            ),
        )
    _show(info, output)


@app.command("list")
def list_schedules(
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """List every schedule of the namespace, by id."""
    configure_logging(log_level, log_format)
    with engine_client(config, namespace, bootstrap) as client:
        found = _asked("", client.list_schedules)
    if output is not Format.TABLE:
        emit([info_json(info) for info in found], output)
        return
    if not found:
        typer.echo("No schedules.")
        return
    headers = ["ID", "WORKFLOW", "CRON", "TIMEZONE", "OVERLAP", "STATE", "NEXT", "LAST WORKFLOW"]
    print_table(headers, [_row(info) for info in found])


@app.command()
def describe(
    schedule_id: ScheduleId,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Show a schedule."""
    configure_logging(log_level, log_format)
    with engine_client(config, namespace, bootstrap) as client:
        info = _asked(schedule_id, client.get_schedule(schedule_id).describe)
    _show(info, output)


def _action(name: str, doc: str) -> Any:
    def command(
        schedule_id: ScheduleId,
        namespace: Namespace = None,
        bootstrap: Bootstrap = None,
        config: ConfigPath = DEFAULT_CONFIG,
        output: Output = Format.TABLE,
        log_level: LogLevel = "ERROR",
        log_format: LogFormatOption = LogFormat.TEXT,
    ) -> None:
        configure_logging(log_level, log_format)
        with engine_client(config, namespace, bootstrap) as client:
            act = getattr(client, f"{name}_schedule")
            info = _asked(schedule_id, lambda: act(schedule_id))
        if output is not Format.TABLE:
            emit({"id": schedule_id, "action": name}, output)
        else:
            typer.echo(f"Schedule {schedule_id}: {name}d." if info is None else _state(info))

    command.__doc__ = doc
    app.command(name)(command)


_action("pause", "Stop firing a schedule (until resume).")
_action("resume", "Fire a paused schedule again, from the first firing after now.")
_action("delete", "Remove a schedule (the workflows it started go on).")


def _asked(schedule_id: str, call: Any) -> Any:
    try:
        return call()
    except ScheduleNotFound:
        raise fail(
            f"No schedule with id {schedule_id} in this namespace: see `infinitic-streams "
            "schedule list`, and check the namespace (--namespace)."
        ) from None
    except (ValueError, TimeoutError, InfiniticError) as error:
        raise fail(str(error)) from None


def _state(info: ScheduleInfo) -> str:
    if info.paused:
        return f"Schedule {info.id}: paused."
    when = iso(info.next_fire) if info.next_fire else "-"
    return f"Schedule {info.id}: next firing {when}."


def _row(info: ScheduleInfo) -> list[str]:
    return [
        info.id,
        f"{info.workflow}.{info.method}",
        info.cron,
        info.timezone,
        info.overlap,
        "paused" if info.paused else "active",
        iso(info.next_fire) if info.next_fire else "-",
        info.last_workflow_id or "-",
    ]


def info_json(info: ScheduleInfo) -> dict[str, Any]:
    def at(value: Any) -> str | None:
        return iso(value) if value is not None else None

    return {
        "id": info.id,
        "workflow": info.workflow,
        "method": info.method,
        "cron": info.cron,
        "timezone": info.timezone,
        "overlap": info.overlap,
        "paused": info.paused,
        "next_fire": at(info.next_fire),
        "last_fire": at(info.last_fire),
        "last_workflow_id": info.last_workflow_id,
        "running": info.running,
        "tags": list(info.tags),
        "args": list(info.args),
        "fired": info.fired,
        "skipped": info.skipped,
        "created_at": at(info.created_at),
    }


def _show(info: ScheduleInfo, output: Format) -> None:
    if output is not Format.TABLE:
        emit(info_json(info), output)
        return
    data = info_json(info)
    rows = [(key, shorten(str(value if value is not None else "-"))) for key, value in data.items()]
    print_rows(rows)
