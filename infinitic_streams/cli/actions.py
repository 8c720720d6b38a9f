"""`infinitic-streams signal | cancel | retry`: act on one workflow, by its ID, or on a group:
every workflow of one @workflow name carrying a tag (`--tag TAG --workflow NAME`).

A group is what the engine owning the tag knows at the time of the call (a dispatch joins its
group within a second): signal and cancel reach its RUNNING workflows, retry its FAILED ones,
and each prints how many it reached. Like the other client commands they need nothing but
`--bootstrap` and `--namespace`; a group signal checks its value against the channel's type
when the workflow's class is in the configuration (`[worker] workflows`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from infinitic_streams import payload
from infinitic_streams.cli.common import fail, load_settings, warn
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
from infinitic_streams.cli.render import emit
from infinitic_streams.cli.workflows import (
    Timeout,
    Wait,
    answer,
    engine_client,
    parse_json,
    type_name,
    wait_result,
    workflow_class,
)
from infinitic_streams.errors import SerializationError
from infinitic_streams.workflows.channel import channels_of

OptionalId = Annotated[
    str | None,
    typer.Argument(
        metavar="ID", help="The workflow's id (printed by dispatch); leave it out with --tag."
    ),
]
Tag = Annotated[
    str | None,
    typer.Option(
        metavar="TAG",
        help="Act on a group instead of one ID: every workflow of --workflow NAME carrying TAG.",
    ),
]
GroupWorkflow = Annotated[
    str | None,
    typer.Option(
        "--workflow", metavar="NAME", help="The @workflow name of the group (with --tag)."
    ),
]
SignalValue = Annotated[
    str,
    typer.Option(
        "--value",
        metavar="JSON",
        help="The signal's value as JSON: --value 42, --value '\"yes\"', --value '{\"ok\": true}'.",
    ),
]

SIGNAL_USAGE = (
    "`infinitic-streams signal ID CHANNEL --value JSON` signals one workflow, "
    "`infinitic-streams signal CHANNEL --tag TAG --workflow NAME --value JSON` a group."
)


@dataclass(frozen=True)
class Group:
    """Every workflow named `workflow` carrying `tag`."""

    tag: str
    workflow: str

    def __str__(self) -> str:
        return f"{self.workflow} tagged {self.tag}"


# -- commands --------------------------------------------------------------------------------


def signal(
    value: SignalValue,
    first: OptionalId = None,
    second: Annotated[
        str | None,
        typer.Argument(
            metavar="CHANNEL", help="The channel: the name of the workflow's Channel attribute."
        ),
    ] = None,
    tag: Tag = None,
    workflow: GroupWorkflow = None,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Send a value to a channel of one running workflow, or of every running workflow of a
    group; one workflow's signal returns once the engine recorded it.

    \b
      signal ID CHANNEL --value JSON                          one workflow
      signal CHANNEL --tag TAG --workflow NAME --value JSON   a group
    """
    configure_logging(log_level, log_format)
    target, channel = _signal_target(first, second, tag, workflow)
    settings = load_settings(config, namespace, bootstrap)
    if isinstance(target, Group):
        cls = workflow_class(settings, config, target.workflow)
        typed = _group_value(cls, target, channel, value)
        with engine_client(config, namespace, bootstrap, settings) as client:
            group = client.get_workflows(cls or target.workflow, target.tag)
            reached = answer(str(target), lambda: group.signal(channel, typed))
        _print_reached("Signal sent to", "running", reached, target, output, channel=channel)
        return
    parsed = parse_json(value, "--value", "--value")
    with engine_client(config, namespace, bootstrap, settings) as client:
        handle = client.get_workflow(None, target)
        answer(target, lambda: handle.signal(channel, parsed))
    if output is Format.TABLE:
        typer.echo(f"Signal sent to {channel} of {target}.")
    else:
        emit({"id": target, "channel": channel, "recorded": True}, output)


def cancel(
    workflow_id: OptionalId = None,
    tag: Tag = None,
    workflow: GroupWorkflow = None,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Cancel a workflow (ID), or the running workflows of a group (--tag TAG --workflow NAME):
    each ends CANCELED, its timers dropped, its tasks and children canceled."""
    configure_logging(log_level, log_format)
    target = _target(workflow_id, tag, workflow, "cancel")
    if isinstance(target, Group):
        with engine_client(config, namespace, bootstrap) as client:
            group = client.get_workflows(target.workflow, target.tag)
            reached = answer(str(target), group.cancel)
        _print_reached("Cancel sent to", "running", reached, target, output)
        return
    with engine_client(config, namespace, bootstrap) as client:
        handle = client.get_workflow(None, target)
        canceled = answer(target, handle.cancel)
        status = "CANCELED" if canceled else str(answer(target, handle.describe).status)
    if output is not Format.TABLE:
        emit({"id": target, "canceled": canceled, "status": status}, output)
    elif canceled:
        typer.echo(f"Canceled {target}.")
    else:
        typer.echo(f"Workflow {target} had already ended ({status}): nothing changed.")


def retry(
    workflow_id: OptionalId = None,
    tag: Tag = None,
    workflow: GroupWorkflow = None,
    wait: Wait = False,
    timeout: Timeout = 60.0,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Resume a FAILED workflow (ID), or the FAILED workflows of a group (--tag TAG --workflow
    NAME): their failed tasks run again, with the code deployed now."""
    configure_logging(log_level, log_format)
    target = _target(workflow_id, tag, workflow, "retry")
    if isinstance(target, Group):
        if wait:
            raise fail(
                "--wait follows one workflow (retry ID --wait): a group's retry does not wait. "
                "Follow each with `infinitic-streams result ID`."
            )
        with engine_client(config, namespace, bootstrap) as client:
            group = client.get_workflows(target.workflow, target.tag)
            reached = answer(str(target), group.retry)
        _print_reached("Retry sent to", "failed", reached, target, output)
        return
    with engine_client(config, namespace, bootstrap) as client:
        handle = client.get_workflow(None, target)
        info = answer(target, handle.describe)
        if info.status != "FAILED":
            raise fail(
                f"Workflow {target} is {info.status}: only a FAILED workflow can be retried."
            )
        answer(target, handle.retry)
        if output is Format.TABLE:
            typer.echo(f"Retrying {target} ({info.name}.{info.method}), failed with: {info.error}")
        result = wait_result(handle, target, timeout) if wait else None
    if output is not Format.TABLE:
        emit({"id": target, "retried": True, "result": result}, output)
    elif wait:
        typer.echo(json.dumps(result, ensure_ascii=False))


# -- targets and values ----------------------------------------------------------------------


def _target(
    workflow_id: str | None, tag: str | None, workflow: str | None, command: str
) -> str | Group:
    """The workflow id, or the `Group`, a command acts on: an ID, or --tag with --workflow."""
    if tag is None and workflow is None:
        if workflow_id is None:
            raise fail(
                f"Which workflow? `infinitic-streams {command} ID` acts on one, "
                f"`infinitic-streams {command} --tag TAG --workflow NAME` on a group."
            )
        return workflow_id
    if tag is None or workflow is None:
        given, missing = (
            ("--tag", "--workflow NAME") if workflow is None else ("--workflow", "--tag TAG")
        )
        raise fail(
            f"{given} needs {missing}: a group is the workflows of one @workflow name that carry "
            "a tag."
        )
    if workflow_id is not None:
        raise fail(
            f"Give an ID (one workflow) or --tag and --workflow (a group), not both; got ID "
            f"{workflow_id!r} and --tag {tag!r}."
        )
    return Group(tag, workflow)


def _signal_target(
    first: str | None, second: str | None, tag: str | None, workflow: str | None
) -> tuple[str | Group, str]:
    """(workflow id or Group, channel): ID CHANNEL, or CHANNEL alone with --tag and
    --workflow."""
    given = [arg for arg in (first, second) if arg is not None]
    grouped = tag is not None or workflow is not None
    if len(given) == 2:
        return _target(given[0], tag, workflow, "signal"), given[1]
    if len(given) == 1 and grouped:
        return _target(None, tag, workflow, "signal"), given[0]
    missing = "ID and CHANNEL" if not given else "CHANNEL"
    raise fail(f"Missing {missing}: {SIGNAL_USAGE}")


def _group_value(cls: type | None, group: Group, channel: str, text: str) -> Any:
    """The --value of a group signal: JSON, checked here against the channel's type when the
    class is in the configuration (else by the engine, which refuses the whole group)."""
    value = parse_json(text, "--value", "--value")
    if cls is None:
        return value
    channels = channels_of(cls)
    if channel not in channels:
        names = ", ".join(sorted(channels)) or "none"
        raise fail(f"Workflow {group.workflow} has no channel {channel!r}; its channels: {names}.")
    hint = channels[channel].type
    try:
        return payload.decode(text.encode(), hint, path="--value")
    except SerializationError as error:
        raise fail(f"{error}; channel {channel} takes {type_name(hint)}") from None


def _print_reached(
    sent: str, which: str, reached: int, group: Group, output: Format, **more: str
) -> None:
    """How many workflows of the group an action reached (none: a warning naming the checks)."""
    if reached == 0:
        warn(
            f"No {which} workflow {group.workflow} carries tag {group.tag!r}: check --workflow "
            "(the @workflow name) and --tag (`infinitic-streams describe ID` shows the tags)."
        )
    if output is Format.TABLE:
        typer.echo(f"{sent} {reached} workflow(s) {group}.")
    else:
        emit({"reached": reached, "tag": group.tag, "workflow": group.workflow, **more}, output)
