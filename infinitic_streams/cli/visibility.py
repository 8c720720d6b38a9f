"""`infinitic-streams list | count | events`: find workflows without knowing their ids, and
read one workflow's events.

`list` and `count` ask the visibility index (`client.list`, `client.count_by_status`) that
every engine runs. `events ID` reads `<ns>.events` (CloudEvents keyed by workflow id): only
the partition the id's records go to, from its start to its end at the command's start, or
on and on with --follow."""

from __future__ import annotations

import json
import shlex
import signal
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from infinitic_streams.cli.common import fail, load_settings, require_kafka, warn
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
from infinitic_streams.cli.render import emit, iso, print_table, relative, shorten, to_json
from infinitic_streams.client import InfiniticClient, WorkflowInfo
from infinitic_streams.errors import InfiniticError
from infinitic_streams.kafka.admin import Admin, TopicMismatchError
from infinitic_streams.kafka.consumer import Consumer, Message, TopicPartition
from infinitic_streams.protocol import WorkflowStatus, cloudevents
from infinitic_streams.topics import Topics

STATUSES = ", ".join(WorkflowStatus.__members__)
ERROR_CHARS = 50  # of an error in the list's table
OFFSET_BEGINNING = -2
# librdkafka's partitioners that put a keyed record in partition CRC32(key) % partitions.
CRC32_PARTITIONERS = ("consistent_random", "consistent")
# The fields of `list -o json` (keep them stable).
JSON_FIELDS = ("id", "name", "method", "status", "tags", "started_at", "updated_at", "ended_at")
JSON_FIELDS += ("error", "cursor")
TYPE_WIDTH = max(len(t) for t in (*cloudevents.TYPES.values(), cloudevents.ATTEMPT_FAILED))
HIDDEN = {"retry", "timeout", "meta", "traceback", "signal_id"}  # event data not summarized

WorkflowName = Annotated[
    str | None, typer.Option("--workflow", metavar="NAME", help="Only workflows of this name.")
]
Status = Annotated[
    str | None,
    typer.Option(metavar="STATUS", help=f"Only workflows in this status: {STATUSES} (any case)."),
]
Tag = Annotated[str | None, typer.Option(metavar="TAG", help="Only workflows with this tag.")]


def list_workflows(
    workflow: WorkflowName = None,
    status: Status = None,
    tag: Tag = None,
    limit: Annotated[int, typer.Option(min=1, metavar="K", help="At most K workflows.")] = 100,
    after: Annotated[
        str | None, typer.Option(metavar="CURSOR", help="The page after CURSOR (printed last).")
    ] = None,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    json_flag: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """List workflows, most recently updated first (matching every filter given)."""
    configure_logging(log_level, log_format)
    status = _status(status)
    with index_client(config, namespace, bootstrap) as client:
        found = _asked(lambda: client.list(workflow, status, tag, limit + 1, after))
    shown = found[:limit]
    next_cursor = shown[-1].cursor if len(found) > limit else None
    output = output_of(output, json_flag)
    if output is not Format.TABLE:
        workflows = [{f: to_json(getattr(info, f)) for f in JSON_FIELDS} for info in shown]
        emit({"workflows": workflows, "next": next_cursor}, output)
    elif not shown:
        filters = " matching these filters" if workflow or status or tag or after else ""
        typer.echo(f"No workflows{filters} in namespace {client.topics.namespace!r}.")
    else:
        headers = ["id", "name", "status", "tags", "started", "updated", "error"]
        print_table(headers, [_row(info) for info in shown])
        if next_cursor is not None:
            given = {"--workflow": workflow, "--status": status, "--tag": tag, "--limit": limit}
            given["--after"] = next_cursor
            options = " ".join(f"{k} {shlex.quote(str(v))}" for k, v in given.items() if v)
            typer.echo(f"\nMore: infinitic-streams list {options}")


def count(
    workflow: WorkflowName = None,
    status: Status = None,
    tag: Tag = None,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    json_flag: JsonFlag = False,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Count workflows (matching every filter given); without --status, per status too."""
    configure_logging(log_level, log_format)
    status = _status(status)
    with index_client(config, namespace, bootstrap) as client:
        by_status = _asked(lambda: client.count_by_status(workflow, tag))
    total = by_status.get(status, 0) if status else sum(by_status.values())
    output = output_of(output, json_flag)
    if output is not Format.TABLE:
        emit({"count": total} if status else {"count": total, "by_status": by_status}, output)
    elif status:
        typer.echo(str(total))
    else:
        rows = [[name, str(n)] for name, n in by_status.items()]
        print_table(["status", "count"], [*rows, ["TOTAL", str(total)]])


def events(
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="The workflow's id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events, until Ctrl-C.")
    ] = False,
    namespace: Namespace = None,
    bootstrap: Bootstrap = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Output = Format.TABLE,
    json_flag: JsonFlag = False,
    log_level: LogLevel = "ERROR",
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Print a workflow's events, oldest first: time, type and what happened (-o json: the
    CloudEvents of the events topic as they are, one a line)."""
    configure_logging(log_level, log_format)
    output = output_of(output, json_flag)
    settings = load_settings(config, namespace, bootstrap)
    address = require_kafka(settings, config)
    topic = Topics(settings.namespace).events
    try:
        count = Admin(settings.kafka).topic_partitions((topic,), timeout=3.0)[topic]
    except TopicMismatchError:
        raise fail(
            f"Namespace {settings.namespace!r} has no events topic ({topic} is absent): "
            "engines create it when they start (or `infinitic-streams topics create`)."
        ) from None
    except InfiniticError as error:
        raise fail(f"Cannot read {topic} at {address}: {error}") from None
    by_key = settings.kafka.get("partitioner", "consistent_random") in CRC32_PARTITIONERS
    partitions = [partition_of(workflow_id, count)] if by_key else list(range(count))
    missing = (
        f"No events of workflow {workflow_id} in {topic}. Check the id and the namespace "
        "(--namespace); events exist only for workflows recorded since the events topic exists."
    )
    seen = 0

    def caught_up() -> None:  # with what the partitions held at the start
        if follow and not seen:
            warn(f"{missing}\nWaiting for them (Ctrl-C to stop)...")

    consumer = Consumer(  # of assigned partitions, never committing
        settings.kafka,
        f"{topic}.reader.{uuid.uuid4().hex[:8]}",
        required={"isolation.level": "read_committed"},  # committed events only
    )
    # Ctrl-C while following sets `stop`, checked between reads (so it is never raised inside
    # librdkafka's calls); it then ends the command as any Ctrl-C does (code 130).
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set()) if follow else None
    try:
        for event in _read(consumer, topic, partitions, workflow_id, follow, stop, caught_up):
            seen += 1
            _print_event(event, output)
    finally:
        consumer.close()
        if follow:
            signal.signal(signal.SIGINT, previous)
    if stop.is_set():
        raise KeyboardInterrupt
    if not seen and not follow:
        raise fail(missing)


# -- list and count --------------------------------------------------------------------------


@contextmanager
def index_client(
    config: Path, namespace: str | None, bootstrap: str | None
) -> Iterator[InfiniticClient]:
    """A client, once Kafka answers and (as far as Kafka says) a visibility index runs."""
    settings = load_settings(config, namespace, bootstrap)
    require_kafka(settings, config)
    group = Topics(settings.namespace).visibility_group
    try:
        members = Admin(settings.kafka).group_members(group, timeout=5.0)
    except InfiniticError:  # unknown: a query left unanswered says more
        members = None
    if members == 0:
        raise fail(
            f"No visibility index runs for namespace {settings.namespace!r}, so nothing can "
            "answer: every engine runs one (`infinitic-streams engine`, or `infinitic-streams "
            "dev`), unless started with visibility=False."
        )
    try:
        client = InfiniticClient(
            settings.kafka, settings.namespace, settings.partitions, settings.max_payload_bytes
        )
    except InfiniticError as error:
        raise fail(f"Cannot start a client: {error}") from None
    with client:
        yield client


def _asked(query: Callable[[], Any]) -> Any:
    try:
        return query()
    except (TimeoutError, InfiniticError, ValueError) as error:
        raise fail(str(error)) from None


def _status(status: str | None) -> str | None:
    if status is not None and status.upper() not in WorkflowStatus.__members__:
        raise fail(f"Unknown status {status!r}: use one of {STATUSES} (any case).")
    return status and status.upper()


def _row(info: WorkflowInfo) -> list[str]:
    error = " ".join((info.error or "").split())
    error = error if len(error) <= ERROR_CHARS else f"{error[: ERROR_CHARS - 1]}…"
    tags, started, updated = ",".join(info.tags) or "-", info.started_at, info.updated_at
    return [info.id, info.name, info.status, tags, relative(started), relative(updated), error]


# -- events ----------------------------------------------------------------------------------


def partition_of(workflow_id: str, partitions: int) -> int:
    """The partition of the events topic holding `workflow_id`'s events: librdkafka's default
    partitioner (consistent_random) puts a keyed record in CRC32(key) % partitions."""
    return zlib.crc32(workflow_id.encode()) % partitions


def _read(
    consumer: Consumer,
    topic: str,
    partitions: list[int],
    workflow_id: str,
    follow: bool,
    stop: threading.Event,
    caught_up: Callable[[], None],
) -> Iterator[dict[str, Any]]:
    """The workflow's events in `partitions` from their start up to their end now (then
    `caught_up()`), and on with `follow` until `stop` is set."""
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    ends = {p: consumer.end_offset(TopicPartition(topic, p)) for p in partitions}
    ends = {p: end for p, end in ends.items() if end > 0}
    if not ends:
        caught_up()
    while not stop.is_set() and (follow or ends):
        for message in consumer.consume(100, 0.5):
            if (event := _event_of(message, workflow_id)) is not None:
                yield event
        if ends:  # positions, not offsets: transaction markers take offsets too
            for position in consumer.position([TopicPartition(topic, p) for p in ends]):
                if position.offset >= ends[position.partition]:
                    del ends[position.partition]
            if not ends:
                caught_up()


def _event_of(message: Message, workflow_id: str) -> dict[str, Any] | None:
    """The record's event if it is one of the workflow's (by key, or by subject if keyless)."""
    key = message.key()
    if key is not None and key != workflow_id.encode():
        return None
    try:
        event = cloudevents.parse(message.value())
    except ValueError as error:
        if key is not None:
            warn(f"Skipped {message.topic()}[{message.partition()}]@{message.offset()}: {error}")
        return None
    return event if event["subject"] == workflow_id else None


def _print_event(event: dict[str, Any], output: Format) -> None:
    if output is Format.JSON:
        typer.echo(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    elif output is Format.YAML:
        emit([event], output)
    else:
        typer.echo(f"{event['time']}  {event['type']:<{TYPE_WIDTH}}  {summary(event)}".rstrip())


def summary(event: dict[str, Any]) -> str:
    """An event's data on one short line: `#seq Service.method(args) key=value ...`."""
    data = event.get("data")
    if not isinstance(data, dict):
        return "" if data is None else shorten(_json(data))
    fields = dict(data)
    parts = [f"#{fields.pop('seq')}"] if "seq" in fields else []
    if event["type"] == cloudevents.STARTED:
        fields["workflow_name"] = event.get(cloudevents.NAME, "?")
    owner = fields.get("service") or fields.get("workflow_name")
    if owner is not None and "method" in fields:
        for name in ("service", "workflow_name"):
            fields.pop(name, None)
        args = ", ".join(_json(a) for a in fields.pop("args", []))
        parts.append(f"{owner}.{fields.pop('method')}({args})")
    for key, value in fields.items():
        if key in HIDDEN or value is None or value is False or value == [] or value == {}:
            continue
        if isinstance(value, dict) and "type_name" in value:
            value = f"{value['type_name']}: {value.get('message', '')}"
        elif key.endswith("_ms") and isinstance(value, int):
            key, value = key[:-3], iso(datetime.fromtimestamp(value / 1000, UTC))
        elif isinstance(value, list) and key != "result":
            value = ",".join(v if isinstance(v, str) else _json(v) for v in value)
        elif key in ("result", "value"):
            value = _json(value)
        parts.append(key if value is True else f"{key}={value}")
    return shorten(" ".join(parts))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
