"""`infinitic-streams replay-check`: replay the history of every running workflow of a
namespace with the workflow classes of the configuration, as they are now: run it before a
deploy to find a change that running workflows cannot take (it would stop them with
`NonDeterministicWorkflow`). Exits 1 when a history diverges."""

from __future__ import annotations

from typing import Annotated

import typer

from infinitic_streams.cli.common import load_settings, require_workflows
from infinitic_streams.cli.options import (
    DEFAULT_CONFIG,
    Bootstrap,
    ConfigPath,
    Format,
    JsonFlag,
    LogFormat,
    LogFormatOption,
    LogLevel,
    Namespace,
    Output,
    configure_logging,
    output_of,
)
from infinitic_streams.cli.render import emit, print_table
from infinitic_streams.cli.visibility import index_client
from infinitic_streams.client import InfiniticClient, WorkflowInfo
from infinitic_streams.errors import InfiniticError, NonDeterministicWorkflow
from infinitic_streams.testing.replayer import replay

PAGE = 500
OK, DIVERGES, SKIPPED = "replays", "DIVERGES", "skipped"


def replay_check(
    workflow: Annotated[
        str | None, typer.Option("--workflow", metavar="NAME", help="Only workflows of this name.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, metavar="K", help="Check at most K running workflows.")
    ] = 10_000,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    json_flag: JsonFlag = False,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Replay running workflows' histories with today's code (the [worker] workflows)."""
    configure_logging(log_level, log_format)
    settings = load_settings(config, namespace, bootstrap)
    classes = require_workflows(settings, config, "replay-check replays histories with them")
    rows: list[dict[str, str]] = []
    with index_client(config, namespace, bootstrap) as client:
        for info in _running(client, workflow, limit):
            outcome, detail = _check(client, classes, info)
            rows.append({"id": info.id, "name": info.name, "outcome": outcome, "detail": detail})
    diverged = sum(row["outcome"] == DIVERGES for row in rows)
    output = output_of(output, json_flag)
    if output is not Format.TABLE:
        emit({"workflows": rows, "diverged": diverged}, output)
    else:
        if rows:
            print_table(["id", "name", "outcome", "detail"], [list(r.values()) for r in rows])
        skipped = sum(row["outcome"] == SKIPPED for row in rows)
        typer.echo(
            f"{len(rows)} running workflows checked: {len(rows) - diverged - skipped} replay, "
            f"{diverged} diverge, {skipped} skipped."
        )
    if diverged:
        raise typer.Exit(1)


def _running(client: InfiniticClient, workflow: str | None, limit: int) -> list[WorkflowInfo]:
    found: list[WorkflowInfo] = []
    after = None
    while len(found) < limit:
        size = min(PAGE, limit - len(found))
        page = client.list(workflow, "RUNNING", None, size, after)
        found += page
        if len(page) < size:
            break
        after = page[-1].cursor
    return found


def _check(
    client: InfiniticClient, classes: dict[str, type], info: WorkflowInfo
) -> tuple[str, str]:
    cls = classes.get(info.name)
    if cls is None:
        return SKIPPED, f"no class named {info.name!r} in [worker] workflows"
    try:
        replay(client.get_workflow(cls, info.id).history(), cls, info.id)
    except NonDeterministicWorkflow as error:
        return DIVERGES, str(error)
    except (InfiniticError, TimeoutError) as error:
        return SKIPPED, f"{type(error).__name__}: {error}"
    return OK, ""
